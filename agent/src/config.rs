//! Validated server configuration, built from the command line.

use crate::api::ApiConfig;
use crate::engine::EngineConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "--listen {0}: the plain HTTP listener is for local development only and must be a \
         loopback address (127.0.0.0/8 or ::1); remote clients will use the RA-TLS listener"
    )]
    NotLoopback(SocketAddr),
    #[error("no listener: give --tls-listen ADDR (RA-TLS) and/or --listen 127.0.0.1:PORT (plain HTTP, loopback only)")]
    NoListener,
    #[error(transparent)]
    ClientAuth(#[from] crate::attest::AttestError),
    #[error("--cert-lifetime {value}s is outside {min}s..={max}s (verifiers refuse longer validity periods)")]
    CertLifetime { value: u64, min: u64, max: u64 },
    #[error("--{flag} must be at least {min}, got {value}")]
    TooSmall {
        flag: &'static str,
        min: u64,
        value: u64,
    },
    #[error("model path {0} has no usable file name for the model id; pass --model-id")]
    NoModelId(PathBuf),
    #[error(transparent)]
    Digest(#[from] crate::integrity::IntegrityError),
    #[error(transparent)]
    Billing(#[from] crate::billing::BillingConfigError),
    #[error("data disk: {0}")]
    DataDisk(String),
}

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The plain HTTP listener (loopback only), if any.
    pub listen: Option<SocketAddr>,
    /// TD selection and the RA-TLS listener.
    pub attest: crate::attest::AttestConfig,
    pub model_sha256: [u8; 32],
    pub engine: EngineConfig,
    pub api: ApiConfig,
    /// Prepaid accounts and payments (`--billing FILE`); `None` serves for free.
    pub billing: Option<crate::billing::BillingConfig>,
    /// `--open-data-disk`: opened after measuring, before billing starts.
    pub data_disk: Option<crate::data_disk::DataDiskConfig>,
}

/// Raw values as given on the command line.
#[derive(Debug, Clone)]
pub struct RawServe {
    pub model: PathBuf,
    pub model_sha256: String,
    pub model_id: Option<String>,
    pub listen: Option<SocketAddr>,
    pub attest: crate::attest::AttestConfig,
    pub ctx: u32,
    pub parallel: u32,
    pub threads: Option<u32>,
    pub queue: usize,
    pub batch: u32,
    pub body_limit: usize,
    pub io_timeout_secs: u64,
    pub max_connections: usize,
    pub chat_template: Option<String>,
    pub gpu_layers: u32,
    /// `--billing FILE` and `--billing-period`, loaded by [`RawServe::validate`].
    pub billing: Option<crate::billing::config::BillingSource>,
}

fn at_least(flag: &'static str, value: u64, min: u64) -> Result<(), ConfigError> {
    if value < min {
        return Err(ConfigError::TooSmall { flag, min, value });
    }
    Ok(())
}

/// The default model id: the file name without a `.gguf` extension.
pub fn model_id_from_path(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let id = name.strip_suffix(".gguf").unwrap_or(name);
    (!id.is_empty()).then(|| id.to_string())
}

impl RawServe {
    /// Turns billing on with the settings in `file` (chain work every `period`).
    pub fn with_billing(mut self, file: Option<PathBuf>, period: Duration) -> RawServe {
        self.billing = file.map(|file| crate::billing::config::BillingSource { file, period });
        self
    }

    pub fn validate(self) -> Result<ServeConfig, ConfigError> {
        if let Some(listen) = self.listen.filter(|l| !l.ip().is_loopback()) {
            return Err(ConfigError::NotLoopback(listen));
        }
        if self.listen.is_none() && self.attest.tls.is_none() {
            return Err(ConfigError::NoListener);
        }
        if let Some(tls) = &self.attest.tls {
            use crate::attest::tls::{MAX_CERT_LIFETIME, MIN_CERT_LIFETIME};
            if !(MIN_CERT_LIFETIME..=MAX_CERT_LIFETIME).contains(&tls.cert_lifetime) {
                return Err(ConfigError::CertLifetime {
                    value: tls.cert_lifetime.as_secs(),
                    min: MIN_CERT_LIFETIME.as_secs(),
                    max: MAX_CERT_LIFETIME.as_secs(),
                });
            }
        }
        at_least("ctx", u64::from(self.ctx), 16)?;
        at_least("parallel", u64::from(self.parallel), 1)?;
        at_least("queue", self.queue as u64, 1)?;
        at_least("batch", u64::from(self.batch), 16)?;
        at_least("body-limit", self.body_limit as u64, 1024)?;
        at_least("io-timeout", self.io_timeout_secs, 1)?;
        at_least("max-connections", self.max_connections as u64, 1)?;
        let model_sha256 = crate::integrity::parse_digest(&self.model_sha256)?;
        let model_id = match self.model_id {
            Some(id) => id,
            None => model_id_from_path(&self.model)
                .ok_or_else(|| ConfigError::NoModelId(self.model.clone()))?,
        };
        let threads = self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(2)
        });
        at_least("threads", u64::from(threads), 1)?;
        let billing = match &self.billing {
            Some(b) => Some(crate::billing::BillingConfig::load(&b.file, b.period)?),
            None => None,
        };
        Ok(ServeConfig {
            billing,
            data_disk: None,
            listen: self.listen,
            attest: self.attest,
            model_sha256,
            engine: EngineConfig {
                model_path: self.model,
                ctx_per_seq: self.ctx,
                parallel: self.parallel,
                threads: threads.min(i32::MAX as u32) as i32,
                queue: self.queue,
                batch_tokens: self.batch,
                chat_template: self.chat_template,
                gpu_layers: self.gpu_layers,
            },
            api: ApiConfig {
                model_id,
                body_limit: self.body_limit,
                io_timeout: Duration::from_secs(self.io_timeout_secs),
                max_connections: self.max_connections,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawServe {
        RawServe {
            model: "/m/gemma.gguf".into(),
            model_sha256: "00".repeat(32),
            model_id: None,
            listen: Some("127.0.0.1:8080".parse().unwrap()),
            attest: crate::attest::AttestConfig {
                td: crate::attest::td::TdSelection::Linux,
                tls: None,
            },
            ctx: 2048,
            parallel: 4,
            threads: Some(2),
            queue: 8,
            batch: 512,
            body_limit: 1 << 20,
            io_timeout_secs: 30,
            max_connections: 16,
            chat_template: None,
            gpu_layers: 0,
            billing: None,
        }
    }

    #[test]
    fn loopback_only_for_plain_http() {
        assert!(raw().validate().is_ok());
        let mut r = raw();
        r.listen = Some("[::1]:80".parse().unwrap());
        assert!(r.validate().is_ok());
        for addr in ["0.0.0.0:8080", "10.1.2.3:8080", "[::]:8080"] {
            let mut r = raw();
            r.listen = Some(addr.parse().unwrap());
            assert!(
                matches!(r.validate(), Err(ConfigError::NotLoopback(_))),
                "{addr}"
            );
        }
    }

    #[test]
    fn listeners_and_certificate_lifetime() {
        use crate::attest::tls::{ClientAuth, TlsConfig};
        let tls = |secs| {
            Some(TlsConfig {
                listen: "0.0.0.0:8443".parse().unwrap(),
                cert_lifetime: Duration::from_secs(secs),
                client_auth: ClientAuth::None,
            })
        };
        let mut r = raw();
        r.listen = None;
        assert!(matches!(r.clone().validate(), Err(ConfigError::NoListener)));
        // The RA-TLS listener may bind any address, and alone suffices.
        r.attest.tls = tls(3600);
        let c = r.clone().validate().unwrap();
        assert!(c.listen.is_none());
        for bad in [0, 2, 24 * 3600] {
            r.attest.tls = tls(bad);
            assert!(
                matches!(r.clone().validate(), Err(ConfigError::CertLifetime { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn model_id_and_limits() {
        assert_eq!(raw().validate().unwrap().api.model_id, "gemma");
        let mut r = raw();
        r.parallel = 0;
        assert!(matches!(
            r.validate(),
            Err(ConfigError::TooSmall {
                flag: "parallel",
                ..
            })
        ));
        let mut r = raw();
        r.model_sha256 = "xyz".into();
        assert!(matches!(r.validate(), Err(ConfigError::Digest(_))));
    }
}
