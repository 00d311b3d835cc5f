//! Entry point: parses the command line and wires configuration, logging and the server.

use anyhow::{Context, Result};
use clap::Parser;
use cocoon_agent::cli::{Cli, Command};
use cocoon_agent::readiness::Readiness;
use cocoon_agent::{demo, engine, integrity, logging, server};

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
    let config = match cli.command {
        Command::Serve(a) => a
            .engine
            .into_raw(a.model, a.model_sha256, a.model_id, a.listen)
            .validate()?,
        Command::Demo(a) => {
            let model = demo::model_path()?;
            eprintln!("cocoon-agent demo: hashing {} ...", model.display());
            let digest = integrity::sha256_file(&model)?;
            let hex = hex::encode(digest);
            let config = a
                .engine
                .into_raw(model, hex.clone(), None, a.listen)
                .validate()?;
            let base = format!("http://{}", config.listen);
            println!("{}", demo::instructions(&base, &config.api.model_id, &hex));
            config
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cocoon-io")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(server::run(config, Readiness::default()))
}
