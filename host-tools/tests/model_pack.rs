//! `cocoon-host model pack`: reproducibility, and byte-equality of the dm-verity tree with
//! `veritysetup format` (Debian cryptsetup-bin) when it is installed.

use std::fs;
use std::path::Path;
use std::process::Command;

use cocoon_host::model_pack::{self, DATA_FILE, HASH_FILE, INFO_FILE, ROOT_HASH_FILE};
use cocoon_host::verity;

fn gguf(dir: &Path, len: usize, seed: u32) -> std::path::PathBuf {
    let mut bytes = b"GGUF".to_vec();
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    while bytes.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        bytes.push(x as u8);
    }
    bytes.truncate(len);
    let p = dir.join(format!("m-{len}-{seed}.gguf"));
    fs::write(&p, bytes).unwrap();
    p
}

fn pack_bin(model: &Path, out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cocoon-host"))
        .args(["model", "pack"])
        .arg(model)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn two_runs_give_identical_bytes() {
    let d = tempfile::tempdir().unwrap();
    let m = gguf(d.path(), 1_000_003, 1);
    let a = pack_bin(&m, &d.path().join("a"));
    let b = pack_bin(&m, &d.path().join("b"));
    assert_eq!(
        a.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&a.stderr)
    );
    assert_eq!(a.stdout, b.stdout);
    let root = String::from_utf8(a.stdout).unwrap();
    assert_eq!(root.trim().len(), 64);
    for f in [DATA_FILE, HASH_FILE, ROOT_HASH_FILE, INFO_FILE] {
        assert_eq!(
            fs::read(d.path().join("a").join(f)).unwrap(),
            fs::read(d.path().join("b").join(f)).unwrap(),
            "{f} differs between runs"
        );
    }
    assert_eq!(
        fs::read_to_string(d.path().join("a").join(ROOT_HASH_FILE)).unwrap(),
        root
    );
    // The data device is the GGUF padded with zeros to 4096.
    let img = fs::read(d.path().join("a").join(DATA_FILE)).unwrap();
    assert_eq!(img.len(), 1_003_520);
    assert_eq!(&img[..1_000_003], &fs::read(&m).unwrap()[..]);
    assert!(img[1_000_003..].iter().all(|&b| b == 0));
    // Packing over an existing output gives the same bytes again.
    let again = pack_bin(&m, &d.path().join("a"));
    assert_eq!(String::from_utf8(again.stdout).unwrap(), root);

    // A different model gives a different root hash.
    let other = pack_bin(&gguf(d.path(), 1_000_003, 2), &d.path().join("c"));
    assert_ne!(String::from_utf8(other.stdout).unwrap(), root);
}

#[test]
fn root_hash_reads_back_and_detects_tampering() {
    let d = tempfile::tempdir().unwrap();
    let m = gguf(d.path(), 600_000, 3);
    let info = model_pack::pack(&m, &d.path().join("o")).unwrap();
    let data = d.path().join("o").join(DATA_FILE);
    let hash = d.path().join("o").join(HASH_FILE);
    assert_eq!(
        hex::encode(verity::root_hash(&data, &hash).unwrap()),
        info.root_hash
    );
    // Truncated hash device.
    let bytes = fs::read(&hash).unwrap();
    fs::write(&hash, &bytes[..bytes.len() - 1]).unwrap();
    assert!(verity::root_hash(&data, &hash).is_err());
    fs::write(&hash, &bytes[..300]).unwrap();
    assert!(verity::root_hash(&data, &hash).is_err());
    // Superblock claiming more data than the data device has.
    let mut big = bytes.clone();
    big[72..80].copy_from_slice(&u64::MAX.to_le_bytes());
    fs::write(&hash, &big).unwrap();
    assert!(verity::root_hash(&data, &hash).is_err());
    // A changed top-level block changes the root hash.
    let mut t = bytes.clone();
    t[4096 + 5] ^= 0x40;
    fs::write(&hash, &t).unwrap();
    assert_ne!(
        hex::encode(verity::root_hash(&data, &hash).unwrap()),
        info.root_hash
    );
}

#[test]
fn rejects_non_gguf_input() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x.gguf");
    fs::write(&p, b"GGU").unwrap();
    let out = pack_bin(&p, &d.path().join("o"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a GGUF file"));
    fs::write(&p, b"PK\x03\x04 zip").unwrap();
    assert_eq!(pack_bin(&p, &d.path().join("o")).status.code(), Some(2));
    assert_eq!(
        pack_bin(&d.path().join("missing.gguf"), &d.path().join("o"))
            .status
            .code(),
        Some(1)
    );
}

fn veritysetup() -> Option<&'static str> {
    [
        "/usr/sbin/veritysetup",
        "/sbin/veritysetup",
        "/usr/bin/veritysetup",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
}

/// Data sizes around the tree's level boundaries: 1 block (no levels), 2, 128, 129 and
/// 128*128+1 blocks (three levels).
#[test]
fn tree_matches_veritysetup() {
    let Some(vs) = veritysetup() else {
        eprintln!("SKIPPED: veritysetup not installed (Debian package cryptsetup-bin)");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    for len in [
        100usize,
        4097,
        128 * 4096,
        128 * 4096 + 1,
        (128 * 128 + 1) * 4096 - 7,
    ] {
        let m = gguf(d.path(), len, len as u32);
        let out = d.path().join(format!("o{len}"));
        let info = model_pack::pack(&m, &out).unwrap();
        let reference = out.join("reference.verity");
        let status = Command::new(vs)
            .args([
                "format",
                "--hash=sha256",
                "--data-block-size=4096",
                "--hash-block-size=4096",
            ])
            .arg(format!("--salt={}", info.salt))
            .arg(format!("--uuid={}", info.uuid))
            .arg(out.join(DATA_FILE))
            .arg(&reference)
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        let report = String::from_utf8_lossy(&status.stdout);
        let root_line = report
            .lines()
            .find(|l| l.starts_with("Root hash:"))
            .unwrap();
        assert_eq!(
            root_line.split_whitespace().last().unwrap(),
            info.root_hash,
            "len {len}"
        );
        assert_eq!(
            fs::read(&reference).unwrap(),
            fs::read(out.join(HASH_FILE)).unwrap(),
            "hash device differs from veritysetup's for {len} bytes"
        );
    }
}
