//! What the ledger records. Every record is one JSON object in one framed log entry.

use serde::{Deserialize, Serialize};

use crate::account::AccountId;
use crate::hexser::{h32, h64};
use crate::receipt::ModelIdentity;

/// A chain transaction's identity: logical time and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TxKey {
    pub lt: u64,
    #[serde(with = "h32")]
    pub hash: [u8; 32],
}

/// What an outgoing transfer is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TransferKind {
    /// Earnings to the owner address.
    Payout,
    /// An account's unspent balance back to the address it asked for; `fee` is kept as
    /// earned to pay for the transfer.
    Refund { account: AccountId, fee: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferIntent {
    pub kind: TransferKind,
    /// Destination, raw form `0:<hex>`.
    pub destination: String,
    pub amount: u64,
    pub wallet_seqno: u32,
    /// Chain time after which the message can no longer be accepted.
    pub valid_until: u32,
    #[serde(with = "h32")]
    pub message_hash: [u8; 32],
    /// The signed external message (base64 BoC), kept so it can be resent unchanged.
    pub boc: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// An incoming transfer, credited to `account` or, without a valid account comment,
    /// kept as unattributed. Each chain transaction is recorded at most once.
    Deposit {
        tx: TxKey,
        account: Option<AccountId>,
        amount: u64,
        /// Fee the node wallet paid to receive it (charged to earnings).
        fee: u64,
        source: String,
        comment: String,
    },
    /// A metered request paid from an account; holds everything its receipt signs.
    Debit {
        account: AccountId,
        cost: u64,
        prompt_tokens: u64,
        completion_tokens: u64,
        prompt_nanoton_per_token: u64,
        completion_nanoton_per_token: u64,
        #[serde(with = "h32")]
        request_hash: [u8; 32],
        #[serde(with = "h32")]
        response_hash: [u8; 32],
        model: ModelIdentity,
        balance_after: u64,
        #[serde(with = "h64")]
        signature: [u8; 64],
    },
    /// Written (and fsynced) before the transfer's message is sent. Its id is its seq.
    TransferIntent(TransferIntent),
    /// `sendBoc` returned OK for intent `intent` (informational: the chain decides).
    TransferSubmitted { intent: u64 },
    /// The chain executed the intent's message and the transfer left the wallet.
    TransferConfirmed { intent: u64, tx: TxKey, fee: u64 },
    /// The chain executed the message (seqno consumed) but the transfer did not leave the
    /// wallet (e.g. the action phase failed): the amount is owed again; the fee was paid.
    TransferFailed { intent: u64, tx: TxKey, fee: u64 },
    /// The message can never be executed (its seqno is unused and it expired): nothing left.
    TransferCancelled { intent: u64, reason: String },
    /// Newest wallet transaction already scanned for deposits.
    DepositCursor { tx: TxKey },
}
