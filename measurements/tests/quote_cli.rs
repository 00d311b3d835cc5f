//! `cocoon-measure quote verify` end to end.

use cocoon_tdx::simulated::SimulatedTd;
use std::path::Path;
use std::process::{Command, Output};

const V4_QUOTE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/testdata/intel_tdx_quote_v4.bin"
);
const V4_COLLATERAL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/testdata/intel_tdx_quote_v4_collateral.json"
);

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cocoon-measure"))
        .arg("quote")
        .arg("verify")
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn intel_sample_json() {
    let out = run(&[
        "--quote",
        V4_QUOTE,
        "--collateral",
        V4_COLLATERAL,
        "--now",
        "1750377600",
        "--json",
    ]);
    let v = json(&out);
    assert_eq!(v["status"], "UpToDate");
    assert_eq!(v["advisory_ids"], serde_json::json!([]));
    assert_eq!(
        v["mrtd"],
        "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
    );
    assert_eq!(v["rtmr3"], "0".repeat(96));
    for key in ["rtmr0", "rtmr1", "rtmr2"] {
        assert_eq!(v[key].as_str().unwrap().len(), 96, "{key}");
    }
    assert!(v["report_data"]
        .as_str()
        .unwrap()
        .starts_with("9a9d48e7f6799642"));
    assert_eq!(v["simulated_root"], false);
}

#[test]
fn intel_sample_text_and_hex_input() {
    let dir = tempfile::tempdir().unwrap();
    let hex_path = dir.path().join("quote.hex");
    std::fs::write(
        &hex_path,
        hex::encode(std::fs::read(V4_QUOTE).unwrap()) + "\n",
    )
    .unwrap();
    let out = run(&[
        "--quote",
        hex_path.to_str().unwrap(),
        "--collateral",
        V4_COLLATERAL,
        "--now",
        "1750377600",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("status: UpToDate"), "{text}");
    assert!(text.contains("root: Intel SGX Root CA"), "{text}");
}

#[test]
fn errors_exit_2_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.bin");
    std::fs::write(&short, &std::fs::read(V4_QUOTE).unwrap()[..100]).unwrap();
    let out = run(&[
        "--quote",
        short.to_str().unwrap(),
        "--collateral",
        V4_COLLATERAL,
        "--now",
        "1750377600",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("short.bin") && err.contains("100 bytes"),
        "{err}"
    );

    let out = run(&["--quote", V4_QUOTE, "--collateral", V4_QUOTE, "--now", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("QuoteCollateralV3"));

    // Expired collateral.
    let out = run(&[
        "--quote",
        V4_QUOTE,
        "--collateral",
        V4_COLLATERAL,
        "--now",
        "1800000000",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

fn write_simulated(dir: &Path, td: &SimulatedTd) -> (String, String, String) {
    let quote = td.provider().get_quote([1; 64]).unwrap();
    let q = dir.join("quote.bin");
    let c = dir.join("collateral.json");
    let r = dir.join("root.der");
    std::fs::write(&q, quote).unwrap();
    std::fs::write(&c, td.collateral().to_json()).unwrap();
    std::fs::write(&r, td.root_ca_der()).unwrap();
    let s = |p: std::path::PathBuf| p.to_str().unwrap().to_string();
    (s(q), s(c), s(r))
}

#[test]
fn simulated_quote_needs_trust_simulated() {
    let td_dir = tempfile::tempdir().unwrap();
    let td = SimulatedTd::start(3, td_dir.path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (q, c, r) = write_simulated(dir.path(), &td);

    let v = json(&run(&[
        "--quote",
        &q,
        "--collateral",
        &c,
        "--trust-simulated",
        "--root-ca",
        &r,
        "--json",
    ]));
    assert_eq!(v["simulated_root"], true);
    assert_eq!(v["report_data"], "01".repeat(64));

    let out = run(&["--quote", &q, "--collateral", &c]);
    assert_eq!(out.status.code(), Some(2));
    // --root-ca alone is refused by the argument parser (exit 2 as well).
    let out = run(&["--quote", &q, "--collateral", &c, "--root-ca", &r]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["--quote", &q, "--collateral", &c, "--trust-simulated"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--root-ca"));
}
