//! Replays an event log per RTMR and compares it, event by event, with the events we expect
//! from the release files (from `compute` or from a manifest).
//!
//! Events are matched per register by position: the n-th event the log extends into RTMRk is
//! compared with the n-th expected event of RTMRk. A register is only compared when the
//! expectation *covers* it (lists all its events); the others are replayed and shown.

use super::describe::summarize;
use super::types::event_type_label;
use super::{ccel::CcelTable, EventLog, SpecIdHeader};
use crate::boot::BootMeasurements;
use crate::manifest::hexser;
use crate::register::{Digest384, Event, Register, Rtmr};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One event we expect in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedEvent {
    pub rtmr: Rtmr,
    pub event_type: u32,
    #[serde(with = "hexser::fixed")]
    pub digest: Digest384,
    pub description: String,
    /// The input that determines this event (kernel, cmdline, initrd, acpi, td-hob, cfv, ...).
    pub source: String,
}

impl From<&Event> for ExpectedEvent {
    fn from(e: &Event) -> Self {
        Self {
            rtmr: e.rtmr,
            event_type: e.event_type,
            digest: e.digest,
            description: e.description.clone(),
            source: e.source.to_string(),
        }
    }
}

/// What the log should contain.
///
/// Invariant: for every covered register, `events` lists all of its events in extension order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    pub events: Vec<ExpectedEvent>,
    pub covers: [bool; 4],
    /// Where the expectation came from, for the transcript ("compute", "manifest X shape Y").
    pub origin: String,
}

impl Expectation {
    /// The events of RTMR0-2 that `compute` predicted; RTMR0 is covered only when it was
    /// computed (ACPI tables given).
    pub fn from_boot(m: &BootMeasurements, origin: impl Into<String>) -> Self {
        Self {
            events: m.events.iter().map(ExpectedEvent::from).collect(),
            covers: [m.rtmr0.is_some(), true, true, false],
            origin: origin.into(),
        }
    }

    /// Expected register values: the replay of the expected events, for covered registers.
    pub fn registers(&self) -> [Option<Digest384>; 4] {
        let mut regs = [Register::default(); 4];
        for e in &self.events {
            regs[e.rtmr.index()].extend(&e.digest);
        }
        let mut out = [None; 4];
        for r in Rtmr::ALL {
            if self.covers[r.index()] {
                out[r.index()] = Some(regs[r.index()].value());
            }
        }
        out
    }
}

/// How one log event compares with the expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Digest equals the expected event's.
    Match,
    /// Digest differs from the expected event's.
    Differs,
    /// The register is covered, but no event was expected at this position.
    Unexpected,
    /// The register is not covered by the expectation.
    NotChecked,
    /// `EV_NO_ACTION`: never extended.
    NotExtended,
}

#[derive(Debug, Clone, Serialize)]
pub struct TranscriptEntry {
    /// Position in the log (#1 is the first event after the spec ID header).
    pub log_index: usize,
    pub offset: usize,
    pub mr_index: u32,
    /// The register extended, `None` for `EV_NO_ACTION`.
    pub rtmr: Option<Rtmr>,
    /// 1-based position among the events of that register.
    pub rtmr_event: Option<usize>,
    pub event_type: u32,
    pub event_type_name: String,
    #[serde(with = "hexser::opt_fixed")]
    pub digest: Option<Digest384>,
    pub data: String,
    pub data_len: usize,
    pub expected: Option<ExpectedEvent>,
    pub verdict: Verdict,
}

/// A difference between the log and the expectation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Mismatch {
    /// The n-th event of a register has a different digest than expected.
    Differs {
        rtmr: Rtmr,
        rtmr_event: usize,
        log_index: usize,
        offset: usize,
        expected: ExpectedEvent,
        #[serde(with = "hexser::fixed")]
        actual: Digest384,
        explanation: String,
    },
    /// The log extends a register more often than expected.
    Unexpected {
        rtmr: Rtmr,
        rtmr_event: usize,
        log_index: usize,
        offset: usize,
        event_type: u32,
        #[serde(with = "hexser::fixed")]
        actual: Digest384,
    },
    /// The log ends a register's events before the expected ones are all seen.
    Missing {
        rtmr: Rtmr,
        rtmr_event: usize,
        expected: ExpectedEvent,
        explanation: String,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Differs { rtmr, rtmr_event, log_index, offset, expected, actual, explanation } => write!(
                f,
                "{rtmr} event #{rtmr_event} differs: expected {} {:?} digest {}, log has {} \
                 (log event #{log_index} at byte offset {offset}): {explanation}",
                expected.source,
                expected.description,
                hex::encode(expected.digest),
                hex::encode(actual),
            ),
            Mismatch::Unexpected { rtmr, rtmr_event, log_index, offset, event_type, actual } => write!(
                f,
                "{rtmr} event #{rtmr_event} was not expected: the log has {} digest {} \
                 (log event #{log_index} at byte offset {offset}) after all expected {rtmr} events: \
                 the boot measured something the release files do not account for",
                event_type_label(*event_type),
                hex::encode(actual),
            ),
            Mismatch::Missing { rtmr, rtmr_event, expected, explanation } => write!(
                f,
                "{rtmr} event #{rtmr_event} is missing: expected {} {:?} digest {}, the log has no more \
                 {rtmr} events: {explanation}",
                expected.source,
                expected.description,
                hex::encode(expected.digest),
            ),
        }
    }
}

/// What a difference in an event from `source` means, in words.
pub fn explain_source(source: &str) -> String {
    match source {
        "kernel" => "the kernel image differs".into(),
        "cmdline" => "the kernel command line differs".into(),
        "initrd" => "the initrd differs (or an initrd was given to only one side)".into(),
        "acpi" => "the ACPI tables differ: another VM shape (vCPUs, memory, GPUs) or QEMU version".into(),
        "td-hob" => "the TD HOB differs: the memory layout of the VM shape differs".into(),
        "cfv" => "the firmware configuration volume (UEFI variables, Secure Boot keys) differs".into(),
        "firmware" => "the firmware (TDVF/OVMF build) or its boot path differs".into(),
        "config" => {
            "the firmware's UEFI configuration differs (Secure Boot variables, boot order or boot entries)".into()
        }
        other => format!("the input {other:?} differs"),
    }
}

/// One register after replay, with the value expected for it when known.
#[derive(Debug, Clone, Serialize)]
pub struct RegisterCheck {
    pub rtmr: Rtmr,
    pub events: usize,
    #[serde(with = "hexser::fixed")]
    pub replayed: Digest384,
    #[serde(with = "hexser::opt_fixed")]
    pub expected: Option<Digest384>,
}

impl RegisterCheck {
    pub fn matches(&self) -> Option<bool> {
        self.expected.map(|e| e == self.replayed)
    }
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Transcript {
    pub spec_id: SpecIdHeader,
    pub ccel: Option<CcelTable>,
    pub expectation: Option<String>,
    pub entries: Vec<TranscriptEntry>,
    pub registers: Vec<RegisterCheck>,
    /// Every difference, in log order; differences of missing events come last.
    pub mismatches: Vec<Mismatch>,
    pub end_offset: usize,
    pub padding_len: usize,
}

impl Transcript {
    /// Replays `log` and compares it with `expect`.
    pub fn build(log: &EventLog, ccel: Option<CcelTable>, expect: Option<&Expectation>) -> Self {
        let covers = expect.map_or([false; 4], |e| e.covers);
        let mut expected_by: [Vec<&ExpectedEvent>; 4] = Default::default();
        for e in expect.map(|x| x.events.as_slice()).unwrap_or_default() {
            expected_by[e.rtmr.index()].push(e);
        }
        let mut counts = [0usize; 4];
        let mut entries = Vec::with_capacity(log.events.len());
        let mut mismatches = Vec::new();

        for ev in &log.events {
            let mut entry = TranscriptEntry {
                log_index: ev.index,
                offset: ev.offset,
                mr_index: ev.mr_index,
                rtmr: None,
                rtmr_event: None,
                event_type: ev.event_type,
                event_type_name: event_type_label(ev.event_type),
                digest: ev.sha384,
                data: summarize(ev.event_type, &ev.data),
                data_len: ev.data.len(),
                expected: None,
                verdict: Verdict::NotExtended,
            };
            if let Some((rtmr, digest)) = ev.extends() {
                let i = rtmr.index();
                counts[i] += 1;
                let n = counts[i];
                entry.rtmr = Some(rtmr);
                entry.rtmr_event = Some(n);
                entry.verdict = if !covers[i] {
                    Verdict::NotChecked
                } else if let Some(exp) = expected_by[i].get(n - 1) {
                    entry.expected = Some((*exp).clone());
                    if exp.digest == digest {
                        Verdict::Match
                    } else {
                        mismatches.push(Mismatch::Differs {
                            rtmr,
                            rtmr_event: n,
                            log_index: ev.index,
                            offset: ev.offset,
                            expected: (*exp).clone(),
                            actual: digest,
                            explanation: explain_source(&exp.source),
                        });
                        Verdict::Differs
                    }
                } else {
                    mismatches.push(Mismatch::Unexpected {
                        rtmr,
                        rtmr_event: n,
                        log_index: ev.index,
                        offset: ev.offset,
                        event_type: ev.event_type,
                        actual: digest,
                    });
                    Verdict::Unexpected
                };
            }
            entries.push(entry);
        }
        for rtmr in Rtmr::ALL {
            let i = rtmr.index();
            if let (true, Some(exp)) = (covers[i], expected_by[i].get(counts[i])) {
                mismatches.push(Mismatch::Missing {
                    rtmr,
                    rtmr_event: counts[i] + 1,
                    expected: (*exp).clone(),
                    explanation: explain_source(&exp.source),
                });
            }
        }

        let replayed = log.replay();
        let expected_regs = expect.map_or([None; 4], Expectation::registers);
        let registers = Rtmr::ALL
            .iter()
            .map(|&rtmr| RegisterCheck {
                rtmr,
                events: counts[rtmr.index()],
                replayed: replayed[rtmr.index()].value(),
                expected: expected_regs[rtmr.index()],
            })
            .collect();
        Self {
            spec_id: log.spec_id.clone(),
            ccel,
            expectation: expect.map(|e| e.origin.clone()),
            entries,
            registers,
            mismatches,
            end_offset: log.end_offset,
            padding_len: log.padding_len,
        }
    }

    /// The first difference in log order, if any.
    pub fn first_mismatch(&self) -> Option<&Mismatch> {
        self.mismatches.first()
    }

    /// True when an expectation was given and every covered register matches it event by event.
    pub fn matches(&self) -> bool {
        self.expectation.is_some()
            && self.mismatches.is_empty()
            && self.registers.iter().all(|r| r.matches() != Some(false))
    }

    /// Replayed register values, RTMR0..RTMR3.
    pub fn replayed(&self) -> [Digest384; 4] {
        let mut out = [[0u8; 48]; 4];
        for r in &self.registers {
            out[r.rtmr.index()] = r.replayed;
        }
        out
    }
}

fn short(d: &Digest384) -> String {
    hex::encode(d)
}

impl fmt::Display for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algs: Vec<String> = self
            .spec_id
            .algorithms
            .iter()
            .map(|a| format!("0x{:04x}/{}", a.algorithm_id, a.digest_size))
            .collect();
        writeln!(
            f,
            "event log: spec {}.{} errata {}, algorithms {}, {} events, ends at byte {} ({} bytes of padding)",
            self.spec_id.spec_version_major,
            self.spec_id.spec_version_minor,
            self.spec_id.spec_errata,
            algs.join(", "),
            self.entries.len(),
            self.end_offset,
            self.padding_len
        )?;
        if let Some(c) = &self.ccel {
            writeln!(
                f,
                "CCEL table: CC type {} (TDX), log area {} bytes at 0x{:x}",
                c.cc_type, c.laml, c.lasa
            )?;
        }
        match &self.expectation {
            Some(o) => writeln!(f, "expected events from: {o}")?,
            None => writeln!(f, "no expectation given: replay only")?,
        }
        writeln!(f)?;
        for e in &self.entries {
            let reg = match (e.rtmr, e.rtmr_event) {
                (Some(r), Some(n)) => format!("{r} #{n}"),
                _ => format!("MR{} (not extended)", e.mr_index),
            };
            writeln!(
                f,
                "[log #{} @{}] {reg} {} ({} bytes): {}",
                e.log_index, e.offset, e.event_type_name, e.data_len, e.data
            )?;
            if let Some(d) = &e.digest {
                writeln!(f, "    log      {}", short(d))?;
            }
            if let Some(x) = &e.expected {
                writeln!(
                    f,
                    "    expected {} {} {:?}",
                    short(&x.digest),
                    x.source,
                    x.description
                )?;
            }
            let verdict = match e.verdict {
                Verdict::Match => "match",
                Verdict::Differs => "DIFFERS",
                Verdict::Unexpected => "UNEXPECTED",
                Verdict::NotChecked => "not checked",
                Verdict::NotExtended => "not extended",
            };
            writeln!(f, "    -> {verdict}")?;
        }
        writeln!(f)?;
        for r in &self.registers {
            let check = match r.matches() {
                Some(true) => "matches expected".to_string(),
                Some(false) => format!(
                    "DIFFERS from expected {}",
                    short(&r.expected.unwrap_or([0; 48]))
                ),
                None => "not checked".to_string(),
            };
            writeln!(
                f,
                "{} = {} ({} events) {check}",
                r.rtmr,
                short(&r.replayed),
                r.events
            )?;
        }
        writeln!(f)?;
        match (self.first_mismatch(), &self.expectation) {
            (Some(m), _) => {
                writeln!(f, "FIRST MISMATCH: {m}")?;
                if self.mismatches.len() > 1 {
                    writeln!(f, "({} differences in all)", self.mismatches.len())?;
                }
            }
            (None, Some(_)) if self.matches() => {
                writeln!(f, "OK: every covered register matches event by event")?
            }
            (None, Some(_)) => writeln!(f, "MISMATCH: a register differs from its expected value")?,
            (None, None) => {}
        }
        Ok(())
    }
}
