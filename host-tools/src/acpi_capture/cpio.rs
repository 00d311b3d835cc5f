//! The capture guest's initramfs: a deterministic cpio "newc" archive built in memory with
//! `dev/` (directory), `dev/console` (character device 5:1, mode 0600, so the kernel can give
//! `/init` a console before any filesystem is mounted), `init` (mode 0755) and the trailer.
//!
//! Invariant: the bytes depend only on the init binary: inode numbers count up from 1, mtime,
//! uid and gid are 0, every header and body is padded to 4 bytes.

/// `S_IFDIR`, `S_IFCHR`, `S_IFREG`.
const S_IFDIR: u32 = 0o040000;
const S_IFCHR: u32 = 0o020000;
const S_IFREG: u32 = 0o100000;
pub const MAGIC: &[u8; 6] = b"070701";
pub const TRAILER: &str = "TRAILER!!!";

struct Entry<'a> {
    name: &'a str,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    data: &'a [u8],
}

fn pad4(out: &mut Vec<u8>) {
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

fn push_entry(out: &mut Vec<u8>, ino: u32, e: &Entry) -> Result<(), String> {
    let size = u32::try_from(e.data.len()).map_err(|_| {
        format!(
            "{}: {} bytes do not fit a cpio newc entry",
            e.name,
            e.data.len()
        )
    })?;
    let namesize = u32::try_from(e.name.len() + 1).map_err(|_| "name too long".to_string())?;
    let fields = [
        ino, e.mode, 0, // uid
        0, // gid
        e.nlink, 0, // mtime
        size, 0, // devmajor
        0, // devminor
        e.rdev.0, e.rdev.1, namesize, 0, // check
    ];
    out.extend_from_slice(MAGIC);
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(e.name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(e.data);
    pad4(out);
    Ok(())
}

/// The initramfs with `init` as `/init`. Fails only for an init of 4 GiB or more.
pub fn initramfs(init: &[u8]) -> Result<Vec<u8>, String> {
    let entries = [
        Entry {
            name: "dev",
            mode: S_IFDIR | 0o755,
            nlink: 2,
            rdev: (0, 0),
            data: &[],
        },
        Entry {
            name: "dev/console",
            mode: S_IFCHR | 0o600,
            nlink: 1,
            rdev: (5, 1),
            data: &[],
        },
        Entry {
            name: "init",
            mode: S_IFREG | 0o755,
            nlink: 1,
            rdev: (0, 0),
            data: init,
        },
        Entry {
            name: TRAILER,
            mode: 0,
            nlink: 1,
            rdev: (0, 0),
            data: &[],
        },
    ];
    let mut out = Vec::with_capacity(init.len() + 512);
    for (i, e) in entries.iter().enumerate() {
        // The trailer conventionally has inode 0.
        let ino = if e.name == TRAILER { 0 } else { i as u32 + 1 };
        push_entry(&mut out, ino, e)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One parsed newc entry: name, mode, rdev, data.
    #[derive(Debug, PartialEq)]
    struct Parsed {
        name: String,
        ino: u32,
        mode: u32,
        uid: u32,
        gid: u32,
        mtime: u32,
        rdev: (u32, u32),
        data: Vec<u8>,
    }

    /// A strict newc reader for the tests (bounds-checked; errors instead of panics).
    fn parse(bytes: &[u8]) -> Result<Vec<Parsed>, String> {
        let mut at = 0usize;
        let mut out = Vec::new();
        loop {
            let head = bytes.get(at..at + 110).ok_or("truncated header")?;
            if &head[..6] != MAGIC {
                return Err(format!("bad magic at {at}"));
            }
            let field = |i: usize| -> Result<u32, String> {
                let s =
                    std::str::from_utf8(&head[6 + 8 * i..14 + 8 * i]).map_err(|e| e.to_string())?;
                u32::from_str_radix(s, 16).map_err(|e| e.to_string())
            };
            let namesize = field(11)? as usize;
            let size = field(6)? as usize;
            let name_at = at + 110;
            let name = bytes
                .get(name_at..name_at + namesize)
                .ok_or("truncated name")?;
            let name = std::str::from_utf8(name.strip_suffix(&[0]).ok_or("name without NUL")?)
                .map_err(|e| e.to_string())?
                .to_string();
            let data_at = (name_at + namesize).next_multiple_of(4);
            let data = bytes
                .get(data_at..data_at + size)
                .ok_or("truncated data")?
                .to_vec();
            at = (data_at + size).next_multiple_of(4);
            let done = name == TRAILER;
            out.push(Parsed {
                name,
                ino: field(0)?,
                mode: field(1)?,
                uid: field(2)?,
                gid: field(3)?,
                mtime: field(5)?,
                rdev: (field(9)?, field(10)?),
                data,
            });
            if done {
                if at != bytes.len() {
                    return Err(format!("{} bytes after the trailer", bytes.len() - at));
                }
                return Ok(out);
            }
        }
    }

    #[test]
    fn archive_parses_back_with_the_expected_entries() {
        let init: Vec<u8> = (0..1001u32).map(|i| (i % 256) as u8).collect();
        let a = initramfs(&init).unwrap();
        assert_eq!(a.len() % 4, 0);
        let e = parse(&a).unwrap();
        let names: Vec<&str> = e.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["dev", "dev/console", "init", TRAILER]);
        assert_eq!(e[0].mode, 0o040755);
        assert_eq!(e[1].mode, 0o020600);
        assert_eq!(e[1].rdev, (5, 1));
        assert_eq!(e[2].mode, 0o100755);
        assert_eq!(e[2].data, init);
        assert_eq!(e.iter().map(|p| p.ino).collect::<Vec<_>>(), [1, 2, 3, 0]);
        assert!(e.iter().all(|p| p.uid == 0 && p.gid == 0 && p.mtime == 0));
        // Deterministic; and a different init changes only the init entry.
        assert_eq!(a, initramfs(&init).unwrap());
        assert_ne!(a, initramfs(b"other").unwrap());
        // Truncation is detected by the reader (so the test above is not vacuous).
        assert!(parse(&a[..a.len() - 4]).is_err());
    }

    /// `cpio -t` (GNU cpio) lists the archive the same way, when installed.
    #[test]
    fn gnu_cpio_lists_it() {
        let a = initramfs(b"\x7fELF fake").unwrap();
        let mut child = match std::process::Command::new("cpio")
            .args(["-t", "-v", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(_) => {
                eprintln!("SKIPPED: cpio is not installed (Debian package cpio)");
                return;
            }
        };
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&a).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].starts_with("drwxr-xr-x") && lines[0].ends_with(" dev"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("crw-------") && lines[1].contains("5,"),
            "{text}"
        );
        assert!(lines[1].ends_with(" dev/console"), "{text}");
        assert!(
            lines[2].starts_with("-rwxr-xr-x") && lines[2].ends_with(" init"),
            "{text}"
        );
    }
}
