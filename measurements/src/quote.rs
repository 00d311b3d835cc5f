//! Verification of Intel TDX quotes (DCAP v4/v5) with dcap-qvl, plus the COCOON policy.
//!
//! [`verify_quote`] checks the whole DCAP chain — PCK certificate chain and CRLs up to the
//! root CA, QE report signature and its binding of the attestation key, the quote signature,
//! the TCB info and QE identity signatures and validity windows — then applies a
//! [`QuotePolicy`]. The root CA is Intel's SGX Root CA; the simulated TD's mock root is tried
//! only when `policy.trust_simulated` is set and a mock root is supplied, and the result says
//! so. Quote and collateral bytes are untrusted: sizes are bounded before parsing and every
//! failure is an error value.

mod policy;

pub use dcap_qvl::QuoteCollateralV3;
pub use policy::{
    td_attributes, QuotePolicy, XfamPolicy, DEFAULT_ALLOWED_TD_ATTRIBUTES, DEFAULT_XFAM_MASK,
    TCB_STATUS_NAMES,
};

use std::path::{Path, PathBuf};

/// Intel SGX Root CA (DER), the production DCAP trust anchor (SHA-256 fingerprint
/// 44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3).
pub const INTEL_SGX_ROOT_CA_DER: &[u8] = include_bytes!("quote/intel_sgx_root_ca.der");

/// Largest quote accepted: configfs-tsm caps `outblob` at 32 KiB; real quotes are ~5 KiB.
pub const MAX_QUOTE_LEN: usize = 32 * 1024;
/// Smallest well-formed TDX quote: header (48), TD 1.0 body (584), signature length (4).
pub const MIN_QUOTE_LEN: usize = 48 + 584 + 4;
/// Largest collateral file accepted (real collateral is ~20 KiB; CRLs can grow).
pub const MAX_COLLATERAL_LEN: u64 = 4 * 1024 * 1024;
/// Largest root CA certificate file accepted.
pub const MAX_ROOT_CA_LEN: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum QuoteError {
    #[error("reading {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {what}", path.display())]
    File { path: PathBuf, what: String },
    #[error("quote is {len} bytes; {what}")]
    Malformed { len: usize, what: String },
    #[error("quote verification failed: {0}")]
    Verification(String),
    #[error("TCB status {status} is not allowed by the policy (allowed: {allowed})")]
    TcbStatus { status: String, allowed: String },
    #[error("TD attributes {attributes:#018x}: {what}")]
    TdAttributes { attributes: u64, what: String },
    #[error("XFAM {xfam:#018x} is not allowed: {what}")]
    Xfam { xfam: u64, what: String },
    #[error("MRSEAM {mrseam} is not in the allow-list")]
    MrSeam { mrseam: String },
    #[error("invalid verifier configuration: {0}")]
    Config(String),
}

/// The verified contents of a TDX quote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedQuote {
    /// TCB status after merging platform, TDX module and QE levels (e.g. `UpToDate`).
    pub status: String,
    pub advisory_ids: Vec<String>,
    pub mrtd: [u8; 48],
    pub rtmr: [[u8; 48]; 4],
    pub report_data: [u8; 64],
    pub td_attributes: u64,
    pub xfam: u64,
    pub mrseam: [u8; 48],
    pub mrsigner_seam: [u8; 48],
    pub mr_config_id: [u8; 48],
    pub mr_owner: [u8; 48],
    pub mr_owner_config: [u8; 48],
    pub tee_tcb_svn: [u8; 16],
    /// True when the quote chained to the simulated TD's mock root, not Intel's.
    pub simulated_root_used: bool,
}

fn read_file(path: &Path, limit: u64) -> Result<Vec<u8>, QuoteError> {
    use std::io::Read;
    let io = |source| QuoteError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut data = Vec::new();
    file.take(limit + 1).read_to_end(&mut data).map_err(io)?;
    if data.len() as u64 > limit {
        return Err(QuoteError::File {
            path: path.to_path_buf(),
            what: format!("larger than the {limit}-byte limit"),
        });
    }
    Ok(data)
}

/// Reads a quote file (raw binary), bounded by [`MAX_QUOTE_LEN`].
pub fn read_quote(path: &Path) -> Result<Vec<u8>, QuoteError> {
    read_file(path, MAX_QUOTE_LEN as u64)
}

/// Parses collateral in dcap-qvl's `QuoteCollateralV3` JSON layout.
pub fn parse_collateral(json: &[u8]) -> Result<QuoteCollateralV3, String> {
    serde_json::from_slice(json).map_err(|e| format!("not QuoteCollateralV3 JSON: {e}"))
}

/// Reads collateral from a JSON file.
pub fn read_collateral(path: &Path) -> Result<QuoteCollateralV3, QuoteError> {
    let data = read_file(path, MAX_COLLATERAL_LEN)?;
    parse_collateral(&data).map_err(|what| QuoteError::File {
        path: path.to_path_buf(),
        what,
    })
}

/// Reads a DER root CA certificate (for the simulated TD's mock root).
pub fn read_root_ca(path: &Path) -> Result<Vec<u8>, QuoteError> {
    let data = read_file(path, MAX_ROOT_CA_LEN)?;
    if data.first() != Some(&0x30) {
        return Err(QuoteError::File {
            path: path.to_path_buf(),
            what: "not a DER certificate (expected a SEQUENCE)".into(),
        });
    }
    Ok(data)
}

/// Checks a quote's size bounds and length framing, as [`verify_quote`] does first; for callers
/// that parse the quote before verifying it (e.g. to pick collateral).
pub fn check_quote_size(quote: &[u8]) -> Result<(), QuoteError> {
    check_size(quote)
}

fn check_size(quote: &[u8]) -> Result<(), QuoteError> {
    let len = quote.len();
    if len < MIN_QUOTE_LEN {
        return Err(QuoteError::Malformed {
            len,
            what: format!("shorter than the {MIN_QUOTE_LEN}-byte minimum of a TDX quote"),
        });
    }
    if len > MAX_QUOTE_LEN {
        return Err(QuoteError::Malformed {
            len,
            what: format!("longer than the {MAX_QUOTE_LEN}-byte limit"),
        });
    }
    check_framing(quote)
}

fn le_u16(quote: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(quote.get(at..at + 2)?.try_into().ok()?))
}

fn le_u32(quote: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(quote.get(at..at + 4)?.try_into().ok()?))
}

/// Checks that the quote is header + body + signature data as its own length fields say.
/// Bytes after the signature data are not signed: zero padding (which some quote generation
/// stacks append, e.g. Intel's v4 sample carries 70 zero bytes) is tolerated, anything else
/// is refused.
fn check_framing(quote: &[u8]) -> Result<(), QuoteError> {
    let len = quote.len();
    let malformed = |what: String| QuoteError::Malformed { len, what };
    let version = le_u16(quote, 0).ok_or_else(|| malformed("no header".into()))?;
    let body_end = match version {
        4 => 48 + 584u64,
        5 => {
            let size =
                le_u32(quote, 50).ok_or_else(|| malformed("no v5 body descriptor".into()))?;
            48 + 6 + u64::from(size)
        }
        other => return Err(malformed(format!("quote version {other}, expected 4 or 5"))),
    };
    let sig_len = usize::try_from(body_end)
        .ok()
        .and_then(|at| le_u32(quote, at))
        .ok_or_else(|| malformed(format!("body ends past the quote (at {body_end})")))?;
    let expected = body_end + 4 + u64::from(sig_len);
    let trailing = usize::try_from(expected)
        .ok()
        .and_then(|end| quote.get(end..))
        .ok_or_else(|| malformed(format!("its length fields describe {expected} bytes")))?;
    if trailing.iter().any(|b| *b != 0) {
        return Err(malformed(format!(
            "non-zero bytes after the {expected} bytes its length fields describe"
        )));
    }
    Ok(())
}

fn verify_with_root(
    root_ca_der: &[u8],
    quote: &[u8],
    collateral: &QuoteCollateralV3,
    now: u64,
) -> Result<dcap_qvl::verify::VerifiedReport, String> {
    dcap_qvl::verify::QuoteVerifier::new(root_ca_der.to_vec())
        .verify(quote, collateral, now)
        .map_err(|e| format!("{e:#}"))
}

/// Verifies `quote` against `collateral` at time `now` (Unix seconds) and applies `policy`.
///
/// `simulated_root_ca` is the simulated TD's mock root (DER); it is used only when
/// `policy.trust_simulated` is set, and only after Intel's root has failed.
pub fn verify_quote(
    quote: &[u8],
    collateral: &QuoteCollateralV3,
    now: u64,
    policy: &QuotePolicy,
    simulated_root_ca: Option<&[u8]>,
) -> Result<VerifiedQuote, QuoteError> {
    check_size(quote)?;
    let simulated_root = match (policy.trust_simulated, simulated_root_ca) {
        (false, Some(_)) => {
            return Err(QuoteError::Config(
                "a simulated root CA was supplied but the policy does not trust simulated quotes"
                    .into(),
            ))
        }
        (true, None) => {
            return Err(QuoteError::Config(
                "the policy trusts simulated quotes but no simulated root CA was supplied".into(),
            ))
        }
        (true, Some(root)) if root == INTEL_SGX_ROOT_CA_DER => {
            return Err(QuoteError::Config(
                "the simulated root CA is Intel's root CA".into(),
            ))
        }
        (_, root) => root,
    };
    let (report, simulated_root_used) =
        match verify_with_root(INTEL_SGX_ROOT_CA_DER, quote, collateral, now) {
            Ok(report) => (report, false),
            Err(intel_err) => match simulated_root {
                None => return Err(QuoteError::Verification(intel_err)),
                Some(root) => match verify_with_root(root, quote, collateral, now) {
                    Ok(report) => (report, true),
                    Err(sim_err) => {
                        return Err(QuoteError::Verification(format!(
                            "under Intel's root: {intel_err}; under the simulated root: {sim_err}"
                        )))
                    }
                },
            },
        };
    let td = report
        .report
        .as_td10()
        .ok_or_else(|| QuoteError::Malformed {
            len: quote.len(),
            what: "not a TDX quote (SGX enclave report body)".into(),
        })?;
    let verified = VerifiedQuote {
        status: report.status.clone(),
        advisory_ids: report.advisory_ids.clone(),
        mrtd: td.mr_td,
        rtmr: [td.rt_mr0, td.rt_mr1, td.rt_mr2, td.rt_mr3],
        report_data: td.report_data,
        td_attributes: u64::from_le_bytes(td.td_attributes),
        xfam: u64::from_le_bytes(td.xfam),
        mrseam: td.mr_seam,
        mrsigner_seam: td.mr_signer_seam,
        mr_config_id: td.mr_config_id,
        mr_owner: td.mr_owner,
        mr_owner_config: td.mr_owner_config,
        tee_tcb_svn: td.tee_tcb_svn,
        simulated_root_used,
    };
    apply_policy(&verified, policy)?;
    Ok(verified)
}

/// Applies the policy checks that follow cryptographic verification.
pub fn apply_policy(q: &VerifiedQuote, policy: &QuotePolicy) -> Result<(), QuoteError> {
    if !policy.allowed_tcb_statuses.contains(&q.status) {
        return Err(QuoteError::TcbStatus {
            status: q.status.clone(),
            allowed: policy
                .allowed_tcb_statuses
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    if q.td_attributes & td_attributes::DEBUG != 0 {
        return Err(QuoteError::TdAttributes {
            attributes: q.td_attributes,
            what: "DEBUG is set: the host can read and modify the TD".into(),
        });
    }
    let unknown = q.td_attributes & !policy.allowed_td_attributes;
    if unknown != 0 {
        return Err(QuoteError::TdAttributes {
            attributes: q.td_attributes,
            what: format!(
                "bits {unknown:#x} are outside the allowed set {:#x}",
                policy.allowed_td_attributes
            ),
        });
    }
    match &policy.xfam {
        XfamPolicy::Mask(mask) => {
            let extra = q.xfam & !mask;
            if extra != 0 {
                return Err(QuoteError::Xfam {
                    xfam: q.xfam,
                    what: format!("bits {extra:#x} are outside the mask {mask:#x}"),
                });
            }
        }
        XfamPolicy::AllowList(values) => {
            if !values.contains(&q.xfam) {
                return Err(QuoteError::Xfam {
                    xfam: q.xfam,
                    what: "not in the allow-list".into(),
                });
            }
        }
    }
    if let Some(list) = &policy.mrseam_allow_list {
        if !list.contains(&q.mrseam) {
            return Err(QuoteError::MrSeam {
                mrseam: hex::encode(q.mrseam),
            });
        }
    }
    if q.simulated_root_used && !policy.trust_simulated {
        // Unreachable through verify_quote, which never tries the mock root without
        // trust_simulated; kept so that apply_policy alone is also safe.
        return Err(QuoteError::Config(
            "quote chains to the simulated root but the policy does not trust it".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified() -> VerifiedQuote {
        VerifiedQuote {
            status: "UpToDate".into(),
            advisory_ids: vec![],
            mrtd: [1; 48],
            rtmr: [[0; 48]; 4],
            report_data: [0; 64],
            td_attributes: td_attributes::SEPT_VE_DISABLE,
            xfam: 0x602e7,
            mrseam: [2; 48],
            mrsigner_seam: [0; 48],
            mr_config_id: [0; 48],
            mr_owner: [0; 48],
            mr_owner_config: [0; 48],
            tee_tcb_svn: [0; 16],
            simulated_root_used: false,
        }
    }

    #[test]
    fn default_policy_accepts_a_plain_production_td() {
        assert!(apply_policy(&verified(), &QuotePolicy::default()).is_ok());
    }

    #[test]
    fn debug_is_refused_even_when_listed_as_allowed() {
        let mut q = verified();
        q.td_attributes |= td_attributes::DEBUG;
        let policy = QuotePolicy {
            allowed_td_attributes: u64::MAX,
            ..QuotePolicy::default()
        };
        let err = apply_policy(&q, &policy).unwrap_err();
        assert!(err.to_string().contains("DEBUG"), "{err}");
    }

    #[test]
    fn migratable_is_refused_by_default() {
        let mut q = verified();
        q.td_attributes |= td_attributes::MIGRATABLE;
        assert!(matches!(
            apply_policy(&q, &QuotePolicy::default()),
            Err(QuoteError::TdAttributes { .. })
        ));
    }

    #[test]
    fn simulated_root_needs_trust() {
        let mut q = verified();
        q.simulated_root_used = true;
        assert!(apply_policy(&q, &QuotePolicy::default()).is_err());
        let policy = QuotePolicy {
            trust_simulated: true,
            ..QuotePolicy::default()
        };
        assert!(apply_policy(&q, &policy).is_ok());
    }

    #[test]
    fn intel_root_is_the_known_certificate() {
        use sha2::Digest;
        assert_eq!(
            hex::encode(sha2::Sha256::digest(INTEL_SGX_ROOT_CA_DER)),
            "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
        );
    }

    #[test]
    fn framing_rejects_bad_versions_and_lengths() {
        let mut q = vec![0u8; MIN_QUOTE_LEN];
        q[0] = 3;
        assert!(check_size(&q)
            .unwrap_err()
            .to_string()
            .contains("version 3"));
        q[0] = 5;
        q[50..54].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(check_size(&q)
            .unwrap_err()
            .to_string()
            .contains("past the quote"));
        q[0] = 4;
        q[632..636].copy_from_slice(&0u32.to_le_bytes());
        assert!(check_size(&q).is_ok());
        q[632] = 1;
        assert!(check_size(&q).is_err());
    }
}
