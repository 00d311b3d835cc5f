//! `cocoon-host model pack`: a reproducible model disk.
//!
//! The data device is the GGUF file itself, zero-padded to a multiple of 4096 bytes (no
//! filesystem, so nothing time- or host-dependent enters it). The dm-verity hash device uses a
//! fixed salt and a UUID derived from the GGUF's SHA-256, so the same GGUF always gives the same
//! bytes and the same root hash, which is the value the worker's measured config names.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::verity::{self, Params, VerityError, BLOCK};

pub const DATA_FILE: &str = "model.img";
pub const HASH_FILE: &str = "model.verity";
pub const ROOT_HASH_FILE: &str = "model.roothash";
pub const INFO_FILE: &str = "model-pack.json";
const SALT_LABEL: &[u8] = b"cocoon-model-verity-salt/v1";
const UUID_LABEL: &[u8] = b"cocoon-model-verity-uuid/v1";

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}: not a GGUF file (no `GGUF` magic)")]
    NotGguf(PathBuf),
    #[error(transparent)]
    Verity(#[from] VerityError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PackError + '_ {
    move |source| PackError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What was written; also stored as `model-pack.json` next to the images.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PackInfo {
    pub gguf_sha256: String,
    pub gguf_bytes: u64,
    pub data_file: String,
    pub data_blocks: u64,
    pub hash_file: String,
    pub hash_algorithm: &'static str,
    pub data_block_size: u64,
    pub hash_block_size: u64,
    pub format_version: u32,
    pub salt: String,
    pub uuid: String,
    pub root_hash: String,
}

/// The fixed salt: SHA-256 of a versioned label.
pub fn salt() -> Vec<u8> {
    Sha256::digest(SALT_LABEL).to_vec()
}

/// A UUID (RFC 9562 version 8) derived from the GGUF digest.
pub fn uuid_for(gguf_sha256: &[u8]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(UUID_LABEL);
    h.update(gguf_sha256);
    let d = h.finalize();
    let mut u = [0u8; 16];
    u.copy_from_slice(&d[..16]);
    u[6] = (u[6] & 0x0f) | 0x80;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

pub fn uuid_string(u: &[u8; 16]) -> String {
    let h = hex::encode(u);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Copies the GGUF into `out/model.img` padded to 4096, then builds the hash device.
pub fn pack(gguf: &Path, out: &Path) -> Result<PackInfo, PackError> {
    let mut src = File::open(gguf).map_err(io_err(gguf))?;
    let mut magic = [0u8; 4];
    match src.read_exact(&mut magic) {
        Ok(()) if &magic == b"GGUF" => {}
        Ok(()) => return Err(PackError::NotGguf(gguf.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(PackError::NotGguf(gguf.to_path_buf()))
        }
        Err(e) => return Err(io_err(gguf)(e)),
    }
    fs::create_dir_all(out).map_err(io_err(out))?;
    let data_path = out.join(DATA_FILE);
    let hash_path = out.join(HASH_FILE);
    let create = |p: &Path| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(p)
            .map_err(io_err(p))
    };
    let mut data = create(&data_path)?;
    let mut sha = Sha256::new();
    sha.update(magic);
    data.write_all(&magic).map_err(io_err(&data_path))?;
    let mut total = magic.len() as u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(gguf)(e)),
        };
        let chunk = buf.get(..n).unwrap_or(&[]);
        sha.update(chunk);
        data.write_all(chunk).map_err(io_err(&data_path))?;
        total += n as u64;
    }
    let data_blocks = total.div_ceil(BLOCK);
    data.set_len(data_blocks * BLOCK)
        .map_err(io_err(&data_path))?;
    data.sync_all().map_err(io_err(&data_path))?;
    let digest: [u8; 32] = sha.finalize().into();

    let params = Params {
        salt: salt(),
        uuid: uuid_for(&digest),
    };
    let hash = create(&hash_path)?;
    let root = verity::format(&data, &data_path, data_blocks, &hash, &hash_path, &params)?;
    hash.sync_all().map_err(io_err(&hash_path))?;

    let info = PackInfo {
        gguf_sha256: hex::encode(digest),
        gguf_bytes: total,
        data_file: DATA_FILE.to_string(),
        data_blocks,
        hash_file: HASH_FILE.to_string(),
        hash_algorithm: "sha256",
        data_block_size: BLOCK,
        hash_block_size: BLOCK,
        format_version: 1,
        salt: hex::encode(&params.salt),
        uuid: uuid_string(&params.uuid),
        root_hash: hex::encode(root),
    };
    let root_path = out.join(ROOT_HASH_FILE);
    fs::write(&root_path, format!("{}\n", info.root_hash)).map_err(io_err(&root_path))?;
    let info_path = out.join(INFO_FILE);
    let json =
        serde_json::to_string_pretty(&info).map_err(|e| io_err(&info_path)(io::Error::other(e)))?;
    fs::write(&info_path, json + "\n").map_err(io_err(&info_path))?;
    Ok(info)
}
