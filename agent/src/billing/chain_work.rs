//! The background chain work: every period, one [`cocoon_payments::Payments::tick`]
//! (reconcile the open transfer intent, credit new deposits, pay out when due). The first tick
//! runs at start, so an intent left open by a crash is reconciled before anything else is sent.
//!
//! Shutdown never interrupts a tick: [`ChainWork::shutdown`] waits for the running one to end
//! (each chain call is bounded by the chain timeouts), then stops. Even an abort would leave
//! the ledger consistent (every step is an fsynced append, resolved from chain evidence on the
//! next start); waiting only avoids leaving an intent for the next start to reconcile.

use super::Billing;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Handle of the running chain work task.
pub struct ChainWork {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ChainWork {
    /// Starts the task on the current runtime.
    pub fn spawn(billing: Arc<Billing>, period: Duration) -> ChainWork {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tick(&billing).await;
                tokio::select! {
                    () = tokio::time::sleep(period) => {}
                    _ = stopped.changed() => break,
                }
            }
            tracing::info!("payments chain work stopped");
        });
        ChainWork { stop, task }
    }

    /// Lets the running tick finish (at most `grace`), then stops the task.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            tracing::warn!(
                secs = grace.as_secs(),
                "payments chain work did not finish in time; stopping it (the ledger stays consistent)"
            );
            task.abort();
        }
    }
}

async fn tick(billing: &Billing) {
    let r = billing.payments.tick().await;
    let c = &billing.counters;
    if let Some(o) = &r.reconciled {
        tracing::info!(intent = o.intent, amount = o.amount, status = ?o.status, "transfer reconciled");
    }
    if let Some(d) = &r.deposits {
        c.deposits_credited
            .fetch_add(d.credited.len() as u64, Ordering::Relaxed);
        for (account, amount) in &d.credited {
            match account {
                Some(a) => tracing::info!(account = %a, amount, "deposit credited"),
                None => tracing::warn!(
                    amount,
                    "deposit without a valid account comment kept unattributed"
                ),
            }
        }
    }
    if let Some(o) = &r.payout {
        tracing::info!(intent = o.intent, amount = o.amount, destination = %o.destination, status = ?o.status, "payout");
    }
    for e in &r.errors {
        c.chain_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %e, "payments chain work paused until the next period");
    }
}
