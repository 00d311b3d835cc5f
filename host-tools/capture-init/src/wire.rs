//! The console line format of the capture guest. Every line of the format starts with
//! [`MARK`]; `cocoon-host` ignores every other line (kernel messages, firmware noise):
//!
//! ```text
//! @@cocoon-acpi-capture/v1 begin
//! @@file etc/table-loader 4096 <sha256 of the bytes, 64 lowercase hex>
//! @@b64 <standard base64 with padding, at most 76 characters = 57 bytes>
//! ...
//! @@end etc/table-loader
//! ... (etc/acpi/rsdp, etc/acpi/tables)
//! @@done 3
//! ```
//!
//! On failure the guest prints `@@error <message>` instead and powers off.
//! The base64 alphabet has no `@`, so a marker cannot occur inside a data line.

use std::io::{self, Write};

use base64::Engine;
use sha2::{Digest, Sha256};

pub const MARK: &str = "@@";
pub const BEGIN: &str = "cocoon-acpi-capture/v1 begin";
pub const FILE: &str = "file";
pub const B64: &str = "b64";
pub const END: &str = "end";
pub const DONE: &str = "done";
pub const ERROR: &str = "error";
/// Bytes of data per `b64` line (76 base64 characters).
pub const BYTES_PER_LINE: usize = 57;

/// The data lines' encoding: standard base64 with `=` padding (RFC 4648, section 4).
pub const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub fn write_begin(out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "{MARK}{BEGIN}")
}

/// Writes one file: header with size and SHA-256, data lines, end line.
pub fn write_file(out: &mut impl Write, name: &str, data: &[u8]) -> io::Result<()> {
    let sha = hex::encode(Sha256::digest(data));
    writeln!(out, "{MARK}{FILE} {name} {} {sha}", data.len())?;
    for chunk in data.chunks(BYTES_PER_LINE) {
        writeln!(out, "{MARK}{B64} {}", BASE64.encode(chunk))?;
    }
    writeln!(out, "{MARK}{END} {name}")
}

pub fn write_done(out: &mut impl Write, files: usize) -> io::Result<()> {
    writeln!(out, "{MARK}{DONE} {files}")
}

/// Writes an error line; newlines in `message` are replaced so it stays one line.
pub fn write_error(out: &mut impl Write, message: &str) -> io::Result<()> {
    writeln!(out, "{MARK}{ERROR} {}", message.replace(['\n', '\r'], " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_vectors() {
        // RFC 4648, section 10.
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(BASE64.encode(plain.as_bytes()), enc, "{plain:?}");
        }
        assert_eq!(BASE64.encode([0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn file_lines() {
        let mut out = Vec::new();
        write_file(&mut out, "etc/acpi/rsdp", &[7u8; 60]).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("@@file etc/acpi/rsdp 60 "));
        assert_eq!(lines[0].len(), "@@file etc/acpi/rsdp 60 ".len() + 64);
        assert_eq!(lines[1], format!("@@b64 {}", BASE64.encode([7u8; 57])));
        assert_eq!(lines[2], format!("@@b64 {}", BASE64.encode([7u8; 3])));
        assert_eq!(lines[3], "@@end etc/acpi/rsdp");
        let mut out = Vec::new();
        write_error(&mut out, "a\nb").unwrap();
        assert_eq!(out, b"@@error a b\n");
    }
}
