//! `cocoon-measure key-service init|pin|serve` from the command line: the secret file is
//! created once with mode 0600 and never overwritten, `pin` prints what `init` printed, and bad
//! secrets or missing verifier inputs stop `serve` with a message naming them.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_cocoon-measure");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn init_creates_a_private_secret_once_and_pin_repeats_it() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    let s = secret.to_str().unwrap();
    let init = run(&["key-service", "init", "--secret", s]);
    assert!(init.status.success(), "{}", text(&init.stderr));
    let pin = text(&init.stdout).trim().to_string();
    assert_eq!(pin.len(), 64, "{pin}");
    assert!(pin.bytes().all(|b| b.is_ascii_hexdigit()));
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let content = std::fs::read_to_string(&secret).unwrap();

    let again = run(&["key-service", "init", "--secret", s]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("an existing secret is never overwritten"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), content);

    let shown = run(&["key-service", "pin", "--secret", s]);
    assert!(shown.status.success());
    assert_eq!(text(&shown.stdout).trim(), pin);
}

#[test]
fn bad_or_missing_secrets_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    let s = secret.to_str().unwrap();
    let missing = run(&["key-service", "pin", "--secret", s]);
    assert!(!missing.status.success());
    let err = text(&missing.stderr);
    assert!(
        err.contains("cocoon-measure key-service init --secret FILE"),
        "{err}"
    );

    for (content, why) in [
        ("abcd\n", "found 4 characters"),
        (&"zz".repeat(32)[..], "non-hex characters"),
    ] {
        std::fs::write(&secret, content).unwrap();
        let out = run(&["key-service", "pin", "--secret", s]);
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(err.contains("service secret") && err.contains(why), "{err}");
    }
    std::fs::write(&secret, "a".repeat(4096)).unwrap();
    let err = text(&run(&["key-service", "pin", "--secret", s]).stderr);
    assert!(err.contains("larger than the limit"), "{err}");
}

#[test]
fn serve_needs_a_verifier() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    let s = secret.to_str().unwrap();
    assert!(run(&["key-service", "init", "--secret", s])
        .status
        .success());
    let out = run(&[
        "key-service",
        "serve",
        "--secret",
        s,
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("--manifest"), "{err}");
    let out = run(&[
        "key-service",
        "serve",
        "--secret",
        s,
        "--listen",
        "127.0.0.1:0",
        "--manifest",
        "/nonexistent/manifest.json",
        "--pubkey",
        "/nonexistent/key.pub",
        "--collateral",
        "/nonexistent/collateral.json",
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("/nonexistent/key.pub"), "{err}");
}
