//! `gpu list|bind|unbind|status`: the library against a fake kernel that records writes and
//! applies their effect, and the real binary against a fake tree (where writes land in files).

mod common;

use cocoon_host::gpu::bind::{self, GpuError};
use cocoon_host::gpu::{self, state};
use cocoon_host::pci::Bdf;
use cocoon_host::root::HostRoot;
use common::*;

fn bdf(s: &str) -> Bdf {
    s.parse().unwrap()
}

fn w(path: &str, value: &str) -> (String, String) {
    (path.to_string(), value.to_string())
}

fn setup() -> (FakeHost, HostRoot, std::path::PathBuf) {
    let h = FakeHost::ready();
    h.gpu_on_host_drivers();
    h.write("/sys/module/nvidia/refcnt", "2\n");
    h.mkdir("/sys/module/nvidia/holders/nvidia_uvm");
    h.mkdir("/sys/module/nvidia/holders/nvidia_modeset");
    let root = HostRoot::new(h.root());
    let state_dir = h.p("/run/cocoon-host");
    (h, root, state_dir)
}

#[test]
fn bind_then_unbind_restores_previous_drivers() {
    let (h, root, state_dir) = setup();
    let mut k = FakeKernel::new(&h.root());
    let out = bind::bind(&root, &mut k, &state_dir, &bdf(GPU)).unwrap();
    assert_eq!(
        k.writes,
        vec![
            w(
                &format!("/sys/bus/pci/devices/{GPU}/driver_override"),
                "vfio-pci"
            ),
            w("/sys/bus/pci/drivers/nvidia/unbind", GPU),
            w("/sys/bus/pci/drivers_probe", GPU),
            w(
                &format!("/sys/bus/pci/devices/{GPU_AUDIO}/driver_override"),
                "vfio-pci"
            ),
            w("/sys/bus/pci/drivers/snd_hda_intel/unbind", GPU_AUDIO),
            w("/sys/bus/pci/drivers_probe", GPU_AUDIO),
        ]
    );
    assert_eq!(out.moved.len(), 2);
    let rec = state::load(&state_dir, GPU).unwrap().unwrap();
    assert_eq!(rec.devices[0].driver.as_deref(), Some("nvidia"));
    assert_eq!(rec.devices[1].driver.as_deref(), Some("snd_hda_intel"));
    let v = gpu::status(&root, &state_dir, &bdf(GPU)).unwrap();
    assert_eq!(v.driver.as_deref(), Some("vfio-pci"));
    assert_eq!(v.driver_override.as_deref(), Some("vfio-pci"));

    // A second bind changes nothing and keeps the original record.
    let mut k2 = FakeKernel::new(&h.root());
    let again = bind::bind(&root, &mut k2, &state_dir, &bdf(GPU)).unwrap();
    assert!(k2.writes.is_empty());
    assert_eq!(again.already, vec![GPU.to_string(), GPU_AUDIO.to_string()]);
    assert_eq!(state::load(&state_dir, GPU).unwrap().unwrap(), rec);

    let mut k3 = FakeKernel::new(&h.root());
    let back = bind::unbind(&root, &mut k3, &state_dir, &bdf(GPU)).unwrap();
    assert_eq!(
        k3.writes,
        vec![
            w(&format!("/sys/bus/pci/devices/{GPU}/driver_override"), "\n"),
            w("/sys/bus/pci/drivers/vfio-pci/unbind", GPU),
            w("/sys/bus/pci/drivers/nvidia/bind", GPU),
            w(
                &format!("/sys/bus/pci/devices/{GPU_AUDIO}/driver_override"),
                "\n"
            ),
            w("/sys/bus/pci/drivers/vfio-pci/unbind", GPU_AUDIO),
            w("/sys/bus/pci/drivers/snd_hda_intel/bind", GPU_AUDIO),
        ]
    );
    assert_eq!(back.restored[0].driver.as_deref(), Some("nvidia"));
    assert_eq!(state::load(&state_dir, GPU).unwrap(), None);
    let v = gpu::status(&root, &state_dir, &bdf(GPU)).unwrap();
    assert_eq!(
        (v.driver.as_deref(), v.driver_override),
        (Some("nvidia"), None)
    );
}

#[test]
fn refuses_gpu_in_use_without_writing() {
    let (h, root, state_dir) = setup();
    // Two dependent modules hold two references; the third is an open /dev/nvidia*.
    h.write("/sys/module/nvidia/refcnt", "3\n");
    let mut k = FakeKernel::new(&h.root());
    let err = bind::bind(&root, &mut k, &state_dir, &bdf(GPU)).unwrap_err();
    assert!(matches!(err, GpuError::InUse { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("1 reference(s) beyond its dependent modules"),
        "{err}"
    );
    assert!(k.writes.is_empty());
    assert_eq!(state::load(&state_dir, GPU).unwrap(), None);

    h.write("/sys/module/nvidia/refcnt", "2\n");
    h.write(&format!("/sys/bus/pci/devices/{GPU}/boot_vga"), "1\n");
    let err = bind::bind(&root, &mut k, &state_dir, &bdf(GPU)).unwrap_err();
    assert!(err.to_string().contains("boot VGA"), "{err}");
    assert!(k.writes.is_empty());
}

#[test]
fn refuses_bad_targets() {
    let (h, root, state_dir) = setup();
    let mut k = FakeKernel::new(&h.root());
    let err = bind::bind(&root, &mut k, &state_dir, &bdf("0000:99:00.0")).unwrap_err();
    assert!(err.is_usage(), "{err}");
    assert!(
        err.to_string().contains("no PCI device 0000:99:00.0"),
        "{err}"
    );
    let err = bind::bind(&root, &mut k, &state_dir, &bdf(NVME)).unwrap_err();
    assert!(
        matches!(err, GpuError::NotGpu { .. }) && !err.is_usage(),
        "{err}"
    );
    h.set_group(NVME, GPU_GROUP);
    let err = bind::bind(&root, &mut k, &state_dir, &bdf(GPU)).unwrap_err();
    assert!(matches!(err, GpuError::SharedGroup { .. }), "{err}");
    assert!(err.to_string().contains("storage controller"), "{err}");
    assert!(k.writes.is_empty());
    let err = bind::unbind(&root, &mut k, &state_dir, &bdf(GPU)).unwrap_err();
    assert!(matches!(err, GpuError::NoRecord(_)), "{err}");
}

#[test]
fn bind_that_the_kernel_ignores_is_reported() {
    let (h, root, state_dir) = setup();
    let mut k = FakeKernel::new(&h.root());
    k.apply = false;
    let err = bind::bind(&root, &mut k, &state_dir, &bdf(GPU)).unwrap_err();
    assert!(matches!(err, GpuError::NotTakenEffect { .. }), "{err}");
    assert_eq!(k.writes.len(), 6);
    // The record is kept so the operator can still restore.
    assert!(state::load(&state_dir, GPU).unwrap().is_some());
}

#[test]
fn unbind_refuses_while_a_vm_holds_vfio() {
    let (h, root, state_dir) = setup();
    let mut k = FakeKernel::new(&h.root());
    bind::bind(&root, &mut k, &state_dir, &bdf(GPU)).unwrap();
    h.write("/sys/module/vfio_pci/refcnt", "1\n");
    let mut k2 = FakeKernel::new(&h.root());
    let err = bind::unbind(&root, &mut k2, &state_dir, &bdf(GPU)).unwrap_err();
    assert!(matches!(err, GpuError::InUse { .. }), "{err}");
    assert!(k2.writes.is_empty());
}

#[test]
fn binary_writes_the_sysfs_files_and_verifies() {
    let (h, _root, _state) = setup();
    // In a fake tree nothing rebinds, so the binary must notice and fail after writing.
    let out = h.run(&["gpu", "bind", GPU]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("did not take effect"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        h.read(&format!("/sys/bus/pci/devices/{GPU}/driver_override")),
        "vfio-pci"
    );
    assert_eq!(h.read("/sys/bus/pci/drivers/nvidia/unbind"), GPU);
    assert_eq!(
        h.read("/sys/bus/pci/drivers/snd_hda_intel/unbind"),
        GPU_AUDIO
    );
    // Each write starts at offset 0 of a plain file: the audio function's probe was last.
    assert_eq!(h.read("/sys/bus/pci/drivers_probe"), GPU_AUDIO);
    assert!(h.p(&format!("/run/cocoon-host/gpu/{GPU}.json")).is_file());
}

#[test]
fn binary_exit_codes_and_listing() {
    let (h, _root, _state) = setup();
    let out = h.run(&["gpu", "bind", "0000:99:00.0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = h.run(&["gpu", "status", "not-a-bdf"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is not a PCI address"));
    h.set_group(NVME, GPU_GROUP);
    let out = h.run(&["gpu", "bind", GPU]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("shared with {NVME} (storage controller")),
        "{}",
        stderr(&out)
    );
    let out = h.run(&["gpu", "bind", NVME]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not an NVIDIA GPU"));

    let out = h.run(&["gpu", "list", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let gpus = v.as_array().unwrap();
    assert_eq!(gpus.len(), 1);
    assert_eq!(gpus[0]["bdf"], GPU);
    assert_eq!(gpus[0]["driver"], "nvidia");
    assert_eq!(gpus[0]["group_ok"], false);
    let out = h.run(&["gpu", "status", GPU]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.contains("[10de:2331]")
            && text.contains(
                "group member 0000:03:00.0 (foreign, 0x010802 storage controller, driver nvme)"
            ),
        "{text}"
    );
}
