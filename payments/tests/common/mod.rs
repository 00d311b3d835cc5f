//! Test harness: a node's payments against the chain emulator ([`Emulator`], shared with the
//! agent's tests), with the ledger in a temp dir.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use cocoon_payments::keys::SimulatedKeyProvider;
use cocoon_payments::{AccountId, ChainConfig, Payments, PayoutConfig, PriceConfig};
pub use cocoon_tests::chain_emulator::{Emulator, TON};

pub fn prices() -> PriceConfig {
    PriceConfig {
        prompt_nanoton_per_token: 1_000,
        completion_nanoton_per_token: 3_000,
    }
}

/// A fresh, never-used owner address (raw form).
pub fn owner_address(tag: u8) -> String {
    format!("0:{}", hex::encode([tag; 32]))
}

pub fn payout_config(owner: &str) -> PayoutConfig {
    PayoutConfig {
        owner_address: owner.to_string(),
        payout_threshold: TON,
        gas_reserve: TON / 20,
        refund_fee: TON / 100,
        message_ttl_secs: 60,
    }
}

pub fn chain_config(url: &str) -> ChainConfig {
    ChainConfig {
        request_timeout: Duration::from_secs(3),
        total_timeout: Duration::from_secs(8),
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        ..ChainConfig::new(url, None)
    }
}

pub fn open(ledger: &std::path::Path, url: &str, owner: &str) -> Payments {
    Payments::open(
        ledger,
        &SimulatedKeyProvider::new("emulator-tests"),
        prices(),
        payout_config(owner),
        chain_config(url),
    )
    .expect("opening payments")
}

pub fn account(tag: u8) -> AccountId {
    AccountId([tag; 32])
}

/// The books balance to the nanoTON, in the ledger and against the chain:
/// the node wallet holds exactly deposits - paid out - refunded - chain fees.
pub fn assert_books(p: &Payments, emu: &Emulator) {
    p.check_invariants().expect("ledger identities");
    assert_eq!(
        p.open_intent(),
        None,
        "books are compared with no transfer in flight"
    );
    let t = p.totals();
    let (bal, _) = emu.balance(&p.wallet_addresses().raw);
    let expected = t.deposits - t.paid_out - t.refunded - t.chain_fees;
    assert_eq!(u128::from(bal), expected, "wallet balance vs ledger: {t:?}");
}

/// One test's world: a fresh emulator, a ledger path in a temp dir, the account `account(tag)`
/// and a payer wallet named `payer_name` holding 50 TON. The node itself ([`World::open`]) is
/// kept apart so a test can drop it (a crash) and open it again (a restart).
pub struct World {
    pub emu: Emulator,
    pub ledger: PathBuf,
    pub owner: String,
    pub acct: AccountId,
    pub payer_name: &'static str,
    /// The payer wallet's address.
    pub payer: String,
    _dir: tempfile::TempDir,
}

impl World {
    /// The world and its node, opened; `None` when the emulator is skipped (outside CI only).
    pub fn new(tag: u8, payer_name: &'static str) -> Option<(World, Payments)> {
        let emu = Emulator::start()?;
        let dir = tempfile::tempdir().expect("temp dir");
        let payer = emu.payer(payer_name, 50 * TON);
        let w = World {
            ledger: dir.path().join("ledger"),
            owner: owner_address(tag),
            acct: account(tag),
            emu,
            payer_name,
            payer,
            _dir: dir,
        };
        let p = w.open();
        Some((w, p))
    }

    /// Opens the node on this world's ledger, as a (re)started node does.
    pub fn open(&self) -> Payments {
        open(&self.ledger, &self.emu.url(), &self.owner)
    }

    /// The payer sends `amount` to the node's deposit address for this world's account.
    pub fn deposit(&self, p: &Payments, amount: u64) {
        self.emu.deposit(
            self.payer_name,
            &p.wallet_addresses().deposit,
            amount,
            &self.acct.deposit_comment(),
        );
    }

    /// Deposits `amount` and lets the node credit it.
    pub async fn fund(&self, p: &Payments, amount: u64) {
        self.deposit(p, amount);
        p.poll_deposits().await.expect("polling deposits");
    }
}
