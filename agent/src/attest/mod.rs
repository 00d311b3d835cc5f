//! Self-attestation: the agent measures what it is into RTMR3 and proves it to TLS peers.
//!
//! Start-up, in order (see [`crate::server::run`]):
//! 1. [`td::Td::open`]: the Linux TDX guest interfaces, or a simulated TD started in-process
//!    whose files the same [`cocoon_tdx::TdxProvider`] code then uses;
//! 2. [`measure::measure`]: RTMR3 must read all zero; the agent extends it with the events
//!    `cocoon.config` (SHA-256 of [`measured::MeasuredConfig`]'s canonical JSON),
//!    `cocoon.model` (the model's SHA-256) and `cocoon.mode` (`production` or `simulated`),
//!    then reads it back and checks it equals the replay of those events;
//! 3. [`evidence::issue`]: a fresh key, one quote binding its SPKI, a short-lived self-signed
//!    RA-TLS certificate carrying quote, events and config;
//! 4. [`tls`]: a TLS 1.3 listener serving the current certificate, renewed in the background.
//!
//! The readiness gate [`crate::readiness::ATTESTATION_GATE`] opens once 2 and (with an RA-TLS
//! listener) 3 are done.

pub mod client_auth;
pub mod evidence;
pub mod measure;
pub mod measured;
pub mod simulated;
pub mod td;
pub mod tls;

use std::path::PathBuf;

/// Why attestation could not be set up. Each variant names the interface or value involved.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    // Messages include the inner error rather than exposing it as `source`, so that a report
    // that prints the whole chain does not print it twice.
    #[error("{0}; use --simulated-td DIR for development")]
    NotATd(cocoon_tdx::TdxError),
    #[error(transparent)]
    Tdx(#[from] cocoon_tdx::TdxError),
    #[error("starting the simulated TD in {}: {inner}", dir.display())]
    Simulated {
        dir: PathBuf,
        inner: cocoon_tdx::TdxError,
    },
    #[error(transparent)]
    Registers(#[from] cocoon_tdx::simulated::RegistersError),
    #[error(
        "RTMR3 is {value}, not all zero: something else extended it before this agent started \
         (another process, or an earlier run of the agent in this TD); refusing to start, \
         because verifiers replay RTMR3 from this agent's events alone. Reboot the TD."
    )]
    Rtmr3NotZero { value: String },
    #[error(
        "after extending, RTMR3 reads {found} but replaying the agent's events gives {expected}: \
         another writer extended RTMR3 concurrently, or the extend interface misbehaves"
    )]
    Rtmr3Mismatch { found: String, expected: String },
    #[error("RTMR3 event {kind}: {inner}")]
    Event {
        kind: &'static str,
        inner: cocoon_measure::rtmr3::Rtmr3Error,
    },
    #[error("RA-TLS certificate: {0}")]
    Certificate(cocoon_measure::ratls::RatlsError),
    #[error("RA-TLS certificate validity: {0}")]
    Clock(String),
    #[error("TLS configuration: {0}")]
    Tls(rustls::Error),
    #[error("--tls-client-auth ratls: {0}")]
    ClientPolicy(String),
}

/// What the TD is: measured into RTMR3 as the `cocoon.mode` event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A real TD over the Linux TDX guest interfaces.
    Production,
    /// A simulated TD: nothing is confidential, quotes chain to a mock root.
    Simulated,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Production => cocoon_measure::ratls::MODE_PRODUCTION,
            Mode::Simulated => cocoon_measure::ratls::MODE_SIMULATED,
        }
    }
}

/// The attestation part of the serve configuration.
#[derive(Debug, Clone)]
pub struct AttestConfig {
    pub td: td::TdSelection,
    /// The RA-TLS listener, if any.
    pub tls: Option<tls::TlsConfig>,
}
