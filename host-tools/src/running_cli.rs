//! `status`, `logs` and `verify-running`: the CLI side of looking at a running worker (the
//! work is done in `cocoon_host::{control_client, verify_running}`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context};
use cocoon_host::control_client::{self, ControlError, Endpoint};
use cocoon_host::launch::{self, argv, config::LaunchConfig};
use cocoon_host::verify_running::{self, Outcome, Report};
use cocoon_measure::quote::{read_root_ca, QuotePolicy};
use cocoon_measure::ratls::{CollateralSource, RatlsVerifier, VerifierConfig};

use crate::{print_json, refused, usage, Failure};

/// Intel's Provisioning Certification Service, the collateral source when none is given.
pub const INTEL_PCS_URL: &str = "https://api.trustedservices.intel.com";

/// Which agent's control endpoint.
#[derive(clap::Args)]
pub struct ControlTarget {
    /// Instance number N, as given to `launch` (guest CID 100+N).
    #[arg(long, default_value_t = 0)]
    instance: u32,
    /// The guest's control vsock port (the agent's --control-vsock-port).
    #[arg(long, value_name = "PORT", default_value_t = control_client::DEFAULT_CONTROL_PORT)]
    control_port: u32,
    /// Talk to an agent's --control-unix socket instead of vsock (development and tests).
    #[arg(long, value_name = "PATH")]
    control_unix: Option<PathBuf>,
    /// Seconds allowed for connecting and for the whole reply (1-60).
    #[arg(long, value_name = "SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=60))]
    timeout: u64,
}

impl ControlTarget {
    fn endpoint(&self) -> Result<Endpoint, Failure> {
        if let Some(path) = &self.control_unix {
            return Ok(Endpoint::Unix(path.clone()));
        }
        if self.instance > launch::MAX_INSTANCE {
            return Err(usage(launch::LaunchError::BadInstance(self.instance)));
        }
        Ok(Endpoint::Vsock {
            cid: argv::guest_cid(self.instance),
            port: self.control_port,
        })
    }
}

#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    target: ControlTarget,
    /// Print the agent's status object as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct LogsArgs {
    #[command(flatten)]
    target: ControlTarget,
    /// How many of the most recent lines (0-1000).
    #[arg(long, default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(control_client::MAX_LINES)))]
    lines: u32,
    /// Print the reply as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct VerifyRunningArgs {
    /// Instance number N: its RA-TLS port is agent.port+N on agent.host_address of --config.
    #[arg(long, default_value_t = 0)]
    instance: u32,
    /// The launch config the instance was started with (port forwarding, default manifest).
    #[arg(long, value_name = "FILE", required_unless_present = "addr")]
    config: Option<PathBuf>,
    /// Connect to HOST:PORT instead of the config's forwarded port.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "config")]
    addr: Option<String>,
    /// The signed measurement manifest [default: the config's manifest].
    #[arg(long, value_name = "FILE", required_unless_present = "config")]
    manifest: Option<PathBuf>,
    /// The Ed25519 public key (hex) that must have signed the manifest.
    #[arg(long, value_name = "FILE")]
    pubkey: PathBuf,
    /// Quote collateral (dcap-qvl QuoteCollateralV3 JSON) [default: fetched from --pccs-url].
    #[arg(long, value_name = "FILE", conflicts_with = "pccs_url")]
    collateral: Option<PathBuf>,
    /// PCCS or Intel PCS base URL to fetch collateral from.
    #[arg(long, value_name = "URL", default_value = INTEL_PCS_URL)]
    pccs_url: String,
    /// Directory caching fetched collateral.
    #[arg(long, value_name = "DIR")]
    collateral_cache: Option<PathBuf>,
    /// Also accept SIMULATED workers whose quotes chain to --root-ca. Development only.
    #[arg(long, requires = "root_ca")]
    trust_simulated: bool,
    /// The simulated TD's mock root CA (DER), with --trust-simulated.
    #[arg(long, value_name = "FILE", requires = "trust_simulated")]
    root_ca: Option<PathBuf>,
    /// Accept this TCB status besides UpToDate (e.g. SWHardeningNeeded); repeatable.
    #[arg(long, value_name = "NAME")]
    allow_tcb_status: Vec<String>,
    /// Seconds allowed for connecting, and then for the handshake (1-300).
    #[arg(long, value_name = "SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    timeout: u64,
    /// Print the verdict as JSON.
    #[arg(long)]
    json: bool,
}

fn control_failure(e: ControlError) -> Failure {
    match e {
        ControlError::BadLines(_) => usage(e),
        other => refused(other),
    }
}

/// `status`: exit 0 when the agent answers and is ready, 1 otherwise.
pub fn run_status(a: StatusArgs) -> Result<u8, Failure> {
    let endpoint = a.target.endpoint()?;
    let timeout = Duration::from_secs(a.target.timeout);
    let report = control_client::status(&endpoint, timeout).map_err(control_failure)?;
    if a.json {
        print_json(&report)?;
    } else {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        print!("{}", control_client::status_text(&endpoint, &report, now));
    }
    Ok(if report.ready { 0 } else { 1 })
}

/// `logs`: the agent's recent lines, oldest first.
pub fn run_logs(a: LogsArgs) -> Result<u8, Failure> {
    let endpoint = a.target.endpoint()?;
    let timeout = Duration::from_secs(a.target.timeout);
    let reply = control_client::logs(&endpoint, a.lines, timeout).map_err(control_failure)?;
    if a.json {
        print_json(&reply)?;
    } else {
        for line in &reply.lines {
            println!("{}", control_client::escape_text(line));
        }
    }
    Ok(0)
}

fn verifier(a: &VerifyRunningArgs, manifest: &std::path::Path) -> Result<RatlsVerifier, Failure> {
    let key = cocoon_measure::manifest::keyfile::read_verifying_key(&a.pubkey).map_err(usage)?;
    let manifest = cocoon_host::manifest::load(manifest, Some(&key)).map_err(refused)?;
    let collateral = match &a.collateral {
        Some(file) => CollateralSource::File(file.clone()),
        None => CollateralSource::Pccs {
            url: a.pccs_url.clone(),
            cache_dir: a.collateral_cache.clone(),
        },
    };
    let mut config = VerifierConfig::new(manifest, key, collateral);
    let mut policy = QuotePolicy::default();
    for status in &a.allow_tcb_status {
        policy = policy
            .allow_tcb_status(status)
            .map_err(|e| usage(anyhow!("--allow-tcb-status {status}: {e}")))?;
    }
    config.quote_policy = policy;
    if a.trust_simulated {
        let path = a
            .root_ca
            .as_ref()
            .ok_or_else(|| usage(anyhow!("--trust-simulated needs --root-ca")))?;
        let root = read_root_ca(path).map_err(usage)?;
        config = config.trust_simulated(root);
    }
    RatlsVerifier::new(config)
        .context("setting up the RA-TLS verifier")
        .map_err(usage)
}

/// `verify-running`: exit 0 only when the verifier accepts the worker.
pub fn run_verify_running(a: VerifyRunningArgs) -> Result<u8, Failure> {
    if a.instance > launch::MAX_INSTANCE {
        return Err(usage(launch::LaunchError::BadInstance(a.instance)));
    }
    let cfg = a
        .config
        .as_deref()
        .map(LaunchConfig::load)
        .transpose()
        .map_err(|e| usage(launch::LaunchError::Config(e)))?;
    let addr = match (&a.addr, &cfg) {
        (Some(addr), _) => addr.clone(),
        (None, Some(cfg)) => {
            let port = argv::host_port(cfg, a.instance).ok_or_else(|| {
                usage(launch::LaunchError::PortRange {
                    base: cfg.agent_port,
                    instance: a.instance,
                })
            })?;
            std::net::SocketAddr::new(cfg.host_address, port).to_string()
        }
        (None, None) => return Err(usage(anyhow!("give --config or --addr"))),
    };
    let manifest = match (&a.manifest, &cfg) {
        (Some(m), _) => m.clone(),
        (None, Some(cfg)) => cfg.manifest.clone(),
        (None, None) => return Err(usage(anyhow!("give --manifest or --config"))),
    };
    let verifier = Arc::new(verifier(&a, &manifest)?);
    if a.trust_simulated {
        eprintln!("WARNING: --trust-simulated: SIMULATED workers (no TDX, nothing confidential) are accepted");
    }
    let outcome =
        verify_running::verify(&addr, verifier, Duration::from_secs(a.timeout)).map_err(refused)?;
    if a.json {
        print_json(&Report::new(&addr, &outcome))?;
    } else {
        print!("{}", verify_running::text(&addr, &outcome));
    }
    Ok(match outcome {
        Outcome::Accepted(_) => 0,
        Outcome::Refused(_) => 1,
    })
}
