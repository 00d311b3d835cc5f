//! CPU and KVM side of TDX: the cpuinfo flag, the `kvm_intel.tdx` parameter and the MSRs that
//! show whether the BIOS enabled TME/MK-TME, reserved TDX key IDs and configured SEAMRR.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::report::CheckLine;
use crate::root::HostRoot;

const BIOS_FIX: &str = "enable in the BIOS: Memory Encryption (TME), Total Memory Encryption \
Multi-Tenant (TME-MT) with TDX key IDs > 0, Trust Domain Extension (TDX) and the SEAM loader; \
then boot a kernel with TDX host support (>= 6.16)";

/// The CPU flags of `/proc/cpuinfo` text: its first `flags` line (every CPU lists the same);
/// empty when there is none.
pub fn cpu_flags(cpuinfo: &str) -> Vec<&str> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, f)| f.split_whitespace().collect())
        .unwrap_or_default()
}

/// `tdx_host_platform` (Linux >= 6.16 on a host whose BIOS enabled TDX) or the older `tdx`.
pub fn cpu_flag(root: &HostRoot) -> CheckLine {
    const ID: &str = "cpu-tdx";
    let cpuinfo = match root.read("/proc/cpuinfo") {
        Ok(s) => s,
        Err(e) => {
            return CheckLine::unknown(
                ID,
                format!("cannot read cpuinfo: {e}"),
                "run on the host itself, not in a container",
            )
        }
    };
    let flags = cpu_flags(&cpuinfo);
    if flags.is_empty() {
        return CheckLine::unknown(ID, "cpuinfo has no flags line", "run on the host itself");
    }
    match ["tdx_host_platform", "tdx"]
        .iter()
        .find(|f| flags.contains(f))
    {
        Some(f) => CheckLine::pass(ID, format!("CPU flag `{f}` present")),
        None => {
            let vmx = flags.contains(&"vmx");
            CheckLine::fail(
                ID,
                if vmx {
                    "no `tdx_host_platform` flag: the kernel found no usable TDX (BIOS setting, or kernel < 6.16)".to_string()
                } else {
                    "no `vmx` and no `tdx_host_platform` flag: virtualisation is off or this is not an Intel TDX CPU (Xeon 4th gen or later)".to_string()
                },
                BIOS_FIX,
            )
        }
    }
}

/// `/sys/module/kvm_intel/parameters/tdx` must read `Y`.
pub fn kvm_param(root: &HostRoot) -> CheckLine {
    const ID: &str = "kvm-tdx";
    const FIX: &str = "load KVM with TDX: `echo 'options kvm_intel tdx=1' > /etc/modprobe.d/tdx.conf`, then `modprobe -r kvm_intel && modprobe kvm_intel` (or boot with kvm_intel.tdx=1)";
    if !root.exists("/sys/module/kvm_intel") {
        return CheckLine::fail(ID, "kvm_intel is not loaded", FIX);
    }
    match root.read_trimmed("/sys/module/kvm_intel/parameters/tdx") {
        Ok(v) if v == "Y" || v == "1" => CheckLine::pass(ID, "kvm_intel.tdx=Y"),
        Ok(v) => CheckLine::fail(
            ID,
            format!(
                "kvm_intel.tdx={v}: KVM did not enable TDX (see `dmesg | grep -i tdx` for why)"
            ),
            FIX,
        ),
        Err(e) if e.is_not_found() => CheckLine::fail(
            ID,
            "kvm_intel has no `tdx` parameter: this kernel has no TDX host support",
            "boot a kernel >= 6.16 built with CONFIG_INTEL_TDX_HOST=y and CONFIG_KVM_INTEL_TDX=y",
        ),
        Err(e) => CheckLine::unknown(ID, format!("cannot read it: {e}"), "run as root"),
    }
}

/// IA32_TME_ACTIVATE: bit 0 locked, bit 1 TME enabled.
pub const MSR_TME_ACTIVATE: u64 = 0x982;
/// IA32_MKTME_KEYID_PARTITIONING: bits 31:0 MK-TME key IDs, bits 63:32 TDX (private) key IDs.
pub const MSR_MKTME_KEYID_PARTITIONING: u64 = 0x87;
/// IA32_SEAMRR_PHYS_MASK: bit 10 locked, bit 11 enabled (the BIOS set up the SEAM range).
pub const MSR_SEAMRR_PHYS_MASK: u64 = 0x1401;

enum OpenFail {
    NoModule,
    Denied,
    Other(io::Error),
}

fn open_msr(root: &HostRoot) -> Result<File, OpenFail> {
    let path = root
        .path("/dev/cpu/0/msr")
        .map_err(|_| OpenFail::NoModule)?;
    File::open(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => OpenFail::NoModule,
        io::ErrorKind::PermissionDenied => OpenFail::Denied,
        _ => OpenFail::Other(e),
    })
}

/// The msr device reads the MSR whose index is the file offset, 8 bytes little-endian.
fn read_msr(file: &File, msr: u64) -> io::Result<u64> {
    let mut buf = [0u8; 8];
    file.read_exact_at(&mut buf, msr)?;
    Ok(u64::from_le_bytes(buf))
}

/// The BIOS settings behind TDX, read from CPU 0's MSRs when `/dev/cpu/0/msr` is readable.
pub fn msrs(root: &HostRoot) -> CheckLine {
    const ID: &str = "tdx-msr";
    let file = match open_msr(root) {
        Ok(f) => f,
        Err(OpenFail::NoModule) => {
            return CheckLine::unknown(
                ID,
                "/dev/cpu/0/msr is missing: the msr module is not loaded",
                "`modprobe msr` and run again as root",
            )
        }
        Err(OpenFail::Denied) => {
            return CheckLine::unknown(ID, "/dev/cpu/0/msr is not readable", "run as root")
        }
        Err(OpenFail::Other(e)) => {
            return CheckLine::unknown(
                ID,
                format!("opening /dev/cpu/0/msr: {e}"),
                "run as root with the msr module loaded",
            )
        }
    };
    let mut values = [0u64; 2];
    for (slot, msr) in values
        .iter_mut()
        .zip([MSR_TME_ACTIVATE, MSR_MKTME_KEYID_PARTITIONING])
    {
        match read_msr(&file, msr) {
            Ok(v) => *slot = v,
            Err(e) => {
                return CheckLine::unknown(
                    ID,
                    format!("reading MSR {msr:#x}: {e} (the CPU may not implement it)"),
                    BIOS_FIX,
                )
            }
        }
    }
    let [tme, keyids] = values;
    // SEAMRR is checked when readable; some platforms refuse reads of it from the host.
    let seamrr = read_msr(&file, MSR_SEAMRR_PHYS_MASK).ok();
    let mut problems = Vec::new();
    if tme & 0b11 != 0b11 {
        problems.push(format!(
            "TME not enabled and locked (IA32_TME_ACTIVATE={tme:#x})"
        ));
    }
    let tdx_keyids = keyids >> 32;
    let mktme_keyids = keyids & 0xffff_ffff;
    if tdx_keyids == 0 {
        problems.push(format!(
            "no TDX key IDs reserved (IA32_MKTME_KEYID_PARTITIONING={keyids:#x})"
        ));
    }
    let seamrr_note = match seamrr {
        Some(v) if v & (1 << 11) == 0 => {
            problems.push(format!(
                "SEAM range not enabled (IA32_SEAMRR_PHYS_MASK={v:#x})"
            ));
            ""
        }
        Some(_) => ", SEAMRR enabled",
        None => ", SEAMRR not readable",
    };
    if problems.is_empty() {
        CheckLine::pass(
            ID,
            format!("TME enabled, {tdx_keyids} TDX key IDs ({mktme_keyids} MK-TME){seamrr_note}"),
        )
    } else {
        CheckLine::fail(ID, problems.join("; "), BIOS_FIX)
    }
}
