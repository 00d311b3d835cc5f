//! Configuration passed in by the agent.
//!
//! Prices are part of the measured configuration (they are what a client attests to);
//! the chain endpoint and API key are unmeasured runtime settings.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Token prices in nanoTON, from the measured config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceConfig {
    pub prompt_nanoton_per_token: u64,
    pub completion_nanoton_per_token: u64,
}

/// Where earnings go and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutConfig {
    /// The node owner's TON address (any standard form: raw `0:<hex>` or user-friendly).
    pub owner_address: String,
    /// Automatic payouts happen once the payable amount reaches this many nanoTON.
    pub payout_threshold: u64,
    /// Earned nanoTON kept in the node wallet to pay transaction fees.
    pub gas_reserve: u64,
    /// Deducted from every refund and counted as earned: it pays the refund's chain fee.
    pub refund_fee: u64,
    /// Validity window of an outgoing external message, in seconds of chain time.
    pub message_ttl_secs: u32,
}

/// How to reach the TON HTTP API v2 (toncenter or the local emulator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainConfig {
    /// Base URL, e.g. `https://toncenter.com` or `http://127.0.0.1:12345`; `/api/v2/...` is appended.
    pub endpoint: String,
    /// Sent as `X-API-Key` when present.
    pub api_key: Option<String>,
    /// Limit for one HTTP attempt (connect + response).
    pub request_timeout: Duration,
    /// Total time one API call may take across all retries.
    pub total_timeout: Duration,
    /// First retry delay; doubled after each failed attempt up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl ChainConfig {
    pub fn new(endpoint: impl Into<String>, api_key: Option<String>) -> Self {
        ChainConfig {
            endpoint: endpoint.into(),
            api_key,
            request_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}
