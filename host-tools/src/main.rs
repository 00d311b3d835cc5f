use clap::Parser;

/// Host tools for GPU owners running a COCOON worker VM.
///
/// Not implemented yet: `check`, `gpu`, `launch`, `model pack`, `measure`/`publish`,
/// `status`/`logs` (tracked in the host-tools issue).
#[derive(Parser)]
#[command(name = "cocoon-host", version)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    Cli::parse();
    anyhow::bail!("cocoon-host has no subcommands yet; see `cocoon-host --help`")
}
