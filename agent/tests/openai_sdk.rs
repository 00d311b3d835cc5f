//! The official `openai` Python SDK as a real client (from the venv that `ci/setup` creates).

mod common;

use common::Server;

#[test]
fn openai_python_sdk_chat_and_completions() {
    let python = cocoon_tests::fixtures::venv_python().expect("venv (run ci/setup)");
    let model = cocoon_tests::fixtures::tiny_model(1).expect("tiny model");
    let s = Server::start(
        &model,
        &["--ctx", "256", "--parallel", "2", "--threads", "2"],
    );
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/openai_client_test.py");
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(format!("http://{}/v1", s.addr))
        .arg(&s.model_id)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "openai client test failed:\n{stdout}\n{stderr}"
    );
    assert_eq!(stdout.trim(), "OK");
}
