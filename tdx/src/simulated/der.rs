//! Minimal DER writer for the Intel SGX PCK certificate extension (only what the mock PKI
//! emits: SEQUENCE, OBJECT IDENTIFIER, INTEGER, OCTET STRING, ENUMERATED).

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = &bytes[skip..];
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

pub fn sequence(items: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &items.concat())
}

pub fn octet_string(bytes: &[u8]) -> Vec<u8> {
    tlv(0x04, bytes)
}

/// A non-negative INTEGER in minimal two's-complement form.
pub fn integer(value: u64) -> Vec<u8> {
    tlv(0x02, &unsigned_content(value))
}

pub fn enumerated(value: u64) -> Vec<u8> {
    tlv(0x0a, &unsigned_content(value))
}

fn unsigned_content(value: u64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    let mut content = bytes[skip..].to_vec();
    if content[0] & 0x80 != 0 {
        content.insert(0, 0);
    }
    content
}

/// An OBJECT IDENTIFIER from its arcs (the first two arcs must be 0-2 and 0-39).
pub fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut content = Vec::new();
    if let [first, second, rest @ ..] = arcs {
        base128(first * 40 + second, &mut content);
        for arc in rest {
            base128(*arc, &mut content);
        }
    }
    tlv(0x06, &content)
}

fn base128(mut value: u64, out: &mut Vec<u8>) {
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
    fn encodes_known_values() {
        // 1.2.840.113741.1.13.1 as found in Intel PCK certificates.
        assert_eq!(
            hex::encode(oid(&[1, 2, 840, 113741, 1, 13, 1])),
            "06092a864886f84d010d01"
        );
        assert_eq!(integer(0), vec![2, 1, 0]);
        assert_eq!(integer(11), vec![2, 1, 11]);
        assert_eq!(integer(200), vec![2, 2, 0, 200]);
        assert_eq!(enumerated(0), vec![0x0a, 1, 0]);
        let long = octet_string(&[7u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }
}
