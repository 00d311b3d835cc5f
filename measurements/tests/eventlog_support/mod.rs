//! An event-log writer for tests, written from the TCG PC Client specification independently of
//! the parser: it only appends little-endian fields.
#![allow(dead_code)]

use sha2::{Digest, Sha384};

pub const EV_NO_ACTION: u32 = 3;
pub const EV_SEPARATOR: u32 = 4;
pub const EV_EVENT_TAG: u32 = 6;
pub const EV_PLATFORM_CONFIG_FLAGS: u32 = 0xA;
pub const EV_EFI_ACTION: u32 = 0x8000_0007;
pub const SHA256: u16 = 0x000B;
pub const SHA384: u16 = 0x000C;

pub fn sha384(b: &[u8]) -> [u8; 48] {
    Sha384::digest(b).into()
}

/// `SHA-384(old || digest)`, spelled out.
pub fn extend(old: [u8; 48], digest: [u8; 48]) -> [u8; 48] {
    let mut buf = old.to_vec();
    buf.extend_from_slice(&digest);
    sha384(&buf)
}

pub struct LogBuilder {
    pub bytes: Vec<u8>,
    /// Byte offset where each event starts (index 0: the spec ID header).
    pub starts: Vec<usize>,
    pub algs: Vec<(u16, u16)>,
}

fn u32le(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}

impl LogBuilder {
    /// A log whose spec ID header lists `algs` as (algorithm id, digest size).
    pub fn new(algs: &[(u16, u16)]) -> Self {
        let mut spec = b"Spec ID Event03\0".to_vec();
        spec.extend_from_slice(&u32le(0)); // platform class
        spec.extend_from_slice(&[0, 2, 0, 2]); // version minor, major, errata, uintn size
        spec.extend_from_slice(&u32le(algs.len() as u32));
        for (id, size) in algs {
            spec.extend_from_slice(&id.to_le_bytes());
            spec.extend_from_slice(&size.to_le_bytes());
        }
        spec.push(0); // vendor info size
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&u32le(0)); // PCR index
        bytes.extend_from_slice(&u32le(EV_NO_ACTION));
        bytes.extend_from_slice(&[0u8; 20]); // SHA-1 digest
        bytes.extend_from_slice(&u32le(spec.len() as u32));
        bytes.extend_from_slice(&spec);
        Self {
            bytes,
            starts: vec![0],
            algs: algs.to_vec(),
        }
    }

    /// The usual TDVF header: SHA-384 only.
    pub fn sha384_only() -> Self {
        Self::new(&[(SHA384, 48)])
    }

    /// Appends a `TCG_PCR_EVENT2` with explicit digests.
    pub fn raw_event(
        &mut self,
        mr_index: u32,
        event_type: u32,
        digests: &[(u16, Vec<u8>)],
        data: &[u8],
    ) -> &mut Self {
        self.starts.push(self.bytes.len());
        self.bytes.extend_from_slice(&u32le(mr_index));
        self.bytes.extend_from_slice(&u32le(event_type));
        self.bytes.extend_from_slice(&u32le(digests.len() as u32));
        for (alg, d) in digests {
            self.bytes.extend_from_slice(&alg.to_le_bytes());
            self.bytes.extend_from_slice(d);
        }
        self.bytes.extend_from_slice(&u32le(data.len() as u32));
        self.bytes.extend_from_slice(data);
        self
    }

    /// Appends an event with a digest for every algorithm of the header: SHA-384 is `digest`,
    /// the others are filler derived from it.
    pub fn event(
        &mut self,
        rtmr: u32,
        event_type: u32,
        digest: [u8; 48],
        data: &[u8],
    ) -> &mut Self {
        let digests: Vec<(u16, Vec<u8>)> = self
            .algs
            .clone()
            .into_iter()
            .map(|(id, size)| {
                let d = if id == SHA384 {
                    digest.to_vec()
                } else {
                    vec![0xA5; size as usize]
                };
                (id, d)
            })
            .collect();
        self.raw_event(rtmr + 1, event_type, &digests, data)
    }

    /// The log followed by `n` bytes of 0xFF padding, as TDVF leaves its log area.
    pub fn padded(&self, n: usize) -> Vec<u8> {
        let mut v = self.bytes.clone();
        v.resize(v.len() + n, 0xFF);
        v
    }
}

/// A CCEL ACPI table (56 bytes) with a correct checksum.
pub fn ccel_table(cc_type: u8, laml: u64, lasa: u64) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"CCEL");
    t.extend_from_slice(&56u32.to_le_bytes());
    t.push(1); // revision
    t.push(0); // checksum, fixed below
    t.extend_from_slice(b"BOCHS ");
    t.extend_from_slice(b"BXPC    ");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"BXPC");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.push(cc_type);
    t.push(0);
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&laml.to_le_bytes());
    t.extend_from_slice(&lasa.to_le_bytes());
    let sum = t.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    t[9] = 0u8.wrapping_sub(sum);
    t
}
