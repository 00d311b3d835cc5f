//! `cocoon-host launch`: golden argv for several configurations, and every refusal.
//! Set COCOON_UPDATE_GOLDEN=1 to rewrite the golden files (then review the diff).

mod common;

use std::fs;
use std::net::TcpListener;
use std::path::Path;

use common::*;

fn golden(name: &str, fx: &Fixture, out: &std::process::Output) {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    let text = stdout(out).replace(fx.dir().to_str().unwrap(), "$DIR");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.argv"));
    if std::env::var_os("COCOON_UPDATE_GOLDEN").is_some() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &text).unwrap();
    }
    let want = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(text, want, "argv differs from {}", path.display());
}

#[test]
fn golden_one_gpu_instance_0() {
    let fx = Fixture::new();
    let c = fx.config("c.toml", Some(OWNER), VM_1GPU, 8443);
    golden("tdx-1gpu-instance0", &fx, &fx.launch(&c, &["--print"]));
}

#[test]
fn golden_two_gpus_instance_3() {
    let fx = Fixture::new();
    let c = fx.config("c.toml", Some(OWNER), VM_2GPU, 8443);
    golden(
        "tdx-2gpu-instance3",
        &fx,
        &fx.launch(&c, &["--print", "--instance", "3"]),
    );
}

#[test]
fn golden_no_gpu() {
    let fx = Fixture::new();
    let c = fx.config("c.toml", Some(OWNER), VM_NOGPU, 9000);
    golden("tdx-nogpu-instance0", &fx, &fx.launch(&c, &["--print"]));
}

#[test]
fn golden_no_tdx_simulated() {
    let fx = Fixture::new();
    let c = fx.config("c.toml", Some(OWNER), VM_1GPU, 8443);
    let out = fx.launch(&c, &["--print", "--no-tdx", "--instance", "3"]);
    assert!(stderr(&out).contains("SIMULATED TD"), "{}", stderr(&out));
    golden("simulated-1gpu-instance3", &fx, &out);
}

#[test]
fn golden_json_config_with_vsock_qgs() {
    let fx = Fixture::new();
    let cfg = serde_json::json!({
        "owner_address": format!("0:{}", "ab".repeat(32)),
        "manifest": "manifest.json",
        "image": {"dir": "release"},
        "vm": {"vcpus": 8, "memory": "65536M", "gpus": ["17:00.0"]},
        "data_disk": {"path": "data, with comma.img", "size": 107374182400u64},
        "model_disk": {"path": "model/model.img", "verity": "model/model.verity", "root_hash": fx.root_hash},
        "config_share": {"dir": "worker-config"},
        "agent": {"port": 8443, "guest_port": 443, "host_address": "0.0.0.0"},
        "qgs": {"vsock_port": 4050}
    });
    let p = fx.dir().join("c.json");
    fs::write(&p, cfg.to_string()).unwrap();
    golden("tdx-json-vsock-qgs", &fx, &fx.launch(&p, &["--print"]));
}

fn refused(out: &std::process::Output, code: i32, needle: &str) {
    assert_eq!(out.status.code(), Some(code), "stderr: {}", stderr(out));
    assert!(
        stderr(out).contains(needle),
        "expected {needle:?} in: {}",
        stderr(out)
    );
    assert!(stdout(out).is_empty(), "printed an argv despite refusing");
}

#[test]
fn refuses_shape_not_in_manifest() {
    let fx = Fixture::new();
    let c = fx.config(
        "c.toml",
        Some(OWNER),
        "vcpus = 8\nmemory = \"32G\"\ngpus = [\"0000:17:00.0\"]",
        8443,
    );
    refused(&fx.launch(&c, &["--print"]), 1, "has no entry in");
    let c = fx.config("c.toml", Some(OWNER), "vcpus = 8\nmemory = \"64G\"", 8443);
    refused(
        &fx.launch(&c, &["--print", "--no-tdx"]),
        1,
        "0 GPU(s) has no entry",
    );
}

#[test]
fn refuses_missing_image_files() {
    let fx = Fixture::new();
    fs::remove_file(fx.dir().join("release/image.initrd")).unwrap();
    fs::remove_file(fx.dir().join("release/OVMF.fd")).unwrap();
    let c = fx.config("c.toml", Some(OWNER), VM_1GPU, 8443);
    refused(&fx.launch(&c, &["--print"]), 1, "image files missing in");
    refused(&fx.launch(&c, &["--print"]), 1, "OVMF.fd, image.initrd");
}

#[test]
fn refuses_missing_root_disk() {
    let fx = Fixture::new();
    fs::remove_file(fx.dir().join("release/image.raw")).unwrap();
    let c = fx.config("c.toml", Some(OWNER), VM_1GPU, 8443);
    refused(&fx.launch(&c, &["--print"]), 1, "image root disk");
    refused(&fx.launch(&c, &["--print"]), 1, "image.raw");
}

#[test]
fn refuses_missing_or_invalid_owner_address() {
    let fx = Fixture::new();
    let c = fx.config("c.toml", None, VM_1GPU, 8443);
    refused(
        &fx.launch(&c, &["--print"]),
        2,
        "`owner_address` is missing",
    );
    // One character changed: the checksum no longer matches.
    let typo = OWNER.replacen('Q', "R", 1);
    let c = fx.config("c.toml", Some(&typo), VM_1GPU, 8443);
    refused(&fx.launch(&c, &["--print"]), 2, "checksum mismatch");
    let c = fx.config("c.toml", Some("not an address"), VM_1GPU, 8443);
    refused(&fx.launch(&c, &["--print"]), 2, "field `owner_address`");
}

#[test]
fn refuses_bad_config_input() {
    let fx = Fixture::new();
    let c = fx.config("c.toml", Some(OWNER), "vcpus = 0\nmemory = \"64G\"", 8443);
    refused(&fx.launch(&c, &["--print"]), 2, "field `vm.vcpus`");
    let c = fx.config("c.toml", Some(OWNER), "vcpus = 8\nmemory = \"64Q\"", 8443);
    refused(&fx.launch(&c, &["--print"]), 2, "field `vm.memory`");
    let c = fx.config(
        "c.toml",
        Some(OWNER),
        "vcpus = 8\nmemory = \"64G\"\ngpus = [\"17:00\"]",
        8443,
    );
    refused(&fx.launch(&c, &["--print"]), 2, "field `vm.gpus`");
    let c = fx.config(
        "c.toml",
        Some(OWNER),
        "vcpus = 8\nmemory = \"64G\"\ncolour = 1",
        8443,
    );
    refused(&fx.launch(&c, &["--print"]), 2, "unknown field `colour`");
    // The guest refuses data disks under 64 MiB; so does launch, before booting anything.
    let small = fx.dir().join("small-disk.toml");
    let full = fs::read_to_string(fx.config("c.toml", Some(OWNER), VM_1GPU, 8443)).unwrap();
    for size in ["\"63M\"", "\"0\"", "\"1000\""] {
        fs::write(
            &small,
            full.replace("size = \"100G\"", &format!("size = {size}")),
        )
        .unwrap();
        refused(
            &fx.launch(&small, &["--print"]),
            2,
            "field `data_disk.size`",
        );
    }
    fs::write(&small, full.replace("size = \"100G\"", "size = \"64M\"")).unwrap();
    assert_eq!(fx.launch(&small, &["--print"]).status.code(), Some(0));
    let p = fx.dir().join("trunc.toml");
    let full = fs::read_to_string(fx.config("c.toml", Some(OWNER), VM_1GPU, 8443)).unwrap();
    fs::write(&p, &full[..full.len() / 2]).unwrap();
    assert_eq!(fx.launch(&p, &["--print"]).status.code(), Some(2));
    let big = fx.dir().join("big.toml");
    fs::write(&big, "#".repeat(2 << 20)).unwrap();
    refused(&fx.launch(&big, &["--print"]), 2, "larger than");
    refused(
        &fx.launch(&fx.dir().join("nope.toml"), &["--print"]),
        2,
        "nope.toml",
    );
    let c = fx.config("c.toml", Some(OWNER), VM_1GPU, 8443);
    refused(
        &fx.launch(&c, &["--print", "--instance", "1000"]),
        2,
        "out of range",
    );
    refused(&fx.launch(&c, &["--print", "--instance", "-1"]), 2, "");
    let c = fx.config("c.toml", Some(OWNER), VM_1GPU, 65535);
    refused(
        &fx.launch(&c, &["--print", "--instance", "1"]),
        2,
        "passes 65535",
    );
}

#[test]
fn refuses_model_disk_not_matching_root_hash() {
    let fx = Fixture::new();
    let c = fx.config("c.toml", Some(OWNER), VM_1GPU, 8443);
    // Tamper with the top-level hash block of the tree.
    let v = fx.dir().join("model/model.verity");
    let mut bytes = fs::read(&v).unwrap();
    bytes[4096] ^= 1;
    fs::write(&v, bytes).unwrap();
    refused(&fx.launch(&c, &["--print"]), 1, "the config names");
    fs::write(&v, b"garbage").unwrap();
    refused(
        &fx.launch(&c, &["--print"]),
        1,
        "not a dm-verity hash device",
    );
    fs::remove_file(&v).unwrap();
    refused(&fx.launch(&c, &["--print"]), 1, "model verity tree");
}

#[test]
fn refuses_taken_port() {
    let fx = Fixture::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let c = fx.config("c.toml", Some(OWNER), VM_NOGPU, port - 3);
    let out = fx.launch(&c, &["--instance", "3"]);
    refused(&out, 1, &format!("agent port 127.0.0.1:{port} is taken"));
    // The instance's pid file is released on refusal.
    assert!(!fx
        .host
        .p("/run/cocoon-host/instances/instance-3.pid")
        .exists());
    // --print warns but prints.
    let out = fx.launch(&c, &["--instance", "3", "--print"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("is taken"), "{}", stderr(&out));
    drop(listener);
}

#[test]
fn refuses_taken_instance_cid() {
    let fx = Fixture::new();
    let c = fx.config("c.toml", Some(OWNER), VM_NOGPU, free_port_base());
    fx.host
        .write("/run/cocoon-host/instances/instance-2.pid", "4242\n");
    fx.host.mkdir("/proc/4242");
    refused(
        &fx.launch(&c, &["--instance", "2"]),
        1,
        "instance 2 (guest CID 102) is taken: process 4242",
    );
}

#[test]
fn refuses_gpu_not_on_vfio() {
    let fx = Fixture::new();
    fx.host.gpu_on_host_drivers();
    let c = fx.config("c.toml", Some(OWNER), VM_1GPU, free_port_base());
    refused(
        &fx.launch(&c, &[]),
        1,
        "run `cocoon-host gpu bind 0000:17:00.0` first",
    );
}

/// A base port whose next few ports are free now.
fn free_port_base() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn runs_qemu_with_the_argv_after_a_stale_lock_and_creates_the_data_disk() {
    let fx = Fixture::new();
    let base = free_port_base();
    let c = fx.config("c.toml", Some(OWNER), VM_1GPU, base);
    // Stale: pid 4243 has no /proc entry.
    fx.host
        .write("/run/cocoon-host/instances/instance-0.pid", "4243\n");
    let args_file = fx.dir().join("qemu-args");
    fx.host.program(
        "qemu-system-x86_64",
        &format!(
            "for a in \"$@\"; do printf '%s\\n' \"$a\"; done > '{}'; exit 0",
            args_file.display()
        ),
    );
    let printed = stdout(&fx.launch(&c, &["--print"]));
    let out = fx.launch(&c, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("created data disk"));
    let data = fx.dir().join("data.img");
    assert_eq!(fs::metadata(&data).unwrap().len(), 100 << 30);
    let ran = fs::read_to_string(&args_file).unwrap();
    // Same arguments as --print (which shell-quotes; none here need it except the JSON).
    let printed_plain: Vec<String> = printed
        .lines()
        .skip(1)
        .map(|l| l.trim_matches('\'').to_string())
        .collect();
    assert_eq!(
        ran.lines().map(String::from).collect::<Vec<_>>(),
        printed_plain
    );
    assert!(!fx
        .host
        .p("/run/cocoon-host/instances/instance-0.pid")
        .exists());

    // QEMU's failure is the launch's exit code.
    fx.host.program("qemu-system-x86_64", "exit 3");
    assert_eq!(fx.launch(&c, &[]).status.code(), Some(3));
}

#[test]
fn checks_the_manifest_signature_with_pubkey() {
    let fx = Fixture::new();
    let (_, public, key) = write_keypair(&fx.dir(), "release.key", 3);
    let (_, other_public, _) = write_keypair(&fx.dir(), "other.key", 4);
    let c = fx.config("c.toml", Some(OWNER), VM_1GPU, 8443);
    let pubkey = public.to_str().unwrap();

    // Unsigned: accepted without a key (with a warning), refused with one.
    let out = fx.launch(&c, &["--print"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("signature NOT checked"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("shape c8-m64g-g1"),
        "{}",
        stderr(&out)
    );
    refused(
        &fx.launch(&c, &["--print", "--pubkey", pubkey]),
        1,
        "manifest is not signed",
    );

    fs::write(fx.dir().join("manifest.json"), fx.manifest(Some(&key))).unwrap();
    let out = fx.launch(&c, &["--print", "--pubkey", pubkey]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("signature verified"),
        "{}",
        stderr(&out)
    );
    // Same argv as without the key: the signature changes nothing in the VM.
    assert_eq!(stdout(&out), stdout(&fx.launch(&c, &["--print"])));

    refused(
        &fx.launch(&c, &["--print", "--pubkey", other_public.to_str().unwrap()]),
        1,
        "not by the expected key",
    );
    // A bad key file is bad input.
    fs::write(fx.dir().join("bad.pub"), "not a key\n").unwrap();
    refused(
        &fx.launch(
            &c,
            &[
                "--print",
                "--pubkey",
                fx.dir().join("bad.pub").to_str().unwrap(),
            ],
        ),
        2,
        "public key",
    );
    refused(
        &fx.launch(
            &c,
            &[
                "--print",
                "--pubkey",
                fx.dir().join("none.pub").to_str().unwrap(),
            ],
        ),
        2,
        "none.pub",
    );
}

#[test]
fn refuses_a_tampered_manifest() {
    let fx = Fixture::new();
    let (_, public, key) = write_keypair(&fx.dir(), "release.key", 5);
    let c = fx.config("c.toml", Some(OWNER), VM_1GPU, 8443);
    let signed = fx.manifest(Some(&key));
    let path = fx.dir().join("manifest.json");
    // Change the memory of the 8-vCPU shape to 32 GiB, keeping the JSON canonical.
    let edited = signed.replacen("68719476736", "34359738368", 1);
    assert_ne!(edited, signed);
    fs::write(&path, &edited).unwrap();
    refused(
        &fx.launch(&c, &["--print", "--pubkey", public.to_str().unwrap()]),
        1,
        "signature is invalid",
    );
    // Reformatted (no longer canonical): refused even without a key.
    let v: serde_json::Value = serde_json::from_str(&signed).unwrap();
    fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    refused(&fx.launch(&c, &["--print"]), 1, "not in canonical form");
    // A register that no longer matches its events.
    let body: serde_json::Value = v["manifest"].clone();
    let rtmr1 = body["shapes"][0]["registers"]["rtmr1"]
        .as_str()
        .unwrap()
        .to_string();
    let flipped = format!(
        "{}{}",
        if rtmr1.starts_with('0') { "1" } else { "0" },
        &rtmr1[1..]
    );
    fs::write(&path, signed.replace(&rtmr1, &flipped)).unwrap();
    refused(&fx.launch(&c, &["--print"]), 1, "manifest field");
    // Truncated, empty, oversized.
    fs::write(&path, &signed[..signed.len() / 2]).unwrap();
    refused(&fx.launch(&c, &["--print"]), 1, "not valid JSON");
    fs::write(&path, "").unwrap();
    refused(&fx.launch(&c, &["--print"]), 1, "manifest");
    let f = fs::File::create(&path).unwrap();
    f.set_len(64 * 1024 * 1024 + 1).unwrap();
    refused(&fx.launch(&c, &["--print"]), 1, "larger than");
    fs::remove_file(&path).unwrap();
    refused(&fx.launch(&c, &["--print"]), 1, "manifest.json");
}

#[test]
fn refuses_image_files_that_are_not_the_manifests_release() {
    let fx = Fixture::new();
    let c = fx.config("c.toml", Some(OWNER), VM_1GPU, 8443);
    let release = fx.dir().join("release");
    fs::write(release.join("image.vmlinuz"), "another kernel").unwrap();
    refused(&fx.launch(&c, &["--print"]), 1, "kernel");
    refused(&fx.launch(&c, &["--print"]), 1, "is not the release of");
    fs::write(release.join("image.vmlinuz"), "kernel").unwrap();
    fs::write(release.join("image.cmdline"), "console=ttyS0 quiet\n").unwrap();
    refused(
        &fx.launch(&c, &["--print"]),
        1,
        "differs from the manifest's",
    );
    fs::write(release.join("image.cmdline"), "a\nb\n").unwrap();
    refused(&fx.launch(&c, &["--print"]), 1, "single line");
    fs::write(release.join("image.cmdline"), "x".repeat(3000)).unwrap();
    refused(&fx.launch(&c, &["--print"]), 1, "2047-byte limit");
}

#[test]
fn golden_no_tdx_on_a_host_without_kvm_or_vsock() {
    let fx = Fixture::new();
    fx.host.remove("/dev/kvm");
    fx.host.remove("/dev/vhost-vsock");
    let c = fx.config("c.toml", Some(OWNER), VM_NOGPU, 8443);
    let out = fx.launch(&c, &["--print", "--no-tdx"]);
    let err = stderr(&out);
    assert!(err.contains("EMULATED with TCG"), "{err}");
    assert!(
        err.contains("`cocoon-host status` and `logs` will not work"),
        "{err}"
    );
    golden("simulated-tcg-novsock-instance0", &fx, &out);
    assert!(!stdout(&out).contains("vhost-vsock"));
}

/// The accelerator line of a printed argv.
fn accel(out: &std::process::Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    let text = stdout(out);
    let lines: Vec<&str> = text.lines().collect();
    let i = lines
        .iter()
        .position(|l| *l == "-accel")
        .expect("no -accel");
    format!("{} {} {}", lines[i + 1], lines[i + 2], lines[i + 3])
}

#[test]
fn simulated_td_uses_kvm_only_when_usable() {
    let fx = Fixture::new();
    let c = fx.config("c.toml", Some(OWNER), VM_NOGPU, 8443);
    let print = ["--print", "--no-tdx"];
    assert_eq!(accel(&fx.launch(&c, &print)), "kvm -cpu host");
    // /dev/kvm without a virtualisation flag (nested guest without vmx): TCG.
    fx.host.write(
        "/proc/cpuinfo",
        "processor\t: 0\nflags\t\t: fpu sse hypervisor\n",
    );
    assert_eq!(accel(&fx.launch(&c, &print)), "tcg -cpu max");
    fx.host
        .write("/proc/cpuinfo", "processor\t: 0\nflags\t\t: fpu svm\n");
    assert_eq!(accel(&fx.launch(&c, &print)), "kvm -cpu host");
    fx.host.remove("/dev/kvm");
    assert_eq!(accel(&fx.launch(&c, &print)), "tcg -cpu max");
    // A TD is always KVM (and `check` tells what is missing).
    assert_eq!(accel(&fx.launch(&c, &["--print"])), "kvm -cpu host");
}

#[test]
fn a_td_needs_vhost_vsock() {
    let fx = Fixture::new();
    fx.host.remove("/dev/vhost-vsock");
    let ran = fx.dir().join("qemu-ran");
    fx.host.program(
        "qemu-system-x86_64",
        &format!("echo yes > '{}'", ran.display()),
    );
    let c = fx.config("c.toml", Some(OWNER), VM_NOGPU, free_port_base());
    refused(&fx.launch(&c, &[]), 1, "run `modprobe vhost_vsock`");
    assert!(!ran.exists(), "QEMU was started");
    // --print shows the TD's argv (with the device) and warns.
    let out = fx.launch(&c, &["--print"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("modprobe vhost_vsock"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("vhost-vsock-pci,guest-cid=100"));
    // A simulated TD runs without it.
    let out = fx.launch(&c, &["--no-tdx"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(ran.exists());
}

#[test]
fn qemu_program_is_selectable() {
    let fx = Fixture::new();
    let args_file = fx.dir().join("args");
    let alt = fx.dir().join("my qemu");
    fs::write(
        &alt,
        format!(
            "#!/bin/sh\nfor a in \"$0\" \"$@\"; do printf '%s\\n' \"$a\"; done > '{}'\n",
            args_file.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&alt, fs::Permissions::from_mode(0o755)).unwrap();
    let c = fx.config("c.toml", Some(OWNER), VM_NOGPU, free_port_base());
    let out = fx.launch(&c, &["--print", "--qemu", alt.to_str().unwrap()]);
    assert!(stdout(&out).starts_with(&format!("'{}'\n-name", alt.display())));
    let out = fx.launch(&c, &["--qemu", alt.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ran = fs::read_to_string(&args_file).unwrap();
    assert!(
        ran.starts_with(&format!("{}\n-name\n", alt.display())),
        "{ran}"
    );
}

#[test]
fn no_tdx_hands_the_manifest_registers_to_the_guest() {
    use cocoon_host::launch::simulated::{SimulatedRegisters, SIMULATED_REGISTERS_FILE};
    let fx = Fixture::new();
    let share = fx.dir().join("worker-config");
    let file = share.join(SIMULATED_REGISTERS_FILE);
    let seen = fx.dir().join("seen-by-qemu.json");
    // The fake QEMU copies what the guest would read at start.
    fx.host.program(
        "qemu-system-x86_64",
        &format!(
            "[ -f '{f}' ] && /bin/cp '{f}' '{s}'; exit 0",
            f = file.display(),
            s = seen.display()
        ),
    );
    let c = fx.config("c.toml", Some(OWNER), VM_1GPU, free_port_base());
    // --print writes nothing.
    let out = fx.launch(&c, &["--print", "--no-tdx"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!file.exists());

    let out = fx.launch(&c, &["--no-tdx"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(SIMULATED_REGISTERS_FILE),
        "{}",
        stderr(&out)
    );
    let manifest = cocoon_measure::manifest::Manifest::parse(
        &fs::read(fx.dir().join("manifest.json")).unwrap(),
    )
    .unwrap();
    let entry = manifest
        .body
        .shapes
        .iter()
        .find(|s| s.name == "c8-m64g-g1")
        .unwrap();
    let want = SimulatedRegisters {
        mrtd: entry.registers.mrtd,
        rtmr0: entry.registers.rtmr0,
        rtmr1: entry.registers.rtmr1,
        rtmr2: entry.registers.rtmr2,
    };
    // Written before QEMU started, in the simulated TD's format, lowercase hex.
    assert_eq!(SimulatedRegisters::load(&seen).unwrap(), want);
    let text = fs::read_to_string(&file).unwrap();
    assert_eq!(text, want.to_json());
    assert!(text.contains(&hex_encode(&entry.registers.rtmr1)));
    // Another shape, another manifest entry: the file is replaced.
    let c = fx.config("c.toml", Some(OWNER), VM_NOGPU, free_port_base());
    assert_eq!(fx.launch(&c, &["--no-tdx"]).status.code(), Some(0));
    let other = &manifest
        .body
        .shapes
        .iter()
        .find(|s| s.name == "c4-m16g")
        .unwrap();
    assert_eq!(
        SimulatedRegisters::load(&file).unwrap().rtmr0,
        other.registers.rtmr0
    );
    assert_ne!(other.registers.rtmr0, entry.registers.rtmr0);

    // A TD does not write it and warns that it is stale, with --print too.
    let before = fs::read(&file).unwrap();
    for extra in [&["--print"][..], &[]] {
        let out = fx.launch(&c, extra);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("is left from a --no-tdx launch"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(fs::read(&file).unwrap(), before);
    fs::remove_file(&file).unwrap();
    let out = fx.launch(&c, &[]);
    assert!(!stderr(&out).contains("is left from"), "{}", stderr(&out));
    assert!(!file.exists());
}

/// Stopping `launch` (SIGTERM to cocoon-host, as `kill PID` sends) stops QEMU and waits for it:
/// nothing is left running and launch exits with QEMU's status.
#[test]
fn sigterm_to_launch_reaches_qemu() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let fx = Fixture::new();
    let marker = fx.dir().join("qemu-state");
    let pid_file = fx.dir().join("qemu-pid");
    // Runs until a signal, records which one, and exits 0 as QEMU does on SIGTERM/SIGINT.
    fx.host.program(
        "qemu-system-x86_64",
        &format!(
            "echo $$ > '{p}'\ntrap 'echo TERM > \"{m}\"; exit 0' TERM\ntrap 'echo INT > \"{m}\"; exit 0' INT\n\
             echo running > '{m}'\nwhile :; do /bin/sleep 0.05; done",
            p = pid_file.display(),
            m = marker.display()
        ),
    );
    let c = fx.config("c.toml", Some(OWNER), VM_NOGPU, free_port_base());
    let mut launch = Command::new(env!("CARGO_BIN_EXE_cocoon-host"))
        .arg("--root")
        .arg(fx.host.root())
        .args(["launch", c.to_str().unwrap(), "--no-tdx"])
        .env("PATH", fx.host.bin())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while fs::read_to_string(&marker).unwrap_or_default().trim() != "running" {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "fake QEMU never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let kill = |sig: &str, pid: &str| Command::new("/bin/kill").args([sig, pid]).status().unwrap();
    assert!(kill("-TERM", &launch.id().to_string()).success());
    let start = Instant::now();
    while launch.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopped = launch.try_wait().unwrap().is_some();
    let state = fs::read_to_string(&marker).unwrap();
    if !stopped || state.trim() != "TERM" {
        // Leave nothing running when an assertion fails.
        kill("-KILL", fs::read_to_string(&pid_file).unwrap().trim());
        let _ = launch.kill();
    }
    let out = launch.wait_with_output().unwrap();
    assert!(stopped, "launch did not exit within 30 s of SIGTERM");
    assert_eq!(state.trim(), "TERM", "QEMU did not get the signal");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("SIGTERM received: passing it to QEMU"),
        "{}",
        stderr(&out)
    );
}
