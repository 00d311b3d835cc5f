//! Wiring for `serve`: integrity check, attestation (RTMR3, first RA-TLS certificate),
//! listeners, model loading behind the readiness gates.
//!
//! Order, and why: the model digest is checked first (nothing is measured for a wrong file);
//! then the TD is opened and RTMR3 extended, then the data disk opened (its key service checks
//! the measured config), then billing started on the ledger it holds, then the first
//! certificate issued — all before any socket is bound, so no connection is ever accepted by
//! an unmeasured agent. The model
//! loads in the background after the listeners are up; `/healthz` reports ready only when both
//! the `model` and the `attestation` gates are open.

use crate::api::{self, AppState};
use crate::attest::evidence;
use crate::attest::measure::{self, Measurement};
use crate::attest::measured::MeasuredConfig;
use crate::attest::td::Td;
use crate::attest::tls::{self as ratls_tls, CertStore};
use crate::config::ServeConfig;
use crate::control::{self, ControlConfig};
use crate::engine::EngineHandle;
use crate::metrics::Metrics;
use crate::readiness::{Readiness, ATTESTATION_GATE, MODEL_GATE};
use anyhow::{Context, Result};
use std::io::Write;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The agent's attestation state once start-up measured it.
struct Attested {
    td: Arc<Td>,
    measurement: Arc<Measurement>,
}

/// Opens the TD and measures the agent into RTMR3 (blocking work, off the runtime).
async fn attest(config: &ServeConfig) -> Result<Attested> {
    let measured = MeasuredConfig::from_config(config);
    let selection = config.attest.td.clone();
    let model_sha256 = config.model_sha256;
    let (td, measurement) = tokio::task::spawn_blocking(move || {
        let td = Td::open(&selection)?;
        let m = measure::measure(td.provider(), &measured, &model_sha256, td.mode())?;
        Ok::<_, crate::attest::AttestError>((td, m))
    })
    .await
    .context("attestation task")?
    .inspect_err(|e| tracing::error!(error = %e, "attestation failed"))
    .context("attestation")?;
    tracing::info!(
        mode = measurement.mode.as_str(),
        rtmr3 = %hex::encode(measurement.rtmr3),
        config_sha256 = %hex::encode(sha256(&measurement.config_json)),
        "RTMR3 extended with the agent's events (config, model, mode)"
    );
    Ok(Attested {
        td: Arc::new(td),
        measurement: Arc::new(measurement),
    })
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

fn announce(line: String) {
    println!("{line}");
    let _ = std::io::stdout().flush();
}

/// Runs the server until SIGINT/SIGTERM. Fails before listening if the model file does not
/// match its configured digest or attestation fails, and exits with an error if the model
/// cannot be loaded.
pub async fn run(config: ServeConfig, readiness: Readiness) -> Result<()> {
    run_with_control(config, readiness, ControlConfig::default()).await
}

/// [`run`] with the read-only host-control endpoint (`crate::control`), bound after the agent
/// measured itself and before the API listeners.
pub async fn run_with_control(
    config: ServeConfig,
    readiness: Readiness,
    control: ControlConfig,
) -> Result<()> {
    let started = std::time::Instant::now();
    readiness.register(MODEL_GATE);
    readiness.register(ATTESTATION_GATE);
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

    let attested = attest(&config).await?;
    // The data disk holds the ledger: opened after measuring (the key service checks the
    // measured config) and before billing opens the ledger on it.
    if let Some(disk) = &config.data_disk {
        crate::data_disk::open(disk, &attested.td, &attested.measurement)
            .await
            .inspect_err(|e| tracing::error!(error = format!("{e:#}"), "data disk not opened"))
            .context("opening the data disk (--open-data-disk)")?;
    }
    let billing = crate::billing::BillingService::start(&config)
        .await
        .context("starting billing (--billing)")?;
    let tls = match &config.attest.tls {
        None => None,
        Some(tls) => {
            let (td, m, lifetime) = (
                attested.td.clone(),
                attested.measurement.clone(),
                tls.cert_lifetime,
            );
            let first =
                tokio::task::spawn_blocking(move || evidence::issue(td.provider(), &m, lifetime))
                    .await
                    .context("certificate task")?
                    .inspect_err(|e| tracing::error!(error = %e, "RA-TLS certificate failed"))
                    .context("issuing the first RA-TLS certificate")?;
            ratls_tls::log_issued(&first, "RA-TLS certificate issued");
            let store = Arc::new(CertStore::new(first));
            let server_config = ratls_tls::server_config(store.clone(), &tls.client_auth)?;
            Some((tls.clone(), store, server_config))
        }
    };
    readiness.open(ATTESTATION_GATE);
    let cert_store = tls.as_ref().map(|(_, store, _)| store.clone());
    let control_vsock = control
        .vsock_port
        .map(control::listen::bind_vsock)
        .transpose()?;
    let control_unix = control
        .unix
        .as_deref()
        .map(control::listen::bind_unix)
        .transpose()?;

    let plain = match config.listen {
        None => None,
        Some(listen) => {
            let listener = TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            let addr = listener.local_addr().context("reading the bound address")?;
            tracing::info!(%addr, "listening (plain HTTP, loopback only: local development)");
            announce(format!("cocoon-agent: listening on http://{addr}"));
            Some(listener)
        }
    };
    let tls = match tls {
        None => None,
        Some((tls, store, server_config)) => {
            let listener = TcpListener::bind(tls.listen)
                .await
                .with_context(|| format!("binding {} (RA-TLS)", tls.listen))?;
            let addr = listener.local_addr().context("reading the bound address")?;
            tracing::info!(%addr, client_auth = tls.client_auth.name(), "listening (RA-TLS, TLS 1.3)");
            announce(format!(
                "cocoon-agent: listening on https://{addr} (RA-TLS)"
            ));
            let renewal = tokio::spawn(ratls_tls::renew_forever(
                attested.td.clone(),
                attested.measurement.clone(),
                store,
                tls.cert_lifetime,
            ));
            Some((listener, server_config, tls.client_auth.clone(), renewal))
        }
    };

    let metrics = Arc::new(Metrics::new());
    let mut control_tasks = Vec::new();
    if control.is_enabled() {
        let sources = Arc::new(control::status::Sources {
            readiness: readiness.clone(),
            metrics: metrics.clone(),
            mode: attested.measurement.mode,
            model_id: config.api.model_id.clone(),
            model_sha256: config.model_sha256,
            rtmr3: attested.measurement.rtmr3,
            config_sha256: sha256(&attested.measurement.config_json),
            certs: cert_store,
            started,
        });
        if let Some(listener) = control_vsock {
            tracing::info!(
                port = control.vsock_port,
                "host-control endpoint listening (vsock, host CID 2 only, read-only)"
            );
            control_tasks.push(control::listen::spawn_vsock(listener, sources.clone()));
        }
        if let Some(listener) = control_unix {
            tracing::info!(
                path = ?control.unix,
                "host-control endpoint listening (unix socket, development)"
            );
            control_tasks.push(control::listen::spawn_unix(listener, sources));
        }
    }
    let state = Arc::new(
        AppState::new(config.api.clone(), readiness.clone(), metrics.clone())
            .with_billing(billing.as_ref().map(|b| b.billing.clone())),
    );
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

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        // An error means the sender is gone, which also means shutting down.
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mut renewal = None;
    let plain_server = {
        let (state, stop) = (state.clone(), stopped(stop_rx.clone()));
        async move {
            if let Some(listener) = plain {
                api::serve(listener, state, stop).await;
            }
        }
    };
    let tls_server = {
        let (state, stop) = (state.clone(), stopped(stop_rx.clone()));
        let tls = tls.map(|(listener, server_config, client_auth, task)| {
            renewal = Some(task);
            (listener, server_config, client_auth)
        });
        async move {
            if let Some((listener, server_config, client_auth)) = tls {
                ratls_tls::serve(listener, server_config, client_auth, state, stop).await;
            }
        }
    };
    let server = async {
        tokio::join!(plain_server, tls_server);
    };
    tokio::pin!(server);
    let result = tokio::select! {
        () = &mut server => Ok(()),
        r = load => match r {
            Ok(Ok(())) => {
                server.await;
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "model load failed");
                Err(e).context("starting the inference engine")
            }
            Err(e) => Err(e).context("model load task"),
        },
    };
    if let Some(task) = renewal {
        task.abort();
    }
    for task in control_tasks {
        task.abort();
    }
    if let Some(b) = billing {
        b.stop(std::time::Duration::from_secs(60)).await;
    }
    drop(verified);
    if result.is_ok() {
        tracing::info!("shutting down");
    }
    result
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
