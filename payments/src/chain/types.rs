//! Typed, validated views of toncenter v2 results. Every field is checked; anything missing,
//! mistyped or out of range is a [`Malformed`] error naming the field.

use base64::Engine;
use serde_json::Value;
use tonlib_core::TonAddress;

use crate::ledger::record::TxKey;

/// A problem with one field of a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {reason}")]
pub struct Malformed {
    pub field: String,
    pub reason: String,
}

fn bad(field: &str, reason: impl Into<String>) -> Malformed {
    Malformed {
        field: field.to_string(),
        reason: reason.into(),
    }
}

fn get<'a>(v: &'a Value, field: &str) -> Result<&'a Value, Malformed> {
    v.get(field).ok_or_else(|| bad(field, "missing"))
}

fn get_str<'a>(v: &'a Value, field: &str) -> Result<&'a str, Malformed> {
    get(v, field)?
        .as_str()
        .ok_or_else(|| bad(field, "expected a string"))
}

/// A decimal integer given as a JSON string (toncenter's style) or number.
fn get_u64(v: &Value, field: &str) -> Result<u64, Malformed> {
    match get(v, field)? {
        Value::String(s) => {
            if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(
                    field,
                    format!("expected a decimal integer, got {:?}", trunc(s)),
                ));
            }
            s.parse().map_err(|_| bad(field, "out of range for u64"))
        }
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| bad(field, "expected a non-negative integer")),
        _ => Err(bad(field, "expected an integer")),
    }
}

fn trunc(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A 32-byte hash in standard or URL-safe base64.
pub fn decode_hash(field: &str, s: &str) -> Result<[u8; 32], Malformed> {
    if s.len() > 64 {
        return Err(bad(field, "hash string too long"));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
        .map_err(|_| bad(field, format!("not base64: {:?}", trunc(s))))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| bad(field, format!("hash is {} bytes, expected 32", b.len())))
}

fn parse_addr(field: &str, s: &str) -> Result<TonAddress, Malformed> {
    s.parse::<TonAddress>()
        .map_err(|e| bad(field, format!("invalid address {:?}: {e}", trunc(s))))
}

fn tx_id(v: &Value, field: &str) -> Result<TxKey, Malformed> {
    let id = get(v, field)?;
    let lt = get_u64(id, "lt").map_err(|e| bad(&format!("{field}.{}", e.field), e.reason))?;
    let h = get_str(id, "hash").map_err(|e| bad(&format!("{field}.{}", e.field), e.reason))?;
    Ok(TxKey {
        lt,
        hash: decode_hash(&format!("{field}.hash"), h)?,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    Uninitialized,
    Active,
    Frozen,
}

/// `getAddressInformation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressInfo {
    pub balance: u64,
    pub status: AccountStatus,
    /// `None` for an account that never had a transaction.
    pub last_tx: Option<TxKey>,
    /// Chain time of the state the answer reflects.
    pub sync_utime: u32,
}

impl AddressInfo {
    pub fn parse(v: &Value) -> Result<AddressInfo, Malformed> {
        if !v.is_object() {
            return Err(bad("result", "expected an object"));
        }
        let status = match get_str(v, "state")? {
            "active" => AccountStatus::Active,
            "uninitialized" | "uninit" => AccountStatus::Uninitialized,
            "frozen" => AccountStatus::Frozen,
            other => {
                return Err(bad(
                    "state",
                    format!("unknown account state {:?}", trunc(other)),
                ))
            }
        };
        let last = tx_id(v, "last_transaction_id")?;
        let sync = get_u64(v, "sync_utime")?;
        Ok(AddressInfo {
            balance: get_u64(v, "balance")?,
            status,
            last_tx: (last.lt != 0).then_some(last),
            sync_utime: u32::try_from(sync).map_err(|_| bad("sync_utime", "out of range"))?,
        })
    }
}

/// One message of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainMessage {
    pub hash: [u8; 32],
    /// `None` for an inbound external message.
    pub source: Option<TonAddress>,
    /// `None` for an outbound external message.
    pub destination: Option<TonAddress>,
    pub value: u64,
    /// Forwarding fee carried by the message (paid by the sender on top of `value`).
    pub fwd_fee: u64,
    pub bounced: bool,
    /// The text comment, when toncenter reports the body as one (`msg.dataText`).
    pub comment: Option<String>,
}

impl ChainMessage {
    fn parse(v: &Value, field: &str) -> Result<ChainMessage, Malformed> {
        let ctx = |e: Malformed| bad(&format!("{field}.{}", e.field), e.reason);
        if !v.is_object() {
            return Err(bad(field, "expected an object"));
        }
        let hash = decode_hash(&format!("{field}.hash"), get_str(v, "hash").map_err(ctx)?)?;
        let source = match get_str(v, "source").map_err(ctx)? {
            "" => None,
            s => Some(parse_addr(&format!("{field}.source"), s)?),
        };
        let destination = match get_str(v, "destination").map_err(ctx)? {
            "" => None,
            s => Some(parse_addr(&format!("{field}.destination"), s)?),
        };
        let value = get_u64(v, "value").map_err(ctx)?;
        let fwd_fee = match v.get("fwd_fee") {
            None | Some(Value::Null) => 0,
            Some(_) => get_u64(v, "fwd_fee").map_err(ctx)?,
        };
        let bounced = match v.get("bounced") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(bad(&format!("{field}.bounced"), "expected a boolean")),
        };
        let comment = match v.get("msg_data") {
            None | Some(Value::Null) => None,
            Some(d) => {
                let ty = get_str(d, "@type").map_err(ctx)?;
                match ty {
                    "msg.dataText" => {
                        let t = get_str(d, "text").map_err(ctx)?;
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(t)
                            .map_err(|_| bad(&format!("{field}.msg_data.text"), "not base64"))?;
                        Some(String::from_utf8(bytes).map_err(|_| {
                            bad(&format!("{field}.msg_data.text"), "comment is not UTF-8")
                        })?)
                    }
                    // toncenter decodes text comments into msg.dataText itself; a raw body is
                    // not a comment (and its BoC is not parsed here at all).
                    _ => None,
                }
            }
        };
        Ok(ChainMessage {
            hash,
            source,
            destination,
            value,
            fwd_fee,
            bounced,
            comment,
        })
    }
}

/// One transaction from `getTransactions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainTransaction {
    pub key: TxKey,
    pub utime: u32,
    /// Total fees the account paid for this transaction, nanoTON.
    pub fee: u64,
    pub in_msg: Option<ChainMessage>,
    pub out_msgs: Vec<ChainMessage>,
}

/// At most this many messages per transaction are accepted (TON allows 255 actions).
const MAX_OUT_MSGS: usize = 255;

impl ChainTransaction {
    pub fn parse_list(v: &Value) -> Result<Vec<ChainTransaction>, Malformed> {
        let list = v
            .as_array()
            .ok_or_else(|| bad("result", "expected an array of transactions"))?;
        list.iter()
            .enumerate()
            .map(|(i, t)| ChainTransaction::parse(t, &format!("result[{i}]")))
            .collect()
    }

    fn parse(v: &Value, field: &str) -> Result<ChainTransaction, Malformed> {
        let ctx = |e: Malformed| bad(&format!("{field}.{}", e.field), e.reason);
        if !v.is_object() {
            return Err(bad(field, "expected an object"));
        }
        let key = tx_id(v, "transaction_id").map_err(ctx)?;
        let utime = u32::try_from(get_u64(v, "utime").map_err(ctx)?)
            .map_err(|_| bad(&format!("{field}.utime"), "out of range"))?;
        let fee = get_u64(v, "fee").map_err(ctx)?;
        let in_msg = match v.get("in_msg") {
            None | Some(Value::Null) => None,
            Some(m) => Some(ChainMessage::parse(m, &format!("{field}.in_msg"))?),
        };
        let outs = get(v, "out_msgs")
            .map_err(ctx)?
            .as_array()
            .ok_or_else(|| bad(&format!("{field}.out_msgs"), "expected an array"))?;
        if outs.len() > MAX_OUT_MSGS {
            return Err(bad(&format!("{field}.out_msgs"), "too many messages"));
        }
        let out_msgs = outs
            .iter()
            .enumerate()
            .map(|(i, m)| ChainMessage::parse(m, &format!("{field}.out_msgs[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(ChainTransaction {
            key,
            utime,
            fee,
            in_msg,
            out_msgs,
        })
    }
}

/// `runGetMethod` for a method returning one integer (e.g. `seqno`). `None` when the
/// contract is not active (exit code -13 / non-zero with an empty stack on uninit accounts).
pub fn parse_single_int(v: &Value) -> Result<Option<u64>, Malformed> {
    if !v.is_object() {
        return Err(bad("result", "expected an object"));
    }
    let exit = get(v, "exit_code")?
        .as_i64()
        .ok_or_else(|| bad("exit_code", "expected an integer"))?;
    if exit != 0 {
        return Ok(None);
    }
    let stack = get(v, "stack")?
        .as_array()
        .ok_or_else(|| bad("stack", "expected an array"))?;
    let first = stack.first().ok_or_else(|| bad("stack", "empty"))?;
    let (ty, val) = match first.as_array().map(Vec::as_slice) {
        Some([t, v]) => (t.as_str(), v.as_str()),
        _ => return Err(bad("stack[0]", "expected [type, value]")),
    };
    if ty != Some("num") {
        return Err(bad("stack[0]", "expected a number entry"));
    }
    let s = val.ok_or_else(|| bad("stack[0][1]", "expected a string"))?;
    let hex = s.strip_prefix("0x").ok_or_else(|| {
        bad(
            "stack[0][1]",
            format!("expected 0x-hex, got {:?}", trunc(s)),
        )
    })?;
    if hex.is_empty() || hex.len() > 16 {
        return Err(bad("stack[0][1]", "not a 64-bit hex number"));
    }
    u64::from_str_radix(hex, 16)
        .map(Some)
        .map_err(|_| bad("stack[0][1]", format!("invalid hex {:?}", trunc(s))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tx() -> Value {
        json!({
            "@type": "raw.transaction",
            "utime": 1700000000,
            "transaction_id": {"lt": "6000000", "hash": "nUQZXAJ/3CIJqWPp5f9mK38BcyM8biQgBuKFMyFFGn0="},
            "fee": "396400",
            "in_msg": {
                "hash": "FFwQB4KNkggaapKCJuF0OXaKOixo0dlh4c9o0s+Ei28=",
                "source": "EQDRgqrHAocDnRp8M9V7wvWbumTsHkx-SAy2YMiCiG-4S_wR",
                "destination": "EQCL6cPDGRY3lHL_-f7TE7zmTVeI21A8sWP9T0MxEx5Zueva",
                "value": "1000000000",
                "bounced": false,
                "msg_data": {"@type": "msg.dataText", "text": "Y29jb29uOmFjY3Q6YWI="}
            },
            "out_msgs": []
        })
    }

    #[test]
    fn parses_a_transaction() {
        let list = ChainTransaction::parse_list(&json!([tx()])).unwrap();
        assert_eq!(list[0].key.lt, 6_000_000);
        assert_eq!(list[0].fee, 396_400);
        let m = list[0].in_msg.as_ref().unwrap();
        assert_eq!(m.value, 1_000_000_000);
        assert_eq!(m.comment.as_deref(), Some("cocoon:acct:ab"));
    }

    #[test]
    fn rejects_tampered_fields_with_their_names() {
        type Tamper = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Tamper)> = vec![
            (
                "result[0].transaction_id.lt",
                Box::new(|t| t["transaction_id"]["lt"] = json!("-1")),
            ),
            (
                "result[0].transaction_id.hash",
                Box::new(|t| t["transaction_id"]["hash"] = json!("AAAA")),
            ),
            ("result[0].fee", Box::new(|t| t["fee"] = json!({}))),
            (
                "result[0].in_msg.value",
                Box::new(|t| t["in_msg"]["value"] = json!("99999999999999999999999")),
            ),
            (
                "result[0].in_msg.source",
                Box::new(|t| t["in_msg"]["source"] = json!("EQnope")),
            ),
            (
                "result[0].in_msg.bounced",
                Box::new(|t| t["in_msg"]["bounced"] = json!("no")),
            ),
            (
                "result[0].out_msgs",
                Box::new(|t| t["out_msgs"] = json!(null)),
            ),
            (
                "result[0].utime",
                Box::new(|t| t["utime"] = json!(1u64 << 40)),
            ),
        ];
        for (field, f) in cases {
            let mut t = tx();
            f(&mut t);
            let e = ChainTransaction::parse_list(&json!([t])).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
        assert!(ChainTransaction::parse_list(&json!("surprise")).is_err());
    }

    #[test]
    fn seqno_parsing() {
        assert_eq!(
            parse_single_int(&json!({"exit_code": 0, "stack": [["num", "0x1f"]]})),
            Ok(Some(31))
        );
        assert_eq!(
            parse_single_int(&json!({"exit_code": -13, "stack": []})),
            Ok(None)
        );
        for bad in [
            json!({"exit_code": 0, "stack": []}),
            json!({"exit_code": 0, "stack": [["num", "31"]]}),
            json!({"exit_code": 0, "stack": [["cell", "0x1"]]}),
            json!({"exit_code": 0, "stack": [["num", "0x11112222333344445"]]}),
            json!({"exit_code": "0", "stack": []}),
            json!([]),
        ] {
            assert!(parse_single_int(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn address_info_parsing() {
        let v = json!({"balance": "5", "state": "uninitialized", "sync_utime": 10,
            "last_transaction_id": {"lt": "0", "hash": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}});
        let i = AddressInfo::parse(&v).unwrap();
        assert_eq!(
            (i.balance, i.status, i.last_tx),
            (5, AccountStatus::Uninitialized, None)
        );
        let mut w = v.clone();
        w["state"] = json!("weird");
        assert_eq!(AddressInfo::parse(&w).unwrap_err().field, "state");
        let mut w = v;
        w["balance"] = json!(-5);
        assert_eq!(AddressInfo::parse(&w).unwrap_err().field, "balance");
    }
}
