//! The ACPI "CC Event Log" table (ACPI 6.5, section 5.2.34), which tells the OS where the
//! firmware's event log lives. Linux exposes it as `/sys/firmware/acpi/tables/CCEL` and the
//! log area itself as `/sys/firmware/acpi/tables/data/CCEL`.
//!
//! Layout (little-endian): the 36-byte ACPI header (signature "CCEL", length, revision,
//! checksum, OEM ID, OEM table ID, OEM revision, creator ID, creator revision), then CC type (u8),
//! CC subtype (u8), reserved (u16), LAML (u64, log area minimum length), LASA (u64, log area
//! start address): 56 bytes.
//!
//! Invariant: a [`CcelTable`] only exists for bytes whose signature, length field, checksum
//! and CC type (2 = Intel TDX) were checked.

use super::reader::Reader;
use super::EventLogError;

/// Size of the CCEL table.
pub const CCEL_TABLE_LEN: usize = 56;
/// CC type of Intel TDX in the CCEL table (1 is AMD SEV).
pub const CC_TYPE_TDX: u8 = 2;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CcelError {
    #[error("CCEL table is {len} bytes; it must be at least {CCEL_TABLE_LEN}")]
    TooShort { len: usize },
    #[error("CCEL table: {0}")]
    Field(#[from] EventLogError),
    #[error("CCEL table byte offset 0: signature is {found:?}, expected \"CCEL\"")]
    Signature { found: String },
    #[error("CCEL table byte offset 4: length field says {field} bytes, the table has {actual}")]
    Length { field: u32, actual: usize },
    #[error("CCEL table byte offset 9: checksum is wrong (the bytes sum to 0x{sum:02x}, not 0)")]
    Checksum { sum: u8 },
    #[error("CCEL table byte offset 36: CC type is {cc_type}, expected {CC_TYPE_TDX} (Intel TDX)")]
    CcType { cc_type: u8 },
    #[error(
        "the event log is {log_len} bytes but the CCEL table's log area minimum length (LAML) is {laml}: \
         is this the log that belongs to this table?"
    )]
    LogLongerThanArea { log_len: usize, laml: u64 },
}

/// A checked CCEL table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CcelTable {
    pub revision: u8,
    pub oem_id: String,
    pub cc_type: u8,
    pub cc_subtype: u8,
    /// Log area minimum length: the size of the log area in bytes.
    pub laml: u64,
    /// Log area start address: the guest-physical address of the log.
    pub lasa: u64,
}

/// Parses and checks a CCEL table.
pub fn parse_table(data: &[u8]) -> Result<CcelTable, CcelError> {
    if data.len() < CCEL_TABLE_LEN {
        return Err(CcelError::TooShort { len: data.len() });
    }
    let mut r = Reader::new(data);
    let signature: [u8; 4] = r.array("signature")?;
    if &signature != b"CCEL" {
        return Err(CcelError::Signature {
            found: String::from_utf8_lossy(&signature).into_owned(),
        });
    }
    let length = r.u32("length")?;
    if usize::try_from(length).ok() != Some(data.len()) {
        return Err(CcelError::Length {
            field: length,
            actual: data.len(),
        });
    }
    let revision = r.u8("revision")?;
    let _checksum = r.u8("checksum")?;
    let sum = data.iter().fold(0u8, |acc, &b| acc.wrapping_add(b));
    if sum != 0 {
        return Err(CcelError::Checksum { sum });
    }
    let oem_id: [u8; 6] = r.array("OEM ID")?;
    let _oem_table_id: [u8; 8] = r.array("OEM table ID")?;
    let _oem_revision = r.u32("OEM revision")?;
    let _creator_id = r.u32("creator ID")?;
    let _creator_revision = r.u32("creator revision")?;
    let cc_type = r.u8("CC type")?;
    let cc_subtype = r.u8("CC subtype")?;
    let _reserved = r.u16("reserved")?;
    let laml = r.u64("LAML")?;
    let lasa = r.u64("LASA")?;
    if cc_type != CC_TYPE_TDX {
        return Err(CcelError::CcType { cc_type });
    }
    let oem_id = String::from_utf8_lossy(&oem_id)
        .trim_end_matches(['\0', ' '])
        .to_string();
    Ok(CcelTable {
        revision,
        oem_id,
        cc_type,
        cc_subtype,
        laml,
        lasa,
    })
}

impl CcelTable {
    /// Checks that a log read from the data file fits the area the table describes (so its
    /// events end inside that area too).
    pub fn check_log(&self, log_len: usize) -> Result<(), CcelError> {
        if u64::try_from(log_len).map_or(true, |len| len > self.laml) {
            return Err(CcelError::LogLongerThanArea {
                log_len,
                laml: self.laml,
            });
        }
        Ok(())
    }
}
