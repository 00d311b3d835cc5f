//! `cocoon-host check`: every requirement for running a worker, in a fixed order.

pub mod cpu;
pub mod gpus;
pub mod platform;
pub mod software;

use crate::report::Report;
use crate::root::HostRoot;
use crate::runner::Runner;

/// Runs all checks against the host tree under `root`.
pub fn run(root: &HostRoot, runner: &dyn Runner) -> Report {
    let mut lines = vec![
        cpu::cpu_flag(root),
        cpu::kvm_param(root),
        cpu::msrs(root),
        software::kernel(root),
        software::qemu_version(runner),
        software::qemu_tdx_object(runner),
        platform::iommu(root),
        platform::iommufd(root),
        platform::hugepages(root),
        platform::vsock(root),
        platform::qgs(root),
    ];
    lines.extend(gpus::gpus(root, runner));
    Report::new(lines)
}
