//! The RA-TLS verifier's command-line inputs, shared by `gateway` and `key-service`.

use super::manifest::{read_limited, read_verifying_key};
use anyhow::{anyhow, bail, Context};
use clap::Args;
use cocoon_measure::manifest::{Manifest, MAX_MANIFEST_BYTES};
use cocoon_measure::quote::{read_root_ca, QuotePolicy};
use cocoon_measure::ratls::{CollateralSource, RatlsVerifier, VerifierConfig};
use std::path::PathBuf;
use std::time::Duration;

/// What a worker's RA-TLS certificate must prove to be accepted.
#[derive(Args, Debug)]
pub struct VerifierArgs {
    /// Signed measurement manifest of the release to accept.
    #[arg(long, value_name = "FILE")]
    manifest: PathBuf,
    /// Ed25519 public key (hex) that must have signed the manifest.
    #[arg(long, value_name = "FILE")]
    pubkey: PathBuf,
    /// DCAP collateral JSON (dcap-qvl QuoteCollateralV3 layout) for the workers' platform.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "pccs_url",
        conflicts_with = "pccs_url"
    )]
    collateral: Option<PathBuf>,
    /// Fetch collateral per platform from this PCCS or Intel PCS base URL instead, e.g.
    /// https://api.trustedservices.intel.com (cached until its nextUpdate).
    #[arg(long, value_name = "URL")]
    pccs_url: Option<String>,
    /// Directory for the PCCS collateral cache (kept across restarts).
    #[arg(long, value_name = "DIR", requires = "pccs_url")]
    collateral_cache: Option<PathBuf>,
    /// Also trust the simulated TD's mock root CA given with --root-ca. Test setups only:
    /// evidence from any machine then passes.
    #[arg(long)]
    pub trust_simulated: bool,
    /// The simulated TD's mock root CA certificate (DER); requires --trust-simulated.
    #[arg(long, value_name = "FILE", requires = "trust_simulated")]
    root_ca: Option<PathBuf>,
    /// Also accept this TCB status (repeatable), e.g. SWHardeningNeeded. Default: UpToDate only.
    #[arg(long = "allow-tcb-status", value_name = "STATUS")]
    allow_tcb_status: Vec<String>,
    /// Longest worker certificate validity accepted, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 24 * 3600)]
    max_validity: u64,
    /// Accept only workers whose measured config has this SHA-256 (hex; repeatable).
    #[arg(long = "allow-config-sha256", value_name = "HEX")]
    allow_config: Vec<String>,
    /// Accept only workers serving a model with this SHA-256 (hex; repeatable).
    #[arg(long = "allow-model-sha256", value_name = "HEX")]
    allow_model: Vec<String>,
}

fn sha256_list(values: &[String], flag: &str) -> anyhow::Result<Option<Vec<[u8; 32]>>> {
    if values.is_empty() {
        return Ok(None);
    }
    values
        .iter()
        .map(|v| {
            let bytes = hex::decode(v).with_context(|| format!("{flag} {v:?} is not hex"))?;
            <[u8; 32]>::try_from(bytes.as_slice())
                .map_err(|_| anyhow!("{flag} {v:?} is not 32 bytes"))
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .map(Some)
}

impl VerifierArgs {
    /// The verifier these arguments describe; reads and checks the manifest and key files.
    pub fn build(&self) -> anyhow::Result<RatlsVerifier> {
        let key = read_verifying_key(&self.pubkey)?;
        let bytes = read_limited(&self.manifest, MAX_MANIFEST_BYTES, "manifest")?;
        let manifest = Manifest::parse_verified(&bytes, &key)
            .with_context(|| format!("manifest {}", self.manifest.display()))?;
        let collateral = match (&self.collateral, &self.pccs_url) {
            (Some(file), _) => CollateralSource::File(file.clone()),
            (None, Some(url)) => CollateralSource::Pccs {
                url: url.clone(),
                cache_dir: self.collateral_cache.clone(),
            },
            (None, None) => bail!("give --collateral FILE or --pccs-url URL"),
        };
        let mut config = VerifierConfig::new(manifest, key, collateral);
        let mut policy = QuotePolicy::default();
        for status in &self.allow_tcb_status {
            policy = policy
                .allow_tcb_status(status)
                .map_err(anyhow::Error::msg)
                .context("--allow-tcb-status")?;
        }
        config.quote_policy = policy;
        if self.trust_simulated {
            let path = self.root_ca.as_ref().ok_or_else(|| {
                anyhow!(
                    "--trust-simulated needs --root-ca with the simulated TD's mock root CA (DER)"
                )
            })?;
            config = config.trust_simulated(read_root_ca(path)?);
        }
        config.max_validity = Duration::from_secs(self.max_validity);
        config.allowed_config_sha256 = sha256_list(&self.allow_config, "--allow-config-sha256")?;
        config.allowed_model_sha256 = sha256_list(&self.allow_model, "--allow-model-sha256")?;
        RatlsVerifier::new(config).context("setting up the RA-TLS verifier")
    }
}
