//! Command-line interface of `cocoon-measure`.
//!
//! Each subcommand module owns its argument struct and a `run` function.

mod compute;
mod eventlog;
mod keygen;
mod manifest;
mod quote;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Compute, replay and verify Intel TDX measurements of the COCOON worker image, offline.
#[derive(Parser)]
#[command(name = "cocoon-measure", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Expected MRTD and RTMR0-2 of a QEMU direct kernel boot, from files.
    Compute(compute::ComputeArgs),
    /// Every event of every register of a QEMU direct kernel boot, human readable.
    Transcript(compute::TranscriptArgs),
    /// Verify Intel TDX quotes (DCAP) and print what they attest.
    Quote(quote::QuoteArgs),
    /// Parse and replay a TD's CCEL event log and compare it with the expected events.
    #[command(subcommand)]
    Eventlog(eventlog::EventlogCommand),
    /// Build, sign, verify and show signed measurement manifests.
    #[command(subcommand)]
    Manifest(manifest::ManifestCommand),
    /// Create an Ed25519 key pair for signing manifests.
    Keygen(keygen::KeygenArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Compute(a) => compute::run_compute(a),
        Command::Transcript(a) => compute::run_transcript(a),
        Command::Quote(a) => quote::run(a),
        Command::Eventlog(c) => eventlog::run(c),
        Command::Manifest(c) => manifest::run(c),
        Command::Keygen(a) => keygen::run(a),
    }
}
