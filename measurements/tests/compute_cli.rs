//! `compute`/`transcript` on synthetic inputs: expected register values derived independently,
//! sensitivity to each input, and exit code 2 with a useful message on bad input.

mod compute_fixtures;

use compute_fixtures as fx;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

struct Inputs {
    _dir: tempfile::TempDir,
    fw: PathBuf,
    kernel: PathBuf,
    initrd: PathBuf,
    acpi: PathBuf,
    root: PathBuf,
}

fn inputs() -> Inputs {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    Inputs {
        fw: fx::write(&root, "OVMF.fd", &fx::firmware()),
        kernel: fx::write(&root, "vmlinuz", &fx::kernel()),
        initrd: fx::write(&root, "initrd.img", b"an initrd, not really a cpio"),
        acpi: fx::acpi_dir(&root),
        root,
        _dir: dir,
    }
}

fn os(s: &str) -> OsString {
    s.into()
}

fn base_args(i: &Inputs, cmdline: &str, memory: &str) -> Vec<OsString> {
    vec![
        os("compute"),
        os("--firmware"),
        i.fw.clone().into(),
        os("--kernel"),
        i.kernel.clone().into(),
        os("--initrd"),
        i.initrd.clone().into(),
        os("--cmdline"),
        os(cmdline),
        os("--memory"),
        os(memory),
        os("--cpus"),
        os("2"),
    ]
}

fn run(args: &[OsString]) -> std::process::Output {
    let refs: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    fx::cli(&refs)
}

fn json(args: &[OsString]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push(os("--json"));
    let o = run(&a);
    assert!(o.status.success(), "{}", fx::stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn field(v: &serde_json::Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
        .to_string()
}

#[test]
fn json_has_lowercase_hex_registers_and_null_rtmr0_without_acpi() {
    let i = inputs();
    let v = json(&base_args(&i, "console=ttyS0", "2G"));
    for k in ["mrtd", "rtmr1", "rtmr2"] {
        let h = field(&v, k);
        assert_eq!(h.len(), 96, "{k}");
        assert!(
            h.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
            "{k}: {h}"
        );
    }
    assert!(v["rtmr0"].is_null());
    let mut a = base_args(&i, "console=ttyS0", "2G");
    a.extend([os("--acpi"), i.acpi.clone().into()]);
    let with = json(&a);
    assert_eq!(field(&with, "rtmr0").len(), 96);
    assert_eq!(field(&with, "rtmr1"), field(&v, "rtmr1"));
}

/// RTMR1 and RTMR2 rebuilt from scratch: the kernel digest by omission (not by walking
/// sections), the fixed EFI action strings, and the UTF-16 load options.
#[test]
fn rtmr1_and_rtmr2_match_independent_derivation() {
    let i = inputs();
    let v = json(&base_args(&i, "console=ttyS0 root=/dev/vda", "2G"));
    let mut r1 = [0u8; 48];
    for d in [
        fx::authenticode_by_omission(&fx::kernel()),
        fx::sha384(b"Calling EFI Application from Boot Option"),
        fx::sha384(&[0, 0, 0, 0]),
        fx::sha384(b"Exit Boot Services Invocation"),
        fx::sha384(b"Exit Boot Services Returned with Success"),
    ] {
        r1 = fx::extend(r1, d);
    }
    assert_eq!(field(&v, "rtmr1"), hex::encode(r1));
    let mut r2 = fx::extend(
        [0; 48],
        fx::sha384(&fx::load_options("console=ttyS0 root=/dev/vda", true)),
    );
    r2 = fx::extend(r2, fx::sha384(b"an initrd, not really a cpio"));
    assert_eq!(field(&v, "rtmr2"), hex::encode(r2));
}

/// MRTD rebuilt as one byte stream: per BFV page a PAGE.ADD record and 16 MR.EXTEND records
/// with their data; PAGE.ADD only for the other sections, in descriptor order.
#[test]
fn mrtd_matches_independent_stream() {
    let i = inputs();
    let v = json(&base_args(&i, "", "1G"));
    let fw = fx::firmware();
    let rec = |name: &[u8], gpa: u64| {
        let mut r = [0u8; 128];
        r[..name.len()].copy_from_slice(name);
        r[16..24].copy_from_slice(&gpa.to_le_bytes());
        r
    };
    let mut s: Vec<u8> = Vec::new();
    for page in 0..16u64 {
        let gpa = 0xffff_0000 + page * 4096;
        s.extend(rec(b"MEM.PAGE.ADD", gpa));
        for c in 0..16u64 {
            s.extend(rec(b"MR.EXTEND", gpa + c * 256));
            let off = 0x1_0000 + (page * 4096 + c * 256) as usize;
            s.extend_from_slice(&fw[off..off + 256]);
        }
    }
    for (base, pages) in [(0xfffc_0000u64, 4u64), (0x80_9000, 2), (0x80_0000, 6)] {
        for p in 0..pages {
            s.extend(rec(b"MEM.PAGE.ADD", base + p * 4096));
        }
    }
    assert_eq!(field(&v, "mrtd"), hex::encode(fx::sha384(&s)));
    // The two-pass order gives a different MRTD for the same image.
    let mut a = base_args(&i, "", "1G");
    a.extend([os("--mrtd-order"), os("two-pass")]);
    assert_ne!(field(&json(&a), "mrtd"), field(&v, "mrtd"));
}

#[test]
fn each_input_moves_only_its_registers() {
    let i = inputs();
    let base = json(&base_args(&i, "quiet", "2G"));
    // Command line: RTMR2 only.
    let v = json(&base_args(&i, "quiet ", "2G"));
    assert_ne!(field(&v, "rtmr2"), field(&base, "rtmr2"));
    assert_eq!(field(&v, "rtmr1"), field(&base, "rtmr1"));
    assert_eq!(field(&v, "mrtd"), field(&base, "mrtd"));
    // Initrd contents: RTMR2 only.
    std::fs::write(&i.initrd, b"an initrd, not really a cpiO").unwrap();
    let v = json(&base_args(&i, "quiet", "2G"));
    assert_ne!(field(&v, "rtmr2"), field(&base, "rtmr2"));
    assert_eq!(field(&v, "rtmr1"), field(&base, "rtmr1"));
    std::fs::write(&i.initrd, b"an initrd, not really a cpio").unwrap();
    // One kernel byte: RTMR1 only.
    let mut k = fx::kernel();
    k[0x3000] ^= 1;
    std::fs::write(&i.kernel, &k).unwrap();
    let v = json(&base_args(&i, "quiet", "2G"));
    assert_ne!(field(&v, "rtmr1"), field(&base, "rtmr1"));
    assert_eq!(field(&v, "rtmr2"), field(&base, "rtmr2"));
    std::fs::write(&i.kernel, fx::kernel()).unwrap();
    // One BFV byte: MRTD only.
    let mut f = fx::firmware();
    f[0x1_8000] ^= 1;
    std::fs::write(&i.fw, &f).unwrap();
    let v = json(&base_args(&i, "quiet", "2G"));
    assert_ne!(field(&v, "mrtd"), field(&base, "mrtd"));
    assert_eq!(field(&v, "rtmr1"), field(&base, "rtmr1"));
}

/// With the file measured as is, memory does not matter to RTMR1; with QEMU's patched header
/// it does (the initrd address depends on low memory), up to the 2 GiB cap.
#[test]
fn memory_moves_rtmr1_only_with_patched_header() {
    let i = inputs();
    let r1 = |mem: &str, mode: &str| {
        let mut a = base_args(&i, "quiet", mem);
        a.extend([os("--kernel-header"), os(mode)]);
        field(&json(&a), "rtmr1")
    };
    assert_eq!(r1("1G", "as-file"), r1("2G", "as-file"));
    assert_ne!(r1("1G", "qemu-patched"), r1("2G", "qemu-patched"));
    assert_eq!(r1("4G", "qemu-patched"), r1("16G", "qemu-patched"));
    assert_ne!(r1("2G", "as-file"), r1("2G", "qemu-patched"));
}

#[test]
fn rtmr0_depends_on_memory_and_acpi_blobs() {
    let i = inputs();
    let r0 = |mem: &str| {
        let mut a = base_args(&i, "quiet", mem);
        a.extend([os("--acpi"), i.acpi.clone().into()]);
        field(&json(&a), "rtmr0")
    };
    let two = r0("2G");
    assert_ne!(two, r0("4G"), "TD HOB must reflect memory");
    fx::write(&i.acpi, "etc/acpi/tables", b"FACPxxxxDSDTyyyyAPICzzzZ");
    assert_ne!(two, r0("2G"), "ACPI tables must be measured");
}

#[test]
fn transcript_lists_every_event() {
    let i = inputs();
    let mut a = base_args(&i, "console=ttyS0", "2G");
    a[0] = os("transcript");
    a.extend([os("--acpi"), i.acpi.clone().into()]);
    let o = run(&a);
    assert!(o.status.success(), "{}", fx::stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    for needle in [
        "MRTD",
        "BFV",
        "EV_EFI_HANDOFF_TABLES2",
        "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
        "SecureBoot",
        "etc/table-loader",
        "etc/acpi/rsdp",
        "etc/acpi/tables",
        "Boot0000",
        "EV_EFI_BOOT_SERVICES_APPLICATION",
        "Exit Boot Services Returned with Success",
        "console=ttyS0 initrd=initrd",
        "[initrd]",
    ] {
        assert!(out.contains(needle), "{needle} missing from:\n{out}");
    }
    // 13 RTMR0 events, 5 RTMR1, 2 RTMR2.
    let events = out
        .lines()
        .filter(|l| l.starts_with("  ") && l.contains(" EV_"))
        .count();
    assert_eq!(events, 20, "{out}");
}

fn assert_exit2(args: &[OsString], needles: &[&str]) {
    let o = run(args);
    assert_eq!(
        o.status.code(),
        Some(2),
        "stdout {:?} stderr {}",
        o.stdout,
        fx::stderr(&o)
    );
    let e = fx::stderr(&o);
    for n in needles {
        assert!(e.contains(n), "{n:?} not in {e}");
    }
    assert!(!e.contains("panicked"), "{e}");
}

fn with(i: &Inputs, name: &str, bytes: &[u8]) -> PathBuf {
    fx::write(&i.root, name, bytes)
}

fn replace(args: &[OsString], flag: &str, value: impl Into<OsString>) -> Vec<OsString> {
    let mut a = args.to_vec();
    let at = a.iter().position(|x| x == flag).unwrap();
    a[at + 1] = value.into();
    a
}

#[test]
fn bad_inputs_exit_2_naming_file_and_problem() {
    let i = inputs();
    let a = base_args(&i, "quiet", "2G");
    // Firmware without TDVF metadata.
    let p = with(&i, "plain.fd", &vec![0u8; 0x4_0000]);
    assert_exit2(
        &replace(&a, "--firmware", &p),
        &["plain.fd", "no TDVF metadata"],
    );
    // Tampered descriptor signature.
    let mut f = fx::firmware();
    f[fx::FW_DESCRIPTOR] = b'X';
    let p = with(&i, "tampered.fd", &f);
    assert_exit2(
        &replace(&a, "--firmware", &p),
        &["tampered.fd", "signature"],
    );
    // Oversized section count.
    let mut f = fx::firmware();
    f[fx::FW_DESCRIPTOR + 12..fx::FW_DESCRIPTOR + 16].copy_from_slice(&100_000u32.to_le_bytes());
    let p = with(&i, "many.fd", &f);
    assert_exit2(
        &replace(&a, "--firmware", &p),
        &["many.fd", "100000 sections"],
    );
    // Truncated kernel.
    let p = with(&i, "short-kernel", &fx::kernel()[..0x300]);
    assert_exit2(&replace(&a, "--kernel", &p), &["short-kernel"]);
    // A bzImage that is not a PE (no MZ): QEMU would load it, the firmware cannot measure it.
    let mut k = fx::kernel();
    k[0] = 0;
    let p = with(&i, "not-pe", &k);
    assert_exit2(&replace(&a, "--kernel", &p), &["not-pe", "not a PE image"]);
    // Not a bzImage at all.
    let p = with(&i, "random", &[0x42u8; 0x4000]);
    assert_exit2(&replace(&a, "--kernel", &p), &["random", "HdrS"]);
    // Section pointing past the end of the file.
    let mut k = fx::kernel();
    k[0x188 + 20..0x188 + 24].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    let p = with(&i, "bad-section", &k);
    assert_exit2(&replace(&a, "--kernel", &p), &["bad-section", "section 0"]);
    // Missing files.
    assert_exit2(
        &replace(&a, "--initrd", i.root.join("nope.img")),
        &["nope.img", "initrd"],
    );
    assert_exit2(
        &replace(&a, "--firmware", i.root.join("nope.fd")),
        &["nope.fd", "firmware"],
    );
    // Oversized command line.
    assert_exit2(
        &replace(&a, "--cmdline", "x".repeat(5000)),
        &["command line", "5000 bytes"],
    );
    // Memory too small for the initrd / firmware sections.
    assert_exit2(&replace(&a, "--memory", "1M"), &["memory"]);
    assert_exit2(&replace(&a, "--memory", "lots"), &["lots"]);
    // Malformed ACPI blob directory.
    let bad = i.root.join("acpi-bad");
    fx::write(&bad, "etc/table-loader", &[0u8; 100]);
    fx::write(&bad, "etc/acpi/rsdp", b"RSD PTR 0123456789ab");
    fx::write(&bad, "etc/acpi/tables", b"x");
    let mut b = a.clone();
    b.extend([os("--acpi"), bad.into()]);
    assert_exit2(&b, &["table-loader", "128-byte"]);
    // Invalid vga= (QEMU refuses to start).
    assert_exit2(&replace(&a, "--cmdline", "vga=fast"), &["vga"]);
}

#[cfg(unix)]
#[test]
fn invalid_utf8_cmdline_is_reported() {
    use std::os::unix::ffi::OsStringExt;
    let i = inputs();
    let a = replace(
        &base_args(&i, "", "2G"),
        "--cmdline",
        OsString::from_vec(vec![b'a', 0xff, b'b']),
    );
    assert_exit2(&a, &["--cmdline", "UTF-8"]);
}

#[test]
fn library_and_cli_agree() {
    use cocoon_measure::boot::{compute, BootInputs, ComputeOptions, VmShape};
    let i = inputs();
    let v = json(&base_args(&i, "console=hvc0", "3G"));
    let m = compute(
        &BootInputs {
            firmware: i.fw.clone(),
            kernel: i.kernel.clone(),
            initrd: Some(i.initrd.clone()),
            cmdline: "console=hvc0".into(),
            shape: VmShape {
                cpus: 2,
                memory_bytes: 3 << 30,
                gpus: 0,
            },
            acpi_dir: None,
        },
        &ComputeOptions::default(),
    )
    .unwrap();
    assert_eq!(field(&v, "mrtd"), hex::encode(m.mrtd));
    assert_eq!(field(&v, "rtmr1"), hex::encode(m.rtmr1));
    assert_eq!(field(&v, "rtmr2"), hex::encode(m.rtmr2));
    assert_eq!(m.events.len(), 7);
}

/// RTMR0 rebuilt event by event from the documented layouts (TD HOB written out entry by
/// entry, variables as UEFI_VARIABLE_DATA, Boot0000 from the digest dstack-mr published).
#[test]
fn rtmr0_matches_independent_derivation() {
    let i = inputs();
    let mut a = base_args(&i, "quiet", "2G");
    a.extend([os("--acpi"), i.acpi.clone().into()]);
    let v = json(&a);

    // TD HOB for 2 GiB: RAM [0, 2G) split around TempMem 0x800000+0x6000 and TD_HOB
    // 0x809000+0x2000.
    let ranges: [(u64, u64, u32); 5] = [
        (0, 0x80_0000, 7),
        (0x80_0000, 0x6000, 0),
        (0x80_6000, 0x3000, 7),
        (0x80_9000, 0x2000, 0),
        (0x80_b000, 0x8000_0000 - 0x80_b000, 7),
    ];
    let mut hob = vec![1u8, 0, 56, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0];
    hob.extend([0u8; 32]);
    hob.extend((0x80_9000u64 + 56 + 5 * 48 + 8).to_le_bytes());
    for (start, len, kind) in ranges {
        hob.extend([3u8, 0, 48, 0, 0, 0, 0, 0]);
        hob.extend([0u8; 16]);
        hob.extend(kind.to_le_bytes());
        hob.extend(7u32.to_le_bytes());
        hob.extend(start.to_le_bytes());
        hob.extend(len.to_le_bytes());
    }
    let var = |guid: &str, name: &str| {
        let mut b = hex::decode(guid).unwrap();
        b.extend((name.len() as u64).to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(name.encode_utf16().flat_map(u16::to_le_bytes));
        fx::sha384(&b)
    };
    let global = "61dfe48bca93d211aa0d00e098032b8c";
    let secdb = "cbb219d73a3d9645a3bcdad00e67656f";
    let acpi = |p: &str| fx::sha384(&std::fs::read(i.acpi.join(p)).unwrap());
    let boot0000: [u8; 48] = hex::decode(
        "23ada07f5261f12f34a0bd8e46760962d6b4d576a416f1fea1c64bc656b1d28eacf7047ae6e967c58fd2a98bfa74c298",
    )
    .unwrap()
    .try_into()
    .unwrap();
    let mut r0 = [0u8; 48];
    for d in [
        fx::sha384(&hob),
        fx::sha384(&fx::firmware()[..0x4000]),
        var(global, "SecureBoot"),
        var(global, "PK"),
        var(global, "KEK"),
        var(secdb, "db"),
        var(secdb, "dbx"),
        fx::sha384(&[0; 4]),
        acpi("etc/table-loader"),
        acpi("etc/acpi/rsdp"),
        acpi("etc/acpi/tables"),
        fx::sha384(&[0, 0]),
        boot0000,
    ] {
        r0 = fx::extend(r0, d);
    }
    assert_eq!(field(&v, "rtmr0"), hex::encode(r0));
}
