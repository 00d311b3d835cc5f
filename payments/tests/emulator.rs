//! End-to-end tests of the money path against the local chain emulator (real TVM, real
//! wallet v4r2 contracts on both sides).

mod common;

use std::time::{Duration, Instant};

use cocoon_payments::chain::{ChainError, TonClient};
use cocoon_payments::engine::{CrashAction, CrashPoint, TransferStatus};
use cocoon_payments::wallet::{self, NodeWallet, TransferSpec};
use cocoon_payments::{DebitRequest, ModelIdentity, PaymentsError, Usage};
use common::*;

fn request(prompt: u64, completion: u64) -> DebitRequest {
    DebitRequest {
        usage: Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
        },
        request_hash: [0x11; 32],
        response_hash: [0x22; 32],
        model: ModelIdentity {
            name: "gemma-3-270m-q4_k_m".into(),
            sha256: [0x33; 32],
        },
    }
}

/// Debits `prompt`/`completion` tokens from `acct`, returning the cost.
fn spend(
    p: &cocoon_payments::Payments,
    acct: &cocoon_payments::AccountId,
    prompt: u64,
    completion: u64,
) -> u64 {
    let req = request(prompt, completion);
    let max = req.usage.cost(&p.prices()).unwrap();
    let hold = p.authorize(acct, max).expect("authorize");
    let r = p.debit(hold, &req).expect("debit");
    r.verify(&p.node_public_key()).expect("receipt verifies");
    r.body.cost
}

#[tokio::test]
async fn deposits_are_credited_exactly_once_across_overlapping_pages_and_restarts() {
    let Some((w, p)) = World::new(1, "alice") else {
        return;
    };
    let emu = &w.emu;
    p.set_scan_page_size(2); // 7 transactions over pages of 2 that overlap by one
    let to = p.wallet_addresses().deposit;
    let (a, b) = (account(0xa1), account(0xb2));
    let amounts = [3 * TON, TON, 2 * TON + 7, 5, TON / 2];
    for (i, amt) in amounts.iter().enumerate() {
        let acct = if i % 2 == 0 { a } else { b };
        emu.deposit("alice", &to, *amt, &acct.deposit_comment());
    }
    // Two deposits that name no valid account are kept, unattributed.
    emu.deposit("alice", &to, 7 * TON, "hello");
    emu.deposit(
        "alice",
        &to,
        TON,
        &format!("cocoon:acct:{}", "AB".repeat(32)),
    );

    // Crash after the first new deposit is recorded, before the rest and the cursor.
    p.set_crash_point(Some((
        CrashPoint::AfterFirstDeposit,
        CrashAction::ReturnError,
    )));
    assert!(matches!(
        p.poll_deposits().await,
        Err(PaymentsError::SimulatedCrash(_))
    ));
    drop(p);

    let p = w.open();
    p.set_scan_page_size(2);
    let scan = p.poll_deposits().await.unwrap();
    assert_eq!(
        scan.already_recorded, 1,
        "the deposit recorded before the crash is seen again"
    );
    assert_eq!(scan.credited.len(), 6);
    let again = p.poll_deposits().await.unwrap();
    assert!(
        again.credited.is_empty() && again.already_recorded == 0,
        "{again:?}"
    );

    assert_eq!(p.balance(&a), 3 * TON + 2 * TON + 7 + TON / 2);
    assert_eq!(p.balance(&b), TON + 5);
    let t = p.totals();
    assert_eq!(t.unattributed, 8 * TON as u128);
    assert_eq!(
        t.deposits,
        amounts.iter().map(|&x| x as u128).sum::<u128>() + 8 * TON as u128
    );
    assert_books(&p, emu);

    // A later deposit is picked up after the cursor, once.
    emu.deposit("alice", &to, 9, &a.deposit_comment());
    let scan = p.poll_deposits().await.unwrap();
    assert_eq!(scan.credited, vec![(Some(a), 9)]);
    assert_books(&p, emu);
}

#[tokio::test]
async fn debit_is_usage_times_price_and_empty_accounts_get_insufficient_funds() {
    let Some((w, p)) = World::new(2, "bob") else {
        return;
    };
    let acct = w.acct;
    // Empty (unknown) account.
    match p.authorize(&acct, 1) {
        Err(PaymentsError::InsufficientFunds {
            balance: 0,
            price: 1,
        }) => {}
        other => panic!("expected InsufficientFunds, got {other:?}"),
    }
    w.fund(&p, 1_000_000).await;
    assert_eq!(p.balance(&acct), 1_000_000);

    let req = request(100, 50); // 100 x 1000 + 50 x 3000 = 250_000
    let hold = p.authorize(&acct, 400_000).unwrap();
    assert_eq!(p.balance(&acct), 600_000, "the hold reserves funds");
    let r = p.debit(hold, &req).unwrap();
    assert_eq!(r.body.cost, 100 * 1_000 + 50 * 3_000);
    assert_eq!(r.body.balance_after, 750_000);
    assert_eq!(p.balance(&acct), 750_000);
    r.verify(&p.node_public_key()).unwrap();
    assert_eq!(r.body.ledger_seq, 3, "deposit, cursor, then this debit");

    // More than the balance: 402-style error carrying balance and price.
    match p.authorize(&acct, 750_001) {
        Err(PaymentsError::InsufficientFunds {
            balance: 750_000,
            price: 750_001,
        }) => {}
        other => panic!("expected InsufficientFunds, got {other:?}"),
    }
    // A debit whose actual usage exceeds what is left is refused and charges nothing.
    let hold = p.authorize(&acct, 1).unwrap();
    let big = request(1_000, 0); // 1_000_000 > 750_000
    assert!(matches!(
        p.debit(hold, &big),
        Err(PaymentsError::InsufficientFunds {
            balance: 750_000,
            price: 1_000_000
        })
    ));
    assert_eq!(p.balance(&acct), 750_000);
    // Released holds give the funds back.
    let hold = p.authorize(&acct, 700_000).unwrap();
    p.release(hold).unwrap();
    assert_eq!(p.balance(&acct), 750_000);
    let t = p.totals();
    assert_eq!(t.spent, 250_000);
    assert_books(&p, &w.emu);
}

#[tokio::test]
async fn refund_deploys_the_wallet_and_reaches_the_payer() {
    let Some((w, p)) = World::new(3, "carol") else {
        return;
    };
    let (emu, acct, payer) = (&w.emu, w.acct, w.payer.clone());
    w.fund(&p, 2 * TON).await;
    assert_eq!(emu.balance(&p.wallet_addresses().raw).1, "uninit");
    let cost = spend(&p, &acct, 1000, 1000);

    let out = p.refund(&acct, &payer).await.unwrap();
    let expected = 2 * TON - cost - TON / 100;
    assert_eq!(out.amount, expected);
    assert!(
        matches!(out.status, TransferStatus::Confirmed { .. }),
        "{out:?}"
    );
    assert_eq!(p.balance(&acct), 0);
    assert_eq!(
        emu.balance(&p.wallet_addresses().raw).1,
        "active",
        "first external deployed it"
    );
    let node = p.wallet_addresses().bounceable;
    let got: Vec<u64> = emu
        .incoming(&payer)
        .into_iter()
        .filter(|(s, _)| *s == node)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(got, vec![expected]);
    // Nothing left to refund.
    assert!(matches!(
        p.refund(&acct, &payer).await,
        Err(PaymentsError::NothingToRefund { .. })
    ));
    let t = p.totals();
    assert_eq!(t.refunded, expected as u128);
    assert_eq!(t.refund_fees, (TON / 100) as u128);
    assert_books(&p, emu);
}

#[tokio::test]
async fn payout_reaches_the_owner_with_the_right_amount() {
    let Some((w, p)) = World::new(4, "dave") else {
        return;
    };
    let (emu, acct) = (&w.emu, w.acct);
    w.fund(&p, 5 * TON).await;
    // Below the 1 TON threshold: no automatic payout.
    spend(&p, &acct, 100_000, 0); // 0.1 TON
    assert_eq!(p.payout_if_due().await.unwrap(), None);
    // 2.1 TON earned in total; deposit fees and the gas reserve stay.
    spend(&p, &acct, 0, 666_667);
    let before = p.totals();
    let out = p.payout_if_due().await.unwrap().expect("payout due");
    let expected = before.payable - i128::from(TON / 20);
    assert_eq!(i128::from(out.amount), expected);
    assert!(
        matches!(out.status, TransferStatus::Confirmed { .. }),
        "{out:?}"
    );
    let owner_in = emu.incoming(&w.owner);
    assert_eq!(owner_in.len(), 1);
    assert_eq!(owner_in[0], (p.wallet_addresses().bounceable, out.amount));
    let (owner_balance, _) = emu.balance(&w.owner);
    assert_eq!(
        owner_balance, out.amount,
        "a fresh address holds exactly what was paid"
    );
    let t = p.totals();
    assert_eq!(t.paid_out, out.amount as u128);
    assert_eq!(
        t.earned as i128,
        t.paid_out as i128 + t.chain_fees as i128 + t.payable
    );
    assert_books(&p, emu);
    // On demand, below the threshold: pays what is above the reserve (here nothing).
    assert!(matches!(
        p.payout_now().await,
        Err(PaymentsError::NothingToPay { .. })
    ));
}

/// Crash after the intent is durable, before sending: on restart the same message is sent.
#[tokio::test]
async fn crash_between_intent_and_send_resends_the_same_message() {
    let Some((w, p)) = World::new(5, "erin") else {
        return;
    };
    let (emu, acct) = (&w.emu, w.acct);
    w.fund(&p, 4 * TON).await;
    spend(&p, &acct, 0, 1_000_000); // 3 TON
    p.set_crash_point(Some((CrashPoint::AfterIntent, CrashAction::ReturnError)));
    assert!(matches!(
        p.payout_now().await,
        Err(PaymentsError::SimulatedCrash(CrashPoint::AfterIntent))
    ));
    let (_, intent) = p.open_intent().unwrap();
    drop(p);
    assert!(emu.incoming(&w.owner).is_empty(), "nothing was sent");

    let p = w.open();
    assert_eq!(p.open_intent().unwrap().1, intent);
    let out = p.reconcile().await.unwrap().unwrap();
    assert!(
        matches!(out.status, TransferStatus::Confirmed { .. }),
        "{out:?}"
    );
    assert_eq!(
        emu.incoming(&w.owner),
        vec![(p.wallet_addresses().bounceable, intent.amount)]
    );
    assert_eq!(p.reconcile().await.unwrap(), None);
    assert_books(&p, emu);
}

/// Crash after sending, before recording: on restart the chain shows it was sent; it is
/// recorded as paid and never sent again.
#[tokio::test]
async fn crash_between_send_and_record_is_reconciled_without_a_second_send() {
    let Some((w, p)) = World::new(6, "frank") else {
        return;
    };
    let (emu, acct) = (&w.emu, w.acct);
    let payer = w.payer.clone();
    w.fund(&p, 4 * TON).await;
    spend(&p, &acct, 0, 500_000); // 1.5 TON
    p.set_crash_point(Some((CrashPoint::AfterSend, CrashAction::ReturnError)));
    assert!(matches!(
        p.refund(&acct, &payer).await,
        Err(PaymentsError::SimulatedCrash(CrashPoint::AfterSend))
    ));
    drop(p);

    let p = w.open();
    let (_, intent) = p.open_intent().unwrap();
    let out = p.reconcile().await.unwrap().unwrap();
    assert!(
        matches!(out.status, TransferStatus::Confirmed { .. }),
        "{out:?}"
    );
    let node = p.wallet_addresses().bounceable;
    let refunds: Vec<_> = emu
        .incoming(&payer)
        .into_iter()
        .filter(|(s, _)| *s == node)
        .collect();
    assert_eq!(
        refunds,
        vec![(node.clone(), intent.amount)],
        "sent exactly once"
    );
    // Earnings are still owed and paid once.
    let out = p.payout_now().await.unwrap();
    assert!(matches!(out.status, TransferStatus::Confirmed { .. }));
    assert_books(&p, emu);
    let t = p.totals();
    assert_eq!(
        t.deposits,
        t.spent + t.balances + t.refunded + t.refund_fees
    );
}

/// An intent that was never sent and has expired is cancelled; the money is owed again and
/// the next refund goes out once.
#[tokio::test]
async fn expired_unsent_intent_is_cancelled_and_nothing_is_lost() {
    let Some((w, p)) = World::new(7, "gina") else {
        return;
    };
    let (emu, acct) = (&w.emu, w.acct);
    let payer = w.payer.clone();
    w.fund(&p, 3 * TON).await;
    let before = p.balance(&acct);
    p.set_crash_point(Some((CrashPoint::AfterIntent, CrashAction::ReturnError)));
    assert!(p.refund(&acct, &payer).await.is_err());
    assert_eq!(p.balance(&acct), 0, "the intent holds the balance");
    drop(p);
    emu.advance(61); // past valid_until (ttl 60 s)

    let p = w.open();
    let out = p.reconcile().await.unwrap().unwrap();
    assert!(
        matches!(out.status, TransferStatus::Cancelled { .. }),
        "{out:?}"
    );
    assert_eq!(p.balance(&acct), before);
    assert_books(&p, emu);
    let out = p.refund(&acct, &payer).await.unwrap();
    assert!(matches!(out.status, TransferStatus::Confirmed { .. }));
    let node = p.wallet_addresses().bounceable;
    assert_eq!(
        emu.incoming(&payer)
            .into_iter()
            .filter(|(s, _)| *s == node)
            .count(),
        1
    );
    assert_books(&p, emu);
}

/// The send is lost (API says OK, message never arrives) or applied but answered with a 500:
/// reconciliation resends or recognises it; either way exactly one transfer.
#[tokio::test]
async fn lost_and_ambiguous_sends_end_in_exactly_one_transfer() {
    let Some((w, p)) = World::new(8, "hank") else {
        return;
    };
    let (emu, acct) = (&w.emu, w.acct);
    w.fund(&p, 9 * TON).await;
    spend(&p, &acct, 0, 1_000_000);

    // Lost: the first sendBoc, the resend inside the same call, and the resend by the next
    // call are all dropped.
    emu.fault("drop_send", 3, Some("sendBoc"));
    let out = p.payout_now().await.unwrap();
    assert_eq!(out.status, TransferStatus::Pending);
    assert!(matches!(
        p.payout_now().await,
        Err(PaymentsError::TransferInFlight { .. })
    ));
    let out = p.reconcile().await.unwrap().unwrap();
    assert!(
        matches!(out.status, TransferStatus::Confirmed { .. }),
        "{out:?}"
    );
    assert_eq!(emu.incoming(&w.owner).len(), 1);

    // Ambiguous: applied, but the API answers 500; the client retries, which the chain
    // rejects (seqno used). The outcome still comes from the chain history.
    spend(&p, &acct, 0, 1_000_000);
    emu.fault("apply_then_500", 1, Some("sendBoc"));
    let out = p.payout_now().await.unwrap();
    assert!(
        matches!(out.status, TransferStatus::Confirmed { .. }),
        "{out:?}"
    );
    let paid: Vec<u64> = emu.incoming(&w.owner).into_iter().map(|(_, v)| v).collect();
    assert_eq!(paid.len(), 2);
    assert_eq!(
        p.totals().paid_out,
        paid.iter().map(|&v| v as u128).sum::<u128>()
    );
    assert_books(&p, emu);
}

#[tokio::test]
async fn flaky_and_down_chain_pauses_chain_work_but_never_serving() {
    let Some((w, p)) = World::new(9, "ivy") else {
        return;
    };
    let (emu, acct) = (&w.emu, w.acct);
    w.deposit(&p, TON);

    // Flaky: 500s, a 502 HTML page and a hung request are retried with backoff.
    emu.fault("http500", 2, None);
    emu.fault("http502", 1, None);
    emu.fault("timeout", 1, None);
    let p2 = cocoon_payments::Payments::open(
        &w.ledger.with_file_name("ledger2"),
        &cocoon_payments::keys::SimulatedKeyProvider::new("emulator-tests"),
        prices(),
        payout_config(&w.owner),
        cocoon_payments::ChainConfig {
            request_timeout: Duration::from_millis(500),
            ..chain_config(&emu.url())
        },
    )
    .unwrap();
    let scan = p2.poll_deposits().await.unwrap();
    assert_eq!(scan.credited, vec![(Some(acct), TON)]);
    drop(p2);

    p.poll_deposits().await.unwrap();
    // Down: every request fails; the call gives up within the bounded total time.
    emu.fault("http500", 1000, None);
    let start = Instant::now();
    match p.poll_deposits().await {
        Err(PaymentsError::Chain(ChainError::Unavailable { attempts, .. })) => {
            assert!(attempts > 1)
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(12));
    let report = p.tick().await;
    assert!(!report.errors.is_empty());
    // Serving goes on.
    let cost = spend(&p, &acct, 10, 10);
    assert_eq!(cost, 40_000);
    let owner = w.owner.clone();
    drop(w);

    // Nothing listening at all.
    let dir = tempfile::tempdir().unwrap();
    let down = cocoon_payments::Payments::open(
        &dir.path().join("ledger3"),
        &cocoon_payments::keys::SimulatedKeyProvider::new("emulator-tests"),
        prices(),
        payout_config(&owner),
        cocoon_payments::ChainConfig {
            total_timeout: Duration::from_secs(1),
            ..chain_config("http://127.0.0.1:9")
        },
    )
    .unwrap();
    assert!(matches!(
        down.poll_deposits().await,
        Err(PaymentsError::Chain(ChainError::Unavailable { .. }))
    ));
    assert!(matches!(
        down.payout_now().await,
        Err(PaymentsError::NothingToPay { .. })
    ));
}

#[tokio::test]
async fn malformed_chain_responses_are_rejected_and_change_nothing() {
    let Some((w, p)) = World::new(10, "jack") else {
        return;
    };
    let emu = &w.emu;
    w.deposit(&p, TON);
    for kind in ["malformed", "wrong_shape"] {
        emu.fault(kind, 1, Some("getTransactions"));
        match p.poll_deposits().await {
            Err(PaymentsError::Chain(ChainError::Malformed {
                method: "getTransactions",
                detail,
            })) => {
                assert!(!detail.is_empty());
            }
            other => panic!("{kind}: expected Malformed, got {other:?}"),
        }
        assert_eq!(p.totals().deposits, 0);
    }
    emu.fault("malformed", 1, Some("getAddressInformation"));
    let client = TonClient::new(chain_config(&emu.url())).unwrap();
    assert!(matches!(
        client.get_address_information(p.wallet().address()).await,
        Err(ChainError::Malformed {
            method: "getAddressInformation",
            ..
        })
    ));
    // Healthy again.
    assert_eq!(p.poll_deposits().await.unwrap().credited.len(), 1);
    assert_books(&p, emu);
}

#[tokio::test]
async fn wrong_or_unsigned_external_messages_are_rejected_by_the_chain() {
    let Some(emu) = Emulator::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = open(&dir.path().join("ledger"), &emu.url(), &owner_address(11));
    emu.payer("kim", 50 * TON);
    let node = p.wallet_addresses();
    emu.deposit("kim", &node.deposit, 5 * TON, "gas");
    let client = TonClient::new(chain_config(&emu.url())).unwrap();
    let dest = wallet::parse_address(&owner_address(12)).unwrap();
    let info = client
        .get_address_information(p.wallet().address())
        .await
        .unwrap();
    let spec = TransferSpec {
        seqno: 0,
        valid_until: info.sync_utime + 60,
        destination: dest.clone(),
        amount: TON,
        comment: "steal".into(),
        deploy: true,
    };
    // Signed by another key, addressed to our wallet (with our state init).
    let mut forged = p.wallet().tonlib_wallet().clone();
    forged.key_pair = {
        let other = cocoon_payments::keys::NodeKey::from_seed([9; 32]);
        let w = NodeWallet::new(&other).unwrap();
        w.tonlib_wallet().key_pair.clone()
    };
    let internal = wallet::internal_transfer(&dest, TON, "steal").unwrap();
    let ext = forged
        .create_external_msg(spec.valid_until, 0, true, [internal.clone().to_arc()])
        .unwrap();
    let forged_boc = wallet::serialize(ext).unwrap();
    // Unsigned: a zero signature.
    let body = forged
        .create_external_body(spec.valid_until, 0, [internal.to_arc()])
        .unwrap();
    let unsigned = tonlib_core::wallet::version_helper::VersionHelper::sign_msg(
        tonlib_core::wallet::wallet_version::WalletVersion::V4R2,
        &body,
        &[0u8; 64],
    )
    .unwrap();
    let unsigned_boc = wallet::serialize(forged.wrap_signed_body(unsigned, true).unwrap()).unwrap();

    for (what, boc) in [
        ("wrong key", &forged_boc.boc),
        ("unsigned", &unsigned_boc.boc),
    ] {
        match client.send_boc(boc).await {
            Err(ChainError::Rejected { message }) => {
                assert!(
                    message.contains("cannot apply external message"),
                    "{what}: {message}"
                )
            }
            other => panic!("{what}: expected Rejected, got {other:?}"),
        }
    }
    let (bal, state) = emu.balance(&node.raw);
    assert_eq!(state, "uninit", "nothing was executed");
    assert!(bal >= 5 * TON - TON / 100);
    assert!(emu.incoming(&owner_address(12)).is_empty());
    // The genuine message with the same parameters is accepted.
    let good = p.wallet().build_transfer(&spec).unwrap();
    client.send_boc(&good.boc).await.unwrap();
    assert_eq!(
        emu.incoming(&owner_address(12)),
        vec![(node.bounceable, TON)]
    );
}

#[tokio::test]
async fn torn_ledger_tail_is_truncated_and_the_books_replay_exactly() {
    let Some((w, p)) = World::new(13, "lee") else {
        return;
    };
    let (emu, acct) = (&w.emu, w.acct);
    w.fund(&p, 2 * TON).await;
    spend(&p, &acct, 10, 20);
    let totals = p.totals();
    let balance = p.balance(&acct);
    drop(p);
    let good = std::fs::read(&w.ledger).unwrap();
    // A debit torn at every possible length.
    let p = w.open();
    spend(&p, &acct, 1, 1);
    drop(p);
    let full = std::fs::read(&w.ledger).unwrap();
    for cut in (good.len()..full.len()).step_by(7) {
        std::fs::write(&w.ledger, &full[..cut]).unwrap();
        let p = w.open();
        assert_eq!(p.totals(), totals, "cut at {cut}");
        assert_eq!(p.balance(&acct), balance);
        assert_eq!(
            std::fs::read(&w.ledger).unwrap(),
            good,
            "truncated back to the last whole record"
        );
    }
    // Corruption in the middle is refused, never skipped.
    let mut bad = full.clone();
    bad[20] ^= 0x40;
    std::fs::write(&w.ledger, &bad).unwrap();
    let err = cocoon_payments::Payments::open(
        &w.ledger,
        &cocoon_payments::keys::SimulatedKeyProvider::new("emulator-tests"),
        prices(),
        payout_config(&w.owner),
        chain_config(&emu.url()),
    )
    .err()
    .expect("corrupt ledger must not open");
    assert!(err.to_string().contains("corrupt"), "{err}");
}

/// The engine runs in a child process that aborts (SIGABRT) between writing the payout
/// intent and sending it; the parent then recovers from the ledger file.
#[tokio::test]
async fn child_process_killed_mid_payout_recovers_from_the_ledger() {
    if let Ok(spec) = std::env::var("COCOON_PAYMENTS_CHILD") {
        // Child role: `<ledger>|<url>|<owner>`.
        let parts: Vec<&str> = spec.split('|').collect();
        let p = open(std::path::Path::new(parts[0]), parts[1], parts[2]);
        p.set_crash_point(Some((CrashPoint::AfterSend, CrashAction::Abort)));
        let _ = p.payout_now().await;
        unreachable!("the crash point aborts the process");
    }
    let Some((w, p)) = World::new(14, "mia") else {
        return;
    };
    let emu = &w.emu;
    w.fund(&p, 4 * TON).await;
    spend(&p, &w.acct, 0, 1_000_000);
    drop(p);
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_killed_mid_payout_recovers_from_the_ledger",
            "--nocapture",
        ])
        .env(
            "COCOON_PAYMENTS_CHILD",
            format!("{}|{}|{}", w.ledger.display(), emu.url(), w.owner),
        )
        .status()
        .unwrap();
    assert!(!status.success(), "the child must have died");
    let p = w.open();
    let (_, intent) = p.open_intent().expect("intent survived the crash");
    let out = p.reconcile().await.unwrap().unwrap();
    assert!(
        matches!(out.status, TransferStatus::Confirmed { .. }),
        "{out:?}"
    );
    assert_eq!(
        emu.incoming(&w.owner),
        vec![(p.wallet_addresses().bounceable, intent.amount)]
    );
    assert_books(&p, emu);
}

#[tokio::test]
async fn api_key_is_sent_and_a_refused_key_is_a_typed_error() {
    let Some(emu) = Emulator::start_with(&["--api-key", "s3cret"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let p = open(&dir.path().join("ledger"), &emu.url(), &owner_address(15));
    let addr = p.wallet().address().clone();
    let no_key = TonClient::new(chain_config(&emu.url())).unwrap();
    match no_key.get_address_information(&addr).await {
        Err(ChainError::Api {
            code: 401, message, ..
        }) => assert!(message.contains("API key")),
        other => panic!("expected a 401 API error, got {other:?}"),
    }
    let keyed = TonClient::new(cocoon_payments::ChainConfig {
        api_key: Some("s3cret".into()),
        ..chain_config(&emu.url())
    })
    .unwrap();
    let info = keyed.get_address_information(&addr).await.unwrap();
    assert_eq!(info.balance, 0);
    assert_eq!(info.last_tx, None);
    assert!(TonClient::new(cocoon_payments::ChainConfig {
        api_key: Some("bad key\n".into()),
        ..chain_config(&emu.url())
    })
    .is_err());
    assert!(TonClient::new(chain_config("ftp://127.0.0.1:1")).is_err());
}
