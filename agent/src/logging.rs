//! Structured logging: to the systemd journal when started by systemd (`JOURNAL_STREAM` set),
//! to stderr otherwise. Filter with `RUST_LOG` (default `info`, llama.cpp's own logs at `warn`).
//!
//! Policy: prompts and completions are never logged, only their sizes in tokens or bytes.
//!
//! Besides the primary sink, every subscriber gets [`crate::control::log_ring::RingLayer`]:
//! the agent's recent lines in memory for the host-control endpoint's `GET /logs`.

use crate::control::log_ring::RingLayer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Where logs went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Journald,
    Stderr,
}

/// Installs the global subscriber. Call once, early in `main`.
pub fn init() -> Sink {
    let filter = || {
        EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info,llama_cpp_2=warn,llama-cpp-2=warn"))
    };
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        match tracing_journald::layer() {
            Ok(layer) => {
                let layer = layer.with_syslog_identifier("cocoon-agent".into());
                if tracing_subscriber::registry()
                    .with(filter())
                    .with(layer)
                    .with(RingLayer)
                    .try_init()
                    .is_ok()
                {
                    return Sink::Journald;
                }
            }
            Err(e) => eprintln!("cocoon-agent: journald unavailable ({e}), logging to stderr"),
        }
    }
    let _ = tracing_subscriber::registry()
        .with(filter())
        .with(RingLayer)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr),
        )
        .try_init();
    Sink::Stderr
}
