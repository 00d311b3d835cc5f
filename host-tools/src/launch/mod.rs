//! `cocoon-host launch`: validate a launch config against the host and the measurement
//! manifest, build the QEMU argv, and run it (or print it).
//!
//! Refusals, in order: config invalid (missing/invalid owner address, bad sizes, ...), instance
//! out of range, VM shape not in the manifest, image files missing, bad kernel cmdline, model
//! disk or verity tree missing or not matching the configured root hash, config share missing.
//! When actually launching, also: instance (CID) taken, agent port taken, GPU not on vfio-pci.

pub mod argv;
pub mod config;
pub mod instance;
pub mod quote;
pub mod shapes;

use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::pci::{self, Bdf, PciError};
use crate::root::HostRoot;
use crate::verity::{self, VerityError};
pub use argv::Mode;
use config::{ConfigError, LaunchConfig};
use instance::InstanceError;
use shapes::{ManifestError, Shape};

/// Instances 0..=MAX_INSTANCE; keeps CIDs and ports in a sane range.
pub const MAX_INSTANCE: u32 = 999;
/// The release files direct kernel boot needs, in the image directory.
pub const IMAGE_FILES: [&str; 4] = ["OVMF.fd", "image.vmlinuz", "image.initrd", "image.cmdline"];
pub const MAX_CMDLINE: usize = 4096;

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
    #[error("VM shape {cpus} vCPUs, {memory_bytes} bytes memory, {gpus} GPU(s) has no entry in {manifest}, so its measurements are unknown and verifiers would reject the worker; shapes listed: {listed}")]
    ShapeNotInManifest {
        cpus: u32,
        memory_bytes: u64,
        gpus: u32,
        manifest: PathBuf,
        listed: String,
    },
    #[error("image files missing in {dir}: {missing}")]
    MissingImageFiles { dir: PathBuf, missing: String },
    #[error("{path}: {reason}")]
    BadCmdline { path: PathBuf, reason: String },
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
    pub cid: u32,
    pub port: u16,
    pub argv: Vec<String>,
}

fn shape_matches(cfg: &LaunchConfig, shapes: &[Shape]) -> bool {
    let gpus = cfg.gpus.len() as u64;
    shapes.iter().any(|s| {
        s.cpus == cfg.vcpus && s.memory_bytes == cfg.memory_bytes && u64::from(s.gpus) == gpus
    })
}

fn read_cmdline(path: &Path) -> Result<String, LaunchError> {
    let bad = |reason: String| LaunchError::BadCmdline {
        path: path.to_path_buf(),
        reason,
    };
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(MAX_CMDLINE as u64 + 1).read_to_end(&mut bytes))
        .map_err(|source| LaunchError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() > MAX_CMDLINE {
        return Err(bad(format!("longer than {MAX_CMDLINE} bytes")));
    }
    let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8".into()))?;
    let line = text.strip_suffix('\n').unwrap_or(&text);
    if line.contains(['\n', '\0']) {
        return Err(bad("must be a single line".into()));
    }
    Ok(line.to_string())
}

/// Everything that can be checked without claiming resources.
pub fn prepare(
    cfg: LaunchConfig,
    instance: u32,
    mode: Mode,
    qemu: &str,
) -> Result<Prepared, LaunchError> {
    if instance > MAX_INSTANCE {
        return Err(LaunchError::BadInstance(instance));
    }
    let port = argv::host_port(&cfg, instance).ok_or(LaunchError::PortRange {
        base: cfg.agent_port,
        instance,
    })?;
    let shapes = shapes::read_shapes(&cfg.manifest)?;
    if !shape_matches(&cfg, &shapes) {
        return Err(LaunchError::ShapeNotInManifest {
            cpus: cfg.vcpus,
            memory_bytes: cfg.memory_bytes,
            gpus: cfg.gpus.len() as u32,
            manifest: cfg.manifest.clone(),
            listed: shapes
                .iter()
                .map(|s| format!("{}cpu/{}B/{}gpu", s.cpus, s.memory_bytes, s.gpus))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
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
    let cmdline = read_cmdline(&cfg.image_dir.join("image.cmdline"))?;
    for (what, path) in [
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
    let actual = verity::root_hash(&cfg.model_disk, &cfg.model_verity)?;
    if actual != cfg.model_root_hash {
        return Err(LaunchError::RootHashMismatch {
            verity: cfg.model_verity.clone(),
            actual: hex::encode(actual),
            expected: hex::encode(cfg.model_root_hash),
        });
    }
    if !cfg.config_share.is_dir() {
        return Err(LaunchError::MissingFile {
            what: "config share directory",
            path: cfg.config_share.clone(),
        });
    }
    let argv = argv::build(qemu, &cfg, instance, port, mode, &cmdline);
    Ok(Prepared {
        cid: argv::guest_cid(instance),
        config: cfg,
        instance,
        port,
        argv,
    })
}

/// `argv` one argument per line, shell-quoted.
pub fn render_print(argv: &[String]) -> String {
    argv.iter().map(|a| quote::shell_quote(a) + "\n").collect()
}

/// Checks the instance's resources without claiming them (for `--print`): returns warnings.
pub fn availability_warnings(p: &Prepared, root: &HostRoot, state_dir: &Path) -> Vec<String> {
    let mut w = Vec::new();
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

fn require_vfio(root: &HostRoot, gpus: &[Bdf]) -> Result<(), LaunchError> {
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

/// Claims the instance, checks the port and the GPUs, creates the data disk, then runs QEMU in
/// the foreground until it exits. Returns QEMU's exit code.
pub fn run(p: &Prepared, root: &HostRoot, state_dir: &Path) -> Result<i32, LaunchError> {
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
    let (program, args) = p.argv.split_first().ok_or_else(|| LaunchError::Spawn {
        program: String::new(),
        source: io::Error::other("empty argv"),
    })?;
    let status = Command::new(program)
        .args(args)
        .status()
        .map_err(|source| LaunchError::Spawn {
            program: program.clone(),
            source,
        })?;
    drop(lock);
    Ok(status.code().unwrap_or(1))
}
