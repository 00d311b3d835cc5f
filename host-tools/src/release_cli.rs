//! `measure` and `publish`: the CLI side of predicting a worker TD's measurements and
//! publishing them in a signed manifest (the work is done in `cocoon_host::{measure, publish}`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use cocoon_host::boot::{read_cmdline, BootSpec, VmShape};
use cocoon_host::launch;
use cocoon_host::launch::config::{parse_size, LaunchConfig};
use cocoon_host::shapes_file::{self, NamedShape};
use cocoon_host::{measure, publish};
use cocoon_measure::manifest::TdPolicy;
use cocoon_measure::rtmr3::{self, Rtmr3Event};

use crate::{print_json, refused, usage, Failure};

/// The release files a TD boots. Either `--image-dir` (the layout `launch` uses: OVMF.fd,
/// image.vmlinuz, image.initrd, image.cmdline) or all four files.
#[derive(clap::Args)]
pub struct BootFileArgs {
    /// Image directory with OVMF.fd, image.vmlinuz, image.initrd, image.cmdline.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["firmware", "kernel", "initrd", "cmdline_file"])]
    image_dir: Option<PathBuf>,
    /// OVMF/TDVF firmware, as given to QEMU -bios.
    #[arg(long, value_name = "FILE")]
    firmware: Option<PathBuf>,
    /// Kernel (bzImage with EFI stub), as given to QEMU -kernel.
    #[arg(long, value_name = "FILE")]
    kernel: Option<PathBuf>,
    /// Initrd, as given to QEMU -initrd.
    #[arg(long, value_name = "FILE")]
    initrd: Option<PathBuf>,
    /// File holding the kernel command line (one line), as `launch` reads image.cmdline.
    #[arg(long, value_name = "FILE")]
    cmdline_file: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct MeasureArgs {
    #[command(flatten)]
    files: BootFileArgs,
    /// Measure what `launch CONFIG` starts: the config's image directory and VM shape.
    #[arg(long, value_name = "CONFIG", conflicts_with_all = [
        "shape", "shapes", "cpus", "memory", "gpus",
        "image_dir", "firmware", "kernel", "initrd", "cmdline_file",
    ])]
    config: Option<PathBuf>,
    /// A named shape from --shapes FILE (its acpi_dir is used unless --acpi-dir is given).
    #[arg(long, value_name = "NAME", requires = "shapes", conflicts_with_all = ["cpus", "memory", "gpus"])]
    shape: Option<String>,
    /// Shapes file (TOML, or JSON for *.json): [[shape]] name, cpus, memory, gpus, acpi_dir.
    #[arg(long, value_name = "FILE", requires = "shape", conflicts_with_all = ["cpus", "memory", "gpus"])]
    shapes: Option<PathBuf>,
    /// Number of vCPUs.
    #[arg(long, required_unless_present_any = ["shape", "config"])]
    cpus: Option<u32>,
    /// Guest memory: bytes, or with K/M/G/T (binary units), as in the launch config.
    #[arg(long, value_name = "SIZE", required_unless_present_any = ["shape", "config"])]
    memory: Option<String>,
    /// Number of GPUs passed through [default: 0].
    #[arg(long)]
    gpus: Option<u32>,
    /// Directory with etc/table-loader, etc/acpi/rsdp, etc/acpi/tables captured from QEMU for
    /// this shape; without it (and without the shape's acpi_dir) RTMR0 is not computed.
    #[arg(long, value_name = "DIR")]
    acpi_dir: Option<PathBuf>,
    /// The agent's RTMR3 event list (format cocoon-rtmr3-events/v1) to pin RTMR3; enables the
    /// identity hashes.
    #[arg(long, value_name = "FILE")]
    rtmr3_events: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct PublishArgs {
    #[command(flatten)]
    files: BootFileArgs,
    /// Shapes file (TOML, or JSON for *.json): [[shape]] name, cpus, memory, gpus, acpi_dir.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "shape_specs",
        conflicts_with = "shape_specs"
    )]
    shapes: Option<PathBuf>,
    /// A shape NAME:CPUS:MEMORY:GPUS:ACPI_DIR, e.g. c8-m64g-g1:8:64G:1:acpi/c8-m64g-g1.
    /// Repeat for each shape.
    #[arg(long = "shape", value_name = "SPEC")]
    shape_specs: Vec<String>,
    /// Release version, e.g. 1.4.0.
    #[arg(long)]
    release: String,
    /// Source commit of the release (7..=64 lowercase hex digits).
    #[arg(long)]
    commit: String,
    /// Private Ed25519 key (from `cocoon-measure keygen`, mode 0600) that signs the manifest.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Where to write the manifest.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The agent's RTMR3 event list for the release's reference configuration: pins RTMR3 and
    /// adds the identity hashes.
    #[arg(long, value_name = "FILE")]
    rtmr3_events: Option<PathBuf>,
    /// Embed the ACPI blobs so verifiers can recompute RTMR0 from the manifest alone.
    #[arg(long)]
    embed_acpi: bool,
}

/// The release files and command line of `a`, checked as `launch` checks image.cmdline.
fn boot_files(a: &BootFileArgs) -> Result<(PathBuf, PathBuf, PathBuf, String), Failure> {
    let [firmware, kernel, initrd, cmdline_file] = match (&a.image_dir, &a.firmware, &a.kernel, &a.initrd, &a.cmdline_file) {
        (Some(dir), ..) => launch::image_paths(dir),
        (None, Some(f), Some(k), Some(i), Some(c)) => [f.clone(), k.clone(), i.clone(), c.clone()],
        _ => {
            return Err(usage(anyhow::anyhow!(
                "give the release files: --image-dir DIR, or all of --firmware, --kernel, --initrd and --cmdline-file"
            )))
        }
    };
    let cmdline = read_cmdline(&cmdline_file).map_err(usage)?;
    Ok((firmware, kernel, initrd, cmdline))
}

fn read_rtmr3(path: Option<&Path>) -> Result<Option<Vec<Rtmr3Event>>, Failure> {
    let Some(path) = path else { return Ok(None) };
    let bytes = std::fs::read(path)
        .with_context(|| format!("RTMR3 event list {}", path.display()))
        .map_err(usage)?;
    if bytes.len() > rtmr3::MAX_LIST_JSON {
        return Err(usage(anyhow::anyhow!(
            "RTMR3 event list {}: larger than {} bytes",
            path.display(),
            rtmr3::MAX_LIST_JSON
        )));
    }
    rtmr3::from_json(&bytes)
        .with_context(|| format!("RTMR3 event list {}", path.display()))
        .map(Some)
        .map_err(usage)
}

pub fn run_measure(a: MeasureArgs) -> Result<u8, Failure> {
    let rtmr3 = read_rtmr3(a.rtmr3_events.as_deref())?;
    if let Some(config) = &a.config {
        let cfg = LaunchConfig::load(config).map_err(|e| usage(launch::LaunchError::Config(e)))?;
        let spec = launch::release_boot(&cfg).map_err(usage)?;
        return print_measure(&a, &spec, None, a.acpi_dir.as_deref(), rtmr3.as_deref());
    }
    let (named, shape) = match (&a.shape, &a.shapes) {
        (Some(name), Some(file)) => {
            let list = shapes_file::load(file).map_err(usage)?;
            let s: NamedShape = shapes_file::find(&list, name).map_err(usage)?.clone();
            let shape = s.shape;
            (Some(s), shape)
        }
        _ => {
            let memory_text = a.memory.as_deref().unwrap_or_default();
            let memory = parse_size(memory_text).ok_or_else(|| {
                usage(anyhow::anyhow!(
                    "--memory {memory_text:?} is not a size like 64G"
                ))
            })?;
            let shape = VmShape::new(a.cpus.unwrap_or_default(), memory, a.gpus.unwrap_or(0))
                .context("VM shape")
                .map_err(usage)?;
            (None, shape)
        }
    };
    let acpi_dir = a
        .acpi_dir
        .clone()
        .or_else(|| named.as_ref().and_then(|s| s.acpi_dir.clone()));
    let (firmware, kernel, initrd, cmdline) = boot_files(&a.files)?;
    let spec = BootSpec::new(firmware, kernel, initrd, cmdline, shape)
        .map_err(|e| usage(anyhow::anyhow!("kernel command line: {e}")))?;
    print_measure(
        &a,
        &spec,
        named.as_ref().map(|s| s.name.as_str()),
        acpi_dir.as_deref(),
        rtmr3.as_deref(),
    )
}

fn print_measure(
    a: &MeasureArgs,
    spec: &BootSpec,
    shape_name: Option<&str>,
    acpi_dir: Option<&Path>,
    rtmr3: Option<&[Rtmr3Event]>,
) -> Result<u8, Failure> {
    let expected = measure::expected(spec, acpi_dir, rtmr3, &TdPolicy::default()).map_err(usage)?;
    let report = measure::Report::new(&expected, spec, shape_name, acpi_dir);
    if a.json {
        print_json(&report)?;
    } else {
        print!("{}", report.to_text());
    }
    Ok(0)
}

pub fn run_publish(a: PublishArgs) -> Result<u8, Failure> {
    let shapes = match &a.shapes {
        Some(file) => shapes_file::load(file).map_err(usage)?,
        None => {
            let list = a
                .shape_specs
                .iter()
                .map(|s| shapes_file::parse_spec(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(usage)?;
            shapes_file::check_list(&list).map_err(|e| usage(anyhow::anyhow!("--shape: {e}")))?;
            list
        }
    };
    let key = cocoon_measure::manifest::keyfile::read_signing_key(&a.key).map_err(usage)?;
    let (firmware, kernel, initrd, cmdline) = boot_files(&a.files)?;
    let release = publish::Release {
        release: a.release,
        commit: a.commit,
        td: TdPolicy::default(),
        firmware,
        kernel,
        initrd,
        cmdline,
        shapes,
        rtmr3_events: read_rtmr3(a.rtmr3_events.as_deref())?,
        embed_acpi: a.embed_acpi,
    };
    let m = publish::publish(&release, &key, &a.out).map_err(|e| match e {
        publish::PublishError::Io {
            what: "manifest", ..
        }
        | publish::PublishError::Verify { .. }
        | publish::PublishError::ReadBack { .. } => refused(e),
        other => usage(other),
    })?;
    println!(
        "wrote {} (release {}, commit {}), signed by {} and verified; shapes:",
        a.out.display(),
        m.body.release,
        m.body.commit,
        hex::encode(key.verifying_key().to_bytes())
    );
    for s in &m.body.shapes {
        println!(
            "  {}: {} vCPUs, {} MiB, {} GPU(s): RTMR0 {}",
            s.name,
            s.cpus,
            s.memory_bytes >> 20,
            s.gpus,
            hex::encode(s.registers.rtmr0)
        );
    }
    Ok(0)
}
