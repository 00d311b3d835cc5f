//! The TD HOB list QEMU writes into the TDVF `TD_HOB` section (`hw/i386/tdvf-hob.c`), which
//! TDVF measures into RTMR0 as `EV_EFI_HANDOFF_TABLES2`.
//!
//! QEMU builds it from its TDX RAM entries (`target/i386/kvm/tdx.c`): one entry per e820 RAM
//! range (q35: `[0, below_4g)` and, with more than 2.75 GiB, `[4 GiB, 4 GiB + above_4g)`), then
//! every `TD_HOB` and `TempMem` section is "accepted", splitting the entry that contains it into
//! unaccepted head, accepted middle and unaccepted tail; entries are sorted by address. The HOB
//! list is then:
//!
//! * a 56-byte PHIT HOB (`EFI_HOB_HANDOFF_INFO_TABLE`): type 1, length 56, version 9, boot mode
//!   0, memory top/bottom fields 0, `EfiEndOfHobList` = guest address just past the end HOB;
//! * one 48-byte resource descriptor per RAM entry: type 3, length 48, zero owner GUID,
//!   resource type 0 (system memory, accepted) or 7 (unaccepted), attributes 0x7
//!   (present | initialized | tested), start, length;
//! * an 8-byte end-of-list HOB (type 0xffff), which is NOT part of the measured bytes: TDVF
//!   hashes from the start of the list up to, excluding, the end HOB.

use crate::bzimage::below_4g_mem_size;
use crate::tdvf::{SectionType, TdvfMetadata};

const HOB_HANDOFF: u16 = 0x0001;
const HOB_RESOURCE_DESCRIPTOR: u16 = 0x0003;
const PHIT_LEN: u16 = 56;
const RESOURCE_LEN: u16 = 48;
const END_HOB_LEN: u64 = 8;
const HANDOFF_TABLE_VERSION: u32 = 9;
const RESOURCE_SYSTEM_MEMORY: u32 = 0;
const RESOURCE_MEMORY_UNACCEPTED: u32 = 7;
const ATTR_PRESENT_INITIALIZED_TESTED: u32 = 0x7;
/// Upper bound on RAM entries (2 e820 ranges, each split in at most 3 per accepted section).
const MAX_ENTRIES: usize = 512;

/// Why the TD HOB cannot be built for this firmware and memory size.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum TdHobError {
    #[error("firmware has no TD_HOB section")]
    NoHobSection,
    #[error("TDVF section at {start:#x}+{len:#x} is not inside guest RAM of {memory} bytes (QEMU refuses to start)")]
    SectionOutsideRam { start: u64, len: u64, memory: u64 },
    #[error("TD HOB list of {need} bytes does not fit the {have}-byte TD_HOB section")]
    TooLarge { need: usize, have: u64 },
    #[error("too many RAM entries")]
    TooManyEntries,
}

/// One TDX RAM entry: `accepted` when QEMU added the pages at build time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RamEntry {
    pub start: u64,
    pub len: u64,
    pub accepted: bool,
}

/// QEMU's RAM entries for a q35 TD with `memory` bytes and this firmware.
pub fn ram_entries(meta: &TdvfMetadata, memory: u64) -> Result<Vec<RamEntry>, TdHobError> {
    let below = below_4g_mem_size(memory);
    let mut entries = vec![RamEntry {
        start: 0,
        len: below,
        accepted: false,
    }];
    if memory > below {
        entries.push(RamEntry {
            start: 1 << 32,
            len: memory - below,
            accepted: false,
        });
    }
    for s in meta
        .sections
        .iter()
        .filter(|s| matches!(s.section_type, SectionType::TdHob | SectionType::TempMem))
    {
        let (start, len) = (s.memory_address, s.memory_data_size);
        let end = start.saturating_add(len);
        let outside = TdHobError::SectionOutsideRam { start, len, memory };
        let i = entries
            .iter()
            .position(|e| start < e.start + e.len && e.start < end)
            .ok_or(outside.clone())?;
        let e = entries[i];
        if e.accepted || start < e.start || end > e.start + e.len {
            return Err(outside);
        }
        entries[i] = RamEntry {
            start,
            len,
            accepted: true,
        };
        if start > e.start {
            entries.push(RamEntry {
                start: e.start,
                len: start - e.start,
                accepted: false,
            });
        }
        if end < e.start + e.len {
            entries.push(RamEntry {
                start: end,
                len: e.start + e.len - end,
                accepted: false,
            });
        }
        if entries.len() > MAX_ENTRIES {
            return Err(TdHobError::TooManyEntries);
        }
    }
    entries.sort_by_key(|e| e.start);
    Ok(entries)
}

/// The measured bytes of the TD HOB list (PHIT + resource descriptors, without the end HOB).
pub fn measured_bytes(meta: &TdvfMetadata, memory: u64) -> Result<Vec<u8>, TdHobError> {
    let hob_section = meta
        .section(SectionType::TdHob)
        .ok_or(TdHobError::NoHobSection)?;
    let entries = ram_entries(meta, memory)?;
    let mut out =
        Vec::with_capacity(usize::from(PHIT_LEN) + entries.len() * usize::from(RESOURCE_LEN));
    out.extend_from_slice(&HOB_HANDOFF.to_le_bytes());
    out.extend_from_slice(&PHIT_LEN.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&HANDOFF_TABLE_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // BootMode: BOOT_WITH_FULL_CONFIGURATION
    out.extend_from_slice(&[0u8; 32]); // EfiMemoryTop/Bottom, EfiFreeMemoryTop/Bottom
    let end_of_list_at = out.len();
    out.extend_from_slice(&[0u8; 8]);
    for e in &entries {
        out.extend_from_slice(&HOB_RESOURCE_DESCRIPTOR.to_le_bytes());
        out.extend_from_slice(&RESOURCE_LEN.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&[0u8; 16]); // Owner GUID
        let kind = if e.accepted {
            RESOURCE_SYSTEM_MEMORY
        } else {
            RESOURCE_MEMORY_UNACCEPTED
        };
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&ATTR_PRESENT_INITIALIZED_TESTED.to_le_bytes());
        out.extend_from_slice(&e.start.to_le_bytes());
        out.extend_from_slice(&e.len.to_le_bytes());
    }
    let total = out.len() as u64 + END_HOB_LEN;
    if total > hob_section.memory_data_size {
        return Err(TdHobError::TooLarge {
            need: total as usize,
            have: hob_section.memory_data_size,
        });
    }
    let end_of_list = hob_section.memory_address + total;
    out[end_of_list_at..end_of_list_at + 8].copy_from_slice(&end_of_list.to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tdvf::tests::build_fw;

    /// Debian OVMF's layout: TempMem 0x800000+0x6000, TD_HOB 0x809000+0x2000,
    /// TempMem 0x80b000+0x2000, TempMem 0x811000+0xf000.
    fn meta() -> TdvfMetadata {
        let fw = build_fw(
            &[
                (0, 0, 0x81_1000, 0xf000, 3, 0),
                (0, 0, 0x80_b000, 0x2000, 3, 0),
                (0, 0, 0x80_9000, 0x2000, 2, 0),
                (0, 0, 0x80_0000, 0x6000, 3, 0),
            ],
            0x4000,
        );
        TdvfMetadata::parse(&fw).unwrap()
    }

    #[test]
    fn splits_ram_around_accepted_sections() {
        let e = ram_entries(&meta(), 2 << 30).unwrap();
        let got: Vec<(u64, u64, bool)> = e.iter().map(|e| (e.start, e.len, e.accepted)).collect();
        assert_eq!(
            got,
            vec![
                (0, 0x80_0000, false),
                (0x80_0000, 0x6000, true),
                (0x80_6000, 0x3000, false),
                (0x80_9000, 0x2000, true),
                (0x80_b000, 0x2000, true),
                (0x80_d000, 0x4000, false),
                (0x81_1000, 0xf000, true),
                (0x82_0000, 0x8000_0000 - 0x82_0000, false),
            ]
        );
        // 16 GiB: low RAM stops at 2 GiB, the rest starts at 4 GiB.
        let e = ram_entries(&meta(), 16 << 30).unwrap();
        let last = e.last().unwrap();
        assert_eq!(
            (last.start, last.len),
            (1 << 32, (16u64 << 30) - 0x8000_0000)
        );
    }

    #[test]
    fn hob_bytes_layout() {
        let b = measured_bytes(&meta(), 2 << 30).unwrap();
        assert_eq!(b.len(), 56 + 8 * 48);
        assert_eq!(&b[0..8], &[1, 0, 56, 0, 0, 0, 0, 0]);
        assert_eq!(u32::from_le_bytes(b[8..12].try_into().unwrap()), 9);
        // EfiEndOfHobList = 0x809000 + 56 + 8*48 + 8.
        assert_eq!(
            u64::from_le_bytes(b[48..56].try_into().unwrap()),
            0x80_9000 + 56 + 384 + 8
        );
        // First resource descriptor: unaccepted [0, 8 MiB).
        let r = &b[56..104];
        assert_eq!(&r[0..4], &[3, 0, 48, 0]);
        assert_eq!(u32::from_le_bytes(r[24..28].try_into().unwrap()), 7);
        assert_eq!(u32::from_le_bytes(r[28..32].try_into().unwrap()), 7);
        assert_eq!(u64::from_le_bytes(r[40..48].try_into().unwrap()), 0x80_0000);
        assert_ne!(
            measured_bytes(&meta(), 2 << 30).unwrap(),
            measured_bytes(&meta(), 4 << 30).unwrap()
        );
    }

    #[test]
    fn rejects_memory_too_small_for_the_sections() {
        assert!(matches!(
            measured_bytes(&meta(), 0x80_0000),
            Err(TdHobError::SectionOutsideRam { .. })
        ));
    }
}
