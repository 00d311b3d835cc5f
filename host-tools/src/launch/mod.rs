//! `cocoon-host launch`: validate a launch config against the host and the measurement
//! manifest, build the QEMU argv, and run it (or print it).
//!
//! Refusals, in order: config invalid (missing/invalid owner address, bad sizes, ...), instance
//! out of range, manifest unreadable, inconsistent or (with a public key) not signed by that
//! key, VM shape not in the manifest, image files missing, bad kernel cmdline, image files or
//! cmdline not the manifest's, model disk or verity tree missing or not matching the configured
//! root hash, config share missing.
//! When actually launching, also: a TD on a host without `/dev/vhost-vsock`, instance (CID)
//! taken, agent port taken, GPU not on vfio-pci.
//!
//! `--no-tdx` (a simulated TD) runs on KVM when usable and on TCG otherwise, without the vsock
//! device when the host has none ([`host`]), and hands the guest the manifest's registers
//! ([`simulated`]).

pub mod argv;
pub mod config;
pub mod host;
pub mod instance;
pub mod quote;
pub mod simulated;
pub mod supervise;

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use cocoon_measure::manifest::Manifest;
use ed25519_dalek::VerifyingKey;

use crate::boot::{read_cmdline, BootSpec, CmdlineError, VmShape};
use crate::manifest::{self as mf, ImageMismatch, ManifestError};
use crate::pci::{self, Bdf, PciError};
use crate::root::HostRoot;
use crate::verity::{self, VerityError};
pub use argv::Mode;
use config::{ConfigError, LaunchConfig};
use host::{HostDevices, HostError, HostProbe};
use instance::InstanceError;
use simulated::SimulatedRegisters;

/// Instances 0..=MAX_INSTANCE; keeps CIDs and ports in a sane range.
pub const MAX_INSTANCE: u32 = 999;
/// The release files direct kernel boot needs, in the image directory.
pub const IMAGE_FILES: [&str; 4] = ["OVMF.fd", "image.vmlinuz", "image.initrd", "image.cmdline"];

/// The image's root disk (erofs + dm-verity; not measured itself: its root hash is on the
/// measured kernel command line), in the image directory.
pub const ROOT_DISK: &str = "image.raw";

/// The release files of an image directory, by [`IMAGE_FILES`] name.
pub fn image_paths(dir: &Path) -> [PathBuf; 4] {
    IMAGE_FILES.map(|f| dir.join(f))
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("--instance {0} is out of range 0..={MAX_INSTANCE}")]
    BadInstance(u32),
    #[error("agent.port {base} + instance {instance} passes 65535")]
    PortRange { base: u16, instance: u32 },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("VM shape {shape} has no entry in {manifest}, so its measurements are unknown and verifiers would reject the worker; shapes listed: {listed}")]
    ShapeNotInManifest {
        shape: VmShape,
        manifest: PathBuf,
        listed: String,
    },
    #[error("image files missing in {dir}: {missing}")]
    MissingImageFiles { dir: PathBuf, missing: String },
    #[error(transparent)]
    Cmdline(#[from] CmdlineError),
    #[error("kernel command line for {mode:?}: {reason}")]
    BadCmdline { mode: Mode, reason: String },
    #[error("image {dir} is not the release of {manifest}: {source}")]
    ImageMismatch {
        dir: PathBuf,
        manifest: PathBuf,
        #[source]
        source: Box<ImageMismatch>,
    },
    #[error("{what} {path} is missing")]
    MissingFile { what: &'static str, path: PathBuf },
    #[error("model disk: {0}")]
    Verity(#[from] VerityError),
    #[error("model disk: the verity tree {verity} has root hash {actual}, the config names {expected}: repack the model or fix model_disk.root_hash")]
    RootHashMismatch {
        verity: PathBuf,
        actual: String,
        expected: String,
    },
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("writing the simulated TD's registers {path}: {source}")]
    Registers {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Instance(#[from] InstanceError),
    #[error("GPU {bdf} is on {driver}, not vfio-pci: run `cocoon-host gpu bind {bdf}` first")]
    GpuNotBound { bdf: Bdf, driver: String },
    #[error("GPU {0}: {1}")]
    Gpu(Bdf, PciError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("starting {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
}

impl LaunchError {
    /// Bad input (the config or the arguments), as opposed to a refusal about the host's state.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            LaunchError::Config(_) | LaunchError::BadInstance(_) | LaunchError::PortRange { .. }
        )
    }
}

/// A validated launch, ready to print or run.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub config: LaunchConfig,
    pub instance: u32,
    pub mode: Mode,
    pub cid: u32,
    pub port: u16,
    /// What the argv boots; `measure` computes registers from the same value.
    pub boot: BootSpec,
    /// Name of the manifest entry for the VM shape.
    pub shape_name: String,
    /// The manifest's release version.
    pub release: String,
    /// Whether the manifest's signature was checked (`--pubkey` given).
    pub signature_checked: bool,
    /// Accelerator and vsock device in the argv.
    pub host: HostDevices,
    /// About the host's devices (TCG, no vsock), for stderr.
    pub host_warnings: Vec<String>,
    /// Why this host cannot run it (a TD without vhost-vsock): refused by [`run`], a warning
    /// with `--print`.
    pub host_error: Option<HostError>,
    /// The manifest entry's MRTD and RTMR0-2, which a simulated TD claims.
    pub registers: SimulatedRegisters,
    pub argv: Vec<String>,
}

/// The production (TDX) boot of a config's image: the image files exist and the command line
/// is valid. `launch` runs it (with [`argv::append_for`] applied for `--no-tdx`) and `measure
/// --config` measures it, so both see the same files and shape.
pub fn release_boot(cfg: &LaunchConfig) -> Result<BootSpec, LaunchError> {
    let missing: Vec<&str> = IMAGE_FILES
        .iter()
        .copied()
        .filter(|f| !cfg.image_dir.join(f).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(LaunchError::MissingImageFiles {
            dir: cfg.image_dir.clone(),
            missing: missing.join(", "),
        });
    }
    let [firmware, kernel, initrd, cmdline_file] = image_paths(&cfg.image_dir);
    let cmdline = read_cmdline(&cmdline_file)?;
    BootSpec::new(firmware, kernel, initrd, cmdline, cfg.shape).map_err(|reason| {
        LaunchError::BadCmdline {
            mode: Mode::Tdx,
            reason,
        }
    })
}

/// The instance's agent host port, after checking the instance number.
pub fn instance_port(cfg: &LaunchConfig, instance: u32) -> Result<u16, LaunchError> {
    if instance > MAX_INSTANCE {
        return Err(LaunchError::BadInstance(instance));
    }
    argv::host_port(cfg, instance).ok_or(LaunchError::PortRange {
        base: cfg.agent_port,
        instance,
    })
}

/// The disks and the share the argv attaches, besides the release files: the image's root
/// disk, the model disk and its verity tree, the config share directory.
pub fn check_attached_files(cfg: &LaunchConfig) -> Result<(), LaunchError> {
    for (what, path) in [
        ("image root disk", &cfg.image_dir.join(ROOT_DISK)),
        ("model disk", &cfg.model_disk),
        ("model verity tree", &cfg.model_verity),
    ] {
        if !path.is_file() {
            return Err(LaunchError::MissingFile {
                what,
                path: path.clone(),
            });
        }
    }
    if !cfg.config_share.is_dir() {
        return Err(LaunchError::MissingFile {
            what: "config share directory",
            path: cfg.config_share.clone(),
        });
    }
    Ok(())
}

/// Everything that can be checked without claiming resources. With `pubkey`, the manifest must
/// be signed by that key; without it only its form and consistency are checked. `probe` is
/// what the host offers ([`host::probe`]).
pub fn prepare(
    cfg: LaunchConfig,
    instance: u32,
    mode: Mode,
    qemu: &str,
    pubkey: Option<&VerifyingKey>,
    probe: HostProbe,
) -> Result<Prepared, LaunchError> {
    let port = instance_port(&cfg, instance)?;
    let manifest: Manifest = mf::load(&cfg.manifest, pubkey)?;
    let entry =
        mf::shape_entry(&manifest, &cfg.shape).ok_or_else(|| LaunchError::ShapeNotInManifest {
            shape: cfg.shape,
            manifest: cfg.manifest.clone(),
            listed: mf::list_shapes(&manifest),
        })?;
    let release = release_boot(&cfg)?;
    mf::check_image(&manifest, &release).map_err(|source| LaunchError::ImageMismatch {
        dir: cfg.image_dir.clone(),
        manifest: cfg.manifest.clone(),
        source: Box::new(source),
    })?;
    let boot = BootSpec::new(
        release.firmware.clone(),
        release.kernel.clone(),
        release.initrd.clone(),
        argv::append_for(mode, release.cmdline()),
        cfg.shape,
    )
    .map_err(|reason| LaunchError::BadCmdline { mode, reason })?;
    check_attached_files(&cfg)?;
    let actual = verity::root_hash(&cfg.model_disk, &cfg.model_verity)?;
    if actual != cfg.model_root_hash {
        return Err(LaunchError::RootHashMismatch {
            verity: cfg.model_verity.clone(),
            actual: hex::encode(actual),
            expected: hex::encode(cfg.model_root_hash),
        });
    }
    let (host, host_warnings, host_error) = host::plan(mode, probe);
    let argv = argv::build(qemu, &cfg, instance, port, mode, host, &boot);
    Ok(Prepared {
        cid: argv::guest_cid(instance),
        shape_name: entry.name.clone(),
        release: manifest.body.release.clone(),
        signature_checked: pubkey.is_some(),
        host,
        host_warnings,
        host_error,
        registers: simulated::registers_of(entry),
        mode,
        config: cfg,
        instance,
        port,
        boot,
        argv,
    })
}

/// `argv` one argument per line, shell-quoted.
pub fn render_print(argv: &[String]) -> String {
    argv.iter().map(|a| quote::shell_quote(a) + "\n").collect()
}

/// A TD never reads the simulated registers file; one left in its config share is stale.
fn stale_registers_warning(p: &Prepared) -> Option<String> {
    if p.mode != Mode::Tdx {
        return None;
    }
    simulated::existing(&p.config.config_share).map(|stale| {
        format!(
            "{} is left from a --no-tdx launch; a TD ignores it (remove it)",
            stale.display()
        )
    })
}

/// Checks the instance's resources without claiming them (for `--print`): returns warnings.
pub fn availability_warnings(p: &Prepared, root: &HostRoot, state_dir: &Path) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(e) = &p.host_error {
        w.push(e.to_string());
    }
    w.extend(stale_registers_warning(p));
    if let Some(pid) = instance::holder(root, state_dir, p.instance) {
        w.push(format!(
            "instance {} (guest CID {}) is held by process {pid}",
            p.instance, p.cid
        ));
    }
    if let Err(e) = instance::check_port(p.config.host_address, p.port) {
        w.push(e.to_string());
    }
    w
}

/// Creates the data disk as a sparse file of the configured size when it does not exist.
/// Returns true when it created it. An existing disk is left as it is.
pub fn ensure_data_disk(cfg: &LaunchConfig) -> Result<bool, LaunchError> {
    let path = &cfg.data_disk;
    let io_err = |source| LaunchError::Io {
        path: path.clone(),
        source,
    };
    match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(f) => {
            f.set_len(cfg.data_disk_bytes).map_err(io_err)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_err(e)),
    }
}

pub fn require_vfio(root: &HostRoot, gpus: &[Bdf]) -> Result<(), LaunchError> {
    for bdf in gpus {
        let dev = pci::read_device(root, bdf).map_err(|e| LaunchError::Gpu(bdf.clone(), e))?;
        if dev.driver.as_deref() != Some("vfio-pci") {
            return Err(LaunchError::GpuNotBound {
                bdf: bdf.clone(),
                driver: dev.driver.unwrap_or_else(|| "no driver".into()),
            });
        }
    }
    Ok(())
}

/// Claims the instance, checks the host's devices, the port and the GPUs, creates the data
/// disk, writes (simulated TD) the registers file into the config share, then runs QEMU in the
/// foreground until it exits. Returns QEMU's exit code.
pub fn run(p: &Prepared, root: &HostRoot, state_dir: &Path) -> Result<i32, LaunchError> {
    if let Some(e) = &p.host_error {
        return Err(e.clone().into());
    }
    let lock = instance::acquire(root, state_dir, p.instance, p.cid)?;
    instance::check_port(p.config.host_address, p.port)?;
    require_vfio(root, &p.config.gpus)?;
    if ensure_data_disk(&p.config)? {
        eprintln!(
            "created data disk {} ({} bytes, sparse)",
            p.config.data_disk.display(),
            p.config.data_disk_bytes
        );
    }
    let share = &p.config.config_share;
    match p.mode {
        Mode::SimulatedTd => {
            let path =
                simulated::write(share, &p.registers).map_err(|source| LaunchError::Registers {
                    path: simulated::path_in(share),
                    source,
                })?;
            eprintln!(
                "wrote {} (the manifest's MRTD and RTMR0-2 for shape {}, claimed by the simulated TD)",
                path.display(),
                p.shape_name
            );
        }
        Mode::Tdx => {
            if let Some(w) = stale_registers_warning(p) {
                eprintln!("warning: {w}");
            }
        }
    }
    let (program, args) = p.argv.split_first().ok_or_else(|| LaunchError::Spawn {
        program: String::new(),
        source: io::Error::other("empty argv"),
    })?;
    let status =
        supervise::run_forwarding_signals(Command::new(program).args(args)).map_err(|source| {
            LaunchError::Spawn {
                program: program.clone(),
                source,
            }
        })?;
    drop(lock);
    Ok(status.code().unwrap_or(1))
}
