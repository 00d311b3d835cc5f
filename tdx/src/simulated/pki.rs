//! The seeded mock DCAP PKI of the simulated TD.
//!
//! It mirrors Intel's: a self-signed root CA; a platform CA issued by the root; a PCK leaf
//! issued by the platform CA carrying the SGX extension (OID 1.2.840.113741.1.13.1: PPID, TCB
//! component SVNs, PCESVN, CPUSVN, PCE-ID, FMSPC, SGX type); a TCB signing certificate issued
//! by the root, which signs the TCB info (TDX, version 3) and QE identity (TD_QE) JSON; a root
//! CA CRL and a PCK CRL. Every key is derived from the seed, and ECDSA signatures are
//! deterministic (RFC 6979), so one seed always yields byte-identical certificates, CRLs and
//! collateral. Every subject says "Simulated" and "not Intel", and the root's key is not
//! Intel's, so nothing this PKI signs verifies under Intel's root.

use super::der;
use crate::TdxError;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey as P256Key};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CustomExtension,
    DistinguishedName, DnType, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose, PublicKeyData,
    SerialNumber, SignatureAlgorithm, SigningKey,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Start of the validity of every certificate, CRL and collateral document of the mock PKI.
pub const VALID_FROM: (i32, u8, u8) = (2024, 1, 1);
/// End of that validity.
pub const VALID_UNTIL: (i32, u8, u8) = (2049, 12, 31);
const ISSUE_DATE: &str = "2024-01-01T00:00:00Z";
const NEXT_UPDATE: &str = "2049-12-31T00:00:00Z";
const TCB_DATE: &str = "2024-03-13T00:00:00Z";
const ORGANIZATION: &str = "COCOON Simulated TD (not Intel)";

/// FMSPC of the simulated platform.
pub const FMSPC: [u8; 6] = [0xC0, 0xC0, 0x00, 0x51, 0x00, 0x00];
/// CPUSVN of the simulated platform (also its SGX TCB component SVNs).
pub const CPU_SVN: [u8; 16] = [2, 2, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0];
pub const PCE_SVN: u16 = 11;
pub const PCE_ID: [u8; 2] = [0, 0];
/// TEE_TCB_SVN of the simulated TDX module: ISVSVN 3, module major version 1, late
/// microcode SVN 2.
pub const TEE_TCB_SVN: [u8; 16] = [3, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// QE identity values of the simulated quoting enclave.
pub const QE_ISV_PROD_ID: u16 = 2;
pub const QE_ISV_SVN: u16 = 4;
/// QE report attributes: INIT | MODE64BIT, DEBUG clear.
pub const QE_ATTRIBUTES: [u8; 16] = [0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// TCB statuses the mock PKI can put in its TCB info (names as in Intel's TCB info JSON).
pub const TCB_STATUSES: &[&str] = &[
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
];

/// A P-256 key of the mock PKI, usable by rcgen with deterministic signatures.
#[derive(Clone)]
pub(crate) struct PkiKey {
    key: P256Key,
    /// SEC1 uncompressed public point (65 bytes).
    public: Vec<u8>,
}

impl PkiKey {
    /// Derives a key from the seed and a label: the first valid scalar among
    /// SHA-256("cocoon-simulated-td/v1" || label || seed || counter), counter = 0, 1, ...
    fn derive(seed: u64, label: &str) -> Self {
        let mut counter = 0u32;
        loop {
            let mut h = Sha256::new();
            h.update(b"cocoon-simulated-td/v1");
            h.update(label.as_bytes());
            h.update(seed.to_le_bytes());
            h.update(counter.to_le_bytes());
            if let Ok(key) = P256Key::from_slice(&h.finalize()) {
                let public = key
                    .verifying_key()
                    .to_encoded_point(false)
                    .as_bytes()
                    .to_vec();
                return PkiKey { key, public };
            }
            counter = counter.wrapping_add(1);
        }
    }

    /// Raw `r || s` signature over `msg` (ECDSA P-256 with SHA-256).
    pub(crate) fn sign_raw(&self, msg: &[u8]) -> [u8; 64] {
        let sig: Signature = self.key.sign(msg);
        sig.to_bytes().into()
    }

    /// The public key as the 64-byte `x || y` used in quotes.
    pub(crate) fn public_xy(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(&self.public[1..]);
        out
    }

    fn key_id(&self) -> Vec<u8> {
        Sha256::digest(&self.public)[..20].to_vec()
    }
}

impl PublicKeyData for PkiKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl SigningKey for PkiKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let sig: Signature = self.key.sign(msg);
        Ok(sig.to_der().as_bytes().to_vec())
    }
}

/// Collateral in dcap-qvl's `QuoteCollateralV3` JSON layout (binary fields as hex strings).
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct SimulatedCollateral {
    pub pck_crl_issuer_chain: String,
    #[serde(with = "hex")]
    pub root_ca_crl: Vec<u8>,
    #[serde(with = "hex")]
    pub pck_crl: Vec<u8>,
    pub tcb_info_issuer_chain: String,
    pub tcb_info: String,
    #[serde(with = "hex")]
    pub tcb_info_signature: Vec<u8>,
    pub qe_identity_issuer_chain: String,
    pub qe_identity: String,
    #[serde(with = "hex")]
    pub qe_identity_signature: Vec<u8>,
}

impl SimulatedCollateral {
    pub fn to_json(&self) -> String {
        // Serialising plain strings cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// The mock DCAP PKI; see the module documentation.
pub struct MockPki {
    seed: u64,
    root_der: Vec<u8>,
    root_pem: String,
    platform_ca_pem: String,
    pck_pem: String,
    tcb_signer_pem: String,
    pck: PkiKey,
    tcb_signer: PkiKey,
    attestation: PkiKey,
    root_crl: Vec<u8>,
    pck_crl: Vec<u8>,
    qe_mrsigner: [u8; 32],
    ppid: [u8; 16],
}

fn date(d: (i32, u8, u8)) -> time::OffsetDateTime {
    rcgen::date_time_ymd(d.0, d.1, d.2)
}

fn params(cn: &str, serial: u64, key: &PkiKey) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, ORGANIZATION);
    p.distinguished_name = dn;
    p.not_before = date(VALID_FROM);
    p.not_after = date(VALID_UNTIL);
    p.serial_number = Some(SerialNumber::from(serial));
    p.key_identifier_method = KeyIdMethod::PreSpecified(key.key_id());
    p.use_authority_key_identifier_extension = true;
    p
}

fn ca_params(cn: &str, serial: u64, key: &PkiKey, path_len: u8) -> CertificateParams {
    let mut p = params(cn, serial, key);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

fn leaf_params(cn: &str, serial: u64, key: &PkiKey) -> CertificateParams {
    let mut p = params(cn, serial, key);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
    ];
    p
}

fn pki_err(what: &str, e: rcgen::Error) -> TdxError {
    TdxError::Simulated(format!("mock PKI: {what}: {e}"))
}

/// The Intel SGX extension of a PCK certificate.
fn sgx_extension(ppid: &[u8; 16]) -> Vec<u8> {
    const SGX: [u64; 7] = [1, 2, 840, 113741, 1, 13, 1];
    let sub = |arcs: &[u64]| der::oid(&[&SGX[..], arcs].concat());
    let mut tcb_items: Vec<Vec<u8>> = CPU_SVN
        .iter()
        .zip(1u64..)
        .map(|(svn, i)| der::sequence(&[sub(&[2, i]), der::integer(u64::from(*svn))]))
        .collect();
    tcb_items.push(der::sequence(&[
        sub(&[2, 17]),
        der::integer(u64::from(PCE_SVN)),
    ]));
    tcb_items.push(der::sequence(&[sub(&[2, 18]), der::octet_string(&CPU_SVN)]));
    der::sequence(&[
        der::sequence(&[sub(&[1]), der::octet_string(ppid)]),
        der::sequence(&[sub(&[2]), der::sequence(&tcb_items)]),
        der::sequence(&[sub(&[3]), der::octet_string(&PCE_ID)]),
        der::sequence(&[sub(&[4]), der::octet_string(&FMSPC)]),
        // SGX type 0 = Standard.
        der::sequence(&[sub(&[5]), der::enumerated(0)]),
    ])
}

fn seeded_bytes<const N: usize>(seed: u64, label: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let mut counter = 0u32;
    let mut filled = 0;
    while filled < N {
        let mut h = Sha256::new();
        h.update(b"cocoon-simulated-td/v1");
        h.update(label.as_bytes());
        h.update(seed.to_le_bytes());
        h.update(counter.to_le_bytes());
        let block = h.finalize();
        let take = (N - filled).min(block.len());
        out[filled..filled + take].copy_from_slice(&block[..take]);
        filled += take;
        counter += 1;
    }
    out
}

impl MockPki {
    /// Builds the PKI deterministically from `seed`.
    pub fn new(seed: u64) -> Result<Self, TdxError> {
        let root = PkiKey::derive(seed, "root-ca");
        let platform = PkiKey::derive(seed, "platform-ca");
        let pck = PkiKey::derive(seed, "pck-leaf");
        let tcb_signer = PkiKey::derive(seed, "tcb-signing");
        let attestation = PkiKey::derive(seed, "attestation-key");
        let ppid = seeded_bytes::<16>(seed, "ppid");

        let root_params = ca_params("COCOON Simulated SGX Root CA", 1, &root, 1);
        let root_cert = root_params
            .self_signed(&root)
            .map_err(|e| pki_err("root CA", e))?;
        let root_issuer = Issuer::new(root_params, &root);

        let platform_params = ca_params("COCOON Simulated SGX PCK Platform CA", 2, &platform, 0);
        let platform_cert = platform_params
            .signed_by(&platform, &root_issuer)
            .map_err(|e| pki_err("platform CA", e))?;
        let platform_issuer = Issuer::new(platform_params, &platform);

        let mut pck_params = leaf_params("COCOON Simulated SGX PCK Certificate", 3, &pck);
        pck_params.custom_extensions = vec![CustomExtension::from_oid_content(
            &[1, 2, 840, 113741, 1, 13, 1],
            sgx_extension(&ppid),
        )];
        let pck_cert = pck_params
            .signed_by(&pck, &platform_issuer)
            .map_err(|e| pki_err("PCK certificate", e))?;

        let tcb_params = leaf_params("COCOON Simulated SGX TCB Signing", 4, &tcb_signer);
        let tcb_cert = tcb_params
            .signed_by(&tcb_signer, &root_issuer)
            .map_err(|e| pki_err("TCB signing certificate", e))?;

        let crl = |number: u64, issuer: &Issuer<'_, &PkiKey>, key: &PkiKey, what: &str| {
            CertificateRevocationListParams {
                this_update: date(VALID_FROM),
                next_update: date(VALID_UNTIL),
                crl_number: SerialNumber::from(number),
                issuing_distribution_point: None,
                revoked_certs: Vec::new(),
                key_identifier_method: KeyIdMethod::PreSpecified(key.key_id()),
            }
            .signed_by(issuer)
            .map(|c| c.der().to_vec())
            .map_err(|e| pki_err(what, e))
        };
        let root_crl = crl(1, &root_issuer, &root, "root CA CRL")?;
        let pck_crl = crl(1, &platform_issuer, &platform, "PCK CRL")?;

        Ok(MockPki {
            seed,
            root_der: root_cert.der().to_vec(),
            root_pem: root_cert.pem(),
            platform_ca_pem: platform_cert.pem(),
            pck_pem: pck_cert.pem(),
            tcb_signer_pem: tcb_cert.pem(),
            pck,
            tcb_signer,
            attestation,
            root_crl,
            pck_crl,
            qe_mrsigner: seeded_bytes::<32>(seed, "qe-mrsigner"),
            ppid,
        })
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The mock root CA certificate (DER): the only anchor under which simulated quotes verify.
    pub fn root_ca_der(&self) -> &[u8] {
        &self.root_der
    }

    /// The PCK certificate chain (leaf, platform CA, root) in PEM, as embedded in quotes.
    pub fn pck_chain_pem(&self) -> String {
        format!("{}{}{}", self.pck_pem, self.platform_ca_pem, self.root_pem)
    }

    pub fn ppid(&self) -> [u8; 16] {
        self.ppid
    }

    pub(crate) fn pck_key(&self) -> &PkiKey {
        &self.pck
    }

    pub(crate) fn attestation_key(&self) -> &PkiKey {
        &self.attestation
    }

    /// MRSIGNER of the simulated quoting enclave.
    pub fn qe_mrsigner(&self) -> [u8; 32] {
        self.qe_mrsigner
    }

    /// Collateral whose platform TCB level is UpToDate.
    pub fn collateral(&self) -> SimulatedCollateral {
        self.build_collateral("UpToDate", &[])
    }

    /// Collateral whose TCB level for the simulated platform has `status` (one of
    /// [`TCB_STATUSES`]) and `advisories`.
    pub fn collateral_with_status(
        &self,
        status: &str,
        advisories: &[&str],
    ) -> Result<SimulatedCollateral, TdxError> {
        if !TCB_STATUSES.contains(&status) {
            return Err(TdxError::Simulated(format!(
                "unknown TCB status {status:?}; known: {TCB_STATUSES:?}"
            )));
        }
        Ok(self.build_collateral(status, advisories))
    }

    fn build_collateral(&self, status: &str, advisories: &[&str]) -> SimulatedCollateral {
        let tcb_info = self.tcb_info_json(status, advisories);
        let qe_identity = self.qe_identity_json();
        let signer_chain = format!("{}{}", self.tcb_signer_pem, self.root_pem);
        SimulatedCollateral {
            pck_crl_issuer_chain: format!("{}{}", self.platform_ca_pem, self.root_pem),
            root_ca_crl: self.root_crl.clone(),
            pck_crl: self.pck_crl.clone(),
            tcb_info_issuer_chain: signer_chain.clone(),
            tcb_info_signature: self.tcb_signer.sign_raw(tcb_info.as_bytes()).to_vec(),
            tcb_info,
            qe_identity_issuer_chain: signer_chain,
            qe_identity_signature: self.tcb_signer.sign_raw(qe_identity.as_bytes()).to_vec(),
            qe_identity,
        }
    }

    fn tcb_info_json(&self, status: &str, advisories: &[&str]) -> String {
        let svns = |values: &[u8]| -> Vec<serde_json::Value> {
            values
                .iter()
                .map(|v| serde_json::json!({ "svn": v }))
                .collect()
        };
        let zero_signer = "00".repeat(48);
        let mut level = serde_json::json!({
            "tcb": {
                "sgxtcbcomponents": svns(&CPU_SVN),
                "pcesvn": PCE_SVN,
                "tdxtcbcomponents": svns(&TEE_TCB_SVN),
            },
            "tcbDate": TCB_DATE,
            "tcbStatus": status,
        });
        if !advisories.is_empty() {
            level["advisoryIDs"] = serde_json::json!(advisories);
        }
        serde_json::json!({
            "id": "TDX",
            "version": 3,
            "issueDate": ISSUE_DATE,
            "nextUpdate": NEXT_UPDATE,
            "fmspc": hex::encode_upper(FMSPC),
            "pceId": hex::encode_upper(PCE_ID),
            "tcbType": 0,
            "tcbEvaluationDataNumber": 17,
            "tdxModule": {
                "mrsigner": zero_signer,
                "attributes": "0000000000000000",
                "attributesMask": "FFFFFFFFFFFFFFFF",
            },
            "tdxModuleIdentities": [{
                "id": format!("TDX_{:02X}", TEE_TCB_SVN[1]),
                "mrsigner": zero_signer,
                "attributes": "0000000000000000",
                "attributesMask": "FFFFFFFFFFFFFFFF",
                "tcbLevels": [{
                    "tcb": { "isvsvn": TEE_TCB_SVN[0] },
                    "tcbDate": TCB_DATE,
                    "tcbStatus": "UpToDate",
                }],
            }],
            "tcbLevels": [level],
        })
        .to_string()
    }

    fn qe_identity_json(&self) -> String {
        serde_json::json!({
            "id": "TD_QE",
            "version": 2,
            "issueDate": ISSUE_DATE,
            "nextUpdate": NEXT_UPDATE,
            "tcbEvaluationDataNumber": 17,
            "miscselect": "00000000",
            "miscselectMask": "FFFFFFFF",
            "attributes": hex::encode_upper(QE_ATTRIBUTES),
            "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
            "mrsigner": hex::encode_upper(self.qe_mrsigner),
            "isvprodid": QE_ISV_PROD_ID,
            "tcbLevels": [{
                "tcb": { "isvsvn": QE_ISV_SVN },
                "tcbDate": TCB_DATE,
                "tcbStatus": "UpToDate",
            }],
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_pki_other_seed_other_root() {
        let a = MockPki::new(7).unwrap();
        let b = MockPki::new(7).unwrap();
        let c = MockPki::new(8).unwrap();
        assert_eq!(a.root_ca_der(), b.root_ca_der());
        assert_eq!(a.collateral(), b.collateral());
        assert_eq!(a.pck_chain_pem(), b.pck_chain_pem());
        assert_ne!(a.root_ca_der(), c.root_ca_der());
    }

    #[test]
    fn unknown_status_is_refused() {
        let pki = MockPki::new(1).unwrap();
        assert!(pki.collateral_with_status("Revoked", &[]).is_err());
        assert!(pki
            .collateral_with_status("OutOfDate", &["INTEL-SA-00001"])
            .is_ok());
    }
}
