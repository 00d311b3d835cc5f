//! dm-verity hash trees, format version 1 (what `veritysetup format` writes by default):
//! SHA-256, 4096-byte data and hash blocks, each digest = SHA-256(salt || block), 128 digests per
//! hash block (zero-padded), levels stored top level first right after a 512-byte superblock that
//! occupies the first hash block. The root hash is SHA-256(salt || top-level block), or of the
//! only data block when the data is a single block (no tree levels).
//!
//! Parsing a superblock from disk never panics: every field is read with bounds checks and the
//! sizes it names are checked against the files before any allocation.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub const BLOCK: u64 = 4096;
const DIGEST: usize = 32;
const PER_BLOCK_BITS: u32 = 7;
pub const SUPERBLOCK_LEN: usize = 512;
const SIGNATURE: &[u8; 8] = b"verity\0\0";
pub const MAX_SALT: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum VerityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a dm-verity hash device: {reason}")]
    BadSuperblock { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Size { path: PathBuf, reason: String },
    #[error("salt of {0} bytes is longer than {MAX_SALT}")]
    SaltTooLong(usize),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> VerityError + '_ {
    move |source| VerityError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Parameters that are not derived from the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub salt: Vec<u8>,
    pub uuid: [u8; 16],
}

/// The fields of a version-1 superblock this module uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    pub uuid: [u8; 16],
    pub data_blocks: u64,
    pub salt: Vec<u8>,
}

/// Tree layout: blocks per level (level 0 hashes the data) and each level's first block in the
/// hash device (block 0 is the superblock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub level_blocks: Vec<u64>,
    pub level_start: Vec<u64>,
    /// Total length of the hash device in bytes.
    pub hash_device_bytes: u64,
}

/// The layout for `data_blocks` (> 0) data blocks.
pub fn layout(data_blocks: u64) -> Layout {
    let mut levels = 0u32;
    while PER_BLOCK_BITS * levels < 64
        && (data_blocks.saturating_sub(1) >> (PER_BLOCK_BITS * levels)) != 0
    {
        levels += 1;
    }
    let mut level_blocks = vec![0u64; levels as usize];
    let mut level_start = vec![0u64; levels as usize];
    let mut position = 1u64;
    for i in (0..levels as usize).rev() {
        let shift = PER_BLOCK_BITS * (i as u32 + 1);
        let blocks = if shift >= 64 {
            1
        } else {
            data_blocks.div_ceil(1u64 << shift)
        };
        level_blocks[i] = blocks;
        level_start[i] = position;
        position += blocks;
    }
    Layout {
        level_blocks,
        level_start,
        hash_device_bytes: position.saturating_mul(BLOCK),
    }
}

fn digest(salt: &[u8], block: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(block);
    h.finalize().into()
}

pub fn superblock_bytes(
    params: &Params,
    data_blocks: u64,
) -> Result<[u8; SUPERBLOCK_LEN], VerityError> {
    if params.salt.len() > MAX_SALT {
        return Err(VerityError::SaltTooLong(params.salt.len()));
    }
    let mut sb = [0u8; SUPERBLOCK_LEN];
    sb[0..8].copy_from_slice(SIGNATURE);
    sb[8..12].copy_from_slice(&1u32.to_le_bytes());
    sb[12..16].copy_from_slice(&1u32.to_le_bytes());
    sb[16..32].copy_from_slice(&params.uuid);
    sb[32..38].copy_from_slice(b"sha256");
    sb[64..68].copy_from_slice(&(BLOCK as u32).to_le_bytes());
    sb[68..72].copy_from_slice(&(BLOCK as u32).to_le_bytes());
    sb[72..80].copy_from_slice(&data_blocks.to_le_bytes());
    sb[80..82].copy_from_slice(&(params.salt.len() as u16).to_le_bytes());
    sb[88..88 + params.salt.len()].copy_from_slice(&params.salt);
    Ok(sb)
}

fn field<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at + N)?.try_into().ok()
}

/// Parses a superblock, accepting only what this module writes: version 1, hash type 1,
/// sha256, 4096-byte blocks, a salt of at most 256 bytes and at least one data block.
pub fn parse_superblock(b: &[u8]) -> Result<Superblock, String> {
    let sig: [u8; 8] = field(b, 0).ok_or("shorter than 512 bytes")?;
    if b.len() < SUPERBLOCK_LEN {
        return Err("shorter than 512 bytes".into());
    }
    if &sig != SIGNATURE {
        return Err("no `verity` signature".into());
    }
    let u32_at = |at| field::<4>(b, at).map(u32::from_le_bytes).ok_or("truncated");
    if u32_at(8)? != 1 || u32_at(12)? != 1 {
        return Err("not format version 1 / hash type 1".into());
    }
    let alg: [u8; 32] = field(b, 32).ok_or("truncated")?;
    if &alg[..7] != b"sha256\0" || alg[7..].iter().any(|&c| c != 0) {
        return Err("hash algorithm is not sha256".into());
    }
    if u32_at(64)? != BLOCK as u32 || u32_at(68)? != BLOCK as u32 {
        return Err("block sizes are not 4096".into());
    }
    let data_blocks = u64::from_le_bytes(field(b, 72).ok_or("truncated")?);
    if data_blocks == 0 {
        return Err("zero data blocks".into());
    }
    let salt_len = u16::from_le_bytes(field(b, 80).ok_or("truncated")?) as usize;
    if salt_len > MAX_SALT {
        return Err(format!("salt size {salt_len} > {MAX_SALT}"));
    }
    let salt = b.get(88..88 + salt_len).ok_or("truncated salt")?.to_vec();
    Ok(Superblock {
        uuid: field(b, 16).ok_or("truncated")?,
        data_blocks,
        salt,
    })
}

/// Writes superblock and tree for the first `data_blocks` blocks of `data` into `hash`
/// (which should be empty); returns the root hash. Memory use is two blocks.
pub fn format(
    data: &File,
    data_path: &Path,
    data_blocks: u64,
    hash: &File,
    hash_path: &Path,
    params: &Params,
) -> Result<[u8; 32], VerityError> {
    if data_blocks == 0 {
        return Err(VerityError::Size {
            path: data_path.to_path_buf(),
            reason: "no data blocks".into(),
        });
    }
    let sb = superblock_bytes(params, data_blocks)?;
    let lay = layout(data_blocks);
    let mut first = vec![0u8; BLOCK as usize];
    first[..SUPERBLOCK_LEN].copy_from_slice(&sb);
    hash.write_all_at(&first, 0).map_err(io_err(hash_path))?;
    hash.set_len(lay.hash_device_bytes)
        .map_err(io_err(hash_path))?;

    let salt = &params.salt;
    let mut block = vec![0u8; BLOCK as usize];
    if lay.level_blocks.is_empty() {
        data.read_exact_at(&mut block, 0)
            .map_err(io_err(data_path))?;
        return Ok(digest(salt, &block));
    }
    // Level i hashes the blocks of level i-1 (level -1 = the data).
    for level in 0..lay.level_blocks.len() {
        let (src, src_path, src_start, src_count) = if level == 0 {
            (data, data_path, 0u64, data_blocks)
        } else {
            (
                hash,
                hash_path,
                lay.level_start[level - 1],
                lay.level_blocks[level - 1],
            )
        };
        let mut out = vec![0u8; BLOCK as usize];
        let mut out_index = lay.level_start[level];
        let mut fill = 0usize;
        for i in 0..src_count {
            src.read_exact_at(&mut block, (src_start + i) * BLOCK)
                .map_err(io_err(src_path))?;
            out[fill..fill + DIGEST].copy_from_slice(&digest(salt, &block));
            fill += DIGEST;
            if fill == BLOCK as usize {
                hash.write_all_at(&out, out_index * BLOCK)
                    .map_err(io_err(hash_path))?;
                out_index += 1;
                out.fill(0);
                fill = 0;
            }
        }
        if fill > 0 {
            hash.write_all_at(&out, out_index * BLOCK)
                .map_err(io_err(hash_path))?;
        }
    }
    let top = lay.level_start[lay.level_start.len() - 1];
    hash.read_exact_at(&mut block, top * BLOCK)
        .map_err(io_err(hash_path))?;
    Ok(digest(salt, &block))
}

/// The root hash a hash device commits to, read from its superblock and top-level block (or
/// the single data block). It does not re-hash the data: dm-verity checks that at read time.
pub fn root_hash(data_path: &Path, hash_path: &Path) -> Result<[u8; 32], VerityError> {
    let hash = File::open(hash_path).map_err(io_err(hash_path))?;
    let mut sb = vec![0u8; SUPERBLOCK_LEN];
    hash.read_exact_at(&mut sb, 0)
        .map_err(|e| VerityError::BadSuperblock {
            path: hash_path.to_path_buf(),
            reason: format!("cannot read 512 bytes: {e}"),
        })?;
    let sb = parse_superblock(&sb).map_err(|reason| VerityError::BadSuperblock {
        path: hash_path.to_path_buf(),
        reason,
    })?;
    let data_len = std::fs::metadata(data_path)
        .map_err(io_err(data_path))?
        .len();
    if sb
        .data_blocks
        .checked_mul(BLOCK)
        .is_none_or(|need| need > data_len)
    {
        return Err(VerityError::Size {
            path: data_path.to_path_buf(),
            reason: format!(
                "{data_len} bytes, but the hash device covers {} blocks of 4096",
                sb.data_blocks
            ),
        });
    }
    let lay = layout(sb.data_blocks);
    let hash_len = hash.metadata().map_err(io_err(hash_path))?.len();
    if hash_len < lay.hash_device_bytes {
        return Err(VerityError::Size {
            path: hash_path.to_path_buf(),
            reason: format!("{hash_len} bytes, the tree needs {}", lay.hash_device_bytes),
        });
    }
    let mut block = vec![0u8; BLOCK as usize];
    match lay.level_start.last() {
        None => {
            let data = File::open(data_path).map_err(io_err(data_path))?;
            data.read_exact_at(&mut block, 0)
                .map_err(io_err(data_path))?;
        }
        Some(&top) => hash
            .read_exact_at(&mut block, top * BLOCK)
            .map_err(io_err(hash_path))?,
    }
    Ok(digest(&sb.salt, &block))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        assert_eq!(layout(1).level_blocks, Vec::<u64>::new());
        assert_eq!(layout(1).hash_device_bytes, 4096);
        assert_eq!(layout(2).level_blocks, vec![1]);
        assert_eq!(layout(128).level_blocks, vec![1]);
        let l = layout(129);
        assert_eq!(l.level_blocks, vec![2, 1]);
        assert_eq!(l.level_start, vec![2, 1]);
        assert_eq!(l.hash_device_bytes, 4 * 4096);
        assert_eq!(layout(128 * 128 + 1).level_blocks, vec![129, 2, 1]);
        assert_eq!(layout(u64::MAX / 4096).level_blocks.len(), 8);
        assert_eq!(layout(u64::MAX).level_blocks.len(), 10);
    }

    #[test]
    fn superblock_round_trip_and_tampering() {
        let p = Params {
            salt: vec![7; 32],
            uuid: [1; 16],
        };
        let sb = superblock_bytes(&p, 42).unwrap();
        assert_eq!(
            parse_superblock(&sb).unwrap(),
            Superblock {
                uuid: [1; 16],
                data_blocks: 42,
                salt: vec![7; 32]
            }
        );
        assert!(parse_superblock(&sb[..100]).is_err());
        assert!(parse_superblock(&[]).is_err());
        let mut bad = sb;
        bad[0] = b'X';
        assert!(parse_superblock(&bad).is_err());
        let mut bad = sb;
        bad[80..82].copy_from_slice(&300u16.to_le_bytes());
        assert!(parse_superblock(&bad).is_err());
        let mut bad = sb;
        bad[72..80].copy_from_slice(&0u64.to_le_bytes());
        assert!(parse_superblock(&bad).is_err());
        let mut bad = sb;
        bad[32..38].copy_from_slice(b"sha1\0\0");
        assert!(parse_superblock(&bad).is_err());
        let mut bad = sb;
        bad[64..68].copy_from_slice(&512u32.to_le_bytes());
        assert!(parse_superblock(&bad).is_err());
        assert!(superblock_bytes(
            &Params {
                salt: vec![0; 257],
                uuid: [0; 16]
            },
            1
        )
        .is_err());
    }
}
