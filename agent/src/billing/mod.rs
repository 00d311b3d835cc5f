//! Prepaid accounts and payments for the HTTP API, on top of `cocoon-payments`.
//!
//! * [`config`]: the `--billing FILE` settings and their measured part.
//! * [`identity`]: bearer token -> account id (`SHA-256("cocoon-account-v1\0" || token)`).
//! * [`charge`]: one request's hold, from authorization to the debit and its signed receipt.
//! * [`chain_work`]: the background task that credits deposits, reconciles and pays out.
//!
//! Invariant: every hold taken by [`Billing::authorize`] ends exactly once, as a debit of the
//! exact usage or a release; [`charge::Charge`] enforces it (its `Drop` bills what the engine
//! generated when a client goes away before the end).

pub mod chain_work;
pub mod charge;
pub mod config;
pub mod identity;

pub use charge::Charge;
pub use config::{BillingConfig, BillingConfigError, MeasuredBilling};

use cocoon_payments::engine::{TransferOutcome, TransferStatus};
use cocoon_payments::keys::FileKeyProvider;
use cocoon_payments::{AccountId, ModelIdentity, Payments, PaymentsError, Receipt, Usage};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("opening the payments ledger {path}")]
    Open {
        path: std::path::PathBuf,
        #[source]
        source: PaymentsError,
    },
    /// The account cannot cover the request's maximum cost (HTTP 402).
    #[error("insufficient funds: balance {balance} nanoTON, required {required} nanoTON")]
    InsufficientFunds { balance: u64, required: u64 },
    #[error("the request's maximum cost overflows 64-bit nanoTON")]
    Overflow,
    #[error("authorizing the request failed")]
    Authorize(#[source] PaymentsError),
    #[error("recording the debit failed")]
    Debit(#[source] PaymentsError),
    #[error("the debit task failed: {0}")]
    Task(String),
}

/// Billing counters for `/metrics`.
#[derive(Default)]
pub struct Counters {
    pub debited_nanoton: AtomicU64,
    pub debits: AtomicU64,
    /// Debits of requests whose client went away before the end.
    pub partial_debits: AtomicU64,
    pub debit_failures: AtomicU64,
    pub insufficient_funds: AtomicU64,
    pub refunds: AtomicU64,
    pub chain_errors: AtomicU64,
    pub deposits_credited: AtomicU64,
}

/// Receipts kept in memory for `GET /v1/account`, across all accounts (newest last).
const RECENT_RECEIPTS: usize = 1024;
/// Receipts one `GET /v1/account` lists.
const RECEIPTS_SHOWN: usize = 10;

/// Payments as the HTTP layer sees them. Share it in an `Arc`.
pub struct Billing {
    payments: Payments,
    model: ModelIdentity,
    pub counters: Counters,
    /// The last [`RECENT_RECEIPTS`] receipts issued since start (bounded memory; the ledger
    /// holds every debit durably).
    recent: Mutex<VecDeque<Receipt>>,
}

impl Billing {
    /// Opens the ledger (replaying it) and the node key named by `config`.
    pub fn open(
        config: &BillingConfig,
        model_name: &str,
        model_sha256: [u8; 32],
    ) -> Result<Arc<Billing>, BillingError> {
        let payments = Payments::open(
            &config.ledger,
            &FileKeyProvider::new(config.wallet_key.clone()),
            config.prices,
            config.payout.clone(),
            config.chain.clone(),
        )
        .map_err(|source| BillingError::Open {
            path: config.ledger.clone(),
            source,
        })?;
        Ok(Arc::new(Billing {
            payments,
            model: ModelIdentity {
                name: model_name.to_string(),
                sha256: model_sha256,
            },
            counters: Counters::default(),
            recent: Mutex::new(VecDeque::with_capacity(RECENT_RECEIPTS)),
        }))
    }

    pub fn payments(&self) -> &Payments {
        &self.payments
    }

    pub fn model(&self) -> &ModelIdentity {
        &self.model
    }

    /// Holds the most a request can cost: all its prompt tokens and `max_tokens` completion
    /// tokens at the configured prices. Local and fast: no chain access.
    pub fn authorize(
        self: &Arc<Self>,
        account: &AccountId,
        prompt_tokens: u32,
        max_tokens: u32,
        request_hash: [u8; 32],
    ) -> Result<Charge, BillingError> {
        let max = Usage {
            prompt_tokens: u64::from(prompt_tokens),
            completion_tokens: u64::from(max_tokens),
        };
        let required = max
            .cost(&self.payments.prices())
            .map_err(|_| BillingError::Overflow)?;
        match self.payments.authorize(account, required) {
            Ok(hold) => Ok(Charge::new(self.clone(), hold, prompt_tokens, request_hash)),
            Err(PaymentsError::InsufficientFunds { balance, price }) => {
                self.counters
                    .insufficient_funds
                    .fetch_add(1, Ordering::Relaxed);
                Err(BillingError::InsufficientFunds {
                    balance,
                    required: price,
                })
            }
            Err(e) => Err(BillingError::Authorize(e)),
        }
    }

    /// Remembers a receipt for [`Billing::account_view`].
    pub(crate) fn remember(&self, receipt: &Receipt) {
        let mut r = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if r.len() == RECENT_RECEIPTS {
            r.pop_front();
        }
        r.push_back(receipt.clone());
    }

    /// The account's newest receipts among those remembered, newest first.
    pub fn recent_receipts(&self, account: &AccountId) -> Vec<Receipt> {
        let r = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        r.iter()
            .rev()
            .filter(|x| x.body.account == *account)
            .take(RECEIPTS_SHOWN)
            .cloned()
            .collect()
    }

    /// `GET /v1/account`.
    pub fn account_view(&self, account: &AccountId) -> Value {
        let prices = self.payments.prices();
        json!({
            "object": "account",
            "account": account.to_string(),
            "balance": self.payments.balance(account),
            "unit": "nanoton",
            "deposit_address": self.payments.wallet_addresses().deposit,
            "deposit_comment": account.deposit_comment(),
            "prices": {
                "prompt_nanoton_per_token": prices.prompt_nanoton_per_token,
                "completion_nanoton_per_token": prices.completion_nanoton_per_token,
            },
            "node_public_key": hex::encode(self.payments.node_public_key()),
            "recent_receipts": self.recent_receipts(account),
        })
    }

    /// `POST /v1/account/refund`: the whole unspent balance less the refund fee.
    pub async fn refund(
        &self,
        account: &AccountId,
        to: &str,
    ) -> Result<TransferOutcome, PaymentsError> {
        let r = self.payments.refund(account, to).await;
        if matches!(
            r,
            Ok(TransferOutcome {
                status: TransferStatus::Confirmed { .. } | TransferStatus::Pending,
                ..
            })
        ) {
            self.counters.refunds.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    /// Appends the billing families in the Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        let c = &self.counters;
        let families: [(&str, &str, &AtomicU64); 8] = [
            (
                "cocoon_billing_debited_nanoton_total",
                "NanoTON debited from prepaid accounts for served tokens.",
                &c.debited_nanoton,
            ),
            (
                "cocoon_billing_debits_total",
                "Requests debited (each with a signed receipt).",
                &c.debits,
            ),
            (
                "cocoon_billing_partial_debits_total",
                "Debits of requests whose client disconnected before the end.",
                &c.partial_debits,
            ),
            (
                "cocoon_billing_debit_failures_total",
                "Debits that could not be recorded (the response failed).",
                &c.debit_failures,
            ),
            (
                "cocoon_billing_insufficient_funds_total",
                "Requests refused with 402 because the account could not cover them.",
                &c.insufficient_funds,
            ),
            (
                "cocoon_billing_refunds_total",
                "Refunds sent to the chain.",
                &c.refunds,
            ),
            (
                "cocoon_billing_chain_errors_total",
                "Failed chain work steps (deposits, reconciliation, payouts).",
                &c.chain_errors,
            ),
            (
                "cocoon_billing_deposits_credited_total",
                "Incoming transfers recorded from the chain.",
                &c.deposits_credited,
            ),
        ];
        for (name, help, v) in families {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
    }
}

/// Billing while `serve` runs: the shared [`Billing`] and its chain work task.
pub struct BillingService {
    pub billing: Arc<Billing>,
    work: chain_work::ChainWork,
}

impl BillingService {
    /// Opens the ledger and key (blocking work, off the runtime), logs the node wallet's
    /// addresses and starts the chain work. `Ok(None)` when billing is off.
    pub async fn start(
        config: &crate::config::ServeConfig,
    ) -> Result<Option<BillingService>, BillingError> {
        let Some(cfg) = config.billing.clone() else {
            tracing::info!("billing off: serving for free");
            return Ok(None);
        };
        let (model, sha) = (config.api.model_id.clone(), config.model_sha256);
        let period = cfg.period;
        let billing = tokio::task::spawn_blocking(move || Billing::open(&cfg, &model, sha))
            .await
            .map_err(|e| BillingError::Task(e.to_string()))??;
        let a = billing.payments.wallet_addresses();
        let prices = billing.payments.prices();
        tracing::info!(
            deposit_address = %a.deposit,
            raw_address = %a.raw,
            node_public_key = %hex::encode(billing.payments.node_public_key()),
            prompt_nanoton_per_token = prices.prompt_nanoton_per_token,
            completion_nanoton_per_token = prices.completion_nanoton_per_token,
            "billing on: prepaid accounts, node wallet ready"
        );
        let work = chain_work::ChainWork::spawn(billing.clone(), period);
        Ok(Some(BillingService { billing, work }))
    }

    /// Stops the chain work after its current tick (at most `grace`).
    pub async fn stop(self, grace: std::time::Duration) {
        self.work.shutdown(grace).await;
    }
}
