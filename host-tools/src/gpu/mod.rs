//! `cocoon-host gpu`: list NVIDIA GPUs, show one, hand one to vfio-pci and back.

pub mod bind;
pub mod cc_mode;
pub mod state;
pub mod sysfs;

use std::path::Path;

use serde::Serialize;

use crate::check::gpus::describe_group;
use crate::pci::{self, Bdf, MemberRole, PciDevice};
use crate::root::HostRoot;
use bind::GpuError;

#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    pub bdf: String,
    pub role: MemberRole,
    pub class: String,
    pub driver: Option<String>,
}

/// What `gpu list` and `gpu status` show about one GPU.
#[derive(Debug, Clone, Serialize)]
pub struct GpuView {
    pub bdf: String,
    pub id: String,
    pub driver: Option<String>,
    pub driver_override: Option<String>,
    pub iommu_group: Option<String>,
    /// True when the group holds only the GPU, its own functions and bridges.
    pub group_ok: bool,
    pub group_detail: String,
    pub members: Vec<MemberView>,
    /// The drivers recorded by `gpu bind`, when it bound this GPU.
    pub bind_record: Option<state::BindRecord>,
}

impl GpuView {
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{}  [{}]  driver {}  {}",
            self.bdf,
            self.id,
            self.driver.as_deref().unwrap_or("none"),
            self.group_detail
        );
        if let Some(o) = &self.driver_override {
            s.push_str(&format!("  (driver_override {o})"));
        }
        s
    }
}

fn view(root: &HostRoot, state_dir: &Path, gpu: &PciDevice) -> Result<GpuView, GpuError> {
    let group = pci::gpu_group(root, gpu)?;
    let (group_ok, group_detail, members) = match &group {
        None => (false, "no IOMMU group".to_string(), Vec::new()),
        Some(g) => {
            let (ok, detail) = describe_group(g);
            let members = g
                .members
                .iter()
                .map(|m| MemberView {
                    bdf: m.device.bdf.to_string(),
                    role: m.role,
                    class: format!("{:#08x} {}", m.device.class, m.device.class_name()),
                    driver: m.device.driver.clone(),
                })
                .collect();
            (ok, detail, members)
        }
    };
    Ok(GpuView {
        bdf: gpu.bdf.to_string(),
        id: format!("{:04x}:{:04x}", gpu.vendor, gpu.device),
        driver: gpu.driver.clone(),
        driver_override: gpu.driver_override.clone(),
        iommu_group: gpu.iommu_group.clone(),
        group_ok,
        group_detail,
        members,
        bind_record: state::load(state_dir, gpu.bdf.as_str())?,
    })
}

/// All NVIDIA GPUs.
pub fn list(root: &HostRoot, state_dir: &Path) -> Result<Vec<GpuView>, GpuError> {
    pci::nvidia_gpus(root)?
        .iter()
        .map(|g| view(root, state_dir, g))
        .collect()
}

/// One GPU; refuses an unknown address or a device that is not an NVIDIA GPU.
pub fn status(root: &HostRoot, state_dir: &Path, bdf: &Bdf) -> Result<GpuView, GpuError> {
    let gpu = pci::read_device(root, bdf)?;
    if !gpu.is_nvidia_gpu() {
        return Err(GpuError::NotGpu {
            bdf: bdf.clone(),
            vendor: gpu.vendor,
            class: gpu.class,
        });
    }
    view(root, state_dir, &gpu)
}
