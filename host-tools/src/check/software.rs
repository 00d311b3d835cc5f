//! Kernel and QEMU versions, and QEMU's `tdx-guest` object.

use crate::report::CheckLine;
use crate::root::HostRoot;
use crate::runner::{RunError, Runner};

pub const QEMU: &str = "qemu-system-x86_64";
/// KVM's TDX host support (kvm_intel.tdx, the TDX module init) was merged in Linux 6.16.
pub const MIN_KERNEL: (u32, u32) = (6, 16);
/// QEMU 10.1 is the first release with the `tdx-guest` object upstream.
pub const MIN_QEMU: (u32, u32) = (10, 1);

/// Leading `major.minor` of a version string such as `6.16.0-1-amd64` or `10.1.0`.
pub fn parse_major_minor(s: &str) -> Option<(u32, u32)> {
    let mut parts = s.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

pub fn kernel(root: &HostRoot) -> CheckLine {
    const ID: &str = "kernel";
    let release = match root.read_trimmed("/proc/sys/kernel/osrelease") {
        Ok(r) => r,
        Err(e) => {
            return CheckLine::unknown(
                ID,
                format!("cannot read the kernel release: {e}"),
                "run on the host itself",
            )
        }
    };
    match parse_major_minor(&release) {
        Some(v) if v >= MIN_KERNEL => CheckLine::pass(ID, format!("Linux {release} (>= 6.16)")),
        Some(_) => CheckLine::fail(
            ID,
            format!("Linux {release}: KVM TDX host support is upstream only since 6.16"),
            "install a kernel >= 6.16 (e.g. Debian trixie-backports linux-image-amd64) or a vendor kernel with TDX host patches",
        ),
        None => CheckLine::unknown(ID, format!("cannot parse kernel release {release:?}"), "check `uname -r` by hand: TDX needs >= 6.16"),
    }
}

/// The version from the first line of `qemu-system-x86_64 --version`.
pub fn parse_qemu_version(out: &str) -> Option<(u32, u32)> {
    let line = out.lines().next()?;
    let rest = line.split("version").nth(1)?.trim_start();
    parse_major_minor(rest)
}

const QEMU_FIX: &str = "install QEMU >= 10.1 built with KVM (Debian trixie-backports `qemu-system-x86`, or build from source)";

pub fn qemu_version(runner: &dyn Runner) -> CheckLine {
    const ID: &str = "qemu";
    match runner.run(QEMU, &["--version"]) {
        Ok(out) if out.success => match parse_qemu_version(&out.stdout) {
            Some(v) if v >= MIN_QEMU => {
                CheckLine::pass(ID, format!("QEMU {}.{} (>= 10.1)", v.0, v.1))
            }
            Some(v) => CheckLine::fail(
                ID,
                format!("QEMU {}.{}: TDX guests need QEMU >= 10.1", v.0, v.1),
                QEMU_FIX,
            ),
            None => CheckLine::unknown(
                ID,
                format!(
                    "cannot parse `{QEMU} --version`: {:?}",
                    out.stdout.lines().next().unwrap_or("")
                ),
                QEMU_FIX,
            ),
        },
        Ok(out) => CheckLine::fail(
            ID,
            format!("`{QEMU} --version` failed: {}", out.stderr.trim()),
            QEMU_FIX,
        ),
        Err(RunError::NotFound(_)) => {
            CheckLine::fail(ID, format!("`{QEMU}` not found in PATH"), QEMU_FIX)
        }
        Err(e) => CheckLine::unknown(ID, e.to_string(), QEMU_FIX),
    }
}

pub fn qemu_tdx_object(runner: &dyn Runner) -> CheckLine {
    const ID: &str = "qemu-tdx-guest";
    match runner.run(QEMU, &["-object", "help"]) {
        Ok(out) if out.success || !out.stdout.is_empty() => {
            let has = out
                .stdout
                .lines()
                .any(|l| l.split_whitespace().next() == Some("tdx-guest"));
            if has {
                CheckLine::pass(ID, "QEMU lists the `tdx-guest` object")
            } else {
                CheckLine::fail(
                    ID,
                    "QEMU has no `tdx-guest` object (built without TDX/KVM support)",
                    QEMU_FIX,
                )
            }
        }
        Ok(out) => CheckLine::unknown(
            ID,
            format!("`{QEMU} -object help` failed: {}", out.stderr.trim()),
            QEMU_FIX,
        ),
        Err(RunError::NotFound(_)) => {
            CheckLine::fail(ID, format!("`{QEMU}` not found in PATH"), QEMU_FIX)
        }
        Err(e) => CheckLine::unknown(ID, e.to_string(), QEMU_FIX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_major_minor("6.16.0-1-amd64"), Some((6, 16)));
        assert_eq!(parse_major_minor("6.1"), Some((6, 1)));
        assert_eq!(parse_major_minor("6"), None);
        assert_eq!(parse_major_minor(""), None);
        assert_eq!(
            parse_qemu_version("QEMU emulator version 10.1.0 (Debian 1:10.1.0+ds-5)\nCopyright"),
            Some((10, 1))
        );
        assert_eq!(
            parse_qemu_version("QEMU emulator version 8.2.2"),
            Some((8, 2))
        );
        assert_eq!(parse_qemu_version("garbage"), None);
        assert_eq!(parse_qemu_version(""), None);
        assert!((9, 2) < MIN_QEMU && (11, 0) > MIN_QEMU);
    }
}
