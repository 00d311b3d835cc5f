//! Consistency rules of a manifest body. A body that passes [`ManifestBody::validate`] is
//! internally consistent: its registers are the replay of its events, its shapes agree on the
//! image-static registers, embedded ACPI blobs match their digests, and its identity hashes
//! are those of its registers. `build` refuses to produce, and `parse` refuses to accept, a body
//! that fails.

use super::{
    invalid, ManifestBody, ManifestError, Registers, ShapeEntry, TdPolicy, MAX_ACPI_BLOBS,
    MAX_EVENTS, MAX_SHAPES,
};
use crate::eventlog::ExpectedEvent;
use crate::identity::{cocoon_image_hash, identity_hash, CocoonImageRegisters, TdIdentity};
use crate::register::{Digest384, Register, Rtmr};
use crate::rtmr3;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Longest free-text field (release, event description, blob name), in bytes.
const MAX_TEXT: usize = 4096;
/// Longest kernel command line accepted, in bytes.
const MAX_CMDLINE: usize = 64 * 1024;

/// A name usable on a command line: 1..=64 of `[A-Za-z0-9._-]`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), ManifestError> {
    if value.len() > max {
        return Err(invalid(
            field,
            format!("{} bytes, more than {max}", value.len()),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "contains control characters"));
    }
    Ok(())
}

/// Checks an event list: size, allowed registers, text fields; returns the replayed registers.
fn check_events(
    field: &str,
    events: &[ExpectedEvent],
    allowed: &[Rtmr],
) -> Result<[Register; 4], ManifestError> {
    if events.len() > MAX_EVENTS {
        return Err(invalid(
            field,
            format!("{} events, more than {MAX_EVENTS}", events.len()),
        ));
    }
    let mut regs = [Register::default(); 4];
    for (i, e) in events.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if !allowed.contains(&e.rtmr) {
            return Err(invalid(
                &f,
                format!("event for {} does not belong in this list", e.rtmr),
            ));
        }
        check_text(&format!("{f}.description"), &e.description, MAX_TEXT)?;
        if e.source.is_empty()
            || e.source.len() > 32
            || !e
                .source
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        {
            return Err(invalid(
                format!("{f}.source"),
                format!("{:?} is not a source name ([a-z0-9-]{{1,32}})", e.source),
            ));
        }
        regs[e.rtmr.index()].extend(&e.digest);
    }
    Ok(regs)
}

fn same(
    field: &str,
    stated: &Digest384,
    computed: &Digest384,
    why: &str,
) -> Result<(), ManifestError> {
    if stated != computed {
        return Err(invalid(
            field,
            format!(
                "is {} but {why} gives {}",
                hex::encode(stated),
                hex::encode(computed)
            ),
        ));
    }
    Ok(())
}

/// The identity and COCOON image hashes of a shape's registers, when RTMR3 is pinned.
pub(super) fn shape_hashes(td: &TdPolicy, r: &Registers) -> (Option<Digest384>, Option<[u8; 32]>) {
    let Some(r3) = r.rtmr3 else {
        return (None, None);
    };
    let rtmr = [r.rtmr0, r.rtmr1, r.rtmr2, r3];
    let id = TdIdentity {
        mrtd: r.mrtd,
        rtmr,
        td_attributes: td.attributes,
        xfam: td.xfam,
    };
    let cocoon = CocoonImageRegisters {
        mrtd: r.mrtd,
        mr_config_id: td.mr_config_id,
        mr_owner: td.mr_owner,
        mr_owner_config: td.mr_owner_config,
        rtmr,
    };
    (Some(identity_hash(&id)), Some(cocoon_image_hash(&cocoon)))
}

impl ManifestBody {
    /// Checks every consistency rule (see module docs).
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.format != super::FORMAT_V1 {
            return Err(ManifestError::Format {
                found: self.format.clone(),
            });
        }
        if self.release.is_empty() {
            return Err(invalid("release", "is empty"));
        }
        check_text("release", &self.release, 128)?;
        let c = &self.commit;
        if !(7..=64).contains(&c.len())
            || !c
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid(
                "commit",
                format!("{c:?} is not 7..=64 lowercase hex digits"),
            ));
        }
        check_text("image.cmdline", &self.image.cmdline, MAX_CMDLINE)?;

        let rtmr3 = match &self.rtmr3 {
            Some(pin) => {
                let events = rtmr3::check_all(pin.events.clone())
                    .map_err(|e| invalid("rtmr3.events", e.to_string()))?;
                let value = rtmr3::replay(&events).value();
                same("rtmr3.value", &pin.value, &value, "replaying rtmr3.events")?;
                Some(value)
            }
            None => None,
        };

        if self.shapes.is_empty() || self.shapes.len() > MAX_SHAPES {
            return Err(invalid(
                "shapes",
                format!("{} shapes; expected 1..={MAX_SHAPES}", self.shapes.len()),
            ));
        }
        for (i, shape) in self.shapes.iter().enumerate() {
            if self
                .shapes
                .get(..i)
                .unwrap_or_default()
                .iter()
                .any(|s| s.name == shape.name)
            {
                return Err(invalid(
                    format!("shapes[{i}].name"),
                    format!("{:?} appears twice", shape.name),
                ));
            }
            self.validate_shape(i, shape, rtmr3)?;
        }
        Ok(())
    }

    fn validate_shape(
        &self,
        i: usize,
        s: &ShapeEntry,
        rtmr3: Option<Digest384>,
    ) -> Result<(), ManifestError> {
        let f = |name: &str| format!("shapes[{i}].{name}");
        if !valid_name(&s.name) {
            return Err(invalid(
                f("name"),
                format!("{:?} is not 1..=64 of [A-Za-z0-9._-]", s.name),
            ));
        }
        if s.cpus == 0 || s.memory_bytes == 0 {
            return Err(invalid(
                f("cpus"),
                "a shape needs at least one vCPU and some memory",
            ));
        }
        if s.acpi.len() > MAX_ACPI_BLOBS {
            return Err(invalid(
                f("acpi"),
                format!("{} blobs, more than {MAX_ACPI_BLOBS}", s.acpi.len()),
            ));
        }
        for (j, blob) in s.acpi.iter().enumerate() {
            let bf = f(&format!("acpi[{j}]"));
            check_text(&format!("{bf}.name"), &blob.name, 256)?;
            if s.acpi
                .get(..j)
                .unwrap_or_default()
                .iter()
                .any(|b| b.name == blob.name)
            {
                return Err(invalid(bf, format!("blob {:?} appears twice", blob.name)));
            }
            if let Some(b64) = &blob.data_base64 {
                let data = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| invalid(format!("{bf}.data_base64"), e.to_string()))?;
                if data.len() as u64 != blob.size {
                    return Err(invalid(
                        format!("{bf}.size"),
                        format!("is {} but the data is {} bytes", blob.size, data.len()),
                    ));
                }
                let digest: [u8; 32] = Sha256::digest(&data).into();
                if digest != blob.sha256 {
                    return Err(invalid(
                        format!("{bf}.sha256"),
                        "does not match the embedded data",
                    ));
                }
            }
        }
        let regs = check_events(
            &f("events"),
            &s.events,
            &[Rtmr::Rtmr0, Rtmr::Rtmr1, Rtmr::Rtmr2],
        )?;
        let r = &s.registers;
        same(
            &f("registers.rtmr0"),
            &r.rtmr0,
            &regs[0].value(),
            "replaying the shape's events",
        )?;
        same(
            &f("registers.rtmr1"),
            &r.rtmr1,
            &regs[1].value(),
            "replaying the shape's events",
        )?;
        same(
            &f("registers.rtmr2"),
            &r.rtmr2,
            &regs[2].value(),
            "replaying the shape's events",
        )?;
        same(
            &f("registers.mrtd"),
            &r.mrtd,
            &self.image.mrtd,
            "image.mrtd",
        )?;
        if let Some(v) = &self.image.rtmr1 {
            same(&f("registers.rtmr1"), &r.rtmr1, v, "image.rtmr1")?;
        }
        if let Some(v) = &self.image.rtmr2 {
            same(&f("registers.rtmr2"), &r.rtmr2, v, "image.rtmr2")?;
        }
        if r.rtmr3 != rtmr3 {
            return Err(invalid(
                f("registers.rtmr3"),
                "must equal rtmr3.value when RTMR3 is pinned, and be null otherwise",
            ));
        }
        let (identity, cocoon) = shape_hashes(&self.td, r);
        if s.identity_sha384 != identity {
            return Err(invalid(
                f("identity_sha384"),
                "is not the identity hash of the shape's registers and td policy",
            ));
        }
        if s.cocoon_image_hash != cocoon {
            return Err(invalid(
                f("cocoon_image_hash"),
                "is not the COCOON image hash of the shape's registers",
            ));
        }
        Ok(())
    }
}
