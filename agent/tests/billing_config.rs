//! `serve --billing FILE` from the command line to the measured (attested) config: prices,
//! payout destination and chain endpoint are measured; paths and the API key are not.

use clap::Parser;
use cocoon_agent::attest::measured::MeasuredConfig;
use cocoon_agent::cli::{Cli, Command};
use serde_json::json;

fn config(extra: &[&str]) -> Result<MeasuredConfig, String> {
    let mut args = vec![
        "cocoon-agent",
        "serve",
        "--model",
        "/models/tiny.gguf",
        "--model-sha256",
        "4242424242424242424242424242424242424242424242424242424242424242",
        "--listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let Command::Serve(a) = Cli::try_parse_from(args)
        .map_err(|e| e.to_string())?
        .command
    else {
        unreachable!()
    };
    let c = a.into_config().map_err(|e| e.to_string())?;
    Ok(MeasuredConfig::from_config(&c))
}

fn file(dir: &std::path::Path, name: &str, v: &serde_json::Value) -> String {
    let p = dir.join(name);
    std::fs::write(&p, v.to_string()).unwrap();
    p.to_str().unwrap().to_string()
}

fn billing(owner: &str, key_path: &str) -> serde_json::Value {
    json!({
        "prices": {"prompt_nanoton_per_1000_tokens": 2000, "completion_nanoton_per_token": 7},
        "payout": {"owner_address": owner, "threshold_nanoton": 5_000_000_000u64},
        "chain": {"endpoint": "https://toncenter.com", "api_key": "very-secret-key"},
        "ledger": "/data/ledger-path",
        "wallet_key": key_path,
    })
}

#[test]
fn prices_payout_and_endpoint_are_measured_and_secrets_and_paths_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let owner = format!("0:{}", "ab".repeat(32));
    let free = config(&[]).unwrap();
    assert_eq!(free.billing, None);
    let free_json = String::from_utf8(free.canonical_json()).unwrap();
    assert!(
        free_json.ends_with(r#","billing":null,"data_key_service_pin":null}"#),
        "{free_json}"
    );

    let a = file(dir.path(), "a.json", &billing(&owner, "/data/key-a"));
    let paid = config(&["--billing", &a, "--billing-period", "30s"]).unwrap();
    let json = String::from_utf8(paid.canonical_json()).unwrap();
    assert!(
        json.contains(&format!(
            r#""billing":{{"prompt_nanoton_per_token":2,"completion_nanoton_per_token":7,"owner_address":"{owner}","payout_threshold_nanoton":5000000000,"#
        )),
        "{json}"
    );
    assert!(json.contains(r#""chain_endpoint":"https://toncenter.com""#));
    for secret in ["very-secret-key", "/data/"] {
        assert!(!json.contains(secret), "{secret} leaked into {json}");
    }
    assert_ne!(paid.sha256(), free.sha256());

    // Paths and the period do not change the measurement; the payout destination does.
    let b = file(dir.path(), "b.json", &billing(&owner, "/elsewhere/key"));
    assert_eq!(
        config(&["--billing", &b, "--billing-period", "5s"])
            .unwrap()
            .sha256(),
        paid.sha256()
    );
    let other = format!("0:{}", "cd".repeat(32));
    let c = file(dir.path(), "c.json", &billing(&other, "/data/key-a"));
    assert_ne!(config(&["--billing", &c]).unwrap().sha256(), paid.sha256());
}

#[test]
fn bad_billing_files_and_flags_are_refused_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = billing("not-an-address", "/k");
    let f = file(dir.path(), "bad.json", &v);
    let e = config(&["--billing", &f]).unwrap_err();
    assert!(
        e.contains("bad.json") && e.contains("payout.owner_address"),
        "{e}"
    );
    v["payout"]["owner_address"] = json!(format!("0:{}", "ab".repeat(32)));
    v["prices"]["completion_nanoton_per_token"] = json!("7");
    let f = file(dir.path(), "bad2.json", &v);
    let e = config(&["--billing", &f]).unwrap_err();
    assert!(e.contains("prices.completion_nanoton_per_token"), "{e}");
    let e = config(&["--billing", "/no/such/file.json"]).unwrap_err();
    assert!(e.contains("/no/such/file.json"), "{e}");
    // The period only makes sense with a billing file.
    assert!(config(&["--billing-period", "5s"]).is_err());
}
