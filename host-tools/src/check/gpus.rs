//! Per-GPU readiness: driver binding, IOMMU group isolation and confidential-computing mode.

use crate::gpu::cc_mode::{self, CcMode, CcQueryError};
use crate::pci::{self, GpuGroup, PciDevice};
use crate::report::CheckLine;
use crate::root::HostRoot;
use crate::runner::Runner;

/// All GPU lines; a host without an NVIDIA GPU fails.
pub fn gpus(root: &HostRoot, runner: &dyn Runner) -> Vec<CheckLine> {
    let gpus = match pci::nvidia_gpus(root) {
        Ok(g) => g,
        Err(e) => {
            return vec![CheckLine::unknown(
                "gpus",
                format!("cannot enumerate PCI devices: {e}"),
                "run on the host itself",
            )]
        }
    };
    if gpus.is_empty() {
        return vec![CheckLine::fail(
            "gpus",
            "no NVIDIA GPU (vendor 0x10de, class 0x0300xx/0x0302xx) in /sys/bus/pci/devices",
            "install a supported NVIDIA GPU (H100/H200/B200 for confidential computing)",
        )];
    }
    let mut lines = Vec::new();
    for gpu in &gpus {
        lines.push(driver_line(gpu));
        lines.push(group_line(root, gpu));
        lines.push(cc_line(runner, gpu));
    }
    lines
}

pub fn driver_line(gpu: &PciDevice) -> CheckLine {
    let id = format!("gpu {} driver", gpu.bdf);
    let fix = format!("`cocoon-host gpu bind {}`", gpu.bdf);
    match gpu.driver.as_deref() {
        Some("vfio-pci") => CheckLine::pass(id, "bound to vfio-pci"),
        Some(other) => CheckLine::fail(
            id,
            format!("bound to {other}; the VM needs it on vfio-pci"),
            fix,
        ),
        None => CheckLine::fail(id, "bound to no driver; the VM needs it on vfio-pci", fix),
    }
}

/// Describes the group: alone (with its own functions), or shared with which devices.
pub fn describe_group(group: &GpuGroup) -> (bool, String) {
    let foreign: Vec<String> = group
        .foreign()
        .map(|m| {
            format!(
                "{} ({}, driver {})",
                m.device.bdf,
                m.device.class_name(),
                m.device.driver.as_deref().unwrap_or("none")
            )
        })
        .collect();
    if !foreign.is_empty() {
        return (
            false,
            format!(
                "IOMMU group {} is shared with {}",
                group.group,
                foreign.join(", ")
            ),
        );
    }
    let siblings: Vec<String> = group
        .passthrough()
        .filter(|m| m.role == pci::MemberRole::SameDevice)
        .map(|m| m.device.bdf.to_string())
        .collect();
    let detail = if siblings.is_empty() {
        format!("IOMMU group {}, alone", group.group)
    } else {
        format!(
            "IOMMU group {}, alone with its own functions {}",
            group.group,
            siblings.join(", ")
        )
    };
    (true, detail)
}

pub fn group_line(root: &HostRoot, gpu: &PciDevice) -> CheckLine {
    let id = format!("gpu {} iommu-group", gpu.bdf);
    match pci::gpu_group(root, gpu) {
        Ok(None) => CheckLine::fail(
            id,
            "no IOMMU group",
            "enable VT-d in the BIOS and boot with `intel_iommu=on iommu=pt`",
        ),
        Ok(Some(group)) => match describe_group(&group) {
            (true, detail) => CheckLine::pass(id, detail),
            (false, detail) => CheckLine::fail(
                id,
                detail,
                "the whole group goes to the VM: move the GPU to a slot with its own group (or enable ACS in the BIOS)",
            ),
        },
        Err(e) => CheckLine::unknown(id, e.to_string(), "run as root"),
    }
}

pub fn cc_line(runner: &dyn Runner, gpu: &PciDevice) -> CheckLine {
    let id = format!("gpu {} cc-mode", gpu.bdf);
    let set_on = format!(
        "`{} --gpu-bdf={} --set-cc-mode=on --reset-after-cc-mode-switch`",
        cc_mode::GPU_TOOLS,
        gpu.bdf
    );
    match cc_mode::query(runner, gpu) {
        Ok(CcMode::On) => CheckLine::pass(id, "confidential computing mode on"),
        Ok(CcMode::Off) => CheckLine::fail(id, "confidential computing mode off", set_on),
        Ok(CcMode::Devtools) => CheckLine::fail(
            id,
            "confidential computing mode devtools (debug, not protected)",
            set_on,
        ),
        Err(CcQueryError::ToolMissing) => CheckLine::unknown(
            id,
            "cannot query CC mode: NVIDIA gpu-admin-tools not installed",
            format!(
                "install https://github.com/NVIDIA/gpu-admin-tools and put {} in PATH",
                cc_mode::GPU_TOOLS
            ),
        ),
        Err(e) => CheckLine::unknown(
            id,
            e.to_string(),
            "query it by hand with nvidia_gpu_tools.py --query-cc-mode",
        ),
    }
}
