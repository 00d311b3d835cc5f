//! The ACPI CCEL table (Confidential Computing Event Log, ACPI 6.5 section 5.2.34) and the
//! event log area it describes.
//!
//! Layout: the 36-byte ACPI table header (signature `CCEL`), then CC type (1 byte, 2 = TDX),
//! CC subtype (1), reserved (2), LAML (u64, log area minimum length) and LASA (u64, log area
//! start address): 56 bytes in all. Invariant enforced by [`CcelTable::parse`]: the signature
//! is `CCEL`, the header length equals the bytes read, and the bytes sum to zero mod 256.

/// Length of the CCEL table.
pub const CCEL_TABLE_LEN: usize = 56;
/// CC type of Intel TDX.
pub const CC_TYPE_TDX: u8 = 2;
/// Largest event log area the provider reads (the log area Linux exposes is LAML bytes; TDVF
/// reserves 64 KiB to a few MiB).
pub const MAX_EVENT_LOG_LEN: u64 = 16 * 1024 * 1024;

/// A parsed CCEL ACPI table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CcelTable {
    pub revision: u8,
    pub oem_id: [u8; 6],
    pub cc_type: u8,
    pub cc_subtype: u8,
    /// Log area minimum length.
    pub laml: u64,
    /// Log area start address (guest physical).
    pub lasa: u64,
}

/// The CCEL event log: the table and the raw event log bytes (TCG2 crypto-agile format).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventLog {
    pub table: CcelTable,
    pub data: Vec<u8>,
}

impl CcelTable {
    /// Parses and checks a CCEL table; the error names the problem.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let b: &[u8; CCEL_TABLE_LEN] = bytes.try_into().map_err(|_| {
            format!(
                "CCEL table is {} bytes, expected {CCEL_TABLE_LEN}",
                bytes.len()
            )
        })?;
        if &b[0..4] != b"CCEL" {
            return Err(format!("signature {:?}, expected \"CCEL\"", &b[0..4]));
        }
        let length = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        if length as usize != CCEL_TABLE_LEN {
            return Err(format!("header length {length}, expected {CCEL_TABLE_LEN}"));
        }
        let sum = b.iter().fold(0u8, |acc, x| acc.wrapping_add(*x));
        if sum != 0 {
            return Err(format!(
                "checksum mismatch (bytes sum to {sum:#04x}, not 0)"
            ));
        }
        let mut oem_id = [0u8; 6];
        oem_id.copy_from_slice(&b[10..16]);
        let mut laml = [0u8; 8];
        laml.copy_from_slice(&b[40..48]);
        let mut lasa = [0u8; 8];
        lasa.copy_from_slice(&b[48..56]);
        Ok(CcelTable {
            revision: b[8],
            oem_id,
            cc_type: b[36],
            cc_subtype: b[37],
            laml: u64::from_le_bytes(laml),
            lasa: u64::from_le_bytes(lasa),
        })
    }

    /// Encodes the table with a correct checksum.
    pub fn encode(&self) -> [u8; CCEL_TABLE_LEN] {
        let mut b = [0u8; CCEL_TABLE_LEN];
        b[0..4].copy_from_slice(b"CCEL");
        b[4..8].copy_from_slice(&(CCEL_TABLE_LEN as u32).to_le_bytes());
        b[8] = self.revision;
        b[10..16].copy_from_slice(&self.oem_id);
        b[16..24].copy_from_slice(b"COCOONTD");
        b[24..28].copy_from_slice(&1u32.to_le_bytes());
        b[28..32].copy_from_slice(b"CCON");
        b[32..36].copy_from_slice(&1u32.to_le_bytes());
        b[36] = self.cc_type;
        b[37] = self.cc_subtype;
        b[40..48].copy_from_slice(&self.laml.to_le_bytes());
        b[48..56].copy_from_slice(&self.lasa.to_le_bytes());
        let sum = b.iter().fold(0u8, |acc, x| acc.wrapping_add(*x));
        b[9] = 0u8.wrapping_sub(sum);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> CcelTable {
        CcelTable {
            revision: 1,
            oem_id: *b"COCOON",
            cc_type: CC_TYPE_TDX,
            cc_subtype: 0,
            laml: 0x10000,
            lasa: 0x7f00_0000,
        }
    }

    #[test]
    fn round_trips() {
        assert_eq!(CcelTable::parse(&table().encode()), Ok(table()));
    }

    #[test]
    fn rejects_bad_checksum_signature_and_length() {
        let mut b = table().encode();
        b[45] ^= 1;
        assert!(CcelTable::parse(&b).unwrap_err().contains("checksum"));
        let mut b = table().encode();
        b[0] = b'X';
        assert!(CcelTable::parse(&b).unwrap_err().contains("signature"));
        let b = table().encode();
        assert!(CcelTable::parse(&b[..40]).unwrap_err().contains("40 bytes"));
        let mut long = b.to_vec();
        long.push(0);
        assert!(CcelTable::parse(&long).unwrap_err().contains("57 bytes"));
    }
}
