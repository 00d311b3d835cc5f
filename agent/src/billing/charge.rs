//! One request's charge: the hold from [`super::Billing::authorize`] until it is debited
//! (exact usage, signed receipt) or released.
//!
//! Invariant: the hold ends exactly once. [`Charge::settle`] and [`Charge::release`] consume
//! the charge; if it is dropped instead (the client went away and hyper dropped the handler or
//! the stream body), `Drop` debits what the engine generated: the prompt plus the completion
//! tokens counted in [`Charge::progress`]. A request dropped before its first completion token
//! produced nothing and is released, not charged.
//!
//! Hashes in the receipt: `request_hash` is the SHA-256 of the request body as received;
//! `response_hash` is the SHA-256 of the generated text (for a dropped stream, of the text the
//! body had taken from the engine), so a client can check both against what it sent and got.

use super::{Billing, BillingError};
use crate::engine;
use cocoon_payments::{DebitRequest, Hold, Receipt, Usage};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

pub struct Charge {
    billing: Arc<Billing>,
    /// `None` once settled or released.
    hold: Option<Hold>,
    prompt_tokens: u32,
    progress: Arc<AtomicU32>,
    request_hash: [u8; 32],
    response: Sha256,
}

impl Charge {
    pub(super) fn new(
        billing: Arc<Billing>,
        hold: Hold,
        prompt_tokens: u32,
        request_hash: [u8; 32],
    ) -> Charge {
        Charge {
            billing,
            hold: Some(hold),
            prompt_tokens,
            progress: Arc::new(AtomicU32::new(0)),
            request_hash,
            response: Sha256::new(),
        }
    }

    /// The counter the engine updates with the completion tokens sampled so far.
    pub fn progress(&self) -> Arc<AtomicU32> {
        self.progress.clone()
    }

    /// The nanoTON held for this request.
    pub fn held(&self) -> u64 {
        self.hold.as_ref().map(|h| h.amount).unwrap_or(0)
    }

    /// Feeds generated text into the response hash.
    pub fn observe_text(&mut self, text: &str) {
        self.response.update(text.as_bytes());
    }

    /// Debits the engine's exact usage and returns the signed receipt. The ledger append
    /// (with fsync) runs on the blocking pool; it completes even if the caller is dropped.
    pub async fn settle(mut self, usage: engine::Usage) -> Result<Receipt, BillingError> {
        let job = self.debit_job(usage, false);
        match tokio::task::spawn_blocking(job).await {
            Ok(r) => r,
            Err(e) => Err(BillingError::Task(e.to_string())),
        }
    }

    /// Ends the hold without charging (the request failed before producing anything).
    pub fn release(mut self) {
        self.release_hold();
    }

    fn release_hold(&mut self) {
        if let Some(hold) = self.hold.take() {
            if let Err(e) = self.billing.payments.release(hold) {
                tracing::error!(error = %e, "releasing a hold failed");
            }
        }
    }

    /// Takes the hold out and returns the blocking debit (a no-op error if already ended).
    fn debit_job(
        &mut self,
        usage: engine::Usage,
        partial: bool,
    ) -> impl FnOnce() -> Result<Receipt, BillingError> + Send + 'static {
        let hold = self.hold.take();
        let billing = self.billing.clone();
        let req = DebitRequest {
            usage: Usage {
                prompt_tokens: u64::from(usage.prompt_tokens),
                completion_tokens: u64::from(usage.completion_tokens),
            },
            request_hash: self.request_hash,
            response_hash: std::mem::take(&mut self.response).finalize().into(),
            model: billing.model.clone(),
        };
        move || {
            let Some(hold) = hold else {
                return Err(BillingError::Task("the charge already ended".into()));
            };
            let c = &billing.counters;
            match billing.payments.debit(hold, &req) {
                Ok(receipt) => {
                    billing.remember(&receipt);
                    c.debits.fetch_add(1, Ordering::Relaxed);
                    c.debited_nanoton
                        .fetch_add(receipt.body.cost, Ordering::Relaxed);
                    if partial {
                        c.partial_debits.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::info!(
                        account = %receipt.body.account,
                        cost = receipt.body.cost,
                        prompt_tokens = receipt.body.prompt_tokens,
                        completion_tokens = receipt.body.completion_tokens,
                        ledger_seq = receipt.body.ledger_seq,
                        partial,
                        "debited"
                    );
                    Ok(receipt)
                }
                Err(e) => {
                    c.debit_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, partial, "debit failed; the request is not charged");
                    Err(BillingError::Debit(e))
                }
            }
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if self.hold.is_none() {
            return;
        }
        let completion = self.progress.load(Ordering::Relaxed);
        if completion == 0 {
            self.release_hold();
            return;
        }
        let usage = engine::Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: completion,
        };
        let job = self.debit_job(usage, true);
        // Off the I/O thread when there is a runtime (the append fsyncs); inline otherwise.
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(move || {
                    let _ = job();
                });
            }
            Err(_) => {
                let _ = job();
            }
        }
    }
}
