//! Prepaid account ids and the deposit comment format.
//!
//! A payer names the account a deposit is for in the transfer's text comment:
//! `cocoon:acct:` followed by exactly 64 lowercase hex digits (a 32-byte account id, e.g. the
//! SHA-256 of the client's API key or public key). Anything else is not attributed to an
//! account (it is recorded as an unattributed deposit, never guessed at).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Prefix of a deposit comment.
pub const DEPOSIT_COMMENT_PREFIX: &str = "cocoon:acct:";

/// A prepaid account: 32 bytes, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub [u8; 32]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid account id {input:?}: {reason}")]
pub struct AccountIdError {
    pub input: String,
    pub reason: &'static str,
}

impl AccountId {
    /// The comment a payer puts on a deposit for this account.
    pub fn deposit_comment(&self) -> String {
        format!("{DEPOSIT_COMMENT_PREFIX}{self}")
    }

    /// Parses a deposit comment; `None` unless it is exactly the documented format.
    pub fn from_deposit_comment(comment: &str) -> Option<AccountId> {
        comment.strip_prefix(DEPOSIT_COMMENT_PREFIX)?.parse().ok()
    }
}

impl FromStr for AccountId {
    type Err = AccountIdError;

    /// Accepts exactly 64 lowercase hex digits (one canonical spelling per account).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| AccountIdError {
            input: s.chars().take(80).collect(),
            reason,
        };
        if s.len() != 64 {
            return Err(err("expected 64 hex digits"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(err("only lowercase hex digits are allowed"));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| err("invalid hex"))?;
        Ok(AccountId(out))
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({self})")
    }
}

impl Serialize for AccountId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for AccountId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_round_trip() {
        let id = AccountId([0xab; 32]);
        let c = id.deposit_comment();
        assert_eq!(c, format!("cocoon:acct:{}", "ab".repeat(32)));
        assert_eq!(AccountId::from_deposit_comment(&c), Some(id));
    }

    #[test]
    fn rejects_non_canonical_and_malformed() {
        let good = "ab".repeat(32);
        for bad in [
            String::new(),
            "cocoon:acct:".to_string(),
            format!("cocoon:acct:{}", &good[..63]),
            format!("cocoon:acct:{good}0"),
            format!("cocoon:acct:{}", good.to_uppercase()),
            format!("cocoon:acct: {}", &good[..63]),
            format!("Cocoon:acct:{good}"),
            format!("cocoon:acct:{}zz", &good[..62]),
            format!("cocoon:acct:{good}\n"),
            "cocoon:acct:é".repeat(20),
        ] {
            assert_eq!(AccountId::from_deposit_comment(&bad), None, "{bad:?}");
        }
    }
}
