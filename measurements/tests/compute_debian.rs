//! End-to-end on the real Debian trixie `ovmf` and `linux-image-*-amd64` packages, fetched by
//! `tests/fixtures/fetch-boot-inputs` into the directory named by `COCOON_BOOT_INPUTS`
//! (OVMF.fd, vmlinuz, initrd.img). Without that variable the tests skip locally and FAIL when
//! `CI=true`.

mod compute_fixtures;

use cocoon_measure::boot::{
    compute, BootInputs, BootMeasurements, ComputeOptions, KernelHeader, VmShape,
};
use cocoon_measure::tdvf::{MrtdOrder, SectionType, TdvfMetadata};
use compute_fixtures as fx;
use std::ffi::OsString;
use std::path::PathBuf;

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

fn inputs(d: &std::path::Path, cmdline: &str, memory: u64) -> BootInputs {
    BootInputs {
        firmware: d.join("OVMF.fd"),
        kernel: d.join("vmlinuz"),
        initrd: Some(d.join("initrd.img")),
        cmdline: cmdline.into(),
        shape: VmShape {
            cpus: 2,
            memory_bytes: memory,
            gpus: 0,
        },
        acpi_dir: None,
    }
}

fn patched() -> ComputeOptions {
    ComputeOptions {
        kernel_header: KernelHeader::QemuPatched,
        ..Default::default()
    }
}

fn run(i: &BootInputs, o: &ComputeOptions) -> BootMeasurements {
    compute(i, o).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn debian_firmware_metadata_and_mrtd() {
    let Some(d) = boot_inputs() else { return };
    let fw = std::fs::read(d.join("OVMF.fd")).unwrap();
    let meta = TdvfMetadata::parse(&fw).unwrap();
    let bfv = meta.section(SectionType::Bfv).expect("BFV");
    assert!(bfv.extends_mr(), "BFV must be measured into MRTD");
    assert!(meta
        .section(SectionType::Cfv)
        .is_some_and(|c| !c.extends_mr()));
    assert!(meta.section(SectionType::TdHob).is_some());
    // The BFV ends at 4 GiB (reset vector) and is the tail of the image.
    assert_eq!(bfv.memory_address + bfv.memory_data_size, 1 << 32);
    assert_eq!(
        bfv.data_offset as usize + bfv.raw_data_size as usize,
        fw.len()
    );
    let one = meta.mrtd(&fw, MrtdOrder::SinglePass).unwrap();
    assert_eq!(
        one,
        meta.mrtd(&fw, MrtdOrder::SinglePass).unwrap(),
        "MRTD must be deterministic"
    );
    assert_ne!(one, meta.mrtd(&fw, MrtdOrder::TwoPass).unwrap());
    // MRTD does not depend on the VM shape or the boot files.
    let a = run(
        &inputs(&d, "console=ttyS0", 2 << 30),
        &ComputeOptions::default(),
    );
    let b = run(&inputs(&d, "quiet", 16 << 30), &ComputeOptions::default());
    assert_eq!(a.mrtd, b.mrtd);
    assert_eq!(a.mrtd, one);
    // A byte of code in the BFV moves MRTD; a byte of the CFV (variable store) does not.
    let mut t = fw.clone();
    t[bfv.data_offset as usize + 0x1000] ^= 1;
    assert_ne!(meta.mrtd(&t, MrtdOrder::SinglePass).unwrap(), one);
    let cfv = meta.section(SectionType::Cfv).unwrap();
    let mut t = fw;
    t[cfv.data_offset as usize + 0x100] ^= 1;
    assert_eq!(meta.mrtd(&t, MrtdOrder::SinglePass).unwrap(), one);
}

#[test]
fn debian_kernel_digest_and_rtmr1() {
    let Some(d) = boot_inputs() else { return };
    let k = std::fs::read(d.join("vmlinuz")).unwrap();
    let m = run(
        &inputs(&d, "console=ttyS0", 2 << 30),
        &ComputeOptions::default(),
    );
    // The Debian kernel is signed and its sections tile the file, so the Authenticode digest
    // equals the whole file minus CheckSum, certificate directory and certificate table.
    assert_eq!(m.events[0].digest, fx::authenticode_by_omission(&k));
    // One byte of kernel code moves RTMR1.
    let dir = tempfile::tempdir().unwrap();
    let mut k2 = k.clone();
    let at = k2.len() / 2;
    k2[at] ^= 0x01;
    let kp = fx::write(dir.path(), "vmlinuz", &k2);
    let mut i = inputs(&d, "console=ttyS0", 2 << 30);
    i.kernel = kp;
    assert_ne!(run(&i, &ComputeOptions::default()).rtmr1, m.rtmr1);
    // Memory: irrelevant to the file as measured, relevant to QEMU's patched header.
    let a = |mem| {
        run(
            &inputs(&d, "console=ttyS0", mem),
            &ComputeOptions::default(),
        )
        .rtmr1
    };
    assert_eq!(a(1 << 30), a(2 << 30));
    let p = |mem| run(&inputs(&d, "console=ttyS0", mem), &patched()).rtmr1;
    assert_ne!(p(1 << 30), p(2 << 30));
    assert_ne!(p(2 << 30), a(2 << 30));
}

/// RTMR0 on the real firmware metadata: the TD HOB fits the TD_HOB section and follows the
/// memory size; the ACPI blobs here are synthetic (QEMU is needed to produce real ones).
#[test]
fn debian_rtmr0_with_acpi_blobs() {
    let Some(d) = boot_inputs() else { return };
    let dir = tempfile::tempdir().unwrap();
    let acpi = fx::acpi_dir(dir.path());
    let r0 = |mem: u64| {
        let mut i = inputs(&d, "console=ttyS0", mem);
        i.acpi_dir = Some(acpi.clone());
        let m = run(&i, &ComputeOptions::default());
        assert_eq!(
            m.events
                .iter()
                .filter(|e| e.rtmr == cocoon_measure::Rtmr::Rtmr0)
                .count(),
            13
        );
        m.rtmr0.expect("rtmr0 with --acpi")
    };
    assert_ne!(r0(2 << 30), r0(16 << 30));
    assert_eq!(r0(16 << 30), r0(16 << 30));
}

#[test]
fn debian_rtmr2_follows_cmdline_and_initrd() {
    let Some(d) = boot_inputs() else { return };
    let base = run(
        &inputs(&d, "console=ttyS0", 2 << 30),
        &ComputeOptions::default(),
    );
    let initrd = std::fs::read(d.join("initrd.img")).unwrap();
    let mut expect = fx::extend(
        [0; 48],
        fx::sha384(&fx::load_options("console=ttyS0", true)),
    );
    expect = fx::extend(expect, fx::sha384(&initrd));
    assert_eq!(base.rtmr2, expect);
    let other = run(
        &inputs(&d, "console=ttyS0 ", 2 << 30),
        &ComputeOptions::default(),
    );
    assert_ne!(other.rtmr2, base.rtmr2);
    assert_eq!(other.rtmr1, base.rtmr1);
    let dir = tempfile::tempdir().unwrap();
    let mut changed = initrd;
    changed.push(0);
    let mut i = inputs(&d, "console=ttyS0", 2 << 30);
    i.initrd = Some(fx::write(dir.path(), "initrd.img", &changed));
    assert_ne!(run(&i, &ComputeOptions::default()).rtmr2, base.rtmr2);
    let mut none = inputs(&d, "console=ttyS0", 2 << 30);
    none.initrd = None;
    let n = run(&none, &ComputeOptions::default());
    assert_eq!(
        n.rtmr2,
        fx::extend(
            [0; 48],
            fx::sha384(&fx::load_options("console=ttyS0", false))
        )
    );
}

#[test]
fn debian_cli_json_and_bad_inputs() {
    let Some(d) = boot_inputs() else { return };
    let arg = |s: &str| OsString::from(s);
    let mut a: Vec<OsString> = vec![
        arg("compute"),
        arg("--firmware"),
        d.join("OVMF.fd").into(),
        arg("--kernel"),
        d.join("vmlinuz").into(),
        arg("--initrd"),
        d.join("initrd.img").into(),
        arg("--cmdline"),
        arg("console=ttyS0 root=/dev/vda"),
        arg("--memory"),
        arg("2G"),
        arg("--cpus"),
        arg("2"),
        arg("--json"),
    ];
    let refs = |a: &[OsString]| {
        a.iter()
            .map(|x| x.as_os_str().to_owned())
            .collect::<Vec<_>>()
    };
    let go = |a: &[OsString]| {
        let r = refs(a);
        fx::cli(&r.iter().map(|x| x.as_os_str()).collect::<Vec<_>>())
    };
    let o = go(&a);
    assert!(o.status.success(), "{}", fx::stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in ["mrtd", "rtmr1", "rtmr2"] {
        assert_eq!(v[k].as_str().map(str::len), Some(96), "{k} in {v}");
    }
    assert!(v["rtmr0"].is_null());
    let lib = run(
        &inputs(&d, "console=ttyS0 root=/dev/vda", 2 << 30),
        &ComputeOptions::default(),
    );
    assert_eq!(v["rtmr1"].as_str().unwrap(), hex::encode(lib.rtmr1));

    // Firmware and kernel swapped: each is refused with exit code 2, naming the file.
    let mut swapped = a.clone();
    swapped[2] = d.join("vmlinuz").into();
    let o = go(&swapped);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        fx::stderr(&o).contains("vmlinuz") && fx::stderr(&o).contains("TDVF"),
        "{}",
        fx::stderr(&o)
    );
    swapped = a.clone();
    swapped[4] = d.join("OVMF.fd").into();
    let o = go(&swapped);
    assert_eq!(o.status.code(), Some(2));
    assert!(fx::stderr(&o).contains("OVMF.fd"), "{}", fx::stderr(&o));
    // Truncated kernel.
    let dir = tempfile::tempdir().unwrap();
    let k = std::fs::read(d.join("vmlinuz")).unwrap();
    let short = fx::write(dir.path(), "short-vmlinuz", &k[..k.len() / 3]);
    a[4] = short.into();
    let o = go(&a);
    assert_eq!(o.status.code(), Some(2), "{}", fx::stderr(&o));
    assert!(
        fx::stderr(&o).contains("short-vmlinuz"),
        "{}",
        fx::stderr(&o)
    );
}
