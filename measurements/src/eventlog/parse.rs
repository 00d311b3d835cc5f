//! Parser for the crypto-agile event log.
//!
//! Invariants enforced here: the log is at most [`MAX_LOG_BYTES`]; it has at most
//! [`MAX_EVENTS`] events; every size read from the log is checked against both a fixed limit and
//! the bytes actually left before anything is allocated; every event that is not
//! `EV_NO_ACTION` targets RTMR0-3 and carries a SHA-384 digest; only padding follows the last
//! event.

use super::reader::Reader;
use super::types::{known_digest_size, EV_NO_ACTION, TPM_ALG_SHA384};
use super::{
    AlgorithmSize, EventDigest, EventLog, EventLogError, LogEvent, SpecIdHeader, MAX_ALGORITHMS,
    MAX_DIGEST_SIZE, MAX_EVENTS, MAX_EVENT_DATA, MAX_LOG_BYTES,
};
use crate::register::Rtmr;

/// The signature that opens `TCG_EfiSpecIDEvent` for crypto-agile logs.
const SPEC_ID_SIGNATURE: &[u8; 16] = b"Spec ID Event03\0";

/// Parses a whole event log (the contents of `/sys/firmware/acpi/tables/data/CCEL`).
pub fn parse(data: &[u8]) -> Result<EventLog, EventLogError> {
    if data.len() > MAX_LOG_BYTES {
        return Err(EventLogError::LogTooLarge {
            size: data.len(),
            max: MAX_LOG_BYTES,
        });
    }
    if data.is_empty() {
        return Err(EventLogError::Empty);
    }
    let mut r = Reader::new(data);
    let spec_id = parse_header(&mut r)?;

    let mut events = Vec::new();
    loop {
        let offset = r.offset();
        let rest = r.remaining();
        if at_end(rest) {
            if let Some(pos) = rest.iter().position(|&b| b != 0xFF && b != 0x00) {
                return Err(EventLogError::TrailingData {
                    offset: offset + pos,
                    len: rest.len() - pos,
                });
            }
            return Ok(EventLog {
                spec_id,
                events,
                end_offset: offset,
                padding_len: rest.len(),
            });
        }
        if events.len() >= MAX_EVENTS {
            return Err(EventLogError::TooManyEvents {
                offset,
                max: MAX_EVENTS,
            });
        }
        let index = events.len() + 1;
        events.push(parse_event(&mut r, &spec_id, index)?);
    }
}

/// The log ends where no bytes are left or where the next event header (MR index and event
/// type) is all 0xFF or all zeroes: the padding of the unused log area.
fn at_end(rest: &[u8]) -> bool {
    match rest.get(..8) {
        None => rest.iter().all(|&b| b == 0xFF) || rest.iter().all(|&b| b == 0),
        Some(head) => head.iter().all(|&b| b == 0xFF) || head.iter().all(|&b| b == 0),
    }
}

fn spec_err(offset: usize, reason: impl Into<String>) -> EventLogError {
    EventLogError::SpecId {
        offset,
        reason: reason.into(),
    }
}

/// Parses the SHA-1 format `TCG_PCClientPCREvent` carrying the spec ID event.
fn parse_header(r: &mut Reader<'_>) -> Result<SpecIdHeader, EventLogError> {
    let start = r.offset();
    let _mr_index = r.u32("spec ID header MR index")?;
    let event_type = r.u32("spec ID header event type")?;
    if event_type != EV_NO_ACTION {
        return Err(spec_err(
            start + 4,
            format!("event type is 0x{event_type:x}, expected EV_NO_ACTION (3)"),
        ));
    }
    let digest_at = r.offset();
    let digest = r.bytes(20, "spec ID header SHA-1 digest")?;
    if digest.iter().any(|&b| b != 0) {
        return Err(spec_err(digest_at, "SHA-1 digest field is not zero"));
    }
    let size_at = r.offset();
    let size = r.u32("spec ID header event size")?;
    if size > MAX_EVENT_DATA {
        return Err(EventLogError::TooLarge {
            offset: size_at,
            index: 0,
            field: "event size",
            value: size.into(),
            max: MAX_EVENT_DATA.into(),
        });
    }
    let data_at = r.offset();
    let data = r.bytes(size as usize, "spec ID event data")?;
    parse_spec_id(data, data_at)
}

/// Parses `TCG_EfiSpecIDEvent` from the header's event data, which must be consumed exactly.
/// `base` is the data's offset in the log, so errors carry absolute offsets.
fn parse_spec_id(data: &[u8], base: usize) -> Result<SpecIdHeader, EventLogError> {
    let abs = |e: EventLogError| match e {
        EventLogError::Truncated {
            offset,
            field,
            needed,
            available,
        } => EventLogError::Truncated {
            offset: offset + base,
            field,
            needed,
            available,
        },
        other => other,
    };
    let mut r = Reader::new(data);
    let signature = r.bytes(16, "spec ID signature").map_err(abs)?;
    if signature != SPEC_ID_SIGNATURE {
        return Err(spec_err(
            base,
            format!(
                "signature is {:?}, expected \"Spec ID Event03\"",
                String::from_utf8_lossy(signature)
            ),
        ));
    }
    let platform_class = r.u32("spec ID platform class").map_err(abs)?;
    let spec_version_minor = r.u8("spec ID version minor").map_err(abs)?;
    let spec_version_major = r.u8("spec ID version major").map_err(abs)?;
    let spec_errata = r.u8("spec ID errata").map_err(abs)?;
    let uintn_size = r.u8("spec ID uintn size").map_err(abs)?;
    let count_at = base + r.offset();
    let count = r.u32("spec ID number of algorithms").map_err(abs)?;
    if count == 0 || count > MAX_ALGORITHMS {
        return Err(spec_err(
            count_at,
            format!("number of algorithms is {count}, expected 1..={MAX_ALGORITHMS}"),
        ));
    }
    let mut algorithms: Vec<AlgorithmSize> = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let at = base + r.offset();
        let algorithm_id = r.u16("spec ID algorithm id").map_err(abs)?;
        let digest_size = r.u16("spec ID digest size").map_err(abs)?;
        if let Some(size) = known_digest_size(algorithm_id) {
            if size != digest_size {
                return Err(spec_err(
                    at,
                    format!("algorithm 0x{algorithm_id:04x} has digest size {digest_size}, the registry says {size}"),
                ));
            }
        }
        if digest_size == 0 || digest_size > MAX_DIGEST_SIZE {
            return Err(spec_err(
                at,
                format!("algorithm 0x{algorithm_id:04x} has digest size {digest_size}"),
            ));
        }
        if algorithms.iter().any(|a| a.algorithm_id == algorithm_id) {
            return Err(spec_err(
                at,
                format!("algorithm 0x{algorithm_id:04x} is listed twice"),
            ));
        }
        algorithms.push(AlgorithmSize {
            algorithm_id,
            digest_size,
        });
    }
    if !algorithms.iter().any(|a| a.algorithm_id == TPM_ALG_SHA384) {
        return Err(spec_err(
            base,
            "SHA-384 (0x000c) is not among the log's algorithms",
        ));
    }
    let vendor_size = r.u8("spec ID vendor info size").map_err(abs)?;
    let vendor_info = r
        .bytes(vendor_size.into(), "spec ID vendor info")
        .map_err(abs)?
        .to_vec();
    if !r.remaining().is_empty() {
        return Err(spec_err(
            base + r.offset(),
            format!(
                "{} bytes follow the vendor info inside the spec ID event",
                r.remaining().len()
            ),
        ));
    }
    Ok(SpecIdHeader {
        platform_class,
        spec_version_major,
        spec_version_minor,
        spec_errata,
        uintn_size,
        algorithms,
        vendor_info,
    })
}

/// Parses one `TCG_PCR_EVENT2`.
fn parse_event(
    r: &mut Reader<'_>,
    spec: &SpecIdHeader,
    index: usize,
) -> Result<LogEvent, EventLogError> {
    let offset = r.offset();
    let mr_index = r.u32("event MR index")?;
    let event_type = r.u32("event type")?;
    let count_at = r.offset();
    let count = r.u32("event digest count")?;
    if count as usize > spec.algorithms.len() {
        return Err(EventLogError::TooLarge {
            offset: count_at,
            index,
            field: "digest count",
            value: count.into(),
            max: spec.algorithms.len() as u64,
        });
    }
    let mut digests: Vec<EventDigest> = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let at = r.offset();
        let alg = r.u16("event digest algorithm")?;
        let Some(size) = spec
            .algorithms
            .iter()
            .find(|a| a.algorithm_id == alg)
            .map(|a| a.digest_size)
        else {
            return Err(EventLogError::UnknownAlgorithm {
                offset: at,
                index,
                alg,
            });
        };
        if digests.iter().any(|d| d.algorithm_id == alg) {
            return Err(EventLogError::DuplicateAlgorithm {
                offset: at,
                index,
                alg,
            });
        }
        let digest = r.bytes(size.into(), "event digest")?.to_vec();
        digests.push(EventDigest {
            algorithm_id: alg,
            digest,
        });
    }
    let size_at = r.offset();
    let size = r.u32("event data size")?;
    if size > MAX_EVENT_DATA {
        return Err(EventLogError::TooLarge {
            offset: size_at,
            index,
            field: "event data size",
            value: size.into(),
            max: MAX_EVENT_DATA.into(),
        });
    }
    let data = r.bytes(size as usize, "event data")?.to_vec();

    let sha384 = digests
        .iter()
        .find(|d| d.algorithm_id == TPM_ALG_SHA384)
        .and_then(|d| <[u8; 48]>::try_from(d.digest.as_slice()).ok());
    if event_type != EV_NO_ACTION {
        if Rtmr::from_cc_mr_index(mr_index).is_none() {
            return Err(EventLogError::BadMrIndex {
                offset,
                index,
                mr_index,
            });
        }
        if sha384.is_none() {
            return Err(EventLogError::MissingSha384 { offset, index });
        }
    }
    Ok(LogEvent {
        index,
        offset,
        mr_index,
        event_type,
        digests,
        sha384,
        data,
    })
}
