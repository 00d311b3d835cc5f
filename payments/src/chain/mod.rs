//! Chain access: a client for the toncenter HTTP API v2 subset the node needs.

pub mod client;
pub mod types;

pub use client::{ChainError, TonClient};
pub use types::{AccountStatus, AddressInfo, ChainMessage, ChainTransaction};
