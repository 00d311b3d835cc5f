//! `cocoon-host acpi capture` against a fake QEMU that records its argv and initramfs and
//! prints a console transcript made with the capture guest's own encoder; CLI errors.
//! The real boot (QEMU, OVMF, kernel) is `e2e_capture_with_real_qemu` (ignored; see
//! docs/host-tools.md).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

use cocoon_acpi_capture_init::wire;
use common::*;

/// Well-formed blobs as `cocoon_measure::acpi::AcpiBlobs::load` accepts them.
fn blobs(seed: u8) -> Vec<(&'static str, Vec<u8>)> {
    let mut rsdp = b"RSD PTR ".to_vec();
    rsdp.resize(20, seed);
    vec![
        ("etc/table-loader", vec![seed; 128 * 3]),
        ("etc/acpi/rsdp", rsdp),
        (
            "etc/acpi/tables",
            (0..70_000u32).map(|i| (i as u8) ^ seed).collect(),
        ),
    ]
}

/// What the capture guest prints, with firmware noise around it and CRLF line ends.
fn transcript(files: &[(&str, Vec<u8>)], done: bool) -> Vec<u8> {
    let mut out = b"\x1b[2J\x1b[01;01HBdsDxe: loading Boot0001 \"UEFI Misc Device\"\r\n".to_vec();
    let mut w = Vec::new();
    wire::write_begin(&mut w).unwrap();
    for (n, d) in files {
        wire::write_file(&mut w, n, d).unwrap();
    }
    if done {
        wire::write_done(&mut w, files.len()).unwrap();
    }
    out.extend(String::from_utf8(w).unwrap().replace('\n', "\r\n").bytes());
    out.extend(b"[    4.2] reboot: Power down\r\n");
    out
}

/// A minimal static x86-64 ELF executable (one PT_LOAD, no PT_INTERP); never run here.
fn static_elf() -> Vec<u8> {
    let mut b = vec![0u8; 64];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2;
    b[5] = 1;
    b[16..18].copy_from_slice(&2u16.to_le_bytes());
    b[18..20].copy_from_slice(&62u16.to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes());
    b[54..56].copy_from_slice(&56u16.to_le_bytes());
    b[56..58].copy_from_slice(&1u16.to_le_bytes());
    let mut ph = vec![0u8; 56];
    ph[..4].copy_from_slice(&1u32.to_le_bytes());
    b.extend(ph);
    b.extend(b"capture init body");
    b
}

struct Capture {
    fx: Fixture,
    config: PathBuf,
    init: PathBuf,
}

impl Capture {
    fn new() -> Capture {
        let fx = Fixture::new();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = fx.config("c.toml", Some(OWNER), VM_NOGPU, port);
        let init = fx.dir().join("capture-init");
        fs::write(&init, static_elf()).unwrap();
        Capture { fx, config, init }
    }

    fn p(&self, name: &str) -> PathBuf {
        self.fx.dir().join(name)
    }

    /// A fake QEMU: records its arguments and the -initrd file, prints `console`, exits.
    fn qemu_printing(&self, console: &[u8]) {
        fs::write(self.p("console.in"), console).unwrap();
        self.fx.host.program(
            "qemu-system-x86_64",
            &format!(
                "for a in \"$@\"; do printf '%s\\n' \"$a\"; done > '{args}'\n\
                 prev=; for a in \"$@\"; do [ \"$prev\" = -initrd ] && /bin/cp \"$a\" '{initrd}'; prev=$a; done\n\
                 /bin/cat '{console}'\necho 'qemu: terminating on signal' >&2\nexit 0",
                args = self.p("qemu-args").display(),
                initrd = self.p("qemu-initrd").display(),
                console = self.p("console.in").display(),
            ),
        );
    }

    fn capture(&self, out: &str, extra: &[&str]) -> Output {
        let mut args = vec![
            "acpi",
            "capture",
            "--config",
            self.config.to_str().unwrap(),
            "--no-tdx",
            "--out",
        ];
        let out = self.p(out);
        args.push(out.to_str().unwrap());
        let init = self.init.to_str().unwrap().to_string();
        if !extra.contains(&"--init") {
            args.extend(["--init", &init]);
        }
        args.extend_from_slice(extra);
        self.fx.host.run(&args)
    }

    fn work_dir(&self) -> PathBuf {
        self.fx.host.p("/run/cocoon-host/acpi-capture/instance-0")
    }
}

fn assert_fails(out: &Output, code: i32, needle: &str) {
    assert_eq!(out.status.code(), Some(code), "stderr: {}", stderr(out));
    assert!(
        stderr(out).contains(needle),
        "expected {needle:?} in: {}",
        stderr(out)
    );
}

fn read_dir_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    ["etc/table-loader", "etc/acpi/rsdp", "etc/acpi/tables"]
        .iter()
        .map(|n| (n.to_string(), fs::read(dir.join(n)).unwrap()))
        .collect()
}

#[test]
fn captures_through_the_launch_argv_and_writes_a_loadable_dir() {
    let c = Capture::new();
    c.qemu_printing(&transcript(&blobs(1), true));
    let out = c.capture("acpi", &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("booting the capture guest"), "{err}");
    assert!(
        err.contains("captured etc/acpi/tables: 70000 bytes"),
        "{err}"
    );

    // The directory holds exactly the blobs, and loads.
    let dir = c.p("acpi");
    let want: Vec<(String, Vec<u8>)> = blobs(1)
        .into_iter()
        .map(|(n, d)| (n.to_string(), d))
        .collect();
    assert_eq!(read_dir_files(&dir), want);
    cocoon_measure::acpi::AcpiBlobs::load(&dir).unwrap();
    assert!(!c.p("acpi.tmp").exists());

    // The summary.
    let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(j["dir"], dir.to_str().unwrap());
    assert_eq!(j["qemu"], "qemu-system-x86_64");
    assert_eq!(j["shape"]["cpus"], 4);
    assert_eq!(j["shape"]["memory_bytes"], 16u64 << 30);
    assert_eq!(j["shape"]["gpus"], 0);
    assert_eq!(j["files"]["etc/acpi/tables"]["bytes"], 70000);
    assert_eq!(
        j["files"]["etc/acpi/rsdp"]["sha256"],
        hex_encode(&<sha2::Sha256 as sha2::Digest>::digest(&want[1].1))
    );

    // The argv is `launch --no-tdx`'s except -initrd, -append and the missing data disk.
    let printed = stdout(&c.fx.launch(&c.config, &["--print", "--no-tdx"]));
    let launch_argv: Vec<String> = printed
        .lines()
        .map(|l| l.trim_matches('\'').to_string())
        .collect();
    let ran: Vec<String> = fs::read_to_string(c.p("qemu-args"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(launch_argv.len(), ran.len() + 1); // + the program name
    let work = c.work_dir();
    let mut differing = Vec::new();
    for (i, (l, r)) in launch_argv[1..].iter().zip(&ran).enumerate() {
        if l != r {
            differing.push((ran[i - 1].clone(), r.clone()));
        }
    }
    assert_eq!(
        differing,
        [
            (
                "-initrd".to_string(),
                work.join("initramfs.cpio").display().to_string()
            ),
            (
                "-append".to_string(),
                "console=ttyS0 quiet loglevel=0 panic=-1".to_string()
            ),
            (
                "-drive".to_string(),
                format!(
                    "file={},if=none,id=data,format=raw",
                    work.join("data.img").display()
                )
            ),
        ]
    );
    // The operator's data disk was not created; the work directory and the pid file are gone.
    assert!(!c.p("data.img").exists());
    assert!(!work.exists());
    assert!(!c
        .fx
        .host
        .p("/run/cocoon-host/instances/instance-0.pid")
        .exists());

    // The initramfs QEMU got: newc, with the init binary as /init.
    let initrd = fs::read(c.p("qemu-initrd")).unwrap();
    assert!(initrd.starts_with(b"070701"));
    let init = static_elf();
    assert!(initrd.windows(init.len()).any(|w| w == init.as_slice()));
    assert!(initrd.windows(10).any(|w| w == b"TRAILER!!!"));
}

#[test]
fn an_existing_data_disk_is_used_as_is_and_no_manifest_is_needed() {
    let c = Capture::new();
    // Blobs are captured before the manifest exists (publish needs them).
    fs::remove_file(c.p("manifest.json")).unwrap();
    fs::write(c.p("data.img"), vec![0u8; 4096]).unwrap();
    c.qemu_printing(&transcript(&blobs(1), true));
    let out = c.capture("acpi", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let args = fs::read_to_string(c.p("qemu-args")).unwrap();
    assert!(args.contains(&format!(
        "file={},if=none,id=data,format=raw",
        c.p("data.img").display()
    )));
    assert_eq!(fs::metadata(c.p("data.img")).unwrap().len(), 4096);
    // The text summary names the files.
    assert!(stdout(&out).contains("etc/acpi/tables: 70000 bytes, sha256 "));
}

#[test]
fn an_existing_output_needs_force() {
    let c = Capture::new();
    c.qemu_printing(&transcript(&blobs(1), true));
    assert_eq!(c.capture("acpi", &[]).status.code(), Some(0));
    c.qemu_printing(&transcript(&blobs(2), true));
    assert_fails(&c.capture("acpi", &[]), 1, "pass --force");
    // Untouched by the refusal.
    assert_eq!(read_dir_files(&c.p("acpi"))[0].1, blobs(1)[0].1);
    let out = c.capture("acpi", &["--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(read_dir_files(&c.p("acpi"))[0].1, blobs(2)[0].1);
    // An empty directory is fine; a file is not.
    fs::create_dir(c.p("empty")).unwrap();
    assert_eq!(c.capture("empty", &[]).status.code(), Some(0));
    fs::write(c.p("file"), "x").unwrap();
    assert_fails(&c.capture("file", &["--force"]), 1, "is not a directory");
}

#[test]
fn bad_consoles_fail_and_keep_the_console() {
    let c = Capture::new();
    let good = String::from_utf8(transcript(&blobs(1), true)).unwrap();
    let header = good
        .lines()
        .find(|l| l.starts_with("@@file etc/acpi/tables"))
        .unwrap()
        .trim_end()
        .to_string();
    let sha = header.rsplit(' ').next().unwrap().to_string();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"BdsDxe: failed to load Boot0001\r\n".to_vec(),
            "no begin line",
        ),
        (transcript(&blobs(1), false), "without the done line"),
        (
            transcript(&blobs(1)[..2], true),
            "etc/acpi/tables never came",
        ),
        (
            good.replacen(&sha, &"0".repeat(64), 1).into_bytes(),
            "data has SHA-256",
        ),
        (
            good.replacen("@@b64 ", "@@b64 *", 1).into_bytes(),
            "not base64",
        ),
        (
            format!(
                "@@{}\r\n@@error ioperm(0x510, 2, 1) failed: Operation not permitted\r\n",
                wire::BEGIN
            )
            .into_bytes(),
            "the capture guest failed (console line 2): ioperm(0x510, 2, 1) failed",
        ),
    ];
    for (console, needle) in cases {
        c.qemu_printing(&console);
        let out = c.capture("acpi", &[]);
        assert_fails(&out, 1, needle);
        let log = c.work_dir().join("console.log");
        assert!(
            stderr(&out).contains(&format!("raw console saved in {}", log.display())),
            "{}",
            stderr(&out)
        );
        assert_eq!(fs::read(&log).unwrap(), console);
        // QEMU's stderr is quoted.
        assert!(
            stderr(&out).contains("qemu: terminating on signal"),
            "{}",
            stderr(&out)
        );
        assert!(!c.p("acpi").exists());
        assert!(!c.work_dir().join("initramfs.cpio").exists());
    }
    // Blobs that are not ACPI: refused by the loader, nothing written.
    let mut bad = blobs(1);
    bad[1].1 = b"NOT AN RSDP 20 bytes".to_vec();
    c.qemu_printing(&transcript(&bad, true));
    assert_fails(
        &c.capture("acpi", &[]),
        1,
        "do not load as an ACPI directory",
    );
    assert!(!c.p("acpi").exists());
    assert!(!c.p("acpi.tmp").exists());
}

#[test]
fn a_silent_guest_times_out_and_qemu_is_killed() {
    let c = Capture::new();
    let pid_file = c.p("qemu.pid");
    c.fx.host.program(
        "qemu-system-x86_64",
        &format!(
            "echo $$ > '{}'; echo 'BdsDxe: loading'; exec /bin/sleep 60",
            pid_file.display()
        ),
    );
    let t = Instant::now();
    let out = c.capture("acpi", &["--timeout", "2"]);
    assert_fails(&out, 1, "no complete capture within 2 s, QEMU killed");
    assert!(t.elapsed().as_secs() < 20, "took {:?}", t.elapsed());
    let pid = fs::read_to_string(&pid_file).unwrap();
    assert!(
        !Path::new(&format!("/proc/{}", pid.trim())).exists()
            || fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true),
        "QEMU (pid {pid}) still runs"
    );
    assert_eq!(
        fs::read(c.work_dir().join("console.log")).unwrap(),
        b"BdsDxe: loading\n"
    );
}

#[test]
fn qemu_that_fails_to_start_is_reported() {
    let c = Capture::new();
    c.fx.host.program(
        "qemu-system-x86_64",
        "echo 'qemu-system-x86_64: -device vfio-pci: no such host device' >&2; exit 1",
    );
    let out = c.capture("acpi", &[]);
    assert_fails(&out, 1, "no begin line");
    assert_fails(&out, 1, "exit status: 1");
    assert_fails(&out, 1, "no such host device");
}

#[test]
fn cli_errors() {
    let c = Capture::new();
    c.qemu_printing(&transcript(&blobs(1), true));
    let base = |config: &Path, extra: &[&str]| {
        let mut a = vec![
            "acpi".to_string(),
            "capture".into(),
            "--config".into(),
            config.display().to_string(),
            "--out".into(),
            c.p("acpi").display().to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        c.fx.host.run(&refs)
    };
    let init = c.init.to_str().unwrap();
    // A missing or invalid config is bad input.
    assert_fails(
        &base(&c.p("nope.toml"), &["--no-tdx", "--init", init]),
        2,
        "nope.toml",
    );
    let bad = c.fx.config("bad.toml", None, VM_NOGPU, 8443);
    assert_fails(
        &base(&bad, &["--no-tdx", "--init", init]),
        2,
        "`owner_address` is missing",
    );
    // A TD capture is refused for now.
    assert_fails(
        &base(&c.config, &["--init", init]),
        1,
        "capturing inside a TD is not supported",
    );
    // --init: missing, not ELF, dynamically linked.
    assert_fails(
        &base(
            &c.config,
            &["--no-tdx", "--init", c.p("none").to_str().unwrap()],
        ),
        2,
        "capture init",
    );
    fs::write(c.p("script"), "#!/bin/sh\n").unwrap();
    assert_fails(
        &base(
            &c.config,
            &["--no-tdx", "--init", c.p("script").to_str().unwrap()],
        ),
        2,
        "not an ELF file",
    );
    let dynamic = std::env::current_exe().unwrap();
    assert_fails(
        &base(
            &c.config,
            &["--no-tdx", "--init", dynamic.to_str().unwrap()],
        ),
        2,
        "dynamically linked",
    );
    // The default init (next to cocoon-host) is absent or, in a dev build, dynamic: either
    // way the message says how to build it.
    assert_fails(&base(&c.config, &["--no-tdx"]), 2, "ci/build-capture-init");
    assert_fails(
        &base(&c.config, &["--no-tdx", "--init", init, "--timeout", "0"]),
        2,
        "--timeout",
    );
    // A missing image file, model disk or config share: refused before booting.
    fs::remove_dir(c.p("worker-config")).unwrap();
    assert_fails(
        &base(&c.config, &["--no-tdx", "--init", init]),
        1,
        "config share directory",
    );
    fs::remove_file(c.p("release/OVMF.fd")).unwrap();
    assert_fails(
        &base(&c.config, &["--no-tdx", "--init", init]),
        1,
        "image files missing",
    );
    assert!(!c.p("qemu-args").exists(), "QEMU was started");
}

#[test]
fn the_instance_is_claimed_as_by_launch() {
    let c = Capture::new();
    c.qemu_printing(&transcript(&blobs(1), true));
    c.fx.host
        .write("/run/cocoon-host/instances/instance-0.pid", "4242\n");
    c.fx.host.mkdir("/proc/4242");
    assert_fails(
        &c.capture("acpi", &[]),
        1,
        "instance 0 (guest CID 100) is taken: process 4242",
    );
    assert!(!c.p("qemu-args").exists(), "QEMU was started");
    // Another instance: same VM, other CID and port.
    let out = c.capture("acpi", &["--instance", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// The real thing: boots the image's OVMF and kernel in QEMU with the capture guest, twice,
/// and checks the blobs are identical, load, and give an RTMR0. Run by hand or in CI:
///
/// ```text
/// COCOON_E2E_QEMU=$PWD/ci/tools-qemu COCOON_E2E_INIT=$(ci/build-capture-init) \
///   [COCOON_E2E_IMAGE_DIR=$COCOON_CACHE/image/out/cpu (what ci/build-image cpu writes)] \
///   [COCOON_E2E_WORK=$COCOON_CACHE/acpi-capture-e2e] \
///   cargo test -p cocoon-host --test acpi_capture -- --ignored --nocapture
/// ```
///
/// COCOON_E2E_WORK must be visible to that QEMU (ci/tools-qemu: under $COCOON_CACHE).
#[test]
#[ignore = "boots QEMU (~10 s with TCG); needs COCOON_E2E_QEMU and COCOON_E2E_INIT"]
fn e2e_capture_with_real_qemu() {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let cache = env("COCOON_CACHE").unwrap_or_else(|| {
        format!(
            "{}/.cache/cocoon-worker",
            env("HOME").expect("HOME or COCOON_CACHE")
        )
    });
    let qemu = env("COCOON_E2E_QEMU").expect("COCOON_E2E_QEMU (e.g. $PWD/ci/tools-qemu)");
    let init = env("COCOON_E2E_INIT").expect("COCOON_E2E_INIT (from ci/build-capture-init)");
    let image = env("COCOON_E2E_IMAGE_DIR").unwrap_or(format!("{cache}/image/out/cpu"));
    let work_root =
        PathBuf::from(env("COCOON_E2E_WORK").unwrap_or(format!("{cache}/acpi-capture-e2e")));
    fs::create_dir_all(&work_root).unwrap();
    let work = tempfile::tempdir_in(&work_root).unwrap();
    let w = work.path();

    let mut gguf = b"GGUF".to_vec();
    gguf.extend((0..50_000u32).map(|i| (i * 13 % 251) as u8));
    fs::write(w.join("m.gguf"), gguf).unwrap();
    let info = cocoon_host::model_pack::pack(&w.join("m.gguf"), &w.join("model")).unwrap();
    fs::create_dir_all(w.join("worker-config")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = w.join("launch.toml");
    fs::write(
        &config,
        format!(
            "owner_address = \"{OWNER}\"\nmanifest = \"manifest.json\"\nstate_dir = \"state\"\n\n\
             [image]\ndir = \"{image}\"\n\n[vm]\nvcpus = 2\nmemory = \"2G\"\n\n\
             [data_disk]\npath = \"data.img\"\nsize = \"4G\"\n\n\
             [model_disk]\npath = \"model/model.img\"\nverity = \"model/model.verity\"\nroot_hash = \"{}\"\n\n\
             [config_share]\ndir = \"worker-config\"\n\n[agent]\nport = {port}\n",
            info.root_hash
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cocoon-host"))
            .args(args)
            .output()
            .unwrap()
    };
    let mut dirs = Vec::new();
    for name in ["a", "b"] {
        let out_dir = w.join(name);
        let t = Instant::now();
        let out = run(&[
            "acpi",
            "capture",
            "--config",
            config.to_str().unwrap(),
            "--no-tdx",
            "--qemu",
            &qemu,
            "--init",
            &init,
            "--out",
            out_dir.to_str().unwrap(),
            "--timeout",
            "600",
            "--json",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        eprintln!(
            "capture {name}: {:.1} s, accel {}, files {}",
            t.elapsed().as_secs_f64(),
            j["accel"],
            j["files"]
        );
        dirs.push(out_dir);
    }
    let a = read_dir_files(&dirs[0]);
    assert_eq!(a, read_dir_files(&dirs[1]), "two captures differ");
    let blobs = cocoon_measure::acpi::AcpiBlobs::load(&dirs[0]).unwrap();
    assert!(blobs.rsdp.starts_with(b"RSD PTR "));
    assert!(
        !w.join("data.img").exists(),
        "the configured data disk was created"
    );
    let out = run(&[
        "measure",
        "--config",
        config.to_str().unwrap(),
        "--acpi-dir",
        dirs[0].to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let m: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let rtmr0 = m["rtmr0"].as_str().expect("no RTMR0");
    assert_eq!(rtmr0.len(), 96);
    eprintln!("RTMR0 {rtmr0}");
}
