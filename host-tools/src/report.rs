//! Readiness report: one line per requirement with its status and, when it is not met, the fix.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// The tool cannot tell (missing permission, module not loaded, probe impossible).
    Unknown,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Unknown => "UNKNOWN",
        }
    }
}

/// One requirement checked on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckLine {
    /// Stable identifier, e.g. `iommu` or `gpu 0000:17:00.0 driver`.
    pub id: String,
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// How to fix it; present whenever the status is not `pass`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl CheckLine {
    pub fn pass(id: impl Into<String>, detail: impl Into<String>) -> Self {
        CheckLine {
            id: id.into(),
            status: Status::Pass,
            detail: detail.into(),
            fix: None,
        }
    }
    pub fn fail(id: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        CheckLine {
            id: id.into(),
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    pub fn unknown(
        id: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        CheckLine {
            id: id.into(),
            status: Status::Unknown,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// True when no line failed: `unknown` lines do not block a worker.
    pub ready: bool,
    pub checks: Vec<CheckLine>,
}

impl Report {
    pub fn new(checks: Vec<CheckLine>) -> Self {
        let ready = checks.iter().all(|c| c.status != Status::Fail);
        Report { ready, checks }
    }

    /// Human-readable text: one line per check, then a verdict.
    pub fn to_text(&self) -> String {
        let width = self.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!(
                "{:<7} {:<width$}  {}",
                c.status.label(),
                c.id,
                c.detail
            ));
            if let Some(fix) = &c.fix {
                out.push_str(" | fix: ");
                out.push_str(fix);
            }
            out.push('\n');
        }
        out.push_str(if self.ready {
            "ready: this host can run a COCOON worker\n"
        } else {
            "not ready: fix the FAIL lines above\n"
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_does_not_block_but_fail_does() {
        let r = Report::new(vec![
            CheckLine::pass("a", "ok"),
            CheckLine::unknown("b", "?", "look"),
        ]);
        assert!(r.ready);
        let r = Report::new(vec![CheckLine::fail("a", "bad", "fix it")]);
        assert!(!r.ready);
        assert!(r.to_text().starts_with("FAIL    a  bad | fix: fix it\n"));
    }
}
