//! Authenticode SHA-384 of a PE/COFF image, as the firmware computes it when it measures an
//! EFI application it loads (edk2 `OvmfPkg/Tcg/TdTcg2Dxe/MeasureBootPeCoff.c`, which follows the
//! PE/COFF specification's Authenticode appendix):
//!
//! 1. hash the headers from offset 0 up to the optional header's `CheckSum` field;
//! 2. skip `CheckSum` (4 bytes);
//! 3. if the image has a certificate-table data directory (`NumberOfRvaAndSizes > 4`): hash up
//!    to that directory entry, skip the entry (8 bytes), then hash up to `SizeOfHeaders`;
//!    otherwise hash from after `CheckSum` to `SizeOfHeaders`;
//! 4. hash the raw data of every section with a non-zero `SizeOfRawData`, in ascending
//!    `PointerToRawData` order;
//! 5. if bytes remain past `SizeOfHeaders + sum(SizeOfRawData)`, hash
//!    `file_size - cert_table_size - that sum` of them (the trailing data minus the signature).
//!
//! No padding is added: edk2 hashes exactly these ranges of the file buffer.

use crate::register::Digest384;
use sha2::{Digest, Sha384};

/// Index of the certificate table in the optional header's data directories.
const SECURITY_DIR: u32 = 4;
const PE32_MAGIC: u16 = 0x10b;
const PE32PLUS_MAGIC: u16 = 0x20b;
/// Upper bound on sections (the PE format allows 96; edk2 rejects more).
pub const MAX_SECTIONS: u16 = 96;

/// What is wrong with a PE image.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeError {
    #[error("not a PE image: no \"MZ\" DOS header")]
    NoDosHeader,
    #[error("not a PE image: e_lfanew {0:#x} does not point at a \"PE\\0\\0\" signature")]
    NoPeSignature(u32),
    #[error("truncated PE image: {0} extends past the end of the file")]
    Truncated(&'static str),
    #[error("unknown optional header magic {0:#x}")]
    BadMagic(u16),
    #[error("{0} sections (at most {MAX_SECTIONS} supported)")]
    TooManySections(u16),
    #[error("SizeOfHeaders {size_of_headers:#x} is smaller than the headers ({needed:#x})")]
    BadSizeOfHeaders { size_of_headers: u32, needed: u64 },
    #[error(
        "section {index} raw data {offset:#x}+{size:#x} extends past the {file_size}-byte file"
    )]
    SectionOutOfFile {
        index: usize,
        offset: u32,
        size: u32,
        file_size: usize,
    },
    #[error("certificate table ({cert_size} bytes) is larger than the data after the sections")]
    BadCertTable { cert_size: u32 },
}

fn u16_at(b: &[u8], at: usize, what: &'static str) -> Result<u16, PeError> {
    b.get(at..at.saturating_add(2))
        .and_then(|s| s.try_into().ok())
        .map(u16::from_le_bytes)
        .ok_or(PeError::Truncated(what))
}

fn u32_at(b: &[u8], at: usize, what: &'static str) -> Result<u32, PeError> {
    b.get(at..at.saturating_add(4))
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(PeError::Truncated(what))
}

/// The header fields the Authenticode hash needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeLayout {
    /// Offset of the optional header's `CheckSum` field.
    pub checksum_offset: usize,
    /// Offset of the certificate-table data directory entry, if the image has one.
    pub cert_dir_offset: Option<usize>,
    pub size_of_headers: usize,
    /// `(PointerToRawData, SizeOfRawData)` of sections with raw data, sorted by offset.
    pub sections: Vec<(u32, u32)>,
    pub cert_table_size: u32,
}

impl PeLayout {
    /// Parses the headers of a PE/COFF image. Every range the hash will read is checked to lie
    /// inside `image`.
    pub fn parse(image: &[u8]) -> Result<Self, PeError> {
        if image.get(..2) != Some(b"MZ") {
            return Err(PeError::NoDosHeader);
        }
        let lfanew = u32_at(image, 0x3c, "DOS header")?;
        let pe = lfanew as usize;
        if image.get(pe..pe.saturating_add(4)) != Some(b"PE\0\0") {
            return Err(PeError::NoPeSignature(lfanew));
        }
        let coff = pe + 4;
        let num_sections = u16_at(image, coff + 2, "COFF header")?;
        let opt_size = usize::from(u16_at(image, coff + 16, "COFF header")?);
        if num_sections > MAX_SECTIONS {
            return Err(PeError::TooManySections(num_sections));
        }
        let opt = coff + 20;
        let magic = u16_at(image, opt, "optional header")?;
        let (nrva_at, dirs_at) = match magic {
            PE32_MAGIC => (opt + 92, opt + 96),
            PE32PLUS_MAGIC => (opt + 108, opt + 112),
            m => return Err(PeError::BadMagic(m)),
        };
        let checksum_offset = opt + 64;
        let size_of_headers = u32_at(image, opt + 60, "optional header")?;
        let nrva = u32_at(image, nrva_at, "optional header")?;
        let (cert_dir_offset, cert_table_size) = if nrva > SECURITY_DIR {
            let at = dirs_at + 8 * SECURITY_DIR as usize;
            (
                Some(at),
                u32_at(image, at + 4, "certificate data directory")?,
            )
        } else {
            (None, 0)
        };
        let table = opt + opt_size;
        let table_end = table as u64 + 40 * u64::from(num_sections);
        let header_end =
            (cert_dir_offset.map_or(checksum_offset + 4, |c| c + 8) as u64).max(table_end);
        if u64::from(size_of_headers) < header_end {
            return Err(PeError::BadSizeOfHeaders {
                size_of_headers,
                needed: header_end,
            });
        }
        if size_of_headers as usize > image.len() {
            return Err(PeError::Truncated("SizeOfHeaders"));
        }
        let mut sections = Vec::with_capacity(usize::from(num_sections));
        for index in 0..usize::from(num_sections) {
            let at = table + 40 * index;
            let size = u32_at(image, at + 16, "section table")?;
            let offset = u32_at(image, at + 20, "section table")?;
            if size == 0 {
                continue;
            }
            if u64::from(offset) + u64::from(size) > image.len() as u64 {
                return Err(PeError::SectionOutOfFile {
                    index,
                    offset,
                    size,
                    file_size: image.len(),
                });
            }
            sections.push((offset, size));
        }
        // Stable sort, like edk2's insertion sort: equal offsets keep table order.
        sections.sort_by_key(|&(offset, _)| offset);
        Ok(Self {
            checksum_offset,
            cert_dir_offset,
            size_of_headers: size_of_headers as usize,
            sections,
            cert_table_size,
        })
    }
}

/// Authenticode SHA-384 of `image` (see the module documentation for exactly what is hashed).
pub fn authenticode_sha384(image: &[u8]) -> Result<Digest384, PeError> {
    let l = PeLayout::parse(image)?;
    let mut h = Sha384::new();
    let hdr = |a: usize, b: usize| image.get(a..b).ok_or(PeError::Truncated("headers"));
    h.update(hdr(0, l.checksum_offset)?);
    match l.cert_dir_offset {
        Some(c) => {
            h.update(hdr(l.checksum_offset + 4, c)?);
            h.update(hdr(c + 8, l.size_of_headers)?);
        }
        None => h.update(hdr(l.checksum_offset + 4, l.size_of_headers)?),
    }
    let mut sum = l.size_of_headers as u64;
    for &(offset, size) in &l.sections {
        let start = offset as usize;
        // In range: checked by PeLayout::parse.
        h.update(
            image
                .get(start..start + size as usize)
                .ok_or(PeError::Truncated("section"))?,
        );
        sum += u64::from(size);
    }
    let file = image.len() as u64;
    if file > sum {
        let cert = u64::from(l.cert_table_size);
        if file > sum + cert {
            let start = sum as usize;
            let len = (file - sum - cert) as usize;
            h.update(
                image
                    .get(start..start + len)
                    .ok_or(PeError::Truncated("trailing data"))?,
            );
        } else if file < sum + cert {
            return Err(PeError::BadCertTable {
                cert_size: l.cert_table_size,
            });
        }
    }
    Ok(h.finalize().into())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal PE32+ image: DOS header, PE header, optional header with 16 data directories,
    /// two sections (listed out of file order), trailing data and a fake certificate.
    pub(crate) fn build_pe(cert: &[u8]) -> Vec<u8> {
        let mut img = vec![0u8; 0x400];
        img[0..2].copy_from_slice(b"MZ");
        img[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        img[0x80..0x84].copy_from_slice(b"PE\0\0");
        let coff = 0x84;
        img[coff..coff + 2].copy_from_slice(&0x8664u16.to_le_bytes());
        img[coff + 2..coff + 4].copy_from_slice(&2u16.to_le_bytes());
        img[coff + 16..coff + 18].copy_from_slice(&240u16.to_le_bytes());
        let opt = coff + 20;
        img[opt..opt + 2].copy_from_slice(&PE32PLUS_MAGIC.to_le_bytes());
        img[opt + 60..opt + 64].copy_from_slice(&0x200u32.to_le_bytes()); // SizeOfHeaders
        img[opt + 64..opt + 68].copy_from_slice(&0xdead_beefu32.to_le_bytes()); // CheckSum
        img[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
        let table = opt + 240;
        // Section A at 0x300 (0x100 bytes), listed first; section B at 0x200 (0x100 bytes).
        img[table + 16..table + 20].copy_from_slice(&0x100u32.to_le_bytes());
        img[table + 20..table + 24].copy_from_slice(&0x300u32.to_le_bytes());
        img[table + 40 + 16..table + 40 + 20].copy_from_slice(&0x100u32.to_le_bytes());
        img[table + 40 + 20..table + 40 + 24].copy_from_slice(&0x200u32.to_le_bytes());
        for (i, b) in img[0x200..0x400].iter_mut().enumerate() {
            *b = (i * 7 % 256) as u8;
        }
        img.extend_from_slice(b"trailing-data!!!");
        if !cert.is_empty() {
            let dir = opt + 112 + 8 * 4;
            let at = img.len() as u32;
            img[dir..dir + 4].copy_from_slice(&at.to_le_bytes());
            img[dir + 4..dir + 8].copy_from_slice(&(cert.len() as u32).to_le_bytes());
            img.extend_from_slice(cert);
        }
        img
    }

    /// The expected hash, by listing the hashed ranges explicitly for this layout.
    fn by_hand(img: &[u8], cert_len: usize) -> Digest384 {
        let opt = 0x84 + 20;
        let checksum = opt + 64;
        let dir = opt + 112 + 32;
        let mut v = Vec::new();
        v.extend_from_slice(&img[..checksum]);
        v.extend_from_slice(&img[checksum + 4..dir]);
        v.extend_from_slice(&img[dir + 8..0x200]);
        v.extend_from_slice(&img[0x200..0x300]); // lower PointerToRawData first
        v.extend_from_slice(&img[0x300..0x400]);
        v.extend_from_slice(&img[0x400..img.len() - cert_len]);
        crate::sha384(&v)
    }

    #[test]
    fn matches_hand_listed_ranges_with_and_without_certificate() {
        let img = build_pe(&[]);
        assert_eq!(authenticode_sha384(&img).unwrap(), by_hand(&img, 0));
        let cert = vec![0x5a; 24];
        let signed = build_pe(&cert);
        assert_eq!(
            authenticode_sha384(&signed).unwrap(),
            by_hand(&signed, cert.len())
        );
    }

    /// PE32 (32-bit optional header): the data directories start 16 bytes earlier.
    #[test]
    fn pe32_layout() {
        let mut img = build_pe(&[]);
        let opt = 0x84 + 20;
        img[opt..opt + 2].copy_from_slice(&PE32_MAGIC.to_le_bytes());
        img[opt + 108..opt + 112].fill(0);
        img[opt + 92..opt + 96].copy_from_slice(&16u32.to_le_bytes());
        let cert = [0x77u8; 16];
        let dir = opt + 96 + 32;
        let at = img.len() as u32;
        img[dir..dir + 4].copy_from_slice(&at.to_le_bytes());
        img[dir + 4..dir + 8].copy_from_slice(&16u32.to_le_bytes());
        img.extend_from_slice(&cert);
        let checksum = opt + 64;
        let mut v = Vec::new();
        v.extend_from_slice(&img[..checksum]);
        v.extend_from_slice(&img[checksum + 4..dir]);
        v.extend_from_slice(&img[dir + 8..img.len() - cert.len()]);
        assert_eq!(authenticode_sha384(&img).unwrap(), crate::sha384(&v));
        // Without a certificate directory (NumberOfRvaAndSizes <= 4) the whole header after
        // CheckSum is hashed, directory entry included.
        img[opt + 92..opt + 96].copy_from_slice(&4u32.to_le_bytes());
        let mut v = Vec::new();
        v.extend_from_slice(&img[..checksum]);
        v.extend_from_slice(&img[checksum + 4..]);
        assert_eq!(authenticode_sha384(&img).unwrap(), crate::sha384(&v));
    }

    #[test]
    fn checksum_and_certificate_do_not_change_the_hash_but_code_does() {
        let cert = vec![0x5a; 24];
        let img = build_pe(&cert);
        let base = authenticode_sha384(&img).unwrap();
        let mut c = img.clone();
        c[0x84 + 20 + 64] ^= 0xff; // CheckSum
        assert_eq!(authenticode_sha384(&c).unwrap(), base);
        let mut c = img.clone();
        let n = c.len();
        c[n - 1] ^= 0xff; // certificate bytes
        assert_eq!(authenticode_sha384(&c).unwrap(), base);
        let mut c = img.clone();
        c[0x250] ^= 1; // section data
        assert_ne!(authenticode_sha384(&c).unwrap(), base);
        let mut c = img;
        c[0x401] ^= 1; // trailing data
        assert_ne!(authenticode_sha384(&c).unwrap(), base);
    }

    #[test]
    fn rejects_bad_images() {
        assert_eq!(authenticode_sha384(b"hello"), Err(PeError::NoDosHeader));
        let img = build_pe(&[]);
        let mut c = img.clone();
        c[0x80] = b'X';
        assert_eq!(authenticode_sha384(&c), Err(PeError::NoPeSignature(0x80)));
        let mut c = img.clone();
        c[0x84 + 20] = 0x99;
        assert!(matches!(authenticode_sha384(&c), Err(PeError::BadMagic(_))));
        let mut c = img.clone();
        c[0x86..0x88].copy_from_slice(&500u16.to_le_bytes());
        assert_eq!(authenticode_sha384(&c), Err(PeError::TooManySections(500)));
        let mut c = img.clone();
        let t = 0x84 + 20 + 240;
        c[t + 20..t + 24].copy_from_slice(&0xffff_ff00u32.to_le_bytes());
        assert!(matches!(
            authenticode_sha384(&c),
            Err(PeError::SectionOutOfFile { index: 0, .. })
        ));
        // Certificate larger than what follows the sections.
        let mut c = build_pe(&[1, 2, 3, 4]);
        let dir = 0x84 + 20 + 112 + 32;
        c[dir + 4..dir + 8].copy_from_slice(&0x10_0000u32.to_le_bytes());
        assert!(matches!(
            authenticode_sha384(&c),
            Err(PeError::BadCertTable { .. })
        ));
        // Huge e_lfanew.
        let mut c = img;
        c[0x3c..0x40].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            authenticode_sha384(&c),
            Err(PeError::NoPeSignature(u32::MAX))
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let img = build_pe(&[9; 8]);
        for cut in 0..img.len() {
            let r = authenticode_sha384(&img[..cut]);
            // Cutting into headers or sections truncates them; cutting into the trailing data
            // or certificate may still leave a hashable (different) image.
            if cut < 0x400 {
                assert!(r.is_err(), "cut at {cut} accepted");
            }
        }
    }

    /// Deterministic random tampering of header bytes: every outcome is Ok or Err, never a
    /// panic, and never an unbounded allocation.
    #[test]
    fn random_header_tampering_never_panics() {
        let base = build_pe(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..5000 {
            let mut img = base.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x % 0x200) as usize;
                img[at] = (x >> 32) as u8;
            }
            let _ = authenticode_sha384(&img);
        }
    }
}
