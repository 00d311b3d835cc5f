//! Byte layout of Intel DCAP v4 TDX quotes and TD reports (Intel TDX DCAP Quote Generation
//! Library and Quote Verification Library API, appendix "Quote Format"). All integers are
//! little-endian.

/// Quote header length.
pub const HEADER_LEN: usize = 48;
/// TD report body (TDX 1.0, `TD_REPORT10`) length inside a v4 quote.
pub const TD_REPORT10_LEN: usize = 584;
/// Bytes covered by the attestation key signature: header plus body.
pub const SIGNED_LEN: usize = HEADER_LEN + TD_REPORT10_LEN;
/// SGX enclave report (the QE report) length.
pub const ENCLAVE_REPORT_LEN: usize = 384;
/// Length of a TDREPORT_STRUCT returned by TDG.MR.REPORT.
pub const TDREPORT_LEN: usize = 1024;
/// configfs-tsm caps `outblob` at 32 KiB (`TSM_REPORT_OUTBLOB_MAX`).
pub const TSM_OUTBLOB_MAX: usize = 32 * 1024;

pub const QUOTE_VERSION_4: u16 = 4;
pub const ATTESTATION_KEY_TYPE_ECDSA_P256: u16 = 2;
pub const TEE_TYPE_TDX: u32 = 0x81;
/// QE vendor ID of Intel's quoting enclaves.
pub const INTEL_QE_VENDOR_ID: [u8; 16] = [
    0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07,
];
/// Certification data type: PCK certificate chain (PEM).
pub const CERT_DATA_PCK_CHAIN: u16 = 5;
/// Certification data type: QE report certification data.
pub const CERT_DATA_QE_REPORT: u16 = 6;

/// TD attribute bits (Intel TDX module ABI, TDATTRIBUTES).
pub mod td_attributes {
    /// TUD.DEBUG: the host can read and write the TD's private state.
    pub const DEBUG: u64 = 1 << 0;
    /// SEC.SEPT_VE_DISABLE: EPT violations on pending pages are not reflected as #VE.
    pub const SEPT_VE_DISABLE: u64 = 1 << 28;
    /// SEC.MIGRATABLE.
    pub const MIGRATABLE: u64 = 1 << 29;
    /// SEC.PKS: supervisor protection keys.
    pub const PKS: u64 = 1 << 30;
    /// SEC.KL: key locker.
    pub const KL: u64 = 1 << 31;
    /// OTHER.PERFMON: the TD may use the performance monitoring counters.
    pub const PERFMON: u64 = 1 << 63;
}

/// Offsets of the fields of a `TD_REPORT10` body, relative to the start of the body.
pub mod body {
    pub const TEE_TCB_SVN: usize = 0;
    pub const MR_SEAM: usize = 16;
    pub const MR_SIGNER_SEAM: usize = 64;
    pub const SEAM_ATTRIBUTES: usize = 112;
    pub const TD_ATTRIBUTES: usize = 120;
    pub const XFAM: usize = 128;
    pub const MR_TD: usize = 136;
    pub const MR_CONFIG_ID: usize = 184;
    pub const MR_OWNER: usize = 232;
    pub const MR_OWNER_CONFIG: usize = 280;
    pub const RTMR0: usize = 328;
    pub const REPORT_DATA: usize = 520;
}

/// The fields of a TDX 1.0 TD report body, as carried in a v4 quote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TdReportBody {
    pub tee_tcb_svn: [u8; 16],
    pub mr_seam: [u8; 48],
    pub mr_signer_seam: [u8; 48],
    pub seam_attributes: u64,
    pub td_attributes: u64,
    pub xfam: u64,
    pub mr_td: [u8; 48],
    pub mr_config_id: [u8; 48],
    pub mr_owner: [u8; 48],
    pub mr_owner_config: [u8; 48],
    pub rtmr: [[u8; 48]; 4],
    pub report_data: [u8; 64],
}

impl TdReportBody {
    /// Encodes the body in quote layout (exactly [`TD_REPORT10_LEN`] bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TD_REPORT10_LEN);
        out.extend_from_slice(&self.tee_tcb_svn);
        out.extend_from_slice(&self.mr_seam);
        out.extend_from_slice(&self.mr_signer_seam);
        out.extend_from_slice(&self.seam_attributes.to_le_bytes());
        out.extend_from_slice(&self.td_attributes.to_le_bytes());
        out.extend_from_slice(&self.xfam.to_le_bytes());
        out.extend_from_slice(&self.mr_td);
        out.extend_from_slice(&self.mr_config_id);
        out.extend_from_slice(&self.mr_owner);
        out.extend_from_slice(&self.mr_owner_config);
        for rtmr in &self.rtmr {
            out.extend_from_slice(rtmr);
        }
        out.extend_from_slice(&self.report_data);
        debug_assert_eq!(out.len(), TD_REPORT10_LEN);
        out
    }
}

/// Checks the fixed header fields of a v4 TDX quote without parsing the rest: used by the
/// provider to reject an `outblob` that is not a TDX quote before handing it out.
pub fn check_tdx_quote_header(quote: &[u8]) -> Result<(), String> {
    let header = quote
        .get(..HEADER_LEN)
        .ok_or_else(|| format!("{} bytes, shorter than a quote header", quote.len()))?;
    let version = u16::from_le_bytes([header[0], header[1]]);
    let tee_type = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if version != 4 && version != 5 {
        return Err(format!("quote version {version}, expected 4 or 5"));
    }
    if tee_type != TEE_TYPE_TDX {
        return Err(format!("TEE type {tee_type:#x}, expected 0x81 (TDX)"));
    }
    if quote.len() < SIGNED_LEN {
        return Err(format!(
            "{} bytes, shorter than header and TD report body",
            quote.len()
        ));
    }
    Ok(())
}
