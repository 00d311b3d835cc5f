//! The GPU's confidential-computing mode, as NVIDIA's admin tools report it.
//!
//! `nvidia_gpu_tools.py --gpu-bdf=BDF --query-cc-mode` (NVIDIA gpu-admin-tools) works whatever
//! driver the GPU is bound to; `nvidia-smi conf-compute -q` only while it is on the nvidia driver.

use serde::Serialize;

use crate::pci::PciDevice;
use crate::runner::{RunError, Runner};

pub const GPU_TOOLS: &str = "nvidia_gpu_tools.py";
pub const NVIDIA_SMI: &str = "nvidia-smi";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CcMode {
    On,
    Off,
    /// Debug mode: CC protocols run but the GPU is not protected. Not for production.
    Devtools,
}

#[derive(Debug, thiserror::Error)]
pub enum CcQueryError {
    #[error(
        "neither {GPU_TOOLS} nor (with the GPU on the nvidia driver) {NVIDIA_SMI} is installed"
    )]
    ToolMissing,
    #[error("`{tool}` failed: {message}")]
    Failed { tool: &'static str, message: String },
    #[error("`{tool}` printed no CC mode: {output:?}")]
    Unparseable { tool: &'static str, output: String },
}

/// Finds `CC mode is on`, `CC mode: off`, `CC status: ON`, `CC state: DEVTOOLS` (any case).
pub fn parse(output: &str) -> Option<CcMode> {
    for line in output.lines() {
        let lower = line.to_ascii_lowercase();
        for key in ["cc mode", "cc status", "cc state"] {
            let Some(pos) = lower.find(key) else { continue };
            let rest = lower.get(pos + key.len()..).unwrap_or("");
            let rest = rest.trim_start_matches([' ', ':', '=', '\t']);
            let rest = rest.strip_prefix("is ").unwrap_or(rest).trim_start();
            let word: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            match word.as_str() {
                "on" => return Some(CcMode::On),
                "off" => return Some(CcMode::Off),
                "devtools" => return Some(CcMode::Devtools),
                _ => {}
            }
        }
    }
    None
}

/// Asks the installed tool for `gpu`'s CC mode.
pub fn query(runner: &dyn Runner, gpu: &PciDevice) -> Result<CcMode, CcQueryError> {
    let bdf_arg = format!("--gpu-bdf={}", gpu.bdf);
    let (tool, result) = match runner.run(GPU_TOOLS, &[&bdf_arg, "--query-cc-mode"]) {
        Err(RunError::NotFound(_)) if gpu.driver.as_deref() == Some("nvidia") => {
            (NVIDIA_SMI, runner.run(NVIDIA_SMI, &["conf-compute", "-q"]))
        }
        other => (GPU_TOOLS, other),
    };
    let out = match result {
        Ok(out) => out,
        Err(RunError::NotFound(_)) => return Err(CcQueryError::ToolMissing),
        Err(e) => {
            return Err(CcQueryError::Failed {
                tool,
                message: e.to_string(),
            })
        }
    };
    if !out.success {
        return Err(CcQueryError::Failed {
            tool,
            message: out.stderr.trim().to_string(),
        });
    }
    let text = format!("{}\n{}", out.stdout, out.stderr);
    parse(&text).ok_or_else(|| CcQueryError::Unparseable {
        tool,
        output: out.stdout.chars().take(200).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_shapes() {
        assert_eq!(
            parse("2024 INFO GPU 0000:45:00.0 H100 CC mode is on"),
            Some(CcMode::On)
        );
        assert_eq!(parse("CC mode: OFF"), Some(CcMode::Off));
        assert_eq!(parse("CC status: ON\n"), Some(CcMode::On));
        assert_eq!(parse("  CC State : DevTools"), Some(CcMode::Devtools));
        assert_eq!(parse("CC mode is onward"), None);
        assert_eq!(parse("no such thing"), None);
        assert_eq!(parse(""), None);
    }
}
