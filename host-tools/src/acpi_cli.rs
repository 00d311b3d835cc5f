//! `acpi capture`: the CLI side of capturing a VM shape's ACPI blobs (the work is done in
//! `cocoon_host::acpi_capture`).

use std::path::PathBuf;
use std::time::Duration;

use cocoon_host::acpi_capture::{self, CaptureError, Request};
use cocoon_host::launch::{self, config::LaunchConfig, Mode};
use cocoon_host::root::HostRoot;

use crate::{print_json, refused, usage, Failure};

#[derive(clap::Args)]
pub struct CaptureArgs {
    /// The launch config whose VM (shape, devices, image firmware and kernel) is captured.
    #[arg(long, value_name = "LAUNCH.toml")]
    config: PathBuf,
    /// Instance number, as for `launch` (its pid file is claimed while capturing; the blobs do
    /// not depend on it).
    #[arg(long, default_value_t = 0)]
    instance: u32,
    /// Capture the `launch --no-tdx` VM (required for now: capturing inside a TD is not
    /// supported).
    #[arg(long)]
    no_tdx: bool,
    /// The QEMU to run (e.g. ci/tools-qemu on a development machine).
    #[arg(long, value_name = "PROGRAM", default_value = cocoon_host::check::software::QEMU)]
    qemu: String,
    /// Output directory: etc/table-loader, etc/acpi/rsdp, etc/acpi/tables.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Replace an existing non-empty output directory.
    #[arg(long)]
    force: bool,
    /// The capture guest's /init: a static x86-64 executable [default:
    /// cocoon-acpi-capture-init next to cocoon-host; build it with ci/build-capture-init].
    #[arg(long, value_name = "FILE")]
    init: Option<PathBuf>,
    /// Seconds until QEMU is killed and the capture fails.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    timeout: u64,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

fn capture_failure(e: CaptureError) -> Failure {
    if e.is_usage() {
        usage(e)
    } else {
        refused(e)
    }
}

pub fn run_capture(
    a: CaptureArgs,
    root: &HostRoot,
    state_dir: Option<PathBuf>,
    default_state: PathBuf,
) -> Result<u8, Failure> {
    let config =
        LaunchConfig::load(&a.config).map_err(|e| usage(launch::LaunchError::Config(e)))?;
    let mode = if a.no_tdx {
        Mode::SimulatedTd
    } else {
        Mode::Tdx
    };
    if mode == Mode::Tdx {
        return Err(capture_failure(CaptureError::TdxUnsupported));
    }
    let init = match a.init {
        Some(p) => p,
        None => acpi_capture::default_init().map_err(capture_failure)?,
    };
    let state_dir = state_dir
        .or_else(|| config.state_dir.clone())
        .unwrap_or(default_state);
    let req = Request {
        config,
        instance: a.instance,
        mode,
        qemu: a.qemu,
        init,
        out: a.out,
        force: a.force,
        timeout: Duration::from_secs(a.timeout),
        state_dir,
    };
    let summary =
        acpi_capture::capture(&req, root, launch::host::probe(root)).map_err(capture_failure)?;
    if a.json {
        print_json(&summary)?;
    } else {
        println!(
            "captured the ACPI blobs of {} vCPUs, {} MiB, {} GPU(s) into {} in {:.0} s",
            summary.shape.cpus,
            summary.shape.memory_bytes >> 20,
            summary.shape.gpus,
            summary.dir.display(),
            summary.seconds
        );
        for (name, f) in &summary.files {
            println!("  {name}: {} bytes, sha256 {}", f.bytes, f.sha256);
        }
    }
    Ok(0)
}
