//! Opening the data disk during `serve` (`--open-data-disk PROGRAM`): after the agent measured
//! itself into RTMR3 and before billing opens its ledger, the agent obtains the disk's LUKS2
//! passphrase and runs PROGRAM (the image's `/usr/lib/cocoon/open-data-disk`) with the 32-byte
//! key on its stdin. See docs/image.md, "Data disk".
//!
//! Invariants enforced here:
//! * the key is asked for only after RTMR3 holds the agent's events, so the key service sees
//!   the measured config (the owner the key belongs to) in the quote-bound certificate;
//! * the key service is accepted only by the pin in the measured config
//!   ([`cocoon_measure::key_release::PinnedServer`]), never by a CA or a name;
//! * the key only ever travels over that TLS connection and the PROGRAM's stdin pipe, and is
//!   never logged; the parsed key is zeroed when dropped (the HTTP body buffer it was parsed
//!   from is not);
//! * an answer other than 200, or a TLS failure on this side (pin mismatch), is final; the
//!   network, the service's TLS alerts (it refused this TD's certificate, perhaps for a passing
//!   reason) and quote generation are retried with backoff until `timeout`, and the last error
//!   is reported.

use crate::attest::evidence;
use crate::attest::measure::Measurement;
use crate::attest::td::Td;
use crate::data_key::{self, DataKey, KeyProvider};
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use cocoon_measure::key_release::{self, PinnedServer, MAX_RESPONSE, PATH};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Lifetime of the RA-TLS certificate made for one key request.
const REQUEST_CERT_LIFETIME: Duration = Duration::from_secs(600);
/// Time one attempt may take (connect, handshake, answer).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest pause between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// `--open-data-disk` and where its key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDiskConfig {
    /// Run with the key on stdin; exit status 0 means the disk is open and mounted.
    pub program: PathBuf,
    pub provider: KeyProvider,
    /// How long to keep trying to reach the key service.
    pub timeout: Duration,
}

/// Why the service did not hand out a key.
#[derive(Debug)]
enum Attempt {
    /// The service answered, and not with a key, or the pin did not match: final.
    Refused(String),
    /// The service could not be reached, refused the certificate, or the exchange broke off:
    /// worth retrying.
    Unreachable(String),
}

/// A TLS error this side raised (the pin did not match, a protocol violation) is final. An
/// alert from the service (it refused this TD's certificate) is retried like a network error:
/// the service may have failed for a passing reason (its collateral source unreachable), and a
/// lasting refusal is reported when the time is up.
fn failed(what: &str, e: &(dyn std::error::Error + 'static)) -> Attempt {
    match cocoon_measure::ratls::tls::tls_error_of(e) {
        Some(t @ rustls::Error::AlertReceived(_)) => {
            Attempt::Unreachable(format!("{what}: TLS: {t}"))
        }
        Some(t) => Attempt::Refused(format!("{what}: TLS: {t}")),
        None => Attempt::Unreachable(format!("{what}: {e}")),
    }
}

async fn request(
    connector: &TlsConnector,
    addr: &str,
) -> Result<zeroize::Zeroizing<[u8; key_release::KEY_LEN]>, Attempt> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| failed("connecting", &e))?;
    let name = rustls::pki_types::ServerName::try_from("cocoon-key-service")
        .map_err(|e| failed("server name", &e))?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| failed("TLS handshake", &e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| failed("HTTP", &e))?;
    tokio::spawn(conn);
    let req = hyper::Request::post(PATH)
        .header(hyper::header::HOST, addr)
        .body(Empty::<Bytes>::new())
        .map_err(|e| failed("request", &e))?;
    // The service checks this TD's certificate when the handshake ends; a refusal arrives
    // here, as its TLS alert.
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| failed("sending the request", &e))?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| failed("reading the answer", &*e))?
        .to_bytes();
    if status != hyper::StatusCode::OK {
        return Err(Attempt::Refused(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    key_release::parse_key_response(&body).map_err(Attempt::Refused)
}

/// The key from the service at `addr` (HOST:PORT) pinned by `pin`, presenting a fresh RA-TLS
/// certificate of this TD.
async fn from_service(
    td: &Arc<Td>,
    measurement: &Arc<Measurement>,
    addr: &str,
    pin: [u8; 32],
    timeout: Duration,
) -> Result<DataKey> {
    let deadline = Instant::now() + timeout;
    let mut backoff = Duration::from_secs(1);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let (td2, m2) = (td.clone(), measurement.clone());
        let issue = tokio::task::spawn_blocking(move || {
            evidence::issue(td2.provider(), &m2, REQUEST_CERT_LIFETIME)
        });
        let issued = match tokio::time::timeout(ATTEMPT_TIMEOUT, issue).await {
            Ok(joined) => joined
                .context("certificate task")?
                .map_err(|e| e.to_string()),
            // A hung quote request keeps its thread; the attempt is abandoned.
            Err(_) => Err(format!("no quote within {} s", ATTEMPT_TIMEOUT.as_secs())),
        };
        let cert = match issued {
            Ok(cert) => cert,
            // The quote comes from the host's quote generation service, which may be
            // restarting: retried like a network error.
            Err(e) => {
                backoff = wait_or_give_up(
                    addr,
                    attempt,
                    format!("issuing the RA-TLS certificate: {e}"),
                    backoff,
                    deadline,
                    timeout,
                )
                .await?;
                continue;
            }
        };
        let client =
            rustls::ClientConfig::builder_with_provider(cocoon_measure::ratls::tls::provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .context("TLS client configuration")?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedServer::new(pin)))
                .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(
                    cert.certified.as_ref().clone(),
                )));
        let connector = TlsConnector::from(Arc::new(client));
        let outcome = tokio::time::timeout(ATTEMPT_TIMEOUT, request(&connector, addr))
            .await
            .unwrap_or_else(|_| {
                Err(Attempt::Unreachable(format!(
                    "no answer within {} s",
                    ATTEMPT_TIMEOUT.as_secs()
                )))
            });
        match outcome {
            Ok(key) => {
                tracing::info!(
                    service = addr,
                    attempt,
                    "data-disk key received from the key service"
                );
                return Ok(DataKey::from_bytes(key));
            }
            Err(Attempt::Refused(why)) => {
                bail!("the key service at {addr} gave no data-disk key: {why}")
            }
            Err(Attempt::Unreachable(why)) => {
                backoff = wait_or_give_up(addr, attempt, why, backoff, deadline, timeout).await?;
            }
        }
    }
}

/// Sleeps `backoff` and returns the next one, or fails if that would pass `deadline`.
async fn wait_or_give_up(
    addr: &str,
    attempt: u32,
    why: String,
    backoff: Duration,
    deadline: Instant,
    timeout: Duration,
) -> Result<Duration> {
    if Instant::now() + backoff > deadline {
        bail!(
            "the key service at {addr} gave no key within {} s ({attempt} attempts); last error: {why}",
            timeout.as_secs()
        );
    }
    tracing::warn!(service = addr, attempt, error = %why, retry_in_s = backoff.as_secs(), "no data-disk key yet");
    tokio::time::sleep(backoff).await;
    Ok((backoff * 2).min(MAX_BACKOFF))
}

/// Gets the key from the configured provider and runs the program with it; returns once the
/// program reported the disk open.
pub async fn open(
    config: &DataDiskConfig,
    td: &Arc<Td>,
    measurement: &Arc<Measurement>,
) -> Result<()> {
    let key = match &config.provider {
        KeyProvider::Service { addr, pin } => {
            tracing::info!(service = %addr, pin = %hex::encode(pin), "asking the key service for the data-disk key");
            from_service(td, measurement, addr, *pin, config.timeout).await?
        }
        simulated => {
            tracing::warn!("data-disk key from the SIMULATED provider: anyone who knows the seed can derive it");
            data_key::derive(simulated)?
        }
    };
    let program = config.program.clone();
    tracing::info!(program = %program.display(), "opening the data disk");
    tokio::task::spawn_blocking(move || run_program(&program, &key))
        .await
        .context("data disk task")?
}

fn run_program(program: &std::path::Path, key: &DataKey) -> Result<()> {
    use std::io::Write;
    let mut child = std::process::Command::new(program)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("data disk: cannot run {}", program.display()))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| anyhow!("data disk: no stdin pipe to {}", program.display()))?;
    // A program that exits before reading everything makes this fail; its exit status below
    // then says why.
    let written = stdin.write_all(key.as_bytes());
    drop(stdin);
    let status = child
        .wait()
        .with_context(|| format!("data disk: waiting for {}", program.display()))?;
    if !status.success() {
        bail!(
            "data disk: {} failed ({status}); its messages are above",
            program.display()
        );
    }
    written.with_context(|| format!("data disk: writing the key to {}", program.display()))?;
    tracing::info!(program = %program.display(), "data disk open");
    Ok(())
}
