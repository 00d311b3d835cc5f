//! Expected MRTD and RTMR0-2 for QEMU direct kernel boot (`-bios OVMF.fd -kernel -initrd
//! -append`) of a TD with TDVF (OVMF), computed from files alone.
//!
//! The model (what each register receives, in order) is documented in
//! `docs/measurements-compute.md`; each step lives in its own module:
//! [`crate::tdvf`] (MRTD), [`crate::td_hob`] and [`crate::acpi`] (RTMR0 inputs),
//! [`crate::pe`] and [`crate::bzimage`] (the kernel event of RTMR1),
//! [`crate::uefi_events`] (fixed firmware events).

use crate::acpi::{AcpiBlobs, AcpiError};
use crate::bzimage::{self, BzImageError, LinuxLoad, QEMU_ACPI_DATA_SIZE};
use crate::pe::{self, PeError};
use crate::register::{replay, sha384, Digest384, Event, Rtmr};
use crate::td_hob::{self, TdHobError};
use crate::tdvf::{MrtdOrder, SectionType, TdvfError, TdvfMetadata};
use crate::uefi_events::{self as uefi, event_type as ev};
use sha2::{Digest, Sha384};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The VM shape a measurement is valid for.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VmShape {
    pub cpus: u32,
    pub memory_bytes: u64,
    pub gpus: u32,
}

/// Everything the registers depend on, read from files.
#[derive(Clone, Debug)]
pub struct BootInputs {
    pub firmware: PathBuf,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    /// The kernel command line exactly as passed to QEMU `-append`.
    pub cmdline: String,
    pub shape: VmShape,
    /// Directory with `etc/table-loader`, `etc/acpi/rsdp`, `etc/acpi/tables` as QEMU generated
    /// them for this VM shape; without it RTMR0 cannot be computed.
    pub acpi_dir: Option<PathBuf>,
}

/// The registers a TD booted from [`BootInputs`] will report, with the events behind them.
#[derive(Clone, Debug)]
pub struct BootMeasurements {
    pub mrtd: Digest384,
    /// `None` when no ACPI blobs were given.
    pub rtmr0: Option<Digest384>,
    pub rtmr1: Digest384,
    pub rtmr2: Digest384,
    /// Every event of RTMR0 (if computed), RTMR1 and RTMR2, in extension order.
    pub events: Vec<Event>,
}

/// Which bytes of the kernel the firmware measures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KernelHeader {
    /// The kernel file unchanged. QEMU >= 10.2 leaves the setup header alone for confidential
    /// guests (commit a7542a38f399), and QEMU >= 10.0 also serves the unpatched file as fw_cfg
    /// `etc/boot/kernel`, which OVMF builds with named-blob support (Debian's 2025.02 among
    /// them) prefer over the patched legacy items. Default.
    #[default]
    AsFile,
    /// The setup header as QEMU's loader patches it (QEMU <= 10.1 and TDX forks, with an OVMF
    /// that reads the legacy `FW_CFG_SETUP_DATA` + `FW_CFG_KERNEL_DATA` items): depends on the
    /// memory size and initrd size. See [`crate::bzimage`].
    QemuPatched,
}

/// Where OVMF's `X86QemuLoadImageLib` puts `initrd=initrd` in the kernel's load options when
/// an initrd is given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InitrdArg {
    /// `"<cmdline> initrd=initrd"`: edk2 up to stable202502, including Debian trixie's
    /// `ovmf` 2025.02 (checked in its binary). Default.
    #[default]
    Suffix,
    /// `"initrd=initrd <cmdline>"`: later edk2 (the current upstream source).
    Prefix,
}

/// Model choices for versions of QEMU/KVM/OVMF that behave differently.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ComputeOptions {
    pub mrtd_order: MrtdOrder,
    pub kernel_header: KernelHeader,
    pub initrd_arg: InitrdArg,
}

/// Upper bounds on input files read into memory.
pub const MAX_FIRMWARE_BYTES: u64 = 64 << 20;
pub const MAX_KERNEL_BYTES: u64 = 512 << 20;
/// QEMU passes the initrd size as a u32.
pub const MAX_INITRD_BYTES: u64 = u32::MAX as u64;
/// Longest `-append` string accepted (x86 `COMMAND_LINE_SIZE` is 2048 including the NUL; a
/// longer string is still measured but the kernel truncates it, so it is refused here).
pub const MAX_CMDLINE_BYTES: usize = 2047;
/// Smallest memory size accepted: the TDVF sections must lie in RAM.
pub const MIN_MEMORY_BYTES: u64 = 64 << 20;

/// Why the measurements cannot be computed: always names the input and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error("cannot read {what} {path}: {error}")]
    Io {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{what} {path} is {size} bytes, more than the {limit}-byte limit")]
    TooLarge {
        what: &'static str,
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("firmware {path}: {error}")]
    Firmware { path: PathBuf, error: TdvfError },
    #[error("firmware {path}: TD HOB for {memory} bytes of memory: {error}")]
    TdHob {
        path: PathBuf,
        memory: u64,
        error: TdHobError,
    },
    #[error("kernel {path}: {error}")]
    KernelHeader { path: PathBuf, error: BzImageError },
    #[error("kernel {path}: {error}")]
    KernelPe { path: PathBuf, error: PeError },
    #[error("initrd {path}: {error}")]
    Initrd { path: PathBuf, error: BzImageError },
    #[error("kernel command line: {0}")]
    Cmdline(String),
    #[error("VM shape: {0}")]
    Shape(String),
    #[error("ACPI blobs: {0}")]
    Acpi(AcpiError),
}

fn read_file(what: &'static str, path: &Path, limit: u64) -> Result<Vec<u8>, MeasureError> {
    let io = |error| MeasureError::Io {
        what,
        path: path.to_path_buf(),
        error,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > limit {
        return Err(MeasureError::TooLarge {
            what,
            path: path.to_path_buf(),
            size,
            limit,
        });
    }
    std::fs::read(path).map_err(io)
}

/// SHA-384 and size of a file, streamed (initrds can be large).
fn hash_file(
    what: &'static str,
    path: &Path,
    limit: u64,
) -> Result<(Digest384, u64), MeasureError> {
    let io = |error| MeasureError::Io {
        what,
        path: path.to_path_buf(),
        error,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    if size > limit {
        return Err(MeasureError::TooLarge {
            what,
            path: path.to_path_buf(),
            size,
            limit,
        });
    }
    let mut h = Sha384::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > limit {
            return Err(MeasureError::TooLarge {
                what,
                path: path.to_path_buf(),
                size: total,
                limit,
            });
        }
        h.update(&buf[..n]);
    }
    Ok((h.finalize().into(), total))
}

/// The kernel's load options exactly as OVMF builds them and the Linux EFI stub measures them:
/// each byte of the command line widened to one UTF-16 code unit (edk2's
/// `UnicodeSPrintAsciiFormat` with `%a`, so non-ASCII UTF-8 bytes become one unit each), the
/// `initrd=initrd` argument when an initrd is present, and a UTF-16 NUL. `None` when OVMF sets
/// no load options at all (empty command line and no initrd).
pub fn load_options(cmdline: &str, initrd: bool, arg: InitrdArg) -> Option<Vec<u8>> {
    let text: Vec<u8> = match (initrd, arg) {
        (false, _) => cmdline.as_bytes().to_vec(),
        (true, InitrdArg::Suffix) => [cmdline.as_bytes(), b" initrd=initrd"].concat(),
        (true, InitrdArg::Prefix) => [b"initrd=initrd ", cmdline.as_bytes()].concat(),
    };
    if text.is_empty() {
        return None;
    }
    let mut out: Vec<u8> = text.iter().flat_map(|&b| [b, 0]).collect();
    out.extend_from_slice(&[0, 0]);
    Some(out)
}

fn check_cmdline(cmdline: &str) -> Result<(), MeasureError> {
    if cmdline.len() > MAX_CMDLINE_BYTES {
        return Err(MeasureError::Cmdline(format!(
            "{} bytes, more than the kernel's {MAX_CMDLINE_BYTES}-byte limit",
            cmdline.len()
        )));
    }
    if let Some(p) = cmdline.find('\0') {
        return Err(MeasureError::Cmdline(format!(
            "contains a NUL byte at offset {p}"
        )));
    }
    Ok(())
}

fn event(
    rtmr: Rtmr,
    event_type: u32,
    digest: Digest384,
    description: impl Into<String>,
    source: &'static str,
) -> Event {
    Event {
        rtmr,
        event_type,
        digest,
        description: description.into(),
        source,
    }
}

/// The firmware-derived part: MRTD plus what RTMR0 needs from the image.
struct Firmware {
    mrtd: Digest384,
    meta: TdvfMetadata,
    cfv_digest: Digest384,
}

fn firmware(inputs: &BootInputs, opts: &ComputeOptions) -> Result<Firmware, MeasureError> {
    let path = &inputs.firmware;
    let fw = read_file("firmware", path, MAX_FIRMWARE_BYTES)?;
    let err = |error| MeasureError::Firmware {
        path: path.clone(),
        error,
    };
    let meta = TdvfMetadata::parse(&fw).map_err(err)?;
    let mrtd = meta.mrtd(&fw, opts.mrtd_order).map_err(err)?;
    let (index, cfv) = meta
        .sections
        .iter()
        .enumerate()
        .find(|(_, s)| s.section_type == SectionType::Cfv)
        .ok_or_else(|| err(TdvfError::MissingSection("CFV")))?;
    let cfv_bytes = meta.section_data(&fw, cfv).ok_or_else(|| {
        err(TdvfError::BadSection {
            index,
            reason: "raw data outside the image".into(),
        })
    })?;
    let cfv_digest = sha384(cfv_bytes);
    Ok(Firmware {
        mrtd,
        meta,
        cfv_digest,
    })
}

fn rtmr0_events(
    inputs: &BootInputs,
    fw: &Firmware,
    acpi: &AcpiBlobs,
) -> Result<Vec<Event>, MeasureError> {
    let memory = inputs.shape.memory_bytes;
    let hob = td_hob::measured_bytes(&fw.meta, memory).map_err(|error| MeasureError::TdHob {
        path: inputs.firmware.clone(),
        memory,
        error,
    })?;
    let r = Rtmr::Rtmr0;
    let mut e = vec![
        event(
            r,
            ev::EV_EFI_HANDOFF_TABLES2,
            sha384(&hob),
            format!("TD HOB: {} bytes, {} bytes of RAM", hob.len(), memory),
            "td-hob",
        ),
        event(
            r,
            ev::EV_EFI_PLATFORM_FIRMWARE_BLOB2,
            fw.cfv_digest,
            "configuration firmware volume (CFV, UEFI variable store)",
            "cfv",
        ),
    ];
    let vars: [(&[u8; 16], &str); 5] = [
        (&uefi::EFI_GLOBAL_VARIABLE, "SecureBoot"),
        (&uefi::EFI_GLOBAL_VARIABLE, "PK"),
        (&uefi::EFI_GLOBAL_VARIABLE, "KEK"),
        (&uefi::EFI_IMAGE_SECURITY_DATABASE, "db"),
        (&uefi::EFI_IMAGE_SECURITY_DATABASE, "dbx"),
    ];
    for (guid, name) in vars {
        let d = sha384(&uefi::variable_data(guid, name, &[]));
        e.push(event(
            r,
            ev::EV_EFI_VARIABLE_DRIVER_CONFIG,
            d,
            format!("{name} (not set: Secure Boot disabled)"),
            "config",
        ));
    }
    e.push(event(
        r,
        ev::EV_SEPARATOR,
        sha384(&uefi::SEPARATOR),
        "separator",
        "config",
    ));
    let names = crate::acpi::BLOB_NAMES;
    for (name, blob) in names
        .iter()
        .zip([&acpi.table_loader, &acpi.rsdp, &acpi.tables])
    {
        e.push(event(
            r,
            ev::EV_PLATFORM_CONFIG_FLAGS,
            sha384(blob),
            format!("fw_cfg {name} ({} bytes)", blob.len()),
            "acpi",
        ));
    }
    e.push(event(
        r,
        ev::EV_EFI_VARIABLE_BOOT,
        sha384(&0u16.to_le_bytes()),
        "BootOrder = [0000]",
        "config",
    ));
    e.push(event(
        r,
        ev::EV_EFI_VARIABLE_BOOT,
        sha384(&uefi::ovmf_boot0000_uiapp()),
        "Boot0000 = UiApp (boot manager menu)",
        "config",
    ));
    Ok(e)
}

/// The kernel event: Authenticode SHA-384 of the kernel as the firmware sees it.
fn kernel_event(
    inputs: &BootInputs,
    opts: &ComputeOptions,
    initrd_size: Option<u64>,
) -> Result<Event, MeasureError> {
    let path = &inputs.kernel;
    let kernel = read_file("kernel", path, MAX_KERNEL_BYTES)?;
    let load = LinuxLoad {
        memory_bytes: inputs.shape.memory_bytes,
        initrd_size,
        cmdline: &inputs.cmdline,
        acpi_data_size: QEMU_ACPI_DATA_SIZE,
    };
    // Run QEMU's loader logic in every mode: it refuses some inputs (initrd too large for the
    // memory, invalid vga=) whichever bytes are measured afterwards.
    let (patched, layout) = bzimage::qemu_patch(&kernel, &load).map_err(|error| match error {
        BzImageError::InitrdTooLarge { .. } => MeasureError::Initrd {
            path: inputs.initrd.clone().unwrap_or_default(),
            error,
        },
        BzImageError::MemoryTooSmall(_) => MeasureError::Shape(error.to_string()),
        error => MeasureError::KernelHeader {
            path: path.clone(),
            error,
        },
    })?;
    let (image, how) = match opts.kernel_header {
        KernelHeader::AsFile => (&kernel, "kernel file as given".to_string()),
        KernelHeader::QemuPatched => (
            &patched,
            format!(
                "kernel with QEMU-patched setup header (cmd_line_ptr {:#x}, ramdisk_image {})",
                layout.cmdline_addr,
                layout
                    .initrd_addr
                    .map_or("none".into(), |a| format!("{a:#x}"))
            ),
        ),
    };
    let digest = pe::authenticode_sha384(image).map_err(|error| MeasureError::KernelPe {
        path: path.clone(),
        error,
    })?;
    Ok(event(
        Rtmr::Rtmr1,
        ev::EV_EFI_BOOT_SERVICES_APPLICATION,
        digest,
        format!("Authenticode SHA-384 of the {how}, {} bytes", kernel.len()),
        "kernel",
    ))
}

/// Computes MRTD, RTMR1, RTMR2 and (with ACPI blobs) RTMR0 for a direct kernel boot.
pub fn compute(
    inputs: &BootInputs,
    opts: &ComputeOptions,
) -> Result<BootMeasurements, MeasureError> {
    let memory = inputs.shape.memory_bytes;
    if memory < MIN_MEMORY_BYTES || memory % 4096 != 0 {
        return Err(MeasureError::Shape(format!(
            "memory size {memory} bytes must be a multiple of 4 KiB and at least {MIN_MEMORY_BYTES}"
        )));
    }
    if inputs.shape.cpus == 0 {
        return Err(MeasureError::Shape("0 vCPUs".into()));
    }
    check_cmdline(&inputs.cmdline)?;

    let fw = firmware(inputs, opts)?;
    let initrd = match &inputs.initrd {
        Some(p) => Some((p, hash_file("initrd", p, MAX_INITRD_BYTES)?)),
        None => None,
    };
    let kernel = kernel_event(inputs, opts, initrd.as_ref().map(|(_, (_, size))| *size))?;

    let mut events = Vec::new();
    if let Some(dir) = &inputs.acpi_dir {
        let acpi = AcpiBlobs::load(dir).map_err(MeasureError::Acpi)?;
        events.extend(rtmr0_events(inputs, &fw, &acpi)?);
    }

    let r1 = Rtmr::Rtmr1;
    events.push(kernel);
    events.push(event(
        r1,
        ev::EV_EFI_ACTION,
        sha384(uefi::CALLING_EFI_APPLICATION.as_bytes()),
        uefi::CALLING_EFI_APPLICATION,
        "firmware",
    ));
    events.push(event(
        r1,
        ev::EV_SEPARATOR,
        sha384(&uefi::SEPARATOR),
        "separator",
        "firmware",
    ));
    events.push(event(
        r1,
        ev::EV_EFI_ACTION,
        sha384(uefi::EXIT_BOOT_SERVICES_INVOCATION.as_bytes()),
        uefi::EXIT_BOOT_SERVICES_INVOCATION,
        "firmware",
    ));
    events.push(event(
        r1,
        ev::EV_EFI_ACTION,
        sha384(uefi::EXIT_BOOT_SERVICES_SUCCESS.as_bytes()),
        uefi::EXIT_BOOT_SERVICES_SUCCESS,
        "firmware",
    ));

    let r2 = Rtmr::Rtmr2;
    if let Some(opts_bytes) = load_options(&inputs.cmdline, initrd.is_some(), opts.initrd_arg) {
        let shown = String::from_utf16_lossy(
            &opts_bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|&u| u != 0)
                .collect::<Vec<_>>(),
        );
        events.push(event(
            r2,
            ev::EV_EVENT_TAG,
            sha384(&opts_bytes),
            format!("kernel load options (UTF-16LE + NUL): {shown:?}"),
            "cmdline",
        ));
    }
    if let Some((path, (digest, size))) = &initrd {
        events.push(event(
            r2,
            ev::EV_EVENT_TAG,
            *digest,
            format!("initrd {} ({size} bytes)", path.display()),
            "initrd",
        ));
    }

    let regs = replay(&events);
    Ok(BootMeasurements {
        mrtd: fw.mrtd,
        rtmr0: inputs.acpi_dir.as_ref().map(|_| regs[0].value()),
        rtmr1: regs[1].value(),
        rtmr2: regs[2].value(),
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_options_encoding() {
        // Computed independently: UTF-16LE of the text by hand, then two NUL bytes.
        assert_eq!(
            load_options("a b", false, InitrdArg::Suffix).unwrap(),
            b"a\0 \0b\0\0\0".to_vec()
        );
        let with = load_options("q", true, InitrdArg::Suffix).unwrap();
        let expect: Vec<u8> = "q initrd=initrd\0"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(with, expect);
        let pre = load_options("q", true, InitrdArg::Prefix).unwrap();
        let expect: Vec<u8> = "initrd=initrd q\0"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(pre, expect);
        assert_eq!(load_options("", false, InitrdArg::Suffix), None);
        assert!(load_options("", true, InitrdArg::Suffix).is_some());
        // Non-ASCII: each UTF-8 byte becomes its own code unit (edk2 %a widening).
        assert_eq!(
            load_options("é", false, InitrdArg::Suffix).unwrap(),
            vec![0xc3, 0, 0xa9, 0, 0, 0]
        );
    }

    #[test]
    fn cmdline_checks() {
        assert!(check_cmdline("console=ttyS0").is_ok());
        assert!(check_cmdline("a\0b").is_err());
        assert!(check_cmdline(&"x".repeat(3000)).is_err());
    }
}
