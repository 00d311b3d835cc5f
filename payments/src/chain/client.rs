//! HTTP client for the toncenter API v2 (`{"ok":true,"result":...}` envelopes) over hyper 1.x,
//! with rustls for `https://` and plain TCP for `http://` (the local emulator).
//!
//! Every call is retried with exponential backoff on transport errors, timeouts, HTTP 429 and
//! 5xx, within a bounded total time ([`ChainConfig::total_timeout`]). Answers that are not the
//! expected JSON are rejected as [`ChainError::Malformed`] and not retried; an external
//! message the chain refuses is [`ChainError::Rejected`].

use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tonlib_core::TonAddress;

use super::types::{self, AddressInfo, ChainTransaction, Malformed};
use crate::config::ChainConfig;
use crate::ledger::record::TxKey;

/// Largest response body read, bytes.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;
/// toncenter's page limit for getTransactions.
pub const MAX_TX_PAGE: u32 = 100;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ChainError {
    #[error("invalid chain endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
    #[error("{method}: transport error: {detail}")]
    Transport {
        method: &'static str,
        detail: String,
    },
    #[error("{method}: no response within {after:?}")]
    Timeout {
        method: &'static str,
        after: Duration,
    },
    #[error("{method}: HTTP {status}: {body}")]
    Http {
        method: &'static str,
        status: u16,
        body: String,
    },
    #[error("{method}: API error {code}: {message}")]
    Api {
        method: &'static str,
        code: i64,
        message: String,
    },
    #[error("external message rejected by the chain: {message}")]
    Rejected { message: String },
    #[error("{method}: malformed response: {detail}")]
    Malformed {
        method: &'static str,
        detail: String,
    },
    #[error("{method}: chain API unavailable after {attempts} attempts in {elapsed:?}; last error: {last}")]
    Unavailable {
        method: &'static str,
        attempts: u32,
        elapsed: Duration,
        last: Box<ChainError>,
    },
}

impl ChainError {
    fn retryable(&self) -> bool {
        match self {
            ChainError::Transport { .. } | ChainError::Timeout { .. } => true,
            ChainError::Http { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    fn malformed(method: &'static str, e: Malformed) -> ChainError {
        ChainError::Malformed {
            method,
            detail: e.to_string(),
        }
    }
}

type Https = HttpsConnector<HttpConnector>;

#[derive(Debug, Clone)]
pub struct TonClient {
    base: String,
    api_key: Option<String>,
    cfg: ChainConfig,
    http: Client<Https, Full<Bytes>>,
}

fn excerpt(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned();
    s.replace('\n', " ")
}

/// Percent-encodes a query value (base64 hashes contain `+`, `/`, `=`).
fn qenc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

enum Call {
    Get(String),
    Post(Value),
}

impl TonClient {
    pub fn new(cfg: ChainConfig) -> Result<TonClient, ChainError> {
        let invalid = |reason: &str| ChainError::InvalidEndpoint {
            endpoint: cfg.endpoint.clone(),
            reason: reason.to_string(),
        };
        let uri: Uri = cfg.endpoint.parse().map_err(|_| invalid("not a URI"))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => return Err(invalid("scheme must be http or https")),
        }
        if uri.host().is_none() {
            return Err(invalid("missing host"));
        }
        if let Some(k) = &cfg.api_key {
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid("API key must be non-empty printable ASCII"));
            }
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            .map_err(|e| invalid(&format!("TLS setup: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        let http = Client::builder(TokioExecutor::new()).build(https);
        Ok(TonClient {
            base: cfg.endpoint.trim_end_matches('/').to_string(),
            api_key: cfg.api_key.clone(),
            cfg,
            http,
        })
    }

    pub fn config(&self) -> &ChainConfig {
        &self.cfg
    }

    async fn once(&self, method: &'static str, call: &Call) -> Result<Value, ChainError> {
        let transport = |detail: String| ChainError::Transport { method, detail };
        let (m, uri, body) = match call {
            Call::Get(q) => (
                Method::GET,
                format!("{}/api/v2/{method}?{q}", self.base),
                Bytes::new(),
            ),
            Call::Post(v) => (
                Method::POST,
                format!("{}/api/v2/{method}", self.base),
                Bytes::from(v.to_string()),
            ),
        };
        let mut req = Request::builder()
            .method(m)
            .uri(&uri)
            .header("accept", "application/json")
            .header("content-type", "application/json");
        if let Some(k) = &self.api_key {
            req = req.header("x-api-key", k);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| transport(format!("building request: {e}")))?;
        let resp = self
            .http
            .request(req)
            .await
            .map_err(|e| transport(format!("{e:?}")))?;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| transport(format!("reading body: {e}")))?
            .to_bytes();
        let parsed: Result<Value, _> = serde_json::from_slice(&bytes);
        let v = match parsed {
            Ok(v @ Value::Object(_)) => v,
            _ if !status.is_success() => {
                return Err(ChainError::Http {
                    method,
                    status: status.as_u16(),
                    body: excerpt(&bytes),
                })
            }
            Ok(_) => {
                return Err(ChainError::Malformed {
                    method,
                    detail: "response is not a JSON object".into(),
                })
            }
            Err(e) => {
                return Err(ChainError::Malformed {
                    method,
                    detail: format!("invalid JSON ({e}): {}", excerpt(&bytes)),
                })
            }
        };
        match v.get("ok") {
            Some(Value::Bool(true)) if status.is_success() => {
                v.get("result").cloned().ok_or(ChainError::Malformed {
                    method,
                    detail: "\"ok\":true without \"result\"".into(),
                })
            }
            Some(Value::Bool(_)) => {
                let message = v
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("(no error text)")
                    .chars()
                    .take(500)
                    .collect::<String>();
                if method == "sendBoc" && message.contains("cannot apply external message") {
                    return Err(ChainError::Rejected { message });
                }
                let code = v
                    .get("code")
                    .and_then(Value::as_i64)
                    .unwrap_or(i64::from(status.as_u16()));
                if status.is_server_error()
                    || status == StatusCode::TOO_MANY_REQUESTS
                    || code == 429
                    || code >= 500
                {
                    Err(ChainError::Http {
                        method,
                        status: if status.is_success() {
                            code.clamp(0, 999) as u16
                        } else {
                            status.as_u16()
                        },
                        body: message,
                    })
                } else {
                    Err(ChainError::Api {
                        method,
                        code,
                        message,
                    })
                }
            }
            _ => Err(ChainError::Malformed {
                method,
                detail: "missing boolean \"ok\" field".into(),
            }),
        }
    }

    /// One API call with retries, bounded by `total_timeout`.
    async fn call(&self, method: &'static str, call: Call) -> Result<Value, ChainError> {
        let start = Instant::now();
        let deadline = start + self.cfg.total_timeout;
        let mut backoff = self.cfg.initial_backoff;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let per = self.cfg.request_timeout.min(left);
            let err = match tokio::time::timeout(per, self.once(method, &call)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if !e.retryable() => return Err(e),
                Ok(Err(e)) => e,
                Err(_) => ChainError::Timeout { method, after: per },
            };
            tracing::debug!(method, attempts, error = %err, "chain API attempt failed");
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ChainError::Unavailable {
                    method,
                    attempts,
                    elapsed: start.elapsed(),
                    last: Box::new(err),
                });
            }
            tokio::time::sleep(backoff.min(left)).await;
            if Instant::now() >= deadline {
                return Err(ChainError::Unavailable {
                    method,
                    attempts,
                    elapsed: start.elapsed(),
                    last: Box::new(err),
                });
            }
            backoff = (backoff * 2).min(self.cfg.max_backoff);
        }
    }

    pub async fn get_address_information(
        &self,
        addr: &TonAddress,
    ) -> Result<AddressInfo, ChainError> {
        const M: &str = "getAddressInformation";
        let v = self
            .call(
                M,
                Call::Get(format!("address={}", qenc(&addr.to_base64_url()))),
            )
            .await?;
        AddressInfo::parse(&v).map_err(|e| ChainError::malformed(M, e))
    }

    /// Up to `limit` transactions of `addr`, newest first, starting at `from` (inclusive,
    /// as toncenter does) or at the newest.
    pub async fn get_transactions(
        &self,
        addr: &TonAddress,
        limit: u32,
        from: Option<TxKey>,
    ) -> Result<Vec<ChainTransaction>, ChainError> {
        const M: &str = "getTransactions";
        let mut q = format!(
            "address={}&limit={}&archival=true",
            qenc(&addr.to_base64_url()),
            limit.clamp(1, MAX_TX_PAGE)
        );
        if let Some(k) = from {
            let h = base64::engine::general_purpose::STANDARD.encode(k.hash);
            q.push_str(&format!("&lt={}&hash={}", k.lt, qenc(&h)));
        }
        let v = self.call(M, Call::Get(q)).await?;
        let list = ChainTransaction::parse_list(&v).map_err(|e| ChainError::malformed(M, e))?;
        if list.len() > limit.clamp(1, MAX_TX_PAGE) as usize {
            return Err(ChainError::Malformed {
                method: M,
                detail: format!("asked for {limit} transactions, got {}", list.len()),
            });
        }
        if list.windows(2).any(|w| w[0].key.lt <= w[1].key.lt) {
            return Err(ChainError::Malformed {
                method: M,
                detail: "transactions are not in strictly decreasing lt order".into(),
            });
        }
        Ok(list)
    }

    /// The wallet's `seqno`; `None` while the contract is not deployed.
    pub async fn get_seqno(&self, addr: &TonAddress) -> Result<Option<u32>, ChainError> {
        const M: &str = "runGetMethod";
        let v = self
            .call(
                M,
                Call::Post(
                    json!({"address": addr.to_base64_url(), "method": "seqno", "stack": []}),
                ),
            )
            .await?;
        match types::parse_single_int(&v).map_err(|e| ChainError::malformed(M, e))? {
            None => Ok(None),
            Some(n) => u32::try_from(n)
                .map(Some)
                .map_err(|_| ChainError::Malformed {
                    method: M,
                    detail: format!("seqno {n} does not fit in 32 bits"),
                }),
        }
    }

    /// Submits a signed external message. Retrying is safe: a wallet executes a given seqno
    /// at most once.
    pub async fn send_boc(&self, boc: &[u8]) -> Result<(), ChainError> {
        const M: &str = "sendBoc";
        let b64 = base64::engine::general_purpose::STANDARD.encode(boc);
        let v = self.call(M, Call::Post(json!({ "boc": b64 }))).await?;
        if v.is_object() {
            Ok(())
        } else {
            Err(ChainError::Malformed {
                method: M,
                detail: "result is not an object".into(),
            })
        }
    }
}
