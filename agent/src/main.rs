//! Entry point: parses the command line and wires configuration, logging and the server.

use anyhow::{Context, Result};
use clap::Parser;
use cocoon_agent::cli::{Cli, Command, DataKeyArgs, SimulatedPkiArgs};
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
        Command::DataKey(a) => return data_key(&a),
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

/// `data-key`: the data disk's LUKS2 key on stdout, for `cryptsetup --key-file=-`.
fn data_key(a: &DataKeyArgs) -> Result<()> {
    use std::io::IsTerminal;
    let provider = a.provider()?;
    let key = cocoon_agent::data_key::derive(&provider)?;
    if let cocoon_agent::data_key::KeyProvider::Simulated { seed, registers } = &provider {
        let bound = match registers {
            Some(path) => format!("the registers in {}", path.display()),
            None => "the seed's default registers".to_string(),
        };
        eprintln!(
            "cocoon-agent: SIMULATED data-disk key (seed {seed}, bound to MRTD and RTMR0-2 of \
             {bound}): anyone who knows the seed can derive it; nothing on the disk is confidential"
        );
    }
    let stdout = std::io::stdout();
    let is_terminal = stdout.is_terminal();
    cocoon_agent::data_key::write_key(&mut stdout.lock(), is_terminal, &key)?;
    Ok(())
}
