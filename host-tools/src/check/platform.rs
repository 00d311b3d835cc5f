//! Host platform services: IOMMU, hugepages, vhost-vsock and the quote generation service.

use std::os::unix::net::UnixStream;

use crate::report::CheckLine;
use crate::root::HostRoot;

pub const QGS_SOCKET: &str = "/var/run/tdx-qgs/qgs.socket";
pub const QGS_CONF: &str = "/etc/qgs.conf";
pub const QGS_VSOCK_PORT: u32 = 4050;

pub fn iommu(root: &HostRoot) -> CheckLine {
    const ID: &str = "iommu";
    const FIX: &str = "enable VT-d in the BIOS and boot with `intel_iommu=on iommu=pt`";
    match root.list_dir("/sys/kernel/iommu_groups") {
        Ok(groups) if !groups.is_empty() => {
            CheckLine::pass(ID, format!("{} IOMMU groups", groups.len()))
        }
        Ok(_) => CheckLine::fail(
            ID,
            "/sys/kernel/iommu_groups is empty: the IOMMU is off",
            FIX,
        ),
        Err(e) if e.is_not_found() => {
            CheckLine::fail(ID, "no /sys/kernel/iommu_groups: the IOMMU is off", FIX)
        }
        Err(e) => CheckLine::unknown(ID, e.to_string(), FIX),
    }
}

/// `/dev/iommu`: `launch` attaches GPUs through iommufd (`-object iommufd`).
pub fn iommufd(root: &HostRoot) -> CheckLine {
    const ID: &str = "iommufd";
    if root.exists("/dev/iommu") {
        CheckLine::pass(ID, "/dev/iommu present")
    } else {
        CheckLine::fail(
            ID,
            "/dev/iommu missing: GPUs are passed through with iommufd",
            "`modprobe iommufd` (kernel built with CONFIG_IOMMUFD=y and CONFIG_VFIO_DEVICE_CDEV=y)",
        )
    }
}

/// Reports reserved hugepages. They are optional: TDX private memory comes from KVM's
/// guest_memfd, which does not draw on the hugetlb pool; the line is `unknown` only when a pool
/// exists but its counters cannot be read.
pub fn hugepages(root: &HostRoot) -> CheckLine {
    const ID: &str = "hugepages";
    let Ok(sizes) = root.list_dir("/sys/kernel/mm/hugepages") else {
        return CheckLine::pass(ID, "no hugepage pools (not required)");
    };
    let mut pools = Vec::new();
    for size in sizes {
        let read = |f: &str| {
            root.read_trimmed(&format!("/sys/kernel/mm/hugepages/{size}/{f}"))
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
        };
        match (read("nr_hugepages"), read("free_hugepages")) {
            (Some(0), _) => {}
            (Some(nr), Some(free)) => pools.push(format!(
                "{}: {free} of {nr} free",
                size.trim_start_matches("hugepages-")
            )),
            _ => {
                return CheckLine::unknown(
                    ID,
                    format!("cannot read the {size} pool"),
                    "run as root",
                )
            }
        }
    }
    if pools.is_empty() {
        CheckLine::pass(ID, "not configured (not required)")
    } else {
        CheckLine::pass(
            ID,
            format!(
                "configured ({}); TD private memory does not use them, leave enough normal memory for the VM",
                pools.join(", ")
            ),
        )
    }
}

pub fn vsock(root: &HostRoot) -> CheckLine {
    const ID: &str = "vsock";
    if root.exists("/dev/vhost-vsock") {
        CheckLine::pass(ID, "/dev/vhost-vsock present")
    } else {
        CheckLine::fail(
            ID,
            "/dev/vhost-vsock missing",
            "`modprobe vhost_vsock` (and add it to /etc/modules-load.d/)",
        )
    }
}

/// The QGS vsock port from `/etc/qgs.conf` (`port = 4050`), when the file names one.
fn qgs_conf_port(root: &HostRoot) -> Option<u32> {
    let conf = root.read(QGS_CONF).ok()?;
    conf.lines().find_map(|l| {
        let l = l.trim();
        if l.starts_with('#') {
            return None;
        }
        let (k, v) = l.split_once('=')?;
        (k.trim() == "port").then(|| v.trim().parse().ok())?
    })
}

/// The quote generation service: a connectable unix socket passes; a socket nobody accepts on
/// fails; a vsock-only QGS cannot be probed from here and is `unknown`.
pub fn qgs(root: &HostRoot) -> CheckLine {
    const ID: &str = "qgs";
    const FIX_REG: &str = "install Intel's TDX quote generation service (tdx-qgs, with libsgx-dcap-default-qpl) and register the platform (PCCS / mpa_registration)";
    let Ok(sock) = root.path(QGS_SOCKET) else {
        return CheckLine::unknown(ID, "bad socket path", FIX_REG);
    };
    if sock.exists() {
        return match UnixStream::connect(&sock) {
            Ok(_) => CheckLine::pass(ID, format!("QGS accepts connections on {QGS_SOCKET}")),
            Err(e) => CheckLine::fail(
                ID,
                format!("{QGS_SOCKET} exists but connecting fails: {e}"),
                "start the service: `systemctl restart qgsd` and check `journalctl -u qgsd`",
            ),
        };
    }
    match qgs_conf_port(root) {
        Some(port) => CheckLine::unknown(
            ID,
            format!("no {QGS_SOCKET}; {QGS_CONF} configures vsock port {port}, which cannot be probed from the host"),
            format!("make sure qgsd runs (`systemctl status qgsd`) and the platform is registered; launch configs then use the vsock QGS (cid 2, port {port})"),
        ),
        None => CheckLine::unknown(
            ID,
            format!("no {QGS_SOCKET} and no {QGS_CONF}; a QGS on vsock port {QGS_VSOCK_PORT} cannot be probed from the host"),
            FIX_REG,
        ),
    }
}
