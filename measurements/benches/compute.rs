//! Time to compute MRTD and RTMR0-2 for the Debian trixie firmware, kernel and initrd
//! (`tests/fixtures/fetch-boot-inputs`, directory in `COCOON_BOOT_INPUTS`), with synthetic
//! ACPI blobs so RTMR0 is included. Run with `cargo bench -p cocoon-measure --bench compute`.
//! Prints min / median / max over a few iterations; plain std::time, no harness.

use cocoon_measure::boot::{compute, BootInputs, ComputeOptions, KernelHeader, VmShape};
use std::time::{Duration, Instant};

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing special. Either way
    // one run is enough to prove the path works when no inputs are present.
    let Some(dir) = std::env::var_os("COCOON_BOOT_INPUTS").map(std::path::PathBuf::from) else {
        eprintln!("compute bench: COCOON_BOOT_INPUTS is unset; run tests/fixtures/fetch-boot-inputs and export its output directory");
        return;
    };
    let acpi = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(acpi.path().join("etc/acpi")).expect("acpi dir");
    std::fs::write(acpi.path().join("etc/table-loader"), vec![0u8; 128 * 16]).expect("write");
    let mut rsdp = b"RSD PTR ".to_vec();
    rsdp.resize(36, 0);
    std::fs::write(acpi.path().join("etc/acpi/rsdp"), rsdp).expect("write");
    std::fs::write(
        acpi.path().join("etc/acpi/tables"),
        vec![0x41u8; 128 * 1024],
    )
    .expect("write");

    let inputs = BootInputs {
        firmware: dir.join("OVMF.fd"),
        kernel: dir.join("vmlinuz"),
        initrd: Some(dir.join("initrd.img")),
        cmdline: "console=ttyS0 root=/dev/vda ro".into(),
        shape: VmShape {
            cpus: 4,
            memory_bytes: 16 << 30,
            gpus: 0,
        },
        acpi_dir: Some(acpi.path().to_path_buf()),
    };
    let sizes: u64 = ["OVMF.fd", "vmlinuz", "initrd.img"]
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0))
        .sum();
    for (name, opts) in [
        ("as-file", ComputeOptions::default()),
        (
            "qemu-patched",
            ComputeOptions {
                kernel_header: KernelHeader::QemuPatched,
                ..Default::default()
            },
        ),
    ] {
        let mut times: Vec<Duration> = Vec::new();
        for _ in 0..10 {
            let t = Instant::now();
            let m = compute(&inputs, &opts).expect("compute");
            times.push(t.elapsed());
            std::hint::black_box(m);
        }
        times.sort();
        println!(
            "compute all registers ({name}, {:.1} MB of inputs): min {:?} median {:?} max {:?}",
            sizes as f64 / 1e6,
            times[0],
            times[times.len() / 2],
            times[times.len() - 1]
        );
    }
}
