//! Running host programs (`qemu-system-x86_64 --version`, `nvidia-smi`, ...) behind a trait, so
//! unit tests substitute canned outputs and integration tests put fake scripts first in `PATH`.

use std::io::{self, Read};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Probes must not hang `check` (a wedged GPU can make `nvidia-smi` block for minutes).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Output beyond this is dropped; probes print a few lines.
pub const MAX_OUTPUT: u64 = 1 << 20;

/// What a finished program printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("`{0}` is not installed (not found in PATH)")]
    NotFound(String),
    #[error("`{program}` did not finish within {seconds} s and was killed")]
    Timeout { program: String, seconds: u64 },
    #[error("running `{program}`: {source}")]
    Io {
        program: String,
        #[source]
        source: io::Error,
    },
}

/// Runs a program to completion and captures its output.
pub trait Runner {
    fn run(&self, program: &str, args: &[&str]) -> Result<CmdOutput, RunError>;
}

/// Runs real programs found through `PATH`, killing them after a timeout.
#[derive(Debug, Clone, Copy)]
pub struct SystemRunner {
    pub timeout: Duration,
}

impl Default for SystemRunner {
    fn default() -> Self {
        SystemRunner {
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(p) = pipe {
            let _ = p.take(MAX_OUTPUT).read_to_end(&mut buf);
        }
        buf
    })
}

impl Runner for SystemRunner {
    fn run(&self, program: &str, args: &[&str]) -> Result<CmdOutput, RunError> {
        let io_err = |source: io::Error| {
            if source.kind() == io::ErrorKind::NotFound {
                RunError::NotFound(program.to_string())
            } else {
                RunError::Io {
                    program: program.to_string(),
                    source,
                }
            }
        };
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_err)?;
        let out = drain(child.stdout.take());
        let err = drain(child.stderr.take());
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().map_err(io_err)? {
                break status;
            }
            if start.elapsed() >= self.timeout {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RunError::Timeout {
                    program: program.to_string(),
                    seconds: self.timeout.as_secs(),
                });
            }
            thread::sleep(Duration::from_millis(20));
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        Ok(CmdOutput {
            success: status.success(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_times_out_and_reports_missing_programs() {
        let r = SystemRunner::default();
        let out = r
            .run("sh", &["-c", "echo hi; echo err >&2; exit 3"])
            .unwrap();
        assert_eq!(
            (out.success, out.stdout.as_str(), out.stderr.as_str()),
            (false, "hi\n", "err\n")
        );
        let quick = SystemRunner {
            timeout: Duration::from_millis(200),
        };
        assert!(matches!(
            quick.run("sleep", &["5"]),
            Err(RunError::Timeout { .. })
        ));
        assert!(matches!(
            r.run("cocoon-no-such-program", &[]),
            Err(RunError::NotFound(_))
        ));
    }
}
