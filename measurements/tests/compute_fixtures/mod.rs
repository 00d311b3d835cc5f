//! Synthetic boot inputs for the `compute` tests, built byte by byte, plus helpers that compute
//! expected digests independently of the library (different code paths, sha2 directly).

#![allow(dead_code)]

use sha2::{Digest, Sha384};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn sha384(b: &[u8]) -> [u8; 48] {
    Sha384::digest(b).into()
}

/// `SHA-384(old || digest)`, written out here rather than taken from the library.
pub fn extend(old: [u8; 48], d: [u8; 48]) -> [u8; 48] {
    let mut v = old.to_vec();
    v.extend_from_slice(&d);
    sha384(&v)
}

fn guid_le(a: u32, b: u16, c: u16, d: [u8; 8]) -> Vec<u8> {
    let mut v = a.to_le_bytes().to_vec();
    v.extend(b.to_le_bytes());
    v.extend(c.to_le_bytes());
    v.extend(d);
    v
}

/// A 256 KiB firmware image with an OVMF GUIDed table and a TDVF descriptor:
/// BFV (measured, 64 KiB at the top of 4 GiB), CFV (16 KiB), TD_HOB and TempMem.
pub fn firmware() -> Vec<u8> {
    let size = 0x4_0000usize;
    let mut fw = vec![0u8; size];
    // CFV data at 0, BFV data at 0x10000.
    for (i, b) in fw[..0x4000].iter_mut().enumerate() {
        *b = (i % 13) as u8;
    }
    for (i, b) in fw[0x1_0000..0x2_0000].iter_mut().enumerate() {
        *b = (i % 241) as u8 ^ 0x5a;
    }
    let d = 0x3_0000usize;
    let sections: [(u32, u32, u64, u64, u32, u32); 4] = [
        (0x1_0000, 0x1_0000, 0xffff_0000, 0x1_0000, 0, 1),
        (0, 0x4000, 0xfffc_0000, 0x4000, 1, 0),
        (0, 0, 0x80_9000, 0x2000, 2, 0),
        (0, 0, 0x80_0000, 0x6000, 3, 0),
    ];
    fw[d..d + 4].copy_from_slice(b"TDVF");
    fw[d + 4..d + 8].copy_from_slice(&(16 + 32 * sections.len() as u32).to_le_bytes());
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
    // GUIDed table: [u32 offset][u16 22][TDX metadata GUID] [u16 40][footer GUID], ending 32
    // bytes before the end of the image.
    let footer_guid = guid_le(
        0x96b5_82de,
        0x1fb2,
        0x45f7,
        [0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d],
    );
    let tdx_guid = guid_le(
        0xe47a_6535,
        0x984a,
        0x4798,
        [0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2],
    );
    let mut table = Vec::new();
    table.extend(((size - d) as u32).to_le_bytes());
    table.extend(22u16.to_le_bytes());
    table.extend(&tdx_guid);
    table.extend(((table.len() + 18) as u16).to_le_bytes());
    table.extend(&footer_guid);
    let start = size - 32 - table.len();
    fw[start..size - 32].copy_from_slice(&table);
    fw
}

/// Offset of the TDVF descriptor in [`firmware`].
pub const FW_DESCRIPTOR: usize = 0x3_0000;

/// A 16 KiB kernel that is both a bzImage (setup header, protocol 2.15, 4 setup sectors) and a
/// PE32+ image (two sections covering the rest of the file, in file order, no certificate).
pub fn kernel() -> Vec<u8> {
    let mut k = vec![0u8; 0x4000];
    for (i, b) in k[0xa00..].iter_mut().enumerate() {
        *b = (i * 31 % 256) as u8;
    }
    k[0..2].copy_from_slice(b"MZ");
    k[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    k[0x80..0x84].copy_from_slice(b"PE\0\0");
    let coff = 0x84;
    k[coff..coff + 2].copy_from_slice(&0x8664u16.to_le_bytes());
    k[coff + 2..coff + 4].copy_from_slice(&2u16.to_le_bytes());
    k[coff + 16..coff + 18].copy_from_slice(&240u16.to_le_bytes());
    let opt = coff + 20;
    k[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
    k[opt + 60..opt + 64].copy_from_slice(&0xa00u32.to_le_bytes()); // SizeOfHeaders
    k[opt + 108..opt + 112].copy_from_slice(&6u32.to_le_bytes()); // NumberOfRvaAndSizes
    let t = opt + 240; // 0x188; two entries end at 0x1d8 < 0x1f1
    k[t + 16..t + 20].copy_from_slice(&0x1600u32.to_le_bytes());
    k[t + 20..t + 24].copy_from_slice(&0xa00u32.to_le_bytes());
    k[t + 40 + 16..t + 40 + 20].copy_from_slice(&0x2000u32.to_le_bytes());
    k[t + 40 + 20..t + 40 + 24].copy_from_slice(&0x2000u32.to_le_bytes());
    // Linux setup header.
    k[0x1f1] = 4;
    k[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    k[0x202..0x206].copy_from_slice(b"HdrS");
    k[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    k[0x211] = 0x01;
    k[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    k[0x236..0x238].copy_from_slice(&0x007fu16.to_le_bytes());
    k
}

/// Authenticode of a PE whose sections tile the file after the headers, computed the other way
/// round from the library: the whole file minus CheckSum, the certificate directory entry and
/// the certificate table.
pub fn authenticode_by_omission(img: &[u8]) -> [u8; 48] {
    let pe = u32::from_le_bytes(img[0x3c..0x40].try_into().unwrap()) as usize;
    let opt = pe + 24;
    let checksum = opt + 64;
    let dir = opt + 112 + 32;
    let cert_at = u32::from_le_bytes(img[dir..dir + 4].try_into().unwrap()) as usize;
    let cert_len = u32::from_le_bytes(img[dir + 4..dir + 8].try_into().unwrap()) as usize;
    let end = if cert_len == 0 { img.len() } else { cert_at };
    let mut h = Sha384::new();
    h.update(&img[..checksum]);
    h.update(&img[checksum + 4..dir]);
    h.update(&img[dir + 8..end]);
    h.finalize().into()
}

/// The load options OVMF passes for `cmdline` (+ initrd), encoded here with `encode_utf16`.
pub fn load_options(cmdline: &str, initrd: bool) -> Vec<u8> {
    let s = if initrd {
        format!("{cmdline} initrd=initrd\0")
    } else {
        format!("{cmdline}\0")
    };
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Writes ACPI blobs shaped like QEMU's into `dir`.
pub fn acpi_dir(dir: &Path) -> PathBuf {
    let d = dir.join("acpi");
    write(&d, "etc/table-loader", &[7u8; 128 * 3]);
    let mut rsdp = b"RSD PTR ".to_vec();
    rsdp.resize(36, 0x11);
    write(&d, "etc/acpi/rsdp", &rsdp);
    write(&d, "etc/acpi/tables", b"FACPxxxxDSDTyyyyAPICzzzz");
    d
}

pub fn cli(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cocoon-measure"))
        .args(args)
        .output()
        .unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
