//! [`Payments`]: the money path the agent uses.
//!
//! * Serving: [`Payments::authorize`] before inference, [`Payments::debit`] after it (or
//!   [`Payments::release`]). Both are local: they never wait for the chain, so an unreachable
//!   chain never stops serving.
//! * Chain work ([`Payments::tick`]): credit new deposits exactly once, reconcile the open
//!   transfer intent, pay out earnings above the threshold. Refunds on request.
//!
//! Transfer safety (at most once, nothing dropped): every outgoing transfer is written to the
//! ledger as an intent (seqno, amount, destination, message hash, the signed message) before
//! it is sent, and only one intent is open at a time. An open intent is resolved only from
//! chain evidence ([`Payments::reconcile`]):
//! * the wallet has a transaction whose inbound message hash is the intent's: confirmed if it
//!   sent `amount` to `destination`, otherwise failed (amount owed again, fee charged);
//! * the wallet's seqno is still the intent's seqno and the chain time has reached
//!   `valid_until`: the message can never execute, so it is cancelled (amount owed again);
//! * the seqno is unchanged and the message has not expired: the same signed message is
//!   resent (idempotent: a wallet executes one message per seqno);
//! * the seqno moved past the intent but no transaction carries our message: something else
//!   used the wallet key; transfers stop with [`PaymentsError::Reconcile`] for an operator.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine;
use tonlib_core::TonAddress;

use crate::account::AccountId;
use crate::chain::{AccountStatus, ChainError, ChainTransaction, TonClient};
use crate::config::{ChainConfig, PayoutConfig, PriceConfig};
use crate::keys::{KeyError, KeyProvider, NodeKey};
use crate::ledger::record::{Record, TransferIntent, TransferKind, TxKey};
use crate::ledger::state::Totals;
use crate::ledger::{Ledger, LedgerError};
use crate::receipt::{DebitRequest, PriceOverflow, Receipt, ReceiptBody};
use crate::wallet::{parse_address, NodeWallet, TransferSpec, WalletAddresses, WalletError};

/// Transactions fetched per getTransactions page (default).
const PAGE: u32 = 50;
/// Most pages read in one deposit scan or reconciliation search.
const MAX_PAGES: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    /// The account cannot pay `price`; the HTTP layer answers 402.
    #[error("insufficient funds: balance {balance} nanoTON, price {price} nanoTON")]
    InsufficientFunds { balance: u64, price: u64 },
    #[error("no authorization hold with id {0}")]
    UnknownHold(u64),
    #[error(transparent)]
    Price(#[from] PriceOverflow),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Wallet(#[from] WalletError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("invalid payments config: {0}")]
    Config(String),
    #[error("transfer intent {intent} is still unresolved on chain; try again later")]
    TransferInFlight { intent: u64 },
    #[error("account {account} has {available} nanoTON, not more than the refund fee {fee}")]
    NothingToRefund {
        account: AccountId,
        available: u64,
        fee: u64,
    },
    #[error("account {account} has requests in progress; refund after they finish")]
    AccountBusy { account: AccountId },
    #[error("nothing to pay out: payable {payable} nanoTON, gas reserve {reserve}")]
    NothingToPay { payable: i128, reserve: u64 },
    #[error("node wallet balance {balance} cannot cover {amount} plus the gas reserve {reserve}")]
    WalletUnderfunded {
        balance: u64,
        amount: u64,
        reserve: u64,
    },
    #[error("reconciling intent {intent}: {detail}")]
    Reconcile { intent: u64, detail: String },
    #[error("simulated crash at {0:?} (test hook)")]
    SimulatedCrash(CrashPoint),
}

/// Test hook: where a simulated crash can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// After the transfer intent is durable, before the message is sent.
    AfterIntent,
    /// After the message is sent, before the outcome is recorded.
    AfterSend,
    /// After the first new deposit of a scan is recorded, before the rest and the cursor.
    AfterFirstDeposit,
}

/// Test hook: what happens at the crash point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashAction {
    /// Return [`PaymentsError::SimulatedCrash`]; the caller then drops the instance.
    ReturnError,
    /// Abort the process on the spot (for tests that run the engine in a child process).
    Abort,
}

/// Funds reserved by [`Payments::authorize`] until [`Payments::debit`] or [`Payments::release`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a hold must be debited or released"]
pub struct Hold {
    pub id: u64,
    pub account: AccountId,
    pub amount: u64,
}

/// The state of an outgoing transfer after a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferStatus {
    Confirmed {
        tx: TxKey,
        fee: u64,
    },
    /// Executed, but no value left the wallet; the amount is owed again.
    Failed {
        tx: TxKey,
        fee: u64,
    },
    Cancelled {
        reason: String,
    },
    /// Sent (or being resent), not yet seen on chain.
    Pending,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferOutcome {
    pub intent: u64,
    pub amount: u64,
    pub destination: String,
    pub status: TransferStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DepositScan {
    /// New deposits recorded: (account or unattributed, amount).
    pub credited: Vec<(Option<AccountId>, u64)>,
    /// Transactions seen again and skipped because they were already recorded.
    pub already_recorded: usize,
    /// Incoming transfers that bounced back (not deposits).
    pub bounced: usize,
}

#[derive(Debug, Default)]
pub struct TickReport {
    pub reconciled: Option<TransferOutcome>,
    pub deposits: Option<DepositScan>,
    pub payout: Option<TransferOutcome>,
    /// Errors of the chain steps; serving is unaffected by them.
    pub errors: Vec<String>,
}

struct Core {
    ledger: Ledger,
    holds: HashMap<u64, Hold>,
    held: HashMap<AccountId, u64>,
    next_hold: u64,
}

impl Core {
    fn available(&self, account: &AccountId) -> u64 {
        let bal = self.ledger.state().balance(account);
        bal.saturating_sub(self.held.get(account).copied().unwrap_or(0))
    }

    fn drop_hold(&mut self, id: u64) -> Result<Hold, PaymentsError> {
        let h = self
            .holds
            .remove(&id)
            .ok_or(PaymentsError::UnknownHold(id))?;
        if let Some(v) = self.held.get_mut(&h.account) {
            *v -= h.amount;
            if *v == 0 {
                self.held.remove(&h.account);
            }
        }
        Ok(h)
    }

    fn open_intent(&self) -> Option<(u64, TransferIntent)> {
        self.ledger
            .state()
            .open_intents
            .iter()
            .next()
            .map(|(k, v)| (*k, v.clone()))
    }
}

/// Everything payments-related the agent needs. `Send + Sync`; share it in an `Arc`.
pub struct Payments {
    core: Mutex<Core>,
    transfer_lock: tokio::sync::Mutex<()>,
    chain: TonClient,
    key: NodeKey,
    wallet: NodeWallet,
    prices: PriceConfig,
    payout: PayoutConfig,
    owner: TonAddress,
    crash: Mutex<Option<(CrashPoint, CrashAction)>>,
    page: AtomicU32,
}

impl Payments {
    /// Opens (or creates) the ledger at `ledger_path` and replays it.
    pub fn open(
        ledger_path: &Path,
        keys: &dyn KeyProvider,
        prices: PriceConfig,
        payout: PayoutConfig,
        chain: ChainConfig,
    ) -> Result<Payments, PaymentsError> {
        let owner = parse_address(&payout.owner_address)
            .map_err(|e| PaymentsError::Config(format!("owner_address: {e}")))?;
        if payout.message_ttl_secs == 0 {
            return Err(PaymentsError::Config(
                "message_ttl_secs must be positive".into(),
            ));
        }
        let key = keys.node_key()?;
        let wallet = NodeWallet::new(&key)?;
        let chain = TonClient::new(chain)?;
        let ledger = Ledger::open(ledger_path)?;
        if let Some(reason) = &ledger.recovery().torn_reason {
            tracing::warn!(
                ledger = %ledger_path.display(),
                bytes = ledger.recovery().truncated_bytes,
                reason = %reason,
                "truncated a torn last ledger record"
            );
        }
        Ok(Payments {
            core: Mutex::new(Core {
                ledger,
                holds: HashMap::new(),
                held: HashMap::new(),
                next_hold: 1,
            }),
            transfer_lock: tokio::sync::Mutex::new(()),
            chain,
            key,
            wallet,
            prices,
            payout,
            owner,
            crash: Mutex::new(None),
            page: AtomicU32::new(PAGE),
        })
    }

    fn core(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock cannot leave the ledger half-applied (apply
        // validates first), so the state behind a poisoned mutex is still consistent.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[doc(hidden)]
    /// Test hook: crash at `point` the next time it is reached.
    pub fn set_crash_point(&self, point: Option<(CrashPoint, CrashAction)>) {
        *self.crash.lock().unwrap_or_else(|p| p.into_inner()) = point;
    }

    #[doc(hidden)]
    /// Test hook: transactions per history page (small pages exercise the overlap handling).
    pub fn set_scan_page_size(&self, n: u32) {
        self.page.store(
            n.clamp(1, crate::chain::client::MAX_TX_PAGE),
            Ordering::Relaxed,
        );
    }

    fn crash_point(&self, here: CrashPoint) -> Result<(), PaymentsError> {
        let mut c = self.crash.lock().unwrap_or_else(|p| p.into_inner());
        match *c {
            Some((p, action)) if p == here => {
                *c = None;
                if action == CrashAction::Abort {
                    std::process::abort();
                }
                Err(PaymentsError::SimulatedCrash(here))
            }
            _ => Ok(()),
        }
    }

    pub fn node_public_key(&self) -> [u8; 32] {
        self.key.public_key()
    }

    pub fn wallet_addresses(&self) -> WalletAddresses {
        self.wallet.addresses()
    }

    pub fn wallet(&self) -> &NodeWallet {
        &self.wallet
    }

    pub fn prices(&self) -> PriceConfig {
        self.prices
    }

    pub fn chain(&self) -> &TonClient {
        &self.chain
    }

    /// Spendable balance of an account (its balance less open holds).
    pub fn balance(&self, account: &AccountId) -> u64 {
        self.core().available(account)
    }

    pub fn totals(&self) -> Totals {
        self.core().ledger.state().totals.clone()
    }

    /// Checks the ledger's accounting identities.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.core().ledger.state().check()
    }

    pub fn open_intent(&self) -> Option<(u64, TransferIntent)> {
        self.core().open_intent()
    }

    /// Reserves `max_cost` of the account's balance for one request.
    pub fn authorize(&self, account: &AccountId, max_cost: u64) -> Result<Hold, PaymentsError> {
        let mut core = self.core();
        let available = core.available(account);
        if max_cost > available {
            return Err(PaymentsError::InsufficientFunds {
                balance: available,
                price: max_cost,
            });
        }
        let id = core.next_hold;
        core.next_hold += 1;
        *core.held.entry(*account).or_insert(0) += max_cost;
        let hold = Hold {
            id,
            account: *account,
            amount: max_cost,
        };
        core.holds.insert(id, hold.clone());
        Ok(hold)
    }

    /// Gives a hold back without charging (the request failed before producing output).
    pub fn release(&self, hold: Hold) -> Result<(), PaymentsError> {
        self.core().drop_hold(hold.id).map(|_| ())
    }

    /// Charges `usage x price` for a finished request, durably, and returns the signed
    /// receipt. The hold is consumed either way; on `InsufficientFunds` nothing is charged.
    pub fn debit(&self, hold: Hold, req: &DebitRequest) -> Result<Receipt, PaymentsError> {
        let cost = req.usage.cost(&self.prices)?;
        if req.model.name.len() > crate::receipt::MAX_MODEL_NAME {
            return Err(PaymentsError::Config(format!(
                "model name longer than {} bytes",
                crate::receipt::MAX_MODEL_NAME
            )));
        }
        let mut core = self.core();
        let hold = core.drop_hold(hold.id)?;
        let account = hold.account;
        let available = core.available(&account);
        if cost > available {
            return Err(PaymentsError::InsufficientFunds {
                balance: available,
                price: cost,
            });
        }
        let balance_after = core.ledger.state().balance(&account) - cost;
        let body = ReceiptBody {
            node_public_key: self.key.public_key(),
            account,
            ledger_seq: core.ledger.next_seq(),
            request_hash: req.request_hash,
            response_hash: req.response_hash,
            model: req.model.clone(),
            prompt_tokens: req.usage.prompt_tokens,
            completion_tokens: req.usage.completion_tokens,
            prompt_nanoton_per_token: self.prices.prompt_nanoton_per_token,
            completion_nanoton_per_token: self.prices.completion_nanoton_per_token,
            cost,
            balance_after,
        };
        let receipt = body.sign(&self.key);
        let b = &receipt.body;
        let seq = core.ledger.append(&Record::Debit {
            account,
            cost,
            prompt_tokens: b.prompt_tokens,
            completion_tokens: b.completion_tokens,
            prompt_nanoton_per_token: b.prompt_nanoton_per_token,
            completion_nanoton_per_token: b.completion_nanoton_per_token,
            request_hash: b.request_hash,
            response_hash: b.response_hash,
            model: b.model.clone(),
            balance_after,
            signature: receipt.signature,
        })?;
        debug_assert_eq!(seq, receipt.body.ledger_seq);
        Ok(receipt)
    }

    // ---------------------------------------------------------------- deposits

    /// Reads the node wallet's new transactions and records each incoming transfer once.
    /// Nothing is recorded if any page cannot be read (the next scan starts over).
    pub async fn poll_deposits(&self) -> Result<DepositScan, PaymentsError> {
        let cursor = self.core().ledger.state().deposit_cursor;
        let addr = self.wallet.address().clone();
        let mut collected: Vec<ChainTransaction> = Vec::new();
        let mut keys: HashSet<TxKey> = HashSet::new();
        let mut from = None;
        let mut reached_cursor = false;
        for _ in 0..MAX_PAGES {
            let n = self.page.load(Ordering::Relaxed);
            let page = self.chain.get_transactions(&addr, n, from).await?;
            let full = page.len() == n as usize;
            let last = page.last().map(|t| t.key);
            for tx in page {
                if cursor.is_some_and(|c| tx.key.lt <= c.lt) {
                    reached_cursor = true;
                    break;
                }
                // Pages overlap by one transaction (toncenter's `lt`/`hash` is inclusive).
                if keys.insert(tx.key) {
                    collected.push(tx);
                }
            }
            if reached_cursor || !full || last == from {
                break;
            }
            from = last;
        }
        let mut scan = DepositScan::default();
        let newest = collected.first().map(|t| t.key);
        let mut first = true;
        for tx in collected.iter().rev() {
            let Some(m) = &tx.in_msg else { continue };
            let Some(source) = &m.source else { continue }; // our own external messages
            if m.value == 0 {
                continue;
            }
            if !tx.out_msgs.is_empty() || m.bounced {
                // The wallet bounced it back (e.g. a bounceable transfer to the undeployed
                // wallet), or it is a bounce of ours: not a deposit.
                scan.bounced += 1;
                continue;
            }
            let mut core = self.core();
            if core.ledger.state().seen_deposits.contains(&tx.key) {
                scan.already_recorded += 1;
                continue;
            }
            let comment = m.comment.clone().unwrap_or_default();
            let account = AccountId::from_deposit_comment(&comment);
            core.ledger.append(&Record::Deposit {
                tx: tx.key,
                account,
                amount: m.value,
                fee: tx.fee,
                source: source.to_hex(),
                comment: comment.chars().take(200).collect(),
            })?;
            drop(core);
            scan.credited.push((account, m.value));
            if first {
                first = false;
                self.crash_point(CrashPoint::AfterFirstDeposit)?;
            }
        }
        if let Some(tx) = newest {
            let mut core = self.core();
            if core.ledger.state().deposit_cursor != Some(tx) {
                core.ledger.append(&Record::DepositCursor { tx })?;
            }
        }
        Ok(scan)
    }

    // ---------------------------------------------------------------- transfers

    /// Sends an account's unspent balance, less the refund fee, to `destination`.
    pub async fn refund(
        &self,
        account: &AccountId,
        destination: &str,
    ) -> Result<TransferOutcome, PaymentsError> {
        let dest = parse_address(destination)?;
        let fee = self.payout.refund_fee;
        let account = *account;
        self.transfer(move |core: &Core| {
            if core.held.contains_key(&account) {
                return Err(PaymentsError::AccountBusy { account });
            }
            let available = core.available(&account);
            if available <= fee {
                return Err(PaymentsError::NothingToRefund {
                    account,
                    available,
                    fee,
                });
            }
            Ok((
                TransferKind::Refund { account, fee },
                dest.clone(),
                available - fee,
                format!("cocoon:refund:{}", &account.to_string()[..16]),
            ))
        })
        .await
    }

    /// Pays the payable earnings less the gas reserve to the owner, whatever the amount.
    pub async fn payout_now(&self) -> Result<TransferOutcome, PaymentsError> {
        self.payout_above(1).await
    }

    /// Pays out if the payable earnings less the gas reserve reach the threshold.
    pub async fn payout_if_due(&self) -> Result<Option<TransferOutcome>, PaymentsError> {
        match self.payout_above(self.payout.payout_threshold.max(1)).await {
            Ok(o) => Ok(Some(o)),
            Err(PaymentsError::NothingToPay { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn payout_above(&self, minimum: u64) -> Result<TransferOutcome, PaymentsError> {
        let reserve = self.payout.gas_reserve;
        let owner = self.owner.clone();
        self.transfer(move |core: &Core| {
            let payable = core.ledger.state().totals.payable;
            let amount = payable - i128::from(reserve);
            if amount < i128::from(minimum) {
                return Err(PaymentsError::NothingToPay { payable, reserve });
            }
            let amount = u64::try_from(amount).unwrap_or(u64::MAX);
            Ok((
                TransferKind::Payout,
                owner.clone(),
                amount,
                "cocoon:payout".to_string(),
            ))
        })
        .await
    }

    /// The common transfer path: resolve any open intent, plan, record the intent, send.
    async fn transfer<F>(&self, plan: F) -> Result<TransferOutcome, PaymentsError>
    where
        F: Fn(&Core) -> Result<(TransferKind, TonAddress, u64, String), PaymentsError>,
    {
        let _serial = self.transfer_lock.lock().await;
        if let Some(open) = self.reconcile_locked().await? {
            if open.status == TransferStatus::Pending {
                return Err(PaymentsError::TransferInFlight {
                    intent: open.intent,
                });
            }
        }
        // Check the plan before touching the chain, then again under the lock below.
        plan(&self.core())?;
        let addr = self.wallet.address().clone();
        let info = self.chain.get_address_information(&addr).await?;
        let deployed = info.status == AccountStatus::Active;
        let seqno = if deployed {
            self.chain
                .get_seqno(&addr)
                .await?
                .ok_or_else(|| ChainError::Malformed {
                    method: "runGetMethod",
                    detail: "active wallet has no seqno".into(),
                })?
        } else {
            0
        };
        let (intent_id, intent) = {
            let mut core = self.core();
            let (kind, dest, amount, comment) = plan(&core)?;
            // Leave enough for the fee so the transfer does not fail on chain: refunds carry
            // their own fee, payouts leave the gas reserve behind.
            let reserve = match kind {
                TransferKind::Refund { fee, .. } => fee,
                TransferKind::Payout => self.payout.gas_reserve,
            };
            if info.balance < amount.saturating_add(reserve) {
                return Err(PaymentsError::WalletUnderfunded {
                    balance: info.balance,
                    amount,
                    reserve,
                });
            }
            let valid_until = info.sync_utime.saturating_add(self.payout.message_ttl_secs);
            let signed = self.wallet.build_transfer(&TransferSpec {
                seqno,
                valid_until,
                destination: dest.clone(),
                amount,
                comment,
                deploy: !deployed,
            })?;
            let intent = TransferIntent {
                kind,
                destination: dest.to_hex(),
                amount,
                wallet_seqno: seqno,
                valid_until,
                message_hash: signed.message_hash,
                boc: base64::engine::general_purpose::STANDARD.encode(&signed.boc),
            };
            let id = core
                .ledger
                .append(&Record::TransferIntent(intent.clone()))?;
            (id, intent)
        };
        self.crash_point(CrashPoint::AfterIntent)?;
        self.submit(intent_id, &intent).await;
        self.crash_point(CrashPoint::AfterSend)?;
        match self.reconcile_locked().await? {
            Some(o) => Ok(o),
            None => Err(PaymentsError::Reconcile {
                intent: intent_id,
                detail: "intent vanished".into(),
            }),
        }
    }

    /// Sends an intent's message. Errors are logged, not returned: whether it executed is
    /// decided by reconciliation, never by the send call's answer.
    async fn submit(&self, id: u64, intent: &TransferIntent) {
        let boc = match base64::engine::general_purpose::STANDARD.decode(&intent.boc) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(intent = id, error = %e, "intent holds an undecodable message");
                return;
            }
        };
        match self.chain.send_boc(&boc).await {
            Ok(()) => {
                let mut core = self.core();
                let still_open = core.ledger.state().open_intents.contains_key(&id);
                if still_open {
                    if let Err(e) = core
                        .ledger
                        .append(&Record::TransferSubmitted { intent: id })
                    {
                        tracing::error!(intent = id, error = %e, "recording submission failed");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(intent = id, error = %e, "sending transfer failed; will reconcile")
            }
        }
    }

    /// Resolves the open transfer intent from chain evidence (see the module docs).
    /// `Ok(None)` when no intent was open.
    pub async fn reconcile(&self) -> Result<Option<TransferOutcome>, PaymentsError> {
        let _serial = self.transfer_lock.lock().await;
        self.reconcile_locked().await
    }

    async fn reconcile_locked(&self) -> Result<Option<TransferOutcome>, PaymentsError> {
        let Some((id, intent)) = self.core().open_intent() else {
            return Ok(None);
        };
        let outcome = |status| TransferOutcome {
            intent: id,
            amount: intent.amount,
            destination: intent.destination.clone(),
            status,
        };
        let addr = self.wallet.address().clone();
        // Order matters: chain time first, then seqno, then history (see module docs).
        let info = self.chain.get_address_information(&addr).await?;
        let seqno = match info.status {
            AccountStatus::Active => self.chain.get_seqno(&addr).await?.unwrap_or(0),
            _ => 0,
        };
        if seqno > intent.wallet_seqno {
            let Some(tx) = self.find_wallet_tx(&intent).await? else {
                return Err(PaymentsError::Reconcile {
                    intent: id,
                    detail: format!(
                        "wallet seqno is {seqno} (intent used {}), but no transaction carries message {}",
                        intent.wallet_seqno,
                        hex::encode(intent.message_hash)
                    ),
                });
            };
            let dest = parse_address(&intent.destination)?;
            let sent = tx
                .out_msgs
                .iter()
                .find(|m| m.destination.as_ref() == Some(&dest) && m.value == intent.amount);
            let fwd: u64 = tx.out_msgs.iter().map(|m| m.fwd_fee).sum();
            let fee = tx.fee.saturating_add(fwd);
            let (rec, status) = if sent.is_some() {
                (
                    Record::TransferConfirmed {
                        intent: id,
                        tx: tx.key,
                        fee,
                    },
                    TransferStatus::Confirmed { tx: tx.key, fee },
                )
            } else {
                (
                    Record::TransferFailed {
                        intent: id,
                        tx: tx.key,
                        fee,
                    },
                    TransferStatus::Failed { tx: tx.key, fee },
                )
            };
            self.core().ledger.append(&rec)?;
            return Ok(Some(outcome(status)));
        }
        if seqno < intent.wallet_seqno {
            return Err(PaymentsError::Reconcile {
                intent: id,
                detail: format!(
                    "wallet seqno {seqno} is behind the intent's {}",
                    intent.wallet_seqno
                ),
            });
        }
        if info.sync_utime >= intent.valid_until {
            let reason = format!(
                "not executed by chain time {} (valid until {}); seqno {seqno} unused",
                info.sync_utime, intent.valid_until
            );
            self.core().ledger.append(&Record::TransferCancelled {
                intent: id,
                reason: reason.clone(),
            })?;
            return Ok(Some(outcome(TransferStatus::Cancelled { reason })));
        }
        // Still executable: (re)send the same signed message.
        self.submit(id, &intent).await;
        // The local emulator (and a fast chain) may already have executed it.
        let info = self.chain.get_address_information(&addr).await?;
        if info.status == AccountStatus::Active
            && self.chain.get_seqno(&addr).await?.unwrap_or(0) > intent.wallet_seqno
        {
            return Box::pin(self.reconcile_locked()).await;
        }
        Ok(Some(outcome(TransferStatus::Pending)))
    }

    /// Searches the wallet's history (newest first) for the transaction that executed the
    /// intent's message; stops once transactions are older than the message can be.
    async fn find_wallet_tx(
        &self,
        intent: &TransferIntent,
    ) -> Result<Option<ChainTransaction>, PaymentsError> {
        let addr = self.wallet.address().clone();
        let oldest = intent
            .valid_until
            .saturating_sub(self.payout.message_ttl_secs)
            .saturating_sub(600);
        let mut from = None;
        for _ in 0..MAX_PAGES {
            let n = self.page.load(Ordering::Relaxed);
            let page = self.chain.get_transactions(&addr, n, from).await?;
            let full = page.len() == n as usize;
            let last = page.last().map(|t| t.key);
            let mut too_old = false;
            for tx in page {
                if tx
                    .in_msg
                    .as_ref()
                    .is_some_and(|m| m.source.is_none() && m.hash == intent.message_hash)
                {
                    return Ok(Some(tx));
                }
                too_old |= tx.utime < oldest;
            }
            if too_old || !full || last == from {
                break;
            }
            from = last;
        }
        Ok(None)
    }

    /// One round of chain work: reconcile, credit deposits, pay out if due. Errors are
    /// collected, not raised: an unreachable chain pauses this work and nothing else.
    pub async fn tick(&self) -> TickReport {
        let mut r = TickReport::default();
        match self.reconcile().await {
            Ok(o) => r.reconciled = o,
            Err(e) => r.errors.push(format!("reconcile: {e}")),
        }
        match self.poll_deposits().await {
            Ok(s) => r.deposits = Some(s),
            Err(e) => r.errors.push(format!("deposits: {e}")),
        }
        if r.errors.is_empty() {
            match self.payout_if_due().await {
                Ok(o) => r.payout = o,
                Err(e) => r.errors.push(format!("payout: {e}")),
            }
        }
        r
    }

    /// Runs [`Payments::tick`] every `period` until the task is dropped.
    pub async fn run(&self, period: Duration) {
        loop {
            let r = self.tick().await;
            for e in &r.errors {
                tracing::warn!(error = %e, "payments chain work paused");
            }
            tokio::time::sleep(period).await;
        }
    }
}
