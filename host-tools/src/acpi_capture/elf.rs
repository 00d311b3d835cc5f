//! The check that a capture `/init` can run in an initramfs with nothing else in it: a 64-bit
//! little-endian x86-64 ELF executable (`ET_EXEC`, or `ET_DYN` for static-pie) without a
//! `PT_INTERP` program header (no dynamic loader to find).
//!
//! Invariant: the bytes are untrusted; every offset is bounds-checked, nothing panics.

pub const PT_INTERP: u32 = 3;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const PHDR_BYTES: usize = 56;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    #[error("not an ELF file")]
    NotElf,
    #[error("not a 64-bit little-endian x86-64 ELF")]
    WrongArch,
    #[error("ELF type {0} is not an executable")]
    NotExecutable(u16),
    #[error("ELF program headers are out of the file or malformed")]
    BadProgramHeaders,
    #[error("dynamically linked (has a PT_INTERP program header): the capture initramfs has no dynamic loader or libraries; build it static with ci/build-capture-init")]
    Dynamic,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

/// Checks that `bytes` is a static x86-64 executable.
pub fn check_static(bytes: &[u8]) -> Result<(), ElfError> {
    if bytes.get(..4) != Some(b"\x7fELF") {
        return Err(ElfError::NotElf);
    }
    // EI_CLASS = 2 (64-bit), EI_DATA = 1 (little-endian).
    if bytes.get(4..6) != Some(&[2, 1]) || u16_at(bytes, 18) != Some(EM_X86_64) {
        return Err(ElfError::WrongArch);
    }
    let e_type = u16_at(bytes, 16).ok_or(ElfError::NotElf)?;
    if e_type != ET_EXEC && e_type != ET_DYN {
        return Err(ElfError::NotExecutable(e_type));
    }
    let phoff = u64_at(bytes, 32).ok_or(ElfError::BadProgramHeaders)?;
    let phentsize = u16_at(bytes, 54).ok_or(ElfError::BadProgramHeaders)?;
    let phnum = u16_at(bytes, 56).ok_or(ElfError::BadProgramHeaders)?;
    if usize::from(phentsize) < PHDR_BYTES || phnum == 0 {
        return Err(ElfError::BadProgramHeaders);
    }
    let phoff = usize::try_from(phoff).map_err(|_| ElfError::BadProgramHeaders)?;
    // The whole table must lie in the file.
    let table_end = usize::from(phentsize)
        .checked_mul(usize::from(phnum))
        .and_then(|n| n.checked_add(phoff))
        .ok_or(ElfError::BadProgramHeaders)?;
    if table_end > bytes.len() {
        return Err(ElfError::BadProgramHeaders);
    }
    for i in 0..usize::from(phnum) {
        // In range: i < phnum, so at + PHDR_BYTES <= table_end <= bytes.len().
        let at = phoff + usize::from(phentsize) * i;
        let p_type = u32_at(bytes, at).ok_or(ElfError::BadProgramHeaders)?;
        if p_type == PT_INTERP {
            return Err(ElfError::Dynamic);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF header with `types` as its program headers.
    fn elf(e_type: u16, types: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[16..18].copy_from_slice(&e_type.to_le_bytes());
        b[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for t in types {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&t.to_le_bytes());
            b.extend(ph);
        }
        b
    }

    #[test]
    fn static_and_dynamic() {
        assert_eq!(check_static(&elf(ET_EXEC, &[1, 1, 4])), Ok(()));
        // static-pie: ET_DYN with PT_DYNAMIC (2) but no PT_INTERP.
        assert_eq!(check_static(&elf(ET_DYN, &[6, 1, 2])), Ok(()));
        assert_eq!(
            check_static(&elf(ET_DYN, &[6, PT_INTERP, 1, 2])),
            Err(ElfError::Dynamic)
        );
    }

    #[test]
    fn malformed_input_is_refused_without_panicking() {
        assert_eq!(check_static(b"#!/bin/sh\n"), Err(ElfError::NotElf));
        assert_eq!(check_static(b""), Err(ElfError::NotElf));
        let good = elf(ET_EXEC, &[1, PT_INTERP]);
        for cut in 0..good.len() {
            assert!(check_static(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut b = good.clone();
        b[4] = 1; // 32-bit
        assert_eq!(check_static(&b), Err(ElfError::WrongArch));
        let mut b = good.clone();
        b[18] = 183; // aarch64
        assert_eq!(check_static(&b), Err(ElfError::WrongArch));
        assert_eq!(check_static(&elf(1, &[1])), Err(ElfError::NotExecutable(1)));
        let mut b = good.clone();
        b[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(check_static(&b), Err(ElfError::BadProgramHeaders));
        let mut b = good.clone();
        b[56..58].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(check_static(&b), Err(ElfError::BadProgramHeaders));
        let mut b = good;
        b[54..56].copy_from_slice(&8u16.to_le_bytes());
        assert_eq!(check_static(&b), Err(ElfError::BadProgramHeaders));
    }

    #[test]
    fn a_real_dynamic_executable_is_refused() {
        // The test executable itself: a dynamically linked PIE (cargo test never builds it
        // with crt-static).
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(check_static(&exe), Err(ElfError::Dynamic));
    }
}
