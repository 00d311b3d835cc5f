//! [`RatlsVerifier`]: decides whether an RA-TLS certificate proves a worker running a release
//! of a signed manifest, and names what it proved ([`AcceptedIdentity`]) or why not
//! ([`Refusal`]).
//!
//! Checks, in this order (the first failure is the answer):
//! 1. size, X.509 structure, self-signature by the certified P-256 key ([`parse_certificate`]);
//! 2. validity window at `now`, and a period no longer than `max_validity`;
//! 3. extensions: no duplicate, no unknown critical one, ours present, critical, within limits;
//! 4. the quote: DCAP chain to the trusted root with the configured collateral (a fixed file, or
//!    fetched per platform from a PCCS, see [`super::collateral`]), then the
//!    [`QuotePolicy`] (TCB status, DEBUG and other TD attributes, XFAM, MRSEAM);
//! 5. key binding: report_data == [`super::report_data`] of this certificate's SPKI;
//! 6. MRTD and RTMR0-2 equal one shape of the manifest; TD attributes, XFAM, MR_CONFIG_ID,
//!    MR_OWNER and MR_OWNER_CONFIG equal the manifest's `td`;
//! 7. RTMR3 replayed from the event list equals the quote's RTMR3;
//! 8. the events are exactly `cocoon.config` (32 bytes), `cocoon.model` (32 bytes),
//!    `cocoon.mode` (`production` or `simulated`), in that order;
//! 9. SHA-256 of the config extension equals the `cocoon.config` payload, and it is a JSON object;
//! 10. if the manifest pins RTMR3, the events equal the pinned ones;
//! 11. mode `simulated` only when the policy trusts simulated evidence;
//! 12. config and model SHA-256 in the allow-lists, when set.

use super::cache::{IdentityCache, DEFAULT_CACHE_CAPACITY};
use super::collateral::{PccsCollateral, DEFAULT_TIMEOUT};
pub use super::parse::parse_certificate;
pub use super::refusal::Refusal;
use crate::manifest::{Manifest, ManifestError};
use crate::quote::{self, QuoteCollateralV3, QuoteError, QuotePolicy, VerifiedQuote};
use crate::rtmr3::{self, kinds, PublishedEvent, Rtmr3Event};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest certificate validity period accepted by default: one day. Workers renew well
/// before expiry; a short period bounds how long a stolen key is useful.
pub const DEFAULT_MAX_VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// Modes a worker may measure into `cocoon.mode`.
pub const MODE_PRODUCTION: &str = "production";
pub const MODE_SIMULATED: &str = "simulated";

/// Where quote collateral (PCK CRLs, TCB info, QE identity) comes from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CollateralSource {
    /// A JSON file in dcap-qvl's `QuoteCollateralV3` layout, read once at start.
    File(PathBuf),
    /// The same JSON, already in memory.
    Json(Vec<u8>),
    /// A PCCS or Intel PCS base URL, fetched per platform (FMSPC) and cached in memory and,
    /// when `cache_dir` is set, on disk until the collateral's nextUpdate.
    Pccs {
        url: String,
        cache_dir: Option<PathBuf>,
    },
}

/// Collateral as the verifier holds it.
#[derive(Debug)]
enum Collateral {
    Fixed(Arc<QuoteCollateralV3>),
    Pccs(PccsCollateral),
}

/// Everything a verifier needs; see [`VerifierConfig::new`] for the defaults.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// The release manifest; [`RatlsVerifier::new`] refuses it unless signed by `manifest_key`.
    pub manifest: Manifest,
    pub manifest_key: ed25519_dalek::VerifyingKey,
    pub quote_policy: QuotePolicy,
    pub collateral: CollateralSource,
    /// The simulated TD's mock root CA (DER). Must be set exactly when
    /// `quote_policy.trust_simulated` is set; Intel's root is always trusted.
    pub simulated_root_ca: Option<Vec<u8>>,
    pub max_validity: Duration,
    /// When set, the config SHA-256 must be one of these.
    pub allowed_config_sha256: Option<Vec<[u8; 32]>>,
    /// When set, the model SHA-256 must be one of these.
    pub allowed_model_sha256: Option<Vec<[u8; 32]>>,
    pub cache_capacity: usize,
    /// The time the rustls verifiers ([`super::tls`]) use instead of the clock (tests, and
    /// offline checks of old evidence). Direct calls use the `now` they are given.
    pub fixed_time: Option<SystemTime>,
}

impl VerifierConfig {
    /// Production defaults: Intel's root only, [`QuotePolicy::default`], one-day maximum
    /// validity, no allow-lists, a [`DEFAULT_CACHE_CAPACITY`]-entry cache, the system clock.
    pub fn new(
        manifest: Manifest,
        manifest_key: ed25519_dalek::VerifyingKey,
        collateral: CollateralSource,
    ) -> Self {
        VerifierConfig {
            manifest,
            manifest_key,
            quote_policy: QuotePolicy::default(),
            collateral,
            simulated_root_ca: None,
            max_validity: DEFAULT_MAX_VALIDITY,
            allowed_config_sha256: None,
            allowed_model_sha256: None,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            fixed_time: None,
        }
    }

    /// Also trusts the simulated TD's mock root. Test setups only.
    pub fn trust_simulated(mut self, mock_root_der: Vec<u8>) -> Self {
        self.quote_policy.trust_simulated = true;
        self.simulated_root_ca = Some(mock_root_der);
        self
    }
}

/// Why a verifier could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("manifest: {0}")]
    Manifest(#[from] ManifestError),
    #[error("collateral: {0}")]
    Collateral(#[from] QuoteError),
    #[error("collateral: {0}")]
    CollateralJson(String),
    #[error("{0}")]
    Config(String),
}

/// What an accepted certificate proved.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptedIdentity {
    pub release: String,
    /// Name of the manifest VM shape whose registers matched.
    pub shape: String,
    pub config_sha256: [u8; 32],
    pub model_sha256: [u8; 32],
    pub mode: String,
    pub tcb_status: String,
    pub advisory_ids: Vec<String>,
    /// True when the quote chained to the simulated TD's mock root.
    pub simulated_root: bool,
    /// The measured config (a JSON object).
    pub config: serde_json::Value,
    /// SHA-256 of the certificate DER.
    pub cert_sha256: [u8; 32],
    /// Certificate validity, Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

impl std::fmt::Display for AcceptedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "release {} shape {} mode {} config sha256 {} model sha256 {} TCB {}{} cert sha256 {} valid until {}",
            self.release,
            self.shape,
            self.mode,
            hex::encode(self.config_sha256),
            hex::encode(self.model_sha256),
            self.tcb_status,
            if self.simulated_root { " (SIMULATED root)" } else { "" },
            hex::encode(self.cert_sha256),
            self.not_after
        )
    }
}

/// Counters, for tests and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifierStats {
    /// Full verifications run (quote verification included), accepted or not.
    pub full_verifications: u64,
    pub cache_hits: u64,
    /// Collateral downloads (PCCS source only).
    pub collateral_fetches: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct RatlsVerifier {
    config: VerifierConfig,
    collateral: Collateral,
    cache: IdentityCache,
    full: AtomicU64,
    hits: AtomicU64,
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// True when the quote's embedded PCK chain ends at a certificate other than Intel's root: the
/// explanation for a failed verification (simulated or forged evidence). Used only after
/// verification failed; never decides acceptance.
fn foreign_root(quote: &[u8]) -> bool {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let Ok(chain) =
        dcap_qvl::quote::Quote::parse(quote).and_then(|q| dcap_qvl::intel::extract_cert_chain(&q))
    else {
        return false;
    };
    // A chain with a self-signed top that is not Intel's root (a lone PCK certificate, as in
    // certification data type 4, says nothing about the root).
    let Some(top) = chain.last().filter(|_| chain.len() >= 2) else {
        return false;
    };
    let self_signed = X509Certificate::from_der(top).is_ok_and(|(_, c)| {
        c.tbs_certificate.issuer.as_raw() == c.tbs_certificate.subject.as_raw()
    });
    self_signed && top.as_slice() != quote::INTEL_SGX_ROOT_CA_DER
}

fn payload32(event: &Rtmr3Event) -> Result<[u8; 32], Refusal> {
    event.payload().try_into().map_err(|_| {
        Refusal::EventSequence(format!(
            "{} payload is {} bytes, expected a 32-byte SHA-256",
            event.kind(),
            event.payload().len()
        ))
    })
}

impl RatlsVerifier {
    /// Checks the manifest signature and the configuration, and loads the collateral.
    pub fn new(config: VerifierConfig) -> Result<Self, SetupError> {
        config.manifest.verify(&config.manifest_key)?;
        match (
            config.quote_policy.trust_simulated,
            &config.simulated_root_ca,
        ) {
            (true, None) => {
                return Err(SetupError::Config(
                    "trust_simulated is set but no simulated root CA was given".into(),
                ))
            }
            (false, Some(_)) => {
                return Err(SetupError::Config(
                    "a simulated root CA was given but trust_simulated is not set".into(),
                ))
            }
            _ => {}
        }
        let collateral = match &config.collateral {
            CollateralSource::File(path) => {
                Collateral::Fixed(Arc::new(quote::read_collateral(path)?))
            }
            CollateralSource::Json(json) => Collateral::Fixed(Arc::new(
                quote::parse_collateral(json).map_err(SetupError::CollateralJson)?,
            )),
            CollateralSource::Pccs { url, cache_dir } => {
                Collateral::Pccs(PccsCollateral::new(url, cache_dir.clone(), DEFAULT_TIMEOUT))
            }
        };
        Ok(RatlsVerifier {
            cache: IdentityCache::new(config.cache_capacity),
            config,
            collateral,
            full: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// `now`, unless the configuration fixes the time.
    pub fn effective_time(&self, now: SystemTime) -> SystemTime {
        self.config.fixed_time.unwrap_or(now)
    }

    pub fn stats(&self) -> VerifierStats {
        VerifierStats {
            full_verifications: self.full.load(Ordering::Relaxed),
            cache_hits: self.hits.load(Ordering::Relaxed),
            collateral_fetches: match &self.collateral {
                Collateral::Fixed(_) => 0,
                Collateral::Pccs(p) => p.fetches(),
            },
        }
    }

    /// Like [`Self::verify_certificate`], but answers from the cache when this certificate was
    /// accepted before and is still within its validity window, and caches acceptances.
    pub fn verify_cached(
        &self,
        cert_der: &[u8],
        now: SystemTime,
    ) -> Result<Arc<AcceptedIdentity>, Refusal> {
        let key = sha256(cert_der);
        if let Some(identity) = self.cache.get(&key, unix(now)) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(identity);
        }
        let identity = Arc::new(self.verify_certificate(cert_der, now)?);
        self.cache.insert(key, identity.clone(), unix(now));
        Ok(identity)
    }

    /// Runs every check (see the module documentation) at `now`; never consults the cache.
    pub fn verify_certificate(
        &self,
        cert_der: &[u8],
        now: SystemTime,
    ) -> Result<AcceptedIdentity, Refusal> {
        self.full.fetch_add(1, Ordering::Relaxed);
        let now = unix(now);
        // 1. size, structure, self-signature
        let cert = parse_certificate(cert_der)?;
        // 2. validity
        if now < cert.not_before {
            return Err(Refusal::NotYetValid {
                not_before: cert.not_before,
                now,
            });
        }
        if now > cert.not_after {
            return Err(Refusal::Expired {
                not_after: cert.not_after,
                now,
            });
        }
        let period = cert.not_after.saturating_sub(cert.not_before);
        let max = self.config.max_validity.as_secs();
        if u64::try_from(period).map_or(true, |p| p > max) {
            return Err(Refusal::ValidityTooLong {
                seconds: period,
                max,
            });
        }
        // 3. extensions
        let evidence = cert.evidence()?;
        // 4. quote
        let quote_now = u64::try_from(now)
            .map_err(|_| Refusal::Collateral("the time is before 1970".into()))?;
        quote::check_quote_size(&evidence.quote)?;
        let collateral = match &self.collateral {
            Collateral::Fixed(c) => c.clone(),
            Collateral::Pccs(p) => p
                .collateral_for(&evidence.quote, now)
                .map_err(Refusal::Collateral)?,
        };
        let q = quote::verify_quote(
            &evidence.quote,
            &collateral,
            quote_now,
            &self.config.quote_policy,
            self.config.simulated_root_ca.as_deref(),
        )
        .map_err(|e| match e {
            QuoteError::Verification(why)
                if !self.config.quote_policy.trust_simulated && foreign_root(&evidence.quote) =>
            {
                Refusal::UntrustedRoot(why)
            }
            other => Refusal::Quote(other),
        })?;
        // 5. key binding
        let expected = super::report_data(&cert.spki_der);
        if q.report_data != expected {
            return Err(Refusal::KeyNotBound {
                expected: hex::encode(expected),
                found: hex::encode(q.report_data),
            });
        }
        // 6. static measurements and TD configuration
        let shape = self.match_manifest(&q)?;
        // 7. RTMR3 replay
        let events = rtmr3::from_json(&evidence.events_json)?;
        let replayed = rtmr3::replay(&events);
        if replayed.value() != q.rtmr[3] {
            return Err(Refusal::Rtmr3Mismatch {
                replayed: replayed.hex(),
                quoted: hex::encode(q.rtmr[3]),
            });
        }
        // 8. the event sequence
        let (config_event, model_event, mode_event) = match events.as_slice() {
            [c, m, mode]
                if c.kind() == kinds::CONFIG
                    && m.kind() == kinds::MODEL
                    && mode.kind() == kinds::MODE =>
            {
                (c, m, mode)
            }
            other => {
                return Err(Refusal::EventSequence(format!(
                    "expected exactly [{}, {}, {}], got [{}]",
                    kinds::CONFIG,
                    kinds::MODEL,
                    kinds::MODE,
                    other
                        .iter()
                        .map(Rtmr3Event::kind)
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        };
        let measured_config = payload32(config_event)?;
        let model_sha256 = payload32(model_event)?;
        let mode = std::str::from_utf8(mode_event.payload())
            .ok()
            .filter(|m| [MODE_PRODUCTION, MODE_SIMULATED].contains(m))
            .ok_or_else(|| {
                Refusal::EventSequence(format!(
                    "{} payload {:?} is not {MODE_PRODUCTION:?} or {MODE_SIMULATED:?}",
                    kinds::MODE,
                    String::from_utf8_lossy(mode_event.payload())
                ))
            })?
            .to_string();
        // 9. the config is the measured one
        let config_sha256 = sha256(&evidence.config_json);
        if config_sha256 != measured_config {
            return Err(Refusal::ConfigMismatch {
                computed: hex::encode(config_sha256),
                measured: hex::encode(measured_config),
            });
        }
        let config: serde_json::Value = serde_json::from_slice(&evidence.config_json)
            .map_err(|e| Refusal::ConfigJson(e.to_string()))?;
        if !config.is_object() {
            return Err(Refusal::ConfigJson("not an object".into()));
        }
        // 10. pinned RTMR3
        self.check_pin(&events, &shape.registers.rtmr3, &q)?;
        // 11. mode
        if mode == MODE_SIMULATED && !self.config.quote_policy.trust_simulated {
            return Err(Refusal::Mode {
                mode,
                why: "simulated workers are accepted only by a verifier that trusts simulated evidence".into(),
            });
        }
        // 12. allow-lists
        for (what, list, value) in [
            ("config", &self.config.allowed_config_sha256, config_sha256),
            ("model", &self.config.allowed_model_sha256, model_sha256),
        ] {
            if list.as_ref().is_some_and(|l| !l.contains(&value)) {
                return Err(Refusal::NotAllowed {
                    what,
                    sha256: hex::encode(value),
                });
            }
        }
        Ok(AcceptedIdentity {
            release: self.config.manifest.body.release.clone(),
            shape: shape.name.clone(),
            config_sha256,
            model_sha256,
            mode,
            tcb_status: q.status.clone(),
            advisory_ids: q.advisory_ids.clone(),
            simulated_root: q.simulated_root_used,
            config,
            cert_sha256: sha256(cert_der),
            not_before: cert.not_before,
            not_after: cert.not_after,
        })
    }

    fn match_manifest(&self, q: &VerifiedQuote) -> Result<&crate::manifest::ShapeEntry, Refusal> {
        let body = &self.config.manifest.body;
        let [r0, r1, r2, _] = &q.rtmr;
        let shape = body
            .shape_for_registers(&q.mrtd, &[*r0, *r1, *r2])
            .ok_or_else(|| Refusal::UnknownMeasurement {
                release: body.release.clone(),
                mrtd: hex::encode(q.mrtd),
                rtmr0: hex::encode(r0),
                rtmr1: hex::encode(r1),
                rtmr2: hex::encode(r2),
            })?;
        let td = &body.td;
        let u64s = [
            ("attributes", td.attributes, q.td_attributes),
            ("XFAM", td.xfam, q.xfam),
        ];
        for (field, expected, found) in u64s {
            if expected != found {
                return Err(Refusal::TdMismatch {
                    field,
                    expected: format!("{expected:#018x}"),
                    found: format!("{found:#018x}"),
                });
            }
        }
        let regs = [
            ("MR_CONFIG_ID", &td.mr_config_id, &q.mr_config_id),
            ("MR_OWNER", &td.mr_owner, &q.mr_owner),
            ("MR_OWNER_CONFIG", &td.mr_owner_config, &q.mr_owner_config),
        ];
        for (field, expected, found) in regs {
            if expected != found {
                return Err(Refusal::TdMismatch {
                    field,
                    expected: hex::encode(expected),
                    found: hex::encode(found),
                });
            }
        }
        Ok(shape)
    }

    fn check_pin(
        &self,
        events: &[Rtmr3Event],
        shape_rtmr3: &Option<crate::register::Digest384>,
        q: &VerifiedQuote,
    ) -> Result<(), Refusal> {
        if let Some(pin) = &self.config.manifest.body.rtmr3 {
            let published: Vec<PublishedEvent> = events.iter().map(PublishedEvent::from).collect();
            if published != pin.events {
                let kinds_of = |list: &[PublishedEvent]| {
                    list.iter()
                        .map(|e| format!("{}={}", e.kind, hex::encode(&e.payload)))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(Refusal::Rtmr3Pin(format!(
                    "pinned [{}], got [{}]",
                    kinds_of(&pin.events),
                    kinds_of(&published)
                )));
            }
        }
        if let Some(expected) = shape_rtmr3 {
            if expected != &q.rtmr[3] {
                return Err(Refusal::Rtmr3Pin(format!(
                    "shape pins RTMR3 {}, the quote reports {}",
                    hex::encode(expected),
                    hex::encode(q.rtmr[3])
                )));
            }
        }
        Ok(())
    }
}
