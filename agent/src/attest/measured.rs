//! The measured configuration: every setting that changes what the agent accepts, serves or
//! pays, as one canonical JSON object whose SHA-256 is the `cocoon.config` RTMR3 event and
//! which the RA-TLS certificate carries verbatim.
//!
//! Measured (here): model id and SHA-256, context size, parallel sequences, queue limit, batch
//! size, GPU layers, chat template override, body limit, I/O timeout, connection limit,
//! whether the plain loopback listener is on, and the RA-TLS listener's certificate lifetime
//! and client-authentication mode, and the pin of the data-disk key service.
//!
//! Not measured: file paths (the model's bytes are pinned by its SHA-256), listen addresses
//! (where, not what; the plain listener is forced onto loopback and its presence is measured),
//! llama.cpp's thread count (speed only), the log filter (no level logs prompts or
//! completions), the simulated TD's directory, seed and preset registers (the quote itself
//! carries the registers and chains to the seed's mock root; the mode is measured).
//!
//! Invariant (canonical form): [`MeasuredConfig::canonical_json`] is `serde_json`'s compact
//! output of this struct, so fields appear in declaration order, with no whitespace, integers
//! in decimal, strings with serde_json's fixed escaping, absent options as `null`. There are no
//! floats and no maps. Adding a setting is one field here plus its value in
//! [`MeasuredConfig::from_config`]; bump [`FORMAT`] when the meaning of a field changes.

use super::client_auth::MeasuredClientAuth;
use crate::config::ServeConfig;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The `format` field: names this layout.
pub const FORMAT: &str = "cocoon-agent-config/v1";

/// Settings of the RA-TLS listener that peers can observe or depend on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeasuredTls {
    /// Certificate validity period, in seconds.
    pub cert_lifetime_secs: u64,
    /// `none` or `ratls` (mutual RA-TLS).
    pub client_auth: String,
    /// With `ratls`: the inputs of the client verifier (see `attest::client_auth`).
    pub client_policy: Option<MeasuredClientAuth>,
}

/// See the module documentation for what is (and is not) here, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeasuredConfig {
    pub format: &'static str,
    pub model_id: String,
    /// Lowercase hex.
    pub model_sha256: String,
    pub ctx: u32,
    pub parallel: u32,
    pub queue: u64,
    pub batch: u32,
    /// Layers offloaded to the GPU (decides whether weights and activations live in GPU
    /// memory, which must then be inside the confidential boundary too).
    pub gpu_layers: u32,
    /// The `--chat-template` override; `null` means the model's own (pinned by its digest).
    pub chat_template: Option<String>,
    pub body_limit: u64,
    pub io_timeout_secs: u64,
    pub max_connections: u64,
    /// Whether the unauthenticated plain HTTP listener (loopback only) is on.
    pub plain_http: bool,
    /// The RA-TLS listener, `null` when there is none.
    pub tls: Option<MeasuredTls>,
    /// Prices, payout destination and policy, chain endpoint (`billing::MeasuredBilling`);
    /// `null` when the agent serves for free. Paths and the chain API key are not measured.
    pub billing: Option<crate::billing::MeasuredBilling>,
    /// SHA-256 (hex) of the TLS public key of the key service the data-disk key comes from
    /// (`--data-key-service-pin`); `null` without one (no data disk, or a SIMULATED key).
    pub data_key_service_pin: Option<String>,
}

impl MeasuredConfig {
    /// The measured view of a validated configuration.
    pub fn from_config(config: &ServeConfig) -> MeasuredConfig {
        MeasuredConfig {
            format: FORMAT,
            model_id: config.api.model_id.clone(),
            model_sha256: hex::encode(config.model_sha256),
            ctx: config.engine.ctx_per_seq,
            parallel: config.engine.parallel,
            queue: config.engine.queue as u64,
            batch: config.engine.batch_tokens,
            gpu_layers: config.engine.gpu_layers,
            chat_template: config.engine.chat_template.clone(),
            body_limit: config.api.body_limit as u64,
            io_timeout_secs: config.api.io_timeout.as_secs(),
            max_connections: config.api.max_connections as u64,
            plain_http: config.listen.is_some(),
            tls: config.attest.tls.as_ref().map(|t| MeasuredTls {
                cert_lifetime_secs: t.cert_lifetime.as_secs(),
                client_auth: t.client_auth.name().to_string(),
                client_policy: t.client_auth.policy().map(|p| p.measured.clone()),
            }),
            billing: config.billing.as_ref().map(|b| b.measured()),
            data_key_service_pin: config.data_disk.as_ref().and_then(|d| match &d.provider {
                crate::data_key::KeyProvider::Service { pin, .. } => Some(hex::encode(pin)),
                crate::data_key::KeyProvider::Simulated { .. } => None,
            }),
        }
    }

    /// The canonical JSON bytes (see the module invariant).
    pub fn canonical_json(&self) -> Vec<u8> {
        // A struct of strings, integers, booleans and options of those always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// SHA-256 of [`Self::canonical_json`]: the `cocoon.config` event payload.
    pub fn sha256(&self) -> [u8; 32] {
        Sha256::digest(self.canonical_json()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MeasuredConfig {
        MeasuredConfig {
            format: FORMAT,
            model_id: "m\"1".into(),
            model_sha256: "ab".repeat(32),
            ctx: 256,
            parallel: 2,
            queue: 8,
            batch: 64,
            gpu_layers: 0,
            chat_template: None,
            body_limit: 1024,
            io_timeout_secs: 5,
            max_connections: 4,
            plain_http: false,
            tls: Some(MeasuredTls {
                cert_lifetime_secs: 3600,
                client_auth: "none".into(),
                client_policy: None,
            }),
            billing: None,
            data_key_service_pin: None,
        }
    }

    #[test]
    fn canonical_json_is_compact_and_ordered() {
        let json = String::from_utf8(sample().canonical_json()).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"format":"cocoon-agent-config/v1","model_id":"m\"1","model_sha256":"{}","ctx":256,"parallel":2,"queue":8,"batch":64,"gpu_layers":0,"chat_template":null,"body_limit":1024,"io_timeout_secs":5,"max_connections":4,"plain_http":false,"tls":{{"cert_lifetime_secs":3600,"client_auth":"none","client_policy":null}},"billing":null,"data_key_service_pin":null}}"#,
                "ab".repeat(32)
            )
        );
        assert_eq!(
            sample().sha256(),
            <[u8; 32]>::from(Sha256::digest(json.as_bytes()))
        );
    }

    fn billing() -> crate::billing::MeasuredBilling {
        crate::billing::MeasuredBilling {
            prompt_nanoton_per_token: 1,
            completion_nanoton_per_token: 3,
            owner_address: format!("0:{}", "11".repeat(32)),
            payout_threshold_nanoton: 10,
            gas_reserve_nanoton: 1,
            refund_fee_nanoton: 1,
            message_ttl_secs: 60,
            chain_endpoint: "https://toncenter.com".into(),
        }
    }

    #[test]
    fn every_measured_setting_changes_the_digest() {
        let base = sample().sha256();
        type Change = Box<dyn Fn(&mut MeasuredConfig)>;
        let variants: Vec<Change> = vec![
            Box::new(|c| c.model_id.push('x')),
            Box::new(|c| c.model_sha256 = "cd".repeat(32)),
            Box::new(|c| c.ctx += 1),
            Box::new(|c| c.parallel += 1),
            Box::new(|c| c.queue += 1),
            Box::new(|c| c.batch += 1),
            Box::new(|c| c.gpu_layers += 1),
            Box::new(|c| c.chat_template = Some("chatml".into())),
            Box::new(|c| c.body_limit += 1),
            Box::new(|c| c.io_timeout_secs += 1),
            Box::new(|c| c.max_connections += 1),
            Box::new(|c| c.plain_http = true),
            Box::new(|c| c.tls = None),
            Box::new(|c| {
                if let Some(t) = c.tls.as_mut() {
                    t.client_auth = "ratls".into()
                }
            }),
            Box::new(|c| {
                if let Some(t) = c.tls.as_mut() {
                    t.cert_lifetime_secs += 1
                }
            }),
            Box::new(|c| {
                if let Some(t) = c.tls.as_mut() {
                    t.client_policy = Some(MeasuredClientAuth {
                        manifest_sha256: "00".repeat(32),
                        manifest_key: "11".repeat(32),
                        collateral_sha256: "22".repeat(32),
                        simulated_root_ca_sha256: None,
                    })
                }
            }),
            Box::new(|c| c.billing = Some(billing())),
            Box::new(|c| {
                c.billing = Some(crate::billing::MeasuredBilling {
                    completion_nanoton_per_token: 4,
                    ..billing()
                })
            }),
            Box::new(|c| {
                c.billing = Some(crate::billing::MeasuredBilling {
                    owner_address: format!("0:{}", "22".repeat(32)),
                    ..billing()
                })
            }),
            Box::new(|c| c.data_key_service_pin = Some("33".repeat(32))),
        ];
        for (i, change) in variants.iter().enumerate() {
            let mut c = sample();
            change(&mut c);
            assert_ne!(c.sha256(), base, "variant {i}");
        }
    }
}
