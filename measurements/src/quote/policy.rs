//! What a verifier accepts in a verified TDX quote, beyond the DCAP signature chain.
//!
//! Defaults ([`QuotePolicy::default`]) are strict: only TCB status `UpToDate`; DEBUG must be
//! clear and no TD attribute outside SEPT_VE_DISABLE, PKS, KL and PERFMON may be set; XFAM
//! within the usual user-state features; any MRSEAM (Intel signs the TDX module, and the TCB
//! info already pins its signer and SVN); Intel's root only.

use std::collections::BTreeSet;

/// TD attribute bits (Intel TDX module ABI, TDATTRIBUTES).
pub mod td_attributes {
    /// TUD.DEBUG: the host can read and modify the TD's private state.
    pub const DEBUG: u64 = 1 << 0;
    /// SEC.SEPT_VE_DISABLE.
    pub const SEPT_VE_DISABLE: u64 = 1 << 28;
    /// SEC.MIGRATABLE.
    pub const MIGRATABLE: u64 = 1 << 29;
    /// SEC.PKS: supervisor protection keys.
    pub const PKS: u64 = 1 << 30;
    /// SEC.KL: key locker.
    pub const KL: u64 = 1 << 31;
    /// OTHER.PERFMON.
    pub const PERFMON: u64 = 1 << 63;
}

/// TD attribute bits accepted by default: none weakens the TD's isolation from the host.
pub const DEFAULT_ALLOWED_TD_ATTRIBUTES: u64 = td_attributes::SEPT_VE_DISABLE
    | td_attributes::PKS
    | td_attributes::KL
    | td_attributes::PERFMON;

/// XFAM bits accepted by default: x87, SSE, AVX, AVX-512 (opmask, ZMM_Hi256, Hi16_ZMM),
/// PKRU, CET user and supervisor state, AMX TILECFG and TILEDATA. Processor trace (bit 8),
/// LBR (15) and HWP (16) state are refused.
pub const DEFAULT_XFAM_MASK: u64 = 0x0000_0000_0006_1AE7;

/// TCB status names as Intel's TCB info and dcap-qvl spell them.
pub const TCB_STATUS_NAMES: &[&str] = &[
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "TDRelaunchAdvised",
    "TDRelaunchAdvisedConfigurationNeeded",
];

/// Which XFAM values are acceptable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XfamPolicy {
    /// XFAM must not set bits outside the mask.
    Mask(u64),
    /// XFAM must equal one of the listed values.
    AllowList(Vec<u64>),
}

/// Acceptance policy applied after the DCAP chain and signatures have verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotePolicy {
    /// TCB statuses accepted by name (see [`TCB_STATUS_NAMES`]). `Revoked` is never
    /// accepted: dcap-qvl refuses it before the policy runs.
    pub allowed_tcb_statuses: BTreeSet<String>,
    /// TD attribute bits that may be set. DEBUG is refused even if listed here.
    pub allowed_td_attributes: u64,
    pub xfam: XfamPolicy,
    /// When set, MRSEAM must be one of these.
    pub mrseam_allow_list: Option<Vec<[u8; 48]>>,
    /// Also trust the simulated TD's mock root CA. Never set this in production: it makes
    /// evidence from a process on any machine acceptable.
    pub trust_simulated: bool,
}

impl Default for QuotePolicy {
    fn default() -> Self {
        QuotePolicy {
            allowed_tcb_statuses: BTreeSet::from(["UpToDate".to_string()]),
            allowed_td_attributes: DEFAULT_ALLOWED_TD_ATTRIBUTES,
            xfam: XfamPolicy::Mask(DEFAULT_XFAM_MASK),
            mrseam_allow_list: None,
            trust_simulated: false,
        }
    }
}

impl QuotePolicy {
    /// Also accepts TCB status `name`; fails on a name that is not a TCB status.
    pub fn allow_tcb_status(mut self, name: &str) -> Result<Self, String> {
        if name == "Revoked" {
            return Err("TCB status Revoked can never be accepted".into());
        }
        if !TCB_STATUS_NAMES.contains(&name) {
            return Err(format!(
                "unknown TCB status {name:?}; known: {}",
                TCB_STATUS_NAMES.join(", ")
            ));
        }
        self.allowed_tcb_statuses.insert(name.to_string());
        Ok(self)
    }
}
