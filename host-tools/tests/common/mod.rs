//! Fake host trees (sysfs, procfs, /dev) and fake programs for the integration tests.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cocoon_host::gpu::sysfs::{SysfsWriteError, SysfsWriter};

mod launch_fixture;
#[allow(unused_imports)]
pub use launch_fixture::*;

pub const GPU: &str = "0000:17:00.0";
pub const GPU_AUDIO: &str = "0000:17:00.1";
pub const NVME: &str = "0000:03:00.0";
pub const GPU_GROUP: &str = "7";

/// A fake host below a temp dir, plus a directory of fake programs used as `PATH`.
pub struct FakeHost {
    pub dir: tempfile::TempDir,
    /// Keeps the fake QGS socket accepting connections while the host lives.
    pub qgs: Option<UnixListener>,
}

impl FakeHost {
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    pub fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }
    pub fn p(&self, host_path: &str) -> PathBuf {
        self.root().join(host_path.trim_start_matches('/'))
    }
    pub fn write(&self, host_path: &str, content: impl AsRef<[u8]>) {
        let p = self.p(host_path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
    pub fn read(&self, host_path: &str) -> String {
        fs::read_to_string(self.p(host_path)).unwrap()
    }
    pub fn remove(&self, host_path: &str) {
        let p = self.p(host_path);
        if p.is_dir() && !p.is_symlink() {
            fs::remove_dir_all(p).unwrap();
        } else if p.exists() || p.is_symlink() {
            fs::remove_file(p).unwrap();
        }
    }
    pub fn mkdir(&self, host_path: &str) {
        fs::create_dir_all(self.p(host_path)).unwrap();
    }

    /// A fake program in the `PATH` directory: a shell script.
    pub fn program(&self, name: &str, script: &str) {
        let p = self.bin().join(name);
        fs::create_dir_all(self.bin()).unwrap();
        fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    pub fn driver(&self, name: &str) {
        for f in ["bind", "unbind", "new_id"] {
            self.write(&format!("/sys/bus/pci/drivers/{name}/{f}"), "");
        }
    }

    /// Adds a PCI function; `group` makes it a member of that IOMMU group.
    pub fn pci(
        &self,
        bdf: &str,
        vendor: u16,
        device: u16,
        class: u32,
        driver: Option<&str>,
        group: Option<&str>,
    ) {
        let dir = format!("/sys/bus/pci/devices/{bdf}");
        self.write(&format!("{dir}/vendor"), format!("0x{vendor:04x}\n"));
        self.write(&format!("{dir}/device"), format!("0x{device:04x}\n"));
        self.write(&format!("{dir}/class"), format!("0x{class:06x}\n"));
        self.write(&format!("{dir}/driver_override"), "(null)\n");
        self.set_driver(bdf, driver);
        if let Some(g) = group {
            self.set_group(bdf, g);
        }
    }

    pub fn set_driver(&self, bdf: &str, driver: Option<&str>) {
        let link = self.p(&format!("/sys/bus/pci/devices/{bdf}/driver"));
        let _ = fs::remove_file(&link);
        if let Some(d) = driver {
            self.driver(d);
            symlink(self.p(&format!("/sys/bus/pci/drivers/{d}")), link).unwrap();
        }
    }

    pub fn set_group(&self, bdf: &str, group: &str) {
        let gdir = format!("/sys/kernel/iommu_groups/{group}/devices");
        self.mkdir(&gdir);
        let link = self.p(&format!("/sys/bus/pci/devices/{bdf}/iommu_group"));
        let _ = fs::remove_file(&link);
        symlink(self.p(&format!("/sys/kernel/iommu_groups/{group}")), link).unwrap();
        let member = self.p(&format!("{gdir}/{bdf}"));
        let _ = fs::remove_file(&member);
        symlink(self.p(&format!("/sys/bus/pci/devices/{bdf}")), member).unwrap();
    }

    pub fn set_msrs(&self, tme_activate: u64, keyid_partitioning: u64, seamrr_mask: u64) {
        let mut bytes = vec![0u8; 0x1401 + 8];
        bytes[0x982..0x982 + 8].copy_from_slice(&tme_activate.to_le_bytes());
        bytes[0x87..0x87 + 8].copy_from_slice(&keyid_partitioning.to_le_bytes());
        bytes[0x1401..0x1401 + 8].copy_from_slice(&seamrr_mask.to_le_bytes());
        self.write("/dev/cpu/0/msr", bytes);
    }

    pub fn qemu(&self, version: &str, with_tdx: bool) {
        let objects = if with_tdx {
            "  iommufd\\n  tdx-guest\\n"
        } else {
            "  iommufd\\n"
        };
        self.program(
            "qemu-system-x86_64",
            &format!(
                "case \"$1\" in\n  --version) printf 'QEMU emulator version {version}\\nCopyright (c) 2003-2025\\n' ;;\n  -object) printf 'List of user creatable objects:\\n{objects}' ;;\n  *) exit 1 ;;\nesac"
            ),
        );
    }

    pub fn cc_tool(&self, mode: &str) {
        self.program(
            "nvidia_gpu_tools.py",
            &format!("echo \"2025-01-01 INFO GPU $1 H100-PCIE 0x2331 CC mode is {mode}\""),
        );
    }

    /// Starts the fake QGS: a unix socket that accepts connections.
    pub fn start_qgs(&mut self) {
        let p = self.p("/var/run/tdx-qgs/qgs.socket");
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        self.qgs = Some(UnixListener::bind(p).unwrap());
    }

    /// A host that can run a worker: TDX on, IOMMU on, one H100 (with its audio function)
    /// alone in its group and on vfio-pci, CC mode on, QEMU 10.1, QGS up, KVM and vhost-vsock.
    pub fn ready() -> FakeHost {
        let mut h = FakeHost {
            dir: tempfile::tempdir().unwrap(),
            qgs: None,
        };
        h.mkdir("/");
        h.write("/proc/cpuinfo", "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme msr vmx tdx_host_platform\n\nprocessor\t: 1\nflags\t\t: fpu vme msr vmx tdx_host_platform\n");
        h.write("/sys/module/kvm_intel/parameters/tdx", "Y\n");
        h.set_msrs(0b11, (64 << 32) | 31, (1 << 11) | (1 << 10));
        h.write("/proc/sys/kernel/osrelease", "6.16.3-cocoon\n");
        h.qemu("10.1.0 (Debian 1:10.1.0+ds-5)", true);
        h.write("/dev/vhost-vsock", "");
        h.write("/dev/kvm", "");
        h.write("/dev/iommu", "");
        h.start_qgs();
        h.write(
            "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
            "0\n",
        );
        h.write(
            "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
            "0\n",
        );
        h.write("/sys/bus/pci/drivers_probe", "");
        h.driver("vfio-pci");
        h.pci(
            GPU,
            0x10de,
            0x2331,
            0x030200,
            Some("vfio-pci"),
            Some(GPU_GROUP),
        );
        h.pci(
            GPU_AUDIO,
            0x10de,
            0x22a3,
            0x040300,
            Some("vfio-pci"),
            Some(GPU_GROUP),
        );
        h.pci(NVME, 0x144d, 0xa80a, 0x010802, Some("nvme"), Some("5"));
        h.pci("0000:00:00.0", 0x8086, 0x09a2, 0x060000, None, Some("0"));
        h.write("/sys/module/nvidia/refcnt", "0\n");
        h.mkdir("/sys/module/nvidia/holders");
        h.write("/sys/module/vfio_pci/refcnt", "0\n");
        h.cc_tool("on");
        h
    }

    /// The GPU and its audio function on their host drivers, as after boot.
    pub fn gpu_on_host_drivers(&self) {
        self.set_driver(GPU, Some("nvidia"));
        self.set_driver(GPU_AUDIO, Some("snd_hda_intel"));
    }

    /// Runs the real binary with `--root` pointing at this host and `PATH` at the fake programs.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_cocoon-host"))
            .arg("--root")
            .arg(self.root())
            .args(args)
            .env("PATH", self.bin())
            .output()
            .unwrap()
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Emulates the kernel's reaction to sysfs writes on a fake tree, and records every write.
pub struct FakeKernel {
    root: PathBuf,
    pub writes: Vec<(String, String)>,
    /// When false, writes are only recorded (a kernel that ignores them).
    pub apply: bool,
}

impl FakeKernel {
    pub fn new(root: &Path) -> Self {
        FakeKernel {
            root: root.to_path_buf(),
            writes: Vec::new(),
            apply: true,
        }
    }
    fn p(&self, host_path: &str) -> PathBuf {
        self.root.join(host_path.trim_start_matches('/'))
    }
    fn link_driver(&self, bdf: &str, driver: &str) {
        let link = self.p(&format!("/sys/bus/pci/devices/{bdf}/driver"));
        let _ = fs::remove_file(&link);
        symlink(self.p(&format!("/sys/bus/pci/drivers/{driver}")), link).unwrap();
    }
}

impl SysfsWriter for FakeKernel {
    fn write(&mut self, host_path: &str, value: &str) -> Result<(), SysfsWriteError> {
        self.writes.push((host_path.to_string(), value.to_string()));
        if !self.apply {
            return Ok(());
        }
        let parts: Vec<&str> = host_path.trim_start_matches('/').split('/').collect();
        match parts.as_slice() {
            ["sys", "bus", "pci", "devices", _bdf, "driver_override"] => {
                let v = value.trim();
                fs::write(
                    self.p(host_path),
                    if v.is_empty() {
                        "(null)\n".to_string()
                    } else {
                        format!("{v}\n")
                    },
                )
                .unwrap();
            }
            ["sys", "bus", "pci", "drivers", _driver, "unbind"] => {
                let _ = fs::remove_file(self.p(&format!("/sys/bus/pci/devices/{value}/driver")));
            }
            ["sys", "bus", "pci", "drivers", driver, "bind"] => self.link_driver(value, driver),
            ["sys", "bus", "pci", "drivers_probe"] => {
                let ov = fs::read_to_string(
                    self.p(&format!("/sys/bus/pci/devices/{value}/driver_override")),
                )
                .unwrap();
                let ov = ov.trim();
                if ov != "(null)" && self.p(&format!("/sys/bus/pci/drivers/{ov}")).is_dir() {
                    self.link_driver(value, ov);
                }
            }
            other => panic!("unexpected sysfs write to {other:?}"),
        }
        Ok(())
    }
}

/// A manifest consistent in itself (events replay to the registers) for the image files in
/// `image_dir` (OVMF.fd, image.vmlinuz, image.initrd, image.cmdline) and the given shapes
/// `(name, cpus, memory_bytes, gpus)`, signed with `key` when given. The register values are
/// synthetic: launch only checks form, signature, shape and the image files' digests.
pub fn synthetic_manifest(
    image_dir: &Path,
    shapes: &[(&str, u32, u64, u32)],
    key: Option<&ed25519_dalek::SigningKey>,
) -> String {
    use cocoon_measure::boot::{BootMeasurements, VmShape};
    use cocoon_measure::manifest::{self, ImageFiles, Manifest, ReleaseInfo, ShapeBuild};
    use cocoon_measure::{replay, sha384, Event, Rtmr};
    use sha2::{Digest, Sha256};

    let sha = |f: &str| -> [u8; 32] { Sha256::digest(fs::read(image_dir.join(f)).unwrap()).into() };
    let cmdline = fs::read_to_string(image_dir.join("image.cmdline")).unwrap();
    let builds = shapes
        .iter()
        .map(|&(name, cpus, memory_bytes, gpus)| {
            let events: Vec<Event> = [
                (Rtmr::Rtmr0, "acpi"),
                (Rtmr::Rtmr1, "kernel"),
                (Rtmr::Rtmr2, "cmdline"),
            ]
            .into_iter()
            .map(|(rtmr, source)| Event {
                rtmr,
                event_type: 0x8000_0001,
                digest: sha384(format!("{name}/{source}").as_bytes()),
                description: format!("synthetic {source} event"),
                source,
            })
            .collect();
            let regs = replay(&events);
            ShapeBuild {
                name: name.to_string(),
                shape: VmShape {
                    cpus,
                    memory_bytes,
                    gpus,
                },
                acpi: Vec::new(),
                measurements: BootMeasurements {
                    mrtd: [0x11; 48],
                    rtmr0: Some(regs[0].value()),
                    rtmr1: regs[1].value(),
                    rtmr2: regs[2].value(),
                    events,
                },
            }
        })
        .collect();
    let body = manifest::build(
        ReleaseInfo {
            release: "1.0.0-test".into(),
            commit: "0123456789abcdef".into(),
            td: Default::default(),
        },
        ImageFiles {
            firmware_sha256: sha("OVMF.fd"),
            kernel_sha256: sha("image.vmlinuz"),
            initrd_sha256: Some(sha("image.initrd")),
            cmdline: cmdline.trim_end_matches('\n').to_string(),
        },
        builds,
        None,
    )
    .unwrap();
    let mut m = Manifest {
        body,
        signature: None,
    };
    if let Some(k) = key {
        m.sign(k);
    }
    m.to_json()
}

/// Writes an Ed25519 key pair as `cocoon-measure keygen` does (private key mode 0600).
pub fn write_keypair(
    dir: &Path,
    name: &str,
    seed: u8,
) -> (PathBuf, PathBuf, ed25519_dalek::SigningKey) {
    let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let private = dir.join(name);
    let public = dir.join(format!("{name}.pub"));
    fs::write(&private, format!("{}\n", hex_encode(&[seed; 32]))).unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(
        &public,
        format!("{}\n", hex_encode(&key.verifying_key().to_bytes())),
    )
    .unwrap();
    (private, public, key)
}

pub fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
