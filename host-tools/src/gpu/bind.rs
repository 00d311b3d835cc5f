//! Handing a GPU (with the other functions of its device) to vfio-pci and back.
//!
//! Bind, per function not yet on vfio-pci: record the current driver, write `vfio-pci` to
//! `driver_override`, write the address to the old driver's `unbind`, then to
//! `/sys/bus/pci/drivers_probe`; finally re-read `driver` and require `vfio-pci`.
//! Unbind reverses it from the record: clear `driver_override`, unbind from vfio-pci, bind the
//! recorded driver, verify, delete the record.
//!
//! Refusals happen before the first write: unknown address, not an NVIDIA GPU, no IOMMU group,
//! a group shared with a device that is not a function of the GPU (or a bridge), the host
//! console on the GPU, or a driver whose module references show open users.

use std::path::Path;

use crate::check::gpus::describe_group;
use crate::gpu::state::{self, BindRecord, DeviceRecord, StateError};
use crate::gpu::sysfs::{SysfsWriteError, SysfsWriter};
use crate::pci::{self, Bdf, GpuGroup, PciDevice, PciError};
use crate::root::HostRoot;

pub const VFIO_PCI: &str = "vfio-pci";

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(transparent)]
    Pci(#[from] PciError),
    #[error("{bdf} is not an NVIDIA GPU (vendor {vendor:#06x}, class {class:#08x}); refusing to touch it")]
    NotGpu { bdf: Bdf, vendor: u16, class: u32 },
    #[error(
        "{0} has no IOMMU group: enable VT-d in the BIOS and boot with `intel_iommu=on iommu=pt`"
    )]
    NoGroup(Bdf),
    #[error("refusing {bdf}: {detail}; the whole group would have to go to the VM. Move the GPU to a slot with its own IOMMU group")]
    SharedGroup { bdf: Bdf, detail: String },
    #[error("refusing {bdf}: it is in use: {reason}")]
    InUse { bdf: Bdf, reason: String },
    #[error(
        "the vfio-pci driver is not loaded (no /sys/bus/pci/drivers/vfio-pci): `modprobe vfio-pci`"
    )]
    NoVfio,
    #[error("driver {driver} is not loaded (no /sys/bus/pci/drivers/{driver}): `modprobe {driver}` and run unbind again")]
    DriverMissing { driver: String },
    #[error("no bind record for {0}: it was not bound by `cocoon-host gpu bind` (or the record under the state dir was lost)")]
    NoRecord(Bdf),
    #[error("{bdf} is bound to {actual}, not {expected}; not touching it")]
    Unexpected {
        bdf: Bdf,
        expected: String,
        actual: String,
    },
    #[error("{bdf}: after the writes it is bound to {actual}, not {expected}: the {action} did not take effect (see `dmesg`)")]
    NotTakenEffect {
        bdf: Bdf,
        action: &'static str,
        expected: String,
        actual: String,
    },
    #[error(transparent)]
    Write(#[from] SysfsWriteError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("corrupt bind record: {0}")]
    BadRecord(String),
}

impl GpuError {
    /// Bad input from the caller (as opposed to a refusal or a failure).
    pub fn is_usage(&self) -> bool {
        matches!(self, GpuError::Pci(PciError::Unknown(_)))
    }
}

fn driver_name(d: &Option<String>) -> String {
    d.clone().unwrap_or_else(|| "no driver".to_string())
}

/// Reads `bdf`, requires an NVIDIA GPU with an IOMMU group of its own.
pub fn inspect(root: &HostRoot, bdf: &Bdf) -> Result<(PciDevice, GpuGroup), GpuError> {
    let gpu = pci::read_device(root, bdf)?;
    if !gpu.is_nvidia_gpu() {
        return Err(GpuError::NotGpu {
            bdf: bdf.clone(),
            vendor: gpu.vendor,
            class: gpu.class,
        });
    }
    let group = pci::gpu_group(root, &gpu)?.ok_or_else(|| GpuError::NoGroup(bdf.clone()))?;
    let (alone, detail) = describe_group(&group);
    if !alone {
        return Err(GpuError::SharedGroup {
            bdf: bdf.clone(),
            detail,
        });
    }
    Ok((gpu, group))
}

/// References to a module beyond the modules that depend on it (`holders/`): open device files.
/// `None` when sysfs does not show it.
fn open_references(root: &HostRoot, module: &str) -> Option<u64> {
    let refcnt: u64 = root
        .read_trimmed(&format!("/sys/module/{module}/refcnt"))
        .ok()?
        .parse()
        .ok()?;
    let holders = root
        .list_dir(&format!("/sys/module/{module}/holders"))
        .map(|h| h.len() as u64)
        .unwrap_or(0);
    Some(refcnt.saturating_sub(holders))
}

fn module_of(driver: &str) -> String {
    driver.replace('-', "_")
}

/// Refuses when the device's current driver shows open users, or the host console is on it.
fn refuse_if_in_use(root: &HostRoot, dev: &PciDevice) -> Result<(), GpuError> {
    let in_use = |reason: String| GpuError::InUse {
        bdf: dev.bdf.clone(),
        reason,
    };
    if root
        .read_trimmed(&format!("{}/boot_vga", dev.bdf.sysfs_dir()))
        .is_ok_and(|v| v == "1")
        && dev.driver.is_some()
    {
        return Err(in_use(
            "it is the boot VGA device and drives the host console".to_string(),
        ));
    }
    let Some(driver) = dev.driver.as_deref() else {
        return Ok(());
    };
    if driver == "nvidia" || driver == "nouveau" {
        let module = module_of(driver);
        match open_references(root, &module) {
            Some(0) => Ok(()),
            Some(n) => Err(in_use(format!(
                "/sys/module/{module}/refcnt shows {n} reference(s) beyond its dependent modules: \
                 a process has /dev/nvidia* open (stop nvidia-persistenced, CUDA jobs, display servers)"
            ))),
            None => Err(in_use(format!(
                "cannot read /sys/module/{module}/refcnt, so cannot tell whether it is in use"
            ))),
        }
    } else {
        Ok(())
    }
}

/// What `bind` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BindOutcome {
    pub gpu: String,
    pub iommu_group: String,
    /// (address, previous driver) of every function moved to vfio-pci by this call.
    pub moved: Vec<DeviceRecord>,
    /// Functions that were already on vfio-pci.
    pub already: Vec<String>,
}

/// Binds the GPU and its sibling functions to vfio-pci.
pub fn bind(
    root: &HostRoot,
    sysfs: &mut dyn SysfsWriter,
    state_dir: &Path,
    bdf: &Bdf,
) -> Result<BindOutcome, GpuError> {
    let (_gpu, group) = inspect(root, bdf)?;
    if !root.exists("/sys/bus/pci/drivers/vfio-pci") {
        return Err(GpuError::NoVfio);
    }
    let members: Vec<PciDevice> = group.passthrough().map(|m| m.device.clone()).collect();
    for dev in &members {
        if dev.driver.as_deref() != Some(VFIO_PCI) {
            refuse_if_in_use(root, dev)?;
        }
    }
    // Keep the oldest record: a second bind must not overwrite the original drivers.
    let record = match state::load(state_dir, bdf.as_str())? {
        Some(rec) => rec,
        None => BindRecord {
            gpu: bdf.to_string(),
            iommu_group: group.group.clone(),
            devices: members
                .iter()
                .map(|d| DeviceRecord {
                    bdf: d.bdf.to_string(),
                    driver: d.driver.clone(),
                })
                .collect(),
        },
    };
    state::save(state_dir, &record)?;

    let mut moved = Vec::new();
    let mut already = Vec::new();
    for dev in &members {
        let addr = dev.bdf.as_str();
        if dev.driver.as_deref() == Some(VFIO_PCI) {
            already.push(addr.to_string());
            continue;
        }
        sysfs.write(
            &format!("{}/driver_override", dev.bdf.sysfs_dir()),
            VFIO_PCI,
        )?;
        if let Some(old) = &dev.driver {
            sysfs.write(&format!("/sys/bus/pci/drivers/{old}/unbind"), addr)?;
        }
        sysfs.write("/sys/bus/pci/drivers_probe", addr)?;
        moved.push(DeviceRecord {
            bdf: addr.to_string(),
            driver: dev.driver.clone(),
        });
    }
    for dev in &members {
        let now = pci::read_device(root, &dev.bdf)?;
        if now.driver.as_deref() != Some(VFIO_PCI) {
            return Err(GpuError::NotTakenEffect {
                bdf: dev.bdf.clone(),
                action: "bind to vfio-pci",
                expected: VFIO_PCI.to_string(),
                actual: driver_name(&now.driver),
            });
        }
    }
    Ok(BindOutcome {
        gpu: bdf.to_string(),
        iommu_group: group.group,
        moved,
        already,
    })
}

/// What `unbind` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UnbindOutcome {
    pub gpu: String,
    /// Every function and the driver it is on now.
    pub restored: Vec<DeviceRecord>,
}

/// Returns the GPU's group to the drivers recorded by `bind`.
pub fn unbind(
    root: &HostRoot,
    sysfs: &mut dyn SysfsWriter,
    state_dir: &Path,
    bdf: &Bdf,
) -> Result<UnbindOutcome, GpuError> {
    let gpu = pci::read_device(root, bdf)?;
    if !gpu.is_nvidia_gpu() {
        return Err(GpuError::NotGpu {
            bdf: bdf.clone(),
            vendor: gpu.vendor,
            class: gpu.class,
        });
    }
    let record =
        state::load(state_dir, bdf.as_str())?.ok_or_else(|| GpuError::NoRecord(bdf.clone()))?;
    let mut devices = Vec::new();
    for d in &record.devices {
        let addr: Bdf = d
            .bdf
            .parse()
            .map_err(|e: pci::BdfParseError| GpuError::BadRecord(e.to_string()))?;
        if let Some(drv) = &d.driver {
            if drv.is_empty() || drv.contains('/') || drv.contains("..") {
                return Err(GpuError::BadRecord(format!("driver name {drv:?}")));
            }
        }
        devices.push((pci::read_device(root, &addr)?, d.driver.clone()));
    }
    if devices
        .iter()
        .any(|(dev, _)| dev.driver.as_deref() == Some(VFIO_PCI))
    {
        match open_references(root, "vfio_pci") {
            Some(0) | None => {}
            Some(n) => {
                return Err(GpuError::InUse {
                    bdf: bdf.clone(),
                    reason: format!(
                        "/sys/module/vfio_pci/refcnt shows {n} open reference(s): a VM holds a vfio device; stop it first"
                    ),
                })
            }
        }
    }
    for (dev, prev) in &devices {
        if dev.driver == *prev {
            continue;
        }
        if dev.driver.as_deref() != Some(VFIO_PCI) {
            return Err(GpuError::Unexpected {
                bdf: dev.bdf.clone(),
                expected: VFIO_PCI.to_string(),
                actual: driver_name(&dev.driver),
            });
        }
        if let Some(p) = prev {
            if !root.exists(&format!("/sys/bus/pci/drivers/{p}")) {
                return Err(GpuError::DriverMissing { driver: p.clone() });
            }
        }
    }
    for (dev, prev) in &devices {
        let addr = dev.bdf.as_str();
        if dev.driver == *prev {
            continue;
        }
        sysfs.write(&format!("{}/driver_override", dev.bdf.sysfs_dir()), "\n")?;
        sysfs.write(&format!("/sys/bus/pci/drivers/{VFIO_PCI}/unbind"), addr)?;
        if let Some(p) = prev {
            sysfs.write(&format!("/sys/bus/pci/drivers/{p}/bind"), addr)?;
        }
    }
    let mut restored = Vec::new();
    for (dev, prev) in &devices {
        let now = pci::read_device(root, &dev.bdf)?;
        if now.driver != *prev {
            return Err(GpuError::NotTakenEffect {
                bdf: dev.bdf.clone(),
                action: "restore",
                expected: driver_name(prev),
                actual: driver_name(&now.driver),
            });
        }
        restored.push(DeviceRecord {
            bdf: dev.bdf.to_string(),
            driver: now.driver,
        });
    }
    state::remove(state_dir, bdf.as_str())?;
    Ok(UnbindOutcome {
        gpu: bdf.to_string(),
        restored,
    })
}
