//! The one description of a worker TD's boot that `launch` (QEMU arguments) and `measure` /
//! `publish` (expected registers) are both derived from, so the VM that runs and the VM that is
//! measured cannot drift apart.
//!
//! Invariants of a [`VmShape`] (enforced by [`VmShape::new`], the only constructor):
//! 1..=[`MAX_VCPUS`] vCPUs, memory at least 1 GiB and a whole number of MiB (QEMU gets `-m NM`),
//! at most [`MAX_GPUS`] GPUs. A [`BootSpec`]'s command line is one line of at most
//! [`cocoon_measure::boot::MAX_CMDLINE_BYTES`] UTF-8 bytes without NUL (what the measurement
//! model accepts), checked by [`read_cmdline`] and [`BootSpec::new`].

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use cocoon_measure::boot::{BootInputs, ComputeOptions, MAX_CMDLINE_BYTES};

pub const MAX_VCPUS: u32 = 512;
/// More GPUs than any server holds; keeps shapes sane.
pub const MAX_GPUS: u32 = 16;
/// Smallest guest memory `launch` accepts.
pub const MIN_MEMORY_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("{0} vCPUs is not in 1..={MAX_VCPUS}")]
    Cpus(u32),
    #[error("{0} bytes of memory: must be at least 1 GiB and a whole number of MiB")]
    Memory(u64),
    #[error("{0} GPUs is more than {MAX_GPUS}")]
    Gpus(u32),
}

/// vCPUs, memory and number of GPUs: what a manifest entry is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmShape {
    cpus: u32,
    memory_bytes: u64,
    gpus: u32,
}

impl VmShape {
    pub fn new(cpus: u32, memory_bytes: u64, gpus: u32) -> Result<Self, ShapeError> {
        if cpus == 0 || cpus > MAX_VCPUS {
            return Err(ShapeError::Cpus(cpus));
        }
        if memory_bytes < MIN_MEMORY_BYTES || memory_bytes % (1 << 20) != 0 {
            return Err(ShapeError::Memory(memory_bytes));
        }
        if gpus > MAX_GPUS {
            return Err(ShapeError::Gpus(gpus));
        }
        Ok(Self {
            cpus,
            memory_bytes,
            gpus,
        })
    }

    pub fn cpus(&self) -> u32 {
        self.cpus
    }
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes
    }
    pub fn memory_mib(&self) -> u64 {
        self.memory_bytes >> 20
    }
    pub fn gpus(&self) -> u32 {
        self.gpus
    }

    /// The measurement library's view of the same shape.
    pub fn to_measure(&self) -> cocoon_measure::boot::VmShape {
        cocoon_measure::boot::VmShape {
            cpus: self.cpus,
            memory_bytes: self.memory_bytes,
            gpus: self.gpus,
        }
    }

    /// Whether a manifest entry describes this shape.
    pub fn matches(&self, cpus: u32, memory_bytes: u64, gpus: u32) -> bool {
        self.cpus == cpus && self.memory_bytes == memory_bytes && self.gpus == gpus
    }
}

impl std::fmt::Display for VmShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} vCPUs, {} MiB memory, {} GPU(s)",
            self.cpus,
            self.memory_mib(),
            self.gpus
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CmdlineError {
    #[error("kernel command line {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("kernel command line {path}: {reason}")]
    Bad { path: PathBuf, reason: String },
}

/// Checks a kernel command line as QEMU `-append` gets it.
fn check_cmdline(line: &str) -> Result<(), String> {
    if line.len() > MAX_CMDLINE_BYTES {
        return Err(format!(
            "{} bytes, longer than the kernel's {MAX_CMDLINE_BYTES}-byte limit",
            line.len()
        ));
    }
    if line.contains(['\n', '\0']) {
        return Err("must be a single line without NUL bytes".into());
    }
    Ok(())
}

/// Reads a kernel command line file: one line of UTF-8 (a final newline is dropped).
pub fn read_cmdline(path: &Path) -> Result<String, CmdlineError> {
    let bad = |reason: String| CmdlineError::Bad {
        path: path.to_path_buf(),
        reason,
    };
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(MAX_CMDLINE_BYTES as u64 + 2).read_to_end(&mut bytes))
        .map_err(|source| CmdlineError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8".into()))?;
    let line = text.strip_suffix('\n').unwrap_or(&text);
    check_cmdline(line).map_err(bad)?;
    Ok(line.to_string())
}

/// Firmware, kernel, initrd, the `-append` string and the shape of one TD boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSpec {
    pub firmware: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    cmdline: String,
    pub shape: VmShape,
}

/// QEMU option values separate with commas; a literal comma is written twice.
pub fn qemu_opt(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
}

impl BootSpec {
    /// `cmdline` is the exact `-append` string; refused when the measurement model cannot take it.
    pub fn new(
        firmware: PathBuf,
        kernel: PathBuf,
        initrd: PathBuf,
        cmdline: String,
        shape: VmShape,
    ) -> Result<Self, String> {
        check_cmdline(&cmdline)?;
        Ok(Self {
            firmware,
            kernel,
            initrd,
            cmdline,
            shape,
        })
    }

    pub fn cmdline(&self) -> &str {
        &self.cmdline
    }

    /// The QEMU arguments that carry everything measured: `-smp`, `-m`, `-bios`, `-kernel`,
    /// `-initrd`, `-append`.
    pub fn qemu_args(&self) -> Vec<String> {
        let mib = format!("{}M", self.shape.memory_mib());
        vec![
            "-smp".into(),
            self.shape.cpus.to_string(),
            "-m".into(),
            mib,
            "-bios".into(),
            qemu_opt(&self.firmware),
            "-kernel".into(),
            qemu_opt(&self.kernel),
            "-initrd".into(),
            qemu_opt(&self.initrd),
            "-append".into(),
            self.cmdline.clone(),
        ]
    }

    /// The same boot as `cocoon-measure`'s inputs. `acpi_dir` holds the blobs QEMU generates for
    /// this shape (needed for RTMR0).
    pub fn boot_inputs(&self, acpi_dir: Option<&Path>) -> BootInputs {
        BootInputs {
            firmware: self.firmware.clone(),
            kernel: self.kernel.clone(),
            initrd: Some(self.initrd.clone()),
            cmdline: self.cmdline.clone(),
            shape: self.shape.to_measure(),
            acpi_dir: acpi_dir.map(Path::to_path_buf),
        }
    }

    /// The measurement model of the QEMU that `launch` targets: upstream QEMU >= 10.1 (the
    /// first with `tdx-guest`, which `check` requires) with upstream KVM and Debian's OVMF:
    /// single-pass MRTD, kernel measured as the file, `initrd=initrd` appended. See
    /// docs/measurements-compute.md.
    pub fn compute_options() -> ComputeOptions {
        ComputeOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_invariants() {
        assert!(VmShape::new(8, 64 << 30, 1).is_ok());
        assert_eq!(VmShape::new(0, 1 << 30, 0), Err(ShapeError::Cpus(0)));
        assert_eq!(VmShape::new(513, 1 << 30, 0), Err(ShapeError::Cpus(513)));
        assert!(matches!(
            VmShape::new(1, (1 << 30) - (1 << 20), 0),
            Err(ShapeError::Memory(_))
        ));
        assert!(matches!(
            VmShape::new(1, (1 << 30) + 4096, 0),
            Err(ShapeError::Memory(_))
        ));
        assert_eq!(VmShape::new(1, 1 << 30, 17), Err(ShapeError::Gpus(17)));
    }

    #[test]
    fn qemu_args_and_inputs_come_from_the_same_values() {
        let shape = VmShape::new(4, 3 << 30, 0).unwrap();
        let b = BootSpec::new(
            "/r/OVMF.fd".into(),
            "/r/a,b".into(),
            "/r/initrd".into(),
            "console=ttyS0".into(),
            shape,
        )
        .unwrap();
        assert_eq!(
            b.qemu_args(),
            [
                "-smp",
                "4",
                "-m",
                "3072M",
                "-bios",
                "/r/OVMF.fd",
                "-kernel",
                "/r/a,,b",
                "-initrd",
                "/r/initrd",
                "-append",
                "console=ttyS0"
            ]
        );
        let i = b.boot_inputs(None);
        assert_eq!(i.shape.memory_bytes, 3 << 30);
        assert_eq!(i.shape.cpus, 4);
        assert_eq!(i.kernel, Path::new("/r/a,b"));
        assert_eq!(i.cmdline, "console=ttyS0");
    }

    #[test]
    fn cmdline_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c");
        fs::write(&p, "a b\n").unwrap();
        assert_eq!(read_cmdline(&p).unwrap(), "a b");
        for bad in [&b"a\nb\n"[..], b"a\0b", b"\xff"] {
            fs::write(&p, bad).unwrap();
            assert!(
                matches!(read_cmdline(&p), Err(CmdlineError::Bad { .. })),
                "{bad:?}"
            );
        }
        fs::write(&p, "x".repeat(MAX_CMDLINE_BYTES)).unwrap();
        assert!(read_cmdline(&p).is_ok());
        fs::write(&p, "x".repeat(MAX_CMDLINE_BYTES + 1)).unwrap();
        assert!(matches!(read_cmdline(&p), Err(CmdlineError::Bad { .. })));
        fs::write(&p, "x".repeat(100_000)).unwrap();
        assert!(matches!(read_cmdline(&p), Err(CmdlineError::Bad { .. })));
        assert!(matches!(
            read_cmdline(&d.path().join("none")),
            Err(CmdlineError::Io { .. })
        ));
    }
}
