//! `keygen` and `manifest build|sign|verify|show` through the binary, on synthetic boot inputs.

mod compute_fixtures;

use compute_fixtures as fx;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn run(args: &[&str]) -> Output {
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

struct Fixture {
    dir: tempfile::TempDir,
    fw: PathBuf,
    kernel: PathBuf,
    initrd: PathBuf,
    acpi: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        Self {
            fw: fx::write(root, "OVMF.fd", &fx::firmware()),
            kernel: fx::write(root, "vmlinuz", &fx::kernel()),
            initrd: fx::write(root, "initrd.img", b"an initrd"),
            acpi: fx::acpi_dir(root),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn s(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    /// `manifest build` with two shapes; returns the command's output.
    fn build(&self, out: &Path, extra: &[&str]) -> Output {
        let small = format!("small:2:2G:0:{}", Self::s(&self.acpi));
        let large = format!("large:4:4G:1:{}", Self::s(&self.acpi));
        let mut args = vec![
            "manifest",
            "build",
            "--firmware",
            Self::s(&self.fw),
            "--kernel",
            Self::s(&self.kernel),
            "--initrd",
            Self::s(&self.initrd),
            "--cmdline",
            "console=ttyS0 root=/dev/vda ro",
            "--shape",
            &small,
            "--shape",
            &large,
            "--release",
            "0.1.0",
            "--commit",
            "90f5374",
            "--out",
            Self::s(out),
        ];
        args.extend_from_slice(extra);
        run(&args)
    }

    fn keygen(&self, name: &str) -> (PathBuf, PathBuf, String) {
        let k = self.path(name);
        let o = run(&["keygen", "--out", Self::s(&k)]);
        assert_eq!(code(&o), 0, "{}", text(&o.stderr));
        let mut pub_path = k.clone().into_os_string();
        pub_path.push(".pub");
        (k, pub_path.into(), text(&o.stdout))
    }
}

#[test]
fn keygen_writes_private_0600_and_public_and_never_overwrites() {
    let f = Fixture::new();
    let (k, p, stdout) = f.keygen("release.key");
    assert_eq!(stdout.len(), 65);
    assert!(stdout
        .trim()
        .bytes()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(std::fs::read_to_string(&p).unwrap(), stdout);
    let private = std::fs::read_to_string(&k).unwrap();
    assert_eq!(private.trim().len(), 64);
    assert_ne!(private, stdout);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&k).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let again = run(&["keygen", "--out", k.to_str().unwrap()]);
    assert_eq!(code(&again), 2);
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&k).unwrap(),
        private,
        "the key was not touched"
    );
    // An existing .pub alone also blocks.
    let k2 = f.path("other.key");
    std::fs::write(f.path("other.key.pub"), "x").unwrap();
    assert_eq!(code(&run(&["keygen", "--out", k2.to_str().unwrap()])), 2);
    assert!(!k2.exists());
}

#[test]
fn build_sign_verify_show_and_tamper() {
    let f = Fixture::new();
    let (k, p, _) = f.keygen("k");
    let m = f.path("manifest.json");
    let o = f.build(&m, &["--embed-acpi"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let ms = m.to_str().unwrap();
    let ps = p.to_str().unwrap();

    // Unsigned: refused.
    let o = run(&["manifest", "verify", "--pubkey", ps, ms]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("not signed"),
        "{}",
        text(&o.stderr)
    );

    let o = run(&["manifest", "sign", "--key", k.to_str().unwrap(), ms]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let o = run(&["manifest", "verify", "--pubkey", ps, "--shape", "large", ms]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.starts_with("OK: manifest"), "{out}");
    assert!(
        out.contains("release 0.1.0") && out.contains("small, large"),
        "{out}"
    );
    assert!(out.contains("RTMR0"), "{out}");

    // show --json gives the body; its values are the ones `compute` prints.
    let o = run(&["manifest", "show", "--json", ms]);
    assert_eq!(code(&o), 0);
    let body: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let o = run(&[
        "compute",
        "--json",
        "--firmware",
        f.fw.to_str().unwrap(),
        "--kernel",
        f.kernel.to_str().unwrap(),
        "--initrd",
        f.initrd.to_str().unwrap(),
        "--cmdline",
        "console=ttyS0 root=/dev/vda ro",
        "--cpus",
        "4",
        "--memory",
        "4G",
        "--gpus",
        "1",
        "--acpi",
        f.acpi.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let computed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let large = &body["shapes"][1];
    assert_eq!(large["name"], "large");
    for r in ["mrtd", "rtmr0", "rtmr1", "rtmr2"] {
        assert_eq!(large["registers"][r], computed[r], "{r}");
    }
    assert_eq!(large["memory_bytes"], 4u64 << 30);
    assert_eq!(large["acpi"].as_array().unwrap().len(), 3);
    assert!(large["acpi"][0]["data_base64"].is_string());
    let show = run(&["manifest", "show", ms]);
    assert!(
        text(&show.stdout).contains("signed   ed25519"),
        "{}",
        text(&show.stdout)
    );

    // Tamper: one digit of the memory size.
    let json = std::fs::read_to_string(&m).unwrap();
    let tampered = json.replacen(
        "\"memory_bytes\":4294967296",
        "\"memory_bytes\":4294967297",
        1,
    );
    assert_ne!(tampered, json);
    let t = f.path("tampered.json");
    std::fs::write(&t, tampered).unwrap();
    let o = run(&["manifest", "verify", "--pubkey", ps, t.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("signature is invalid"),
        "{}",
        text(&o.stderr)
    );

    // Another key.
    let (_, p2, _) = f.keygen("k2");
    let o = run(&["manifest", "verify", "--pubkey", p2.to_str().unwrap(), ms]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("signed by key"),
        "{}",
        text(&o.stderr)
    );

    // Sign to another file, leaving the input alone.
    let copy = f.path("copy.json");
    let (k3, p3, _) = f.keygen("k3");
    let o = run(&[
        "manifest",
        "sign",
        "--key",
        k3.to_str().unwrap(),
        "--out",
        copy.to_str().unwrap(),
        ms,
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(
        code(&run(&[
            "manifest",
            "verify",
            "--pubkey",
            p3.to_str().unwrap(),
            copy.to_str().unwrap()
        ])),
        0
    );
    assert_eq!(code(&run(&["manifest", "verify", "--pubkey", ps, ms])), 0);
}

#[test]
fn build_with_rtmr3_and_key_signs_with_identity() {
    let f = Fixture::new();
    let (k, p, _) = f.keygen("k");
    let events = vec![
        cocoon_measure::rtmr3::Rtmr3Event::new("cocoon.config", [1u8; 32]).unwrap(),
        cocoon_measure::rtmr3::Rtmr3Event::new("cocoon.mode", "production").unwrap(),
    ];
    let ev_file = f.path("rtmr3.json");
    std::fs::write(&ev_file, cocoon_measure::rtmr3::to_json(&events)).unwrap();
    let m = f.path("m.json");
    let o = f.build(
        &m,
        &[
            "--rtmr3-events",
            ev_file.to_str().unwrap(),
            "--key",
            k.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(
        code(&run(&[
            "manifest",
            "verify",
            "--pubkey",
            p.to_str().unwrap(),
            m.to_str().unwrap()
        ])),
        0
    );
    let o = run(&[
        "manifest",
        "show",
        "--json",
        "--shape",
        "small",
        m.to_str().unwrap(),
    ]);
    let shape: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        shape["registers"]["rtmr3"],
        hex::encode(cocoon_measure::rtmr3::replay(&events).value())
    );
    assert_eq!(shape["identity_sha384"].as_str().unwrap().len(), 96);
    assert_eq!(shape["cocoon_image_hash"].as_str().unwrap().len(), 64);

    // A tampered event list is refused.
    let bad = std::fs::read_to_string(&ev_file)
        .unwrap()
        .replace("\"cocoon.mode\"", "\"cocoon.moda\"");
    std::fs::write(&ev_file, bad).unwrap();
    let o = f.build(
        &f.path("m2.json"),
        &["--rtmr3-events", ev_file.to_str().unwrap()],
    );
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("does not match"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn bad_inputs_exit_2_with_a_reason() {
    let f = Fixture::new();
    let m = f.path("m.json");
    // A world-readable private key is refused.
    let (k, _, _) = f.keygen("k");
    assert_eq!(code(&f.build(&m, &[])), 0);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o644)).unwrap();
        let o = run(&[
            "manifest",
            "sign",
            "--key",
            k.to_str().unwrap(),
            m.to_str().unwrap(),
        ]);
        assert_eq!(code(&o), 2);
        assert!(text(&o.stderr).contains("chmod 600"), "{}", text(&o.stderr));
    }
    // Missing firmware.
    let mut bad = Fixture::new();
    bad.fw = bad.path("missing.fd");
    let o = bad.build(&bad.path("x.json"), &[]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("missing.fd"),
        "{}",
        text(&o.stderr)
    );
    // Malformed shape.
    let o = run(&[
        "manifest",
        "build",
        "--firmware",
        "a",
        "--kernel",
        "b",
        "--shape",
        "x:2",
        "--release",
        "1",
        "--commit",
        "abcdef0",
        "--out",
        "o",
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("NAME:CPUS:MEMORY:GPUS:ACPI_DIR"),
        "{}",
        text(&o.stderr)
    );
    // Not a manifest.
    let junk = f.path("junk.json");
    std::fs::write(&junk, "{\"manifest\": 3}").unwrap();
    let o = run(&["manifest", "show", junk.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("junk.json"), "{}", text(&o.stderr));
    // No such shape.
    let o = run(&["manifest", "show", "--shape", "nope", m.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("small, large"),
        "{}",
        text(&o.stderr)
    );
    // A bad public key.
    let pk = f.path("bad.pub");
    std::fs::write(&pk, "zz").unwrap();
    assert_eq!(
        code(&run(&[
            "manifest",
            "verify",
            "--pubkey",
            pk.to_str().unwrap(),
            m.to_str().unwrap()
        ])),
        2
    );
}

#[test]
fn help_is_useful() {
    for (args, needles) in [
        (
            &["manifest", "build", "--help"][..],
            &[
                "--shape",
                "NAME:CPUS:MEMORY:GPUS:ACPI_DIR",
                "--release",
                "--commit",
                "--rtmr3-events",
            ][..],
        ),
        (&["manifest", "sign", "--help"], &["--key", "--out"]),
        (&["manifest", "verify", "--help"], &["--pubkey", "Unsigned"]),
        (&["manifest", "show", "--help"], &["--json"]),
        (&["keygen", "--help"], &["--out", "0600"]),
        (
            &["eventlog", "replay", "--help"],
            &[
                "--log",
                "--ccel-table",
                "--expect",
                "--shape",
                "--json",
                "CCEL",
            ],
        ),
    ] {
        let o = run(args);
        assert_eq!(code(&o), 0, "{args:?}");
        let out = text(&o.stdout);
        for n in needles {
            assert!(out.contains(n), "{args:?} help lacks {n}: {out}");
        }
    }
}
