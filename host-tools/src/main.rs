//! CLI wiring only: parses arguments with clap and calls the library modules.
//! Exit codes: 0 success (for `check`: the host can run a worker), 1 refusal or failure
//! (for `check`: the host cannot run a worker), 2 usage error or bad input.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use cocoon_host::gpu::{self, bind, sysfs::RealSysfs};
use cocoon_host::launch::{self, config::LaunchConfig, Mode};
use cocoon_host::pci::Bdf;
use cocoon_host::root::HostRoot;
use cocoon_host::runner::SystemRunner;
use cocoon_host::{check, model_pack};

mod acpi_cli;
mod release_cli;
mod running_cli;
use release_cli::{run_measure, run_publish, MeasureArgs, PublishArgs};
use running_cli::{LogsArgs, StatusArgs, VerifyRunningArgs};

/// Host tool for GPU owners running a COCOON confidential worker (Intel TDX VM with an NVIDIA
/// GPU passed through).
#[derive(Parser)]
#[command(name = "cocoon-host", version)]
struct Cli {
    /// Directory standing for the host's `/` (sysfs, procfs, /dev, /run). Tests point it at a
    /// fake tree.
    #[arg(long, global = true, default_value = "/")]
    root: PathBuf,
    /// Where bind records and instance pid files live [default: ROOT/run/cocoon-host].
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check that this host can run a worker: one line per requirement with PASS, FAIL or
    /// UNKNOWN and the fix. Exit 0 when nothing fails, 1 otherwise.
    Check {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List NVIDIA GPUs, hand one to vfio-pci and back.
    Gpu {
        #[command(subcommand)]
        command: GpuCommand,
    },
    /// Build the QEMU command line for a worker VM from a TOML/JSON config and run it.
    ///
    /// Refuses when the VM shape has no entry in the config's measurement manifest, image files
    /// are missing, the owner address is missing or invalid, the model disk does not match its
    /// root hash, or (when running) the instance's CID or agent port is taken or a GPU is not
    /// on vfio-pci.
    Launch {
        /// The launch config (.toml, or .json).
        config: PathBuf,
        /// Instance number N: guest CID 100+N, agent host port agent.port+N.
        #[arg(long, default_value_t = 0)]
        instance: u32,
        /// Print the exact argv, one shell-quoted argument per line, and do not run it.
        #[arg(long)]
        print: bool,
        /// Development only: run the same image without TDX and tell it (kernel cmdline
        /// `cocoon.simulated_td=1`) to run a SIMULATED TD, whose quotes no production
        /// verifier accepts.
        #[arg(long)]
        no_tdx: bool,
        /// Public key (64 hex digits, from `cocoon-measure keygen`) that must have signed the
        /// manifest. Without it the manifest's form and consistency are checked, not who
        /// signed it.
        #[arg(long, value_name = "FILE")]
        pubkey: Option<PathBuf>,
        /// The QEMU to run (e.g. ci/tools-qemu on a development machine).
        #[arg(long, value_name = "PROGRAM", default_value = cocoon_host::check::software::QEMU)]
        qemu: String,
    },
    /// The MRTD and RTMR0-2 (with --rtmr3-events also RTMR3 and the identity hashes) a TD of
    /// one VM shape will report when `launch` starts it with these release files.
    Measure(Box<MeasureArgs>),
    /// Compute the measurements of each VM shape, build a manifest, sign it with the release
    /// key, write it, and verify the written file.
    Publish(Box<PublishArgs>),
    /// QEMU's ACPI blobs of a VM shape (the input of RTMR0).
    Acpi {
        #[command(subcommand)]
        command: AcpiCommand,
    },
    /// Model disks for the worker.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// A running worker's agent: readiness, mode, model, RTMR3, certificate, load, over vsock
    /// (the agent answers only the host). Exit 0 when it is ready, 1 otherwise.
    Status(StatusArgs),
    /// A running worker's agent's most recent log lines, over vsock. The agent never logs
    /// prompts or completions.
    Logs(LogsArgs),
    /// Connect to a running worker's RA-TLS port and check its attestation against the signed
    /// manifest, as proxies do. Exit 0 only when it is accepted.
    VerifyRunning(Box<VerifyRunningArgs>),
}

#[derive(Subcommand)]
enum GpuCommand {
    /// List NVIDIA GPUs with their driver and IOMMU group.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Bind the GPU and the other functions of its device to vfio-pci (records the previous
    /// drivers). Refuses a device in use, not an NVIDIA GPU, or in a shared IOMMU group.
    Bind {
        bdf: String,
        #[arg(long)]
        json: bool,
    },
    /// Return a GPU bound by `gpu bind` to the drivers it had before.
    Unbind {
        bdf: String,
        #[arg(long)]
        json: bool,
    },
    /// Show one GPU: driver, IOMMU group members, bind record.
    Status {
        bdf: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AcpiCommand {
    /// Boot a launch config's VM (the `launch --no-tdx` argv) with a tiny capture guest
    /// instead of the image's initrd, read etc/table-loader, etc/acpi/rsdp and
    /// etc/acpi/tables from fw_cfg over the serial console, and write them to --out (the
    /// layout `measure --acpi-dir` and `publish --shape ...:ACPI_DIR` read).
    Capture(Box<acpi_cli::CaptureArgs>),
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Pack a GGUF into a reproducible model disk (GGUF padded to 4096 bytes) with a dm-verity
    /// hash tree; prints the root hash the worker's config must name.
    Pack {
        model: PathBuf,
        /// Output directory (model.img, model.verity, model.roothash, model-pack.json).
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// An error with the exit code it maps to.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

fn usage(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: 2,
        error: error.into(),
    }
}

fn refused(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: 1,
        error: error.into(),
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let s = serde_json::to_string_pretty(value)
        .context("serialising output")
        .map_err(refused)?;
    println!("{s}");
    Ok(())
}

fn parse_bdf(s: &str) -> Result<Bdf, Failure> {
    s.parse::<Bdf>().map_err(usage)
}

fn gpu_failure(e: bind::GpuError) -> Failure {
    if e.is_usage() {
        usage(e)
    } else {
        refused(e)
    }
}

fn run_gpu(root: &HostRoot, state_dir: &Path, cmd: GpuCommand) -> Result<u8, Failure> {
    match cmd {
        GpuCommand::List { json } => {
            let gpus = gpu::list(root, state_dir).map_err(gpu_failure)?;
            if json {
                print_json(&gpus)?;
            } else if gpus.is_empty() {
                println!("no NVIDIA GPU found");
            } else {
                for g in &gpus {
                    println!("{}", g.to_text());
                }
            }
        }
        GpuCommand::Status { bdf, json } => {
            let bdf = parse_bdf(&bdf)?;
            let v = gpu::status(root, state_dir, &bdf).map_err(gpu_failure)?;
            if json {
                print_json(&v)?;
            } else {
                println!("{}", v.to_text());
                for m in &v.members {
                    println!(
                        "  group member {} ({}, {}, driver {})",
                        m.bdf,
                        m.role.label(),
                        m.class,
                        m.driver.as_deref().unwrap_or("none")
                    );
                }
                match &v.bind_record {
                    Some(r) => println!(
                        "  bound by cocoon-host; unbind restores: {}",
                        r.devices
                            .iter()
                            .map(|d| format!(
                                "{} -> {}",
                                d.bdf,
                                d.driver.as_deref().unwrap_or("no driver")
                            ))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    None => println!("  no bind record"),
                }
            }
        }
        GpuCommand::Bind { bdf, json } => {
            let bdf = parse_bdf(&bdf)?;
            let mut sysfs = RealSysfs::new(root.clone());
            let out = bind::bind(root, &mut sysfs, state_dir, &bdf).map_err(gpu_failure)?;
            if json {
                print_json(&out)?;
            } else {
                for m in &out.moved {
                    println!(
                        "{}: {} -> vfio-pci",
                        m.bdf,
                        m.driver.as_deref().unwrap_or("no driver")
                    );
                }
                for a in &out.already {
                    println!("{a}: already on vfio-pci");
                }
                println!(
                    "{} (IOMMU group {}) is ready for passthrough",
                    out.gpu, out.iommu_group
                );
            }
        }
        GpuCommand::Unbind { bdf, json } => {
            let bdf = parse_bdf(&bdf)?;
            let mut sysfs = RealSysfs::new(root.clone());
            let out = bind::unbind(root, &mut sysfs, state_dir, &bdf).map_err(gpu_failure)?;
            if json {
                print_json(&out)?;
            } else {
                for d in &out.restored {
                    println!(
                        "{}: back on {}",
                        d.bdf,
                        d.driver.as_deref().unwrap_or("no driver")
                    );
                }
            }
        }
    }
    Ok(0)
}

fn launch_failure(e: launch::LaunchError) -> Failure {
    if e.is_usage() {
        usage(e)
    } else {
        refused(e)
    }
}

fn run(cli: Cli) -> Result<u8, Failure> {
    let root = HostRoot::new(&cli.root);
    let default_state = root.path("/run/cocoon-host").map_err(usage)?;
    match cli.command {
        Command::Check { json } => {
            let report = check::run(&root, &SystemRunner::default());
            if json {
                print_json(&report)?;
            } else {
                print!("{}", report.to_text());
            }
            Ok(if report.ready { 0 } else { 1 })
        }
        Command::Gpu { command } => {
            let state_dir = cli.state_dir.unwrap_or(default_state);
            run_gpu(&root, &state_dir, command)
        }
        Command::Launch {
            config,
            instance,
            print,
            no_tdx,
            pubkey,
            qemu,
        } => {
            let cfg =
                LaunchConfig::load(&config).map_err(|e| usage(launch::LaunchError::Config(e)))?;
            let key = pubkey
                .as_deref()
                .map(cocoon_measure::manifest::keyfile::read_verifying_key)
                .transpose()
                .map_err(usage)?;
            let state_dir = cli
                .state_dir
                .or_else(|| cfg.state_dir.clone())
                .unwrap_or(default_state);
            let mode = if no_tdx { Mode::SimulatedTd } else { Mode::Tdx };
            let prepared = launch::prepare(
                cfg,
                instance,
                mode,
                &qemu,
                key.as_ref(),
                launch::host::probe(&root),
            )
            .map_err(launch_failure)?;
            eprintln!(
                "manifest release {}, shape {} ({}){}",
                prepared.release,
                prepared.shape_name,
                prepared.boot.shape,
                if prepared.signature_checked {
                    ", signature verified"
                } else {
                    "; signature NOT checked (no --pubkey)"
                }
            );
            if mode == Mode::SimulatedTd {
                eprintln!("WARNING: --no-tdx: this VM is NOT confidential; it runs a SIMULATED TD for development");
            }
            for w in &prepared.host_warnings {
                eprintln!("WARNING: {w}");
            }
            if print {
                for w in launch::availability_warnings(&prepared, &root, &state_dir) {
                    eprintln!("warning: {w}");
                }
                print!("{}", launch::render_print(&prepared.argv));
                return Ok(0);
            }
            let code = launch::run(&prepared, &root, &state_dir).map_err(launch_failure)?;
            Ok(u8::try_from(code).unwrap_or(1))
        }
        Command::Acpi {
            command: AcpiCommand::Capture(a),
        } => acpi_cli::run_capture(*a, &root, cli.state_dir, default_state),
        Command::Measure(a) => run_measure(*a),
        Command::Status(a) => running_cli::run_status(a),
        Command::Logs(a) => running_cli::run_logs(a),
        Command::VerifyRunning(a) => running_cli::run_verify_running(*a),
        Command::Publish(a) => run_publish(*a),
        Command::Model {
            command: ModelCommand::Pack { model, out, json },
        } => {
            let info = model_pack::pack(&model, &out).map_err(|e| match e {
                model_pack::PackError::NotGguf(_) => usage(e),
                other => refused(other),
            })?;
            if json {
                print_json(&info)?;
            } else {
                println!("{}", info.root_hash);
            }
            Ok(0)
        }
    }
}

/// The error and its causes, joined with ": ", leaving out a cause whose text the message
/// already contains (many errors here show their source in their own message).
fn error_text(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("error: {}", error_text(&f.error));
            ExitCode::from(f.code)
        }
    }
}
