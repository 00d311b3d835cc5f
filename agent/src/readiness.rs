//! Readiness gates for `GET /healthz`: the agent reports ready only when every registered gate
//! has opened. The model loader owns the `model` gate; attestation owns the `attestation` gate,
//! which opens once RTMR3 holds the agent's events and, with an RA-TLS listener, the first
//! certificate has been issued. Both are registered before any listener accepts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The gate the engine opens when the model is loaded.
pub const MODEL_GATE: &str = "model";
/// The gate attestation opens (see the module documentation).
pub const ATTESTATION_GATE: &str = "attestation";

/// A set of named gates, all closed until opened. Cheap to clone; clones share state.
#[derive(Clone, Default)]
pub struct Readiness {
    gates: Arc<Mutex<BTreeMap<String, bool>>>,
}

impl Readiness {
    /// A readiness with the given gates registered, all closed.
    pub fn with_gates(names: &[&str]) -> Readiness {
        let r = Readiness::default();
        for n in names {
            r.register(n);
        }
        r
    }

    /// Registers a closed gate (no-op if it exists).
    pub fn register(&self, name: &str) {
        if let Ok(mut g) = self.gates.lock() {
            g.entry(name.to_string()).or_insert(false);
        }
    }

    /// Opens a gate (registering it if needed).
    pub fn open(&self, name: &str) {
        if let Ok(mut g) = self.gates.lock() {
            g.insert(name.to_string(), true);
        }
    }

    /// The gates still closed; empty means ready. A poisoned lock reports not ready.
    pub fn pending(&self) -> Vec<String> {
        match self.gates.lock() {
            Ok(g) => g
                .iter()
                .filter(|(_, open)| !**open)
                .map(|(n, _)| n.clone())
                .collect(),
            Err(_) => vec!["internal".into()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_all_gates_open() {
        let r = Readiness::with_gates(&[MODEL_GATE]);
        r.register(ATTESTATION_GATE);
        assert_eq!(r.pending(), vec!["attestation".to_string(), "model".into()]);
        r.open(MODEL_GATE);
        assert_eq!(r.pending(), vec!["attestation".to_string()]);
        r.open(ATTESTATION_GATE);
        assert!(r.pending().is_empty());
    }
}
