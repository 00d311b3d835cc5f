//! Entry point: parses the command line and wires configuration, logging and the server.

use anyhow::{Context, Result};
use clap::Parser;
use cocoon_agent::cli::{Cli, Command, SimulatedPkiArgs};
use cocoon_agent::control::ControlConfig;
use cocoon_agent::readiness::Readiness;
use cocoon_agent::{demo, engine, logging, server};

fn main() {
    // Before any thread exists: the CUDA backend's environment (see engine::backend).
    engine::backend::prepare();
    let cli = Cli::parse();
    let sink = logging::init();
    tracing::debug!(?sink, "logging initialised");
    if let Err(e) = run(cli) {
        tracing::error!(error = format!("{e:#}"), "cocoon-agent failed");
        eprintln!("cocoon-agent: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    // Kept until the server stops: the demo's simulated TD lives in it.
    let mut _demo_dir = None;
    let mut control = ControlConfig::default();
    let config = match cli.command {
        Command::Serve(a) => {
            control = a.control.config();
            a.into_config()?
        }
        Command::Demo(a) => {
            let (config, dir) = demo::prepare(a)?;
            _demo_dir = Some(dir);
            config
        }
        Command::SimulatedPki(a) => return simulated_pki(&a),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cocoon-io")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(server::run_with_control(
        config,
        Readiness::default(),
        control,
    ))
}

/// `simulated-pki`: what a host-side verifier needs to accept this seed's SIMULATED evidence.
fn simulated_pki(a: &SimulatedPkiArgs) -> Result<()> {
    let files = cocoon_agent::attest::simulated::write_files(a.seed, &a.out)?;
    println!(
        "SIMULATED TD PKI (seed {}), for tests and development only:\n  \
         mock root CA   {}\n  collateral     {}\n  manifest       {}\n  manifest key   {}",
        a.seed,
        files.root_ca.display(),
        files.collateral.display(),
        files.manifest.display(),
        files.manifest_key.display()
    );
    Ok(())
}
