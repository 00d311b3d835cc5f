//! `eventlog replay`: parse a TD's CCEL event log, replay it per RTMR and compare it with the
//! events expected from a manifest (or, with --firmware etc., computed from the release files).
//!
//! Exit status: 0 when the log parses (and, with an expectation, matches it), 1 when it differs
//! from the expectation, 2 on unreadable or malformed input.

use super::manifest::{read_limited, ImageArgs};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use cocoon_measure::eventlog::{self, ccel, Expectation, Transcript};
use cocoon_measure::manifest::{parse_verifying_key, Manifest, MAX_MANIFEST_BYTES};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum EventlogCommand {
    /// Parse a CCEL event log, replay RTMR0-3 and compare each event with what is expected.
    ///
    /// On a TD: --log /sys/firmware/acpi/tables/data/CCEL --ccel-table /sys/firmware/acpi/tables/CCEL.
    /// The first event that differs is explained by the input that determines it (kernel,
    /// cmdline, initrd, acpi, td-hob, cfv, config, firmware). Exit status 0: parsed (and matches),
    /// 1: differs from the expectation, 2: bad input.
    Replay(ReplayArgs),
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The event log (the log area, e.g. /sys/firmware/acpi/tables/data/CCEL).
    #[arg(long, value_name = "FILE")]
    log: PathBuf,
    /// The ACPI CCEL table (/sys/firmware/acpi/tables/CCEL): checked, and the log must fit its
    /// log area (LAML).
    #[arg(long, value_name = "FILE")]
    ccel_table: Option<PathBuf>,
    /// Compare with the events of this measurement manifest.
    #[arg(long, value_name = "MANIFEST", conflicts_with = "firmware")]
    expect: Option<PathBuf>,
    /// VM shape of the manifest to compare with (default: the only one).
    #[arg(long, value_name = "NAME", requires = "expect")]
    shape: Option<String>,
    /// Public key file: verify the manifest's signature before using it.
    #[arg(long, value_name = "FILE", requires = "expect")]
    pubkey: Option<PathBuf>,
    /// Compare with events computed from these release files instead of a manifest (needs
    /// --kernel, --cpus, --memory and, to check RTMR0, --acpi).
    #[arg(long, value_name = "FILE")]
    firmware: Option<PathBuf>,
    #[command(flatten)]
    image: ImageArgs,
    /// Number of vCPUs (with --firmware).
    #[arg(long, requires = "firmware")]
    cpus: Option<u32>,
    /// Guest memory (with --firmware): bytes, or with a K/M/G/T suffix.
    #[arg(long, value_name = "SIZE", requires = "firmware", value_parser = super::compute::parse_memory)]
    memory: Option<u64>,
    /// Number of GPUs (with --firmware).
    #[arg(long, default_value_t = 0)]
    gpus: u32,
    /// QEMU's ACPI blobs for this VM shape (with --firmware); without it RTMR0 is not compared.
    #[arg(long, value_name = "DIR", requires = "firmware")]
    acpi: Option<PathBuf>,
    /// Print the transcript as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: EventlogCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        EventlogCommand::Replay(a) => replay(a),
    }
}

fn expectation(a: &ReplayArgs) -> anyhow::Result<Option<Expectation>> {
    if let Some(path) = &a.expect {
        let bytes = read_limited(path, MAX_MANIFEST_BYTES, "manifest")?;
        let manifest =
            Manifest::parse(&bytes).with_context(|| format!("manifest {}", path.display()))?;
        match &a.pubkey {
            Some(k) => {
                let text = String::from_utf8(read_limited(k, 1024, "public key")?)
                    .with_context(|| format!("public key {} is not text", k.display()))?;
                let key = parse_verifying_key(&text)
                    .with_context(|| format!("public key {}", k.display()))?;
                manifest
                    .verify(&key)
                    .with_context(|| format!("manifest {}", path.display()))?;
            }
            None => {
                eprintln!("cocoon-measure: warning: manifest signature not checked (no --pubkey)")
            }
        }
        let body = &manifest.body;
        let name = match (&a.shape, body.shapes.as_slice()) {
            (Some(n), _) => n.clone(),
            (None, [only]) => only.name.clone(),
            (None, shapes) => bail!(
                "manifest {} has {} VM shapes; choose one with --shape ({})",
                path.display(),
                shapes.len(),
                shapes
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return Ok(Some(body.expectation(&name)?));
    }
    if let Some(firmware) = &a.firmware {
        let (Some(cpus), Some(memory)) = (a.cpus, a.memory) else {
            bail!("--firmware needs --cpus and --memory (and --acpi to check RTMR0)");
        };
        let shape = cocoon_measure::boot::VmShape {
            cpus,
            memory_bytes: memory,
            gpus: a.gpus,
        };
        let (inputs, opts) = a.image.boot_inputs(firmware, shape, a.acpi.clone())?;
        let m = cocoon_measure::boot::compute(&inputs, &opts)?;
        return Ok(Some(Expectation::from_boot(
            &m,
            format!("computed from {}", firmware.display()),
        )));
    }
    if a.image.kernel.is_some() || a.image.initrd.is_some() || !a.image.cmdline.is_empty() {
        bail!("--kernel, --initrd and --cmdline describe release files to compute from: they need --firmware");
    }
    Ok(None)
}

fn replay(a: ReplayArgs) -> anyhow::Result<ExitCode> {
    let log_bytes = read_limited(&a.log, eventlog::MAX_LOG_BYTES, "event log")?;
    let log =
        eventlog::parse(&log_bytes).with_context(|| format!("event log {}", a.log.display()))?;
    let table = match &a.ccel_table {
        Some(p) => {
            let bytes = read_limited(p, 4096, "CCEL table")?;
            let t =
                ccel::parse_table(&bytes).with_context(|| format!("CCEL table {}", p.display()))?;
            t.check_log(log_bytes.len())
                .with_context(|| format!("event log {}", a.log.display()))?;
            Some(t)
        }
        None => None,
    };
    let expect = expectation(&a)?;
    let transcript = Transcript::build(&log, table, expect.as_ref());
    if a.json {
        let out = serde_json::json!({
            "matches": expect.as_ref().map(|_| transcript.matches()),
            "first_mismatch": transcript.first_mismatch().map(ToString::to_string),
            "transcript": transcript,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).context("serialising the transcript")?
        );
    } else {
        print!("{transcript}");
    }
    Ok(match expect {
        Some(_) if !transcript.matches() => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}
