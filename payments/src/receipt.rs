//! Metering (usage x price) and receipts signed by the node key.
//!
//! A receipt binds one debit to the request and response it paid for. Its signature covers a
//! fixed binary encoding ([`ReceiptBody::signing_bytes`]), not the JSON, so verifiers in any
//! language get the same bytes.

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::account::AccountId;
use crate::config::PriceConfig;
use crate::hexser::{h32, h64};

/// Domain separator of the receipt signature.
pub const RECEIPT_DOMAIN: &[u8] = b"cocoon-receipt-v1\0";
/// Longest model name a receipt carries.
pub const MAX_MODEL_NAME: usize = 256;

/// Tokens one request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("price of {usage:?} at {prices:?} overflows 64-bit nanoTON")]
pub struct PriceOverflow {
    pub usage: Usage,
    pub prices: PriceConfig,
}

impl Usage {
    /// Cost in nanoTON: `prompt x prompt price + completion x completion price`, checked.
    pub fn cost(&self, prices: &PriceConfig) -> Result<u64, PriceOverflow> {
        let overflow = || PriceOverflow {
            usage: *self,
            prices: *prices,
        };
        let p = self
            .prompt_tokens
            .checked_mul(prices.prompt_nanoton_per_token)
            .ok_or_else(overflow)?;
        let c = self
            .completion_tokens
            .checked_mul(prices.completion_nanoton_per_token)
            .ok_or_else(overflow)?;
        p.checked_add(c).ok_or_else(overflow)
    }
}

/// Which model served the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelIdentity {
    pub name: String,
    /// SHA-256 of the model file, as measured.
    #[serde(with = "h32")]
    pub sha256: [u8; 32],
}

/// What the HTTP layer hands to [`crate::Payments::debit`] after a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebitRequest {
    pub usage: Usage,
    pub request_hash: [u8; 32],
    pub response_hash: [u8; 32],
    pub model: ModelIdentity,
}

/// The signed part of a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptBody {
    #[serde(with = "h32")]
    pub node_public_key: [u8; 32],
    pub account: AccountId,
    /// Sequence number of the ledger record that holds this debit.
    pub ledger_seq: u64,
    #[serde(with = "h32")]
    pub request_hash: [u8; 32],
    #[serde(with = "h32")]
    pub response_hash: [u8; 32],
    pub model: ModelIdentity,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub prompt_nanoton_per_token: u64,
    pub completion_nanoton_per_token: u64,
    /// Total charged, nanoTON.
    pub cost: u64,
    /// The account's balance after this debit, nanoTON.
    pub balance_after: u64,
}

/// A receipt: the body and the node's Ed25519 signature over [`ReceiptBody::signing_bytes`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    #[serde(flatten)]
    pub body: ReceiptBody,
    #[serde(with = "h64")]
    pub signature: [u8; 64],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReceiptError {
    #[error("receipt was issued by node key {found}, expected {expected}")]
    WrongNode { expected: String, found: String },
    #[error("receipt node key is not a valid Ed25519 point")]
    BadKey,
    #[error("receipt signature does not verify")]
    BadSignature,
    #[error("receipt cost {cost} does not equal its token counts x prices")]
    CostMismatch { cost: u64 },
    #[error("receipt model name is longer than {MAX_MODEL_NAME} bytes")]
    ModelNameTooLong,
}

impl ReceiptBody {
    /// The exact bytes that are signed: domain, then every field in declaration order;
    /// integers big-endian u64, hashes raw 32 bytes, the model name u32-BE length-prefixed.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(RECEIPT_DOMAIN.len() + 260 + self.model.name.len());
        b.extend_from_slice(RECEIPT_DOMAIN);
        b.extend_from_slice(&self.node_public_key);
        b.extend_from_slice(&self.account.0);
        b.extend_from_slice(&self.ledger_seq.to_be_bytes());
        b.extend_from_slice(&self.request_hash);
        b.extend_from_slice(&self.response_hash);
        b.extend_from_slice(&(self.model.name.len() as u32).to_be_bytes());
        b.extend_from_slice(self.model.name.as_bytes());
        b.extend_from_slice(&self.model.sha256);
        for v in [
            self.prompt_tokens,
            self.completion_tokens,
            self.prompt_nanoton_per_token,
            self.completion_nanoton_per_token,
            self.cost,
            self.balance_after,
        ] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b
    }

    /// Signs the body with the node key.
    pub fn sign(self, key: &crate::keys::NodeKey) -> Receipt {
        let signature = key.sign(&self.signing_bytes());
        Receipt {
            body: self,
            signature,
        }
    }
}

impl Receipt {
    /// Checks that the receipt was signed by `node_public_key`, and that its cost is its token
    /// counts times its prices.
    pub fn verify(&self, node_public_key: &[u8; 32]) -> Result<(), ReceiptError> {
        if &self.body.node_public_key != node_public_key {
            return Err(ReceiptError::WrongNode {
                expected: hex::encode(node_public_key),
                found: hex::encode(self.body.node_public_key),
            });
        }
        if self.body.model.name.len() > MAX_MODEL_NAME {
            return Err(ReceiptError::ModelNameTooLong);
        }
        let vk = VerifyingKey::from_bytes(node_public_key).map_err(|_| ReceiptError::BadKey)?;
        vk.verify_strict(
            &self.body.signing_bytes(),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| ReceiptError::BadSignature)?;
        let usage = Usage {
            prompt_tokens: self.body.prompt_tokens,
            completion_tokens: self.body.completion_tokens,
        };
        let prices = PriceConfig {
            prompt_nanoton_per_token: self.body.prompt_nanoton_per_token,
            completion_nanoton_per_token: self.body.completion_nanoton_per_token,
        };
        match usage.cost(&prices) {
            Ok(c) if c == self.body.cost => Ok(()),
            _ => Err(ReceiptError::CostMismatch {
                cost: self.body.cost,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::NodeKey;

    fn body() -> ReceiptBody {
        let key = NodeKey::from_seed([7; 32]);
        ReceiptBody {
            node_public_key: key.public_key(),
            account: AccountId([1; 32]),
            ledger_seq: 42,
            request_hash: [2; 32],
            response_hash: [3; 32],
            model: ModelIdentity {
                name: "gemma-3-270m".into(),
                sha256: [4; 32],
            },
            prompt_tokens: 10,
            completion_tokens: 5,
            prompt_nanoton_per_token: 100,
            completion_nanoton_per_token: 300,
            cost: 2500,
            balance_after: 7500,
        }
    }

    #[test]
    fn cost_is_checked() {
        let p = PriceConfig {
            prompt_nanoton_per_token: 3,
            completion_nanoton_per_token: 7,
        };
        let u = Usage {
            prompt_tokens: 11,
            completion_tokens: 13,
        };
        assert_eq!(u.cost(&p), Ok(3 * 11 + 7 * 13));
        let big = Usage {
            prompt_tokens: u64::MAX,
            completion_tokens: 0,
        };
        assert!(big.cost(&p).is_err());
    }

    #[test]
    fn sign_verify_and_tamper() {
        let key = NodeKey::from_seed([7; 32]);
        let r = body().sign(&key);
        r.verify(&key.public_key()).unwrap();
        let json = serde_json::to_string(&r).unwrap();
        let back: Receipt = serde_json::from_str(&json).unwrap();
        back.verify(&key.public_key()).unwrap();

        let mut t = r.clone();
        t.body.cost += 1;
        t.body.prompt_tokens += 0;
        assert_eq!(t.verify(&key.public_key()), Err(ReceiptError::BadSignature));
        let mut t = r.clone();
        t.body.response_hash[0] ^= 1;
        assert_eq!(t.verify(&key.public_key()), Err(ReceiptError::BadSignature));
        let mut t = r.clone();
        t.signature[10] ^= 1;
        assert_eq!(t.verify(&key.public_key()), Err(ReceiptError::BadSignature));
        let other = NodeKey::from_seed([8; 32]);
        assert!(matches!(
            r.verify(&other.public_key()),
            Err(ReceiptError::WrongNode { .. })
        ));
        // A receipt whose signature is valid but whose arithmetic is wrong is rejected too.
        let mut b = body();
        b.cost = 1;
        let bad = b.sign(&key);
        assert_eq!(
            bad.verify(&key.public_key()),
            Err(ReceiptError::CostMismatch { cost: 1 })
        );
    }

    #[test]
    fn malformed_receipt_json_is_rejected() {
        let key = NodeKey::from_seed([7; 32]);
        let json = serde_json::to_value(body().sign(&key)).unwrap();
        // The untouched value reads back (from a `Value`, not only from text) and verifies,
        // so the refusals below are about the edits.
        let back = serde_json::from_value::<Receipt>(json.clone()).unwrap();
        back.verify(&key.public_key()).unwrap();
        let escaped = serde_json::to_string(&json)
            .unwrap()
            .replacen("\"account\":\"", "\"account\":\"\\u0030", 1)
            .replacen("\\u00300", "\\u0030", 1);
        let from_escaped: Receipt = serde_json::from_str(&escaped).unwrap();
        assert_eq!(
            from_escaped, back,
            "JSON escapes in hex fields are accepted"
        );
        let mut v = json.clone();
        v["signature"] = "00".into();
        assert!(serde_json::from_value::<Receipt>(v).is_err());
        let mut v = json.clone();
        v["account"] = "AB".repeat(32).into();
        assert!(serde_json::from_value::<Receipt>(v).is_err());
        let mut v = json;
        v["request_hash"] = "zz".repeat(32).into();
        assert!(serde_json::from_value::<Receipt>(v).is_err());
    }
}
