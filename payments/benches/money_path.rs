//! Money-path cost per request and ledger throughput.
//!
//! `cargo bench -p cocoon-payments --bench money_path` prints:
//! * CPU per request for metering + receipt signing + record encoding (no I/O);
//! * a full `authorize` + `debit` (including the fsynced ledger append), per request;
//! * raw ledger appends per second with fsync.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cocoon_payments::account::AccountId;
use cocoon_payments::keys::{NodeKey, SimulatedKeyProvider};
use cocoon_payments::ledger::log::{encode_record, LogWriter};
use cocoon_payments::ledger::record::{Record, TxKey};
use cocoon_payments::receipt::ReceiptBody;
use cocoon_payments::{
    ChainConfig, DebitRequest, ModelIdentity, Payments, PayoutConfig, PriceConfig, Usage,
};

fn per_op(total: Duration, n: u32) -> String {
    format!("{:.1} us", total.as_secs_f64() * 1e6 / f64::from(n))
}

fn main() {
    let prices = PriceConfig {
        prompt_nanoton_per_token: 1_000,
        completion_nanoton_per_token: 3_000,
    };
    let key = NodeKey::from_seed([5; 32]);
    let model = ModelIdentity {
        name: "gemma-3-270m-q4_k_m".into(),
        sha256: [9; 32],
    };
    let usage = Usage {
        prompt_tokens: 512,
        completion_tokens: 256,
    };

    // 1. CPU only: price, sign, encode the ledger record.
    let n = 20_000u32;
    let start = Instant::now();
    for i in 0..n {
        let cost = usage.cost(&prices).unwrap();
        let body = ReceiptBody {
            node_public_key: key.public_key(),
            account: AccountId([1; 32]),
            ledger_seq: u64::from(i),
            request_hash: [2; 32],
            response_hash: [3; 32],
            model: model.clone(),
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            prompt_nanoton_per_token: prices.prompt_nanoton_per_token,
            completion_nanoton_per_token: prices.completion_nanoton_per_token,
            cost,
            balance_after: 1_000_000_000,
        };
        let r = body.sign(&key);
        let rec = Record::Debit {
            account: r.body.account,
            cost,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            prompt_nanoton_per_token: prices.prompt_nanoton_per_token,
            completion_nanoton_per_token: prices.completion_nanoton_per_token,
            request_hash: r.body.request_hash,
            response_hash: r.body.response_hash,
            model: r.body.model.clone(),
            balance_after: r.body.balance_after,
            signature: r.signature,
        };
        let payload = serde_json::to_vec(&rec).unwrap();
        black_box(encode_record(u64::from(i), &payload).unwrap());
    }
    let cpu = start.elapsed();
    println!(
        "metering + receipt signing + record encoding (CPU): {} per request ({n} requests)",
        per_op(cpu, n)
    );

    let dir = tempfile::tempdir().unwrap();

    // 2. Full debit path with the fsynced append, on a ledger seeded with one deposit.
    let ledger_path = dir.path().join("ledger");
    cocoon_payments::ledger::Ledger::open(&ledger_path)
        .unwrap()
        .append(&Record::Deposit {
            tx: TxKey {
                lt: 1,
                hash: [0; 32],
            },
            account: Some(AccountId([1; 32])),
            amount: u64::MAX / 2,
            fee: 0,
            source: String::new(),
            comment: String::new(),
        })
        .unwrap();
    let payments = Payments::open(
        &ledger_path,
        &SimulatedKeyProvider::new("bench"),
        prices,
        PayoutConfig {
            owner_address: format!("0:{}", "11".repeat(32)),
            payout_threshold: 1,
            gas_reserve: 0,
            refund_fee: 0,
            message_ttl_secs: 60,
        },
        // Never contacted: debits are local.
        ChainConfig::new("http://127.0.0.1:9", None),
    )
    .unwrap();
    let req = DebitRequest {
        usage,
        request_hash: [2; 32],
        response_hash: [3; 32],
        model,
    };
    let acct = AccountId([1; 32]);
    let n = 300u32;
    let start = Instant::now();
    for _ in 0..n {
        let hold = payments.authorize(&acct, 10_000_000).unwrap();
        black_box(payments.debit(hold, &req).unwrap());
    }
    let full = start.elapsed();
    println!(
        "authorize + debit incl. fsynced ledger append (wall): {} per request ({n} requests)",
        per_op(full, n)
    );

    // 3. Raw appends with fsync.
    let (mut log, _, _) = LogWriter::open(&dir.path().join("raw")).unwrap();
    let payload = vec![b'x'; 600];
    let n = 500u32;
    let start = Instant::now();
    for _ in 0..n {
        log.append(&payload).unwrap();
    }
    let t = start.elapsed();
    println!(
        "ledger appends with fsync: {:.0} per second ({} per append, 600-byte records)",
        f64::from(n) / t.as_secs_f64(),
        per_op(t, n)
    );
}
