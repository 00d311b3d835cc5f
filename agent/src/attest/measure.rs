//! Measuring the agent into RTMR3, once, before it accepts any connection.
//!
//! Invariants enforced here:
//! * RTMR3 reads all zero before the first extend, so that the agent's events alone explain
//!   its value; or it already reads exactly the replay of this agent's events (a restart in
//!   the same TD with the same config and model), and nothing is extended. Any other value
//!   refuses to start: verifiers could not replay RTMR3 from one event list otherwise;
//! * the events are `cocoon.config`, `cocoon.model`, `cocoon.mode`, extended in that order
//!   through the provider's RTMR3 extend interface;
//! * afterwards RTMR3 reads exactly `rtmr3::replay(events)`.

use super::measured::MeasuredConfig;
use super::{AttestError, Mode};
use cocoon_measure::rtmr3::{self, kinds, Rtmr3Event};
use cocoon_tdx::TdxProvider;

/// What the agent measured: published in every RA-TLS certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measurement {
    /// The events extended, in order.
    pub events: Vec<Rtmr3Event>,
    /// The canonical config JSON whose SHA-256 is the `cocoon.config` payload.
    pub config_json: Vec<u8>,
    /// RTMR3 as read back after the extends.
    pub rtmr3: [u8; 48],
    pub mode: Mode,
}

fn event(kind: &'static str, payload: Vec<u8>) -> Result<Rtmr3Event, AttestError> {
    Rtmr3Event::new(kind, payload).map_err(|inner| AttestError::Event { kind, inner })
}

/// The three events for `config` in `mode`.
pub fn events(
    config: &MeasuredConfig,
    model_sha256: &[u8; 32],
    mode: Mode,
) -> Result<Vec<Rtmr3Event>, AttestError> {
    Ok(vec![
        event(kinds::CONFIG, config.sha256().to_vec())?,
        event(kinds::MODEL, model_sha256.to_vec())?,
        event(kinds::MODE, mode.as_str().as_bytes().to_vec())?,
    ])
}

/// Extends RTMR3 with the agent's events (see the module invariants). Blocking: the
/// interfaces are files that may block (the simulated TD serves them from threads).
pub fn measure(
    provider: &TdxProvider,
    config: &MeasuredConfig,
    model_sha256: &[u8; 32],
    mode: Mode,
) -> Result<Measurement, AttestError> {
    let events = events(config, model_sha256, mode)?;
    let expected = rtmr3::replay(&events).value();
    let before = provider.read_rtmr(3)?;
    if before == expected {
        // An earlier run of this agent, with this config and model, measured itself in this
        // TD and stopped (e.g. the key service was unreachable): the register already says
        // exactly what these events say.
        tracing::info!("RTMR3 already holds these events (agent restarted in the same TD)");
    } else if before != [0u8; 48] {
        return Err(AttestError::Rtmr3NotZero {
            value: hex::encode(before),
        });
    } else {
        for e in &events {
            provider.extend_rtmr3(&e.digest())?;
        }
    }
    let found = provider.read_rtmr(3)?;
    if found != expected {
        return Err(AttestError::Rtmr3Mismatch {
            found: hex::encode(found),
            expected: hex::encode(expected),
        });
    }
    Ok(Measurement {
        events,
        config_json: config.canonical_json(),
        rtmr3: found,
        mode,
    })
}
