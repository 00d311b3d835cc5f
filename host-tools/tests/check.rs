//! `cocoon-host check` against fake hosts: exact per-line statuses and exit codes.

mod common;

use common::*;

/// (id, status) of every line of `check --json`, and the exit code.
fn statuses(h: &FakeHost) -> (Vec<(String, String)>, i32) {
    let out = h.run(&["check", "--json"]);
    let v: serde_json::Value =
        serde_json::from_str(&stdout(&out)).expect("check --json prints JSON");
    let lines = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(v["ready"].as_bool().unwrap(), out.status.code() == Some(0));
    (lines, out.status.code().unwrap())
}

fn expected(overrides: &[(&str, &str)]) -> Vec<(String, String)> {
    let ids = [
        "cpu-tdx".to_string(),
        "kvm-tdx".into(),
        "tdx-msr".into(),
        "kernel".into(),
        "qemu".into(),
        "qemu-tdx-guest".into(),
        "iommu".into(),
        "iommufd".into(),
        "hugepages".into(),
        "vsock".into(),
        "qgs".into(),
        format!("gpu {GPU} driver"),
        format!("gpu {GPU} iommu-group"),
        format!("gpu {GPU} cc-mode"),
    ];
    ids.iter()
        .map(|id| {
            let st = overrides
                .iter()
                .find(|(i, _)| i == id)
                .map(|(_, s)| *s)
                .unwrap_or("pass");
            (id.clone(), st.to_string())
        })
        .collect()
}

#[test]
fn ready_host_passes_everything() {
    let h = FakeHost::ready();
    let (lines, code) = statuses(&h);
    assert_eq!(lines, expected(&[]));
    assert_eq!(code, 0);
    let text = stdout(&h.run(&["check"]));
    assert!(text.contains("PASS    tdx-msr"), "{text}");
    assert!(text.contains("64 TDX key IDs"), "{text}");
    assert!(
        text.contains(&format!(
            "IOMMU group 7, alone with its own functions {GPU_AUDIO}"
        )),
        "{text}"
    );
    assert!(
        text.ends_with("ready: this host can run a COCOON worker\n"),
        "{text}"
    );
}

#[test]
fn tdx_disabled_in_bios() {
    let h = FakeHost::ready();
    h.write("/proc/cpuinfo", "processor\t: 0\nflags\t\t: fpu vmx\n");
    h.write("/sys/module/kvm_intel/parameters/tdx", "N\n");
    h.set_msrs(0, 0, 0);
    let (lines, code) = statuses(&h);
    assert_eq!(
        lines,
        expected(&[
            ("cpu-tdx", "fail"),
            ("kvm-tdx", "fail"),
            ("tdx-msr", "fail")
        ])
    );
    assert_eq!(code, 1);
    let text = stdout(&h.run(&["check"]));
    assert!(text.contains("no TDX key IDs reserved"), "{text}");
    assert!(text.contains("fix: enable in the BIOS"), "{text}");
    assert!(
        text.ends_with("not ready: fix the FAIL lines above\n"),
        "{text}"
    );
}

#[test]
fn partial_bios_setup_names_the_missing_msr_bit() {
    let h = FakeHost::ready();
    h.set_msrs(0b11, (64 << 32) | 31, 1 << 10);
    let (lines, code) = statuses(&h);
    assert_eq!(lines, expected(&[("tdx-msr", "fail")]));
    assert_eq!(code, 1);
    let text = stdout(&h.run(&["check"]));
    assert!(
        text.contains("SEAM range not enabled (IA32_SEAMRR_PHYS_MASK=0x400)"),
        "{text}"
    );
    assert!(!text.contains("no TDX key IDs"), "{text}");
    // SEAMRR unreadable: judged on the other two MSRs.
    let mut msr = vec![0u8; 0x982 + 8];
    msr[0x982..].copy_from_slice(&3u64.to_le_bytes());
    msr[0x87..0x87 + 8].copy_from_slice(&(8u64 << 32).to_le_bytes());
    h.write("/dev/cpu/0/msr", &msr);
    let (lines, _) = statuses(&h);
    assert_eq!(lines, expected(&[]));
    assert!(stdout(&h.run(&["check"])).contains("8 TDX key IDs (0 MK-TME), SEAMRR not readable"));
    // A truncated msr file (an MSR the CPU does not implement) is unknown, not a pass.
    h.write("/dev/cpu/0/msr", [0u8; 16]);
    let (lines, _) = statuses(&h);
    assert_eq!(lines, expected(&[("tdx-msr", "unknown")]));
}

#[test]
fn no_iommu() {
    let h = FakeHost::ready();
    h.remove("/sys/kernel/iommu_groups");
    h.mkdir("/sys/kernel/iommu_groups");
    for d in [GPU, GPU_AUDIO, NVME, "0000:00:00.0"] {
        h.remove(&format!("/sys/bus/pci/devices/{d}/iommu_group"));
    }
    let (lines, code) = statuses(&h);
    assert_eq!(
        lines,
        expected(&[
            ("iommu", "fail"),
            (&format!("gpu {GPU} iommu-group"), "fail")
        ])
    );
    assert_eq!(code, 1);
    assert!(stdout(&h.run(&["check"])).contains("intel_iommu=on"));
}

#[test]
fn gpu_bound_to_nvidia() {
    let h = FakeHost::ready();
    h.gpu_on_host_drivers();
    let (lines, code) = statuses(&h);
    assert_eq!(lines, expected(&[(&format!("gpu {GPU} driver"), "fail")]));
    assert_eq!(code, 1);
    let text = stdout(&h.run(&["check"]));
    assert!(
        text.contains(&format!(
            "bound to nvidia; the VM needs it on vfio-pci | fix: `cocoon-host gpu bind {GPU}`"
        )),
        "{text}"
    );
}

#[test]
fn gpu_sharing_group_with_storage_controller() {
    let h = FakeHost::ready();
    // A PCIe bridge in the group is fine: it stays with the host.
    h.pci(
        "0000:16:00.0",
        0x8086,
        0x347a,
        0x060400,
        Some("pcieport"),
        Some(GPU_GROUP),
    );
    let (lines, code) = statuses(&h);
    assert_eq!((lines, code), (expected(&[]), 0));
    h.set_group(NVME, GPU_GROUP);
    let (lines, code) = statuses(&h);
    assert_eq!(
        lines,
        expected(&[(&format!("gpu {GPU} iommu-group"), "fail")])
    );
    assert_eq!(code, 1);
    let text = stdout(&h.run(&["check"]));
    assert!(
        text.contains(&format!(
            "IOMMU group 7 is shared with {NVME} (storage controller, driver nvme)"
        )),
        "{text}"
    );
}

#[test]
fn unknowns_do_not_block_but_old_qemu_does() {
    let mut h = FakeHost::ready();
    h.remove("/dev/cpu/0/msr");
    h.qgs = None;
    h.remove("/var/run/tdx-qgs/qgs.socket");
    std::fs::remove_file(h.bin().join("nvidia_gpu_tools.py")).ok();
    let (lines, code) = statuses(&h);
    assert_eq!(
        lines,
        expected(&[
            ("tdx-msr", "unknown"),
            ("qgs", "unknown"),
            (&format!("gpu {GPU} cc-mode"), "unknown")
        ])
    );
    assert_eq!(code, 0);
    let text = stdout(&h.run(&["check"]));
    assert!(text.contains("msr module is not loaded"), "{text}");

    h.qemu("9.2.0", false);
    let (lines, code) = statuses(&h);
    assert_eq!(
        lines,
        expected(&[
            ("tdx-msr", "unknown"),
            ("qemu", "fail"),
            ("qemu-tdx-guest", "fail"),
            ("qgs", "unknown"),
            (&format!("gpu {GPU} cc-mode"), "unknown")
        ])
    );
    assert_eq!(code, 1);
}

#[test]
fn old_kernel_missing_vsock_cc_off_and_dead_qgs() {
    let mut h = FakeHost::ready();
    h.write("/proc/sys/kernel/osrelease", "6.8.0-51-generic\n");
    h.remove("/dev/vhost-vsock");
    h.cc_tool("off");
    // A socket file nobody accepts on.
    h.qgs = None;
    let (lines, code) = statuses(&h);
    assert_eq!(
        lines,
        expected(&[
            ("kernel", "fail"),
            ("vsock", "fail"),
            ("qgs", "fail"),
            (&format!("gpu {GPU} cc-mode"), "fail")
        ])
    );
    assert_eq!(code, 1);
    let text = stdout(&h.run(&["check"]));
    assert!(text.contains("--set-cc-mode=on"), "{text}");
    assert!(text.contains("since 6.16"), "{text}");
}

#[test]
fn no_gpu_and_no_qemu() {
    let h = FakeHost::ready();
    h.remove(&format!("/sys/bus/pci/devices/{GPU}"));
    h.remove(&format!("/sys/bus/pci/devices/{GPU_AUDIO}"));
    std::fs::remove_file(h.bin().join("qemu-system-x86_64")).unwrap();
    let (lines, code) = statuses(&h);
    let ids: Vec<(&str, &str)> = lines
        .iter()
        .map(|(i, s)| (i.as_str(), s.as_str()))
        .collect();
    assert!(ids.contains(&("qemu", "fail")));
    assert!(ids.contains(&("qemu-tdx-guest", "fail")));
    assert_eq!(ids.last(), Some(&("gpus", "fail")));
    assert_eq!(code, 1);
}

#[test]
fn hugepages_reported_when_configured() {
    let h = FakeHost::ready();
    h.write(
        "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages",
        "16\n",
    );
    h.write(
        "/sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages",
        "4\n",
    );
    let (lines, code) = statuses(&h);
    assert_eq!(lines, expected(&[]));
    assert_eq!(code, 0);
    assert!(stdout(&h.run(&["check"])).contains("1048576kB: 4 of 16 free"));
}
