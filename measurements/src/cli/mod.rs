//! Command-line interface of `cocoon-measure`.
//!
//! Each subcommand module owns its argument struct and a `run` function.

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
enum Command {}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {}
}
