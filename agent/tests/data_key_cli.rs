//! `cocoon-agent data-key`, the real binary: the SIMULATED key is a function of the seed and
//! the registers, registers file errors name the cause, a real TD (whose key only the key
//! service hands out, during `serve`) and a terminal are refused.

use cocoon_tdx::simulated::registers::MAX_REGISTERS_FILE;
use cocoon_tdx::simulated::{SimulatedRegisters, SimulatedTdConfig};
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_cocoon-agent");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("data-key")
        .args(args)
        .output()
        .expect("running cocoon-agent data-key")
}

/// The key of a successful run (exactly 32 bytes; stderr says SIMULATED).
fn key(args: &[&str]) -> Vec<u8> {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    assert_eq!(out.stdout.len(), 32, "{args:?}");
    assert!(stderr.contains("SIMULATED data-disk key"), "{stderr}");
    out.stdout
}

/// A failed run: non-zero, nothing on stdout, stderr returned.
fn refused(args: &[&str]) -> String {
    let out = run(args);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn registers(mrtd: u8, rtmr: [u8; 3]) -> SimulatedRegisters {
    SimulatedRegisters {
        mrtd: [mrtd; 48],
        rtmr0: [rtmr[0]; 48],
        rtmr1: [rtmr[1]; 48],
        rtmr2: [rtmr[2]; 48],
    }
}

#[test]
fn same_inputs_same_key_other_inputs_other_keys() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.json", &registers(1, [2, 3, 4]).to_json());
    let a_again = write(dir.path(), "a2.json", &registers(1, [2, 3, 4]).to_json());
    let other_rtmr2 = write(dir.path(), "b.json", &registers(1, [2, 3, 5]).to_json());
    let other_mrtd = write(dir.path(), "c.json", &registers(9, [2, 3, 4]).to_json());

    let seed1 = key(&["--simulated"]);
    assert_eq!(seed1, key(&["--simulated", "--simulated-seed", "1"]));
    assert_ne!(seed1, key(&["--simulated", "--simulated-seed", "2"]));

    let with_a = key(&["--simulated", "--simulated-registers", &a]);
    // Bound to the register values, not to the file.
    assert_eq!(
        with_a,
        key(&["--simulated", "--simulated-registers", &a_again])
    );
    assert_ne!(with_a, seed1);
    assert_ne!(
        with_a,
        key(&["--simulated", "--simulated-registers", &other_rtmr2])
    );
    assert_ne!(
        with_a,
        key(&["--simulated", "--simulated-registers", &other_mrtd])
    );
    assert_ne!(
        with_a,
        key(&[
            "--simulated",
            "--simulated-seed",
            "2",
            "--simulated-registers",
            &a
        ])
    );

    // The seed's defaults written out as a file give the same key as no file.
    let config = SimulatedTdConfig::new(1);
    let defaults = SimulatedRegisters {
        mrtd: config.mr_td,
        rtmr0: [0; 48],
        rtmr1: [0; 48],
        rtmr2: [0; 48],
    };
    let d = write(dir.path(), "defaults.json", &defaults.to_json());
    assert_eq!(seed1, key(&["--simulated", "--simulated-registers", &d]));
}

#[test]
fn registers_file_errors_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let missing = missing.to_str().unwrap();
    let err = refused(&["--simulated", "--simulated-registers", missing]);
    assert!(err.contains(missing), "{err}");

    let good = registers(1, [2, 3, 4]).to_json();
    let truncated = write(dir.path(), "t.json", &good[..good.len() / 2]);
    let err = refused(&["--simulated", "--simulated-registers", &truncated]);
    assert!(err.contains("not the expected JSON object"), "{err}");

    let short = write(
        dir.path(),
        "s.json",
        &good.replacen(&"03".repeat(48), &"03".repeat(47), 1),
    );
    let err = refused(&["--simulated", "--simulated-registers", &short]);
    assert!(
        err.contains("\"rtmr1\"") && err.contains("47 bytes"),
        "{err}"
    );

    let mut big = good.clone();
    big.push_str(&" ".repeat(MAX_REGISTERS_FILE));
    let big = write(dir.path(), "big.json", &big);
    let err = refused(&["--simulated", "--simulated-registers", &big]);
    assert!(err.contains("limit"), "{err}");
}

#[test]
fn real_td_is_refused() {
    let err = refused(&[]);
    assert!(
        err.contains("no local key provider for a real TD: "),
        "{err}"
    );
    assert!(err.contains("--data-key-service"), "{err}");
    // The simulated options need --simulated; they never select it silently.
    let err = refused(&["--simulated-seed", "1"]);
    assert!(err.contains("--simulated"), "{err}");
}

/// stdout on a pseudo-terminal, through util-linux `script` (bsdutils, essential in Debian).
#[test]
fn terminal_is_refused() {
    let seed1 = key(&["--simulated"]);
    let out = Command::new("script")
        .args(["-q", "-e", "-c"])
        .arg(format!("{BIN} data-key --simulated"))
        .arg("/dev/null")
        .output()
        .expect("util-linux `script` (package bsdutils) is needed for this test");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{shown}");
    assert!(
        shown.contains("refusing to write the data-disk key to a terminal"),
        "{shown}"
    );
    assert!(
        !out.stdout.windows(seed1.len()).any(|w| w == seed1),
        "the key reached the terminal"
    );
}
