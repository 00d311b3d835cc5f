//! Quote collateral from a PCCS or Intel PCS, cached in memory and on disk until it expires.
//!
//! For a quote, the PCK leaf certificate in it names the FMSPC and the PCK CA (processor or
//! platform); the collateral for that (TEE, FMSPC, CA) is four GETs under
//! `{base}/{sgx,tdx}/certification/v4/`: `pckcrl?ca=..&encoding=der` (issuer chain in header
//! `SGX-PCK-CRL-Issuer-Chain`), `tcb?fmspc=..` (`TCB-Info-Issuer-Chain`), `qe/identity`
//! (`SGX-Enclave-Identity-Issuer-Chain`) and `rootcacrl` (hex, as a PCCS serves it, or DER).
//!
//! Invariants: collateral is used only before its expiry, the earliest of the TCB info's and
//! QE identity's `nextUpdate` and the two CRLs' nextUpdate; an expired or unreadable cache entry
//! is fetched again. The on-disk cache (`<dir>/<tee>-<FMSPC>-<ca>.json`, dcap-qvl's
//! `QuoteCollateralV3` JSON layout, written atomically) is a cache only: everything read from it
//! or from the network is verified by the quote verifier like any other collateral. Fetches are
//! blocking (bounded by the timeout) and serialised per verifier.

use super::http;
use crate::quote::{parse_collateral, QuoteCollateralV3};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Default timeout of each network operation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
struct Cached {
    collateral: Arc<QuoteCollateralV3>,
    expires: i64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct PccsCollateral {
    base_url: String,
    cache_dir: Option<PathBuf>,
    timeout: Duration,
    memory: Mutex<HashMap<String, Cached>>,
    fetches: AtomicU64,
}

#[derive(Deserialize)]
struct TcbInfoResponse<'a> {
    #[serde(rename = "tcbInfo", borrow)]
    tcb_info: &'a RawValue,
    signature: String,
}

#[derive(Deserialize)]
struct QeIdentityResponse<'a> {
    #[serde(rename = "enclaveIdentity", borrow)]
    enclave_identity: &'a RawValue,
    signature: String,
}

fn rfc3339(field: &str, value: Option<&serde_json::Value>) -> Result<i64, String> {
    let text = value
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| format!("{field} has no nextUpdate"))?;
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| format!("{field} nextUpdate {text:?}: {e}"))
}

fn crl_next_update(field: &str, der: &[u8]) -> Result<i64, String> {
    let (_, crl) = x509_parser::parse_x509_crl(der).map_err(|e| format!("{field}: {e}"))?;
    crl.next_update()
        .map(|t| t.timestamp())
        .ok_or_else(|| format!("{field} has no nextUpdate"))
}

/// When collateral stops being usable (Unix seconds): the earliest nextUpdate of its parts.
pub fn expiry(c: &QuoteCollateralV3) -> Result<i64, String> {
    let tcb: serde_json::Value =
        serde_json::from_str(&c.tcb_info).map_err(|e| format!("TCB info: {e}"))?;
    let qe: serde_json::Value =
        serde_json::from_str(&c.qe_identity).map_err(|e| format!("QE identity: {e}"))?;
    let times = [
        rfc3339("TCB info", tcb.get("nextUpdate"))?,
        rfc3339("QE identity", qe.get("nextUpdate"))?,
        crl_next_update("PCK CRL", &c.pck_crl)?,
        crl_next_update("root CA CRL", &c.root_ca_crl)?,
    ];
    Ok(times.into_iter().min().unwrap_or(i64::MIN))
}

fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let result = std::fs::write(&tmp, data).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

impl PccsCollateral {
    /// Collateral from `base_url` (e.g. `https://pccs.example:8081` or Intel's
    /// `https://api.trustedservices.intel.com`), cached under `cache_dir` when given.
    pub fn new(base_url: &str, cache_dir: Option<PathBuf>, timeout: Duration) -> Self {
        let base_url = base_url
            .trim_end_matches('/')
            .trim_end_matches("/sgx/certification/v4")
            .trim_end_matches("/tdx/certification/v4")
            .to_string();
        PccsCollateral {
            base_url,
            cache_dir,
            timeout,
            memory: Mutex::new(HashMap::new()),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many times collateral was fetched from the network.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Collateral for `quote` (already size-checked) valid at `now` (Unix seconds).
    pub fn collateral_for(&self, quote: &[u8], now: i64) -> Result<Arc<QuoteCollateralV3>, String> {
        let parsed = dcap_qvl::quote::Quote::parse(quote)
            .map_err(|e| format!("cannot read the quote's PCK certificate: {e:#}"))?;
        let fmspc = dcap_qvl::intel::quote_fmspc(&parsed)
            .map_err(|e| format!("cannot read FMSPC from the quote's PCK certificate: {e:#}"))?;
        let ca = dcap_qvl::intel::quote_ca(&parsed)
            .map_err(|e| format!("cannot read the PCK CA of the quote: {e:#}"))?
            .as_id_str();
        let tee = if parsed.header.is_sgx() { "sgx" } else { "tdx" };
        let fmspc = hex::encode_upper(fmspc);
        let key = format!("{tee}-{fmspc}-{ca}");

        // The lock also serialises fetches, so one expiry causes one fetch.
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = memory.get(&key).filter(|c| c.expires > now) {
            return Ok(c.collateral.clone());
        }
        let path = self
            .cache_dir
            .as_ref()
            .map(|d| d.join(format!("{key}.json")));
        if let Some(c) = path.as_deref().and_then(|p| Self::load(p, now)) {
            memory.insert(key, c.clone());
            return Ok(c.collateral);
        }
        let (json, collateral) = self.fetch(tee, &fmspc, ca)?;
        let expires = expiry(&collateral)?;
        if expires <= now {
            return Err(format!(
                "collateral from {} for FMSPC {fmspc} expired at {expires} (now {now})",
                self.base_url
            ));
        }
        if let Some(p) = &path {
            // A cache that cannot be written costs a fetch next time, nothing else.
            if let Some(dir) = p.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = write_atomic(p, json.as_bytes());
        }
        let cached = Cached {
            collateral: Arc::new(collateral),
            expires,
        };
        memory.insert(key, cached.clone());
        Ok(cached.collateral)
    }

    fn load(path: &Path, now: i64) -> Option<Cached> {
        let data = std::fs::read(path).ok()?;
        if data.len() as u64 > crate::quote::MAX_COLLATERAL_LEN {
            return None;
        }
        let collateral = parse_collateral(&data).ok()?;
        let expires = expiry(&collateral).ok()?;
        (expires > now).then(|| Cached {
            collateral: Arc::new(collateral),
            expires,
        })
    }

    fn get(&self, path: &str) -> Result<http::Response, String> {
        let url = format!("{}/{path}", self.base_url);
        let r = http::get(&url, self.timeout).map_err(|e| format!("GET {url}: {e}"))?;
        if r.status != 200 {
            return Err(format!("GET {url}: HTTP {}", r.status));
        }
        Ok(r)
    }

    fn chain(r: &http::Response, names: &[&str], what: &str) -> Result<String, String> {
        let value = names
            .iter()
            .find_map(|n| r.header(n))
            .ok_or_else(|| format!("{what} response has no {} header", names.join(" or ")))?;
        http::percent_decode(value).map_err(|e| format!("{what} issuer chain: {e}"))
    }

    fn fetch(
        &self,
        tee: &str,
        fmspc: &str,
        ca: &str,
    ) -> Result<(String, QuoteCollateralV3), String> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let pck = self.get(&format!("sgx/certification/v4/pckcrl?ca={ca}&encoding=der"))?;
        let pck_chain = Self::chain(&pck, &["SGX-PCK-CRL-Issuer-Chain"], "PCK CRL")?;
        let tcb = self.get(&format!("{tee}/certification/v4/tcb?fmspc={fmspc}"))?;
        let tcb_chain = Self::chain(
            &tcb,
            &["TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"],
            "TCB info",
        )?;
        let qe = self.get(&format!("{tee}/certification/v4/qe/identity"))?;
        let qe_chain = Self::chain(&qe, &["SGX-Enclave-Identity-Issuer-Chain"], "QE identity")?;
        let root = self.get("sgx/certification/v4/rootcacrl")?;
        let root_crl = if root.body.first() == Some(&0x30) {
            root.body
        } else {
            let text =
                std::str::from_utf8(&root.body).map_err(|_| "root CA CRL is not hex text")?;
            hex::decode(text.trim()).map_err(|e| format!("root CA CRL: {e}"))?
        };
        let tcb_body: TcbInfoResponse =
            serde_json::from_slice(&tcb.body).map_err(|e| format!("TCB info response: {e}"))?;
        let qe_body: QeIdentityResponse =
            serde_json::from_slice(&qe.body).map_err(|e| format!("QE identity response: {e}"))?;
        let json = serde_json::json!({
            "pck_crl_issuer_chain": pck_chain,
            "root_ca_crl": hex::encode(&root_crl),
            "pck_crl": hex::encode(&pck.body),
            "tcb_info_issuer_chain": tcb_chain,
            "tcb_info": tcb_body.tcb_info.get(),
            "tcb_info_signature": tcb_body.signature,
            "qe_identity_issuer_chain": qe_chain,
            "qe_identity": qe_body.enclave_identity.get(),
            "qe_identity_signature": qe_body.signature,
        })
        .to_string();
        let collateral = parse_collateral(json.as_bytes())
            .map_err(|e| format!("collateral from {}: {e}", self.base_url))?;
        Ok((json, collateral))
    }
}
