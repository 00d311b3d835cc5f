//! Wiring for `serve`: integrity check, listener, model loading behind the readiness gate.

use crate::api::{self, AppState};
use crate::config::ServeConfig;
use crate::engine::EngineHandle;
use crate::metrics::Metrics;
use crate::readiness::{Readiness, MODEL_GATE};
use anyhow::{Context, Result};
use std::io::Write;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Runs the server until SIGINT/SIGTERM. Fails before listening if the model file does not
/// match its configured digest, and exits with an error if the model cannot be loaded.
pub async fn run(config: ServeConfig, readiness: Readiness) -> Result<()> {
    readiness.register(MODEL_GATE);
    let path = config.engine.model_path.clone();
    let digest = config.model_sha256;
    tracing::info!(model = %path.display(), "verifying model SHA-256");
    let verified =
        tokio::task::spawn_blocking(move || crate::integrity::VerifiedModel::open(&path, &digest))
            .await
            .context("integrity check task")?
            .inspect_err(|e| tracing::error!(error = %e, "model integrity check failed"))?;
    tracing::info!(sha256 = %hex::encode(config.model_sha256), "model digest verified");
    let mut config = config;
    config.engine.model_path = verified.load_path();

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%addr, "listening (plain HTTP, loopback only: local development)");
    println!("cocoon-agent: listening on http://{addr}");
    let _ = std::io::stdout().flush();

    let metrics = Arc::new(Metrics::new());
    let state = Arc::new(AppState::new(
        config.api.clone(),
        readiness.clone(),
        metrics.clone(),
    ));
    let engine_cfg = config.engine.clone();
    let load_state = state.clone();
    let load = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let engine = EngineHandle::start(engine_cfg, metrics)?;
        let _ = load_state.engine.set(engine);
        load_state.readiness.open(MODEL_GATE);
        tracing::info!(secs = started.elapsed().as_secs_f64(), "model loaded");
        Ok::<_, crate::engine::EngineError>(())
    });

    let server = api::serve(listener, state, shutdown_signal());
    tokio::pin!(server);
    tokio::select! {
        () = &mut server => return Ok(()),
        r = load => {
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "model load failed");
                    return Err(e).context("starting the inference engine");
                }
                Err(e) => return Err(e).context("model load task"),
            }
        }
    }
    server.await;
    drop(verified);
    tracing::info!("shutting down");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
