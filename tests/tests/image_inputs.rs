//! The image build's pinned kernel input: `fetch_kernel_source` (ci/image-lib.sh) hands the build
//! the tarball only when its SHA-256 is the one image/kernel.lock pins, and names what is wrong
//! otherwise. Runs the real shell function against a cache that already holds the tarball, so
//! nothing is downloaded.

use cocoon_tests::fixtures::repo_root;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::{Command, Output};

const FILE: &str = "linux_1.2.3.orig.tar.xz";

/// A source tree with `lock` as image/kernel.lock, and a cache holding `cached` as the tarball.
fn setup(dir: &Path, lock: &str, cached: &[u8]) {
    std::fs::create_dir_all(dir.join("src/image")).unwrap();
    std::fs::write(dir.join("src/image/kernel.lock"), lock).unwrap();
    std::fs::create_dir_all(dir.join("cache/image/sources")).unwrap();
    std::fs::write(dir.join("cache/image/sources").join(FILE), cached).unwrap();
}

fn fetch(dir: &Path) -> Output {
    let root = repo_root();
    Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{0}/ci/lib.sh'; source '{0}/ci/image-lib.sh'; fetch_kernel_source '{1}'",
            root.display(),
            dir.join("src").display()
        ))
        .env("COCOON_CACHE", dir.join("cache"))
        // An unreachable mirror: a test that tried to download would fail, not fetch.
        .env("COCOON_DEBIAN_MIRROR", "http://127.0.0.1:9/debian")
        .output()
        .unwrap()
}

fn lock_line(sum: &str, file: &str) -> String {
    format!("# comment\n1.2.3 {sum} {file}\n")
}

#[test]
fn the_pinned_tarball_is_linked_into_the_build_sources() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = b"pretend kernel tarball";
    let sum = hex::encode(Sha256::digest(bytes));
    setup(dir.path(), &lock_line(&sum, FILE), bytes);
    let out = fetch(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Linux 1.2.3 source verified"), "{stderr}");
    let linked = dir.path().join("src/kernel-source").join(FILE);
    assert_eq!(std::fs::read(linked).unwrap(), bytes);
}

#[test]
fn a_tarball_with_another_sha256_stops_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let pinned = hex::encode(Sha256::digest(b"the real tarball"));
    setup(dir.path(), &lock_line(&pinned, FILE), b"a tampered tarball");
    let out = fetch(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("{FILE} has SHA-256"))
            && stderr.contains(&format!("image/kernel.lock pins {pinned}")),
        "{stderr}"
    );
    assert!(!dir.path().join("src/kernel-source").join(FILE).exists());
}

#[test]
fn a_malformed_or_empty_lock_is_refused() {
    for (lock, want) in [
        (lock_line("abc", FILE), "image/kernel.lock is malformed"),
        (
            lock_line(&"0".repeat(64), "../../etc/passwd"),
            "image/kernel.lock is malformed",
        ),
        ("# nothing pinned\n".to_string(), "pins no kernel"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path(), &lock, b"x");
        let out = fetch(dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{lock:?} was accepted");
        assert!(stderr.contains(want), "{lock:?}: {stderr}");
    }
}

#[test]
fn a_missing_tarball_is_downloaded_from_the_mirror_or_named() {
    let dir = tempfile::tempdir().unwrap();
    let sum = hex::encode(Sha256::digest(b"y"));
    setup(dir.path(), &lock_line(&sum, FILE), b"y");
    std::fs::remove_file(dir.path().join("cache/image/sources").join(FILE)).unwrap();
    let out = fetch(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "cannot download http://127.0.0.1:9/debian/pool/main/l/linux/{FILE}"
        )),
        "{stderr}"
    );
    // No partial download is left where a later run would take it for the tarball.
    assert!(!dir.path().join("cache/image/sources").join(FILE).exists());
}
