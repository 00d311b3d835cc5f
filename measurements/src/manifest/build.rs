//! Builds a manifest body from computed measurements.
//!
//! Takes [`BootMeasurements`] values (one per VM shape) rather than files, so it does not
//! depend on how they were computed; the CLI runs `boot::compute` for each shape.

use super::validate::{shape_hashes, valid_name};
use super::{
    AcpiBlob, ImageStatic, ManifestBody, ManifestError, Registers, Rtmr3Pin, ShapeEntry, TdPolicy,
    FORMAT_V1,
};
use crate::boot::{BootMeasurements, VmShape};
use crate::eventlog::ExpectedEvent;
use crate::register::Digest384;
use crate::rtmr3::{self, PublishedEvent, Rtmr3Event};

/// What identifies the release.
#[derive(Debug, Clone)]
pub struct ReleaseInfo {
    pub release: String,
    /// The source commit (lowercase hex).
    pub commit: String,
    pub td: TdPolicy,
}

/// Digests of the release files and the command line.
#[derive(Debug, Clone)]
pub struct ImageFiles {
    pub firmware_sha256: [u8; 32],
    pub kernel_sha256: [u8; 32],
    pub initrd_sha256: Option<[u8; 32]>,
    pub cmdline: String,
}

/// One VM shape with the measurements computed for it.
#[derive(Debug, Clone)]
pub struct ShapeBuild {
    pub name: String,
    pub shape: VmShape,
    pub acpi: Vec<AcpiBlob>,
    pub measurements: BootMeasurements,
}

/// The common value of `f` over all shapes, or `None` when two shapes differ.
fn common(shapes: &[ShapeBuild], f: impl Fn(&BootMeasurements) -> Digest384) -> Option<Digest384> {
    let first = f(&shapes.first()?.measurements);
    shapes
        .iter()
        .all(|s| f(&s.measurements) == first)
        .then_some(first)
}

/// Builds and validates the body. Fails when shapes disagree on MRTD (which depends only on the
/// firmware), when a shape has no RTMR0 (no ACPI tables given), or when the result is
/// inconsistent. RTMR1/RTMR2 are recorded as image-static when all shapes agree on them.
pub fn build(
    release: ReleaseInfo,
    image: ImageFiles,
    shapes: Vec<ShapeBuild>,
    rtmr3_events: Option<Vec<Rtmr3Event>>,
) -> Result<ManifestBody, ManifestError> {
    let first = shapes
        .first()
        .ok_or_else(|| ManifestError::Build("no VM shape given".into()))?;
    let mrtd = first.measurements.mrtd;
    if let Some(s) = shapes.iter().find(|s| s.measurements.mrtd != mrtd) {
        return Err(ManifestError::Build(format!(
            "MRTD of shape {} ({}) differs from shape {} ({}): it should depend only on the firmware",
            s.name,
            hex::encode(s.measurements.mrtd),
            first.name,
            hex::encode(mrtd)
        )));
    }
    let image = ImageStatic {
        mrtd,
        rtmr1: common(&shapes, |m| m.rtmr1),
        rtmr2: common(&shapes, |m| m.rtmr2),
        firmware_sha256: image.firmware_sha256,
        kernel_sha256: image.kernel_sha256,
        initrd_sha256: image.initrd_sha256,
        cmdline: image.cmdline,
    };
    let rtmr3 = rtmr3_events.map(|events| Rtmr3Pin {
        value: rtmr3::replay(&events).value(),
        events: events.iter().map(PublishedEvent::from).collect(),
    });

    let mut entries = Vec::with_capacity(shapes.len());
    for s in &shapes {
        if !valid_name(&s.name) {
            return Err(ManifestError::Build(format!(
                "shape name {:?} is not 1..=64 of [A-Za-z0-9._-]",
                s.name
            )));
        }
        let m = &s.measurements;
        let rtmr0 = m.rtmr0.ok_or_else(|| {
            ManifestError::Build(format!(
                "shape {}: RTMR0 was not computed (give the shape's ACPI tables)",
                s.name
            ))
        })?;
        let registers = Registers {
            mrtd,
            rtmr0,
            rtmr1: m.rtmr1,
            rtmr2: m.rtmr2,
            rtmr3: rtmr3.as_ref().map(|p| p.value),
        };
        let (identity_sha384, cocoon_image_hash) = shape_hashes(&release.td, &registers);
        entries.push(ShapeEntry {
            name: s.name.clone(),
            cpus: s.shape.cpus,
            memory_bytes: s.shape.memory_bytes,
            gpus: s.shape.gpus,
            acpi: s.acpi.clone(),
            events: m.events.iter().map(ExpectedEvent::from).collect(),
            registers,
            identity_sha384,
            cocoon_image_hash,
        });
    }
    let body = ManifestBody {
        format: FORMAT_V1.to_string(),
        release: release.release,
        commit: release.commit,
        td: release.td,
        image,
        rtmr3,
        shapes: entries,
    };
    body.validate()?;
    Ok(body)
}
