//! `GET /status`: what the host operator may know about a running agent.
//!
//! Only configuration, attestation values that every verifier sees anyway (RTMR3, the
//! certificate's digest and expiry) and aggregate counters; nothing derived from a request's
//! content.

use crate::attest::tls::CertStore;
use crate::attest::Mode;
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

/// The `format` of [`StatusReport`].
pub const STATUS_FORMAT: &str = "cocoon-agent-status/v1";

/// What status reads from the running agent.
#[derive(Clone)]
pub struct Sources {
    pub readiness: Readiness,
    pub metrics: Arc<Metrics>,
    pub mode: Mode,
    pub model_id: String,
    pub model_sha256: [u8; 32],
    /// RTMR3 as read back after the agent's extends.
    pub rtmr3: [u8; 48],
    /// SHA-256 of the measured config JSON (the `cocoon.config` event payload).
    pub config_sha256: [u8; 32],
    /// The RA-TLS certificates, when there is an RA-TLS listener.
    pub certs: Option<Arc<CertStore>>,
    pub started: Instant,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub format: &'static str,
    pub version: &'static str,
    /// Every readiness gate open (`/healthz` would answer 200).
    pub ready: bool,
    /// Gates still closed (`model`, `attestation`).
    pub pending: Vec<String>,
    /// `production` or `simulated`.
    pub mode: &'static str,
    pub model: ModelStatus,
    pub attestation: AttestationStatus,
    pub uptime_secs: u64,
    pub engine: EngineStatus,
    pub requests: RequestCounters,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelStatus {
    pub id: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttestationStatus {
    pub rtmr3: String,
    pub config_sha256: String,
    /// The certificate served now; `null` without an RA-TLS listener.
    pub certificate: Option<CertificateStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CertificateStatus {
    pub sha256: String,
    /// Unix seconds.
    pub not_after: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EngineStatus {
    pub queue_depth: i64,
    pub active_sequences: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestCounters {
    /// HTTP requests answered on the API listeners, any status.
    pub http_total: u64,
    /// Inference requests that ran to completion.
    pub completed: u64,
    /// Inference requests abandoned by their client.
    pub cancelled: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl StatusReport {
    pub fn read(s: &Sources) -> StatusReport {
        let pending = s.readiness.pending();
        let m = s.metrics.snapshot();
        StatusReport {
            format: STATUS_FORMAT,
            version: env!("CARGO_PKG_VERSION"),
            ready: pending.is_empty(),
            pending,
            mode: s.mode.as_str(),
            model: ModelStatus {
                id: s.model_id.clone(),
                sha256: hex::encode(s.model_sha256),
            },
            attestation: AttestationStatus {
                rtmr3: hex::encode(s.rtmr3),
                config_sha256: hex::encode(s.config_sha256),
                certificate: s.certs.as_ref().map(|store| {
                    let cert = store.current();
                    CertificateStatus {
                        sha256: hex::encode(cert.cert_sha256),
                        not_after: cert.not_after_unix(),
                    }
                }),
            },
            uptime_secs: s.started.elapsed().as_secs(),
            engine: EngineStatus {
                queue_depth: m.queue_depth,
                active_sequences: m.active_sequences,
            },
            requests: RequestCounters {
                http_total: m.http_requests,
                completed: m.completed_requests,
                cancelled: m.cancelled,
                prompt_tokens: m.prompt_tokens,
                completion_tokens: m.completion_tokens,
            },
        }
    }
}
