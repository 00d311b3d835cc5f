//! Parses the capture guest's console (QEMU's serial output) in the line format of
//! [`cocoon_acpi_capture_init::wire`]: everything before a line's `@@` marker, and every line
//! without one, is console noise (firmware, kernel) and ignored; the records must come in
//! order: `begin`, per file `file NAME SIZE SHA256`, `b64 DATA`..., `end NAME`, then `done 3`.
//!
//! Invariants (the console is untrusted): a line is kept to at most [`MAX_LINE_BYTES`] bytes
//! ([`LineSplitter`]); a file's data never grows past its declared size, which is at most
//! [`MAX_FILE_BYTES`]; only the three [`CAPTURED_FILES`], each once; a file is accepted only
//! when its size and SHA-256 match its header; nothing panics on any input.

use base64::Engine;
use cocoon_acpi_capture_init::wire::{B64, BASE64, BEGIN, DONE, END, ERROR, FILE, MARK};
use cocoon_acpi_capture_init::{CAPTURED_FILES, MAX_FILE_BYTES};
use sha2::{Digest, Sha256};

/// Longest console line kept; longer lines are cut (and refused if they carry a record).
pub const MAX_LINE_BYTES: usize = 4096;
/// Longest guest error message reported.
const MAX_MESSAGE_CHARS: usize = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SerialError {
    #[error("console line {line}: {what}")]
    Protocol { line: usize, what: String },
    #[error("console line {line}: {name}: a data line is not base64")]
    BadBase64 { line: usize, name: String },
    #[error("console line {line}: {name} is declared as {size} bytes, more than the {MAX_FILE_BYTES}-byte limit")]
    Oversized {
        line: usize,
        name: String,
        size: u64,
    },
    #[error("console line {line}: {name}: {got} bytes of data, the header declared {declared}")]
    SizeMismatch {
        line: usize,
        name: String,
        got: u64,
        declared: u64,
    },
    #[error(
        "console line {line}: {name}: data has SHA-256 {actual}, the header declared {declared}"
    )]
    ShaMismatch {
        line: usize,
        name: String,
        actual: String,
        declared: String,
    },
    #[error("the capture guest failed (console line {line}): {message}")]
    Guest { line: usize, message: String },
    #[error("the console ended {what}")]
    Incomplete { what: String },
}

/// One captured file, size and SHA-256 checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedFile {
    pub name: &'static str,
    pub data: Vec<u8>,
    pub sha256: [u8; 32],
}

/// What a line did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Nothing,
    Started,
    /// A file was received completely: name and size.
    File(&'static str, usize),
    /// The `done` line: every file is there.
    Done,
}

#[derive(Debug)]
enum State {
    WaitingForBegin,
    BetweenFiles,
    InFile {
        name: &'static str,
        size: u64,
        sha256: [u8; 32],
        data: Vec<u8>,
    },
    Done,
}

/// The console parser: feed it lines, then [`Parser::finish`].
#[derive(Debug)]
pub struct Parser {
    state: State,
    line: usize,
    files: Vec<CapturedFile>,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

/// Control characters escaped, length capped: guest text is shown on the operator's terminal.
fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_MESSAGE_CHARS)
        .flat_map(|c| {
            if c.is_control() {
                c.escape_unicode().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if s.chars().count() > MAX_MESSAGE_CHARS {
        out.push_str("...");
    }
    out
}

fn known_name(name: &str) -> Option<&'static str> {
    CAPTURED_FILES.iter().copied().find(|n| *n == name)
}

impl Parser {
    pub fn new() -> Self {
        Parser {
            state: State::WaitingForBegin,
            line: 0,
            files: Vec::new(),
        }
    }

    fn protocol(&self, what: impl Into<String>) -> SerialError {
        SerialError::Protocol {
            line: self.line,
            what: what.into(),
        }
    }

    /// Feeds one console line (without its newline). `cut` says it was longer than
    /// [`MAX_LINE_BYTES`] and lost its end.
    pub fn push_line(&mut self, raw: &[u8], cut: bool) -> Result<Progress, SerialError> {
        self.line += 1;
        if matches!(self.state, State::Done) {
            return Ok(Progress::Nothing);
        }
        let mark = MARK.as_bytes();
        let Some(at) = raw.windows(mark.len()).position(|w| w == mark) else {
            return Ok(Progress::Nothing);
        };
        if cut {
            return Err(self.protocol(format!("a record line longer than {MAX_LINE_BYTES} bytes")));
        }
        let record = raw.get(at + mark.len()..).unwrap_or_default();
        let record = std::str::from_utf8(record)
            .map_err(|_| self.protocol("a record line that is not UTF-8"))?
            .trim_end_matches(['\r', ' ', '\t']);
        let (keyword, rest) = record.split_once(' ').unwrap_or((record, ""));
        if keyword == ERROR {
            return Err(SerialError::Guest {
                line: self.line,
                message: sanitize(rest),
            });
        }
        if record == BEGIN {
            return match self.state {
                State::WaitingForBegin => {
                    self.state = State::BetweenFiles;
                    Ok(Progress::Started)
                }
                _ => Err(self.protocol("a second begin line (did the guest restart?)")),
            };
        }
        if matches!(self.state, State::WaitingForBegin) {
            return Err(self.protocol(format!(
                "record {:?} before the begin line",
                sanitize(keyword)
            )));
        }
        match keyword {
            FILE => self.file_header(rest),
            B64 => self.data_line(rest),
            END => self.file_end(rest),
            DONE => self.done(rest),
            other => Err(self.protocol(format!("unknown record {:?}", sanitize(other)))),
        }
    }

    fn file_header(&mut self, rest: &str) -> Result<Progress, SerialError> {
        if let State::InFile { name, .. } = &self.state {
            return Err(self.protocol(format!("a file header inside {name}")));
        }
        let fields: Vec<&str> = rest.split(' ').collect();
        let [name, size, sha] = fields.as_slice() else {
            return Err(self.protocol("a file header that is not `file NAME SIZE SHA256`"));
        };
        let name = known_name(name)
            .ok_or_else(|| self.protocol(format!("unexpected file {:?}", sanitize(name))))?;
        if self.files.iter().any(|f| f.name == name) {
            return Err(self.protocol(format!("{name} sent twice")));
        }
        let size: u64 = size.parse().map_err(|_| {
            self.protocol(format!("{name}: size {:?} is not a number", sanitize(size)))
        })?;
        if size > u64::from(MAX_FILE_BYTES) {
            return Err(SerialError::Oversized {
                line: self.line,
                name: name.to_string(),
                size,
            });
        }
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(sha, &mut sha256)
            .map_err(|_| self.protocol(format!("{name}: SHA-256 is not 64 hex digits")))?;
        self.state = State::InFile {
            name,
            size,
            sha256,
            // size <= MAX_FILE_BYTES (16 MiB).
            data: Vec::with_capacity(size as usize),
        };
        Ok(Progress::Nothing)
    }

    fn data_line(&mut self, rest: &str) -> Result<Progress, SerialError> {
        let line = self.line;
        let State::InFile {
            name, size, data, ..
        } = &mut self.state
        else {
            return Err(self.protocol("a data line outside a file"));
        };
        // A line of at most MAX_LINE_BYTES decodes to less; checked before appending.
        let decoded = BASE64.decode(rest).map_err(|_| SerialError::BadBase64 {
            line,
            name: name.to_string(),
        })?;
        let got = (data.len() + decoded.len()) as u64;
        if got > *size {
            return Err(SerialError::SizeMismatch {
                line,
                name: name.to_string(),
                got,
                declared: *size,
            });
        }
        data.extend_from_slice(&decoded);
        Ok(Progress::Nothing)
    }

    fn file_end(&mut self, rest: &str) -> Result<Progress, SerialError> {
        let line = self.line;
        let state = std::mem::replace(&mut self.state, State::BetweenFiles);
        let State::InFile {
            name,
            size,
            sha256,
            data,
        } = state
        else {
            self.state = state;
            return Err(self.protocol("an end line outside a file"));
        };
        if rest != name {
            return Err(self.protocol(format!("end of {:?} inside {name}", sanitize(rest))));
        }
        if data.len() as u64 != size {
            return Err(SerialError::SizeMismatch {
                line,
                name: name.to_string(),
                got: data.len() as u64,
                declared: size,
            });
        }
        let actual: [u8; 32] = Sha256::digest(&data).into();
        if actual != sha256 {
            return Err(SerialError::ShaMismatch {
                line,
                name: name.to_string(),
                actual: hex::encode(actual),
                declared: hex::encode(sha256),
            });
        }
        let len = data.len();
        self.files.push(CapturedFile { name, data, sha256 });
        Ok(Progress::File(name, len))
    }

    fn missing(&self) -> Vec<&'static str> {
        CAPTURED_FILES
            .iter()
            .copied()
            .filter(|n| !self.files.iter().any(|f| f.name == *n))
            .collect()
    }

    fn done(&mut self, rest: &str) -> Result<Progress, SerialError> {
        if let State::InFile { name, .. } = &self.state {
            return Err(self.protocol(format!("the done line inside {name}")));
        }
        let missing = self.missing();
        if !missing.is_empty() {
            return Err(self.protocol(format!(
                "the done line, but {} never came",
                missing.join(", ")
            )));
        }
        if rest != CAPTURED_FILES.len().to_string() {
            return Err(self.protocol(format!(
                "the done line counts {:?} files, {} were sent",
                sanitize(rest),
                CAPTURED_FILES.len()
            )));
        }
        self.state = State::Done;
        Ok(Progress::Done)
    }

    /// The files in [`CAPTURED_FILES`] order, once the `done` line was seen.
    pub fn finish(self) -> Result<Vec<CapturedFile>, SerialError> {
        let what = match &self.state {
            State::Done => {
                let mut files = self.files;
                files.sort_by_key(|f| CAPTURED_FILES.iter().position(|n| *n == f.name));
                return Ok(files);
            }
            State::WaitingForBegin => {
                "before the capture guest started (no begin line): the firmware or kernel did not reach /init".to_string()
            }
            State::InFile {
                name, size, data, ..
            } => format!(
                "inside {name}, after {} of {size} bytes",
                data.len()
            ),
            State::BetweenFiles => {
                let missing = self.missing();
                if missing.is_empty() {
                    "without the done line".to_string()
                } else {
                    format!("without the done line; missing: {}", missing.join(", "))
                }
            }
        };
        Err(SerialError::Incomplete { what })
    }
}

/// Splits a byte stream into lines of at most [`MAX_LINE_BYTES`] bytes.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
    cut: bool,
}

impl LineSplitter {
    /// Calls `f(line, cut)` for each complete line in `chunk`; stops at the first error.
    pub fn feed<E>(
        &mut self,
        chunk: &[u8],
        mut f: impl FnMut(&[u8], bool) -> Result<(), E>,
    ) -> Result<(), E> {
        for &b in chunk {
            if b == b'\n' {
                let r = f(&self.buf, self.cut);
                self.buf.clear();
                self.cut = false;
                r?;
            } else if self.buf.len() < MAX_LINE_BYTES {
                self.buf.push(b);
            } else {
                self.cut = true;
            }
        }
        Ok(())
    }

    /// The last line when the stream ended without a newline.
    pub fn flush<E>(&mut self, f: impl FnOnce(&[u8], bool) -> Result<(), E>) -> Result<(), E> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = f(&self.buf, self.cut);
        self.buf.clear();
        self.cut = false;
        r
    }
}

/// Parses a whole console transcript (tests, and re-reading a saved console).
pub fn parse_console(bytes: &[u8]) -> Result<Vec<CapturedFile>, SerialError> {
    let mut parser = Parser::new();
    let mut split = LineSplitter::default();
    let mut done = false;
    let mut on_line = |l: &[u8], cut: bool| -> Result<(), SerialError> {
        if !done {
            done = parser.push_line(l, cut)? == Progress::Done;
        }
        Ok(())
    };
    split.feed(bytes, &mut on_line)?;
    split.flush(&mut on_line)?;
    parser.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cocoon_acpi_capture_init::wire;

    fn blobs() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            (
                "etc/table-loader",
                (0..4096u32).map(|i| (i * 7 % 256) as u8).collect(),
            ),
            (
                "etc/acpi/rsdp",
                b"RSD PTR \x01BOCHS \x00\x00\x00\x00\x00".to_vec(),
            ),
            (
                "etc/acpi/tables",
                (0..8192u32).map(|i| (i % 97) as u8).collect(),
            ),
        ]
    }

    /// The guest's output (by the guest's own encoder), CRLF line ends as a tty makes them.
    fn console(files: &[(&str, Vec<u8>)], done: bool) -> Vec<u8> {
        let mut out = Vec::new();
        wire::write_begin(&mut out).unwrap();
        for (n, d) in files {
            wire::write_file(&mut out, n, d).unwrap();
        }
        if done {
            wire::write_done(&mut out, files.len()).unwrap();
        }
        String::from_utf8(out)
            .unwrap()
            .replace('\n', "\r\n")
            .into_bytes()
    }

    fn ok(bytes: &[u8]) -> Vec<CapturedFile> {
        parse_console(bytes).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn round_trip_with_console_noise() {
        let mut c = b"\x1b[2J\x1b[01;01HBdsDxe: loading Boot0001\r\n[    0.000000] Linux version 6.12\r\n\x1b[2J".to_vec();
        c.extend(console(&blobs(), true));
        c.extend(b"[    3.1] reboot: Power down\r\n".as_slice());
        let files = ok(&c);
        assert_eq!(files.len(), 3);
        for (f, (n, d)) in files.iter().zip(blobs()) {
            assert_eq!(f.name, n);
            assert_eq!(f.data, d);
            assert_eq!(f.sha256, <[u8; 32]>::from(Sha256::digest(&d)));
        }
        // Kernel messages between records are ignored too.
        let text = String::from_utf8(console(&blobs(), true)).unwrap();
        let noisy = text.replace("@@end", "[    2.0] random: crng init done\r\n@@end");
        assert_eq!(ok(noisy.as_bytes()), files);
        // Files in another order are returned in the canonical one.
        let mut b = blobs();
        b.reverse();
        assert_eq!(ok(&console(&b, true)), files);
    }

    #[test]
    fn truncated_console_is_incomplete_at_every_cut() {
        let c = console(&blobs(), true);
        // Every line boundary, and some cuts inside lines.
        let mut cuts: Vec<usize> = c
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i + 1)
            .collect();
        cuts.pop(); // the full console
        cuts.extend([0, 5, 100, c.len() / 2, c.len() - 3]);
        for cut in cuts {
            assert!(parse_console(&c[..cut]).is_err(), "cut at {cut} accepted");
        }
        let e = parse_console(&console(&blobs(), false)).unwrap_err();
        assert_eq!(
            e,
            SerialError::Incomplete {
                what: "without the done line".into()
            }
        );
        let e = parse_console(b"BdsDxe: failed to load\r\n").unwrap_err();
        assert!(e.to_string().contains("no begin line"), "{e}");
        let e = parse_console(&console(&blobs()[..1], false)).unwrap_err();
        assert!(
            e.to_string()
                .contains("missing: etc/acpi/rsdp, etc/acpi/tables"),
            "{e}"
        );
    }

    #[test]
    fn tampered_base64_and_data() {
        let text = String::from_utf8(console(&blobs(), true)).unwrap();
        // A character outside the alphabet.
        let bad = text.replacen("@@b64 A", "@@b64 *", 1);
        assert!(matches!(
            parse_console(bad.as_bytes()),
            Err(SerialError::BadBase64 { .. })
        ));
        // A valid base64 line with one character changed: the SHA-256 no longer matches.
        let line = text.lines().nth(2).unwrap().trim_end();
        let mut chars: Vec<char> = line.chars().collect();
        let i = 10;
        chars[i] = if chars[i] == 'B' { 'C' } else { 'B' };
        let flipped: String = chars.into_iter().collect();
        let bad = text.replacen(line, &flipped, 1);
        // Reported at the end line of that file (line 1 begin, 2 header, 3.. data).
        let loader_lines = 4096usize.div_ceil(wire::BYTES_PER_LINE);
        assert_eq!(
            parse_console(bad.as_bytes()).map(|_| ()),
            Err(SerialError::ShaMismatch {
                line: 3 + loader_lines,
                name: "etc/table-loader".into(),
                actual: hex::encode(Sha256::digest({
                    let mut d = blobs()[0].1.clone();
                    let decoded = BASE64.decode(flipped.trim_start_matches("@@b64 ")).unwrap();
                    d[..decoded.len()].copy_from_slice(&decoded);
                    d
                })),
                declared: hex::encode(Sha256::digest(&blobs()[0].1)),
            })
        );
        // A data line dropped: too few bytes.
        let bad = text.replacen(&format!("{line}\r\n"), "", 1);
        assert!(matches!(
            parse_console(bad.as_bytes()),
            Err(SerialError::SizeMismatch { .. })
        ));
        // A data line doubled: more than declared, refused as it arrives.
        let bad = text.replacen(line, &format!("{line}\r\n{line}"), 1);
        let e = parse_console(bad.as_bytes()).unwrap_err();
        assert!(matches!(e, SerialError::SizeMismatch { got, declared: 4096, .. } if got > 4096));
    }

    #[test]
    fn wrong_sha_and_sizes_in_headers() {
        let text = String::from_utf8(console(&blobs(), true)).unwrap();
        let header = text
            .lines()
            .find(|l| l.starts_with("@@file etc/acpi/rsdp"))
            .unwrap()
            .trim_end();
        let sha = header.rsplit(' ').next().unwrap();
        let bad = text.replacen(sha, &"0".repeat(64), 1);
        let e = parse_console(bad.as_bytes()).unwrap_err();
        assert!(
            matches!(&e, SerialError::ShaMismatch { name, .. } if name == "etc/acpi/rsdp"),
            "{e}"
        );
        let bad = text.replacen(sha, "xyz", 1);
        assert!(parse_console(bad.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("64 hex digits"));
        let bad = text.replacen("@@file etc/acpi/rsdp 20 ", "@@file etc/acpi/rsdp 21 ", 1);
        assert!(matches!(
            parse_console(bad.as_bytes()),
            Err(SerialError::SizeMismatch {
                got: 20,
                declared: 21,
                ..
            })
        ));
    }

    #[test]
    fn oversized_files_and_lines() {
        let big = u64::from(MAX_FILE_BYTES) + 1;
        let c = format!(
            "@@{BEGIN}\n@@file etc/acpi/tables {big} {}\n",
            "0".repeat(64)
        );
        assert!(matches!(
            parse_console(c.as_bytes()),
            Err(SerialError::Oversized { size, .. }) if size == big
        ));
        let c = format!(
            "@@{BEGIN}\n@@file etc/acpi/tables 99999999999999999999999 {}\n",
            "0".repeat(64)
        );
        assert!(parse_console(c.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("not a number"));
        // A record line beyond the line limit.
        let c = format!("@@{BEGIN}\n@@b64 {}\n", "A".repeat(MAX_LINE_BYTES));
        assert!(parse_console(c.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("longer than"));
        // A huge noise line without a marker is only noise.
        let mut c = vec![b'x'; 10 * MAX_LINE_BYTES];
        c.push(b'\n');
        c.extend(console(&blobs(), true));
        assert_eq!(ok(&c).len(), 3);
    }

    #[test]
    fn protocol_violations() {
        let text = String::from_utf8(console(&blobs(), true)).unwrap();
        let cases = [
            (
                format!("@@file etc/acpi/rsdp 1 {}\n", "0".repeat(64)),
                "before the begin line",
            ),
            (
                text.replacen("etc/acpi/rsdp", "etc/other", 2),
                "unexpected file",
            ),
            (format!("{text}{text}"), ""), // done stops the parse: accepted
            (
                text.replacen("@@end etc/table-loader", "@@end etc/acpi/rsdp", 1),
                "inside etc/table-loader",
            ),
            (text.replacen("@@done 3", "@@done 4", 1), "counts"),
            (text.replacen("@@done 3", "@@bogus", 1), "unknown record"),
            (
                text.replacen("@@end etc/acpi/tables\r\n", "", 1),
                "done line inside",
            ),
            (
                text.replacen("@@file etc/acpi/tables", "@@file etc/table-loader", 1),
                "sent twice",
            ),
        ];
        for (c, needle) in cases {
            match parse_console(c.as_bytes()) {
                Ok(_) if needle.is_empty() => {}
                Ok(_) => panic!("accepted; expected {needle:?}"),
                Err(e) => assert!(e.to_string().contains(needle), "{e} lacks {needle:?}"),
            }
        }
        // A guest that restarted sends begin again.
        let twice = text.replacen("@@done 3", &format!("@@{BEGIN}"), 1);
        assert!(parse_console(twice.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("second begin"));
    }

    #[test]
    fn guest_errors_are_reported_escaped() {
        let c = format!("@@{BEGIN}\r\n@@error ioperm failed: \x1b[31mno\r\n");
        let e = parse_console(c.as_bytes()).unwrap_err();
        assert_eq!(
            e,
            SerialError::Guest {
                line: 2,
                message: "ioperm failed: \\u{1b}[31mno".into()
            }
        );
    }

    #[test]
    fn splitter_cuts_long_lines() {
        let mut s = LineSplitter::default();
        let mut lines = Vec::new();
        let mut data = vec![b'a'; MAX_LINE_BYTES + 10];
        data.extend(b"\nshort\nrest");
        s.feed(&data[..7], |l: &[u8], c| -> Result<(), ()> {
            lines.push((l.len(), c));
            Ok(())
        })
        .unwrap();
        s.feed(&data[7..], |l: &[u8], c| -> Result<(), ()> {
            lines.push((l.len(), c));
            Ok(())
        })
        .unwrap();
        s.flush(|l: &[u8], c| -> Result<(), ()> {
            lines.push((l.len(), c));
            Ok(())
        })
        .unwrap();
        assert_eq!(lines, [(MAX_LINE_BYTES, true), (5, false), (4, false)]);
    }
}
