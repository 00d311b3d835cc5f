//! The append-only log file: framing, checksums, fsync and torn-tail recovery.
//!
//! File layout: the 8-byte magic `COCOONLG`, a u32-LE format version, then records. Each record
//! is a 16-byte header — payload length (u32 LE), CRC-32 (u32 LE) over
//! `length || seq || payload`, sequence number (u64 LE) — followed by the payload.
//!
//! Invariants enforced here:
//! * sequence numbers start at 1 and increase by exactly one per record;
//! * [`LogWriter::append`] returns only after the record is on disk (`fdatasync`);
//! * on open, a record that fails its checks is a *torn tail* only if it is the last thing in
//!   the file — no intact record with the next sequence number follows it within one maximum
//!   record length — and is then truncated away. Anything else is corruption and opening fails:
//!   a bad record is never skipped or misread.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub const MAGIC: &[u8; 8] = b"COCOONLG";
pub const VERSION: u32 = 1;
pub const FILE_HEADER_LEN: u64 = 12;
pub const RECORD_HEADER_LEN: usize = 16;
/// Largest payload accepted, in bytes (records are small JSON objects).
pub const MAX_PAYLOAD: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("ledger {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("ledger {path} is not a cocoon ledger: {reason}")]
    BadHeader { path: PathBuf, reason: String },
    #[error("ledger {path} is corrupt at byte {offset} (record seq {seq}): {reason}; a valid record follows, so this is not a torn tail")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        seq: u64,
        reason: String,
    },
    #[error("ledger record of {len} bytes exceeds the {MAX_PAYLOAD}-byte limit")]
    TooLarge { len: usize },
}

/// Every intact record as `(seq, payload)`, in order.
pub type Records = Vec<(u64, Vec<u8>)>;

/// What [`LogWriter::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes of a torn last record that were truncated away (0 when the file was clean).
    pub truncated_bytes: u64,
    /// Why the tail was considered torn.
    pub torn_reason: Option<String>,
}

/// An open ledger file positioned for appending.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    file: File,
    len: u64,
    next_seq: u64,
}

fn crc(len: u32, seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Frames one record.
pub fn encode_record(seq: u64, payload: &[u8]) -> Result<Vec<u8>, LogError> {
    if payload.len() > MAX_PAYLOAD || payload.is_empty() {
        return Err(LogError::TooLarge { len: payload.len() });
    }
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc(len, seq, payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Result of checking the bytes at one offset.
enum Frame<'a> {
    Ok { payload: &'a [u8], total: usize },
    Bad(String),
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)?.try_into().ok().map(u32::from_le_bytes)
}

fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)?.try_into().ok().map(u64::from_le_bytes)
}

fn check_frame(buf: &[u8], expected_seq: u64) -> Frame<'_> {
    let (Some(len), Some(sum), Some(seq)) = (read_u32(buf, 0), read_u32(buf, 4), read_u64(buf, 8))
    else {
        return Frame::Bad(format!(
            "only {} bytes left, header needs {RECORD_HEADER_LEN}",
            buf.len()
        ));
    };
    let n = len as usize;
    if n == 0 || n > MAX_PAYLOAD {
        return Frame::Bad(format!("implausible payload length {len}"));
    }
    let Some(payload) = buf.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + n) else {
        return Frame::Bad(format!(
            "payload of {n} bytes runs past the end of the file ({} bytes left)",
            buf.len() - RECORD_HEADER_LEN
        ));
    };
    if crc(len, seq, payload) != sum {
        return Frame::Bad("checksum mismatch".into());
    }
    if seq != expected_seq {
        return Frame::Bad(format!("sequence number {seq}, expected {expected_seq}"));
    }
    Frame::Ok {
        payload,
        total: RECORD_HEADER_LEN + n,
    }
}

impl LogWriter {
    /// Opens (creating if missing) the ledger at `path`, returns the writer and every intact
    /// record's `(seq, payload)` in order. A torn tail is truncated and reported.
    pub fn open(path: &Path) -> Result<(LogWriter, Records, Recovery), LogError> {
        let io_err = |op, source| LogError::Io {
            path: path.to_path_buf(),
            op,
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io_err("open", e))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).map_err(|e| io_err("read", e))?;

        if buf.is_empty() {
            let mut header = Vec::with_capacity(FILE_HEADER_LEN as usize);
            header.extend_from_slice(MAGIC);
            header.extend_from_slice(&VERSION.to_le_bytes());
            file.write_all(&header)
                .map_err(|e| io_err("write header", e))?;
            file.sync_all().map_err(|e| io_err("fsync", e))?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| io_err("fsync directory", e))?;
            }
            let w = LogWriter {
                path: path.to_path_buf(),
                file,
                len: FILE_HEADER_LEN,
                next_seq: 1,
            };
            return Ok((
                w,
                Vec::new(),
                Recovery {
                    truncated_bytes: 0,
                    torn_reason: None,
                },
            ));
        }
        if buf.len() < FILE_HEADER_LEN as usize || &buf[..8] != MAGIC {
            return Err(LogError::BadHeader {
                path: path.to_path_buf(),
                reason: "missing COCOONLG magic".into(),
            });
        }
        let version = read_u32(&buf, 8).unwrap_or(0);
        if version != VERSION {
            return Err(LogError::BadHeader {
                path: path.to_path_buf(),
                reason: format!("format version {version}, this build reads {VERSION}"),
            });
        }

        let mut records = Vec::new();
        let mut off = FILE_HEADER_LEN as usize;
        let mut seq = 1u64;
        let mut recovery = Recovery {
            truncated_bytes: 0,
            torn_reason: None,
        };
        while off < buf.len() {
            let rest = &buf[off..];
            match check_frame(rest, seq) {
                Frame::Ok { payload, total } => {
                    records.push((seq, payload.to_vec()));
                    off += total;
                    seq += 1;
                }
                Frame::Bad(reason) => {
                    // A torn write can only damage the final record, which is at most
                    // RECORD_HEADER_LEN + MAX_PAYLOAD bytes long.
                    let window = RECORD_HEADER_LEN + MAX_PAYLOAD;
                    let later_valid = rest.len() > window
                        || (1..rest.len()).any(|i| {
                            matches!(check_frame(&rest[i..], seq + 1), Frame::Ok { .. })
                                || matches!(check_frame(&rest[i..], seq), Frame::Ok { .. })
                        });
                    if later_valid {
                        return Err(LogError::Corrupt {
                            path: path.to_path_buf(),
                            offset: off as u64,
                            seq,
                            reason,
                        });
                    }
                    recovery = Recovery {
                        truncated_bytes: rest.len() as u64,
                        torn_reason: Some(reason),
                    };
                    file.set_len(off as u64)
                        .map_err(|e| io_err("truncate torn tail", e))?;
                    file.sync_all().map_err(|e| io_err("fsync", e))?;
                    break;
                }
            }
        }
        file.seek(SeekFrom::Start(off as u64))
            .map_err(|e| io_err("seek", e))?;
        let w = LogWriter {
            path: path.to_path_buf(),
            file,
            len: off as u64,
            next_seq: seq,
        };
        Ok((w, records, recovery))
    }

    /// The sequence number the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record and waits until it is durable. Returns its sequence number.
    /// On a write error the file is cut back to the last good record, so a failed append
    /// leaves no partial record behind for the next one to follow.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, LogError> {
        let seq = self.next_seq;
        let frame = encode_record(seq, payload)?;
        let res = self
            .file
            .write_all(&frame)
            .and_then(|()| self.file.sync_data());
        if let Err(source) = res {
            let _ = self.file.set_len(self.len);
            let _ = self.file.seek(SeekFrom::Start(self.len));
            return Err(LogError::Io {
                path: self.path.clone(),
                op: "append",
                source,
            });
        }
        self.len += frame.len() as u64;
        self.next_seq += 1;
        Ok(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_n(path: &Path, n: u64) -> u64 {
        let (mut w, recs, _) = LogWriter::open(path).unwrap();
        assert!(recs.is_empty());
        for i in 0..n {
            w.append(format!("{{\"n\":{i}}}").as_bytes()).unwrap();
        }
        w.len
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l");
        write_n(&p, 5);
        let (w, recs, rec) = LogWriter::open(&p).unwrap();
        assert_eq!(recs.len(), 5);
        assert_eq!(recs[4], (5, b"{\"n\":4}".to_vec()));
        assert_eq!(w.next_seq(), 6);
        assert_eq!(rec.truncated_bytes, 0);
    }

    #[test]
    fn every_torn_tail_is_truncated_never_misread() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l");
        let full = write_n(&p, 3);
        let bytes = std::fs::read(&p).unwrap();
        let (_, recs, _) = LogWriter::open(&p).unwrap();
        let last_start = full as usize - (RECORD_HEADER_LEN + recs[2].1.len());
        // Cut the file at every byte inside the last record.
        for cut in last_start..full as usize {
            std::fs::write(&p, &bytes[..cut]).unwrap();
            let (mut w, recs, rec) = LogWriter::open(&p).unwrap();
            assert_eq!(recs.len(), 2, "cut at {cut}");
            assert_eq!(rec.truncated_bytes, (cut - last_start) as u64);
            assert_eq!(std::fs::metadata(&p).unwrap().len(), last_start as u64);
            // The next append continues the sequence cleanly.
            assert_eq!(w.append(b"{}").unwrap(), 3);
        }
        // A zero-filled tail (blocks allocated, data not written) is torn too.
        let mut z = bytes.clone();
        z.extend_from_slice(&[0u8; 40]);
        std::fs::write(&p, &z).unwrap();
        let (_, recs, rec) = LogWriter::open(&p).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(rec.truncated_bytes, 40);
    }

    #[test]
    fn tampered_middle_record_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l");
        write_n(&p, 3);
        let mut bytes = std::fs::read(&p).unwrap();
        let i = FILE_HEADER_LEN as usize + RECORD_HEADER_LEN + 2; // inside record 1's payload
        bytes[i] ^= 0x01;
        std::fs::write(&p, &bytes).unwrap();
        assert!(matches!(
            LogWriter::open(&p),
            Err(LogError::Corrupt { seq: 1, .. })
        ));
        // A tampered last record with nothing after it is indistinguishable from a torn write.
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[i] ^= 0x01;
        let n = bytes.len();
        bytes[n - 1] ^= 0x01;
        std::fs::write(&p, &bytes).unwrap();
        let (_, recs, rec) = LogWriter::open(&p).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(rec.torn_reason.as_deref(), Some("checksum mismatch"));
    }

    #[test]
    fn oversized_and_bad_headers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l");
        let (mut w, _, _) = LogWriter::open(&p).unwrap();
        assert!(matches!(
            w.append(&vec![b'x'; MAX_PAYLOAD + 1]),
            Err(LogError::TooLarge { .. })
        ));
        std::fs::write(&p, b"NOTALEDGERFILE").unwrap();
        assert!(matches!(
            LogWriter::open(&p),
            Err(LogError::BadHeader { .. })
        ));
        std::fs::write(&p, b"COCOONLG\x02\x00\x00\x00").unwrap();
        assert!(matches!(
            LogWriter::open(&p),
            Err(LogError::BadHeader { .. })
        ));
        std::fs::write(&p, b"COC").unwrap();
        assert!(matches!(
            LogWriter::open(&p),
            Err(LogError::BadHeader { .. })
        ));
        // A header claiming a huge payload followed by little data is a torn tail.
        let mut b = Vec::from(&MAGIC[..]);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        b.extend_from_slice(&[0u8; 20]);
        std::fs::write(&p, &b).unwrap();
        let (_, recs, rec) = LogWriter::open(&p).unwrap();
        assert!(recs.is_empty());
        assert_eq!(rec.truncated_bytes, 24);
    }
}
