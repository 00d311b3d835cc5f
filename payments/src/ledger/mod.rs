//! The durable ledger: an append-only, checksummed log ([`log`]) replayed into
//! [`state::LedgerState`].
//!
//! Why a custom log and not SQLite: the ledger is a pure event log (no queries beyond a
//! replay), the torn-tail rule must be exact and testable byte by byte, and a 16-byte framed
//! record with one `fdatasync` per append is the least that makes each record durable.
//!
//! Invariant: a record is applied to the in-memory state and written + fsynced before the
//! operation that produced it returns. If the write fails the ledger is *poisoned*: every
//! later call fails until the process restarts and replays the file, so memory never runs
//! ahead of disk.

pub mod log;
pub mod record;
pub mod state;

use std::path::Path;

use log::{LogError, LogWriter, Recovery};
use record::Record;
use state::{ApplyError, LedgerState};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("ledger {path}: record {seq} does not decode: {reason}")]
    Decode {
        path: String,
        seq: u64,
        reason: String,
    },
    #[error("ledger {path}: replaying record {seq}: {source}")]
    Replay {
        path: String,
        seq: u64,
        #[source]
        source: ApplyError,
    },
    #[error(transparent)]
    Rejected(#[from] ApplyError),
    #[error("ledger {path}: accounting identity broken after replay: {detail}")]
    Invariant { path: String, detail: String },
    #[error("ledger is poisoned by an earlier write failure; restart to replay it")]
    Poisoned,
}

#[derive(Debug)]
pub struct Ledger {
    log: LogWriter,
    state: LedgerState,
    recovery: Recovery,
    poisoned: bool,
}

impl Ledger {
    /// Opens the ledger file, replays every record, truncates a torn tail, and checks the
    /// accounting identities.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        let (log, records, recovery) = LogWriter::open(path)?;
        let p = path.display().to_string();
        let mut state = LedgerState::default();
        for (seq, payload) in records {
            let rec: Record =
                serde_json::from_slice(&payload).map_err(|e| LedgerError::Decode {
                    path: p.clone(),
                    seq,
                    reason: e.to_string(),
                })?;
            state
                .apply(seq, &rec)
                .map_err(|source| LedgerError::Replay {
                    path: p.clone(),
                    seq,
                    source,
                })?;
        }
        state
            .check()
            .map_err(|detail| LedgerError::Invariant { path: p, detail })?;
        Ok(Ledger {
            log,
            state,
            recovery,
            poisoned: false,
        })
    }

    pub fn state(&self) -> &LedgerState {
        &self.state
    }

    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    pub fn next_seq(&self) -> u64 {
        self.log.next_seq()
    }

    /// Validates `rec` against the state, makes it durable, and applies it. Returns its seq.
    pub fn append(&mut self, rec: &Record) -> Result<u64, LedgerError> {
        if self.poisoned {
            return Err(LedgerError::Poisoned);
        }
        let seq = self.log.next_seq();
        let payload = serde_json::to_vec(rec).map_err(|e| LedgerError::Decode {
            path: self.log.path().display().to_string(),
            seq,
            reason: format!("encoding: {e}"),
        })?;
        // Validate on the real state: `apply` changes nothing when it fails.
        self.state.apply(seq, rec)?;
        if let Err(e) = self.log.append(&payload) {
            self.poisoned = true;
            return Err(e.into());
        }
        Ok(seq)
    }
}
