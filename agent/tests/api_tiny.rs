//! End-to-end tests of the HTTP API against the real binary with tiny random-weights models.

mod common;

use common::{request, send_raw, stream_text, Server};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn tiny() -> std::path::PathBuf {
    cocoon_tests::fixtures::tiny_model(1).expect("tiny model (run ci/setup)")
}

fn chat(s: &Server, extra: Value) -> Value {
    let mut body =
        json!({"model": s.model_id, "messages": [{"role": "user", "content": "hello world"}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[test]
fn chat_and_completions_stream_and_not_with_exact_usage() {
    let s = Server::start(
        &tiny(),
        &["--ctx", "256", "--parallel", "2", "--threads", "2"],
    );
    // Non-streaming chat, greedy: the length limit is exact.
    let r = s.post_json(
        "/v1/chat/completions",
        &chat(&s, json!({"max_tokens": 8, "temperature": 0})),
    );
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    let text = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let u = &v["usage"];
    assert_eq!(u["completion_tokens"], 8);
    let prompt_tokens = u["prompt_tokens"].as_u64().unwrap();
    assert!(prompt_tokens > 3);
    assert_eq!(u["total_tokens"].as_u64().unwrap(), prompt_tokens + 8);

    // The same request streamed: same text, usage in the last chunk, then [DONE].
    let r = s.post_json(
        "/v1/chat/completions",
        &chat(&s, json!({"max_tokens": 8, "temperature": 0, "stream": true, "stream_options": {"include_usage": true}})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    let (events, done) = r.sse();
    assert!(done);
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(stream_text(&events), text);
    let last = events.last().unwrap();
    assert_eq!(last["choices"].as_array().unwrap().len(), 0);
    assert_eq!(last["usage"], *u);
    let finish = &events[events.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "length");

    // Without include_usage no chunk carries usage. Greedy, so that exactly 4 tokens come (the
    // greedy continuation above ran 8 tokens without an end-of-generation token); a sampled
    // one could end early and make the token count below wrong.
    let r = s.post_json(
        "/v1/chat/completions",
        &chat(
            &s,
            json!({"max_tokens": 4, "temperature": 0, "stream": true}),
        ),
    );
    let (events, done) = r.sse();
    assert!(done && events.iter().all(|e| e.get("usage").is_none()));

    // Completions, both ways.
    let body =
        json!({"model": s.model_id, "prompt": "one two three", "max_tokens": 6, "temperature": 0});
    let v = s.post_json("/v1/completions", &body).json();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["usage"]["completion_tokens"], 6);
    let mut sb = body.clone();
    sb["stream"] = json!(true);
    sb["stream_options"] = json!({"include_usage": true});
    let (events, done) = s.post_json("/v1/completions", &sb).sse();
    assert!(done);
    assert_eq!(
        stream_text(&events),
        v["choices"][0]["text"].as_str().unwrap()
    );
    assert_eq!(events.last().unwrap()["usage"], v["usage"]);

    // Tokens are counted at the source: the metrics agree with the responses.
    assert_eq!(
        s.metric("cocoon_completion_tokens_total"),
        8.0 + 8.0 + 4.0 + 6.0 + 6.0
    );
}

#[test]
fn seeded_sampling_is_reproducible_and_stop_strings_cut() {
    let s = Server::start(
        &tiny(),
        &["--ctx", "256", "--parallel", "2", "--threads", "2"],
    );
    let body = chat(
        &s,
        json!({"max_tokens": 16, "temperature": 1.0, "top_p": 0.9, "seed": 1234, "presence_penalty": 0.5, "frequency_penalty": 0.5}),
    );
    let a = s.post_json("/v1/chat/completions", &body).json();
    let b = s.post_json("/v1/chat/completions", &body).json();
    assert_eq!(a["choices"][0]["message"], b["choices"][0]["message"]);

    // Pick a stop string from the greedy output and check the output is cut before it.
    let g = s
        .post_json(
            "/v1/completions",
            &json!({"model": s.model_id, "prompt": "a b c", "max_tokens": 24, "temperature": 0}),
        )
        .json();
    let full = g["choices"][0]["text"].as_str().unwrap().to_string();
    let chars: Vec<char> = full.chars().collect();
    assert!(chars.len() > 6, "{full:?}");
    let stop: String = chars[4..6].iter().collect();
    let cut = full.find(&stop).unwrap();
    let r = s.post_json("/v1/completions", &json!({"model": s.model_id, "prompt": "a b c", "max_tokens": 24, "temperature": 0, "stop": [stop]})).json();
    assert_eq!(r["choices"][0]["text"].as_str().unwrap(), &full[..cut]);
    assert_eq!(r["choices"][0]["finish_reason"], "stop");
    assert!(r["usage"]["completion_tokens"].as_u64().unwrap() < 24);
}

#[test]
fn health_models_and_metrics() {
    let s = Server::start(
        &tiny(),
        &["--ctx", "128", "--parallel", "1", "--threads", "1"],
    );
    assert_eq!(s.get("/healthz").unwrap().json()["status"], "ok");
    let m = s.get("/v1/models").unwrap().json();
    assert_eq!(m["data"][0]["id"], s.model_id);
    assert_eq!(m["data"][0]["context_length"], 128);
    let text = String::from_utf8(s.get("/metrics").unwrap().body).unwrap();
    for name in [
        "cocoon_http_requests_total",
        "cocoon_queue_depth",
        "cocoon_time_to_first_token_seconds_bucket",
        "cocoon_tokens_per_second",
        "cocoon_errors_total",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
}

#[test]
fn bad_input_gets_openai_errors_and_the_server_keeps_serving() {
    let s = Server::start(
        &tiny(),
        &[
            "--ctx",
            "64",
            "--parallel",
            "1",
            "--threads",
            "1",
            "--body-limit",
            "4096",
        ],
    );
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("/v1/chat/completions", b"{\"model\":".to_vec(), 400, "invalid_json"),
        ("/v1/chat/completions", b"not json at all".to_vec(), 400, "invalid_json"),
        ("/v1/chat/completions", json!({"model": s.model_id, "messages": "hi"}).to_string().into_bytes(), 400, "invalid_json"),
        ("/v1/chat/completions", json!({"model": s.model_id, "messages": [{"role":"user","content":"x"}], "max_tokens": "5"}).to_string().into_bytes(), 400, "invalid_json"),
        ("/v1/chat/completions", json!({"model": "gpt-4", "messages": [{"role":"user","content":"x"}]}).to_string().into_bytes(), 404, "model_not_found"),
        ("/v1/chat/completions", json!({"model": s.model_id, "messages": []}).to_string().into_bytes(), 400, "invalid_value"),
        ("/v1/chat/completions", json!({"model": s.model_id, "messages": [{"role":"user","content":"x"}], "n": 2}).to_string().into_bytes(), 400, "invalid_value"),
        ("/v1/chat/completions", json!({"model": s.model_id, "messages": [{"role":"user","content":"x"}], "temperature": 9}).to_string().into_bytes(), 400, "invalid_value"),
        ("/v1/chat/completions", json!({"model": s.model_id, "messages": [{"role":"user","content":"x\u{0}y"}]}).to_string().into_bytes(), 400, "invalid_value"),
        ("/v1/completions", json!({"model": s.model_id, "prompt": "x", "max_tokens": 500}).to_string().into_bytes(), 400, "context_length_exceeded"),
        ("/v1/completions", json!({"model": s.model_id, "prompt": "hello ".repeat(200)}).to_string().into_bytes(), 400, "context_length_exceeded"),
        ("/v1/completions", vec![b'{'; 5000], 413, "body_too_large"),
        ("/v1/completions", b"{\"model\":\"\xff\xfe\",\"prompt\":\"x\"}".to_vec(), 400, "invalid_json"),
        ("/v1/nothing", b"{}".to_vec(), 404, "not_found"),
        ("/v1/completions", json!({"model": s.model_id, "prompt": ["a", "b"]}).to_string().into_bytes(), 400, "invalid_value"),
        ("/v1/chat/completions", json!({"model": s.model_id, "messages": [{"role":"user","content":[{"type":"image_url"}]}]}).to_string().into_bytes(), 400, "invalid_value"),
    ];
    for (path, body, status, code) in cases {
        let r = s.post(path, &body);
        assert_eq!(
            r.status,
            status,
            "{path} {}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
        assert_eq!(r.error_code(), code);
    }
    let r = request(s.addr, "GET", "/v1/chat/completions", b"").unwrap();
    assert_eq!(r.status, 405);
    // Type errors name the parameter.
    let r = s.post_json("/v1/chat/completions", &json!({"model": s.model_id, "messages": [{"role":"user","content":"x"}], "max_tokens": "5"}));
    assert_eq!(r.json()["error"]["param"], "max_tokens");
    // Nothing above reached the engine, and the server still answers.
    assert_eq!(s.metric("cocoon_decoded_prompt_tokens_total"), 0.0);
    let ok = s.post_json(
        "/v1/completions",
        &json!({"model": s.model_id, "prompt": "x", "max_tokens": 3}),
    );
    assert_eq!(ok.status, 200);
}

fn long_stream(s: &Server) -> Vec<u8> {
    json!({"model": s.model_id, "prompt": "x", "max_tokens": 2000, "stream": true})
        .to_string()
        .into_bytes()
}

#[test]
fn clients_that_never_read_or_never_finish_do_not_block_others() {
    let s = Server::start(
        &tiny(),
        &[
            "--ctx",
            "2048",
            "--parallel",
            "2",
            "--threads",
            "1",
            "--io-timeout",
            "2",
        ],
    );
    // Never reads its (long) streaming response.
    let _silent = send_raw(s.addr, "POST", "/v1/completions", &long_stream(&s));
    // Sends half a request head and stalls: closed after the I/O timeout.
    let mut half = std::net::TcpStream::connect(s.addr).unwrap();
    half.write_all(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    half.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    for _ in 0..3 {
        let r = s.post_json(
            "/v1/completions",
            &json!({"model": s.model_id, "prompt": "x", "max_tokens": 4}),
        );
        assert_eq!(r.status, 200);
    }
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = half.read_to_end(&mut buf); // EOF (or a 408) once the server gives up on it
    assert!(
        started.elapsed() < Duration::from_secs(14),
        "stalled connection was never closed"
    );
}

#[test]
fn an_unknown_chat_template_fails_at_start_up() {
    let model = tiny();
    let sha = cocoon_tests::fixtures::model_sha256(&model).unwrap();
    let td = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--chat-template",
            "no-such-template",
            "--simulated-td",
        ])
        .arg(td.path())
        .arg("--model")
        .arg(&model)
        .args(["--model-sha256", &sha])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-template"));
}

#[test]
fn refuses_a_model_with_the_wrong_digest_and_non_loopback_listeners() {
    let model = tiny();
    let out = std::process::Command::new(common::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--model"])
        .arg(&model)
        .args(["--model-sha256", &"0".repeat(64)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to serve"), "{err}");
    assert!(out.stdout.is_empty(), "it must not listen");

    let sha = cocoon_tests::fixtures::model_sha256(&model).unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["serve", "--listen", "0.0.0.0:0", "--model"])
        .arg(&model)
        .args(["--model-sha256", &sha])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}
