//! The ledger's in-memory state, rebuilt by replaying records in order.
//!
//! Accounting identities (checked by [`LedgerState::check`], all in nanoTON):
//! * `deposits = attributed + unattributed`
//! * `attributed = spent + balances + refunded + refund_fees + refunds_in_flight`
//! * `earned = spent + refund_fees = paid_out + payouts_in_flight + chain_fees + payable`
//!   where `payable` may be negative only if fees exceeded earnings.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::account::AccountId;

use super::record::{Record, TransferIntent, TransferKind, TxKey};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApplyError {
    #[error("record {seq}: deposit tx lt {lt} is already recorded")]
    DuplicateDeposit { seq: u64, lt: u64 },
    #[error("record {seq}: debit of {cost} exceeds account {account} balance {balance}")]
    Overdraw {
        seq: u64,
        account: AccountId,
        cost: u64,
        balance: u64,
    },
    #[error("record {seq}: refers to transfer intent {intent}, which is not open")]
    UnknownIntent { seq: u64, intent: u64 },
    #[error("record {seq}: a transfer intent is already open (intent {open})")]
    IntentAlreadyOpen { seq: u64, open: u64 },
    #[error("record {seq}: refund of {need} exceeds account {account} balance {balance}")]
    RefundExceedsBalance {
        seq: u64,
        account: AccountId,
        need: u64,
        balance: u64,
    },
    #[error("record {seq}: payout of {amount} exceeds the payable {payable}")]
    PayoutExceedsEarned {
        seq: u64,
        amount: u64,
        payable: i128,
    },
    #[error("record {seq}: arithmetic overflow")]
    Overflow { seq: u64 },
}

/// Totals for reporting and reconciliation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub deposits: u128,
    pub unattributed: u128,
    pub spent: u128,
    pub balances: u128,
    pub refunded: u128,
    pub refund_fees: u128,
    pub refunds_in_flight: u128,
    pub earned: u128,
    pub paid_out: u128,
    pub payouts_in_flight: u128,
    pub chain_fees: u128,
    /// Earned and not yet paid out or spent on fees (may be negative).
    pub payable: i128,
}

#[derive(Debug, Clone, Default)]
pub struct LedgerState {
    pub balances: HashMap<AccountId, u64>,
    pub seen_deposits: HashSet<TxKey>,
    /// Open transfer intents by id (at most one; kept as a map for clear reporting).
    pub open_intents: BTreeMap<u64, TransferIntent>,
    pub deposit_cursor: Option<TxKey>,
    pub totals: Totals,
    pub last_seq: u64,
}

impl LedgerState {
    pub fn balance(&self, account: &AccountId) -> u64 {
        self.balances.get(account).copied().unwrap_or(0)
    }

    /// Applies one record. Validation happens before any change, so an error leaves the
    /// state untouched (the engine validates a record this way before writing it).
    pub fn apply(&mut self, seq: u64, rec: &Record) -> Result<(), ApplyError> {
        let t = &mut self.totals;
        match rec {
            Record::Deposit {
                tx,
                account,
                amount,
                fee,
                ..
            } => {
                if self.seen_deposits.contains(tx) {
                    return Err(ApplyError::DuplicateDeposit { seq, lt: tx.lt });
                }
                let amt = u128::from(*amount);
                if let Some(a) = account {
                    let b = self.balances.get(a).copied().unwrap_or(0);
                    let nb = b.checked_add(*amount).ok_or(ApplyError::Overflow { seq })?;
                    self.balances.insert(*a, nb);
                    t.balances += amt;
                } else {
                    t.unattributed += amt;
                }
                t.deposits += amt;
                t.chain_fees += u128::from(*fee);
                t.payable -= i128::from(*fee);
                self.seen_deposits.insert(*tx);
            }
            Record::Debit { account, cost, .. } => {
                let b = self.balances.get(account).copied().unwrap_or(0);
                if *cost > b {
                    return Err(ApplyError::Overdraw {
                        seq,
                        account: *account,
                        cost: *cost,
                        balance: b,
                    });
                }
                self.balances.insert(*account, b - cost);
                let c = u128::from(*cost);
                t.balances -= c;
                t.spent += c;
                t.earned += c;
                t.payable += c as i128;
            }
            Record::TransferIntent(intent) => {
                if let Some((&open, _)) = self.open_intents.iter().next() {
                    return Err(ApplyError::IntentAlreadyOpen { seq, open });
                }
                let amt = u128::from(intent.amount);
                match &intent.kind {
                    TransferKind::Payout => {
                        if amt as i128 > t.payable {
                            return Err(ApplyError::PayoutExceedsEarned {
                                seq,
                                amount: intent.amount,
                                payable: t.payable,
                            });
                        }
                        t.payable -= amt as i128;
                        t.payouts_in_flight += amt;
                    }
                    TransferKind::Refund { account, fee } => {
                        let need = intent
                            .amount
                            .checked_add(*fee)
                            .ok_or(ApplyError::Overflow { seq })?;
                        let b = self.balances.get(account).copied().unwrap_or(0);
                        if need > b {
                            return Err(ApplyError::RefundExceedsBalance {
                                seq,
                                account: *account,
                                need,
                                balance: b,
                            });
                        }
                        self.balances.insert(*account, b - need);
                        t.balances -= u128::from(need);
                        t.refunds_in_flight += u128::from(need);
                    }
                }
                self.open_intents.insert(seq, intent.clone());
            }
            Record::TransferSubmitted { intent } => {
                if !self.open_intents.contains_key(intent) {
                    return Err(ApplyError::UnknownIntent {
                        seq,
                        intent: *intent,
                    });
                }
            }
            Record::TransferConfirmed { intent, fee, .. } => {
                let it = self
                    .open_intents
                    .remove(intent)
                    .ok_or(ApplyError::UnknownIntent {
                        seq,
                        intent: *intent,
                    })?;
                let amt = u128::from(it.amount);
                match it.kind {
                    TransferKind::Payout => {
                        t.payouts_in_flight -= amt;
                        t.paid_out += amt;
                    }
                    TransferKind::Refund { fee: rfee, .. } => {
                        t.refunds_in_flight -= amt + u128::from(rfee);
                        t.refunded += amt;
                        t.refund_fees += u128::from(rfee);
                        t.earned += u128::from(rfee);
                        t.payable += i128::from(rfee);
                    }
                }
                t.chain_fees += u128::from(*fee);
                t.payable -= i128::from(*fee);
            }
            Record::TransferFailed { intent, fee, .. } => {
                self.undo_intent(seq, *intent)?;
                let t = &mut self.totals;
                t.chain_fees += u128::from(*fee);
                t.payable -= i128::from(*fee);
            }
            Record::TransferCancelled { intent, .. } => {
                self.undo_intent(seq, *intent)?;
            }
            Record::DepositCursor { tx } => {
                self.deposit_cursor = Some(*tx);
            }
        }
        self.last_seq = seq;
        Ok(())
    }

    /// Returns an intent's amount to where it came from.
    fn undo_intent(&mut self, seq: u64, intent: u64) -> Result<(), ApplyError> {
        let it = self
            .open_intents
            .get(&intent)
            .ok_or(ApplyError::UnknownIntent { seq, intent })?;
        let amt = u128::from(it.amount);
        match &it.kind {
            TransferKind::Payout => {
                self.totals.payouts_in_flight -= amt;
                self.totals.payable += amt as i128;
            }
            TransferKind::Refund { account, fee } => {
                let need = it
                    .amount
                    .checked_add(*fee)
                    .ok_or(ApplyError::Overflow { seq })?;
                let b = self.balance(account);
                let nb = b.checked_add(need).ok_or(ApplyError::Overflow { seq })?;
                self.balances.insert(*account, nb);
                self.totals.balances += u128::from(need);
                self.totals.refunds_in_flight -= u128::from(need);
            }
        }
        self.open_intents.remove(&intent);
        Ok(())
    }

    /// Checks the accounting identities; returns a description of the first that fails.
    pub fn check(&self) -> Result<(), String> {
        let t = &self.totals;
        let sum_balances: u128 = self.balances.values().map(|&b| u128::from(b)).sum();
        if sum_balances != t.balances {
            return Err(format!(
                "balances {} != tracked {}",
                sum_balances, t.balances
            ));
        }
        let attributed = t.deposits - t.unattributed;
        let used = t.spent + t.balances + t.refunded + t.refund_fees + t.refunds_in_flight;
        if attributed != used {
            return Err(format!(
                "attributed deposits {attributed} != spent+balances+refunds {used}"
            ));
        }
        if t.earned != t.spent + t.refund_fees {
            return Err(format!(
                "earned {} != spent {} + refund fees {}",
                t.earned, t.spent, t.refund_fees
            ));
        }
        let out = (t.paid_out + t.payouts_in_flight + t.chain_fees) as i128 + t.payable;
        if t.earned as i128 != out {
            return Err(format!(
                "earned {} != paid out + in flight + fees + payable {out}",
                t.earned
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipt::ModelIdentity;

    fn deposit(lt: u64, account: Option<AccountId>, amount: u64) -> Record {
        Record::Deposit {
            tx: TxKey {
                lt,
                hash: [lt as u8; 32],
            },
            account,
            amount,
            fee: 10,
            source: String::new(),
            comment: String::new(),
        }
    }

    fn debit(account: AccountId, cost: u64) -> Record {
        Record::Debit {
            account,
            cost,
            prompt_tokens: 0,
            completion_tokens: 0,
            prompt_nanoton_per_token: 0,
            completion_nanoton_per_token: 0,
            request_hash: [0; 32],
            response_hash: [0; 32],
            model: ModelIdentity {
                name: "m".into(),
                sha256: [0; 32],
            },
            balance_after: 0,
            signature: [0; 64],
        }
    }

    fn intent(kind: TransferKind, amount: u64) -> Record {
        Record::TransferIntent(TransferIntent {
            kind,
            destination: String::new(),
            amount,
            wallet_seqno: 0,
            valid_until: 0,
            message_hash: [0; 32],
            boc: String::new(),
        })
    }

    #[test]
    fn rules_are_enforced_and_failed_records_change_nothing() {
        let a = AccountId([1; 32]);
        let mut s = LedgerState::default();
        s.apply(1, &deposit(1, Some(a), 1_000)).unwrap();
        s.apply(2, &deposit(2, None, 50)).unwrap();
        let before = s.totals.clone();
        assert!(matches!(
            s.apply(3, &deposit(1, Some(a), 1_000)),
            Err(ApplyError::DuplicateDeposit { .. })
        ));
        assert!(matches!(
            s.apply(3, &debit(a, 1_001)),
            Err(ApplyError::Overdraw { .. })
        ));
        assert_eq!(s.totals, before);
        s.apply(3, &debit(a, 400)).unwrap();
        // Payable is 400 - 20 of deposit fees.
        assert!(matches!(
            s.apply(4, &intent(TransferKind::Payout, 381),),
            Err(ApplyError::PayoutExceedsEarned { .. })
        ));
        let refund = TransferKind::Refund { account: a, fee: 5 };
        assert!(matches!(
            s.apply(4, &intent(refund.clone(), 596)),
            Err(ApplyError::RefundExceedsBalance { .. })
        ));
        s.apply(4, &intent(refund, 595)).unwrap();
        assert_eq!(s.balance(&a), 0);
        assert!(matches!(
            s.apply(5, &intent(TransferKind::Payout, 1)),
            Err(ApplyError::IntentAlreadyOpen { open: 4, .. })
        ));
        s.check().unwrap();
        // Cancelled: the balance comes back.
        s.apply(
            5,
            &Record::TransferCancelled {
                intent: 4,
                reason: "expired".into(),
            },
        )
        .unwrap();
        assert_eq!(s.balance(&a), 600);
        s.check().unwrap();
        // A payout that fails on chain owes the amount again and charges the fee.
        s.apply(6, &intent(TransferKind::Payout, 300)).unwrap();
        let tx = TxKey {
            lt: 9,
            hash: [9; 32],
        };
        s.apply(
            7,
            &Record::TransferFailed {
                intent: 6,
                tx,
                fee: 7,
            },
        )
        .unwrap();
        assert_eq!(s.totals.payable, 400 - 20 - 7);
        s.apply(8, &intent(TransferKind::Payout, 300)).unwrap();
        s.apply(
            9,
            &Record::TransferConfirmed {
                intent: 8,
                tx,
                fee: 7,
            },
        )
        .unwrap();
        assert_eq!(s.totals.paid_out, 300);
        assert_eq!(s.totals.payable, 400 - 20 - 14 - 300);
        assert!(matches!(
            s.apply(
                10,
                &Record::TransferConfirmed {
                    intent: 8,
                    tx,
                    fee: 7
                }
            ),
            Err(ApplyError::UnknownIntent { .. })
        ));
        s.check().unwrap();
    }
}
