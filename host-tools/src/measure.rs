//! `cocoon-host measure`: the registers a worker TD of one shape will report, computed by the
//! `cocoon-measure` library from the same [`BootSpec`] that `launch` turns into QEMU arguments.

use std::path::{Path, PathBuf};

use cocoon_measure::boot::{self, MeasureError};
use cocoon_measure::identity::{
    cocoon_image_hash, identity_hash, CocoonImageRegisters, TdIdentity,
};
use cocoon_measure::manifest::TdPolicy;
use cocoon_measure::rtmr3::{self, Rtmr3Event};
use cocoon_measure::{Digest384, Event};
use serde::Serialize;

use crate::boot::{BootSpec, VmShape};

/// Expected registers of one boot.
#[derive(Debug, Clone)]
pub struct Expected {
    pub shape: VmShape,
    pub mrtd: Digest384,
    /// `None` without the shape's ACPI blobs.
    pub rtmr0: Option<Digest384>,
    pub rtmr1: Digest384,
    pub rtmr2: Digest384,
    /// `None` unless an RTMR3 event list was given.
    pub rtmr3: Option<Digest384>,
    /// Identity hash v1 and COCOON's image hash: need RTMR0 and RTMR3.
    pub identity_sha384: Option<Digest384>,
    pub cocoon_image_hash: Option<[u8; 32]>,
    pub events: Vec<Event>,
}

/// Computes the registers of `spec` with the model of the QEMU `launch` targets.
pub fn expected(
    spec: &BootSpec,
    acpi_dir: Option<&Path>,
    rtmr3_events: Option<&[Rtmr3Event]>,
    td: &TdPolicy,
) -> Result<Expected, MeasureError> {
    let m = boot::compute(&spec.boot_inputs(acpi_dir), &BootSpec::compute_options())?;
    let rtmr3 = rtmr3_events.map(|e| rtmr3::replay(e).value());
    let (identity_sha384, cocoon_image_hash) = match (m.rtmr0, rtmr3) {
        (Some(r0), Some(r3)) => {
            let rtmr = [r0, m.rtmr1, m.rtmr2, r3];
            let id = identity_hash(&TdIdentity {
                mrtd: m.mrtd,
                rtmr,
                td_attributes: td.attributes,
                xfam: td.xfam,
            });
            let cocoon = cocoon_image_hash(&CocoonImageRegisters {
                mrtd: m.mrtd,
                mr_config_id: td.mr_config_id,
                mr_owner: td.mr_owner,
                mr_owner_config: td.mr_owner_config,
                rtmr,
            });
            (Some(id), Some(cocoon))
        }
        _ => (None, None),
    };
    Ok(Expected {
        shape: spec.shape,
        mrtd: m.mrtd,
        rtmr0: m.rtmr0,
        rtmr1: m.rtmr1,
        rtmr2: m.rtmr2,
        rtmr3,
        identity_sha384,
        cocoon_image_hash,
        events: m.events,
    })
}

/// `measure --json`: lowercase hex, `null` for what was not computed. A struct, so the key
/// order is fixed.
#[derive(Debug, Serialize)]
pub struct Report {
    pub shape_name: Option<String>,
    pub shape: ShapeJson,
    pub mrtd: String,
    pub rtmr0: Option<String>,
    pub rtmr1: String,
    pub rtmr2: String,
    pub rtmr3: Option<String>,
    pub identity_sha384: Option<String>,
    pub cocoon_image_hash: Option<String>,
    pub inputs: InputsJson,
}

#[derive(Debug, Serialize)]
pub struct ShapeJson {
    pub cpus: u32,
    pub memory_bytes: u64,
    pub gpus: u32,
}

#[derive(Debug, Serialize)]
pub struct InputsJson {
    pub firmware: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
    pub acpi_dir: Option<PathBuf>,
}

impl Report {
    pub fn new(
        e: &Expected,
        spec: &BootSpec,
        shape_name: Option<&str>,
        acpi_dir: Option<&Path>,
    ) -> Self {
        Report {
            shape_name: shape_name.map(str::to_string),
            shape: ShapeJson {
                cpus: e.shape.cpus(),
                memory_bytes: e.shape.memory_bytes(),
                gpus: e.shape.gpus(),
            },
            mrtd: hex::encode(e.mrtd),
            rtmr0: e.rtmr0.map(hex::encode),
            rtmr1: hex::encode(e.rtmr1),
            rtmr2: hex::encode(e.rtmr2),
            rtmr3: e.rtmr3.map(hex::encode),
            identity_sha384: e.identity_sha384.map(hex::encode),
            cocoon_image_hash: e.cocoon_image_hash.map(hex::encode),
            inputs: InputsJson {
                firmware: spec.firmware.clone(),
                kernel: spec.kernel.clone(),
                initrd: spec.initrd.clone(),
                cmdline: spec.cmdline().to_string(),
                acpi_dir: acpi_dir.map(Path::to_path_buf),
            },
        }
    }

    /// The human-readable form.
    pub fn to_text(&self) -> String {
        let missing = |v: &Option<String>, why: &str| {
            v.clone()
                .unwrap_or_else(|| format!("(not computed: {why})"))
        };
        let mut s = String::new();
        if let Some(n) = &self.shape_name {
            s.push_str(&format!("shape  {n}\n"));
        }
        s.push_str(&format!(
            "VM     {} vCPUs, {} bytes of memory, {} GPU(s)\n",
            self.shape.cpus, self.shape.memory_bytes, self.shape.gpus
        ));
        s.push_str(&format!("MRTD   {}\n", self.mrtd));
        s.push_str(&format!(
            "RTMR0  {}\n",
            missing(&self.rtmr0, "no --acpi-dir for this shape")
        ));
        s.push_str(&format!("RTMR1  {}\n", self.rtmr1));
        s.push_str(&format!("RTMR2  {}\n", self.rtmr2));
        s.push_str(&format!(
            "RTMR3  {}\n",
            missing(&self.rtmr3, "no --rtmr3-events")
        ));
        s.push_str(&format!(
            "identity (SHA-384, v1)  {}\n",
            missing(&self.identity_sha384, "needs RTMR0 and RTMR3")
        ));
        s.push_str(&format!(
            "COCOON image hash       {}\n",
            missing(&self.cocoon_image_hash, "needs RTMR0 and RTMR3")
        ));
        s
    }
}
