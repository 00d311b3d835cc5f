//! The `serve --billing FILE` configuration: prices, payouts, chain access, ledger and key.
//!
//! The file is JSON with unknown fields refused, so a misspelt setting is an error rather than
//! a silently ignored default. Every error names the file and the field (as a JSON path).
//!
//! What is measured ([`MeasuredBilling`], hashed into the attested config): prices, the payout
//! destination and policy, and the chain endpoint — what a client relies on when it pays.
//! Not measured: paths (ledger, key file), the chain API key (a secret) and timeouts.

use cocoon_payments::{ChainConfig, PayoutConfig, PriceConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest billing file read, in bytes (it is a few hundred bytes in practice).
const MAX_FILE: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BillingConfigError {
    #[error("reading billing config {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("billing config {path} is {size} bytes; at most {MAX_FILE} are allowed")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("billing config {path}: field `{field}`: {message}")]
    Field {
        path: PathBuf,
        field: String,
        message: String,
    },
}

/// Where the billing settings come from (`--billing FILE`, `--billing-period`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingSource {
    pub file: PathBuf,
    pub period: Duration,
}

/// Token prices as written in the file: per token or per 1000 tokens, in nanoTON.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricesFile {
    pub prompt_nanoton_per_token: Option<u64>,
    pub completion_nanoton_per_token: Option<u64>,
    pub prompt_nanoton_per_1000_tokens: Option<u64>,
    pub completion_nanoton_per_1000_tokens: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayoutFile {
    /// The node owner's TON address (raw `0:<hex>` or user-friendly).
    pub owner_address: String,
    /// Pay out automatically once payable earnings less the gas reserve reach this (nanoTON).
    pub threshold_nanoton: u64,
    /// Earnings kept in the node wallet for fees (nanoTON).
    #[serde(default = "default_gas_reserve")]
    pub gas_reserve_nanoton: u64,
    /// Kept from every refund as earnings; pays the refund's fee (nanoTON).
    #[serde(default = "default_refund_fee")]
    pub refund_fee_nanoton: u64,
    /// Validity of an outgoing message in seconds of chain time.
    #[serde(default = "default_ttl")]
    pub message_ttl_secs: u32,
}

fn default_gas_reserve() -> u64 {
    50_000_000
}
fn default_refund_fee() -> u64 {
    10_000_000
}
fn default_ttl() -> u32 {
    60
}
fn default_request_timeout() -> u64 {
    10
}
fn default_total_timeout() -> u64 {
    30
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainFile {
    /// toncenter v2 compatible base URL (`/api/v2/...` is appended).
    pub endpoint: String,
    /// Sent as `X-API-Key`; a secret, never measured or logged.
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    #[serde(default = "default_total_timeout")]
    pub total_timeout_secs: u64,
}

impl std::fmt::Debug for ChainFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainFile")
            .field("endpoint", &self.endpoint)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("total_timeout_secs", &self.total_timeout_secs)
            .finish()
    }
}

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingFile {
    pub prices: PricesFile,
    pub payout: PayoutFile,
    pub chain: ChainFile,
    /// The append-only payments ledger, on the data volume.
    pub ledger: PathBuf,
    /// The node wallet's Ed25519 key file (created 0600 with a random key when missing).
    pub wallet_key: PathBuf,
}

/// Validated billing settings. `Debug` leaves out the chain API key.
#[derive(Clone)]
pub struct BillingConfig {
    pub prices: PriceConfig,
    pub payout: PayoutConfig,
    pub chain: ChainConfig,
    pub ledger: PathBuf,
    pub wallet_key: PathBuf,
    /// How often the chain work (deposits, reconciliation, payouts) runs.
    pub period: Duration,
}

impl std::fmt::Debug for BillingConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillingConfig")
            .field("prices", &self.prices)
            .field("payout", &self.payout)
            .field("chain_endpoint", &self.chain.endpoint)
            .field(
                "chain_api_key",
                &self.chain.api_key.as_ref().map(|_| "<redacted>"),
            )
            .field("ledger", &self.ledger)
            .field("wallet_key", &self.wallet_key)
            .field("period", &self.period)
            .finish()
    }
}

/// The measured part of the billing settings, in a fixed field order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasuredBilling {
    pub prompt_nanoton_per_token: u64,
    pub completion_nanoton_per_token: u64,
    pub owner_address: String,
    pub payout_threshold_nanoton: u64,
    pub gas_reserve_nanoton: u64,
    pub refund_fee_nanoton: u64,
    pub message_ttl_secs: u32,
    pub chain_endpoint: String,
}

impl BillingConfig {
    /// Reads and validates `path`; `period` comes from the command line.
    pub fn load(path: &Path, period: Duration) -> Result<BillingConfig, BillingConfigError> {
        let read = |source| BillingConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read)?.len();
        if size > MAX_FILE {
            return Err(BillingConfigError::TooLarge {
                path: path.to_path_buf(),
                size,
            });
        }
        let bytes = std::fs::read(path).map_err(read)?;
        BillingConfig::parse(path, &bytes, period)
    }

    /// Parses and validates the file's bytes; `path` only names the file in errors.
    pub fn parse(
        path: &Path,
        bytes: &[u8],
        period: Duration,
    ) -> Result<BillingConfig, BillingConfigError> {
        let field = |field: &str, message: String| BillingConfigError::Field {
            path: path.to_path_buf(),
            field: field.to_string(),
            message,
        };
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let file: BillingFile = serde_path_to_error::deserialize(de).map_err(|e| {
            let at = e.path().to_string();
            let message = e.into_inner().to_string();
            field(&field_path(&at, &message), message)
        })?;
        let prices = prices(&file.prices).map_err(|(f, m)| field(f, m))?;
        let p = &file.payout;
        cocoon_payments::wallet::parse_address(&p.owner_address)
            .map_err(|e| field("payout.owner_address", e.to_string()))?;
        if p.message_ttl_secs == 0 {
            return Err(field("payout.message_ttl_secs", "must be positive".into()));
        }
        if p.threshold_nanoton == 0 {
            return Err(field(
                "payout.threshold_nanoton",
                "must be positive (payouts of nothing are never sent)".into(),
            ));
        }
        let c = &file.chain;
        if !(c.endpoint.starts_with("http://") || c.endpoint.starts_with("https://")) {
            return Err(field(
                "chain.endpoint",
                format!("{:?} is not an http:// or https:// URL", c.endpoint),
            ));
        }
        if c.request_timeout_secs == 0 || c.total_timeout_secs < c.request_timeout_secs {
            return Err(field(
                "chain.total_timeout_secs",
                "timeouts must be positive and total_timeout_secs >= request_timeout_secs".into(),
            ));
        }
        if file.ledger.as_os_str().is_empty() {
            return Err(field("ledger", "must name a file".into()));
        }
        if file.wallet_key.as_os_str().is_empty() {
            return Err(field("wallet_key", "must name a file".into()));
        }
        if period.is_zero() {
            return Err(field(
                "--billing-period",
                "the chain work period must be positive".into(),
            ));
        }
        Ok(BillingConfig {
            prices,
            payout: PayoutConfig {
                owner_address: p.owner_address.clone(),
                payout_threshold: p.threshold_nanoton,
                gas_reserve: p.gas_reserve_nanoton,
                refund_fee: p.refund_fee_nanoton,
                message_ttl_secs: p.message_ttl_secs,
            },
            chain: ChainConfig {
                request_timeout: Duration::from_secs(c.request_timeout_secs),
                total_timeout: Duration::from_secs(c.total_timeout_secs),
                ..ChainConfig::new(c.endpoint.clone(), c.api_key.clone())
            },
            ledger: file.ledger,
            wallet_key: file.wallet_key,
            period,
        })
    }

    /// The settings a verifier sees in the attested config.
    pub fn measured(&self) -> MeasuredBilling {
        MeasuredBilling {
            prompt_nanoton_per_token: self.prices.prompt_nanoton_per_token,
            completion_nanoton_per_token: self.prices.completion_nanoton_per_token,
            owner_address: self.payout.owner_address.clone(),
            payout_threshold_nanoton: self.payout.payout_threshold,
            gas_reserve_nanoton: self.payout.gas_reserve,
            refund_fee_nanoton: self.payout.refund_fee,
            message_ttl_secs: self.payout.message_ttl_secs,
            chain_endpoint: self.chain.endpoint.clone(),
        }
    }
}

/// The JSON path of a decoding error. serde reports a missing or unknown field at its parent,
/// with the name only in the message (`missing field `x``): the name is joined to the path.
fn field_path(at: &str, message: &str) -> String {
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|p| message.strip_prefix(p)?.split('`').next());
    match (at, named) {
        ("." | "", Some(n)) => n.to_string(),
        ("." | "", None) => "(document)".to_string(),
        (p, Some(n)) if !p.ends_with(n) => format!("{p}.{n}"),
        (p, _) => p.to_string(),
    }
}

/// One price per kind: per token, or per 1000 tokens when that divides exactly (the ledger
/// and receipts keep integer nanoTON per token, so a price is never rounded).
fn prices(p: &PricesFile) -> Result<PriceConfig, (&'static str, String)> {
    fn one(
        per_token: Option<u64>,
        per_1000: Option<u64>,
        token_field: &'static str,
        k_field: &'static str,
    ) -> Result<u64, (&'static str, String)> {
        match (per_token, per_1000) {
            (Some(v), None) => Ok(v),
            (None, Some(k)) if k % 1000 == 0 => Ok(k / 1000),
            (None, Some(k)) => Err((
                k_field,
                format!(
                    "{k} is not a multiple of 1000; prices are kept in whole nanoTON per token \
                     (use {token_field} or a multiple of 1000)"
                ),
            )),
            (Some(_), Some(_)) => Err((
                token_field,
                format!("give either {token_field} or {k_field}, not both"),
            )),
            (None, None) => Err((token_field, format!("missing (or give {k_field})"))),
        }
    }
    Ok(PriceConfig {
        prompt_nanoton_per_token: one(
            p.prompt_nanoton_per_token,
            p.prompt_nanoton_per_1000_tokens,
            "prices.prompt_nanoton_per_token",
            "prices.prompt_nanoton_per_1000_tokens",
        )?,
        completion_nanoton_per_token: one(
            p.completion_nanoton_per_token,
            p.completion_nanoton_per_1000_tokens,
            "prices.completion_nanoton_per_token",
            "prices.completion_nanoton_per_1000_tokens",
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> serde_json::Value {
        json!({
            "prices": {"prompt_nanoton_per_token": 1000, "completion_nanoton_per_1000_tokens": 3_000_000},
            "payout": {"owner_address": format!("0:{}", "ab".repeat(32)), "threshold_nanoton": 1_000_000_000u64},
            "chain": {"endpoint": "http://127.0.0.1:9", "api_key": "sekrit"},
            "ledger": "/data/payments.ledger",
            "wallet_key": "/data/node.key"
        })
    }

    fn parse(v: &serde_json::Value) -> Result<BillingConfig, BillingConfigError> {
        BillingConfig::parse(
            Path::new("b.json"),
            v.to_string().as_bytes(),
            Duration::from_secs(5),
        )
    }

    fn field_of(e: BillingConfigError) -> String {
        match e {
            BillingConfigError::Field { field, .. } => field,
            other => panic!("expected a field error, got {other}"),
        }
    }

    #[test]
    fn parses_and_converts_per_1000_prices() {
        let c = parse(&good()).unwrap();
        assert_eq!(c.prices.prompt_nanoton_per_token, 1000);
        assert_eq!(c.prices.completion_nanoton_per_token, 3000);
        assert_eq!(c.payout.gas_reserve, default_gas_reserve());
        assert_eq!(c.chain.api_key.as_deref(), Some("sekrit"));
        let m = serde_json::to_string(&c.measured()).unwrap();
        assert!(!m.contains("sekrit") && !m.contains("/data"), "{m}");
        assert!(
            m.contains("\"chain_endpoint\":\"http://127.0.0.1:9\""),
            "{m}"
        );
        assert!(!format!("{c:?}").contains("sekrit"));
    }

    #[test]
    fn errors_name_the_field() {
        type Edit = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "prices.completion_nanoton_per_1000_tokens",
                Box::new(|v| v["prices"]["completion_nanoton_per_1000_tokens"] = json!(1500)),
            ),
            (
                "prices.prompt_nanoton_per_token",
                Box::new(|v| v["prices"]["prompt_nanoton_per_token"] = json!(-1)),
            ),
            (
                "prices.prompt_nanoton_per_token",
                Box::new(|v| v["prices"]["prompt_nanoton_per_1000_tokens"] = json!(1000)),
            ),
            (
                "prices.prompt_nanoton_per_token",
                Box::new(|v| {
                    v["prices"]
                        .as_object_mut()
                        .unwrap()
                        .remove("prompt_nanoton_per_token");
                }),
            ),
            (
                "payout.owner_address",
                Box::new(|v| v["payout"]["owner_address"] = json!("not-an-address")),
            ),
            (
                "payout.threshold_nanoton",
                Box::new(|v| v["payout"]["threshold_nanoton"] = json!("1")),
            ),
            (
                "chain.endpoint",
                Box::new(|v| v["chain"]["endpoint"] = json!("ftp://x")),
            ),
            (
                "chain.endpont",
                Box::new(|v| v["chain"]["endpont"] = json!("x")),
            ),
            (
                "wallet_key",
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("wallet_key");
                }),
            ),
            ("ledger", Box::new(|v| v["ledger"] = json!(""))),
        ];
        for (want, edit) in cases {
            let mut v = good();
            edit(&mut v);
            let e = parse(&v).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains("b.json"), "{msg}");
            assert_eq!(field_of(e), want, "{msg}");
        }
    }

    #[test]
    fn truncated_oversized_and_garbage_files_are_errors() {
        let text = good().to_string();
        for cut in [0, 1, text.len() / 2, text.len() - 1] {
            let r = BillingConfig::parse(
                Path::new("b.json"),
                &text.as_bytes()[..cut],
                Duration::from_secs(1),
            );
            assert!(r.is_err(), "cut at {cut}");
        }
        assert!(BillingConfig::parse(Path::new("b"), b"\xff\xfe", Duration::from_secs(1)).is_err());
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; MAX_FILE as usize + 1]).unwrap();
        assert!(matches!(
            BillingConfig::load(&big, Duration::from_secs(1)),
            Err(BillingConfigError::TooLarge { .. })
        ));
        assert!(matches!(
            BillingConfig::load(&dir.path().join("missing"), Duration::from_secs(1)),
            Err(BillingConfigError::Read { .. })
        ));
    }
}
