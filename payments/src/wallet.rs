//! The node's TON wallet: a standard wallet v4r2 contract owned by the node key.
//!
//! The wallet is deployed by its first external message, which carries the state init
//! (code + data) exactly like any new wallet on the real chain. Deposits sent to the wallet
//! before that land on the uninitialised account; payers must send them non-bounceable
//! (the `UQ...` form returned by [`WalletAddresses::deposit`]).

use std::str::FromStr;

use num_bigint::BigUint;
use tonlib_core::cell::{BagOfCells, Cell, CellBuilder, TonCellError};
use tonlib_core::message::{CommonMsgInfo, InternalMessage, TonMessage, TransferMessage};
use tonlib_core::wallet::ton_wallet::TonWallet;
use tonlib_core::wallet::versioned::DEFAULT_WALLET_ID;
use tonlib_core::wallet::wallet_version::WalletVersion;
use tonlib_core::TonAddress;

use crate::keys::NodeKey;

/// Longest text comment that fits in one cell next to the 32-bit text op.
pub const MAX_COMMENT_BYTES: usize = 123;

#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    #[error("building the wallet message failed: {0}")]
    Cell(String),
    #[error("comment is {len} bytes; at most {MAX_COMMENT_BYTES} fit in one cell")]
    CommentTooLong { len: usize },
    #[error("invalid TON address {input:?}: {reason}")]
    Address { input: String, reason: String },
}

impl From<TonCellError> for WalletError {
    fn from(e: TonCellError) -> Self {
        WalletError::Cell(e.to_string())
    }
}

/// Parses a TON address in raw (`0:<hex>`) or user-friendly (base64 / base64url) form.
pub fn parse_address(s: &str) -> Result<TonAddress, WalletError> {
    TonAddress::from_str(s).map_err(|e| WalletError::Address {
        input: s.chars().take(100).collect(),
        reason: e.to_string(),
    })
}

/// The wallet's address in the forms people and APIs use.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WalletAddresses {
    /// `0:<64 hex>`.
    pub raw: String,
    /// User-friendly bounceable (`EQ...`), for contracts.
    pub bounceable: String,
    /// User-friendly non-bounceable (`UQ...`): give this to payers for deposits.
    pub deposit: String,
}

/// One outgoing transfer to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferSpec {
    pub seqno: u32,
    pub valid_until: u32,
    pub destination: TonAddress,
    pub amount: u64,
    pub comment: String,
    /// Include the state init: needed while the wallet is not deployed yet.
    pub deploy: bool,
}

/// A signed external message, ready for `sendBoc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTransfer {
    pub boc: Vec<u8>,
    /// Hash of the external message cell: how the chain's transaction list names it.
    pub message_hash: [u8; 32],
}

#[derive(Debug, Clone)]
pub struct NodeWallet {
    inner: TonWallet,
}

impl NodeWallet {
    pub fn new(key: &NodeKey) -> Result<NodeWallet, WalletError> {
        let inner = TonWallet::new_with_params(
            WalletVersion::V4R2,
            key.ton_key_pair(),
            0,
            DEFAULT_WALLET_ID,
        )?;
        Ok(NodeWallet { inner })
    }

    pub fn address(&self) -> &TonAddress {
        &self.inner.address
    }

    pub fn addresses(&self) -> WalletAddresses {
        WalletAddresses {
            raw: self.inner.address.to_hex(),
            bounceable: self.inner.address.to_base64_url_flags(false, false),
            deposit: self.inner.address.to_base64_url_flags(true, false),
        }
    }

    /// Builds and signs a wallet v4r2 external message with one internal transfer
    /// (send mode 3: fees paid separately, errors in the action phase ignored).
    pub fn build_transfer(&self, t: &TransferSpec) -> Result<SignedTransfer, WalletError> {
        let internal = internal_transfer(&t.destination, t.amount, &t.comment)?;
        let ext = self
            .inner
            .create_external_msg(t.valid_until, t.seqno, t.deploy, [internal.to_arc()])
            .map_err(|e| WalletError::Cell(e.to_string()))?;
        serialize(ext)
    }

    /// The underlying tonlib wallet, for tests that need to build odd messages.
    pub fn tonlib_wallet(&self) -> &TonWallet {
        &self.inner
    }
}

/// Serializes an external message cell to a BoC and names it by its hash.
pub fn serialize(ext: Cell) -> Result<SignedTransfer, WalletError> {
    let mut message_hash = [0u8; 32];
    message_hash.copy_from_slice(ext.cell_hash().as_slice());
    let boc = BagOfCells::from_root(ext).serialize(true)?;
    Ok(SignedTransfer { boc, message_hash })
}

/// An internal message carrying `amount` and a text comment, non-bounceable.
pub fn internal_transfer(
    dest: &TonAddress,
    amount: u64,
    comment: &str,
) -> Result<Cell, WalletError> {
    let body = comment_cell(comment)?;
    let info = CommonMsgInfo::InternalMessage(InternalMessage {
        ihr_disabled: true,
        bounce: false,
        bounced: false,
        src: TonAddress::NULL,
        dest: dest.clone(),
        value: BigUint::from(amount),
        ihr_fee: BigUint::from(0u32),
        fwd_fee: BigUint::from(0u32),
        created_lt: 0,
        created_at: 0,
    });
    TransferMessage::new(info, body.to_arc())
        .build()
        .map_err(|e| WalletError::Cell(e.to_string()))
}

/// A text comment body: 32 zero bits then the UTF-8 bytes (single cell).
pub fn comment_cell(comment: &str) -> Result<Cell, WalletError> {
    if comment.len() > MAX_COMMENT_BYTES {
        return Err(WalletError::CommentTooLong { len: comment.len() });
    }
    Ok(CellBuilder::new()
        .store_u32(32, 0)?
        .store_slice(comment.as_bytes())?
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_have_all_forms() {
        let w = NodeWallet::new(&NodeKey::from_seed([1; 32])).unwrap();
        let a = w.addresses();
        assert!(a.raw.starts_with("0:") && a.raw.len() == 66);
        assert!(a.bounceable.starts_with("EQ"));
        assert!(a.deposit.starts_with("UQ"));
        for s in [&a.raw, &a.bounceable, &a.deposit] {
            assert_eq!(&parse_address(s).unwrap(), w.address());
        }
    }

    #[test]
    fn comment_cell_layout_and_limit() {
        let c = comment_cell("cocoon:payout").unwrap();
        let mut p = c.parser();
        assert_eq!(p.load_u32(32).unwrap(), 0);
        assert_eq!(p.load_utf8(13).unwrap(), "cocoon:payout");
        assert!(comment_cell(&"x".repeat(MAX_COMMENT_BYTES)).is_ok());
        assert!(matches!(
            comment_cell(&"x".repeat(MAX_COMMENT_BYTES + 1)),
            Err(WalletError::CommentTooLong { len: 124 })
        ));
    }

    #[test]
    fn transfer_is_signed_and_deterministic() {
        let w = NodeWallet::new(&NodeKey::from_seed([1; 32])).unwrap();
        let spec = TransferSpec {
            seqno: 0,
            valid_until: 1_000,
            destination: w.address().clone(),
            amount: 5,
            comment: "hi".into(),
            deploy: true,
        };
        let a = w.build_transfer(&spec).unwrap();
        let b = w.build_transfer(&spec).unwrap();
        assert_eq!(a, b);
        let c = w
            .build_transfer(&TransferSpec {
                deploy: false,
                ..spec
            })
            .unwrap();
        assert_ne!(a.message_hash, c.message_hash);
        assert!(c.boc.len() < a.boc.len());
    }
}
