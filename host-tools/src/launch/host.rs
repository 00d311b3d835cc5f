//! What the host offers the VM, decided once from the host root and handed to
//! [`super::argv::build`] as an explicit input: the accelerator and whether the
//! `vhost-vsock-pci` device can be created.
//!
//! Rules: a TD ([`Mode::Tdx`]) always runs on KVM and needs `/dev/vhost-vsock` (QGS on vsock,
//! `status`, `logs`). A simulated TD uses KVM when it is usable (`/dev/kvm` exists and cpuinfo
//! has `vmx` or `svm`), otherwise TCG; without `/dev/vhost-vsock` it runs without the vsock
//! device.

use super::argv::Mode;
use crate::root::HostRoot;

/// The QEMU accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// `-accel kvm -cpu host`.
    Kvm,
    /// `-accel tcg -cpu max`: emulated, slow; development hosts without virtualisation only.
    Tcg,
}

impl Accel {
    /// QEMU's name for it (`-accel NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// What the host has, as read from its root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostProbe {
    /// `/dev/kvm` exists and the CPU has `vmx` or `svm`.
    pub kvm_usable: bool,
    /// `/dev/vhost-vsock` exists.
    pub vhost_vsock: bool,
}

/// The host-dependent part of the argv.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostDevices {
    pub accel: Accel,
    /// Whether the argv has the `vhost-vsock-pci` device.
    pub vsock: bool,
}

impl HostDevices {
    /// A production worker host: KVM and vsock.
    pub const FULL: HostDevices = HostDevices {
        accel: Accel::Kvm,
        vsock: true,
    };
}

/// Whether cpuinfo's flags name hardware virtualisation (`vmx` or `svm`).
fn has_virt_flag(cpuinfo: &str) -> bool {
    crate::check::cpu::cpu_flags(cpuinfo)
        .iter()
        .any(|f| *f == "vmx" || *f == "svm")
}

/// Reads `/dev/kvm`, `/proc/cpuinfo` and `/dev/vhost-vsock` below `root`.
pub fn probe(root: &HostRoot) -> HostProbe {
    let cpu_virt = root
        .read("/proc/cpuinfo")
        .map(|c| has_virt_flag(&c))
        .unwrap_or(false);
    HostProbe {
        kvm_usable: root.exists("/dev/kvm") && cpu_virt,
        vhost_vsock: root.exists("/dev/vhost-vsock"),
    }
}

/// Why a TD cannot run on this host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("/dev/vhost-vsock is missing: a TD needs it (quote generation over vsock, `cocoon-host status`/`logs`); run `modprobe vhost_vsock`")]
    NoVhostVsock,
}

/// The devices for `mode` on a host like `probe`, with the warnings to print. A TD needs
/// vhost-vsock; the error is returned next to the (full) devices so `--print` can show the
/// argv and warn instead.
pub fn plan(mode: Mode, probe: HostProbe) -> (HostDevices, Vec<String>, Option<HostError>) {
    match mode {
        Mode::Tdx => {
            let err = (!probe.vhost_vsock).then_some(HostError::NoVhostVsock);
            (HostDevices::FULL, Vec::new(), err)
        }
        Mode::SimulatedTd => {
            let mut warnings = Vec::new();
            let accel = if probe.kvm_usable {
                Accel::Kvm
            } else {
                warnings.push(
                    "KVM is not usable here (no /dev/kvm, or no vmx/svm CPU flag): the VM runs \
                     EMULATED with TCG (-accel tcg -cpu max), many times slower"
                        .to_string(),
                );
                Accel::Tcg
            };
            if !probe.vhost_vsock {
                warnings.push(
                    "/dev/vhost-vsock is missing: the VM has no vsock device, so `cocoon-host \
                     status` and `logs` will not work for this instance (`modprobe vhost_vsock` \
                     adds it)"
                        .to_string(),
                );
            }
            (
                HostDevices {
                    accel,
                    vsock: probe.vhost_vsock,
                },
                warnings,
                None,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn root(cpuinfo: Option<&str>, kvm: bool, vsock: bool) -> (tempfile::TempDir, HostRoot) {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("dev")).unwrap();
        fs::create_dir_all(d.path().join("proc")).unwrap();
        if let Some(c) = cpuinfo {
            fs::write(d.path().join("proc/cpuinfo"), c).unwrap();
        }
        if kvm {
            fs::write(d.path().join("dev/kvm"), "").unwrap();
        }
        if vsock {
            fs::write(d.path().join("dev/vhost-vsock"), "").unwrap();
        }
        let r = HostRoot::new(d.path());
        (d, r)
    }

    const VMX: &str = "processor\t: 0\nflags\t\t: fpu vme vmx sse\n\nprocessor\t: 1\nflags\t\t: fpu vme vmx sse\n";
    const SVM: &str = "processor\t: 0\nflags\t\t: fpu svm\n";
    const NONE: &str = "processor\t: 0\nflags\t\t: fpu vme sse vmxx hypervisor\n";

    #[test]
    fn kvm_needs_the_device_and_a_virtualisation_flag() {
        for (cpuinfo, kvm, usable) in [
            (Some(VMX), true, true),
            (Some(SVM), true, true),
            (Some(VMX), false, false),
            (Some(NONE), true, false),
            (None, true, false),
        ] {
            let (_d, r) = root(cpuinfo, kvm, false);
            assert_eq!(probe(&r).kvm_usable, usable, "{cpuinfo:?} kvm={kvm}");
        }
        let (_d, r) = root(Some(VMX), true, true);
        assert_eq!(
            probe(&r),
            HostProbe {
                kvm_usable: true,
                vhost_vsock: true
            }
        );
    }

    #[test]
    fn simulated_td_falls_back_to_tcg_and_no_vsock() {
        let full = HostProbe {
            kvm_usable: true,
            vhost_vsock: true,
        };
        assert_eq!(
            plan(Mode::SimulatedTd, full),
            (HostDevices::FULL, Vec::new(), None)
        );
        let bare = HostProbe {
            kvm_usable: false,
            vhost_vsock: false,
        };
        let (dev, warnings, err) = plan(Mode::SimulatedTd, bare);
        assert_eq!(
            dev,
            HostDevices {
                accel: Accel::Tcg,
                vsock: false
            }
        );
        assert!(err.is_none());
        assert_eq!(warnings.len(), 2);
        assert!(warnings[0].contains("EMULATED"));
        assert!(warnings[1].contains("`cocoon-host status` and `logs` will not work"));
    }

    #[test]
    fn a_td_always_uses_kvm_and_needs_vsock() {
        let bare = HostProbe {
            kvm_usable: false,
            vhost_vsock: false,
        };
        let (dev, warnings, err) = plan(Mode::Tdx, bare);
        assert_eq!(dev, HostDevices::FULL);
        assert!(warnings.is_empty());
        assert_eq!(err, Some(HostError::NoVhostVsock));
        assert!(HostError::NoVhostVsock
            .to_string()
            .contains("modprobe vhost_vsock"));
        let (_, _, err) = plan(
            Mode::Tdx,
            HostProbe {
                kvm_usable: false,
                vhost_vsock: true,
            },
        );
        assert_eq!(err, None);
    }
}
