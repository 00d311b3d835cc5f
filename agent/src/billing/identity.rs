//! Client identity: the bearer token and the prepaid account it names.
//!
//! `account id = SHA-256("cocoon-account-v1\0" || token)`. The deposit comment
//! (`cocoon:acct:<hex id>`) is public on chain; spending needs the token itself, and the id
//! does not reveal it (preimage resistance). Any well-formed token names an account: a new
//! token is simply an empty account until someone deposits to its comment.

use cocoon_payments::AccountId;
use hyper::header::{HeaderMap, AUTHORIZATION};
use sha2::{Digest, Sha256};

/// Domain separator of the account id derivation.
pub const ACCOUNT_DOMAIN: &[u8] = b"cocoon-account-v1\0";
/// Longest accepted bearer token, in bytes.
pub const MAX_TOKEN: usize = 512;
/// Shortest accepted bearer token: short tokens are guessable, and a guessed token spends.
pub const MIN_TOKEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing Authorization header; send `Authorization: Bearer <token>`")]
    Missing,
    #[error("the Authorization header is not `Bearer <token>`")]
    NotBearer,
    #[error(
        "the bearer token must be {MIN_TOKEN} to {MAX_TOKEN} visible ASCII characters, got {0}"
    )]
    BadToken(String),
    #[error("more than one Authorization header")]
    Duplicate,
}

/// The account a token names.
pub fn account_for_token(token: &[u8]) -> AccountId {
    let mut h = Sha256::new();
    h.update(ACCOUNT_DOMAIN);
    h.update(token);
    AccountId(h.finalize().into())
}

/// Reads `Authorization: Bearer <token>` and returns the token's account.
pub fn account_from_headers(headers: &HeaderMap) -> Result<AccountId, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::Missing)?;
    if values.next().is_some() {
        return Err(AuthError::Duplicate);
    }
    let bytes = value.as_bytes();
    // The scheme is case-insensitive (RFC 7235); exactly one space before the token.
    let scheme = bytes.get(..7).ok_or(AuthError::NotBearer)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return Err(AuthError::NotBearer);
    }
    let token = bytes.get(7..).unwrap_or_default();
    if token.len() < MIN_TOKEN {
        return Err(AuthError::BadToken(format!("{} bytes", token.len())));
    }
    if token.len() > MAX_TOKEN {
        return Err(AuthError::BadToken(format!("{} bytes", token.len())));
    }
    if !token.iter().all(|b| b.is_ascii_graphic()) {
        return Err(AuthError::BadToken("a space or non-ASCII byte".into()));
    }
    Ok(account_for_token(token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn with(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn derivation_is_domain_separated_sha256() {
        let id = account_for_token(b"sk-test-0123456789");
        let mut h = Sha256::new();
        h.update(b"cocoon-account-v1\0sk-test-0123456789");
        assert_eq!(id.0, <[u8; 32]>::from(h.finalize()));
        // The id is not the plain hash of the token (which a deposit comment would reveal).
        assert_ne!(
            id.0,
            <[u8; 32]>::from(Sha256::digest(b"sk-test-0123456789"))
        );
        assert_ne!(id, account_for_token(b"sk-test-0123456788"));
    }

    #[test]
    fn parses_bearer_and_rejects_everything_else() {
        let good = account_from_headers(&with(&[b"Bearer sk-test-0123456789"])).unwrap();
        assert_eq!(good, account_for_token(b"sk-test-0123456789"));
        assert_eq!(
            account_from_headers(&with(&[b"bearer sk-test-0123456789"])).unwrap(),
            good
        );
        assert_eq!(
            account_from_headers(&HeaderMap::new()),
            Err(AuthError::Missing)
        );
        for bad in [
            &b"Basic dXNlcjpwYXNz"[..],
            b"Bearer",
            b"Bearer ",
            b"Bear",
            b"",
            b"Bearer short",
            b"Bearer  sk-test-0123456789",
            b"Bearer sk-test 0123456789",
            b"Bearer sk-test-\x800123456789",
        ] {
            assert!(
                account_from_headers(&with(&[bad])).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = [b"Bearer ".as_slice(), &[b'a'; MAX_TOKEN + 1]].concat();
        assert!(matches!(
            account_from_headers(&with(&[&long])),
            Err(AuthError::BadToken(_))
        ));
        assert_eq!(
            account_from_headers(&with(&[
                b"Bearer sk-test-0123456789",
                b"Bearer sk-other-0123456789"
            ])),
            Err(AuthError::Duplicate)
        );
    }
}
