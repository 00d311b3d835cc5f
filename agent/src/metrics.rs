//! Prometheus metrics, rendered in the text exposition format by `GET /metrics`.
//!
//! Counters are monotonic atomics; labelled families keep their label sets in a mutex-guarded
//! map (labels come from a fixed set of endpoint names, status codes and error kinds, never from
//! request content).

use crate::engine::Usage;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const LATENCY_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        if self.counts.len() != LATENCY_BUCKETS.len() {
            self.counts = vec![0; LATENCY_BUCKETS.len()];
        }
        for (bound, c) in LATENCY_BUCKETS.iter().zip(self.counts.iter_mut()) {
            if v <= *bound {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            let c = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

/// A point-in-time copy of the aggregate metrics ([`Metrics::snapshot`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// HTTP requests answered, all endpoints and statuses.
    pub http_requests: u64,
    /// Inference requests that completed.
    pub completed_requests: u64,
    pub cancelled: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub queue_depth: i64,
    pub active_sequences: i64,
}

/// All metrics of one agent process.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    decoded_prompt_tokens: AtomicU64,
    cancelled: AtomicU64,
    queue_depth: AtomicI64,
    active: AtomicI64,
    /// Generated tokens per second over the last decode step, as f64 bits.
    tokens_per_second: AtomicU64,
    ttft: Mutex<Histogram>,
    duration: Mutex<Histogram>,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// One HTTP request finished with `status` on `endpoint` (a fixed route name).
    pub fn request(&self, endpoint: &'static str, status: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((endpoint, status)).or_default() += 1;
        }
    }

    /// One error of `kind` (a fixed identifier such as `invalid_json`, `queue_full`).
    pub fn error(&self, kind: &'static str) {
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(kind).or_default() += 1;
        }
    }

    pub fn queue_depth_add(&self, delta: i64) {
        self.queue_depth.fetch_add(delta, Ordering::Relaxed);
    }

    pub fn set_active_sequences(&self, n: usize) {
        self.active.store(n as i64, Ordering::Relaxed);
    }

    /// A request was abandoned by its client before it finished.
    pub fn cancelled(&self) {
        self.cancelled.fetch_add(1, Ordering::Relaxed);
    }

    pub fn ttft(&self, d: Duration) {
        if let Ok(mut h) = self.ttft.lock() {
            h.observe(d.as_secs_f64());
        }
    }

    /// A request completed with these exact counts after `d` in the server.
    pub fn finished(&self, usage: Usage, d: Duration) {
        self.prompt_tokens
            .fetch_add(u64::from(usage.prompt_tokens), Ordering::Relaxed);
        self.completion_tokens
            .fetch_add(u64::from(usage.completion_tokens), Ordering::Relaxed);
        if let Ok(mut h) = self.duration.lock() {
            h.observe(d.as_secs_f64());
        }
    }

    /// One decode call processed `prompt` prompt tokens and produced `generated` tokens.
    pub fn decode_step(&self, prompt: u64, generated: u64, d: Duration) {
        self.decoded_prompt_tokens
            .fetch_add(prompt, Ordering::Relaxed);
        let secs = d.as_secs_f64();
        if generated > 0 && secs > 0.0 {
            let tps = generated as f64 / secs;
            self.tokens_per_second
                .store(tps.to_bits(), Ordering::Relaxed);
        }
    }

    /// Aggregate values for the host-control status (no labels, nothing per request).
    pub fn snapshot(&self) -> Snapshot {
        let http_requests = self.requests.lock().map(|m| m.values().sum()).unwrap_or(0);
        let completed_requests = self.duration.lock().map(|h| h.count).unwrap_or(0);
        Snapshot {
            http_requests,
            completed_requests,
            cancelled: self.cancelled.load(Ordering::Relaxed),
            prompt_tokens: self.prompt_tokens.load(Ordering::Relaxed),
            completion_tokens: self.completion_tokens.load(Ordering::Relaxed),
            queue_depth: self.queue_depth.load(Ordering::Relaxed),
            active_sequences: self.active.load(Ordering::Relaxed),
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP cocoon_http_requests_total HTTP requests by endpoint and status.\n# TYPE cocoon_http_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((ep, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "cocoon_http_requests_total{{endpoint=\"{ep}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str(
            "# HELP cocoon_errors_total Errors by kind.\n# TYPE cocoon_errors_total counter\n",
        );
        if let Ok(m) = self.errors.lock() {
            for (kind, n) in m.iter() {
                let _ = writeln!(out, "cocoon_errors_total{{kind=\"{kind}\"}} {n}");
            }
        }
        let counters = [
            (
                "cocoon_prompt_tokens_total",
                "Prompt tokens of completed requests.",
                &self.prompt_tokens,
            ),
            (
                "cocoon_completion_tokens_total",
                "Completion tokens of completed requests.",
                &self.completion_tokens,
            ),
            (
                "cocoon_decoded_prompt_tokens_total",
                "Prompt tokens decoded (including abandoned requests).",
                &self.decoded_prompt_tokens,
            ),
            (
                "cocoon_requests_cancelled_total",
                "Requests abandoned by their client.",
                &self.cancelled,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let gauges = [
            (
                "cocoon_queue_depth",
                "Requests waiting for a sequence slot.",
                self.queue_depth.load(Ordering::Relaxed),
            ),
            (
                "cocoon_active_sequences",
                "Sequences being prefilled or generated.",
                self.active.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let tps = f64::from_bits(self.tokens_per_second.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP cocoon_tokens_per_second Generated tokens per second in the last decode step (all sequences).\n# TYPE cocoon_tokens_per_second gauge\ncocoon_tokens_per_second {tps}");
        if let Ok(h) = self.ttft.lock() {
            h.render(
                &mut out,
                "cocoon_time_to_first_token_seconds",
                "From request receipt to the first generated token.",
            );
        }
        if let Ok(h) = self.duration.lock() {
            h.render(
                &mut out,
                "cocoon_request_duration_seconds",
                "From request receipt to the last generated token.",
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_histograms() {
        let m = Metrics::new();
        m.request("chat", 200);
        m.request("chat", 200);
        m.error("invalid_json");
        m.ttft(Duration::from_millis(30));
        m.finished(
            Usage {
                prompt_tokens: 5,
                completion_tokens: 7,
            },
            Duration::from_millis(200),
        );
        let text = m.render();
        assert!(text.contains("cocoon_http_requests_total{endpoint=\"chat\",status=\"200\"} 2"));
        assert!(text.contains("cocoon_errors_total{kind=\"invalid_json\"} 1"));
        assert!(text.contains("cocoon_prompt_tokens_total 5"));
        assert!(text.contains("cocoon_completion_tokens_total 7"));
        assert!(text.contains("cocoon_time_to_first_token_seconds_bucket{le=\"0.025\"} 0"));
        assert!(text.contains("cocoon_time_to_first_token_seconds_bucket{le=\"0.05\"} 1"));
        assert!(text.contains("cocoon_time_to_first_token_seconds_count 1"));
        let snap = m.snapshot();
        assert_eq!(snap.http_requests, 2);
        assert_eq!(snap.completed_requests, 1);
        assert_eq!((snap.prompt_tokens, snap.completion_tokens), (5, 7));
    }
}
