//! Signed inbound webhooks: HMAC-SHA256 over `"{timestamp}.{delivery id}.{raw body}"` with a
//! secret from the environment, sent as `x-strata-signature: sha256=<hex>` with
//! `x-strata-timestamp` (Unix seconds) and `x-strata-delivery` (the sender's delivery id,
//! the idempotency key). The delivery id is signed, so a captured delivery replayed under
//! a new id fails the check instead of starting a second run; replayed under its own id it
//! is a duplicate. The comparison is constant-time; a timestamp outside the tolerance is a
//! replay.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "x-strata-signature";
pub const TIMESTAMP_HEADER: &str = "x-strata-timestamp";
pub const DELIVERY_HEADER: &str = "x-strata-delivery";

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("{TIMESTAMP_HEADER} must be Unix seconds")]
    BadTimestamp,
    #[error("{TIMESTAMP_HEADER} is {skew_secs} s away from now, outside the {tolerance_secs} s tolerance (replay?)")]
    Stale { skew_secs: i64, tolerance_secs: u64 },
    #[error("{SIGNATURE_HEADER} must be sha256=<64 hex digits>")]
    BadFormat,
    #[error("signature does not match the body")]
    Mismatch,
}

/// The MAC of one delivery: `"{timestamp}.{delivery}.{body}"`.
fn mac(secret: &[u8], timestamp: i64, delivery: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(delivery.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The signature header value for delivery `delivery` of `body` at `timestamp` (what a
/// sender computes).
pub fn sign(secret: &[u8], timestamp: i64, delivery: &str, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, delivery, body)
        .finalize()
        .into_bytes();
    format!("sha256={}", hex::encode(tag))
}

/// Checks a delivery's timestamp (against `now_secs` ± `tolerance_secs`) and signature
/// over its timestamp, delivery id and body.
#[allow(clippy::too_many_arguments)]
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    delivery: &str,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: u64,
) -> Result<i64, SignatureError> {
    let ts = timestamp.ok_or(SignatureError::Missing(TIMESTAMP_HEADER))?;
    let sig = signature.ok_or(SignatureError::Missing(SIGNATURE_HEADER))?;
    let ts: i64 = ts
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let skew = now_secs.saturating_sub(ts);
    if skew.unsigned_abs() > tolerance_secs {
        return Err(SignatureError::Stale {
            skew_secs: skew,
            tolerance_secs,
        });
    }
    let hex_sig = sig
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::BadFormat)?;
    let given = hex::decode(hex_sig).map_err(|_| SignatureError::BadFormat)?;
    if given.len() != 32 {
        return Err(SignatureError::BadFormat);
    }
    mac(secret, ts, delivery, body)
        .verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)?;
    Ok(ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_body_verifies_and_any_change_is_refused() {
        let body = br#"{"lead_id":"L1"}"#;
        let sig = sign(b"s3cret", 1_000, "d-1", body);
        assert_eq!(
            verify(b"s3cret", Some("1000"), Some(&sig), "d-1", body, 1_010, 300),
            Ok(1000)
        );
        assert_eq!(
            verify(
                b"s3cret",
                Some("1000"),
                Some(&sig),
                "d-1",
                b"{}",
                1_010,
                300
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", Some("1000"), Some(&sig), "d-1", body, 1_010, 300),
            Err(SignatureError::Mismatch)
        );
        // The delivery id is signed: a replay under a new id is refused.
        assert_eq!(
            verify(b"s3cret", Some("1000"), Some(&sig), "d-2", body, 1_010, 300),
            Err(SignatureError::Mismatch)
        );
        // The timestamp is signed: moving it breaks the signature.
        assert_eq!(
            verify(b"s3cret", Some("1001"), Some(&sig), "d-1", body, 1_010, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn stale_missing_and_malformed_headers_are_named() {
        let body = b"{}";
        let sig = sign(b"k", 1_000, "d-1", body);
        assert!(matches!(
            verify(b"k", Some("1000"), Some(&sig), "d-1", body, 2_000, 300),
            Err(SignatureError::Stale {
                skew_secs: 1000,
                ..
            })
        ));
        assert_eq!(
            verify(b"k", None, Some(&sig), "d-1", body, 1_000, 300),
            Err(SignatureError::Missing(TIMESTAMP_HEADER))
        );
        assert_eq!(
            verify(b"k", Some("1000"), None, "d-1", body, 1_000, 300),
            Err(SignatureError::Missing(SIGNATURE_HEADER))
        );
        assert_eq!(
            verify(b"k", Some("1000"), Some("md5=abc"), "d-1", body, 1_000, 300),
            Err(SignatureError::BadFormat)
        );
        assert_eq!(
            verify(b"k", Some("soon"), Some(&sig), "d-1", body, 1_000, 300),
            Err(SignatureError::BadTimestamp)
        );
    }
}
