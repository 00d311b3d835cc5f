//! `eventlog replay` through the binary: replay only, CCEL table checks, comparison with a
//! manifest built by `manifest build` and with events computed from files, exit codes.

mod compute_fixtures;
mod eventlog_support;

use compute_fixtures as fx;
use eventlog_support::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cocoon-measure"))
        .args(args)
        .output()
        .unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const CMDLINE: &str = "console=ttyS0 root=/dev/vda ro";

struct Boot {
    dir: tempfile::TempDir,
    fw: PathBuf,
    kernel: PathBuf,
    initrd: PathBuf,
    acpi: PathBuf,
    manifest: PathBuf,
}

/// Synthetic boot inputs and an unsigned two-shape manifest built from them.
fn boot() -> Boot {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let b = Boot {
        fw: fx::write(root, "OVMF.fd", &fx::firmware()),
        kernel: fx::write(root, "vmlinuz", &fx::kernel()),
        initrd: fx::write(root, "initrd.img", b"an initrd"),
        acpi: fx::acpi_dir(root),
        manifest: root.join("manifest.json"),
        dir,
    };
    let small = format!("small:2:2G:0:{}", s(&b.acpi));
    let large = format!("large:4:4G:1:{}", s(&b.acpi));
    let o = run(&[
        "manifest",
        "build",
        "--firmware",
        s(&b.fw),
        "--kernel",
        s(&b.kernel),
        "--initrd",
        s(&b.initrd),
        "--cmdline",
        CMDLINE,
        "--shape",
        &small,
        "--shape",
        &large,
        "--release",
        "0.1.0",
        "--commit",
        "90f5374",
        "--out",
        s(&b.manifest),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    b
}

/// A log holding exactly the events the manifest lists for `shape`, as TDVF would write it
/// (SHA-384 only), with the event at `tamper` (index into the list) given another digest.
fn log_from_manifest(b: &Boot, shape: &str, tamper: Option<usize>) -> Vec<u8> {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&b.manifest).unwrap()).unwrap();
    let shapes = m["manifest"]["shapes"].as_array().unwrap();
    let sh = shapes.iter().find(|x| x["name"] == shape).unwrap();
    let mut log = LogBuilder::sha384_only();
    for (i, e) in sh["events"].as_array().unwrap().iter().enumerate() {
        let rtmr = match e["rtmr"].as_str().unwrap() {
            "Rtmr0" => 0,
            "Rtmr1" => 1,
            "Rtmr2" => 2,
            other => panic!("{other}"),
        };
        let mut digest: [u8; 48] = hex::decode(e["digest"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        if tamper == Some(i) {
            digest = sha384(b"something else");
        }
        log.event(
            rtmr,
            e["event_type"].as_u64().unwrap() as u32,
            digest,
            e["description"].as_str().unwrap().as_bytes(),
        );
        if i == 0 {
            // TDVF also logs informational events; they must be skipped.
            log.raw_event(1, EV_NO_ACTION, &[(SHA384, vec![0; 48])], b"informational");
        }
    }
    log.padded(1024)
}

/// Index of the first event of the shape with this source.
fn index_of(b: &Boot, shape: &str, source: &str) -> usize {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&b.manifest).unwrap()).unwrap();
    let sh = m["manifest"]["shapes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == shape)
        .unwrap()
        .clone();
    sh["events"]
        .as_array()
        .unwrap()
        .iter()
        .position(|e| e["source"] == source)
        .unwrap()
}

#[test]
fn replay_only_prints_registers_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = LogBuilder::sha384_only();
    b.event(0, EV_SEPARATOR, sha384(b"a"), b"")
        .event(3, EV_EVENT_TAG, sha384(b"b"), b"cocoon");
    let log = fx::write(dir.path(), "CCEL.data", &b.padded(100));
    let o = run(&["eventlog", "replay", "--log", s(&log)]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let rtmr0 = hex::encode(extend([0; 48], sha384(b"a")));
    assert!(out.contains(&format!("RTMR0 = {rtmr0}")), "{out}");
    assert!(out.contains("replay only"), "{out}");

    let o = run(&["eventlog", "replay", "--log", s(&log), "--json"]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["transcript"]["registers"][0]["replayed"], rtmr0);
    assert_eq!(
        v["transcript"]["registers"][3]["replayed"],
        hex::encode(extend([0; 48], sha384(b"b")))
    );
    assert_eq!(v["matches"], serde_json::Value::Null);
    assert_eq!(v["transcript"]["entries"].as_array().unwrap().len(), 2);

    // With a CCEL table whose log area holds the log.
    let table = fx::write(
        dir.path(),
        "CCEL",
        &ccel_table(2, (b.bytes.len() + 100) as u64, 0x7fbe_0000),
    );
    let o = run(&[
        "eventlog",
        "replay",
        "--log",
        s(&log),
        "--ccel-table",
        s(&table),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("log area"), "{}", text(&o.stdout));
    // ... and one whose area is too small for it.
    let small = fx::write(dir.path(), "CCEL.small", &ccel_table(2, 64, 0));
    let o = run(&[
        "eventlog",
        "replay",
        "--log",
        s(&log),
        "--ccel-table",
        s(&small),
    ]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("LAML"), "{}", text(&o.stderr));
}

#[test]
fn malformed_log_exits_2_with_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = LogBuilder::sha384_only();
    b.event(0, EV_SEPARATOR, sha384(b"a"), b"abc");
    let cut = fx::write(dir.path(), "cut", &b.bytes[..b.bytes.len() - 2]);
    let o = run(&["eventlog", "replay", "--log", s(&cut)]);
    assert_eq!(code(&o), 2);
    let err = text(&o.stderr);
    assert!(err.contains("byte offset") && err.contains("cut"), "{err}");
    let o = run(&["eventlog", "replay", "--log", s(&dir.path().join("absent"))]);
    assert_eq!(code(&o), 2);
}

#[test]
fn matches_manifest_and_explains_a_different_cmdline() {
    let b = boot();
    let log_path = b.dir.path().join("CCEL.data");
    std::fs::write(&log_path, log_from_manifest(&b, "large", None)).unwrap();
    let o = run(&[
        "eventlog",
        "replay",
        "--log",
        s(&log_path),
        "--expect",
        s(&b.manifest),
        "--shape",
        "large",
    ]);
    assert_eq!(code(&o), 0, "{}\n{}", text(&o.stdout), text(&o.stderr));
    assert!(
        text(&o.stdout).contains("OK: every covered register matches"),
        "{}",
        text(&o.stdout)
    );
    assert!(text(&o.stderr).contains("signature not checked"));

    // The same log against the other shape: RTMR0 (TD HOB: memory size) differs first.
    let o = run(&[
        "eventlog",
        "replay",
        "--log",
        s(&log_path),
        "--expect",
        s(&b.manifest),
        "--shape",
        "small",
    ]);
    assert_eq!(code(&o), 1);
    let out = text(&o.stdout);
    assert!(
        out.contains("FIRST MISMATCH: RTMR0 event #1 differs: expected td-hob"),
        "{out}"
    );

    // A different command line.
    let i = index_of(&b, "large", "cmdline");
    std::fs::write(&log_path, log_from_manifest(&b, "large", Some(i))).unwrap();
    let o = run(&[
        "eventlog",
        "replay",
        "--log",
        s(&log_path),
        "--expect",
        s(&b.manifest),
        "--shape",
        "large",
        "--json",
    ]);
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["matches"], false);
    let first = v["first_mismatch"].as_str().unwrap();
    assert!(
        first.starts_with("RTMR2 event #1 differs: expected cmdline"),
        "{first}"
    );
    assert!(
        first.contains(&hex::encode(sha384(b"something else"))),
        "{first}"
    );
    assert!(
        first.ends_with("the kernel command line differs"),
        "{first}"
    );

    // Two shapes and no --shape: the user must choose.
    let o = run(&[
        "eventlog",
        "replay",
        "--log",
        s(&log_path),
        "--expect",
        s(&b.manifest),
    ]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("--shape"), "{}", text(&o.stderr));

    // --pubkey refuses the unsigned manifest.
    let key = b.dir.path().join("k");
    assert_eq!(code(&run(&["keygen", "--out", s(&key)])), 0);
    let pubkey = b.dir.path().join("k.pub");
    let o = run(&[
        "eventlog",
        "replay",
        "--log",
        s(&log_path),
        "--expect",
        s(&b.manifest),
        "--shape",
        "large",
        "--pubkey",
        s(&pubkey),
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("not signed"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn compares_with_events_computed_from_files() {
    let b = boot();
    let log_path = b.dir.path().join("CCEL.data");
    std::fs::write(&log_path, log_from_manifest(&b, "large", None)).unwrap();
    let args = |cmdline: &'static str, initrd: bool| {
        let mut a = vec![
            "eventlog".to_string(),
            "replay".into(),
            "--log".into(),
            s(&log_path).into(),
            "--firmware".into(),
            s(&b.fw).into(),
            "--kernel".into(),
            s(&b.kernel).into(),
            "--cmdline".into(),
            cmdline.into(),
            "--cpus".into(),
            "4".into(),
            "--memory".into(),
            "4G".into(),
            "--gpus".into(),
            "1".into(),
            "--acpi".into(),
            s(&b.acpi).into(),
        ];
        if initrd {
            a.extend(["--initrd".to_string(), s(&b.initrd).into()]);
        }
        a
    };
    let o = run(&args(CMDLINE, true)
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert_eq!(code(&o), 0, "{}\n{}", text(&o.stdout), text(&o.stderr));

    let o = run(&args("console=hvc0", true)
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert_eq!(code(&o), 1);
    assert!(
        text(&o.stdout).contains("the kernel command line differs"),
        "{}",
        text(&o.stdout)
    );

    // Without the initrd the load options and the initrd event both differ; the first
    // difference is the command line event (RTMR2 #1).
    let o = run(&args(CMDLINE, false)
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert_eq!(code(&o), 1);
    assert!(
        text(&o.stdout).contains("FIRST MISMATCH: RTMR2 event #1"),
        "{}",
        text(&o.stdout)
    );
}

/// With real Debian OVMF and kernel (ci/test exports COCOON_BOOT_INPUTS from
/// tests/fixtures/fetch-boot-inputs): build a signed manifest, then check that a log holding
/// its events matches it and that a log with another initrd is explained.
#[test]
fn real_boot_inputs_end_to_end() {
    let Some(dir) = std::env::var_os("COCOON_BOOT_INPUTS") else {
        eprintln!(
            "COCOON_BOOT_INPUTS is not set: skipping the end-to-end test on real boot inputs"
        );
        return;
    };
    let inputs = PathBuf::from(dir);
    let tmp = tempfile::tempdir().unwrap();
    let acpi = fx::acpi_dir(tmp.path());
    let key = tmp.path().join("k");
    assert_eq!(code(&run(&["keygen", "--out", s(&key)])), 0);
    let b = Boot {
        fw: inputs.join("OVMF.fd"),
        kernel: inputs.join("vmlinuz"),
        initrd: inputs.join("initrd.img"),
        acpi,
        manifest: tmp.path().join("m.json"),
        dir: tmp,
    };
    let shape = format!("c2-m2g:2:2G:0:{}", s(&b.acpi));
    let o = run(&[
        "manifest",
        "build",
        "--firmware",
        s(&b.fw),
        "--kernel",
        s(&b.kernel),
        "--initrd",
        s(&b.initrd),
        "--cmdline",
        CMDLINE,
        "--shape",
        &shape,
        "--release",
        "0.1.0",
        "--commit",
        "90f5374",
        "--key",
        s(&key),
        "--out",
        s(&b.manifest),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let log_path = b.dir.path().join("CCEL.data");
    std::fs::write(&log_path, log_from_manifest(&b, "c2-m2g", None)).unwrap();
    let pubkey = b.dir.path().join("k.pub");
    let o = run(&[
        "eventlog",
        "replay",
        "--log",
        s(&log_path),
        "--expect",
        s(&b.manifest),
        "--pubkey",
        s(&pubkey),
    ]);
    assert_eq!(code(&o), 0, "{}\n{}", text(&o.stdout), text(&o.stderr));

    let i = index_of(&b, "c2-m2g", "initrd");
    std::fs::write(&log_path, log_from_manifest(&b, "c2-m2g", Some(i))).unwrap();
    let o = run(&[
        "eventlog",
        "replay",
        "--log",
        s(&log_path),
        "--expect",
        s(&b.manifest),
        "--pubkey",
        s(&pubkey),
    ]);
    assert_eq!(code(&o), 1);
    assert!(
        text(&o.stdout).contains("FIRST MISMATCH: RTMR2 event #2 differs: expected initrd"),
        "{}",
        text(&o.stdout)
    );
}
