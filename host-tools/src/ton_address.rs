//! TON account addresses: the raw form `WC:HEX64` and the 48-character user-friendly form
//! (base64 or base64url of tag, workchain, 32-byte account id and a CRC16-XMODEM checksum).
//!
//! Invariant: a parsed [`TonAddress`] has workchain 0 (basechain) or -1 (masterchain) and, for the
//! user-friendly form, a matching checksum and a known tag.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TonAddress {
    pub workchain: i8,
    pub account: [u8; 32],
    /// Set for user-friendly addresses with the testnet flag (tag bit 0x80).
    pub testnet: bool,
    /// The text as the owner wrote it.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TonAddressError {
    #[error("empty")]
    Empty,
    #[error("raw address must be WORKCHAIN:64 hex digits")]
    BadRaw,
    #[error("workchain {0} is not 0 or -1")]
    BadWorkchain(i64),
    #[error("user-friendly address must be 48 base64/base64url characters, got {0}")]
    BadLength(usize),
    #[error("not valid base64 or base64url")]
    BadBase64,
    #[error(
        "unknown tag {0:#04x} (expected 0x11 bounceable or 0x51 non-bounceable, +0x80 for testnet)"
    )]
    BadTag(u8),
    #[error("checksum mismatch (a typo?)")]
    BadChecksum,
}

/// CRC-16/XMODEM (poly 0x1021, init 0), as TON uses for address checksums.
pub fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn check_workchain(wc: i64) -> Result<i8, TonAddressError> {
    match wc {
        0 => Ok(0),
        -1 => Ok(-1),
        other => Err(TonAddressError::BadWorkchain(other)),
    }
}

impl TonAddress {
    pub fn parse(text: &str) -> Result<Self, TonAddressError> {
        let s = text.trim();
        if s.is_empty() {
            return Err(TonAddressError::Empty);
        }
        if let Some((wc, hex_part)) = s.split_once(':') {
            let wc: i64 = wc.parse().map_err(|_| TonAddressError::BadRaw)?;
            let workchain = check_workchain(wc)?;
            if hex_part.len() != 64 {
                return Err(TonAddressError::BadRaw);
            }
            let mut account = [0u8; 32];
            hex::decode_to_slice(hex_part, &mut account).map_err(|_| TonAddressError::BadRaw)?;
            return Ok(TonAddress {
                workchain,
                account,
                testnet: false,
                text: s.to_string(),
            });
        }
        if s.len() != 48 {
            return Err(TonAddressError::BadLength(s.len()));
        }
        let bytes = if s.contains(['-', '_']) {
            URL_SAFE.decode(s)
        } else {
            STANDARD.decode(s)
        }
        .map_err(|_| TonAddressError::BadBase64)?;
        let raw: [u8; 36] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| TonAddressError::BadBase64)?;
        let (body, crc) = raw.split_at(34);
        let expected = crc16_xmodem(body).to_be_bytes();
        if crc != expected {
            return Err(TonAddressError::BadChecksum);
        }
        let tag = raw[0];
        let testnet = tag & 0x80 != 0;
        if !matches!(tag & 0x7f, 0x11 | 0x51) {
            return Err(TonAddressError::BadTag(tag));
        }
        let workchain = check_workchain(i64::from(raw[1] as i8))?;
        let mut account = [0u8; 32];
        account.copy_from_slice(&raw[2..34]);
        Ok(TonAddress {
            workchain,
            account,
            testnet,
            text: s.to_string(),
        })
    }

    /// The raw form `WC:hex`.
    pub fn raw(&self) -> String {
        format!("{}:{}", self.workchain, hex::encode(self.account))
    }
}

impl fmt::Display for TonAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a user-friendly address for tests.
    pub(crate) fn friendly(tag: u8, wc: i8, account: [u8; 32], url: bool) -> String {
        let mut raw = vec![tag, wc as u8];
        raw.extend_from_slice(&account);
        let crc = crc16_xmodem(&raw);
        raw.extend_from_slice(&crc.to_be_bytes());
        if url {
            URL_SAFE.encode(raw)
        } else {
            STANDARD.encode(raw)
        }
    }

    #[test]
    fn crc_reference_value() {
        // CRC-16/XMODEM check value for "123456789".
        assert_eq!(crc16_xmodem(b"123456789"), 0x31c3);
    }

    #[test]
    fn parses_both_forms() {
        let acct = [0xab; 32];
        let s = friendly(0x11, 0, acct, true);
        let a = TonAddress::parse(&s).unwrap();
        assert_eq!((a.workchain, a.account, a.testnet), (0, acct, false));
        let t = TonAddress::parse(&friendly(0xd1, -1, acct, false)).unwrap();
        assert_eq!((t.workchain, t.testnet), (-1, true));
        let raw = format!("0:{}", "ab".repeat(32));
        assert_eq!(TonAddress::parse(&raw).unwrap().account, acct);
        assert_eq!(a.raw(), raw);
    }

    #[test]
    fn rejects_tampered_and_malformed() {
        let s = friendly(0x11, 0, [7; 32], true);
        // Flip one character: the checksum catches it.
        let mut chars: Vec<char> = s.chars().collect();
        chars[10] = if chars[10] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        assert_eq!(
            TonAddress::parse(&tampered),
            Err(TonAddressError::BadChecksum)
        );
        assert_eq!(
            TonAddress::parse(&s[..47]),
            Err(TonAddressError::BadLength(47))
        );
        assert_eq!(
            TonAddress::parse(&format!("{s}A")),
            Err(TonAddressError::BadLength(49))
        );
        assert_eq!(TonAddress::parse(""), Err(TonAddressError::Empty));
        assert!(matches!(
            TonAddress::parse(&friendly(0x22, 0, [7; 32], true)),
            Err(TonAddressError::BadTag(0x22))
        ));
        assert_eq!(
            TonAddress::parse(&friendly(0x11, 5, [7; 32], true)),
            Err(TonAddressError::BadWorkchain(5))
        );
        assert_eq!(TonAddress::parse("0:abc"), Err(TonAddressError::BadRaw));
        assert_eq!(
            TonAddress::parse(&format!("7:{}", "00".repeat(32))),
            Err(TonAddressError::BadWorkchain(7))
        );
        assert_eq!(
            TonAddress::parse(&"!".repeat(48)),
            Err(TonAddressError::BadBase64)
        );
    }
}
