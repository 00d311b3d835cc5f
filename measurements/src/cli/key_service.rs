//! `cocoon-measure key-service init|pin|serve`: the service secret and the server of
//! [`cocoon_measure::key_release`], wired to the command line.

use super::verifier_args::VerifierArgs;
use anyhow::Context;
use clap::{Args, Subcommand};
use cocoon_measure::key_release::{Service, ServiceSecret};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tokio::net::TcpListener;

/// `cocoon-measure key-service ...`.
#[derive(Subcommand, Debug)]
pub enum KeyServiceCommand {
    /// Create the service secret (mode 0600, never overwriting one) and print the pin: the
    /// SHA-256 of the service's TLS public key, which workers are configured with.
    Init(SecretArgs),
    /// Print the pin of an existing secret.
    Pin(SecretArgs),
    /// Serve data keys to workers whose RA-TLS certificate verifies.
    Serve(Box<ServeArgs>),
}

#[derive(Args, Debug)]
pub struct SecretArgs {
    /// The service secret: 64 hex digits, mode 0600. Every data key and the service's TLS key
    /// are derived from it; losing it loses every worker's data disk.
    #[arg(long, value_name = "FILE")]
    secret: PathBuf,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    secret: SecretArgs,
    /// Address to listen on (TLS 1.3, RA-TLS client certificates required).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: SocketAddr,
    #[command(flatten)]
    verifier: VerifierArgs,
}

fn read_secret(path: &Path) -> anyhow::Result<ServiceSecret> {
    let text = super::manifest::read_limited(path, 1024, "service secret")
        .context("create one with `cocoon-measure key-service init --secret FILE`")?;
    let text = zeroize::Zeroizing::new(String::from_utf8_lossy(&text).into_owned());
    ServiceSecret::from_hex(&text).with_context(|| format!("service secret {}", path.display()))
}

fn create_secret(path: &Path) -> anyhow::Result<ServiceSecret> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let secret = ServiceSecret::generate()?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "cannot create {} (an existing secret is never overwritten)",
                path.display()
            )
        })?;
    f.write_all(secret.to_hex().as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(secret)
}

pub fn run(command: KeyServiceCommand) -> anyhow::Result<ExitCode> {
    let args = match command {
        KeyServiceCommand::Init(a) => {
            let pin = create_secret(&a.secret)?.tls_key()?.spki_sha256;
            eprintln!(
                "cocoon-measure key-service: created {} (mode 0600; back it up: every data \
                 disk's key derives from it). The pin (DATA_KEY_SERVICE_PIN):",
                a.secret.display()
            );
            println!("{}", hex::encode(pin));
            return Ok(ExitCode::SUCCESS);
        }
        KeyServiceCommand::Pin(a) => {
            println!(
                "{}",
                hex::encode(read_secret(&a.secret)?.tls_key()?.spki_sha256)
            );
            return Ok(ExitCode::SUCCESS);
        }
        KeyServiceCommand::Serve(a) => *a,
    };
    let listen = args.listen;
    let secret = read_secret(&args.secret.secret)?;
    let verifier = Arc::new(args.verifier.build()?);
    if args.verifier.trust_simulated {
        eprintln!(
            "cocoon-measure key-service: WARNING: --trust-simulated: simulated workers (no TDX \
             protection at all) get data keys"
        );
    }
    let service = Arc::new(Service::new(secret, verifier)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let local = listener.local_addr().context("local address")?;
        eprintln!(
            "cocoon-measure key-service: listening on {local} (TLS 1.3, RA-TLS clients only); pin {}",
            hex::encode(service.pin())
        );
        service.serve(listener).await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
