//! `cocoon-measure quote verify`: verify a TDX quote against DCAP collateral and print what it
//! attests.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use cocoon_measure::quote::{
    read_collateral, read_quote, read_root_ca, verify_quote, QuotePolicy, VerifiedQuote,
};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct QuoteArgs {
    #[command(subcommand)]
    command: QuoteCommand,
}

#[derive(Subcommand)]
enum QuoteCommand {
    /// Verify a TDX quote (binary, or hex text) with collateral in dcap-qvl JSON layout.
    Verify(VerifyArgs),
}

#[derive(Args)]
struct VerifyArgs {
    /// The quote: raw bytes, or hex text.
    #[arg(long)]
    quote: PathBuf,
    /// Collateral JSON (dcap-qvl QuoteCollateralV3 layout: PCCS/PCS responses).
    #[arg(long)]
    collateral: PathBuf,
    /// Verification time, Unix seconds (default: now).
    #[arg(long)]
    now: Option<u64>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also trust the simulated TD's mock root CA given with --root-ca. Test setups only.
    #[arg(long)]
    trust_simulated: bool,
    /// The simulated TD's mock root CA certificate (DER); requires --trust-simulated.
    #[arg(long, requires = "trust_simulated")]
    root_ca: Option<PathBuf>,
    /// Also accept this TCB status (repeatable), e.g. SWHardeningNeeded.
    #[arg(long = "allow-tcb-status", value_name = "STATUS")]
    allow_tcb_status: Vec<String>,
}

/// A quote file holds raw bytes or their hex encoding (whitespace ignored).
fn decode_quote(raw: Vec<u8>) -> Vec<u8> {
    let text: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if !text.is_empty() && text.iter().all(u8::is_ascii_hexdigit) {
        if let Ok(bytes) = hex::decode(&text) {
            return bytes;
        }
    }
    raw
}

fn to_json(q: &VerifiedQuote) -> serde_json::Value {
    serde_json::json!({
        "status": q.status,
        "advisory_ids": q.advisory_ids,
        "mrtd": hex::encode(q.mrtd),
        "rtmr0": hex::encode(q.rtmr[0]),
        "rtmr1": hex::encode(q.rtmr[1]),
        "rtmr2": hex::encode(q.rtmr[2]),
        "rtmr3": hex::encode(q.rtmr[3]),
        "report_data": hex::encode(q.report_data),
        "td_attributes": format!("{:016x}", q.td_attributes),
        "xfam": format!("{:016x}", q.xfam),
        "mrseam": hex::encode(q.mrseam),
        "simulated_root": q.simulated_root_used,
    })
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let quote = decode_quote(read_quote(&args.quote)?);
    let collateral = read_collateral(&args.collateral)?;
    let root = match &args.root_ca {
        Some(path) => Some(read_root_ca(path)?),
        None if args.trust_simulated => {
            bail!("--trust-simulated needs --root-ca with the simulated TD's mock root CA (DER)")
        }
        None => None,
    };
    let mut policy = QuotePolicy {
        trust_simulated: args.trust_simulated,
        ..QuotePolicy::default()
    };
    for status in &args.allow_tcb_status {
        policy = policy
            .allow_tcb_status(status)
            .map_err(anyhow::Error::msg)
            .context("--allow-tcb-status")?;
    }
    let now = match args.now {
        Some(now) => now,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("system clock is before 1970")?
            .as_secs(),
    };
    let verified = verify_quote(&quote, &collateral, now, &policy, root.as_deref())
        .with_context(|| format!("quote {}", args.quote.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&verified))?);
    } else {
        let advisories = if verified.advisory_ids.is_empty() {
            "(none)".to_string()
        } else {
            verified.advisory_ids.join(", ")
        };
        println!("status: {}", verified.status);
        println!("advisory_ids: {advisories}");
        println!("mrtd: {}", hex::encode(verified.mrtd));
        for (i, rtmr) in verified.rtmr.iter().enumerate() {
            println!("rtmr{i}: {}", hex::encode(rtmr));
        }
        println!("report_data: {}", hex::encode(verified.report_data));
        println!("td_attributes: {:016x}", verified.td_attributes);
        println!("xfam: {:016x}", verified.xfam);
        println!("mrseam: {}", hex::encode(verified.mrseam));
        if verified.simulated_root_used {
            println!("root: SIMULATED mock root CA (not Intel; test evidence only)");
        } else {
            println!("root: Intel SGX Root CA");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: QuoteArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        QuoteCommand::Verify(v) => verify(v),
    }
}
