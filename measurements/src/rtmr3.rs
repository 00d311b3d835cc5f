//! RTMR3 application events: the single definition of what `cocoon-agent` extends into RTMR3
//! at start and of the JSON event list it publishes (in its RA-TLS certificate) so a verifier can
//! replay RTMR3.
//!
//! Format v1 (see docs/measurements.md, "RTMR3 events"): an event is a `kind` (a short ASCII
//! name such as `cocoon.config`) and an opaque `payload`. The 48 bytes extended are
//!
//! ```text
//! SHA-384( "cocoon-rtmr3-event/v1" || 0x00 || u16_be(len(kind)) || kind || u32_be(len(payload)) || payload )
//! ```
//!
//! The fixed, versioned domain tag keeps these digests apart from every other SHA-384 use; the
//! length prefixes make the encoding injective (no two (kind, payload) pairs share bytes).
//!
//! Invariants enforced by [`Rtmr3Event::new`] and by parsing: `kind` is 1..=64 bytes of
//! `[a-z0-9._-]`; payloads are at most [`MAX_PAYLOAD`] bytes; a list has at most [`MAX_EVENTS`]
//! events; every published digest equals the digest recomputed from kind and payload.

use crate::manifest::hexser;
use crate::register::{Digest384, Register};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha384};

/// Domain tag of format v1, followed by one zero byte in the digest input.
pub const DOMAIN_V1: &str = "cocoon-rtmr3-event/v1";
/// `format` field of the published JSON list.
pub const LIST_FORMAT_V1: &str = "cocoon-rtmr3-events/v1";
/// Longest kind, in bytes.
pub const MAX_KIND: usize = 64;
/// Largest payload, in bytes.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Most events in one list.
pub const MAX_EVENTS: usize = 64;
/// Largest published JSON list accepted, in bytes.
pub const MAX_LIST_JSON: usize = 512 * 1024;

/// Well-known kinds the agent extends, in this order, before it accepts connections.
pub mod kinds {
    /// Payload: SHA-256 (32 bytes) of the agent's static configuration as measured.
    pub const CONFIG: &str = "cocoon.config";
    /// Payload: SHA-256 (32 bytes) of the model file the agent serves.
    pub const MODEL: &str = "cocoon.model";
    /// Payload: the mode as UTF-8 text, e.g. `production` or `simulated`.
    pub const MODE: &str = "cocoon.mode";
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rtmr3Error {
    #[error(
        "event #{index}: kind {kind:?} must be 1..={MAX_KIND} bytes of a-z, 0-9, '.', '_', '-'"
    )]
    BadKind { index: usize, kind: String },
    #[error("event #{index} ({kind}): payload is {len} bytes, more than {MAX_PAYLOAD}")]
    PayloadTooLarge {
        index: usize,
        kind: String,
        len: usize,
    },
    #[error("{count} events, more than {MAX_EVENTS}")]
    TooManyEvents { count: usize },
    #[error(
        "event #{index} ({kind}): published digest {published} does not match the digest of its kind and payload {computed}"
    )]
    DigestMismatch {
        index: usize,
        kind: String,
        published: String,
        computed: String,
    },
    #[error("event list is {len} bytes, more than {MAX_LIST_JSON}")]
    ListTooLarge { len: usize },
    #[error("event list format is {found:?}, expected {LIST_FORMAT_V1:?}")]
    Format { found: String },
    #[error("event list is not valid JSON: {0}")]
    Json(String),
}

/// One application event for RTMR3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtmr3Event {
    kind: String,
    payload: Vec<u8>,
}

fn valid_kind(kind: &str) -> bool {
    !kind.is_empty()
        && kind.len() <= MAX_KIND
        && kind
            .bytes()
            .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
}

impl Rtmr3Event {
    /// An event, checked against the kind and size rules.
    pub fn new(kind: &str, payload: impl Into<Vec<u8>>) -> Result<Self, Rtmr3Error> {
        Self::checked(0, kind.to_string(), payload.into())
    }

    fn checked(index: usize, kind: String, payload: Vec<u8>) -> Result<Self, Rtmr3Error> {
        if !valid_kind(&kind) {
            return Err(Rtmr3Error::BadKind { index, kind });
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(Rtmr3Error::PayloadTooLarge {
                index,
                kind,
                len: payload.len(),
            });
        }
        Ok(Self { kind, payload })
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The 48 bytes the agent extends into RTMR3 for this event.
    pub fn digest(&self) -> Digest384 {
        digest(&self.kind, &self.payload)
    }
}

/// The v1 digest of (kind, payload). Callers normally use [`Rtmr3Event::digest`], which also
/// guarantees the size rules; lengths here are encoded saturating so the function is total.
pub fn digest(kind: &str, payload: &[u8]) -> Digest384 {
    let mut h = Sha384::new();
    h.update(DOMAIN_V1.as_bytes());
    h.update([0u8]);
    h.update(u16::try_from(kind.len()).unwrap_or(u16::MAX).to_be_bytes());
    h.update(kind.as_bytes());
    h.update(
        u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    h.update(payload);
    h.finalize().into()
}

/// RTMR3 after extending `events` in order, from all zeroes.
pub fn replay(events: &[Rtmr3Event]) -> Register {
    let mut r = Register::default();
    for e in events {
        r.extend(&e.digest());
    }
    r
}

/// One event as published (and as pinned in a manifest): kind, payload and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedEvent {
    pub kind: String,
    #[serde(with = "hexser::vec")]
    pub payload: Vec<u8>,
    #[serde(with = "hexser::fixed")]
    pub digest: Digest384,
}

impl From<&Rtmr3Event> for PublishedEvent {
    fn from(e: &Rtmr3Event) -> Self {
        Self {
            kind: e.kind.clone(),
            payload: e.payload.clone(),
            digest: e.digest(),
        }
    }
}

impl PublishedEvent {
    /// Checks kind and size rules and that `digest` is the digest of kind and payload;
    /// `index` (1-based) is for the error message.
    pub fn check(self, index: usize) -> Result<Rtmr3Event, Rtmr3Error> {
        let event = Rtmr3Event::checked(index, self.kind, self.payload)?;
        let computed = event.digest();
        if computed != self.digest {
            return Err(Rtmr3Error::DigestMismatch {
                index,
                kind: event.kind,
                published: hex::encode(self.digest),
                computed: hex::encode(computed),
            });
        }
        Ok(event)
    }
}

/// Checks a published list's length and every event in it.
pub fn check_all(events: Vec<PublishedEvent>) -> Result<Vec<Rtmr3Event>, Rtmr3Error> {
    if events.len() > MAX_EVENTS {
        return Err(Rtmr3Error::TooManyEvents {
            count: events.len(),
        });
    }
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| e.check(i + 1))
        .collect()
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListJson {
    format: String,
    events: Vec<PublishedEvent>,
}

/// Serialises events as the published list:
/// `{"format":"cocoon-rtmr3-events/v1","events":[{"kind":..,"payload":hex,"digest":hex}]}`.
pub fn to_json(events: &[Rtmr3Event]) -> String {
    let list = ListJson {
        format: LIST_FORMAT_V1.to_string(),
        events: events.iter().map(PublishedEvent::from).collect(),
    };
    // Serialising strings and byte strings cannot fail.
    serde_json::to_string_pretty(&list).unwrap_or_default()
}

/// Parses and checks a published list (untrusted input).
pub fn from_json(json: &[u8]) -> Result<Vec<Rtmr3Event>, Rtmr3Error> {
    if json.len() > MAX_LIST_JSON {
        return Err(Rtmr3Error::ListTooLarge { len: json.len() });
    }
    let list: ListJson =
        serde_json::from_slice(json).map_err(|e| Rtmr3Error::Json(e.to_string()))?;
    if list.format != LIST_FORMAT_V1 {
        return Err(Rtmr3Error::Format { found: list.format });
    }
    check_all(list.events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::register::sha384;

    #[test]
    fn digest_is_the_documented_encoding() {
        let mut buf = b"cocoon-rtmr3-event/v1\0".to_vec();
        buf.extend_from_slice(&[0, 11]);
        buf.extend_from_slice(b"cocoon.mode");
        buf.extend_from_slice(&[0, 0, 0, 10]);
        buf.extend_from_slice(b"production");
        let e = Rtmr3Event::new(kinds::MODE, "production").unwrap();
        assert_eq!(e.digest(), sha384(&buf));
    }

    #[test]
    fn encoding_is_injective_across_the_kind_payload_boundary() {
        let a = Rtmr3Event::new("cocoon.a", b"bc".to_vec()).unwrap();
        let b = Rtmr3Event::new("cocoon.ab", b"c".to_vec()).unwrap();
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn replay_extends_in_order() {
        let a = Rtmr3Event::new(kinds::CONFIG, [1u8; 32]).unwrap();
        let b = Rtmr3Event::new(kinds::MODE, "simulated").unwrap();
        let mut expect = Register::default();
        expect.extend(&a.digest());
        expect.extend(&b.digest());
        assert_eq!(replay(&[a.clone(), b.clone()]), expect);
        assert_ne!(replay(&[b, a]), expect);
        assert_eq!(replay(&[]), Register::default());
    }

    #[test]
    fn kinds_and_sizes_are_checked() {
        assert!(Rtmr3Event::new("", "x").is_err());
        assert!(Rtmr3Event::new("Cocoon.Config", "x").is_err());
        assert!(Rtmr3Event::new(&"a".repeat(65), "x").is_err());
        assert!(Rtmr3Event::new("cocoon.big", vec![0; MAX_PAYLOAD + 1]).is_err());
        assert!(Rtmr3Event::new("cocoon.big", vec![0; MAX_PAYLOAD]).is_ok());
    }

    #[test]
    fn json_round_trip_and_tamper() {
        let events = vec![
            Rtmr3Event::new(kinds::CONFIG, [7u8; 32]).unwrap(),
            Rtmr3Event::new(kinds::MODE, "production").unwrap(),
        ];
        let json = to_json(&events);
        assert_eq!(from_json(json.as_bytes()).unwrap(), events);
        // Upper-case hex is another spelling of the same bytes: refused.
        let tampered = json.replace(
            &hex::encode(b"production"),
            &hex::encode(b"production").to_uppercase(),
        );
        assert_ne!(tampered, json);
        assert!(matches!(
            from_json(tampered.as_bytes()),
            Err(Rtmr3Error::Json(_))
        ));
        let tampered = json.replace(&hex::encode(b"production"), &hex::encode(b"simulation"));
        assert!(matches!(
            from_json(tampered.as_bytes()),
            Err(Rtmr3Error::DigestMismatch { index: 2, .. })
        ));
        let wrong_format = json.replace(LIST_FORMAT_V1, "cocoon-rtmr3-events/v2");
        assert!(matches!(
            from_json(wrong_format.as_bytes()),
            Err(Rtmr3Error::Format { .. })
        ));
    }
}
