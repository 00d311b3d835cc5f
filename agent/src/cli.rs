//! Command-line interface.

use crate::attest::client_auth::{ClientPolicy, ClientPolicyFiles};
use crate::attest::td::TdSelection;
use crate::attest::tls::{ClientAuth, TlsConfig};
use crate::attest::AttestConfig;
use crate::config::RawServe;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "cocoon-agent",
    version,
    about = "COCOON worker guest agent: confidential LLM inference over an OpenAI-compatible API",
    long_about = "COCOON worker guest agent: serves LLM inference (llama.cpp) over an \
OpenAI-compatible HTTP API: POST /v1/chat/completions, POST /v1/completions (streaming and not), \
GET /v1/models, GET /healthz, GET /metrics.\n\nAt start the agent measures its configuration, \
model and mode into RTMR3 and serves remote clients over RA-TLS (--tls-listen): TLS 1.3 with a \
certificate carrying a TD quote bound to its key. The plain HTTP listener (--listen) only binds \
loopback addresses and is meant for local development."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a GGUF model pinned by its SHA-256.
    Serve(Box<ServeArgs>),
    /// Serve the bundled Gemma 3 270M model from a SIMULATED TD, over RA-TLS on
    /// 127.0.0.1:8443 and plain HTTP on 127.0.0.1:8080, and print how to query it.
    Demo(DemoArgs),
    /// Write what a verifier on the host needs to accept a SIMULATED TD of a seed: the mock
    /// DCAP root CA (root-ca.der), quote collateral (collateral.json) and a manifest of the
    /// simulated TD's registers (manifest.json) signed by a throwaway key (manifest-key.pub).
    SimulatedPki(SimulatedPkiArgs),
    /// Write the data disk's 32-byte LUKS2 key to stdout (binary, for
    /// `cryptsetup --key-file=- --keyfile-size 32`; refused when stdout is a terminal). Only the
    /// SIMULATED provider exists (--simulated); a real TD is refused, as TDX has no sealing key.
    DataKey(DataKeyArgs),
}

/// Where the agent's TD evidence comes from.
#[derive(Debug, Args, Clone)]
pub struct TdArgs {
    /// TD interface: `linux` (configfs-tsm and the tdx_guest measurement attributes; fails
    /// outside a TDX guest).
    #[arg(long, value_enum, default_value_t = TdKind::Linux, conflicts_with = "simulated_td")]
    pub td: TdKind,
    /// Run a SIMULATED TD in DIR instead (development and tests only: nothing is confidential,
    /// quotes chain to a mock root and the mode "simulated" is measured into RTMR3).
    #[arg(long, value_name = "DIR")]
    pub simulated_td: Option<PathBuf>,
    /// Seed of the simulated TD's mock PKI and default MRTD.
    #[arg(long, default_value_t = 1, requires = "simulated_td")]
    pub simulated_seed: u64,
    /// JSON file {"mrtd","rtmr0","rtmr1","rtmr2"} (hex) presetting the simulated TD's MRTD and
    /// RTMR0-2, e.g. to the values a manifest pins for a VM shape.
    #[arg(long, value_name = "FILE", requires = "simulated_td")]
    pub simulated_registers: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TdKind {
    Linux,
}

impl TdArgs {
    pub fn selection(&self) -> TdSelection {
        match (&self.simulated_td, self.td) {
            (Some(dir), _) => TdSelection::Simulated {
                dir: dir.clone(),
                seed: self.simulated_seed,
                registers: self.simulated_registers.clone(),
            },
            (None, TdKind::Linux) => TdSelection::Linux,
        }
    }
}

/// The RA-TLS listener.
#[derive(Debug, Args, Clone)]
pub struct TlsArgs {
    /// RA-TLS listen address (TLS 1.3, attested certificate; any address).
    #[arg(long, value_name = "ADDR")]
    pub tls_listen: Option<SocketAddr>,
    /// Validity of each RA-TLS certificate (e.g. 90s, 30m, 1h); renewed at 2/3 of it.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub cert_lifetime: Duration,
    /// Client authentication on the RA-TLS listener.
    #[arg(long, value_enum, default_value_t = ClientAuthArg::None, requires = "tls_listen")]
    pub tls_client_auth: ClientAuthArg,
    /// With `--tls-client-auth ratls`: the signed manifest client certificates must match.
    #[arg(long, value_name = "FILE", required_if_eq("tls_client_auth", "ratls"))]
    pub client_manifest: Option<PathBuf>,
    /// With `--tls-client-auth ratls`: the Ed25519 public key (hex) that signed it.
    #[arg(long, value_name = "FILE", required_if_eq("tls_client_auth", "ratls"))]
    pub client_manifest_key: Option<PathBuf>,
    /// With `--tls-client-auth ratls`: DCAP collateral JSON (dcap-qvl QuoteCollateralV3) for
    /// the clients' quotes.
    #[arg(long, value_name = "FILE", required_if_eq("tls_client_auth", "ratls"))]
    pub client_collateral: Option<PathBuf>,
    /// With `--tls-client-auth ratls`: also accept SIMULATED clients whose quotes chain to this
    /// mock root CA (DER). Tests only.
    #[arg(long, value_name = "FILE", requires = "client_manifest")]
    pub client_simulated_root_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientAuthArg {
    /// Any TLS client.
    None,
    /// Mutual RA-TLS: clients must present an RA-TLS certificate accepted against
    /// --client-manifest.
    Ratls,
}

impl TlsArgs {
    /// The RA-TLS listener, loading the client policy files for `--tls-client-auth ratls`.
    pub fn config(&self) -> Result<Option<TlsConfig>, crate::attest::AttestError> {
        let Some(listen) = self.tls_listen else {
            return Ok(None);
        };
        let client_auth = match self.tls_client_auth {
            ClientAuthArg::None => ClientAuth::None,
            ClientAuthArg::Ratls => {
                let missing = |flag: &str| {
                    crate::attest::AttestError::ClientPolicy(format!("{flag} is required"))
                };
                let files = ClientPolicyFiles {
                    manifest: self
                        .client_manifest
                        .clone()
                        .ok_or_else(|| missing("--client-manifest"))?,
                    manifest_key: self
                        .client_manifest_key
                        .clone()
                        .ok_or_else(|| missing("--client-manifest-key"))?,
                    collateral: self
                        .client_collateral
                        .clone()
                        .ok_or_else(|| missing("--client-collateral"))?,
                    simulated_root_ca: self.client_simulated_root_ca.clone(),
                };
                ClientAuth::Ratls(std::sync::Arc::new(ClientPolicy::load(&files)?))
            }
        };
        Ok(Some(TlsConfig {
            listen,
            cert_lifetime: self.cert_lifetime,
            client_auth,
        }))
    }
}

/// Parses `N`, `Ns`, `Nm` or `Nh` (whole numbers).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: expected a whole number with an optional s, m or h"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("{text:?}: unit must be s, m or h")),
    };
    n.checked_mul(scale)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?}: too large"))
}

#[derive(Debug, Args)]
pub struct SimulatedPkiArgs {
    /// Seed of the simulated TD (as given to --simulated-seed).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output directory (created if needed).
    #[arg(long)]
    pub out: PathBuf,
}

/// `data-key`: which key provider.
#[derive(Debug, Args)]
pub struct DataKeyArgs {
    /// Use the SIMULATED provider of the simulated TD (tests and development only: anyone who
    /// knows the seed can derive the key).
    #[arg(long)]
    pub simulated: bool,
    /// Seed of the simulated TD (as given to `serve --simulated-seed`).
    #[arg(long, default_value_t = 1, requires = "simulated")]
    pub simulated_seed: u64,
    /// The simulated TD's preset MRTD and RTMR0-2 (as given to `serve --simulated-registers`);
    /// the key is bound to them [default: the seed's MRTD and zero RTMR0-2].
    #[arg(long, value_name = "FILE", requires = "simulated")]
    pub simulated_registers: Option<PathBuf>,
}

impl DataKeyArgs {
    pub fn provider(&self) -> Result<crate::data_key::KeyProvider, crate::data_key::DataKeyError> {
        if self.simulated {
            Ok(crate::data_key::KeyProvider::Simulated {
                seed: self.simulated_seed,
                registers: self.simulated_registers.clone(),
            })
        } else {
            Err(crate::data_key::DataKeyError::NoRealProvider)
        }
    }
}

/// Engine sizing, shared by `serve` and `demo`.
#[derive(Debug, Args, Clone)]
pub struct EngineArgs {
    /// Context length of one request (prompt + completion), in tokens.
    #[arg(long, default_value_t = 2048)]
    pub ctx: u32,
    /// Requests decoded together (KV-cache sequences); memory grows with ctx x parallel.
    #[arg(long, default_value_t = 4)]
    pub parallel: u32,
    /// CPU threads for llama.cpp [default: all available cores].
    #[arg(long)]
    pub threads: Option<u32>,
    /// Requests waiting for a free sequence; more get 429 with Retry-After.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Most tokens per decode call (long prompts are split into chunks of this size).
    #[arg(long, default_value_t = 512)]
    pub batch: u32,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub body_limit: usize,
    /// Seconds allowed for a request's headers or body to arrive, or for a response write to
    /// make progress.
    #[arg(long, default_value_t = 30)]
    pub io_timeout: u64,
    /// Concurrent HTTP connections; further connections wait in the kernel backlog.
    #[arg(long, default_value_t = 256)]
    pub max_connections: usize,
    /// Chat template: a llama.cpp built-in name (chatml, gemma, llama3, ...) overriding the
    /// model's own [default: the model's template; gemma/chatml fallback when it has none].
    #[arg(long)]
    pub chat_template: Option<String>,
    /// Layers to offload to the GPU (effective only in builds with the `cuda` feature).
    #[arg(long, default_value_t = 999)]
    pub gpu_layers: u32,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The GGUF model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Expected SHA-256 of the model file (64 hex digits); the agent refuses to start otherwise.
    #[arg(long)]
    pub model_sha256: String,
    /// The model id clients pass as `model` [default: the file name without .gguf].
    #[arg(long)]
    pub model_id: Option<String>,
    /// Plain HTTP listen address (loopback only; port 0 picks a free port). At least one of
    /// --listen and --tls-listen is required.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub td: TdArgs,
    #[command(flatten)]
    pub billing: BillingArgs,
    #[command(flatten)]
    pub data_disk: DataDiskArgs,
    #[command(flatten)]
    pub control: ControlArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// The data disk (see `src/data_disk.rs`).
#[derive(Debug, Args, Clone)]
pub struct DataDiskArgs {
    /// After measuring, and before billing opens its ledger, run PROGRAM with the data disk's
    /// 32-byte LUKS2 key on stdin (the image's /usr/lib/cocoon/open-data-disk); exit status 0
    /// must mean the disk is open and mounted.
    #[arg(long, value_name = "PROGRAM")]
    pub open_data_disk: Option<PathBuf>,
    /// Get the key from `cocoon-measure key-service` at HOST:PORT (required on a real TD; with
    /// a simulated TD the SIMULATED provider is used unless this is given).
    #[arg(long, value_name = "HOST:PORT", requires_all = ["open_data_disk", "data_key_service_pin"])]
    pub data_key_service: Option<String>,
    /// SHA-256 (hex) of the key service's TLS public key, as `key-service init` printed it;
    /// measured into RTMR3.
    #[arg(long, value_name = "HEX", requires = "data_key_service")]
    pub data_key_service_pin: Option<String>,
    /// How long to keep trying to reach the key service before giving up.
    #[arg(long, default_value = "5m", value_parser = parse_duration, requires = "data_key_service")]
    pub data_key_timeout: Duration,
}

impl DataDiskArgs {
    /// The data-disk settings for a TD selected as `td`.
    pub fn config(
        &self,
        td: &TdSelection,
    ) -> Result<Option<crate::data_disk::DataDiskConfig>, crate::config::ConfigError> {
        use crate::config::ConfigError;
        use crate::data_key::KeyProvider;
        let Some(program) = &self.open_data_disk else {
            return Ok(None);
        };
        let provider = match (&self.data_key_service, &self.data_key_service_pin, td) {
            (Some(addr), Some(pin), _) => KeyProvider::Service {
                addr: addr.clone(),
                pin: cocoon_measure::key_release::parse_pin(pin)
                    .map_err(|e| ConfigError::DataDisk(e.to_string()))?,
            },
            (
                None,
                _,
                TdSelection::Simulated {
                    seed, registers, ..
                },
            ) => KeyProvider::Simulated {
                seed: *seed,
                registers: registers.clone(),
            },
            _ => {
                return Err(ConfigError::DataDisk(
                    "--open-data-disk on a real TD needs --data-key-service HOST:PORT and \
                     --data-key-service-pin HEX (TDX has no sealing key; the key service \
                     releases the key after verifying this TD)"
                        .into(),
                ))
            }
        };
        Ok(Some(crate::data_disk::DataDiskConfig {
            program: program.clone(),
            provider,
            timeout: self.data_key_timeout,
        }))
    }
}

/// The read-only host-control endpoint (`GET /status`, `GET /logs`; see `src/control`).
#[derive(Debug, Args, Clone, Default)]
pub struct ControlArgs {
    /// Serve the host-control endpoint on this AF_VSOCK port (any local CID); only the host
    /// (peer CID 2) is answered. The image uses 5000, what `cocoon-host status|logs` expects.
    #[arg(long, value_name = "PORT")]
    pub control_vsock_port: Option<u32>,
    /// Serve the host-control endpoint on this Unix socket (mode 0600; development and tests).
    #[arg(long, value_name = "PATH")]
    pub control_unix: Option<PathBuf>,
}

impl ControlArgs {
    pub fn config(&self) -> crate::control::ControlConfig {
        crate::control::ControlConfig {
            vsock_port: self.control_vsock_port,
            unix: self.control_unix.clone(),
        }
    }
}

/// Prepaid accounts and TON payments.
#[derive(Debug, Args, Clone)]
pub struct BillingArgs {
    /// Charge prepaid accounts for tokens: a JSON file with prices, payout, chain endpoint,
    /// ledger and wallet key paths (see docs/payments.md). Without it the agent serves free.
    #[arg(long, value_name = "FILE")]
    pub billing: Option<PathBuf>,
    /// How often to poll the chain for deposits, reconcile transfers and pay out (e.g. 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration, requires = "billing")]
    pub billing_period: Duration,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Plain HTTP listen address (loopback only).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// RA-TLS listen address.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub tls_listen: SocketAddr,
    /// Seed of the demo's simulated TD.
    #[arg(long, default_value_t = 1)]
    pub simulated_seed: u64,
    #[command(flatten)]
    pub engine: EngineArgs,
}

impl ServeArgs {
    /// The validated configuration `serve` runs with.
    pub fn into_config(self) -> Result<crate::config::ServeConfig, crate::config::ConfigError> {
        let td = self.td.selection();
        let data_disk = self.data_disk.config(&td)?;
        let attest = AttestConfig {
            td,
            tls: self.tls.config()?,
        };
        let mut config = self
            .engine
            .into_raw(
                self.model,
                self.model_sha256,
                self.model_id,
                self.listen,
                attest,
            )
            .with_billing(self.billing.billing, self.billing.billing_period)
            .validate()?;
        config.data_disk = data_disk;
        Ok(config)
    }
}

impl EngineArgs {
    pub fn into_raw(
        self,
        model: PathBuf,
        model_sha256: String,
        model_id: Option<String>,
        listen: Option<SocketAddr>,
        attest: AttestConfig,
    ) -> RawServe {
        RawServe {
            model,
            model_sha256,
            model_id,
            listen,
            attest,
            ctx: self.ctx,
            parallel: self.parallel,
            threads: self.threads,
            queue: self.queue,
            batch: self.batch,
            body_limit: self.body_limit,
            io_timeout_secs: self.io_timeout,
            max_connections: self.max_connections,
            chat_template: self.chat_template,
            gpu_layers: self.gpu_layers,
            billing: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_parse_with_units_and_refuse_garbage() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "h", "1d", "1.5h", "-1s", "1 h", "99999999999999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration(&format!("{}h", u64::MAX / 60)).is_err());
    }
}
