//! A paying client's session against the real binary, the tiny model and the local TON chain
//! emulator (real TVM, real wallet v4r2 contracts): deposit, 401/402, debits equal to usage x
//! prices with verifying receipts (plain and streamed), a disconnect billed for what was
//! generated, and a refund that arrives on chain.
//!
//! Without `node` or the emulator's node_modules these tests print SKIPPING, except under
//! `CI=true`, where they fail.

mod common;

use base64::Engine as _;
use cocoon_payments::Receipt;
use cocoon_tests::chain_emulator::{Emulator, TON};
use common::{parse_response, stream_text, Resp, Server};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const PROMPT_PRICE: u64 = 1_000_000;
const COMPLETION_PRICE: u64 = 3_000_000;
const REFUND_FEE: u64 = 10_000_000;
const TOKEN: &str = "sk-cocoon-test-0123456789abcdef";

// ------------------------------------------------------------------ HTTP with a bearer token

fn request(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("response");
    parse_response(&raw)
}

struct Client<'a> {
    server: &'a Server,
    token: Option<&'a str>,
}

impl Client<'_> {
    fn post(&self, path: &str, body: &Value) -> (Resp, Vec<u8>) {
        let bytes = body.to_string().into_bytes();
        (
            request(self.server.addr, "POST", path, self.token, &bytes),
            bytes,
        )
    }

    fn account(&self) -> Value {
        let r = request(self.server.addr, "GET", "/v1/account", self.token, b"");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()
    }

    fn balance(&self) -> u64 {
        self.account()["balance"].as_u64().expect("balance")
    }

    fn chat(&self, max_tokens: u32, extra: Value) -> Value {
        let mut b = json!({
            "model": self.server.model_id,
            "messages": [{"role": "user", "content": "count with me: one two three"}],
            "max_tokens": max_tokens,
            "temperature": 0,
        });
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    }
}

fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

fn cost(prompt: u64, completion: u64) -> u64 {
    prompt * PROMPT_PRICE + completion * COMPLETION_PRICE
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A receipt from a stream chunk. (The receipt's hex fields deserialise from borrowed
/// strings, so it is read from text, not from a `Value`.)
fn receipt_of(v: &Value) -> Receipt {
    serde_json::from_str(&v.to_string()).expect("cocoon_receipt")
}

/// Checks a receipt against the node key, the account's prices, and what was sent and got.
fn check_receipt(
    r: &Receipt,
    node_key: &[u8; 32],
    usage: &Value,
    request_body: &[u8],
    text: &str,
    balance_after: u64,
) {
    r.verify(node_key).expect("receipt signature verifies");
    let (p, c) = (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    );
    assert_eq!((r.body.prompt_tokens, r.body.completion_tokens), (p, c));
    assert_eq!(r.body.prompt_nanoton_per_token, PROMPT_PRICE);
    assert_eq!(r.body.completion_nanoton_per_token, COMPLETION_PRICE);
    assert_eq!(r.body.cost, cost(p, c));
    assert_eq!(r.body.balance_after, balance_after);
    assert_eq!(r.body.request_hash, sha256(request_body));
    assert_eq!(r.body.response_hash, sha256(text.as_bytes()));
    let mut tampered = r.clone();
    tampered.body.cost -= 1;
    assert!(
        tampered.verify(node_key).is_err(),
        "a changed receipt must not verify"
    );
}

struct Setup {
    emu: Emulator,
    server: Server,
    payer: String,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

/// The emulator, a funded payer and an agent with billing serving the tiny model.
fn setup() -> Option<Setup> {
    setup_with(&cocoon_tests::fixtures::tiny_model(1).expect("tiny model (run ci/setup)"))
}

fn setup_with(model: &std::path::Path) -> Option<Setup> {
    let emu = Emulator::start()?;
    let payer = emu.payer("billing-client", 10 * TON);
    let dir = tempfile::tempdir().unwrap();
    let cfg = json!({
        "prices": {
            "prompt_nanoton_per_token": PROMPT_PRICE,
            "completion_nanoton_per_1000_tokens": COMPLETION_PRICE * 1000,
        },
        // Far above what the test earns: no payout interferes with the balances checked.
        "payout": {
            "owner_address": format!("0:{}", "ab".repeat(32)),
            "threshold_nanoton": 1000 * TON,
            "refund_fee_nanoton": REFUND_FEE,
        },
        "chain": {"endpoint": emu.url(), "request_timeout_secs": 5, "total_timeout_secs": 10},
        "ledger": dir.path().join("payments.ledger"),
        "wallet_key": dir.path().join("node.key"),
    });
    let file = dir.path().join("billing.json");
    std::fs::write(&file, cfg.to_string()).unwrap();
    let server = start_agent(&file, model);
    Some(Setup {
        emu,
        server,
        payer,
        file,
        _dir: dir,
    })
}

/// Starts the agent serving `model` with billing from `file` (chain work every second).
fn start_agent(file: &std::path::Path, model: &std::path::Path) -> Server {
    Server::start(
        model,
        &[
            "--billing",
            file.to_str().unwrap(),
            "--billing-period",
            "1s",
            "--ctx",
            "512",
            "--parallel",
            "2",
            "--threads",
            "2",
        ],
    )
}

fn node_key(account: &Value) -> [u8; 32] {
    let mut k = [0u8; 32];
    hex::decode_to_slice(account["node_public_key"].as_str().unwrap(), &mut k).unwrap();
    k
}

#[test]
fn a_paying_client_deposits_is_billed_exactly_and_gets_its_refund_on_chain() {
    let Some(Setup {
        emu,
        server,
        payer,
        _dir,
        ..
    }) = setup()
    else {
        return;
    };
    let anon = Client {
        server: &server,
        token: None,
    };
    let client = Client {
        server: &server,
        token: Some(TOKEN),
    };

    // No token, or a malformed one: 401 before anything else.
    let (r, _) = anon.post("/v1/chat/completions", &anon.chat(4, json!({})));
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "missing_api_key");
    assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer"));
    let r = request(server.addr, "GET", "/v1/account", None, b"");
    assert_eq!(r.status, 401);
    let r = request(server.addr, "GET", "/v1/account", Some("short"), b"");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (401, "invalid_api_key")
    );

    // The account: id = SHA-256(domain || token); a new token is an empty account.
    let acct = client.account();
    let mut h = Sha256::new();
    h.update(b"cocoon-account-v1\0");
    h.update(TOKEN.as_bytes());
    let id = hex::encode(h.finalize());
    assert_eq!(acct["account"], id);
    assert_eq!(acct["deposit_comment"], format!("cocoon:acct:{id}"));
    assert_eq!(acct["balance"], 0);
    assert_eq!(acct["prices"]["prompt_nanoton_per_token"], PROMPT_PRICE);
    assert_eq!(
        acct["prices"]["completion_nanoton_per_token"],
        COMPLETION_PRICE
    );
    let key = node_key(&acct);
    let deposit_address = acct["deposit_address"].as_str().unwrap().to_string();

    // Empty account: 402 with balance and the required maximum, and the model never runs.
    let completions_before = server.metric("cocoon_completion_tokens_total");
    let (r, _) = client.post("/v1/chat/completions", &client.chat(4, json!({})));
    assert_eq!(r.status, 402);
    let e = &r.json()["error"];
    assert_eq!(e["type"], "insufficient_funds");
    assert_eq!(e["balance"], 0);
    let required = e["required"].as_u64().unwrap();
    assert!(
        required > cost(0, 4) && (required - cost(0, 4)) % PROMPT_PRICE == 0,
        "{e}"
    );

    // Deposit with the account's comment; the chain work credits it.
    let deposit = TON / 5;
    emu.deposit(
        "billing-client",
        &deposit_address,
        deposit,
        &format!("cocoon:acct:{id}"),
    );
    wait_for("the deposit to be credited", 30, || {
        client.balance() == deposit
    });

    // A chat completion: balance drops by exactly usage x prices; the receipt verifies.
    let (r, sent) = client.post("/v1/chat/completions", &client.chat(8, json!({})));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    let usage = v["usage"].clone();
    let prompt_tokens = usage["prompt_tokens"].as_u64().unwrap();
    assert_eq!(required, cost(prompt_tokens, 4), "the 402's maximum cost");
    let text = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let charged = cost(prompt_tokens, usage["completion_tokens"].as_u64().unwrap());
    let header = r.header("x-cocoon-receipt").expect("receipt header");
    let receipt: Receipt = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    let mut balance = deposit - charged;
    check_receipt(&receipt, &key, &usage, &sent, &text, balance);
    assert_eq!(receipt.body.account.to_string(), id);
    assert_eq!(client.balance(), balance);
    let mut debited = charged;

    // Streamed with include_usage: the receipt rides on the usage chunk.
    let (r, sent) = client.post(
        "/v1/chat/completions",
        &client.chat(
            6,
            json!({"stream": true, "stream_options": {"include_usage": true}}),
        ),
    );
    assert_eq!(r.status, 200);
    let (events, done) = r.sse();
    assert!(done);
    let last = events.last().unwrap();
    let usage = last["usage"].clone();
    let receipt: Receipt = receipt_of(&last["cocoon_receipt"]);
    let charged = cost(prompt_tokens, usage["completion_tokens"].as_u64().unwrap());
    balance -= charged;
    debited += charged;
    check_receipt(
        &receipt,
        &key,
        &usage,
        &sent,
        &stream_text(&events),
        balance,
    );
    assert_eq!(client.balance(), balance);

    // Streamed without include_usage: the receipt rides on the finish chunk.
    let body = json!({"model": server.model_id, "prompt": "one two three", "max_tokens": 5, "temperature": 0, "stream": true});
    let (r, sent) = client.post("/v1/completions", &body);
    let (events, done) = r.sse();
    assert!(done && events.iter().all(|e| e.get("usage").is_none()));
    let finish = events.last().unwrap();
    assert!(finish["choices"][0]["finish_reason"].is_string());
    let receipt: Receipt = receipt_of(&finish["cocoon_receipt"]);
    let usage = json!({"prompt_tokens": receipt.body.prompt_tokens, "completion_tokens": receipt.body.completion_tokens});
    balance -= receipt.body.cost;
    debited += receipt.body.cost;
    check_receipt(
        &receipt,
        &key,
        &usage,
        &sent,
        &stream_text(&events),
        balance,
    );
    assert_eq!(client.balance(), balance);

    // The account lists its receipts, newest first; another token's account sees none.
    let recent: Vec<Receipt> =
        serde_json::from_str(&client.account()["recent_receipts"].to_string()).unwrap();
    assert_eq!(recent.len(), 3);
    assert_eq!(recent[0], receipt);
    assert!(recent
        .windows(2)
        .all(|w| w[0].body.ledger_seq > w[1].body.ledger_seq));
    assert!(recent.iter().all(|r| r.verify(&key).is_ok()));
    let other = Client {
        server: &server,
        token: Some("sk-someone-else-0123456789"),
    };
    let v = other.account();
    assert_eq!(v["balance"], 0);
    assert_eq!(v["recent_receipts"], json!([]));
    assert_ne!(v["deposit_comment"], acct["deposit_comment"]);

    // Drained below the request's maximum: 402 without the model running.
    let big = (balance / COMPLETION_PRICE + 1) as u32;
    let generated = server.metric("cocoon_completion_tokens_total");
    let (r, _) = client.post("/v1/chat/completions", &client.chat(big, json!({})));
    assert_eq!(r.status, 402, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"]["balance"], balance);
    assert_eq!(server.metric("cocoon_completion_tokens_total"), generated);
    assert_eq!(client.balance(), balance, "a refused request costs nothing");
    assert!(generated > completions_before);

    // Refunds: clear errors first, then the balance less the fee arrives at the payer.
    let (r, _) = client.post("/v1/account/refund", &json!({"to": payer, "amount": 5}));
    assert_eq!((r.status, r.error_code().as_str()), (400, "invalid_value"));
    let (r, _) = client.post("/v1/account/refund", &json!({"to": "EQnope"}));
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "invalid_address")
    );
    let (r, _) = client.post("/v1/account/refund", &json!({"destination": payer}));
    assert_eq!((r.status, r.error_code().as_str()), (400, "invalid_json"));
    let (r, _) = client.post("/v1/account/refund", &json!({"to": payer}));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["status"], "confirmed", "{v}");
    assert_eq!(v["amount"], balance - REFUND_FEE);
    assert_eq!(v["balance"], 0);
    assert_eq!(client.balance(), 0);
    assert!(
        emu.incoming(&payer)
            .iter()
            .any(|(_, v)| *v == balance - REFUND_FEE),
        "the refund is on chain at the payer's address"
    );
    let (r, _) = client.post("/v1/account/refund", &json!({"to": payer}));
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (409, "nothing_to_refund")
    );

    assert_eq!(
        server.metric("cocoon_billing_debited_nanoton_total"),
        debited as f64
    );
    assert_eq!(
        server.metric("cocoon_billing_insufficient_funds_total"),
        2.0
    );
    assert_eq!(server.metric("cocoon_billing_debits_total"), 3.0);
}

/// The real model, asked to count far past `max_tokens`, streams for seconds: the hang-up
/// after four frames lands mid-generation however fast the engine is. (The tiny model could
/// finish all 400 tokens into the socket buffers before the client left, and then the request
/// is simply complete.)
#[test]
fn a_client_that_disconnects_mid_stream_pays_for_what_was_generated() {
    let model = cocoon_tests::fixtures::real_model().expect("real model (run ci/setup)");
    let Some(Setup {
        emu,
        server,
        file,
        _dir,
        ..
    }) = setup_with(&model)
    else {
        return;
    };
    let counting = json!({"messages": [{"role": "user", "content": "Count from 1 to 1000, one number per line."}]});
    let client = Client {
        server: &server,
        token: Some(TOKEN),
    };
    let acct = client.account();
    let deposit = 2 * TON;
    emu.deposit(
        "billing-client",
        acct["deposit_address"].as_str().unwrap(),
        deposit,
        acct["deposit_comment"].as_str().unwrap(),
    );
    wait_for("the deposit to be credited", 30, || {
        client.balance() == deposit
    });

    // The prompt's size, from a short paid request.
    let (r, _) = client.post("/v1/chat/completions", &client.chat(1, counting.clone()));
    assert_eq!(r.status, 200);
    let prompt_tokens = r.json()["usage"]["prompt_tokens"].as_u64().unwrap();
    let before = client.balance();
    assert_eq!(before, deposit - cost(prompt_tokens, 1));

    // Stream up to 400 tokens, read a few chunks, hang up.
    let max_tokens = 400;
    let mut streaming = counting;
    streaming["stream"] = json!(true);
    let body = client.chat(max_tokens, streaming).to_string();
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while seen.windows(6).filter(|w| w == b"data: ").count() < 4 {
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "stream ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
    drop(s);

    // The hold becomes a debit of the prompt plus the tokens generated before the hang-up.
    wait_for("the partial debit", 30, || {
        server.metric("cocoon_billing_partial_debits_total") == 1.0
    });
    let charged = before - client.balance();
    let completion = (charged - prompt_tokens * PROMPT_PRICE) / COMPLETION_PRICE;
    assert_eq!(
        charged,
        cost(prompt_tokens, completion),
        "billed exactly prompt + whole completion tokens"
    );
    eprintln!("disconnect after {completion} of at most {max_tokens} completion tokens");
    assert!(
        (1..u64::from(max_tokens)).contains(&completion),
        "{completion} completion tokens billed: the hang-up should have cut the stream short"
    );
    assert_eq!(
        server.metric("cocoon_billing_debited_nanoton_total"),
        (cost(prompt_tokens, 1) + charged) as f64
    );

    // Killed (SIGKILL) and restarted on the same ledger: the balance is replayed exactly and
    // the deposit, seen again by the chain work, is not credited twice.
    let balance = client.balance();
    drop(server);
    let server = start_agent(&file, &model);
    let client = Client {
        server: &server,
        token: Some(TOKEN),
    };
    assert_eq!(client.balance(), balance);
    wait_for("a few chain work rounds", 30, || {
        server.metric("cocoon_billing_chain_errors_total") == 0.0
            && String::from_utf8(server.get("/metrics").unwrap().body)
                .unwrap()
                .contains("cocoon_billing_deposits_credited_total 0")
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(client.balance(), balance);
    assert_eq!(server.metric("cocoon_billing_deposits_credited_total"), 0.0);
}

#[test]
fn without_billing_the_worker_serves_free_and_has_no_accounts() {
    let model = cocoon_tests::fixtures::tiny_model(1).expect("tiny model (run ci/setup)");
    let server = Server::start(&model, &["--ctx", "256", "--threads", "2"]);
    let anon = Client {
        server: &server,
        token: None,
    };
    let (r, _) = anon.post("/v1/chat/completions", &anon.chat(3, json!({})));
    assert_eq!(r.status, 200);
    assert!(r.header("x-cocoon-receipt").is_none());
    let r = request(server.addr, "GET", "/v1/account", Some(TOKEN), b"");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "billing_disabled")
    );
    let metrics = String::from_utf8(server.get("/metrics").unwrap().body).unwrap();
    assert!(!metrics.contains("cocoon_billing_"));
}
