//! PCI devices as sysfs shows them: `/sys/bus/pci/devices/BDF/{vendor,device,class,driver,
//! iommu_group,driver_override}` and `/sys/kernel/iommu_groups/N/devices/`.

use std::fmt;
use std::str::FromStr;

use crate::root::{HostRoot, RootError};

pub const NVIDIA_VENDOR: u16 = 0x10de;
pub const PCI_DEVICES: &str = "/sys/bus/pci/devices";

/// A PCI address, normalised to lower-case `dddd:bb:dd.f`.
///
/// Invariant: only hex digits in the fixed layout, so it is safe to splice into sysfs paths.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf(String);

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a PCI address; expected DDDD:BB:DD.F (e.g. 0000:17:00.0) or BB:DD.F")]
pub struct BdfParseError(String);

impl FromStr for Bdf {
    type Err = BdfParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || BdfParseError(s.to_string());
        let full = if s.len() == 7 {
            format!("0000:{s}")
        } else {
            s.to_string()
        };
        let lower = full.to_ascii_lowercase();
        let b = lower.as_bytes();
        if b.len() != 12 || b.get(4) != Some(&b':') || b.get(7) != Some(&b':') {
            return Err(err());
        }
        if b.get(10) != Some(&b'.') {
            return Err(err());
        }
        let hex_ok = [0, 1, 2, 3, 5, 6, 8, 9]
            .iter()
            .all(|&i| b.get(i).is_some_and(|c| c.is_ascii_hexdigit()));
        let func_ok = b.get(11).is_some_and(|c| (b'0'..=b'7').contains(c));
        let dev_ok =
            u8::from_str_radix(lower.get(8..10).ok_or_else(err)?, 16).is_ok_and(|d| d < 32);
        if !(hex_ok && func_ok && dev_ok) {
            return Err(err());
        }
        Ok(Bdf(lower))
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Bdf {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// `dddd:bb:dd`: all functions of one physical device share it.
    pub fn slot(&self) -> &str {
        self.0.get(..10).unwrap_or(&self.0)
    }
    pub fn sysfs_dir(&self) -> String {
        format!("{PCI_DEVICES}/{}", self.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PciError {
    #[error("no PCI device {0} (no {PCI_DEVICES}/{0})")]
    Unknown(Bdf),
    #[error("PCI device {bdf}: reading {field}: {source}")]
    Read {
        bdf: Bdf,
        field: &'static str,
        #[source]
        source: RootError,
    },
    #[error("PCI device {bdf}: {field} is {value:?}, not a hex number")]
    Parse {
        bdf: Bdf,
        field: &'static str,
        value: String,
    },
    #[error("listing {what}: {source}")]
    List {
        what: String,
        #[source]
        source: RootError,
    },
}

/// One PCI function as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciDevice {
    pub bdf: Bdf,
    pub vendor: u16,
    pub device: u16,
    /// 24-bit class code: base class, subclass, prog-if.
    pub class: u32,
    pub driver: Option<String>,
    pub iommu_group: Option<String>,
    pub driver_override: Option<String>,
}

impl PciDevice {
    /// Display (0x0300xx) or 3D (0x0302xx) controller made by NVIDIA.
    pub fn is_nvidia_gpu(&self) -> bool {
        self.vendor == NVIDIA_VENDOR && matches!(self.class >> 8, 0x0300 | 0x0302)
    }
    pub fn is_bridge(&self) -> bool {
        self.class >> 8 == 0x0604
    }
    /// A short human name for the class (for messages).
    pub fn class_name(&self) -> &'static str {
        match self.class >> 16 {
            0x01 => "storage controller",
            0x02 => "network controller",
            0x03 => "display controller",
            0x04 => "multimedia controller",
            0x06 => "bridge",
            0x0c => "serial bus controller",
            _ => "device",
        }
    }
}

fn parse_hex(bdf: &Bdf, field: &'static str, value: &str) -> Result<u32, PciError> {
    let v = value.trim();
    let digits = v.strip_prefix("0x").unwrap_or(v);
    u32::from_str_radix(digits, 16).map_err(|_| PciError::Parse {
        bdf: bdf.clone(),
        field,
        value: v.to_string(),
    })
}

/// Reads one device; a missing device directory is [`PciError::Unknown`].
pub fn read_device(root: &HostRoot, bdf: &Bdf) -> Result<PciDevice, PciError> {
    let dir = bdf.sysfs_dir();
    if !root.exists(&dir) {
        return Err(PciError::Unknown(bdf.clone()));
    }
    let read = |field: &'static str| {
        root.read_trimmed(&format!("{dir}/{field}"))
            .map_err(|source| PciError::Read {
                bdf: bdf.clone(),
                field,
                source,
            })
    };
    let vendor = parse_hex(bdf, "vendor", &read("vendor")?)?;
    let device = parse_hex(bdf, "device", &read("device")?)?;
    let class = parse_hex(bdf, "class", &read("class")?)?;
    let (Ok(vendor), Ok(device)) = (u16::try_from(vendor), u16::try_from(device)) else {
        return Err(PciError::Parse {
            bdf: bdf.clone(),
            field: "vendor/device",
            value: format!("{vendor:#x}/{device:#x}"),
        });
    };
    let driver = root.link_name(&format!("{dir}/driver")).ok();
    let iommu_group = root.link_name(&format!("{dir}/iommu_group")).ok();
    let driver_override = root
        .read_trimmed(&format!("{dir}/driver_override"))
        .ok()
        .filter(|s| !s.is_empty() && s != "(null)");
    Ok(PciDevice {
        bdf: bdf.clone(),
        vendor,
        device,
        class: class & 0x00ff_ffff,
        driver,
        iommu_group,
        driver_override,
    })
}

/// All PCI addresses present, sorted. Entries that are not addresses are skipped.
pub fn list_addresses(root: &HostRoot) -> Result<Vec<Bdf>, PciError> {
    let names = root
        .list_dir(PCI_DEVICES)
        .map_err(|source| PciError::List {
            what: PCI_DEVICES.to_string(),
            source,
        })?;
    Ok(names.iter().filter_map(|n| n.parse().ok()).collect())
}

/// All NVIDIA GPUs, sorted by address.
pub fn nvidia_gpus(root: &HostRoot) -> Result<Vec<PciDevice>, PciError> {
    let mut out = Vec::new();
    for bdf in list_addresses(root)? {
        let dev = read_device(root, &bdf)?;
        if dev.is_nvidia_gpu() {
            out.push(dev);
        }
    }
    Ok(out)
}

/// Addresses of the members of an IOMMU group.
pub fn group_members(root: &HostRoot, group: &str) -> Result<Vec<Bdf>, PciError> {
    let dir = format!("/sys/kernel/iommu_groups/{group}/devices");
    let names = root.list_dir(&dir).map_err(|source| PciError::List {
        what: dir.clone(),
        source,
    })?;
    Ok(names.iter().filter_map(|n| n.parse().ok()).collect())
}

/// How a group member relates to the GPU whose group it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemberRole {
    /// The GPU itself.
    Gpu,
    /// Another function of the same physical device (e.g. its HDMI audio): passed through too.
    SameDevice,
    /// A PCI bridge: stays with the host (vfio accepts bridges in a group).
    Bridge,
    /// Anything else: the group cannot be handed to a VM without it.
    Foreign,
}

impl MemberRole {
    pub fn label(self) -> &'static str {
        match self {
            MemberRole::Gpu => "gpu",
            MemberRole::SameDevice => "same-device",
            MemberRole::Bridge => "bridge",
            MemberRole::Foreign => "foreign",
        }
    }
}

/// One member of a GPU's IOMMU group.
#[derive(Debug, Clone)]
pub struct GroupMember {
    pub device: PciDevice,
    pub role: MemberRole,
}

/// The GPU's IOMMU group with every member classified.
#[derive(Debug, Clone)]
pub struct GpuGroup {
    pub group: String,
    pub members: Vec<GroupMember>,
}

impl GpuGroup {
    pub fn foreign(&self) -> impl Iterator<Item = &GroupMember> {
        self.members
            .iter()
            .filter(|m| m.role == MemberRole::Foreign)
    }
    /// The members that go to the VM together: the GPU and its sibling functions.
    pub fn passthrough(&self) -> impl Iterator<Item = &GroupMember> {
        self.members
            .iter()
            .filter(|m| matches!(m.role, MemberRole::Gpu | MemberRole::SameDevice))
    }
}

/// Reads and classifies the IOMMU group of `gpu`; `None` when it has no group (no IOMMU).
pub fn gpu_group(root: &HostRoot, gpu: &PciDevice) -> Result<Option<GpuGroup>, PciError> {
    let Some(group) = gpu.iommu_group.clone() else {
        return Ok(None);
    };
    let mut members = Vec::new();
    for bdf in group_members(root, &group)? {
        let device = read_device(root, &bdf)?;
        let role = if bdf == gpu.bdf {
            MemberRole::Gpu
        } else if bdf.slot() == gpu.bdf.slot() {
            MemberRole::SameDevice
        } else if device.is_bridge() {
            MemberRole::Bridge
        } else {
            MemberRole::Foreign
        };
        members.push(GroupMember { device, role });
    }
    Ok(Some(GpuGroup { group, members }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bdf_parsing() {
        assert_eq!(
            "0000:17:00.0".parse::<Bdf>().unwrap().as_str(),
            "0000:17:00.0"
        );
        assert_eq!("17:00.1".parse::<Bdf>().unwrap().as_str(), "0000:17:00.1");
        assert_eq!("0000:AB:1f.7".parse::<Bdf>().unwrap().slot(), "0000:ab:1f");
        for bad in [
            "",
            "0000:17:00",
            "0000:17:00.8",
            "0000:17:20.0",
            "0000:17:00.0/../x",
            "zzzz:17:00.0",
            "0000-17-00.0",
            "00000:17:00.0",
            "é0000:17:00",
        ] {
            assert!(bad.parse::<Bdf>().is_err(), "{bad:?} accepted");
        }
    }
}
