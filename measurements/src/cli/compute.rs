//! `compute` and `transcript`: expected MRTD and RTMR0-2 of a QEMU direct kernel boot, from
//! the firmware, kernel, initrd, command line and VM shape.

use anyhow::{anyhow, bail, Context};
use clap::{Args, ValueEnum};
use cocoon_measure::boot::{
    self, BootInputs, BootMeasurements, ComputeOptions, InitrdArg, KernelHeader, VmShape,
};
use cocoon_measure::tdvf::{MrtdOrder, TdvfMetadata};
use cocoon_measure::uefi_events::event_type;
use cocoon_measure::Rtmr;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

/// Order of the MRTD page-add/extend records.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum MrtdOrderArg {
    /// Upstream QEMU 10.1+ with upstream KVM: per page, PAGE.ADD then its MR.EXTENDs.
    SinglePass,
    /// Older TDX forks: per section, all PAGE.ADDs, then all MR.EXTENDs.
    TwoPass,
}

/// Which kernel bytes the firmware measures.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KernelHeaderArg {
    /// The kernel file unchanged (QEMU >= 10.2, or QEMU >= 10.0 with an OVMF that reads
    /// fw_cfg etc/boot/kernel, such as Debian's 2025.02).
    AsFile,
    /// The setup header as QEMU <= 10.1 patches it (depends on memory and initrd size).
    QemuPatched,
}

/// Where OVMF puts `initrd=initrd` in the measured load options.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum InitrdArgArg {
    /// "<cmdline> initrd=initrd" (edk2 <= stable202502, Debian trixie).
    Suffix,
    /// "initrd=initrd <cmdline>" (later edk2).
    Prefix,
}

/// The library's options for the command-line choices (shared by `compute` and `manifest`).
pub fn compute_options(
    mrtd_order: MrtdOrderArg,
    kernel_header: KernelHeaderArg,
    initrd_arg: InitrdArgArg,
) -> ComputeOptions {
    ComputeOptions {
        mrtd_order: match mrtd_order {
            MrtdOrderArg::SinglePass => MrtdOrder::SinglePass,
            MrtdOrderArg::TwoPass => MrtdOrder::TwoPass,
        },
        kernel_header: match kernel_header {
            KernelHeaderArg::AsFile => KernelHeader::AsFile,
            KernelHeaderArg::QemuPatched => KernelHeader::QemuPatched,
        },
        initrd_arg: match initrd_arg {
            InitrdArgArg::Suffix => InitrdArg::Suffix,
            InitrdArgArg::Prefix => InitrdArg::Prefix,
        },
    }
}

/// The boot inputs and model options shared by `compute` and `transcript`.
#[derive(Args, Debug)]
pub struct InputArgs {
    /// OVMF/TDVF firmware image (e.g. /usr/share/ovmf/OVMF.fd).
    #[arg(long, value_name = "FILE")]
    firmware: PathBuf,
    /// Kernel (bzImage with EFI stub), as passed to QEMU -kernel.
    #[arg(long, value_name = "FILE")]
    kernel: PathBuf,
    /// Initrd, as passed to QEMU -initrd.
    #[arg(long, value_name = "FILE")]
    initrd: Option<PathBuf>,
    /// Kernel command line exactly as passed to QEMU -append.
    #[arg(
        long,
        value_name = "STRING",
        default_value = "",
        allow_hyphen_values = true
    )]
    cmdline: OsString,
    /// Guest memory: bytes, or with a K/M/G/T suffix (binary units), e.g. 512M, 2G.
    #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
    memory: u64,
    /// Number of vCPUs.
    #[arg(long)]
    cpus: u32,
    /// Number of GPUs passed through (recorded in the VM shape).
    #[arg(long, default_value_t = 0)]
    gpus: u32,
    /// Directory with etc/table-loader, etc/acpi/rsdp, etc/acpi/tables from QEMU for this VM
    /// shape; without it RTMR0 is not computed.
    #[arg(long, value_name = "DIR")]
    acpi: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "single-pass")]
    mrtd_order: MrtdOrderArg,
    #[arg(long, value_enum, default_value = "as-file")]
    kernel_header: KernelHeaderArg,
    #[arg(long, value_enum, default_value = "suffix")]
    initrd_arg: InitrdArgArg,
}

#[derive(Args, Debug)]
pub struct ComputeArgs {
    #[command(flatten)]
    inputs: InputArgs,
    /// Print one JSON object (lowercase hex; rtmr0 is null without --acpi).
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct TranscriptArgs {
    #[command(flatten)]
    inputs: InputArgs,
}

/// Parses `512M`, `2G`, `16G`, `1T`, `65536` (bytes).
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, shift) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                'B' => 0,
                _ => {
                    return Err(format!(
                        "unknown size suffix {c:?} in {s:?} (use K, M, G or T)"
                    ))
                }
            };
            (&s[..i], shift)
        }
        _ => (s, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 512M, 2G or a number of bytes)"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

impl InputArgs {
    fn to_inputs(&self) -> anyhow::Result<(BootInputs, ComputeOptions)> {
        let cmdline = self.cmdline.clone().into_string().map_err(|raw| {
            anyhow!(
                "--cmdline is not valid UTF-8 ({:?}); pass the -append string as UTF-8",
                raw.to_string_lossy()
            )
        })?;
        let inputs = BootInputs {
            firmware: self.firmware.clone(),
            kernel: self.kernel.clone(),
            initrd: self.initrd.clone(),
            cmdline,
            shape: VmShape {
                cpus: self.cpus,
                memory_bytes: self.memory,
                gpus: self.gpus,
            },
            acpi_dir: self.acpi.clone(),
        };
        let opts = compute_options(self.mrtd_order, self.kernel_header, self.initrd_arg);
        Ok((inputs, opts))
    }

    fn compute(&self) -> anyhow::Result<(BootInputs, ComputeOptions, BootMeasurements)> {
        let (inputs, opts) = self.to_inputs()?;
        let m = boot::compute(&inputs, &opts)?;
        Ok((inputs, opts, m))
    }

    fn model(&self) -> serde_json::Value {
        serde_json::json!({
            "mrtd_order": format!("{:?}", self.mrtd_order),
            "kernel_header": format!("{:?}", self.kernel_header),
            "initrd_arg": format!("{:?}", self.initrd_arg),
        })
    }
}

pub fn run_compute(args: ComputeArgs) -> anyhow::Result<ExitCode> {
    let (inputs, _, m) = args.inputs.compute()?;
    if args.json {
        let out = serde_json::json!({
            "mrtd": hex::encode(m.mrtd),
            "rtmr0": m.rtmr0.map(hex::encode),
            "rtmr1": hex::encode(m.rtmr1),
            "rtmr2": hex::encode(m.rtmr2),
            "shape": inputs.shape,
            "model": args.inputs.model(),
        });
        println!(
            "{}",
            serde_json::to_string(&out).context("serializing the result")?
        );
    } else {
        println!("MRTD:  {}", hex::encode(m.mrtd));
        match m.rtmr0 {
            Some(r) => println!("RTMR0: {}", hex::encode(r)),
            None => println!("RTMR0: (not computed: no --acpi directory given)"),
        }
        println!("RTMR1: {}", hex::encode(m.rtmr1));
        println!("RTMR2: {}", hex::encode(m.rtmr2));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_transcript(args: TranscriptArgs) -> anyhow::Result<ExitCode> {
    let (inputs, opts, m) = args.inputs.compute()?;
    let fw = std::fs::read(&inputs.firmware)
        .with_context(|| format!("reading firmware {}", inputs.firmware.display()))?;
    let meta = TdvfMetadata::parse(&fw)
        .with_context(|| format!("firmware {}", inputs.firmware.display()))?;
    println!("# model: {opts:?}");
    println!(
        "# VM: {} vCPUs, {} bytes of memory, {} GPUs",
        inputs.shape.cpus, inputs.shape.memory_bytes, inputs.shape.gpus
    );
    println!(
        "MRTD  {}  (source: firmware {})",
        hex::encode(m.mrtd),
        inputs.firmware.display()
    );
    for (i, s) in meta.sections.iter().enumerate() {
        println!(
            "  section {i}: {:<8} gpa {:#012x} size {:#9x} raw {:#9x}@{:#x} {}",
            s.section_type.name(),
            s.memory_address,
            s.memory_data_size,
            s.raw_data_size,
            s.data_offset,
            if s.extends_mr() {
                "PAGE.ADD + MR.EXTEND"
            } else if s.page_aug() {
                "PAGE.AUG (not measured)"
            } else {
                "PAGE.ADD"
            }
        );
    }
    for rtmr in [Rtmr::Rtmr0, Rtmr::Rtmr1, Rtmr::Rtmr2] {
        let value = match rtmr {
            Rtmr::Rtmr0 => m.rtmr0,
            Rtmr::Rtmr1 => Some(m.rtmr1),
            _ => Some(m.rtmr2),
        };
        match value {
            Some(v) => println!("{rtmr} {}", hex::encode(v)),
            None => {
                println!("{rtmr} (not computed: no --acpi directory given)");
                continue;
            }
        }
        for (i, e) in m.events.iter().filter(|e| e.rtmr == rtmr).enumerate() {
            println!(
                "  {i:2} {:<33} {}  [{}] {}",
                event_type::name(e.event_type),
                hex::encode(e.digest),
                e.source,
                e.description
            );
        }
    }
    if m.events.is_empty() {
        bail!("no events were produced");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_memory;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("512M"), Ok(512 << 20));
        assert_eq!(parse_memory("2G"), Ok(2 << 30));
        assert_eq!(parse_memory("16g"), Ok(16 << 30));
        assert_eq!(parse_memory("4096"), Ok(4096));
        assert!(parse_memory("2X").is_err());
        assert!(parse_memory("G").is_err());
        assert!(parse_memory("-1G").is_err());
        assert!(parse_memory("99999999999T").is_err());
    }
}
