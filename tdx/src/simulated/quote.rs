//! Generation of genuine v4 TDX quotes for the simulated TD.
//!
//! Layout (all little-endian): 48-byte header (version 4, attestation key type 2 = ECDSA
//! P-256, TEE type 0x81, Intel QE vendor ID), the 584-byte TD report body, the signature data
//! length (u32), then the signature data: ECDSA signature over header||body by the
//! attestation key (64), the attestation public key (64), and certification data of type 6
//! (QE report certification data): the QE report (384-byte SGX enclave report whose
//! report_data is SHA-256(attestation key || QE auth data) padded with zeroes), its ECDSA
//! signature by the PCK leaf key, the QE authentication data (u16 length + bytes) and nested
//! certification data of type 5, the PEM PCK certificate chain.

use super::pki::{self, MockPki};
use crate::layout::{
    TdReportBody, ATTESTATION_KEY_TYPE_ECDSA_P256, CERT_DATA_PCK_CHAIN, CERT_DATA_QE_REPORT,
    ENCLAVE_REPORT_LEN, HEADER_LEN, INTEL_QE_VENDOR_ID, QUOTE_VERSION_4, TEE_TYPE_TDX,
};
use sha2::{Digest, Sha256};

/// QE authentication data carried in simulated quotes (32 bytes, as Intel's QE emits).
fn qe_auth_data(seed: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"cocoon-simulated-td/v1 qe-auth-data");
    h.update(seed.to_le_bytes());
    h.finalize().into()
}

fn header() -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(&QUOTE_VERSION_4.to_le_bytes());
    h.extend_from_slice(&ATTESTATION_KEY_TYPE_ECDSA_P256.to_le_bytes());
    h.extend_from_slice(&TEE_TYPE_TDX.to_le_bytes());
    h.extend_from_slice(&pki::QE_ISV_SVN.to_le_bytes());
    h.extend_from_slice(&pki::PCE_SVN.to_le_bytes());
    h.extend_from_slice(&INTEL_QE_VENDOR_ID);
    // User data: the first 16 bytes identify the QE instance; ours says "simulated".
    let mut user = [0u8; 20];
    user[..16].copy_from_slice(b"COCOON-SIMULATED");
    h.extend_from_slice(&user);
    h
}

/// The SGX enclave report of the simulated quoting enclave.
fn qe_report(pki: &MockPki, report_data: [u8; 64]) -> [u8; ENCLAVE_REPORT_LEN] {
    let mut r = [0u8; ENCLAVE_REPORT_LEN];
    r[0..16].copy_from_slice(&pki::CPU_SVN);
    // misc_select (16..20) = 0, reserved (20..48)
    r[48..64].copy_from_slice(&pki::QE_ATTRIBUTES);
    let mut mr_enclave = [0u8; 32];
    mr_enclave.copy_from_slice(&Sha256::digest(b"cocoon simulated TD quoting enclave"));
    r[64..96].copy_from_slice(&mr_enclave);
    r[128..160].copy_from_slice(&pki.qe_mrsigner());
    r[256..258].copy_from_slice(&pki::QE_ISV_PROD_ID.to_le_bytes());
    r[258..260].copy_from_slice(&pki::QE_ISV_SVN.to_le_bytes());
    r[320..384].copy_from_slice(&report_data);
    r
}

/// Builds and signs a v4 TDX quote over `body`.
pub fn generate(pki: &MockPki, body: &TdReportBody) -> Vec<u8> {
    let mut quote = header();
    quote.extend_from_slice(&body.encode());
    let signature = pki.attestation_key().sign_raw(&quote);
    let attestation_key = pki.attestation_key().public_xy();
    let auth_data = qe_auth_data(pki.seed());

    let mut qe_report_data = [0u8; 64];
    let mut h = Sha256::new();
    h.update(attestation_key);
    h.update(auth_data);
    qe_report_data[..32].copy_from_slice(&h.finalize());
    let qe_report = qe_report(pki, qe_report_data);
    let qe_report_signature = pki.pck_key().sign_raw(&qe_report);

    let chain = pki.pck_chain_pem().into_bytes();
    let mut qe_cert_data = Vec::new();
    qe_cert_data.extend_from_slice(&qe_report);
    qe_cert_data.extend_from_slice(&qe_report_signature);
    qe_cert_data.extend_from_slice(&(auth_data.len() as u16).to_le_bytes());
    qe_cert_data.extend_from_slice(&auth_data);
    qe_cert_data.extend_from_slice(&CERT_DATA_PCK_CHAIN.to_le_bytes());
    qe_cert_data.extend_from_slice(&(chain.len() as u32).to_le_bytes());
    qe_cert_data.extend_from_slice(&chain);

    let mut sig_data = Vec::new();
    sig_data.extend_from_slice(&signature);
    sig_data.extend_from_slice(&attestation_key);
    sig_data.extend_from_slice(&CERT_DATA_QE_REPORT.to_le_bytes());
    sig_data.extend_from_slice(&(qe_cert_data.len() as u32).to_le_bytes());
    sig_data.extend_from_slice(&qe_cert_data);

    quote.extend_from_slice(&(sig_data.len() as u32).to_le_bytes());
    quote.extend_from_slice(&sig_data);
    quote
}
