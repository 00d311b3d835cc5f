//! The little DER writer the certificate issuer needs, and the OID arc encoding.
//!
//! rcgen (and yasna, const-oid) cannot represent our OID arc: `2.25.<UUID as integer>` has a
//! 128-bit arc, so certificates are encoded here. Only definite, minimal lengths are written.

/// Appends a tag-length-value with a minimal definite length.
pub(crate) fn tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
}

pub(crate) fn wrap(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    tlv(&mut out, tag, content);
    out
}

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const SET: u8 = 0x31;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const OID: u8 = 0x06;
pub(crate) const BOOLEAN: u8 = 0x01;
pub(crate) const UTF8_STRING: u8 = 0x0c;
pub(crate) const UTC_TIME: u8 = 0x17;
pub(crate) const GENERALIZED_TIME: u8 = 0x18;

/// Content octets (no tag or length) of the OID in dotted form; `None` when the text is not a
/// dotted OID whose arcs fit in 128 bits (first arc 0..=2; second below 40 unless the first is 2).
pub(crate) fn oid_content(dotted: &str) -> Option<Vec<u8>> {
    let arcs: Vec<u128> = dotted
        .split('.')
        .map(|a| {
            if a.is_empty() || (a.len() > 1 && a.starts_with('0')) {
                None
            } else {
                a.parse::<u128>().ok()
            }
        })
        .collect::<Option<_>>()?;
    let (first, second, rest) = match arcs.as_slice() {
        [first, second, rest @ ..] => (*first, *second, rest),
        _ => return None,
    };
    if first > 2 || (first < 2 && second >= 40) {
        return None;
    }
    let mut out = Vec::new();
    push_base128(&mut out, first.checked_mul(40)?.checked_add(second)?);
    for arc in rest {
        push_base128(&mut out, *arc);
    }
    Some(out)
}

fn push_base128(out: &mut Vec<u8>, mut value: u128) {
    let mut groups = vec![(value & 0x7f) as u8];
    value >>= 7;
    while value > 0 {
        groups.push(0x80 | (value & 0x7f) as u8);
        value >>= 7;
    }
    groups.reverse();
    out.extend_from_slice(&groups);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_oids_encode_as_published() {
        // ecdsa-with-SHA256 and commonName, as every X.509 library writes them.
        assert_eq!(
            oid_content("1.2.840.10045.4.3.2").unwrap(),
            hex::decode("2a8648ce3d040302").unwrap()
        );
        assert_eq!(oid_content("2.5.4.3").unwrap(), vec![0x55, 4, 3]);
    }

    #[test]
    fn uuid_arc_round_trips() {
        let content = oid_content(crate::ratls::OID_ARC).unwrap();
        assert_eq!(content.first(), Some(&(2 * 40 + 25)));
        // Decode the base-128 groups of the 128-bit arc back.
        let mut value: u128 = 0;
        for b in content.get(1..).unwrap() {
            value = (value << 7) | u128::from(b & 0x7f);
        }
        assert_eq!(
            value.to_string(),
            crate::ratls::OID_ARC.strip_prefix("2.25.").unwrap()
        );
        assert_eq!(content.last().map(|b| b & 0x80), Some(0));
    }

    #[test]
    fn bad_oids_are_refused() {
        for bad in ["", "1", "1.40", "3.1", "1..2", "1.02", "1.2.x", "2.25.1e3"] {
            assert!(oid_content(bad).is_none(), "{bad}");
        }
        // One past u128 does not fit.
        assert!(oid_content("2.25.340282366920938463463374607431768211456").is_none());
    }

    #[test]
    fn long_lengths_are_minimal() {
        let v = wrap(OCTET_STRING, &[0u8; 300]);
        assert_eq!(v.get(..4).unwrap(), &[0x04, 0x82, 0x01, 0x2c]);
        let v = wrap(OCTET_STRING, &[0u8; 128]);
        assert_eq!(v.get(..3).unwrap(), &[0x04, 0x81, 0x80]);
    }
}
