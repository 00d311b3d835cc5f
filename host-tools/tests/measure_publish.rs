//! `cocoon-host measure` and `publish` as a user runs them, on the real Debian trixie OVMF and
//! kernel that `tests/fixtures/fetch-boot-inputs` fetches into `COCOON_BOOT_INPUTS` (the tests
//! that need them print SKIPPED without it, and fail when `CI=true`). The ACPI blobs are
//! synthetic (well-formed, different per shape): no QEMU capture is available here.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cocoon_measure::boot::{compute, BootInputs, ComputeOptions, VmShape};
use cocoon_measure::manifest::Manifest;
use common::*;
use serde_json::Value;

const CMDLINE: &str = "console=ttyS0 root=/dev/vda ro cocoon.test=1";
const OWNER: &str = "UQAAAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eH0Bm";

fn boot_inputs() -> Option<PathBuf> {
    match std::env::var_os("COCOON_BOOT_INPUTS") {
        Some(d) => {
            let d = PathBuf::from(d);
            for f in ["OVMF.fd", "vmlinuz", "initrd.img"] {
                assert!(
                    d.join(f).is_file(),
                    "COCOON_BOOT_INPUTS={} lacks {f}; run tests/fixtures/fetch-boot-inputs",
                    d.display()
                );
            }
            Some(d)
        }
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but COCOON_BOOT_INPUTS is unset: run tests/fixtures/fetch-boot-inputs and export its output directory")
        }
        None => {
            eprintln!("SKIPPED: COCOON_BOOT_INPUTS is unset (run tests/fixtures/fetch-boot-inputs and export its output directory)");
            None
        }
    }
}

fn host(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cocoon-host"))
        .args(args)
        .output()
        .unwrap()
}

/// The `cocoon-measure` binary of this workspace build, next to `cocoon-host`. `cargo test
/// --workspace` (ci/test) builds it; `cargo test -p cocoon-host` alone may not.
fn cocoon_measure_bin() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_BIN_EXE_cocoon-host")).with_file_name("cocoon-measure");
    if p.is_file() {
        return Some(p);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {} is missing: run the tests with `cargo test --workspace`",
        p.display()
    );
    eprintln!(
        "SKIPPED (cocoon-measure CLI comparison): {} is not built; `cargo build -p cocoon-measure` first",
        p.display()
    );
    None
}

fn ok(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(out));
    stdout(out)
}

fn fails(out: &Output, code: i32, needle: &str) {
    assert_eq!(out.status.code(), Some(code), "stderr: {}", stderr(out));
    assert!(
        stderr(out).contains(needle),
        "expected {needle:?} in: {}",
        stderr(out)
    );
}

/// Well-formed ACPI blobs (128-byte loader commands, a 36-byte RSDP, tables) that differ per
/// `seed`, as QEMU's differ per shape.
fn acpi_dir(dir: &Path, seed: u8) -> PathBuf {
    let d = dir.join(format!("acpi-{seed}"));
    fs::create_dir_all(d.join("etc/acpi")).unwrap();
    let loader: Vec<u8> = (0..384u32).map(|i| (i as u8).wrapping_mul(seed)).collect();
    let mut rsdp = b"RSD PTR ".to_vec();
    rsdp.resize(36, seed);
    let tables: Vec<u8> = b"DSDT".iter().copied().chain([seed; 200]).collect();
    fs::write(d.join("etc/table-loader"), loader).unwrap();
    fs::write(d.join("etc/acpi/rsdp"), rsdp).unwrap();
    fs::write(d.join("etc/acpi/tables"), tables).unwrap();
    d
}

/// A work directory with `release/` laid out as `launch` expects (links to the Debian files).
struct Work {
    dir: tempfile::TempDir,
    inputs: PathBuf,
}

impl Work {
    fn new(inputs: PathBuf) -> Work {
        let w = Work {
            dir: tempfile::tempdir().unwrap(),
            inputs,
        };
        let r = w.release();
        fs::create_dir_all(&r).unwrap();
        for (from, to) in [
            ("OVMF.fd", "OVMF.fd"),
            ("vmlinuz", "image.vmlinuz"),
            ("initrd.img", "image.initrd"),
        ] {
            std::os::unix::fs::symlink(w.inputs.join(from), r.join(to)).unwrap();
        }
        fs::write(r.join("image.cmdline"), format!("{CMDLINE}\n")).unwrap();
        // The root disk launch attaches; not measured (its root hash is on the cmdline).
        fs::write(r.join("image.raw"), b"root disk").unwrap();
        w
    }
    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn s(&self, name: &str) -> String {
        self.p(name).to_str().unwrap().to_string()
    }
    fn release(&self) -> PathBuf {
        self.p("release")
    }
    /// The boot files as explicit flags.
    fn file_args(&self) -> Vec<String> {
        let r = self.release();
        let f = |n: &str| r.join(n).to_str().unwrap().to_string();
        vec![
            "--firmware".into(),
            f("OVMF.fd"),
            "--kernel".into(),
            f("image.vmlinuz"),
            "--initrd".into(),
            f("image.initrd"),
            "--cmdline-file".into(),
            f("image.cmdline"),
        ]
    }
    fn measure(&self, extra: &[&str]) -> Output {
        let mut args: Vec<String> = vec!["measure".into()];
        args.extend(self.file_args());
        args.extend(extra.iter().map(|s| s.to_string()));
        host(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }
    fn measure_json(&self, extra: &[&str]) -> Value {
        let mut e = extra.to_vec();
        e.push("--json");
        serde_json::from_str(&ok(&self.measure(&e))).unwrap()
    }
}

fn library(inputs: &Path, cpus: u32, memory: u64, acpi: Option<PathBuf>) -> Value {
    let m = compute(
        &BootInputs {
            firmware: inputs.join("OVMF.fd"),
            kernel: inputs.join("vmlinuz"),
            initrd: Some(inputs.join("initrd.img")),
            cmdline: CMDLINE.into(),
            shape: VmShape {
                cpus,
                memory_bytes: memory,
                gpus: 0,
            },
            acpi_dir: acpi,
        },
        &ComputeOptions::default(),
    )
    .unwrap();
    serde_json::json!({
        "mrtd": hex_encode(&m.mrtd),
        "rtmr0": m.rtmr0.map(|r| hex_encode(&r)),
        "rtmr1": hex_encode(&m.rtmr1),
        "rtmr2": hex_encode(&m.rtmr2),
    })
}

fn registers(v: &Value) -> Value {
    serde_json::json!({"mrtd": v["mrtd"], "rtmr0": v["rtmr0"], "rtmr1": v["rtmr1"], "rtmr2": v["rtmr2"]})
}

#[test]
fn measure_equals_cocoon_measure_compute() {
    let Some(inputs) = boot_inputs() else { return };
    let w = Work::new(inputs.clone());
    let acpi = acpi_dir(w.dir.path(), 3);
    let acpi_s = acpi.to_str().unwrap();

    let got = w.measure_json(&[
        "--cpus",
        "2",
        "--memory",
        "2G",
        "--gpus",
        "0",
        "--acpi-dir",
        acpi_s,
    ]);
    assert_eq!(
        got["shape"],
        serde_json::json!({"cpus": 2, "memory_bytes": 2u64 << 30, "gpus": 0})
    );
    assert!(got["rtmr0"].is_string(), "{got}");
    assert_eq!(got["rtmr3"], Value::Null);
    assert_eq!(got["identity_sha384"], Value::Null);
    assert_eq!(
        registers(&got),
        library(&inputs, 2, 2 << 30, Some(acpi.clone()))
    );

    if let Some(bin) = cocoon_measure_bin() {
        let out = Command::new(bin)
            .args(["compute", "--firmware"])
            .arg(inputs.join("OVMF.fd"))
            .arg("--kernel")
            .arg(inputs.join("vmlinuz"))
            .arg("--initrd")
            .arg(inputs.join("initrd.img"))
            .args([
                "--cmdline",
                CMDLINE,
                "--memory",
                "2G",
                "--cpus",
                "2",
                "--acpi",
            ])
            .arg(&acpi)
            .arg("--json")
            .output()
            .unwrap();
        let theirs: Value = serde_json::from_str(&ok(&out)).unwrap();
        assert_eq!(registers(&got), registers(&theirs));
    }

    // Without ACPI blobs RTMR0 is unknown; the other registers do not change. Memory only
    // enters RTMR0 (the TD HOB) with the default model.
    let no_acpi = w.measure_json(&["--cpus", "2", "--memory", "2048M"]);
    assert_eq!(no_acpi["rtmr0"], Value::Null);
    for k in ["mrtd", "rtmr1", "rtmr2"] {
        assert_eq!(no_acpi[k], got[k], "{k}");
    }
    let text = ok(&w.measure(&["--cpus", "2", "--memory", "2G"]));
    assert!(
        text.contains(&format!("MRTD   {}", got["mrtd"].as_str().unwrap())),
        "{text}"
    );
    assert!(
        text.contains("RTMR0  (not computed: no --acpi-dir"),
        "{text}"
    );

    // Other memory, other RTMR0 (TD HOB).
    let big = w.measure_json(&["--cpus", "2", "--memory", "4G", "--acpi-dir", acpi_s]);
    assert_ne!(big["rtmr0"], got["rtmr0"]);
    assert_eq!(
        registers(&big),
        library(&inputs, 2, 4 << 30, Some(acpi.clone()))
    );

    // --image-dir and a named shape from a shapes file give the same values.
    fs::write(
        w.p("shapes.toml"),
        format!(
            "[[shape]]\nname = \"c2-m2g\"\ncpus = 2\nmemory = \"2G\"\nacpi_dir = \"{acpi_s}\"\n"
        ),
    )
    .unwrap();
    let out = host(&[
        "measure",
        "--image-dir",
        &w.s("release"),
        "--shapes",
        &w.s("shapes.toml"),
        "--shape",
        "c2-m2g",
        "--json",
    ]);
    let named: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(named["shape_name"], "c2-m2g");
    assert_eq!(registers(&named), registers(&got));

    // An RTMR3 pin gives the identity hashes.
    let events = cocoon_measure::rtmr3::to_json(&[cocoon_measure::rtmr3::Rtmr3Event::new(
        "cocoon.mode",
        "production",
    )
    .unwrap()]);
    fs::write(w.p("rtmr3.json"), events).unwrap();
    let pinned = w.measure_json(&[
        "--cpus",
        "2",
        "--memory",
        "2G",
        "--acpi-dir",
        acpi_s,
        "--rtmr3-events",
        &w.s("rtmr3.json"),
    ]);
    assert_eq!(
        pinned["rtmr3"],
        hex_encode(
            &cocoon_measure::rtmr3::replay(&[cocoon_measure::rtmr3::Rtmr3Event::new(
                "cocoon.mode",
                "production"
            )
            .unwrap()])
            .value()
        )
    );
    assert_eq!(pinned["identity_sha384"].as_str().map(str::len), Some(96));
    assert_eq!(pinned["cocoon_image_hash"].as_str().map(str::len), Some(64));
}

/// A launch config for the release in `w` with a packed model disk.
fn launch_config(w: &Work, vm: &str) -> PathBuf {
    let mut gguf = b"GGUF".to_vec();
    gguf.extend((0..5000u32).map(|i| (i % 251) as u8));
    fs::write(w.p("m.gguf"), gguf).unwrap();
    let info = cocoon_host::model_pack::pack(&w.p("m.gguf"), &w.p("model")).unwrap();
    fs::create_dir_all(w.p("worker-config")).unwrap();
    let text = format!(
        "owner_address = \"{OWNER}\"\nmanifest = \"manifest.json\"\n\n[image]\ndir = \"release\"\n\n\
         [vm]\n{vm}\n\n[data_disk]\npath = \"data.img\"\nsize = \"1G\"\n\n\
         [model_disk]\npath = \"model/model.img\"\nverity = \"model/model.verity\"\nroot_hash = \"{}\"\n\n\
         [config_share]\ndir = \"worker-config\"\n\n[agent]\nport = 18443\n",
        info.root_hash
    );
    fs::write(w.p("launch.toml"), text).unwrap();
    w.p("launch.toml")
}

/// The value after `flag` in a printed argv (one shell-quoted argument per line).
fn arg_after(argv: &[String], flag: &str) -> String {
    let i = argv
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} not in argv"));
    argv[i + 1].trim_matches('\'').to_string()
}

#[test]
fn publish_then_launch_print_and_measure_agree() {
    let Some(inputs) = boot_inputs() else { return };
    let w = Work::new(inputs);
    let (private, public, _) = write_keypair(w.dir.path(), "release.key", 9);
    let a2 = acpi_dir(w.dir.path(), 2);
    let a4 = acpi_dir(w.dir.path(), 4);
    fs::write(
        w.p("shapes.toml"),
        format!(
            "[[shape]]\nname = \"c2-m2g\"\ncpus = 2\nmemory = \"2G\"\nacpi_dir = \"{}\"\n\n\
             [[shape]]\nname = \"c4-m3g\"\ncpus = 4\nmemory = 3221225472\nacpi_dir = \"{}\"\n",
            a2.display(),
            a4.display()
        ),
    )
    .unwrap();
    let manifest = w.p("manifest.json");
    let out = host(&[
        "publish",
        "--image-dir",
        &w.s("release"),
        "--shapes",
        &w.s("shapes.toml"),
        "--release",
        "2.0.0",
        "--commit",
        "abcdef0123456",
        "--key",
        private.to_str().unwrap(),
        "--out",
        manifest.to_str().unwrap(),
        "--embed-acpi",
    ]);
    let text = ok(&out);
    assert!(
        text.contains("signed by") && text.contains("verified"),
        "{text}"
    );

    // The file verifies with the public key, independently of cocoon-host.
    let key = cocoon_measure::manifest::parse_verifying_key(&fs::read_to_string(&public).unwrap())
        .unwrap();
    let m = Manifest::parse_verified(&fs::read(&manifest).unwrap(), &key).unwrap();
    assert_eq!(m.body.release, "2.0.0");
    assert_eq!(m.body.image.cmdline, CMDLINE);
    assert_eq!(m.body.shapes.len(), 2);
    assert!(m.body.shapes[0]
        .acpi
        .iter()
        .all(|b| b.data_base64.is_some()));
    if let Some(bin) = cocoon_measure_bin() {
        let out = Command::new(bin)
            .args(["manifest", "verify", "--pubkey"])
            .arg(&public)
            .arg(&manifest)
            .output()
            .unwrap();
        ok(&out);
    }

    // launch --print for the 4-vCPU config picks that shape; measuring exactly what the argv
    // boots (its -smp, -m, -bios, -kernel, -initrd, -append) gives the manifest's registers.
    let cfg = launch_config(&w, "vcpus = 4\nmemory = \"3G\"");
    let fake = FakeHost::ready();
    let out = fake.run(&[
        "launch",
        cfg.to_str().unwrap(),
        "--print",
        "--pubkey",
        public.to_str().unwrap(),
    ]);
    let argv: Vec<String> = ok(&out).lines().map(String::from).collect();
    assert!(stderr(&out).contains("shape c4-m3g"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("signature verified"),
        "{}",
        stderr(&out)
    );
    fs::write(w.p("argv.cmdline"), arg_after(&argv, "-append")).unwrap();
    let measured = {
        let out = host(&[
            "measure",
            "--firmware",
            &arg_after(&argv, "-bios"),
            "--kernel",
            &arg_after(&argv, "-kernel"),
            "--initrd",
            &arg_after(&argv, "-initrd"),
            "--cmdline-file",
            &w.s("argv.cmdline"),
            "--cpus",
            &arg_after(&argv, "-smp"),
            "--memory",
            &arg_after(&argv, "-m"),
            "--acpi-dir",
            a4.to_str().unwrap(),
            "--json",
        ]);
        serde_json::from_str::<Value>(&ok(&out)).unwrap()
    };
    let entry = m.body.shape("c4-m3g").unwrap();
    assert_eq!(measured["shape"]["cpus"], entry.cpus);
    assert_eq!(measured["shape"]["memory_bytes"], entry.memory_bytes);
    let r = &entry.registers;
    assert_eq!(measured["mrtd"], hex_encode(&r.mrtd));
    assert_eq!(measured["rtmr0"], hex_encode(&r.rtmr0));
    assert_eq!(measured["rtmr1"], hex_encode(&r.rtmr1));
    assert_eq!(measured["rtmr2"], hex_encode(&r.rtmr2));
    // `measure --config` reads the same config launch does and agrees.
    let out = host(&[
        "measure",
        "--config",
        cfg.to_str().unwrap(),
        "--acpi-dir",
        a4.to_str().unwrap(),
        "--json",
    ]);
    let by_config: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(registers(&by_config), registers(&measured));
    assert_eq!(by_config["shape"], measured["shape"]);
    // The two shapes differ in RTMR0 (TD HOB and ACPI) only.
    let other = &m.body.shape("c2-m2g").unwrap().registers;
    assert_ne!(other.rtmr0, r.rtmr0);
    assert_eq!((other.rtmr1, other.rtmr2), (r.rtmr1, r.rtmr2));

    // A shape the manifest lacks is refused.
    let cfg8 = launch_config(&w, "vcpus = 8\nmemory = \"3G\"");
    fails(
        &fake.run(&["launch", cfg8.to_str().unwrap(), "--print"]),
        1,
        "has no entry in",
    );

    // Tampered: c4-m3g's RTMR0 replaced by c2-m2g's (its events no longer replay to it); and
    // an intact body re-signed by another key.
    let original = fs::read_to_string(&manifest).unwrap();
    fs::write(
        &manifest,
        original.replacen(&hex_encode(&r.rtmr0), &hex_encode(&other.rtmr0), 1),
    )
    .unwrap();
    let cfg = launch_config(&w, "vcpus = 4\nmemory = \"3G\"");
    fails(
        &fake.run(&[
            "launch",
            cfg.to_str().unwrap(),
            "--print",
            "--pubkey",
            public.to_str().unwrap(),
        ]),
        1,
        "manifest field",
    );
    let (_, _, other_key) = write_keypair(w.dir.path(), "other.key", 10);
    let mut resigned = Manifest::parse(original.as_bytes()).unwrap();
    resigned.sign(&other_key);
    fs::write(&manifest, resigned.to_json()).unwrap();
    fails(
        &fake.run(&[
            "launch",
            cfg.to_str().unwrap(),
            "--print",
            "--pubkey",
            public.to_str().unwrap(),
        ]),
        1,
        "not by the expected key",
    );
}

#[test]
fn publish_with_shape_specs_matches_measure() {
    let Some(inputs) = boot_inputs() else { return };
    let w = Work::new(inputs);
    let (private, public, _) = write_keypair(w.dir.path(), "k", 11);
    let a = acpi_dir(w.dir.path(), 7);
    let mut args: Vec<String> = vec!["publish".into()];
    args.extend(w.file_args());
    args.extend(
        [
            "--shape",
            &format!("c2-m2g:2:2G:0:{}", a.display()),
            "--release",
            "2.0.1",
            "--commit",
            "0000000",
            "--key",
            private.to_str().unwrap(),
            "--out",
            &w.s("m.json"),
        ]
        .map(String::from),
    );
    ok(&host(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    let key = cocoon_measure::manifest::parse_verifying_key(&fs::read_to_string(&public).unwrap())
        .unwrap();
    let m = Manifest::parse_verified(&fs::read(w.p("m.json")).unwrap(), &key).unwrap();
    let entry = m.body.shape("c2-m2g").unwrap();
    assert!(entry.acpi.iter().all(|b| b.data_base64.is_none()));
    let measured = w.measure_json(&[
        "--cpus",
        "2",
        "--memory",
        "2G",
        "--acpi-dir",
        a.to_str().unwrap(),
    ]);
    assert_eq!(measured["rtmr0"], hex_encode(&entry.registers.rtmr0));
    assert_eq!(measured["rtmr2"], hex_encode(&entry.registers.rtmr2));
}

/// Bad input that needs no real boot files: every case exits 2 and names what is wrong.
#[test]
fn bad_inputs_give_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n).to_str().unwrap().to_string();
    for (n, body) in [
        ("fw", "not a firmware"),
        ("k", "not a kernel"),
        ("i", "initrd"),
    ] {
        fs::write(d.path().join(n), body).unwrap();
    }
    fs::write(d.path().join("c"), "console=ttyS0\n").unwrap();
    let files = |fw: &str| {
        vec![
            "--firmware".to_string(),
            p(fw),
            "--kernel".into(),
            p("k"),
            "--initrd".into(),
            p("i"),
            "--cmdline-file".into(),
            p("c"),
        ]
    };
    let run = |mut head: Vec<String>, tail: &[&str]| {
        head.extend(tail.iter().map(|s| s.to_string()));
        host(&head.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let measure = |fw: &str, tail: &[&str]| {
        let mut a = vec!["measure".to_string()];
        a.extend(files(fw));
        run(a, tail)
    };
    let shape = ["--cpus", "2", "--memory", "2G"];

    fails(&measure("missing.fd", &shape), 2, "missing.fd");
    fails(&measure("fw", &shape), 2, "firmware");
    fails(
        &measure("fw", &["--cpus", "0", "--memory", "2G"]),
        2,
        "0 vCPUs",
    );
    fails(
        &measure("fw", &["--cpus", "2", "--memory", "2Q"]),
        2,
        "--memory",
    );
    fails(
        &measure("fw", &["--cpus", "2", "--memory", "512M"]),
        2,
        "at least 1 GiB",
    );
    fails(&measure("fw", &["--cpus", "2"]), 2, "--memory");
    fails(
        &host(&["measure", "--cpus", "2", "--memory", "2G"]),
        2,
        "give the release files",
    );
    fails(
        &host(&["measure", "--config", &p("none.toml")]),
        2,
        "none.toml",
    );
    fails(
        &host(&["measure", "--config", &p("c"), "--cpus", "2"]),
        2,
        "cannot be used with",
    );
    fs::write(
        d.path().join("shapes.toml"),
        "[[shape]]\nname = \"a\"\ncpus = 2\nmemory = \"2G\"\n",
    )
    .unwrap();
    fails(
        &measure("fw", &["--shapes", &p("shapes.toml"), "--shape", "b"]),
        2,
        "no shape named \"b\" (shapes: a)",
    );
    fails(
        &measure("fw", &["--shapes", &p("none.toml"), "--shape", "b"]),
        2,
        "none.toml",
    );
    fails(&measure("fw", &["--shape", "a"]), 2, "--shapes");
    fs::write(d.path().join("c"), "a\nb\n").unwrap();
    fails(&measure("fw", &shape), 2, "single line");
    fs::write(d.path().join("c"), "console=ttyS0\n").unwrap();
    fs::write(d.path().join("r3.json"), "{}").unwrap();
    fails(
        &measure(
            "fw",
            &[
                "--cpus",
                "2",
                "--memory",
                "2G",
                "--rtmr3-events",
                &p("r3.json"),
            ],
        ),
        2,
        "RTMR3 event list",
    );

    // publish: bad keys, bad shapes, no ACPI directory, bad commit.
    fs::write(d.path().join("key"), format!("{}\n", "ab".repeat(32))).unwrap();
    let publish = |key: &str, tail: &[&str]| {
        let mut a = vec!["publish".to_string()];
        a.extend(files("fw"));
        a.extend(
            [
                "--release",
                "1",
                "--commit",
                "abcdef0",
                "--key",
                key,
                "--out",
            ]
            .map(String::from),
        );
        a.push(p("out.json"));
        run(a, tail)
    };
    let s = ["--shape", "a:2:2G:0:acpi"];
    fails(&publish(&p("key"), &s), 2, "chmod 600");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(d.path().join("key"), fs::Permissions::from_mode(0o600)).unwrap();
    let out = publish(&p("nokey"), &s);
    fails(&out, 2, "private key");
    // The cause is printed once, not once per error layer.
    assert_eq!(
        stderr(&out).matches("No such file").count(),
        1,
        "{}",
        stderr(&out)
    );
    fs::write(d.path().join("bad"), "xyz\n").unwrap();
    fs::set_permissions(d.path().join("bad"), fs::Permissions::from_mode(0o600)).unwrap();
    fails(&publish(&p("bad"), &s), 2, "64 lowercase hex");
    fails(
        &publish(&p("key"), &["--shape", "a:2:2G"]),
        2,
        "NAME:CPUS:MEMORY:GPUS:ACPI_DIR",
    );
    fails(
        &publish(
            &p("key"),
            &["--shape", "a:2:2G:0:x", "--shape", "a:4:4G:0:y"],
        ),
        2,
        "used twice",
    );
    fails(
        &publish(&p("key"), &["--shape", "a:2:2G:0:"]),
        2,
        "has no ACPI directory",
    );
    fails(
        &publish(&p("key"), &["--shape", "a:2:2G:0:missing-acpi"]),
        2,
        "missing-acpi",
    );
    let acpi = acpi_dir(d.path(), 1);
    fails(
        &publish(
            &p("key"),
            &["--shape", &format!("a:2:2G:0:{}", acpi.display())],
        ),
        2,
        "firmware",
    );
    assert!(
        !d.path().join("out.json").exists(),
        "nothing is written on failure"
    );
}

#[test]
fn publish_refuses_a_bad_commit_and_writes_nothing() {
    let Some(inputs) = boot_inputs() else { return };
    let w = Work::new(inputs);
    let (private, _, _) = write_keypair(w.dir.path(), "k", 12);
    let a = acpi_dir(w.dir.path(), 5);
    let mut args: Vec<String> = vec!["publish".into()];
    args.extend(w.file_args());
    args.extend(
        [
            "--shape",
            &format!("c2:2:2G:0:{}", a.display()),
            "--release",
            "1",
            "--commit",
            "NOT-HEX",
            "--key",
            private.to_str().unwrap(),
            "--out",
            &w.s("m.json"),
        ]
        .map(String::from),
    );
    fails(
        &host(&args.iter().map(String::as_str).collect::<Vec<_>>()),
        2,
        "commit",
    );
    assert!(!w.p("m.json").exists());
}
