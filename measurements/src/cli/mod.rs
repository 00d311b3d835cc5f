//! Command-line interface of `cocoon-measure`.
//!
//! Each subcommand module owns its argument struct and a `run` function.

mod compute;
mod eventlog;
mod gateway;
mod key_service;
mod keygen;
mod manifest;
mod quote;
mod verifier_args;

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
    /// Local plain-HTTP proxy that forwards only to a worker whose RA-TLS attestation verifies.
    ///
    /// Ordinary clients (e.g. an OpenAI SDK with base_url http://127.0.0.1:PORT/v1) talk plain
    /// HTTP to the gateway; it forwards each request over TLS 1.3 to --upstream, but only after
    /// the worker's certificate proved a TDX quote bound to its key, measurements matching a
    /// shape of the signed manifest, and RTMR3 events matching its measured config. Otherwise
    /// the client gets HTTP 502 with
    /// {"error":{"type":"attestation_refused","message":"<reason>"}} and nothing is forwarded.
    /// Responses stream through unbuffered; verified connections are reused.
    Gateway(gateway::GatewayArgs),
    /// The data-disk key-release service: hands a worker its data disk's LUKS2 passphrase
    /// only after the worker's RA-TLS client certificate verified against the signed manifest.
    ///
    /// The key is HKDF-SHA256 of the service secret and the owner address in the worker's
    /// measured config, so every image and VM shape the manifest admits opens the same disk.
    /// Workers pin the service's TLS key (`init` and `pin` print the pin). See docs/image.md,
    /// "Data disk".
    #[command(subcommand)]
    KeyService(key_service::KeyServiceCommand),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Compute(a) => compute::run_compute(a),
        Command::Transcript(a) => compute::run_transcript(a),
        Command::Quote(a) => quote::run(a),
        Command::Eventlog(c) => eventlog::run(c),
        Command::Manifest(c) => manifest::run(c),
        Command::Keygen(a) => keygen::run(a),
        Command::Gateway(a) => gateway::run(a),
        Command::KeyService(c) => key_service::run(c),
    }
}
