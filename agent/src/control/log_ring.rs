//! The agent's recent log lines, kept in memory for `GET /logs` on the host-control endpoint.
//!
//! A [`RingLayer`] sits in the tracing subscriber next to the primary sink (the journal or
//! stderr) and formats every event it admits into one line in a bounded ring.
//!
//! Invariants enforced here:
//! * memory is bounded: at most [`CAPACITY`] lines of at most [`MAX_LINE_BYTES`] bytes each
//!   (longer lines are cut at a character boundary and marked `…[truncated]`);
//! * only the agent's own events at DEBUG or above, and other crates' (hyper, rustls,
//!   llama.cpp) at WARN or above, enter the ring, whatever `RUST_LOG` says, so that a verbose
//!   filter chosen for the journal inside the TD does not widen what the host can read;
//! * the ring holds what the log statements wrote: the agent logs sizes and counts of requests,
//!   never their text (see `crate::logging`), and `tests/control_endpoint.rs` checks that a
//!   prompt never appears here.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Lines kept.
pub const CAPACITY: usize = 1000;
/// Longest line kept, in bytes.
pub const MAX_LINE_BYTES: usize = 1024;
const TRUNCATED: &str = "…[truncated]";

/// A bounded ring of formatted log lines, oldest first.
#[derive(Debug)]
pub struct LogRing {
    inner: Mutex<Ring>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Ring {
    lines: VecDeque<String>,
    /// Lines pushed since start (including those since dropped).
    total: u64,
}

impl LogRing {
    /// An empty ring keeping at most `capacity` lines (at least one).
    pub fn new(capacity: usize) -> LogRing {
        LogRing {
            inner: Mutex::new(Ring::default()),
            capacity: capacity.max(1),
        }
    }

    /// Appends a line, cut to [`MAX_LINE_BYTES`], dropping the oldest when full.
    pub fn push(&self, mut line: String) {
        truncate_line(&mut line);
        // A poisoned lock only means a panic elsewhere while pushing: the deque is consistent.
        let mut ring = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        while ring.lines.len() >= self.capacity {
            ring.lines.pop_front();
        }
        ring.lines.push_back(line);
        ring.total = ring.total.saturating_add(1);
    }

    /// The most recent `n` lines (fewer when the ring holds fewer), oldest first, and the
    /// number of lines logged since start.
    pub fn tail(&self, n: usize) -> (Vec<String>, u64) {
        let ring = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let skip = ring.lines.len().saturating_sub(n);
        (ring.lines.iter().skip(skip).cloned().collect(), ring.total)
    }
}

fn truncate_line(line: &mut String) {
    if line.len() <= MAX_LINE_BYTES {
        return;
    }
    let mut cut = MAX_LINE_BYTES - TRUNCATED.len();
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    line.truncate(cut);
    line.push_str(TRUNCATED);
}

/// The process's ring, fed by [`RingLayer`] once `crate::logging::init` installed it.
pub fn global() -> &'static LogRing {
    static RING: OnceLock<LogRing> = OnceLock::new();
    RING.get_or_init(|| LogRing::new(CAPACITY))
}

/// The tracing layer that feeds [`global`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RingLayer;

/// Whether an event of `target` at `level` enters the ring (see the module invariants).
pub fn admitted(target: &str, level: &Level) -> bool {
    let own = target == "cocoon_agent" || target.starts_with("cocoon_agent::");
    if own {
        *level <= Level::DEBUG
    } else {
        *level <= Level::WARN
    }
}

impl<S: Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        if !admitted(meta.target(), meta.level()) {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut line = format!(
            "{} {:>5} {}: {}",
            rfc3339_utc(SystemTime::now()),
            meta.level(),
            meta.target(),
            fields.message
        );
        line.push_str(&fields.rest);
        global().push(line);
    }
}

/// The event's message and its other fields as ` key=value`.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for `t` (the epoch for times before it).
pub fn rfc3339_utc(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Proleptic Gregorian (year, month, day) of `days` since 1970-01-01 (the usual era-based
/// conversion: 400-year eras of 146097 days, years starting in March).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ring_keeps_the_most_recent_lines_in_order() {
        let r = LogRing::new(3);
        for i in 0..5 {
            r.push(format!("line {i}"));
        }
        assert_eq!(
            r.tail(10),
            (vec!["line 2".into(), "line 3".into(), "line 4".into()], 5)
        );
        assert_eq!(r.tail(1).0, vec!["line 4".to_string()]);
        assert!(r.tail(0).0.is_empty());
    }

    #[test]
    fn long_lines_are_cut_at_a_char_boundary() {
        let r = LogRing::new(2);
        r.push("é".repeat(MAX_LINE_BYTES));
        let (lines, _) = r.tail(1);
        let line = &lines[0];
        assert!(line.len() <= MAX_LINE_BYTES, "{}", line.len());
        assert!(line.ends_with(TRUNCATED));
        r.push("short".into());
        assert_eq!(r.tail(1).0, vec!["short".to_string()]);
    }

    #[test]
    fn only_own_debug_and_foreign_warnings_are_admitted() {
        assert!(admitted("cocoon_agent::server", &Level::DEBUG));
        assert!(admitted("cocoon_agent", &Level::INFO));
        assert!(!admitted("cocoon_agent::api", &Level::TRACE));
        assert!(!admitted("cocoon_agentx", &Level::DEBUG));
        assert!(!admitted("llama_cpp_2", &Level::INFO));
        assert!(admitted("llama_cpp_2", &Level::WARN));
        assert!(!admitted("hyper::proto", &Level::DEBUG));
        assert!(admitted("rustls::server", &Level::ERROR));
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_767_225_600_250);
        assert_eq!(rfc3339_utc(t), "2026-01-01T00:00:00.250Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661);
        assert_eq!(rfc3339_utc(leap), "2000-02-29T01:01:01.000Z");
    }

    #[test]
    fn the_layer_formats_message_and_fields() {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(RingLayer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                prompt_tokens = 12,
                label = "x",
                "ring layer unit test marker"
            );
            tracing::trace!("ring layer trace marker");
        });
        let (lines, _) = global().tail(CAPACITY);
        let line = lines
            .iter()
            .find(|l| l.contains("ring layer unit test marker"))
            .expect("the event is in the ring");
        assert!(
            line.contains(" INFO cocoon_agent::control::log_ring::tests: "),
            "{line}"
        );
        assert!(line.ends_with("marker prompt_tokens=12 label=x"), "{line}");
        assert!(!lines.iter().any(|l| l.contains("ring layer trace marker")));
    }
}
