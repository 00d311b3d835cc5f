//! The COCOON worker's money path.
//!
//! * [`keys`]: the node's Ed25519 key behind a [`keys::KeyProvider`] (a 0600 key file on the
//!   data volume, or a [`keys::SimulatedKeyProvider`] for tests and demos).
//! * [`wallet`]: the node's standard TON wallet (v4r2) built with `tonlib-core`: addresses,
//!   signed transfers, deployment by the first external message.
//! * [`account`]: prepaid account ids and the deposit comment format `cocoon:acct:<64 hex>`.
//! * [`receipt`]: metering (usage x price) and receipts signed by the node key.
//! * [`ledger`]: the durable, checksummed, append-only ledger and the state it replays into.
//! * [`chain`]: a client for the toncenter HTTP API v2 subset the node needs.
//! * [`engine`]: [`engine::Payments`], which ties them together: authorize/debit for the
//!   HTTP layer, deposit crediting, refunds and payouts with crash-safe transfer intents.
//!
//! See `docs/payments.md` for the design and the accounting invariants.

pub mod account;
pub mod chain;
pub mod config;
pub mod engine;
pub mod keys;
pub mod ledger;
pub mod receipt;
pub mod wallet;

mod hexser;

pub use account::AccountId;
pub use config::{ChainConfig, PayoutConfig, PriceConfig};
pub use engine::{Hold, Payments, PaymentsError};
pub use receipt::{DebitRequest, ModelIdentity, Receipt, Usage};
