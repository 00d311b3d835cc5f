//! The TCG2 crypto-agile event log a TD exposes through the ACPI CCEL table.
//!
//! Layout (TCG PC Client Platform Firmware Profile 2.0, section 10; ACPI 6.5, section 5.2.34):
//! the log starts with one `TCG_PCClientPCREvent` in SHA-1 format whose data is the
//! `TCG_EfiSpecIDEvent` ("Spec ID Event03" and the list of digest algorithms and sizes), followed
//! by `TCG_PCR_EVENT2` records. In the CCEL log the "PCR index" field holds the CC measurement
//! register index (1 = RTMR0 .. 4 = RTMR3). The rest of the log area after the last event is
//! padding (0xFF as TDVF initialises it, or zeroes).
//!
//! - [`ccel`]: the ACPI table that locates the log (`/sys/firmware/acpi/tables/CCEL`).
//! - [`parse`](parse()) / [`EventLog`]: the events, with bounds on every count and size.
//! - [`transcript`]: replay per RTMR and comparison with the events we expect.

pub mod ccel;
pub mod describe;
mod parse;
mod reader;
pub mod transcript;
pub mod types;

pub use parse::parse;
pub use transcript::{Expectation, ExpectedEvent, Mismatch, Transcript};

use crate::register::{Digest384, Register, Rtmr};

/// Largest event log accepted, in bytes (TDVF's log area is 64 KiB to a few MiB).
pub const MAX_LOG_BYTES: usize = 16 * 1024 * 1024;
/// Most events accepted in one log (a TDVF boot produces a few dozen).
pub const MAX_EVENTS: usize = 8192;
/// Largest data of one event, in bytes (the largest TDVF events are EFI variables with
/// certificate lists of a few KiB).
pub const MAX_EVENT_DATA: u32 = 1024 * 1024;
/// Most digest algorithms in the spec ID header (the registry defines a handful).
pub const MAX_ALGORITHMS: u32 = 16;
/// Largest digest size accepted for an algorithm the registry does not define.
pub const MAX_DIGEST_SIZE: u16 = 128;

/// Why an event log could not be parsed. Every variant names the byte offset into the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventLogError {
    #[error(
        "byte offset {offset}: truncated {field}: needs {needed} bytes, only {available} left"
    )]
    Truncated {
        offset: usize,
        field: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("event log is {size} bytes, more than the limit of {max} bytes")]
    LogTooLarge { size: usize, max: usize },
    #[error("event log is empty")]
    Empty,
    #[error("byte offset {offset}: spec ID header: {reason}")]
    SpecId { offset: usize, reason: String },
    #[error(
        "byte offset {offset}: event #{index}: {field} is {value}, more than the limit of {max}"
    )]
    TooLarge {
        offset: usize,
        index: usize,
        field: &'static str,
        value: u64,
        max: u64,
    },
    #[error("byte offset {offset}: more than {max} events")]
    TooManyEvents { offset: usize, max: usize },
    #[error(
        "byte offset {offset}: event #{index}: digest algorithm 0x{alg:04x} is not listed in the spec ID header"
    )]
    UnknownAlgorithm {
        offset: usize,
        index: usize,
        alg: u16,
    },
    #[error("byte offset {offset}: event #{index}: digest algorithm 0x{alg:04x} appears twice")]
    DuplicateAlgorithm {
        offset: usize,
        index: usize,
        alg: u16,
    },
    #[error("byte offset {offset}: event #{index}: no SHA-384 digest (algorithm 0x000c)")]
    MissingSha384 { offset: usize, index: usize },
    #[error("byte offset {offset}: event #{index}: MR index {mr_index} is not an RTMR (CC MR index 1..=4)")]
    BadMrIndex {
        offset: usize,
        index: usize,
        mr_index: u32,
    },
    #[error(
        "byte offset {offset}: {len} bytes after the last event are not padding (0xFF or 0x00): \
         a corrupt event header or data after the end of the log"
    )]
    TrailingData { offset: usize, len: usize },
}

/// One algorithm of the spec ID header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AlgorithmSize {
    pub algorithm_id: u16,
    pub digest_size: u16,
}

/// The `TCG_EfiSpecIDEvent` that opens the log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SpecIdHeader {
    pub platform_class: u32,
    pub spec_version_major: u8,
    pub spec_version_minor: u8,
    pub spec_errata: u8,
    pub uintn_size: u8,
    pub algorithms: Vec<AlgorithmSize>,
    #[serde(serialize_with = "crate::manifest::hexser::bytes")]
    pub vendor_info: Vec<u8>,
}

/// One digest of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDigest {
    pub algorithm_id: u16,
    pub digest: Vec<u8>,
}

/// One `TCG_PCR_EVENT2` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Position in the log; the spec ID header is #0, so the first real event is #1.
    pub index: usize,
    /// Byte offset of the record in the log.
    pub offset: usize,
    /// The CC measurement-register index field as written.
    pub mr_index: u32,
    pub event_type: u32,
    pub digests: Vec<EventDigest>,
    /// The SHA-384 digest; always present for events that are extended.
    pub sha384: Option<Digest384>,
    pub data: Vec<u8>,
}

impl LogEvent {
    /// The register this event extends, or `None` for `EV_NO_ACTION` events.
    ///
    /// Parsing guarantees that every other event has a valid RTMR index and a SHA-384 digest.
    pub fn extends(&self) -> Option<(Rtmr, Digest384)> {
        if self.event_type == types::EV_NO_ACTION {
            return None;
        }
        Some((Rtmr::from_cc_mr_index(self.mr_index)?, self.sha384?))
    }
}

/// A parsed event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLog {
    pub spec_id: SpecIdHeader,
    /// Every event after the spec ID header, in log order.
    pub events: Vec<LogEvent>,
    /// Byte offset just past the last event (where padding starts).
    pub end_offset: usize,
    /// Bytes of padding after the last event.
    pub padding_len: usize,
}

impl EventLog {
    /// Replays every extended event into the four RTMRs, in log order.
    pub fn replay(&self) -> [Register; 4] {
        let mut regs = [Register::default(); 4];
        for (rtmr, digest) in self.events.iter().filter_map(LogEvent::extends) {
            regs[rtmr.index()].extend(&digest);
        }
        regs
    }
}
