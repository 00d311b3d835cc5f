//! The data disk's LUKS2 key (see `crate::data_disk`, `image/rootfs/usr/lib/cocoon/open-data-disk`
//! and docs/image.md, "Data disk").
//!
//! Two providers:
//!
//! * **SIMULATED** ([`KeyProvider::Simulated`]): HKDF-SHA256 of a per-seed mock sealing secret,
//!   bound to MRTD and RTMR0-2 (the preset registers of the simulated TD, or the seed's
//!   defaults), so that a disk formatted by one image or VM shape does not open under another.
//!   Anyone who knows the seed can derive the key: it protects nothing and exists for tests and
//!   development.
//! * **Key service** ([`KeyProvider::Service`]): TDX has no hardware sealing key, so a real TD
//!   gets its key from `cocoon-measure key-service`, which checks the TD's RA-TLS certificate
//!   against the signed manifest first (so an image update that the manifest admits keeps the
//!   disk). `serve` fetches it ([`crate::data_disk`]); [`derive`] and `cocoon-agent data-key`
//!   refuse it with [`DataKeyError::NoRealProvider`].
//!
//! The key is 32 bytes. It is the passphrase of a LUKS2 keyslot, not the volume key (which
//! `cryptsetup luksFormat` draws at random): 256 bits is the full strength of HKDF-SHA256's
//! output, and a longer passphrase would add length, not security.

use cocoon_tdx::simulated::{RegistersError, SimulatedRegisters, SimulatedTdConfig};
use hkdf::Hkdf;
use sha2::Sha256;
use std::io::Write;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Length of the data-disk key in bytes (what `cryptsetup --keyfile-size` must be given).
pub const DATA_KEY_LEN: usize = 32;

/// Label of the mock sealing secret among the simulated TD's seeded values.
const SEALING_SECRET_LABEL: &str = "data-sealing-secret";
/// HKDF salt: the derivation's domain and version.
const HKDF_SALT: &[u8] = b"cocoon-data-disk/v1";
/// HKDF info prefix; MRTD and RTMR0-2 (48 bytes each, fixed length) follow it.
const HKDF_INFO_PREFIX: &[u8] = b"cocoon-data-disk/v1 luks2-keyslot-passphrase";

#[derive(Debug, thiserror::Error)]
pub enum DataKeyError {
    #[error(
        "no local key provider for a real TD: TDX has no hardware sealing key; a real TD gets \
         its data-disk key from the key service while `serve` starts (--open-data-disk with \
         --data-key-service, docs/image.md \"Data disk\"); `data-key` derives only SIMULATED \
         keys (--simulated)"
    )]
    NoRealProvider,
    #[error("simulated data-disk key: {0}")]
    Registers(#[from] RegistersError),
    #[error(
        "refusing to write the data-disk key to a terminal: pipe it into \
         `cryptsetup --key-file=- --keyfile-size {DATA_KEY_LEN}`"
    )]
    Terminal,
    #[error("writing the data-disk key to stdout: {0}")]
    Write(#[source] std::io::Error),
}

/// Where the key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProvider {
    /// The SIMULATED provider of the simulated TD with `seed`, its MRTD and RTMR0-2 preset from
    /// `registers` (the `--simulated-registers` file format) or else the seed's defaults.
    Simulated {
        seed: u64,
        registers: Option<PathBuf>,
    },
    /// `cocoon-measure key-service` at `addr` (HOST:PORT), accepted by the SHA-256 of its TLS
    /// SubjectPublicKeyInfo.
    Service { addr: String, pin: [u8; 32] },
}

/// The key. Zeroed when dropped; `Debug` does not show it.
pub struct DataKey(Zeroizing<[u8; DATA_KEY_LEN]>);

impl DataKey {
    pub fn from_bytes(key: Zeroizing<[u8; DATA_KEY_LEN]>) -> DataKey {
        DataKey(key)
    }

    pub fn as_bytes(&self) -> &[u8; DATA_KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// The registers a SIMULATED TD of `seed` reports when nothing is preset: the seed's MRTD and
/// RTMR0-2 as the simulated TD starts them.
pub fn default_simulated_registers(seed: u64) -> SimulatedRegisters {
    let config = SimulatedTdConfig::new(seed);
    let [rtmr0, rtmr1, rtmr2] = config.initial_rtmrs;
    SimulatedRegisters {
        mrtd: config.mr_td,
        rtmr0,
        rtmr1,
        rtmr2,
    }
}

/// The seed's mock sealing secret (a simulated TD's seeded value, see
/// [`cocoon_tdx::simulated::seeded48`]).
fn sealing_secret(seed: u64) -> Zeroizing<[u8; 48]> {
    Zeroizing::new(cocoon_tdx::simulated::seeded48(seed, SEALING_SECRET_LABEL))
}

/// The SIMULATED key: HKDF-SHA256(salt, seed's mock sealing secret, info = prefix || MRTD ||
/// RTMR0 || RTMR1 || RTMR2). The registers are fixed-length, so the info is unambiguous.
pub fn simulated_key(seed: u64, registers: &SimulatedRegisters) -> DataKey {
    let secret = sealing_secret(seed);
    let hkdf = Hkdf::<Sha256>::new(Some(HKDF_SALT), secret.as_slice());
    let mut info = Vec::with_capacity(HKDF_INFO_PREFIX.len() + 4 * 48);
    info.extend_from_slice(HKDF_INFO_PREFIX);
    for register in [
        &registers.mrtd,
        &registers.rtmr0,
        &registers.rtmr1,
        &registers.rtmr2,
    ] {
        info.extend_from_slice(register);
    }
    let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
    // 32 bytes is far below HKDF-SHA256's limit of 255 * 32 bytes, so expand cannot fail.
    hkdf.expand(&info, key.as_mut_slice())
        .expect("HKDF-SHA256 can expand 32 bytes");
    DataKey(key)
}

/// The key of a SIMULATED `provider` (loading the registers file it names, if any); the key
/// service's keys are not derived locally.
pub fn derive(provider: &KeyProvider) -> Result<DataKey, DataKeyError> {
    match provider {
        KeyProvider::Service { .. } => Err(DataKeyError::NoRealProvider),
        KeyProvider::Simulated { seed, registers } => {
            let registers = match registers {
                Some(path) => SimulatedRegisters::load(path)?,
                None => default_simulated_registers(*seed),
            };
            Ok(simulated_key(*seed, &registers))
        }
    }
}

/// Writes the raw key to `out` and flushes it, unless `out_is_terminal` (a key on a screen
/// would end up in scrollback and screenshots).
pub fn write_key(
    out: &mut impl Write,
    out_is_terminal: bool,
    key: &DataKey,
) -> Result<(), DataKeyError> {
    if out_is_terminal {
        return Err(DataKeyError::Terminal);
    }
    out.write_all(key.as_bytes())
        .and_then(|()| out.flush())
        .map_err(DataKeyError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers, computed outside this crate (Python's `hashlib`/`hmac`, HKDF written out
    /// from RFC 5869). A change here makes every disk formatted so far unopenable.
    #[test]
    fn derivation_matches_known_answers() {
        let defaults = simulated_key(1, &default_simulated_registers(1));
        assert_eq!(
            hex::encode(defaults.as_bytes()),
            "8682ea4f22a4db7807024254f187367a7a6af8cf3cd29d20686444497ebf9935"
        );
        let preset = SimulatedRegisters {
            mrtd: [1; 48],
            rtmr0: [2; 48],
            rtmr1: [3; 48],
            rtmr2: [4; 48],
        };
        assert_eq!(
            hex::encode(simulated_key(1, &preset).as_bytes()),
            "c5b4d3b0f291691221ac5a0c1e5e129ea4d3e104769de03bcff85f83484630b1"
        );
    }

    #[test]
    fn sealing_secret_is_its_own_seeded_value() {
        let secret = sealing_secret(1);
        let config = SimulatedTdConfig::new(1);
        assert_ne!(*secret, config.mr_td);
        assert_ne!(*secret, config.mr_seam);
    }

    #[test]
    fn every_register_and_the_seed_change_the_key() {
        let base = default_simulated_registers(1);
        let key = |seed, regs: &SimulatedRegisters| *simulated_key(seed, regs).as_bytes();
        let reference = key(1, &base);
        assert_eq!(reference, key(1, &base.clone()));
        assert_ne!(reference, key(2, &base));
        let mut changed = Vec::new();
        for i in 0..4 {
            let mut regs = base.clone();
            let field = match i {
                0 => &mut regs.mrtd,
                1 => &mut regs.rtmr0,
                2 => &mut regs.rtmr1,
                _ => &mut regs.rtmr2,
            };
            field[47] ^= 1;
            let k = key(1, &regs);
            assert_ne!(reference, k, "register {i}");
            changed.push(k);
        }
        // Each register moves the key somewhere else (no two registers alias).
        for (i, a) in changed.iter().enumerate() {
            for b in &changed[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn service_keys_are_not_derived_locally() {
        let service = KeyProvider::Service {
            addr: "127.0.0.1:1".into(),
            pin: [0; 32],
        };
        let err = derive(&service).unwrap_err();
        assert!(matches!(err, DataKeyError::NoRealProvider));
        assert!(
            err.to_string()
                .starts_with("no local key provider for a real TD: "),
            "{err}"
        );
    }

    #[test]
    fn terminal_is_refused_and_nothing_is_written() {
        let key = simulated_key(1, &default_simulated_registers(1));
        let mut out = Vec::new();
        assert!(matches!(
            write_key(&mut out, true, &key),
            Err(DataKeyError::Terminal)
        ));
        assert!(out.is_empty());
        write_key(&mut out, false, &key).unwrap();
        assert_eq!(out, key.as_bytes());
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let key = simulated_key(1, &default_simulated_registers(1));
        let shown = format!("{key:?}");
        assert!(!shown.contains(&hex::encode(key.as_bytes())), "{shown}");
        assert_eq!(shown, "DataKey(<redacted>)");
    }
}
