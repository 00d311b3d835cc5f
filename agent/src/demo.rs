//! `cocoon-agent demo`: the bundled Gemma 3 270M model, served locally, with usage instructions.

use crate::attest::td::TdSelection;
use crate::attest::tls::{ClientAuth, TlsConfig};
use crate::attest::AttestConfig;
use crate::cli::DemoArgs;
use crate::config::ServeConfig;
use crate::integrity;
use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The demo's server configuration, after printing its banner. The returned directory holds
/// the simulated TD's interfaces and must outlive the server.
pub fn prepare(a: DemoArgs) -> Result<(ServeConfig, tempfile::TempDir)> {
    let model = model_path()?;
    eprintln!("cocoon-agent demo: hashing {} ...", model.display());
    let hex = hex::encode(integrity::sha256_file(&model)?);
    let dir = tempfile::Builder::new()
        .prefix("cocoon-demo-simulated-td-")
        .tempdir()
        .context("creating a temporary directory for the simulated TD")?;
    let attest = AttestConfig {
        td: TdSelection::Simulated {
            dir: dir.path().to_path_buf(),
            seed: a.simulated_seed,
            registers: None,
        },
        tls: Some(TlsConfig {
            listen: a.tls_listen,
            cert_lifetime: Duration::from_secs(3600),
            client_auth: ClientAuth::None,
        }),
    };
    let config = a
        .engine
        .into_raw(model, hex.clone(), None, Some(a.listen), attest)
        .validate()?;
    println!(
        "{}",
        instructions(&Banner {
            plain: config.listen,
            tls: a.tls_listen,
            model_id: &config.api.model_id,
            sha256: &hex,
            td_dir: dir.path(),
            seed: a.simulated_seed,
        })
    );
    Ok((config, dir))
}

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

/// What the demo banner describes.
#[derive(Debug)]
pub struct Banner<'a> {
    /// The plain loopback listener.
    pub plain: Option<SocketAddr>,
    /// The RA-TLS listener.
    pub tls: SocketAddr,
    pub model_id: &'a str,
    pub sha256: &'a str,
    /// The simulated TD's directory.
    pub td_dir: &'a Path,
    pub seed: u64,
}

/// The banner printed before the server starts.
pub fn instructions(b: &Banner<'_>) -> String {
    let Banner {
        plain,
        tls,
        model_id,
        sha256,
        td_dir,
        seed,
    } = b;
    let base = match plain {
        Some(addr) => format!("http://{addr}"),
        None => format!("https://{tls}"),
    };
    let td_dir = td_dir.display();
    format!(
        r#"
== cocoon-agent demo ==========================================================
Model:   {model_id} (SHA-256 {sha256})
TD:      SIMULATED (seed {seed}, interfaces in {td_dir}): no TDX hardware, nothing is
         confidential; quotes chain to a mock root that only verifiers told so accept.
RA-TLS:  https://{tls}/v1  (TLS 1.3; certificate = TD quote + RTMR3 events + config)
Plain:   {base}/v1  (HTTP on loopback, for local use only)

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

Over RA-TLS: ordinary TLS clients cannot check the quote, so they must skip verification
(which proves nothing):
  curl -sk https://{tls}/healthz
  openssl s_client -connect {tls} -tls1_3 </dev/null 2>/dev/null | openssl x509 -noout -text
To verify the worker before sending a prompt, put a verifying gateway in front of it
(the simulated-pki files make it trust THIS simulated TD; never use them in production):
  cocoon-agent simulated-pki --seed {seed} --out /tmp/cocoon-sim-pki
  cocoon-measure gateway --upstream {tls} --listen 127.0.0.1:9090 \
    --manifest /tmp/cocoon-sim-pki/manifest.json --pubkey /tmp/cocoon-sim-pki/manifest-key.pub \
    --collateral /tmp/cocoon-sim-pki/collateral.json \
    --trust-simulated --root-ca /tmp/cocoon-sim-pki/root-ca.der
  then use http://127.0.0.1:9090/v1 like the plain URL above.

Payments are off in the demo (requests are free); `serve --billing FILE` turns on prepaid
accounts (docs/payments.md).
The bundled Gemma 3 270M is a base model without a chat template: chat requests use
llama.cpp's built-in "gemma" template (see GET /v1/models), answers are base-model quality.
Metrics: {base}/metrics    Stop: Ctrl-C
================================================================================
"#
    )
}
