//! Entry point: parses the command line and wires configuration, logging and the server.

use anyhow::{Context, Result};
use clap::Parser;
use cocoon_agent::attest::td::TdSelection;
use cocoon_agent::attest::tls::{ClientAuth, TlsConfig};
use cocoon_agent::attest::AttestConfig;
use cocoon_agent::cli::{Cli, Command, SimulatedPkiArgs};
use cocoon_agent::readiness::Readiness;
use cocoon_agent::{demo, engine, integrity, logging, server};
use std::time::Duration;

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
    let config = match cli.command {
        Command::Serve(a) => a.into_config()?,
        Command::Demo(a) => {
            let model = demo::model_path()?;
            eprintln!("cocoon-agent demo: hashing {} ...", model.display());
            let digest = integrity::sha256_file(&model)?;
            let hex = hex::encode(digest);
            let dir = tempfile::Builder::new()
                .prefix("cocoon-demo-simulated-td-")
                .tempdir()
                .context("creating a temporary directory for the simulated TD")?;
            let attest = AttestConfig {
                td: TdSelection::Simulated {
                    dir: dir.path().to_path_buf(),
                    seed: a.simulated_seed,
                    registers: None,
                },
                tls: Some(TlsConfig {
                    listen: a.tls_listen,
                    cert_lifetime: Duration::from_secs(3600),
                    client_auth: ClientAuth::None,
                }),
            };
            let config = a
                .engine
                .into_raw(model, hex.clone(), None, Some(a.listen), attest)
                .validate()?;
            println!(
                "{}",
                demo::instructions(&demo::Banner {
                    plain: config.listen,
                    tls: a.tls_listen,
                    model_id: &config.api.model_id,
                    sha256: &hex,
                    td_dir: dir.path(),
                    seed: a.simulated_seed,
                })
            );
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
    runtime.block_on(server::run(config, Readiness::default()))
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
