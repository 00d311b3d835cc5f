//! `keygen`: a new Ed25519 key pair for signing manifests.
//!
//! Writes the private key (64 hex digits of the seed) to `--out` with mode 0600 and the public
//! key (64 hex digits) to `--out` + `.pub`, refusing to overwrite either, and prints the public
//! key on stdout.

use anyhow::{bail, Context};
use clap::Args;
use cocoon_measure::manifest::{encode_key, generate_signing_key};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Private key file to create (mode 0600); the public key goes to FILE.pub. Existing files
    /// are never overwritten.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

fn create_new(path: &Path, mode: u32, data: &[u8]) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).with_context(|| {
        format!(
            "cannot create {} (an existing key is never overwritten)",
            path.display()
        )
    })?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

pub fn run(a: KeygenArgs) -> anyhow::Result<ExitCode> {
    let mut pub_path = a.out.clone().into_os_string();
    pub_path.push(".pub");
    let pub_path = PathBuf::from(pub_path);
    for p in [&a.out, &pub_path] {
        if p.symlink_metadata().is_ok() {
            bail!(
                "{} already exists; refusing to overwrite a key",
                p.display()
            );
        }
    }
    let key = generate_signing_key()?;
    let public = encode_key(&key.verifying_key().to_bytes());
    create_new(&a.out, 0o600, encode_key(&key.to_bytes()).as_bytes())?;
    create_new(&pub_path, 0o644, public.as_bytes())?;
    eprintln!(
        "wrote private key {} (mode 0600) and public key {}",
        a.out.display(),
        pub_path.display()
    );
    print!("{public}");
    Ok(ExitCode::SUCCESS)
}
