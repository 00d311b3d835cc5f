//! Billing on the HTTP side: bearer authentication, `GET /v1/account`,
//! `POST /v1/account/refund`, and how receipts and billing errors are shown to clients.

use super::body::{json_response, read_limited, ReadError, Resp};
use super::error::ApiError;
use super::AppState;
use crate::billing::identity::{account_from_headers, AuthError};
use crate::billing::{Billing, BillingError};
use base64::Engine as _;
use cocoon_payments::engine::{TransferOutcome, TransferStatus};
use cocoon_payments::{AccountId, PaymentsError, Receipt};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Response header carrying the receipt of a non-streamed response: base64 (standard, padded)
/// of the receipt's JSON.
pub const RECEIPT_HEADER: &str = "x-cocoon-receipt";
/// Largest refund request body, bytes.
const REFUND_BODY_LIMIT: usize = 4096;

/// With billing on, the caller's account (401 without a valid bearer token); `None` when the
/// worker serves for free.
pub fn authenticate(
    state: &AppState,
    headers: &hyper::HeaderMap,
) -> Result<Option<(Arc<Billing>, AccountId)>, ApiError> {
    let Some(billing) = &state.billing else {
        return Ok(None);
    };
    match account_from_headers(headers) {
        Ok(a) => Ok(Some((billing.clone(), a))),
        Err(e) => {
            let code = match e {
                AuthError::Missing => "missing_api_key",
                _ => "invalid_api_key",
            };
            Err(ApiError::unauthorized(code, e.to_string()))
        }
    }
}

fn require_billing(
    state: &AppState,
    headers: &hyper::HeaderMap,
) -> Result<(Arc<Billing>, AccountId), ApiError> {
    authenticate(state, headers)?.ok_or_else(|| {
        ApiError::with_status(
            StatusCode::NOT_FOUND,
            "billing_disabled",
            "This worker serves for free: it has no prepaid accounts",
        )
    })
}

/// Maps a billing failure to the client's error.
pub fn billing_error(e: BillingError) -> ApiError {
    match e {
        BillingError::InsufficientFunds { balance, required } => {
            ApiError::insufficient_funds(balance, required)
        }
        BillingError::Overflow => ApiError::invalid(
            "max_tokens",
            "the request's maximum cost overflows 64-bit nanoTON; lower max_tokens",
        ),
        other => ApiError::with_status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "billing_failed",
            format!("{other}; the request was not charged"),
        ),
    }
}

/// The receipt as a header value.
pub fn receipt_header(r: &Receipt) -> Result<HeaderValue, ApiError> {
    let json = serde_json::to_vec(r)
        .map_err(|e| ApiError::internal(format!("encoding the receipt: {e}")))?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(json);
    HeaderValue::from_str(&b64).map_err(|e| ApiError::internal(format!("receipt header: {e}")))
}

/// The receipt as a JSON value (the `cocoon_receipt` field of streams).
pub fn receipt_json(r: &Receipt) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

/// `GET /v1/account`.
pub fn account(state: &AppState, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let (billing, account) = require_billing(state, req.headers())?;
    Ok(json_response(
        StatusCode::OK,
        &billing.account_view(&account),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundRequest {
    to: String,
    /// Accepted only to refuse it clearly: refunds return the whole unspent balance.
    #[serde(default)]
    amount: Option<Value>,
}

/// `POST /v1/account/refund` with `{"to": "<TON address>"}`.
pub async fn refund(state: &AppState, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let (billing, account) = require_billing(state, req.headers())?;
    let body = tokio::time::timeout(
        state.config.io_timeout,
        read_limited(req.into_body(), REFUND_BODY_LIMIT),
    )
    .await
    .map_err(|_| ApiError::invalid("body", "timed out reading the request body"))?
    .map_err(|e| match e {
        ReadError::TooLarge => ApiError::too_large(REFUND_BODY_LIMIT),
        ReadError::Io(m) => ApiError::invalid("body", format!("reading the body: {m}")),
    })?;
    let de = &mut serde_json::Deserializer::from_slice(&body);
    let r: RefundRequest = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        ApiError::bad_json(
            format!("invalid refund request: {}", e.inner()),
            (path != ".").then_some(path),
        )
    })?;
    if r.amount.is_some() {
        return Err(ApiError::invalid(
            "amount",
            "partial refunds are not supported: a refund returns the whole unspent balance \
             less the refund fee; omit `amount`",
        ));
    }
    let outcome = billing
        .refund(&account, &r.to)
        .await
        .map_err(refund_error)?;
    let balance = billing.payments().balance(&account);
    outcome_response(&outcome, balance)
}

fn outcome_response(o: &TransferOutcome, balance: u64) -> Result<Resp, ApiError> {
    let mut v = json!({
        "object": "refund",
        "intent": o.intent,
        "amount": o.amount,
        "destination": o.destination,
        "balance": balance,
    });
    let status = match &o.status {
        TransferStatus::Confirmed { tx, fee } => {
            v["status"] = "confirmed".into();
            v["tx"] = json!({"lt": tx.lt, "hash": hex::encode(tx.hash)});
            v["chain_fee"] = (*fee).into();
            StatusCode::OK
        }
        TransferStatus::Pending => {
            v["status"] = "pending".into();
            StatusCode::ACCEPTED
        }
        TransferStatus::Failed { tx, .. } => {
            let mut e = ApiError::with_status(
                StatusCode::BAD_GATEWAY,
                "refund_failed",
                format!(
                    "the refund transaction {}:{} executed on chain but sent nothing; \
                     the amount is back in the account",
                    tx.lt,
                    hex::encode(tx.hash)
                ),
            );
            e.extra = vec![("balance", balance.into())];
            return Err(e);
        }
        TransferStatus::Cancelled { reason } => {
            let mut e = ApiError::with_status(
                StatusCode::BAD_GATEWAY,
                "refund_cancelled",
                format!(
                    "the refund was not executed ({reason}); the amount is back in the account"
                ),
            );
            e.extra = vec![("balance", balance.into())];
            return Err(e);
        }
    };
    Ok(json_response(status, &v))
}

fn refund_error(e: PaymentsError) -> ApiError {
    let msg = e.to_string();
    match e {
        PaymentsError::Wallet(cocoon_payments::wallet::WalletError::Address { .. }) => {
            let mut e = ApiError::invalid("to", msg);
            e.code = "invalid_address";
            e
        }
        PaymentsError::NothingToRefund { available, fee, .. } => {
            let mut e = ApiError::with_status(StatusCode::CONFLICT, "nothing_to_refund", msg);
            e.extra = vec![("balance", available.into()), ("refund_fee", fee.into())];
            e
        }
        PaymentsError::AccountBusy { .. } => {
            let mut e = ApiError::with_status(StatusCode::CONFLICT, "account_busy", msg);
            e.retry_after = Some(1);
            e
        }
        PaymentsError::TransferInFlight { .. } => {
            let mut e =
                ApiError::with_status(StatusCode::SERVICE_UNAVAILABLE, "transfer_in_flight", msg);
            e.retry_after = Some(5);
            e
        }
        PaymentsError::Chain(_) => {
            let mut e =
                ApiError::with_status(StatusCode::SERVICE_UNAVAILABLE, "chain_unavailable", msg);
            e.retry_after = Some(10);
            e
        }
        PaymentsError::WalletUnderfunded { .. } => {
            ApiError::with_status(StatusCode::SERVICE_UNAVAILABLE, "wallet_underfunded", msg)
        }
        _ => ApiError::with_status(StatusCode::INTERNAL_SERVER_ERROR, "refund_error", msg),
    }
}
