//! Serde adapters for byte strings as lowercase hex, used by every JSON format of this crate.
//!
//! Invariant: deserialisation accepts exactly one spelling per value (lowercase hex of the
//! exact length), so re-serialising a parsed document reproduces it byte for byte. The manifest
//! signature relies on this.

use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

/// Decodes lowercase hex, refusing upper case and odd lengths.
pub fn decode_strict(s: &str) -> Result<Vec<u8>, String> {
    if let Some(c) = s.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
        return Err(format!("{c:?} is not a lowercase hex digit"));
    }
    hex::decode(s).map_err(|e| e.to_string())
}

/// Decodes exactly `N` bytes of lowercase hex.
pub fn decode_fixed<const N: usize>(s: &str) -> Result<[u8; N], String> {
    let v = decode_strict(s)?;
    <[u8; N]>::try_from(v.as_slice())
        .map_err(|_| format!("expected {} hex digits, found {}", 2 * N, s.len()))
}

/// `[u8; N]` as exactly `2N` lowercase hex digits.
pub mod fixed {
    use super::*;

    pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let s = String::deserialize(d)?;
        decode_fixed(&s).map_err(D::Error::custom)
    }
}

/// `Option<[u8; N]>` as hex or `null`.
pub mod opt_fixed {
    use super::*;

    pub fn serialize<S: Serializer, const N: usize>(
        v: &Option<[u8; N]>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&hex::encode(v)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<Option<[u8; N]>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => decode_fixed(&s).map(Some).map_err(D::Error::custom),
            None => Ok(None),
        }
    }
}

/// `Vec<u8>` as lowercase hex.
pub fn bytes<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(v))
}

/// `Vec<u8>` as lowercase hex, both directions.
pub mod vec {
    use super::*;

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        decode_strict(&s).map_err(D::Error::custom)
    }
}

/// `u64` as `0x` and exactly 16 lowercase hex digits (TD attributes, XFAM).
pub mod u64_hex {
    use super::*;

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{v:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(D::Error::custom)
    }

    /// Parses the canonical spelling `0x` + 16 lowercase hex digits.
    pub fn parse(s: &str) -> Result<u64, String> {
        let digits = s
            .strip_prefix("0x")
            .ok_or_else(|| format!("{s:?} does not start with 0x"))?;
        let bytes: [u8; 8] = decode_fixed(digits)?;
        Ok(u64::from_be_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_hex() {
        assert_eq!(decode_fixed::<2>("00ff").unwrap(), [0, 255]);
        assert!(decode_fixed::<2>("00FF").is_err());
        assert!(decode_fixed::<2>("00f").is_err());
        assert!(decode_fixed::<2>("00ff00").is_err());
        assert_eq!(u64_hex::parse("0x0000000010000000").unwrap(), 0x1000_0000);
        assert!(u64_hex::parse("0x10000000").is_err());
        assert!(u64_hex::parse("0000000010000000").is_err());
    }
}
