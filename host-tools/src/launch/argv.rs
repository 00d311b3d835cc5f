//! The QEMU command line for one worker instance. A pure function of the validated config, the
//! instance number, the mode, what the host offers ([`HostDevices`]: accelerator, vsock) and
//! the [`BootSpec`] (firmware, kernel, initrd, `-append` string
//! and VM shape: the same value `measure` computes registers from), so golden tests pin it
//! exactly.
//!
//! Per instance N: guest CID `GUEST_CID_BASE + N`, host port `agent.port + N`, name
//! `cocoon-worker-N`.

use super::config::{LaunchConfig, QgsAddress};
use super::host::{Accel, HostDevices};
use crate::boot::{qemu_opt as opt, BootSpec};

/// Guest CIDs 0-2 are reserved (hypervisor, local, host); instances start well above them.
pub const GUEST_CID_BASE: u32 = 100;
/// Appended to the kernel command line in `--no-tdx` mode: the guest runs a SIMULATED TD whose
/// quotes are signed by the mock PKI, which no production verifier accepts.
pub const SIMULATED_TD_SWITCH: &str = "cocoon.simulated_td=1";
/// The 9p mount tag the guest mounts the config share from.
pub const CONFIG_MOUNT_TAG: &str = "cocoon-config";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A real TD: `tdx-guest` object, confidential guest support, split irqchip.
    Tdx,
    /// The same image without TDX, told by [`SIMULATED_TD_SWITCH`] to run a simulated TD.
    SimulatedTd,
}

pub fn guest_cid(instance: u32) -> u32 {
    GUEST_CID_BASE + instance
}

/// The host port of the agent for `instance`, `None` when it would pass 65535.
pub fn host_port(cfg: &LaunchConfig, instance: u32) -> Option<u16> {
    u16::try_from(u32::from(cfg.agent_port) + instance).ok()
}

/// The `tdx-guest` object in QEMU's JSON syntax. Structs, not `json!` maps, so the key order
/// (and with it the argv) does not depend on serde_json's `preserve_order` feature.
fn tdx_object(qgs: &QgsAddress) -> String {
    #[derive(serde::Serialize)]
    #[serde(tag = "type", rename_all = "lowercase")]
    enum Socket {
        Unix { path: String },
        Vsock { cid: String, port: String },
    }
    #[derive(serde::Serialize)]
    struct TdxGuest {
        #[serde(rename = "qom-type")]
        qom_type: &'static str,
        id: &'static str,
        #[serde(rename = "quote-generation-socket")]
        socket: Socket,
    }
    let socket = match qgs {
        QgsAddress::Unix(p) => Socket::Unix {
            path: p.display().to_string(),
        },
        QgsAddress::Vsock(port) => Socket::Vsock {
            cid: "2".into(),
            port: port.to_string(),
        },
    };
    let object = TdxGuest {
        qom_type: "tdx-guest",
        id: "tdx0",
        socket,
    };
    serde_json::to_string(&object).expect("a struct of strings always serialises")
}

/// The `-append` string of `mode` for the image's command line.
pub fn append_for(mode: Mode, kernel_cmdline: &str) -> String {
    match mode {
        Mode::Tdx => kernel_cmdline.to_string(),
        Mode::SimulatedTd if kernel_cmdline.is_empty() => SIMULATED_TD_SWITCH.to_string(),
        Mode::SimulatedTd => format!("{kernel_cmdline} {SIMULATED_TD_SWITCH}"),
    }
}

/// Builds the argv (program first). `port` is the instance's host port (see [`host_port`]);
/// `host` is the accelerator and whether the vsock device is there (see
/// [`super::host::plan`]); `boot` carries `-smp`, `-m`, `-bios`, `-kernel`, `-initrd` and
/// `-append` (built with [`append_for`] for `mode`).
pub fn build(
    qemu: &str,
    cfg: &LaunchConfig,
    instance: u32,
    port: u16,
    mode: Mode,
    host: HostDevices,
    boot: &BootSpec,
) -> Vec<String> {
    let name = format!("cocoon-worker-{instance}");
    let mem_mib = boot.shape.memory_mib();
    let mut a: Vec<String> = Vec::new();
    let mut push = |parts: &[&str]| a.extend(parts.iter().map(|s| s.to_string()));

    push(&[qemu]);
    push(&["-name", &format!("{name},process={name}")]);
    push(&[
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-serial",
        "stdio",
    ]);
    match host.accel {
        Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg => push(&["-accel", "tcg", "-cpu", "max"]),
    }
    match mode {
        Mode::Tdx => {
            push(&[
                "-machine",
                "q35,confidential-guest-support=tdx0,kernel-irqchip=split,hpet=off,memory-backend=ram0",
            ]);
            push(&["-object", &tdx_object(&cfg.qgs)]);
        }
        Mode::SimulatedTd => {
            push(&["-machine", "q35,hpet=off,memory-backend=ram0"]);
        }
    }
    push(&[
        "-object",
        &format!("memory-backend-memfd,id=ram0,size={mem_mib}M"),
    ]);
    a.extend(boot.qemu_args());
    let mut push = |parts: &[&str]| a.extend(parts.iter().map(|s| s.to_string()));
    if host.vsock {
        push(&[
            "-device",
            &format!("vhost-vsock-pci,guest-cid={}", guest_cid(instance)),
        ]);
    }
    push(&[
        "-netdev",
        &format!(
            "user,id=net0,hostfwd=tcp:{}:{port}-:{}",
            cfg.host_address, cfg.guest_port
        ),
    ]);
    push(&["-device", "virtio-net-pci,netdev=net0"]);
    push(&[
        "-fsdev",
        &format!(
            "local,id=config,path={},security_model=none,readonly=on",
            opt(&cfg.config_share)
        ),
    ]);
    push(&[
        "-device",
        &format!("virtio-9p-pci,fsdev=config,mount_tag={CONFIG_MOUNT_TAG}"),
    ]);
    push(&[
        "-drive",
        &format!(
            "file={},if=none,id=root,format=raw,readonly=on",
            opt(&cfg.image_dir.join(super::ROOT_DISK))
        ),
    ]);
    push(&["-device", "virtio-blk-pci,drive=root,serial=cocoon-root"]);
    push(&[
        "-drive",
        &format!("file={},if=none,id=data,format=raw", opt(&cfg.data_disk)),
    ]);
    push(&["-device", "virtio-blk-pci,drive=data,serial=cocoon-data"]);
    push(&[
        "-drive",
        &format!(
            "file={},if=none,id=model,format=raw,readonly=on",
            opt(&cfg.model_disk)
        ),
    ]);
    push(&["-device", "virtio-blk-pci,drive=model,serial=cocoon-model"]);
    push(&[
        "-drive",
        &format!(
            "file={},if=none,id=model-verity,format=raw,readonly=on",
            opt(&cfg.model_verity)
        ),
    ]);
    push(&[
        "-device",
        "virtio-blk-pci,drive=model-verity,serial=cocoon-model-verity",
    ]);
    if !cfg.gpus.is_empty() {
        push(&["-object", "iommufd,id=iommufd0"]);
        for gpu in &cfg.gpus {
            push(&["-device", &format!("vfio-pci,host={gpu},iommufd=iommufd0")]);
        }
    }
    a
}
