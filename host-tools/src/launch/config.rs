//! The launch config (TOML, or JSON when the file name ends in `.json`), validated into
//! [`LaunchConfig`]. Relative paths are taken relative to the config file's directory.
//!
//! Invariants of a [`LaunchConfig`]: the owner address is a valid TON address; the VM shape is
//! valid ([`VmShape::new`]) and its GPU count is the number of GPU addresses, which are
//! well-formed and distinct; the model root hash 32 bytes of hex; ports non-zero.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::boot::{ShapeError, VmShape};
use crate::pci::Bdf;
use crate::ton_address::TonAddress;

/// Configs are a page of text; anything bigger is refused before parsing.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
pub const DEFAULT_QGS_SOCKET: &str = "/var/run/tdx-qgs/qgs.socket";
pub const DEFAULT_GUEST_PORT: u16 = 8443;
/// The guest's open-data-disk refuses smaller disks (LUKS2 header plus a useful ext4).
pub const MIN_DATA_DISK_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: larger than {MAX_CONFIG_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("{path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("{path}: `owner_address` is missing: set it to the TON address that receives the worker's earnings")]
    MissingOwner { path: PathBuf },
    #[error("{path}: field `{field}`: {reason}")]
    Invalid {
        path: PathBuf,
        field: &'static str,
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    owner_address: Option<String>,
    manifest: PathBuf,
    state_dir: Option<PathBuf>,
    image: RawImage,
    vm: RawVm,
    data_disk: RawDataDisk,
    model_disk: RawModelDisk,
    config_share: RawShare,
    agent: RawAgent,
    #[serde(default)]
    qgs: RawQgs,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVm {
    vcpus: u32,
    memory: SizeValue,
    #[serde(default)]
    gpus: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataDisk {
    path: PathBuf,
    size: SizeValue,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModelDisk {
    path: PathBuf,
    verity: PathBuf,
    root_hash: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShare {
    dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    port: u16,
    guest_port: Option<u16>,
    host_address: Option<std::net::IpAddr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQgs {
    socket: Option<PathBuf>,
    vsock_port: Option<u32>,
}

/// Where QEMU forwards the TD's quote requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QgsAddress {
    Unix(PathBuf),
    /// The host's QGS on vsock (CID 2).
    Vsock(u32),
}

/// A validated launch config; paths are absolute (relative ones in the file are resolved
/// against the config file's directory, made absolute when the current directory is known).
#[derive(Debug, Clone)]
pub struct LaunchConfig {
    pub source: PathBuf,
    pub owner: TonAddress,
    pub manifest: PathBuf,
    pub state_dir: Option<PathBuf>,
    pub image_dir: PathBuf,
    /// vCPUs, memory and `gpus.len()`.
    pub shape: VmShape,
    pub gpus: Vec<Bdf>,
    pub data_disk: PathBuf,
    pub data_disk_bytes: u64,
    pub model_disk: PathBuf,
    pub model_verity: PathBuf,
    pub model_root_hash: [u8; 32],
    pub config_share: PathBuf,
    pub agent_port: u16,
    pub guest_port: u16,
    pub host_address: std::net::IpAddr,
    pub qgs: QgsAddress,
}

/// Parses `64G`, `512M`, `1T`, `16GiB` (binary units, as QEMU) or a plain byte count.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits_end);
    let n: u64 = num.parse().ok()?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        "T" | "TiB" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

fn size_of(v: &SizeValue) -> Option<u64> {
    match v {
        SizeValue::Bytes(b) => Some(*b),
        SizeValue::Text(t) => parse_size(t),
    }
}

impl LaunchConfig {
    /// Reads and validates the config at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let io = |source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = fs::File::open(path).map_err(io)?;
        let mut text = String::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        let is_json = path.extension().is_some_and(|e| e == "json");
        let raw: RawConfig = if is_json {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        }
        .map_err(|reason| ConfigError::Parse {
            path: path.to_path_buf(),
            reason,
        })?;
        // Absolute, so the paths stay valid for a QEMU started in another directory (or, like
        // ci/tools-qemu, in a chroot where only absolute paths are bind-mounted).
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
        Self::validate(raw, path, &base)
    }

    fn validate(raw: RawConfig, path: &Path, base: &Path) -> Result<Self, ConfigError> {
        let invalid = |field: &'static str, reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            field,
            reason,
        };
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let owner_text = raw
            .owner_address
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| ConfigError::MissingOwner {
                path: path.to_path_buf(),
            })?;
        let owner = TonAddress::parse(&owner_text).map_err(|e| {
            invalid(
                "owner_address",
                format!("{owner_text:?} is not a TON address: {e}"),
            )
        })?;
        let memory_bytes = size_of(&raw.vm.memory).ok_or_else(|| {
            invalid(
                "vm.memory",
                format!("{:?} is not a size like 64G", raw.vm.memory),
            )
        })?;
        let mut gpus: Vec<Bdf> = Vec::new();
        for g in &raw.vm.gpus {
            let bdf: Bdf = g.parse().map_err(|e| invalid("vm.gpus", format!("{e}")))?;
            if gpus.contains(&bdf) {
                return Err(invalid("vm.gpus", format!("{bdf} is listed twice")));
            }
            gpus.push(bdf);
        }
        let gpu_count = u32::try_from(gpus.len()).unwrap_or(u32::MAX);
        let shape = VmShape::new(raw.vm.vcpus, memory_bytes, gpu_count).map_err(|e| {
            let field = match e {
                ShapeError::Cpus(_) => "vm.vcpus",
                ShapeError::Memory(_) => "vm.memory",
                ShapeError::Gpus(_) => "vm.gpus",
            };
            invalid(field, e.to_string())
        })?;
        let data_disk_bytes = size_of(&raw.data_disk.size)
            .filter(|&b| b >= MIN_DATA_DISK_BYTES && b % 512 == 0)
            .ok_or_else(|| {
                invalid(
                    "data_disk.size",
                    format!(
                        "{:?} is not a size of at least 64 MiB in whole 512-byte sectors (the guest formats the data disk with LUKS2 and ext4 only from 64 MiB up)",
                        raw.data_disk.size
                    ),
                )
            })?;
        let mut model_root_hash = [0u8; 32];
        hex::decode_to_slice(raw.model_disk.root_hash.trim(), &mut model_root_hash).map_err(
            |_| {
                invalid(
                    "model_disk.root_hash",
                    format!("{:?} is not 64 hex digits", raw.model_disk.root_hash),
                )
            },
        )?;
        if raw.agent.port == 0 {
            return Err(invalid("agent.port", "must not be 0".to_string()));
        }
        let guest_port = raw.agent.guest_port.unwrap_or(DEFAULT_GUEST_PORT);
        if guest_port == 0 {
            return Err(invalid("agent.guest_port", "must not be 0".to_string()));
        }
        let qgs = match (raw.qgs.socket, raw.qgs.vsock_port) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "qgs",
                    "set either `socket` or `vsock_port`, not both".to_string(),
                ))
            }
            (Some(s), None) => QgsAddress::Unix(s),
            (None, Some(p)) => QgsAddress::Vsock(p),
            (None, None) => QgsAddress::Unix(PathBuf::from(DEFAULT_QGS_SOCKET)),
        };
        Ok(LaunchConfig {
            source: path.to_path_buf(),
            owner,
            manifest: resolve(&raw.manifest),
            state_dir: raw.state_dir.as_deref().map(resolve),
            image_dir: resolve(&raw.image.dir),
            shape,
            gpus,
            data_disk: resolve(&raw.data_disk.path),
            data_disk_bytes,
            model_disk: resolve(&raw.model_disk.path),
            model_verity: resolve(&raw.model_disk.verity),
            model_root_hash,
            config_share: resolve(&raw.config_share.dir),
            agent_port: raw.agent.port,
            guest_port,
            host_address: raw
                .agent
                .host_address
                .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
            qgs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64G"), Some(64 << 30));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("1T"), Some(1 << 40));
        assert_eq!(parse_size("G"), None);
        assert_eq!(parse_size("12X"), None);
        assert_eq!(parse_size("-1G"), None);
        assert_eq!(parse_size("99999999999999999999G"), None);
        assert_eq!(parse_size("9999999999T"), None);
    }
}
