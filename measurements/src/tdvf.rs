//! TDVF (TD-enabled OVMF) metadata and the MRTD the TDX module computes while QEMU/KVM builds
//! the TD from it.
//!
//! # Where the metadata lives
//!
//! OVMF ends with a "GUIDed table" (edk2 `OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm`):
//! the last 32 bytes of the image are the reset vector; just before them sits the table footer,
//! `[u16 total table length][footer GUID 96b582de-1fb2-45f7-baea-a366c55a082d]`. Entries are laid
//! out backwards from the footer, each one `[data][u16 entry length][16-byte GUID]`, the length
//! covering data, length and GUID. The entry with GUID `e47a6535-984a-4798-865e-4685a7bf8ec2`
//! ("TDX metadata offset") holds a `u32`: the distance from the END of the image to the TDVF
//! descriptor. Older TDVF builds without the table put that `u32` at `end - 0x20` (TDVF design
//! guide, "TDVF metadata pointer"); that location is used only when the GUIDed table is absent.
//!
//! The descriptor is `"TDVF" u32 length, u32 version (1), u32 section count`, followed by
//! 32-byte section entries: `u32 data_offset, u32 raw_data_size, u64 memory_address,
//! u64 memory_data_size, u32 type, u32 attributes`.
//!
//! # What MRTD is
//!
//! QEMU (10.1+, `target/i386/kvm/tdx.c`) copies each section's raw bytes into zeroed memory of
//! `memory_data_size` bytes and hands it to KVM with `KVM_TDX_INIT_MEM_REGION`, setting
//! `KVM_TDX_MEASURE_MEMORY_REGION` when the section has the `MR.EXTEND` attribute. Upstream KVM
//! then, page by page, calls `TDH.MEM.PAGE.ADD` and (if measured) `TDH.MR.EXTEND` on the 16
//! 256-byte chunks of that page. The TDX module folds each into one running SHA-384:
//!
//! * `TDH.MEM.PAGE.ADD`: a 128-byte buffer, bytes 0..12 = ASCII `MEM.PAGE.ADD`, bytes 16..24 =
//!   the page GPA (little endian), every other byte zero.
//! * `TDH.MR.EXTEND`: a 128-byte buffer, bytes 0..9 = ASCII `MR.EXTEND`, bytes 16..24 = the chunk
//!   GPA, every other byte zero; followed by the 256 bytes of the chunk.
//!
//! MRTD is the digest of that stream after the last section. Sections with the `PAGE.AUG`
//! attribute are not added at build time and contribute nothing.

use crate::register::Digest384;
use crate::uefi_events::guid;
use sha2::{Digest, Sha384};

const PAGE_SIZE: u64 = 0x1000;
const MR_EXTEND_CHUNK: usize = 0x100;

/// GUID of the OVMF GUIDed-table footer, in on-disk (mixed-endian) byte order.
const TABLE_FOOTER_GUID: [u8; 16] = guid(
    0x96b5_82de,
    0x1fb2,
    0x45f7,
    [0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d],
);
/// GUID of the "TDX metadata offset" table entry.
const TDX_METADATA_OFFSET_GUID: [u8; 16] = guid(
    0xe47a_6535,
    0x984a,
    0x4798,
    [0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2],
);

/// Section attribute: the pages are measured into MRTD with `TDH.MR.EXTEND`.
pub const ATTR_MR_EXTEND: u32 = 0x1;
/// Section attribute: the pages are added after boot with `TDH.MEM.PAGE.AUG` (not measured).
pub const ATTR_PAGE_AUG: u32 = 0x2;

/// Upper bound on the number of sections (real TDVF images have about 6).
pub const MAX_SECTIONS: u32 = 64;
/// Upper bound on the bytes measured with `MR.EXTEND` over all sections (real images: 4 MiB).
pub const MAX_EXTENDED_BYTES: u64 = 64 << 20;
/// Upper bound on the memory all sections cover (they live below 4 GiB).
pub const MAX_SECTION_MEMORY: u64 = 4 << 30;

/// What is wrong with a firmware image's TDVF metadata.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TdvfError {
    #[error("image is {0} bytes, too small to hold TDVF metadata")]
    TooSmall(usize),
    #[error("no TDVF metadata: neither the OVMF GUIDed table nor a TDVF descriptor at end-0x20 was found")]
    NotFound,
    #[error("OVMF GUIDed table is malformed: {0}")]
    BadTable(&'static str),
    #[error(
        "TDVF descriptor offset {offset:#x} (from the end) points outside the {size}-byte image"
    )]
    BadDescriptorOffset { offset: u32, size: usize },
    #[error("TDVF descriptor signature is {0:02x?}, expected \"TDVF\"")]
    BadSignature([u8; 4]),
    #[error("TDVF descriptor version {0} is not supported (expected 1)")]
    BadVersion(u32),
    #[error("TDVF descriptor declares {0} sections (at most {MAX_SECTIONS} supported)")]
    TooManySections(u32),
    #[error(
        "TDVF descriptor length {length} does not match {sections} sections ({expected} bytes)"
    )]
    BadLength {
        length: u32,
        sections: u32,
        expected: u64,
    },
    #[error("TDVF descriptor is truncated: {0} more bytes needed")]
    Truncated(u64),
    #[error("TDVF section {index}: {reason}")]
    BadSection { index: usize, reason: String },
    #[error("TDVF sections {0} and {1} overlap in guest memory")]
    Overlap(usize, usize),
    #[error("TDVF sections measure {0} bytes, more than the {MAX_EXTENDED_BYTES}-byte limit")]
    TooMuchMeasured(u64),
    #[error("TDVF metadata has no {0} section")]
    MissingSection(&'static str),
}

/// The type of a TDVF section (TDVF design guide, table "TDVF_SECTION type").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionType {
    /// Boot firmware volume: the code, measured into MRTD.
    Bfv,
    /// Configuration firmware volume: the UEFI variable store, measured into RTMR0.
    Cfv,
    /// Where the VMM writes the TD HOB.
    TdHob,
    /// Temporary memory the firmware uses before it accepts memory.
    TempMem,
    PermMem,
    Payload,
    PayloadParam,
    Other(u32),
}

impl SectionType {
    fn from_raw(v: u32) -> Self {
        match v {
            0 => Self::Bfv,
            1 => Self::Cfv,
            2 => Self::TdHob,
            3 => Self::TempMem,
            4 => Self::PermMem,
            5 => Self::Payload,
            6 => Self::PayloadParam,
            o => Self::Other(o),
        }
    }

    pub fn name(self) -> String {
        match self {
            Self::Bfv => "BFV".into(),
            Self::Cfv => "CFV".into(),
            Self::TdHob => "TD_HOB".into(),
            Self::TempMem => "TempMem".into(),
            Self::PermMem => "PermMem".into(),
            Self::Payload => "Payload".into(),
            Self::PayloadParam => "PayloadParam".into(),
            Self::Other(v) => format!("type {v}"),
        }
    }
}

/// One TDVF section entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TdvfSection {
    pub data_offset: u32,
    pub raw_data_size: u32,
    pub memory_address: u64,
    pub memory_data_size: u64,
    pub section_type: SectionType,
    pub attributes: u32,
}

impl TdvfSection {
    pub fn extends_mr(&self) -> bool {
        self.attributes & ATTR_MR_EXTEND != 0
    }

    pub fn page_aug(&self) -> bool {
        self.attributes & ATTR_PAGE_AUG != 0
    }

    fn pages(&self) -> u64 {
        self.memory_data_size / PAGE_SIZE
    }
}

/// In which order the 128-byte `MEM.PAGE.ADD` / `MR.EXTEND` records reach the TDX module.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MrtdOrder {
    /// Upstream KVM (Linux 6.16+) driven by upstream QEMU 10.1+: for each page of a section,
    /// `PAGE.ADD` then its 16 `MR.EXTEND`s.
    #[default]
    SinglePass,
    /// Older TDX-enabled KVM/QEMU forks (e.g. the ones shipped with QEMU 8.x TDX stacks): for
    /// each section, every page's `PAGE.ADD` first, then every chunk's `MR.EXTEND`.
    TwoPass,
}

/// Parsed TDVF metadata of a firmware image.
///
/// Invariants (checked by [`TdvfMetadata::parse`]): every section's raw data lies inside the
/// image; addresses and memory sizes are page aligned; `raw_data_size <= memory_data_size`;
/// sections do not overlap in guest memory; the measured total is bounded by
/// [`MAX_EXTENDED_BYTES`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TdvfMetadata {
    /// Offset of the descriptor from the start of the image.
    pub descriptor_offset: usize,
    pub sections: Vec<TdvfSection>,
}

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Finds the "TDX metadata offset" value through the OVMF GUIDed table.
/// `Ok(None)`: there is no GUIDed table at all.
fn metadata_offset_from_table(fw: &[u8]) -> Result<Option<u32>, TdvfError> {
    // Footer GUID ends 32 bytes before the end of the image.
    let guid_end = fw.len() - 32;
    let Some(guid_start) = guid_end.checked_sub(16) else {
        return Ok(None);
    };
    if fw.get(guid_start..guid_end) != Some(&TABLE_FOOTER_GUID[..]) {
        return Ok(None);
    }
    let len_at = guid_start
        .checked_sub(2)
        .ok_or(TdvfError::BadTable("footer length outside the image"))?;
    let total = usize::from(read_u16(fw, len_at).ok_or(TdvfError::BadTable("footer length"))?);
    // The total length covers the footer itself (length + GUID = 18 bytes).
    let table_start = guid_end
        .checked_sub(total)
        .ok_or(TdvfError::BadTable("table length larger than the image"))?;
    if total < 18 {
        return Err(TdvfError::BadTable("table length smaller than its footer"));
    }
    // Walk entries backwards from the footer.
    let mut end = len_at; // end of the next entry (exclusive)
    while end > table_start {
        let g_start = end
            .checked_sub(16)
            .filter(|s| *s >= table_start)
            .ok_or(TdvfError::BadTable("entry GUID crosses the table start"))?;
        let l_at = g_start
            .checked_sub(2)
            .filter(|s| *s >= table_start)
            .ok_or(TdvfError::BadTable("entry length crosses the table start"))?;
        let entry_len = usize::from(read_u16(fw, l_at).ok_or(TdvfError::BadTable("entry length"))?);
        if entry_len < 18 {
            return Err(TdvfError::BadTable("entry length smaller than its header"));
        }
        let entry_start = end
            .checked_sub(entry_len)
            .filter(|s| *s >= table_start)
            .ok_or(TdvfError::BadTable("entry longer than the table"))?;
        if fw.get(g_start..end) == Some(&TDX_METADATA_OFFSET_GUID[..]) {
            if l_at - entry_start < 4 {
                return Err(TdvfError::BadTable("TDX metadata entry holds no offset"));
            }
            return read_u32(fw, entry_start)
                .map(Some)
                .ok_or(TdvfError::BadTable("TDX metadata offset"));
        }
        end = entry_start;
    }
    Err(TdvfError::NotFound)
}

impl TdvfMetadata {
    /// Parses and validates the TDVF metadata of a whole firmware image (`OVMF.fd`).
    pub fn parse(fw: &[u8]) -> Result<Self, TdvfError> {
        if fw.len() < 64 {
            return Err(TdvfError::TooSmall(fw.len()));
        }
        let (offset, from_table) = match metadata_offset_from_table(fw)? {
            Some(o) => (o, true),
            None => (
                read_u32(fw, fw.len() - 0x20).ok_or(TdvfError::NotFound)?,
                false,
            ),
        };
        let header = fw
            .len()
            .checked_sub(offset as usize)
            .filter(|_| offset != 0)
            .and_then(|d| Some((d, fw.get(d..d.checked_add(16)?)?)));
        let (descriptor_offset, header) = match header {
            Some(h) => h,
            // Without the GUIDed table, the end-0x20 word is only a guess: report "no
            // metadata" rather than a bogus offset.
            None if !from_table => return Err(TdvfError::NotFound),
            None => {
                return Err(TdvfError::BadDescriptorOffset {
                    offset,
                    size: fw.len(),
                })
            }
        };
        let mut sig = [0u8; 4];
        sig.copy_from_slice(&header[..4]);
        if &sig != b"TDVF" {
            if !from_table {
                return Err(TdvfError::NotFound);
            }
            return Err(TdvfError::BadSignature(sig));
        }
        let length = read_u32(header, 4).unwrap_or(0);
        let version = read_u32(header, 8).unwrap_or(0);
        let count = read_u32(header, 12).unwrap_or(0);
        if version != 1 {
            return Err(TdvfError::BadVersion(version));
        }
        if count > MAX_SECTIONS {
            return Err(TdvfError::TooManySections(count));
        }
        let expected = 16 + 32 * u64::from(count);
        if u64::from(length) != expected {
            return Err(TdvfError::BadLength {
                length,
                sections: count,
                expected,
            });
        }
        let available = (fw.len() - descriptor_offset) as u64;
        if available < expected {
            return Err(TdvfError::Truncated(expected - available));
        }
        let mut sections = Vec::with_capacity(count as usize);
        for index in 0..count as usize {
            let at = descriptor_offset + 16 + 32 * index;
            let e = fw.get(at..at + 32).ok_or(TdvfError::Truncated(32))?;
            let s = TdvfSection {
                data_offset: read_u32(e, 0).unwrap_or(0),
                raw_data_size: read_u32(e, 4).unwrap_or(0),
                memory_address: read_u64(e, 8).unwrap_or(0),
                memory_data_size: read_u64(e, 16).unwrap_or(0),
                section_type: SectionType::from_raw(read_u32(e, 24).unwrap_or(0)),
                attributes: read_u32(e, 28).unwrap_or(0),
            };
            validate_section(index, &s, fw.len())?;
            sections.push(s);
        }
        let mut measured: u64 = 0;
        let mut covered: u64 = 0;
        for (i, a) in sections.iter().enumerate() {
            if a.extends_mr() {
                measured = measured.saturating_add(a.memory_data_size);
            }
            covered = covered.saturating_add(a.memory_data_size);
            for (j, b) in sections.iter().enumerate().skip(i + 1) {
                let a_end = a.memory_address + a.memory_data_size;
                let b_end = b.memory_address + b.memory_data_size;
                if a.memory_address < b_end && b.memory_address < a_end {
                    return Err(TdvfError::Overlap(i, j));
                }
            }
        }
        if measured > MAX_EXTENDED_BYTES {
            return Err(TdvfError::TooMuchMeasured(measured));
        }
        if covered > MAX_SECTION_MEMORY {
            return Err(TdvfError::BadSection {
                index: sections.len().saturating_sub(1),
                reason: format!("sections cover {covered} bytes, more than 4 GiB"),
            });
        }
        Ok(Self {
            descriptor_offset,
            sections,
        })
    }

    /// The first section of a type, if any.
    pub fn section(&self, t: SectionType) -> Option<&TdvfSection> {
        self.sections.iter().find(|s| s.section_type == t)
    }

    /// The raw bytes of a section as stored in the image; `None` if they lie outside `fw`
    /// (only possible when `fw` is not the image this metadata was parsed from).
    pub fn section_data<'a>(&self, fw: &'a [u8], s: &TdvfSection) -> Option<&'a [u8]> {
        let start = s.data_offset as usize;
        fw.get(start..start.checked_add(s.raw_data_size as usize)?)
    }

    /// Computes MRTD for building a TD from `fw` (the image this metadata was parsed from).
    pub fn mrtd(&self, fw: &[u8], order: MrtdOrder) -> Result<Digest384, TdvfError> {
        let mut h = Sha384::new();
        for (index, s) in self.sections.iter().enumerate() {
            let data = self
                .section_data(fw, s)
                .ok_or_else(|| TdvfError::BadSection {
                    index,
                    reason: "raw data outside the image given".into(),
                })?;
            match order {
                MrtdOrder::SinglePass => {
                    for page in 0..s.pages() {
                        page_add(&mut h, s, page);
                        mr_extend(&mut h, s, data, page);
                    }
                }
                MrtdOrder::TwoPass => {
                    for page in 0..s.pages() {
                        page_add(&mut h, s, page);
                    }
                    for page in 0..s.pages() {
                        mr_extend(&mut h, s, data, page);
                    }
                }
            }
        }
        Ok(h.finalize().into())
    }
}

fn validate_section(index: usize, s: &TdvfSection, fw_len: usize) -> Result<(), TdvfError> {
    let bad = |reason: String| TdvfError::BadSection { index, reason };
    let data_end = u64::from(s.data_offset) + u64::from(s.raw_data_size);
    if data_end > fw_len as u64 {
        return Err(bad(format!(
            "raw data {:#x}+{:#x} ends past the {fw_len}-byte image",
            s.data_offset, s.raw_data_size
        )));
    }
    if s.memory_address % PAGE_SIZE != 0 {
        return Err(bad(format!(
            "memory address {:#x} is not page aligned",
            s.memory_address
        )));
    }
    if s.memory_data_size % PAGE_SIZE != 0 {
        return Err(bad(format!(
            "memory size {:#x} is not page aligned",
            s.memory_data_size
        )));
    }
    if u64::from(s.raw_data_size) > s.memory_data_size {
        return Err(bad(format!(
            "raw size {:#x} exceeds memory size {:#x}",
            s.raw_data_size, s.memory_data_size
        )));
    }
    if s.memory_address
        .checked_add(s.memory_data_size)
        .is_none_or(|e| e > 1 << 52)
    {
        return Err(bad(format!(
            "memory range {:#x}+{:#x} is outside the guest physical address space",
            s.memory_address, s.memory_data_size
        )));
    }
    if s.memory_data_size > MAX_SECTION_MEMORY {
        return Err(bad(format!(
            "memory size {:#x} exceeds 4 GiB",
            s.memory_data_size
        )));
    }
    if s.extends_mr() && s.page_aug() {
        return Err(bad("both MR.EXTEND and PAGE.AUG are set".into()));
    }
    Ok(())
}

/// The 128-byte record the TDX module hashes for one operation: the ASCII name at offset 0,
/// the GPA (little endian) at offset 16, zeroes elsewhere.
pub fn operation_record(name: &[u8], gpa: u64) -> [u8; 128] {
    let mut buf = [0u8; 128];
    let n = name.len().min(16);
    buf[..n].copy_from_slice(&name[..n]);
    buf[16..24].copy_from_slice(&gpa.to_le_bytes());
    buf
}

fn page_add(h: &mut Sha384, s: &TdvfSection, page: u64) {
    if s.page_aug() {
        return;
    }
    h.update(operation_record(
        b"MEM.PAGE.ADD",
        s.memory_address + page * PAGE_SIZE,
    ));
}

/// Extends the 16 chunks of one page; bytes past the raw data are zero (QEMU copies the raw
/// data into zero-filled memory of `memory_data_size` bytes).
fn mr_extend(h: &mut Sha384, s: &TdvfSection, data: &[u8], page: u64) {
    if !s.extends_mr() {
        return;
    }
    const ZERO: [u8; MR_EXTEND_CHUNK] = [0; MR_EXTEND_CHUNK];
    let page_off = (page * PAGE_SIZE) as usize;
    for i in 0..(PAGE_SIZE as usize / MR_EXTEND_CHUNK) {
        let off = page_off + i * MR_EXTEND_CHUNK;
        h.update(operation_record(
            b"MR.EXTEND",
            s.memory_address + off as u64,
        ));
        let avail = data.get(off..).unwrap_or(&[]);
        if avail.len() >= MR_EXTEND_CHUNK {
            h.update(&avail[..MR_EXTEND_CHUNK]);
        } else {
            let mut chunk = ZERO;
            chunk[..avail.len()].copy_from_slice(avail);
            h.update(chunk);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a firmware image with a GUIDed table pointing at a TDVF descriptor.
    pub(crate) fn build_fw(sections: &[(u32, u32, u64, u64, u32, u32)], fw_len: usize) -> Vec<u8> {
        let mut fw = vec![0u8; fw_len];
        // Descriptor at 0x100.
        let d = 0x100;
        fw[d..d + 4].copy_from_slice(b"TDVF");
        let len = 16 + 32 * sections.len() as u32;
        fw[d + 4..d + 8].copy_from_slice(&len.to_le_bytes());
        fw[d + 8..d + 12].copy_from_slice(&1u32.to_le_bytes());
        fw[d + 12..d + 16].copy_from_slice(&(sections.len() as u32).to_le_bytes());
        for (i, s) in sections.iter().enumerate() {
            let e = d + 16 + 32 * i;
            fw[e..e + 4].copy_from_slice(&s.0.to_le_bytes());
            fw[e + 4..e + 8].copy_from_slice(&s.1.to_le_bytes());
            fw[e + 8..e + 16].copy_from_slice(&s.2.to_le_bytes());
            fw[e + 16..e + 24].copy_from_slice(&s.3.to_le_bytes());
            fw[e + 24..e + 28].copy_from_slice(&s.4.to_le_bytes());
            fw[e + 28..e + 32].copy_from_slice(&s.5.to_le_bytes());
        }
        // GUIDed table: one unrelated entry, then the TDX metadata entry, then the footer.
        let n = fw.len();
        let footer_guid_end = n - 32;
        let footer_len_at = footer_guid_end - 18;
        // TDX entry: [u32 offset][u16 len=22][guid]
        let tdx_end = footer_len_at;
        let tdx_start = tdx_end - 22;
        fw[tdx_start..tdx_start + 4].copy_from_slice(&((n - d) as u32).to_le_bytes());
        fw[tdx_start + 4..tdx_start + 6].copy_from_slice(&22u16.to_le_bytes());
        fw[tdx_start + 6..tdx_end].copy_from_slice(&TDX_METADATA_OFFSET_GUID);
        // Unrelated entry before it: [8 bytes][u16 len=26][guid of ff].
        let other_end = tdx_start;
        let other_start = other_end - 26;
        fw[other_start + 8..other_start + 10].copy_from_slice(&26u16.to_le_bytes());
        fw[other_start + 10..other_end].copy_from_slice(&[0xff; 16]);
        let total = (footer_guid_end - other_start) as u16;
        fw[footer_len_at..footer_len_at + 2].copy_from_slice(&total.to_le_bytes());
        fw[footer_len_at + 2..footer_guid_end].copy_from_slice(&TABLE_FOOTER_GUID);
        fw
    }

    #[test]
    fn guid_byte_order_matches_uuid_mixed_endian_form() {
        // 96b582de-1fb2-45f7-baea-a366c55a082d as stored by OVMF (checked against Debian's
        // OVMF.fd, whose last 48 bytes hold de82b596b21ff745baeaa366c55a082d).
        assert_eq!(
            hex::encode(TABLE_FOOTER_GUID),
            "de82b596b21ff745baeaa366c55a082d"
        );
    }

    #[test]
    fn parses_descriptor_through_guided_table() {
        let fw = build_fw(
            &[
                (0x1000, 0x2000, 0xffff_e000, 0x2000, 0, 1),
                (0, 0, 0x80_0000, 0x1000, 2, 0),
            ],
            0x4000,
        );
        let m = TdvfMetadata::parse(&fw).unwrap();
        assert_eq!(m.descriptor_offset, 0x100);
        assert_eq!(m.sections.len(), 2);
        assert_eq!(m.sections[0].section_type, SectionType::Bfv);
        assert!(m.sections[0].extends_mr());
        assert_eq!(m.sections[1].section_type, SectionType::TdHob);
    }

    /// MRTD by hand, written independently of `mrtd`: build the whole byte stream the TDX
    /// module hashes in one Vec, then hash it once.
    #[test]
    fn mrtd_single_pass_matches_hand_built_stream() {
        let mut fw = build_fw(
            &[
                (0x1000, 0x1800, 0xffff_e000, 0x2000, 0, 1),
                (0, 0, 0x80_0000, 0x1000, 3, 0),
            ],
            0x4000,
        );
        for (i, b) in fw[0x1000..0x2800].iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        let m = TdvfMetadata::parse(&fw).unwrap();
        let mut stream = Vec::new();
        let rec = |name: &str, gpa: u64| {
            let mut r = vec![0u8; 128];
            r[..name.len()].copy_from_slice(name.as_bytes());
            r[16..24].copy_from_slice(&gpa.to_le_bytes());
            r
        };
        // Section 0 memory image: 0x1800 bytes of data then 0x800 zero bytes.
        let mut mem = fw[0x1000..0x2800].to_vec();
        mem.resize(0x2000, 0);
        for page in 0..2u64 {
            stream.extend(rec("MEM.PAGE.ADD", 0xffff_e000 + page * 0x1000));
            for c in 0..16u64 {
                let gpa = 0xffff_e000 + page * 0x1000 + c * 256;
                stream.extend(rec("MR.EXTEND", gpa));
                let off = (page * 0x1000 + c * 256) as usize;
                stream.extend_from_slice(&mem[off..off + 256]);
            }
        }
        stream.extend(rec("MEM.PAGE.ADD", 0x80_0000));
        assert_eq!(
            m.mrtd(&fw, MrtdOrder::SinglePass).unwrap(),
            crate::sha384(&stream)
        );

        // Two-pass: same records, adds of a section first.
        let mut two = Vec::new();
        two.extend(rec("MEM.PAGE.ADD", 0xffff_e000));
        two.extend(rec("MEM.PAGE.ADD", 0xffff_f000));
        for page in 0..2u64 {
            for c in 0..16u64 {
                let gpa = 0xffff_e000 + page * 0x1000 + c * 256;
                two.extend(rec("MR.EXTEND", gpa));
                let off = (page * 0x1000 + c * 256) as usize;
                two.extend_from_slice(&mem[off..off + 256]);
            }
        }
        two.extend(rec("MEM.PAGE.ADD", 0x80_0000));
        let tp = m.mrtd(&fw, MrtdOrder::TwoPass).unwrap();
        assert_eq!(tp, crate::sha384(&two));
        assert_ne!(tp, m.mrtd(&fw, MrtdOrder::SinglePass).unwrap());
    }

    #[test]
    fn page_aug_sections_contribute_nothing() {
        let fw_a = build_fw(&[(0, 0, 0x80_0000, 0x1000, 3, 0)], 0x4000);
        let fw_b = build_fw(
            &[
                (0, 0, 0x80_0000, 0x1000, 3, 0),
                (0, 0, 0x90_0000, 0x1000, 4, ATTR_PAGE_AUG),
            ],
            0x4000,
        );
        let a = TdvfMetadata::parse(&fw_a)
            .unwrap()
            .mrtd(&fw_a, MrtdOrder::SinglePass)
            .unwrap();
        let b = TdvfMetadata::parse(&fw_b)
            .unwrap()
            .mrtd(&fw_b, MrtdOrder::SinglePass)
            .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn rejects_missing_and_malformed_metadata() {
        assert_eq!(
            TdvfMetadata::parse(&[0u8; 10]),
            Err(TdvfError::TooSmall(10))
        );
        // No table, and end-0x20 holds 0: descriptor offset 0 is invalid.
        assert_eq!(
            TdvfMetadata::parse(&[0u8; 0x1000]),
            Err(TdvfError::NotFound)
        );
        let good = build_fw(&[(0x1000, 0x1000, 0xffff_f000, 0x1000, 0, 1)], 0x4000);
        // Bad signature.
        let mut fw = good.clone();
        fw[0x100] = b'X';
        assert!(matches!(
            TdvfMetadata::parse(&fw),
            Err(TdvfError::BadSignature(_))
        ));
        // Bad version.
        let mut fw = good.clone();
        fw[0x108] = 2;
        assert_eq!(TdvfMetadata::parse(&fw), Err(TdvfError::BadVersion(2)));
        // Oversized section count.
        let mut fw = good.clone();
        fw[0x10c..0x110].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            TdvfMetadata::parse(&fw),
            Err(TdvfError::TooManySections(u32::MAX))
        );
        // Raw data past the end of the image.
        let mut fw = good.clone();
        fw[0x114..0x118].copy_from_slice(&0x10_0000u32.to_le_bytes());
        assert!(matches!(
            TdvfMetadata::parse(&fw),
            Err(TdvfError::BadSection { index: 0, .. })
        ));
        // Unaligned address.
        let mut fw = good.clone();
        fw[0x118] = 0x10;
        assert!(matches!(
            TdvfMetadata::parse(&fw),
            Err(TdvfError::BadSection { index: 0, .. })
        ));
        // Huge memory size.
        let mut fw = good.clone();
        fw[0x120..0x128].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(TdvfMetadata::parse(&fw).is_err());
        // Table entry length tampered to exceed the table.
        let mut fw = good.clone();
        let n = fw.len();
        let at = n - 32 - 18 - 22 + 4;
        fw[at..at + 2].copy_from_slice(&0xffffu16.to_le_bytes());
        assert!(matches!(
            TdvfMetadata::parse(&fw),
            Err(TdvfError::BadTable(_))
        ));
        // Descriptor offset pointing past the start.
        let mut fw = good.clone();
        let at = n - 32 - 18 - 22;
        fw[at..at + 4].copy_from_slice(&0x10_0000u32.to_le_bytes());
        assert!(matches!(
            TdvfMetadata::parse(&fw),
            Err(TdvfError::BadDescriptorOffset { .. })
        ));
    }

    /// Old TDVF layout without the GUIDed table: the u32 at end-0x20 is the descriptor's
    /// distance from the end.
    #[test]
    fn finds_descriptor_through_end_minus_0x20_without_table() {
        let with_table = build_fw(&[(0x1000, 0x1000, 0xffff_f000, 0x1000, 0, 1)], 0x4000);
        let mut fw = with_table.clone();
        let n = fw.len();
        fw[n - 0x80..].fill(0);
        fw[n - 0x20..n - 0x1c].copy_from_slice(&((n - 0x100) as u32).to_le_bytes());
        let m = TdvfMetadata::parse(&fw).unwrap();
        assert_eq!(m.descriptor_offset, 0x100);
        assert_eq!(
            m.sections,
            TdvfMetadata::parse(&with_table).unwrap().sections
        );
        // Pointing at something that is not a descriptor: "no metadata", not a bogus error.
        fw[n - 0x20..n - 0x1c].copy_from_slice(&0x200u32.to_le_bytes());
        assert_eq!(TdvfMetadata::parse(&fw), Err(TdvfError::NotFound));
    }

    #[test]
    fn rejects_overlapping_sections() {
        let fw = build_fw(
            &[
                (0, 0, 0x80_0000, 0x2000, 3, 0),
                (0, 0, 0x80_1000, 0x1000, 2, 0),
            ],
            0x4000,
        );
        assert_eq!(TdvfMetadata::parse(&fw), Err(TdvfError::Overlap(0, 1)));
    }

    #[test]
    fn truncation_at_every_length_never_panics() {
        let fw = build_fw(&[(0x1000, 0x1000, 0xffff_f000, 0x1000, 0, 1)], 0x4000);
        for cut in 0..fw.len() {
            let _ = TdvfMetadata::parse(&fw[..cut]);
            let _ = TdvfMetadata::parse(&fw[cut..]);
        }
    }

    /// Deterministic random tampering of the descriptor and the GUIDed table: Ok or Err,
    /// never a panic; whatever parses also computes an MRTD.
    #[test]
    fn random_tampering_never_panics() {
        let base = build_fw(
            &[
                (0x1000, 0x1000, 0xffff_f000, 0x1000, 0, 1),
                (0, 0, 0x80_0000, 0x2000, 2, 0),
            ],
            0x4000,
        );
        let n = base.len();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for round in 0..5000 {
            let mut fw = base.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = if round % 2 == 0 {
                    0x100 + (x % 80) as usize
                } else {
                    n - 32 - (x % 80) as usize - 1
                };
                fw[at] = (x >> 40) as u8;
            }
            if let Ok(m) = TdvfMetadata::parse(&fw) {
                // Hash only small results: a tampered size can legitimately ask for up to
                // MAX_SECTION_MEMORY of PAGE.ADD records, slow in a debug build.
                if m.sections.iter().map(|s| s.memory_data_size).sum::<u64>() <= 1 << 20 {
                    let _ = m.mrtd(&fw, MrtdOrder::SinglePass);
                }
            }
        }
    }
}
