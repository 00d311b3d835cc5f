//! QEMU's fw_cfg device as seen through its legacy I/O ports: a 16-bit selector register
//! (0x510, little-endian) and an 8-bit data register (0x511) that returns the selected item's
//! bytes one after the other.
//!
//! Item 0x0000 is the signature `QEMU`; item 0x0019 is the file directory: a big-endian u32
//! count, then `count` entries of {be32 size, be16 select, be16 reserved, char name[56]}.
//!
//! Invariants: [`parse_directory`] never panics and never allocates more than
//! [`MAX_DIR_ENTRIES`] entries whatever the bytes; [`read_files`] reads at most
//! [`crate::MAX_FILE_BYTES`] per file.

use std::fmt;

pub const PORT_SELECTOR: u16 = 0x510;
pub const PORT_DATA: u16 = 0x511;
pub const KEY_SIGNATURE: u16 = 0x0000;
pub const KEY_FILE_DIR: u16 = 0x0019;
pub const SIGNATURE: [u8; 4] = *b"QEMU";
/// Bytes of one directory entry: size (4), select (2), reserved (2), name (56).
pub const DIR_ENTRY_BYTES: usize = 64;
pub const NAME_BYTES: usize = 56;
/// QEMU allocates 0x20 file slots by default and a few hundred at most in practice; a count
/// above this is a corrupt directory.
pub const MAX_DIR_ENTRIES: u32 = 4096;

/// One entry of the fw_cfg file directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub name: String,
    pub size: u32,
    pub select: u16,
}

/// What is wrong with the fw_cfg device or its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FwCfgError {
    /// Item 0x0000 is not `QEMU`: no fw_cfg device at the legacy ports.
    NoSignature([u8; 4]),
    /// The directory is shorter than its count says.
    Truncated { needed: usize, have: usize },
    /// The directory's count is above [`MAX_DIR_ENTRIES`].
    TooManyEntries(u32),
    /// Entry `index` has no NUL within its 56 name bytes.
    NameNotTerminated { index: usize },
    /// Entry `index`'s name is not UTF-8.
    NameNotUtf8 { index: usize },
    /// The directory has no file of this name.
    Missing(String),
    /// The file is larger than [`crate::MAX_FILE_BYTES`].
    TooLarge { name: String, size: u32 },
}

impl fmt::Display for FwCfgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FwCfgError::NoSignature(s) => write!(
                f,
                "fw_cfg signature is {s:02x?}, not \"QEMU\": no fw_cfg device at I/O port 0x510"
            ),
            FwCfgError::Truncated { needed, have } => write!(
                f,
                "fw_cfg file directory truncated: {have} bytes, its count needs {needed}"
            ),
            FwCfgError::TooManyEntries(n) => write!(
                f,
                "fw_cfg file directory claims {n} entries, more than {MAX_DIR_ENTRIES}"
            ),
            FwCfgError::NameNotTerminated { index } => write!(
                f,
                "fw_cfg file directory entry {index}: name has no NUL within {NAME_BYTES} bytes"
            ),
            FwCfgError::NameNotUtf8 { index } => {
                write!(f, "fw_cfg file directory entry {index}: name is not UTF-8")
            }
            FwCfgError::Missing(name) => write!(f, "fw_cfg has no file {name}"),
            FwCfgError::TooLarge { name, size } => write!(
                f,
                "fw_cfg file {name} is {size} bytes, more than {}",
                crate::MAX_FILE_BYTES
            ),
        }
    }
}

impl std::error::Error for FwCfgError {}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

/// The total length of a directory (count and entries) from its first four bytes.
pub fn directory_len(head: &[u8]) -> Result<usize, FwCfgError> {
    let count = be32(head, 0).ok_or(FwCfgError::Truncated {
        needed: 4,
        have: head.len(),
    })?;
    if count > MAX_DIR_ENTRIES {
        return Err(FwCfgError::TooManyEntries(count));
    }
    // count <= MAX_DIR_ENTRIES, so this cannot overflow.
    Ok(4 + count as usize * DIR_ENTRY_BYTES)
}

/// Parses a whole directory (count and entries). Bytes after the last entry are ignored.
pub fn parse_directory(bytes: &[u8]) -> Result<Vec<FileEntry>, FwCfgError> {
    let needed = directory_len(bytes)?;
    if bytes.len() < needed {
        return Err(FwCfgError::Truncated {
            needed,
            have: bytes.len(),
        });
    }
    let count = (needed - 4) / DIR_ENTRY_BYTES;
    let mut entries = Vec::with_capacity(count);
    for index in 0..count {
        let at = 4 + index * DIR_ENTRY_BYTES;
        let truncated = FwCfgError::Truncated {
            needed,
            have: bytes.len(),
        };
        let size = be32(bytes, at).ok_or(truncated.clone())?;
        let select = be16(bytes, at + 4).ok_or(truncated.clone())?;
        let raw_name = bytes
            .get(at + 8..at + 8 + NAME_BYTES)
            .ok_or(truncated.clone())?;
        let len = raw_name
            .iter()
            .position(|&c| c == 0)
            .ok_or(FwCfgError::NameNotTerminated { index })?;
        let name = std::str::from_utf8(&raw_name[..len])
            .map_err(|_| FwCfgError::NameNotUtf8 { index })?
            .to_string();
        entries.push(FileEntry { name, size, select });
    }
    Ok(entries)
}

/// The entry named `name`.
pub fn find<'a>(entries: &'a [FileEntry], name: &str) -> Result<&'a FileEntry, FwCfgError> {
    entries
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| FwCfgError::Missing(name.to_string()))
}

/// Access to a fw_cfg device: select an item, then read its bytes in order.
pub trait FwCfgPort {
    fn select(&mut self, key: u16);
    /// Fills `buf` with the next bytes of the selected item.
    fn read(&mut self, buf: &mut [u8]);
}

/// Checks the signature, reads the directory and returns the contents of `names`, in order.
pub fn read_files<P: FwCfgPort>(
    port: &mut P,
    names: &[&str],
) -> Result<Vec<(String, Vec<u8>)>, FwCfgError> {
    let mut sig = [0u8; 4];
    port.select(KEY_SIGNATURE);
    port.read(&mut sig);
    if sig != SIGNATURE {
        return Err(FwCfgError::NoSignature(sig));
    }
    port.select(KEY_FILE_DIR);
    let mut dir = vec![0u8; 4];
    port.read(&mut dir);
    let len = directory_len(&dir)?;
    dir.resize(len, 0);
    port.read(&mut dir[4..]);
    let entries = parse_directory(&dir)?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let e = find(&entries, name)?;
        if e.size > crate::MAX_FILE_BYTES {
            return Err(FwCfgError::TooLarge {
                name: e.name.clone(),
                size: e.size,
            });
        }
        let mut data = vec![0u8; e.size as usize];
        port.select(e.select);
        port.read(&mut data);
        out.push((e.name.clone(), data));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &[u8], size: u32, select: u16) -> Vec<u8> {
        let mut e = Vec::with_capacity(DIR_ENTRY_BYTES);
        e.extend(size.to_be_bytes());
        e.extend(select.to_be_bytes());
        e.extend([0, 0]);
        let mut n = [0u8; NAME_BYTES];
        n[..name.len()].copy_from_slice(name);
        e.extend(n);
        e
    }

    fn directory(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut d = (entries.len() as u32).to_be_bytes().to_vec();
        for e in entries {
            d.extend(e);
        }
        d
    }

    #[test]
    fn parses_entries() {
        let d = directory(&[
            entry(b"etc/acpi/rsdp", 36, 0x21),
            entry(b"etc/table-loader", 4096, 0x22),
        ]);
        let e = parse_directory(&d).unwrap();
        assert_eq!(
            e,
            [
                FileEntry {
                    name: "etc/acpi/rsdp".into(),
                    size: 36,
                    select: 0x21
                },
                FileEntry {
                    name: "etc/table-loader".into(),
                    size: 4096,
                    select: 0x22
                }
            ]
        );
        assert_eq!(find(&e, "etc/table-loader").unwrap().select, 0x22);
        assert_eq!(
            find(&e, "etc/acpi/tables"),
            Err(FwCfgError::Missing("etc/acpi/tables".into()))
        );
        assert_eq!(parse_directory(&directory(&[])).unwrap(), []);
    }

    #[test]
    fn truncated_directory_is_refused_at_every_length() {
        let d = directory(&[entry(b"a", 1, 0x20), entry(b"b", 2, 0x21)]);
        for cut in 0..d.len() {
            assert!(
                matches!(
                    parse_directory(&d[..cut]),
                    Err(FwCfgError::Truncated { .. })
                ),
                "cut at {cut}"
            );
        }
        assert!(parse_directory(&d).is_ok());
    }

    #[test]
    fn oversized_count_is_refused_before_allocating() {
        let mut d = u32::MAX.to_be_bytes().to_vec();
        d.extend(entry(b"a", 1, 0x20));
        assert_eq!(
            parse_directory(&d),
            Err(FwCfgError::TooManyEntries(u32::MAX))
        );
        let d = (MAX_DIR_ENTRIES + 1).to_be_bytes();
        assert_eq!(
            directory_len(&d),
            Err(FwCfgError::TooManyEntries(MAX_DIR_ENTRIES + 1))
        );
        assert_eq!(
            directory_len(&MAX_DIR_ENTRIES.to_be_bytes()),
            Ok(4 + MAX_DIR_ENTRIES as usize * 64)
        );
    }

    #[test]
    fn names_must_be_nul_terminated_utf8() {
        let d = directory(&[entry(b"ok", 1, 0x20), entry(&[b'x'; NAME_BYTES], 1, 0x21)]);
        assert_eq!(
            parse_directory(&d),
            Err(FwCfgError::NameNotTerminated { index: 1 })
        );
        let d = directory(&[entry(b"\xff\xfe", 1, 0x20)]);
        assert_eq!(
            parse_directory(&d),
            Err(FwCfgError::NameNotUtf8 { index: 0 })
        );
        // 55 characters and the NUL: the longest name.
        let long = [b'n'; NAME_BYTES - 1];
        let d = directory(&[entry(&long, 1, 0x20)]);
        assert_eq!(parse_directory(&d).unwrap()[0].name.len(), NAME_BYTES - 1);
    }

    /// A synthetic fw_cfg device: items by key, a read cursor, zeros past the end (as QEMU).
    struct FakeDevice {
        items: Vec<(u16, Vec<u8>)>,
        current: Vec<u8>,
        pos: usize,
        reads: usize,
    }

    impl FakeDevice {
        fn new(files: &[(&str, Vec<u8>)], signature: &[u8; 4]) -> Self {
            let mut items = vec![(KEY_SIGNATURE, signature.to_vec())];
            let mut entries = Vec::new();
            for (i, (name, data)) in files.iter().enumerate() {
                let key = 0x20 + i as u16;
                entries.push(entry(name.as_bytes(), data.len() as u32, key));
                items.push((key, data.clone()));
            }
            items.push((KEY_FILE_DIR, directory(&entries)));
            FakeDevice {
                items,
                current: Vec::new(),
                pos: 0,
                reads: 0,
            }
        }
    }

    impl FwCfgPort for FakeDevice {
        fn select(&mut self, key: u16) {
            self.current = self
                .items
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, d)| d.clone())
                .unwrap_or_default();
            self.pos = 0;
        }
        fn read(&mut self, buf: &mut [u8]) {
            for b in buf.iter_mut() {
                *b = self.current.get(self.pos).copied().unwrap_or(0);
                self.pos += 1;
            }
            self.reads += buf.len();
        }
    }

    #[test]
    fn reads_the_named_files_from_a_device() {
        let loader: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        let tables: Vec<u8> = (0..131072u32).map(|i| (i % 13) as u8).collect();
        let mut dev = FakeDevice::new(
            &[
                ("etc/acpi/tables", tables.clone()),
                ("etc/boot-fail-wait", vec![0; 4]),
                ("etc/table-loader", loader.clone()),
                ("etc/acpi/rsdp", b"RSD PTR ".to_vec()),
            ],
            b"QEMU",
        );
        let got = read_files(&mut dev, &crate::CAPTURED_FILES).unwrap();
        assert_eq!(
            got,
            [
                ("etc/table-loader".to_string(), loader),
                ("etc/acpi/rsdp".to_string(), b"RSD PTR ".to_vec()),
                ("etc/acpi/tables".to_string(), tables),
            ]
        );
    }

    #[test]
    fn device_errors() {
        let mut dev = FakeDevice::new(&[("etc/acpi/rsdp", vec![1])], b"QEM\0");
        assert!(matches!(
            read_files(&mut dev, &["etc/acpi/rsdp"]),
            Err(FwCfgError::NoSignature(_))
        ));
        let mut dev = FakeDevice::new(&[("etc/acpi/rsdp", vec![1])], b"QEMU");
        assert_eq!(
            read_files(&mut dev, &crate::CAPTURED_FILES),
            Err(FwCfgError::Missing("etc/table-loader".into()))
        );
        // A directory entry claiming more than the limit is refused before reading it.
        let mut dev = FakeDevice::new(&[("etc/acpi/rsdp", vec![1])], b"QEMU");
        let huge = crate::MAX_FILE_BYTES + 1;
        dev.items.retain(|(k, _)| *k != KEY_FILE_DIR);
        dev.items.push((
            KEY_FILE_DIR,
            directory(&[entry(b"etc/acpi/rsdp", huge, 0x20)]),
        ));
        assert_eq!(
            read_files(&mut dev, &["etc/acpi/rsdp"]),
            Err(FwCfgError::TooLarge {
                name: "etc/acpi/rsdp".into(),
                size: huge
            })
        );
        assert!(dev.reads < 1024, "read {} bytes", dev.reads);
        // A count that is absurd is refused after reading its four bytes.
        let mut dev = FakeDevice::new(&[], b"QEMU");
        dev.items.retain(|(k, _)| *k != KEY_FILE_DIR);
        dev.items
            .push((KEY_FILE_DIR, u32::MAX.to_be_bytes().to_vec()));
        assert_eq!(
            read_files(&mut dev, &["x"]),
            Err(FwCfgError::TooManyEntries(u32::MAX))
        );
    }
}
