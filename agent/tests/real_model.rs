//! End-to-end tests with the real Gemma 3 270M model: greedy output and usage against a direct
//! llama-cpp-2 loop (no batching, no server code), concurrency, disconnects and the queue limit.

mod common;

use common::{send_raw, stream_text, Server};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use serde_json::json;
use std::io::Read;
use std::num::NonZeroU32;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const CTX: u32 = 512;

fn gemma() -> std::path::PathBuf {
    cocoon_tests::fixtures::real_model().expect("real model (run ci/setup)")
}

fn backend() -> &'static LlamaBackend {
    static B: OnceLock<LlamaBackend> = OnceLock::new();
    B.get_or_init(|| {
        llama_cpp_2::send_logs_to_tracing(
            llama_cpp_2::LogOptions::default().with_logs_enabled(false),
        );
        LlamaBackend::init().expect("backend")
    })
}

struct Reference {
    prompt_tokens: usize,
    text: String,
    completion_tokens: u32,
}

/// Plain greedy generation, one sequence, straight on llama-cpp-2.
fn reference(model: &LlamaModel, prompt: &str, max_tokens: u32) -> Reference {
    let b = backend();
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(CTX))
        .with_n_threads(2)
        .with_n_threads_batch(2);
    let mut ctx = model.new_context(b, params).expect("context");
    let tokens = model.vocab().tokenize(prompt.as_bytes(), true, true);
    let mut batch = LlamaBatch::new(CTX as usize, 1);
    for (i, t) in tokens.iter().enumerate() {
        batch
            .add(*t, i as i32, &[0], i + 1 == tokens.len())
            .unwrap();
    }
    ctx.decode(&mut batch).unwrap();
    let mut sampler = LlamaSampler::greedy();
    let mut bytes = Vec::new();
    let mut n = 0u32;
    let mut pos = tokens.len() as i32;
    loop {
        let tok = sampler.sample(&ctx, batch.n_tokens() - 1);
        if model.vocab().is_eog(tok) {
            break;
        }
        bytes.extend(model.vocab().token_to_piece(tok, false, None));
        n += 1;
        if n == max_tokens {
            break;
        }
        batch.clear();
        batch.add(tok, pos, &[0], true).unwrap();
        pos += 1;
        ctx.decode(&mut batch).unwrap();
    }
    Reference {
        prompt_tokens: tokens.len(),
        text: String::from_utf8_lossy(&bytes).into_owned(),
        completion_tokens: n,
    }
}

fn wait_first_frame(stream: &mut std::net::TcpStream) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(6).any(|w| w == b"data: ") {
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "closed before the first frame");
        got.extend_from_slice(&buf[..n]);
    }
}

fn long_stream(s: &Server) -> Vec<u8> {
    json!({"model": s.model_id, "prompt": "Once upon a time", "max_tokens": 400, "stream": true})
        .to_string()
        .into_bytes()
}

#[test]
fn greedy_output_usage_concurrency_and_disconnects() {
    let path = gemma();
    let s = Server::start(
        &path,
        &["--ctx", "512", "--parallel", "4", "--threads", "2"],
    );
    let model = LlamaModel::load_from_file(backend(), &path, &LlamaModelParams::default()).unwrap();

    // 1. Completions, greedy, identical to the direct loop (server otherwise idle).
    let prompt = "The capital of France is";
    let want = reference(&model, prompt, 16);
    let v = s
        .post_json(
            "/v1/completions",
            &json!({"model": s.model_id, "prompt": prompt, "max_tokens": 16, "temperature": 0}),
        )
        .json();
    assert_eq!(v["choices"][0]["text"].as_str().unwrap(), want.text);
    assert_eq!(v["usage"]["prompt_tokens"], want.prompt_tokens);
    assert_eq!(v["usage"]["completion_tokens"], want.completion_tokens);

    // 2. Chat: the built-in gemma template (the model has none), rendered independently here.
    let question = "Name three colours.";
    let tmpl = LlamaChatTemplate::new("gemma").unwrap();
    let rendered = model
        .apply_chat_template(
            &tmpl,
            &[LlamaChatMessage::new("user".into(), question.into()).unwrap()],
            true,
        )
        .unwrap();
    assert!(rendered.contains("<start_of_turn>user"), "{rendered}");
    let want = reference(&model, &rendered, 12);
    let r = s.post_json(
        "/v1/chat/completions",
        &json!({"model": s.model_id, "messages": [{"role": "user", "content": question}], "max_tokens": 12, "temperature": 0,
                "stream": true, "stream_options": {"include_usage": true}}),
    );
    let (events, done) = r.sse();
    assert!(done);
    assert_eq!(stream_text(&events), want.text);
    let usage = &events.last().unwrap()["usage"];
    assert_eq!(usage["prompt_tokens"], want.prompt_tokens);
    assert_eq!(usage["completion_tokens"], want.completion_tokens);

    // 3. Sixteen concurrent streaming clients all complete, with exact per-request usage.
    let before = s.metric("cocoon_completion_tokens_total");
    let addr = s.addr;
    let id = s.model_id.clone();
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let id = id.clone();
            std::thread::spawn(move || {
                let body = json!({"model": id, "messages": [{"role": "user", "content": format!("Count to {i}.")}],
                                  "max_tokens": 6, "temperature": 0.7, "seed": i, "stream": true,
                                  "stream_options": {"include_usage": true}});
                let r = common::request(addr, "POST", "/v1/chat/completions", body.to_string().as_bytes()).unwrap();
                assert_eq!(r.status, 200);
                let (events, done) = r.sse();
                assert!(done, "client {i} did not get [DONE]");
                let u = events.last().unwrap()["usage"].clone();
                u["completion_tokens"].as_u64().unwrap()
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(total > 0 && total <= 16 * 6);
    assert_eq!(
        s.metric("cocoon_completion_tokens_total") - before,
        total as f64
    );

    // 4. A client that disconnects mid-stream frees its sequence.
    let mut a = send_raw(s.addr, "POST", "/v1/completions", &long_stream(&s));
    wait_first_frame(&mut a);
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.metric("cocoon_requests_cancelled_total") < 1.0
        || s.metric("cocoon_active_sequences") != 0.0
    {
        assert!(
            Instant::now() < deadline,
            "the engine never freed the disconnected sequence"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // 5. So does a non-streaming client that goes away while its request is generating.
    let body = json!({"model": s.model_id, "prompt": "Once upon a time", "max_tokens": 400});
    let b = send_raw(
        s.addr,
        "POST",
        "/v1/completions",
        body.to_string().as_bytes(),
    );
    while s.metric("cocoon_active_sequences") < 1.0 {
        assert!(Instant::now() < deadline, "the request never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(b);
    while s.metric("cocoon_requests_cancelled_total") < 2.0
        || s.metric("cocoon_active_sequences") != 0.0
    {
        assert!(
            Instant::now() < deadline,
            "the engine never freed the non-streaming sequence"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = s.post_json(
        "/v1/completions",
        &json!({"model": s.model_id, "prompt": "Hi", "max_tokens": 2}),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn full_queue_gets_429_with_retry_after() {
    let s = Server::start(
        &gemma(),
        &[
            "--ctx",
            "512",
            "--parallel",
            "1",
            "--queue",
            "1",
            "--threads",
            "1",
        ],
    );
    let mut a = send_raw(s.addr, "POST", "/v1/completions", &long_stream(&s));
    wait_first_frame(&mut a);
    // B waits in the queue (the only slot is busy); C finds the queue full.
    let _b = send_raw(s.addr, "POST", "/v1/completions", &long_stream(&s));
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.metric("cocoon_queue_depth") < 1.0 {
        assert!(Instant::now() < deadline, "B never queued");
        std::thread::sleep(Duration::from_millis(5));
    }
    let c = s.post_json(
        "/v1/completions",
        &json!({"model": s.model_id, "prompt": "x", "max_tokens": 2}),
    );
    assert_eq!(c.status, 429);
    assert_eq!(c.header("retry-after").as_deref(), Some("1"));
    assert_eq!(c.error_code(), "queue_full");
    assert_eq!(c.json()["error"]["type"], "rate_limit_error");
    assert_eq!(s.metric("cocoon_errors_total{kind=\"queue_full\"}"), 1.0);
}
