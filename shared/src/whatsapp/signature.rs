//! `X-Hub-Signature-256` verification: HMAC-SHA256 of the exact request bytes with the app secret.

use crate::secrets::Secret;
use aws_lc_rs::hmac;
use std::fmt;

/// Header Meta signs every POST with (lowercase, as API Gateway delivers it).
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// The SHA-1 header of older Graph webhooks; never accepted on its own.
pub const LEGACY_SIGNATURE_HEADER: &str = "x-hub-signature";

/// The app secrets currently accepted, keyed once at cold start. More than one while rotating.
#[derive(Clone)]
pub struct AppSecretKeys(Vec<hmac::Key>);

impl fmt::Debug for AppSecretKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppSecretKeys({} keys, redacted)", self.0.len())
    }
}

impl AppSecretKeys {
    /// Keys every secret; order does not matter.
    pub fn new(secrets: &[Secret]) -> Self {
        Self(
            secrets
                .iter()
                .map(|s| hmac::Key::new(hmac::HMAC_SHA256, s.expose().as_bytes()))
                .collect(),
        )
    }

    /// The header value Meta would send for `body` under the first secret (for simulators and tests).
    pub fn sign(&self, body: &[u8]) -> Option<String> {
        let key = self.0.first()?;
        Some(format!(
            "sha256={}",
            hex::encode(hmac::sign(key, body).as_ref())
        ))
    }
}

/// Why a POST was not accepted as Meta's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Hub-Signature-256` at all.
    #[error("the X-Hub-Signature-256 header is missing")]
    Missing,
    /// Only the SHA-1 `X-Hub-Signature` was sent.
    #[error("only the legacy SHA-1 X-Hub-Signature header was sent")]
    LegacyOnly,
    /// The header is not `sha256=` followed by 64 hex digits.
    #[error("the X-Hub-Signature-256 header is malformed: {0}")]
    Malformed(&'static str),
    /// Well-formed, but no accepted secret produces it.
    #[error("the signature does not match the body under any accepted app secret")]
    Mismatch,
}

/// Checks `header` against `body` in constant time for each accepted secret.
pub fn verify(
    keys: &AppSecretKeys,
    header: Option<&[u8]>,
    legacy_present: bool,
    body: &[u8],
) -> Result<(), SignatureError> {
    let header = match header {
        Some(h) => h,
        None if legacy_present => return Err(SignatureError::LegacyOnly),
        None => return Err(SignatureError::Missing),
    };
    let hex_digest = header
        .trim_ascii()
        .strip_prefix(b"sha256=")
        .ok_or(SignatureError::Malformed("expected the sha256= prefix"))?;
    if hex_digest.len() != 64 {
        return Err(SignatureError::Malformed("expected 64 hex digits"));
    }
    let mut tag = [0_u8; 32];
    hex::decode_to_slice(hex_digest, &mut tag).map_err(|_| SignatureError::Malformed("not hex"))?;
    // `hmac::verify` compares in constant time.
    if keys
        .0
        .iter()
        .any(|key| hmac::verify(key, body, &tag).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    /// Meta's worked example (`reference/whatsapp/examples/signature-example.json`).
    const SECRET: &str = "test_app_secret_0123456789abcdef";
    const BODY: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"204060801234567","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15551230000","phone_number_id":"109876543210987"},"contacts":[{"profile":{"name":"Jos\u00e9 P\u00e9rez"},"wa_id":"447700900123"}],"messages":[{"from":"447700900123","id":"wamid.EXAMPLE","timestamp":"1767225600","text":{"body":"caf\u00e9 at 10? see https:\/\/example.com\/m"},"type":"text"}]},"field":"messages"}]}]}"#;
    const HEADER: &str = "sha256=74abd31d893b61a02c5de99c0395b562a9f02c41bae36843eacc09085ec4daf8";

    fn keys(secrets: &[&str]) -> AppSecretKeys {
        AppSecretKeys::new(&secrets.iter().map(|s| Secret::new(*s)).collect::<Vec<_>>())
    }

    fn check(header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
        verify(&keys(&[SECRET]), header.map(str::as_bytes), false, body)
    }

    #[test]
    fn a_valid_signature_is_accepted() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let header = keys(&[SECRET]).sign(body).expect("one key");
        assert_eq!(check(Some(&header), body), Ok(()));
    }

    #[test]
    fn metas_escaped_unicode_and_slashes_are_hashed_as_sent() {
        assert_eq!(check(Some(HEADER), BODY.as_bytes()), Ok(()));
    }

    #[test]
    fn a_re_serialized_body_does_not_verify() {
        let value: serde_json::Value = serde_json::from_str(BODY).expect("json");
        let reserialized = serde_json::to_vec(&value).expect("json");
        assert_eq!(
            check(Some(HEADER), &reserialized),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_base64_encoded_body_verifies_once_decoded() {
        let encoded = base64::engine::general_purpose::STANDARD.encode(BODY);
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("b64");
        assert_eq!(check(Some(HEADER), &decoded), Ok(()));
    }

    #[test]
    fn the_previous_secret_is_accepted_during_rotation() {
        let rotating = keys(&["the-new-secret", SECRET]);
        assert_eq!(
            verify(&rotating, Some(HEADER.as_bytes()), false, BODY.as_bytes()),
            Ok(())
        );
    }

    #[test]
    fn a_missing_header_is_refused() {
        assert_eq!(check(None, BODY.as_bytes()), Err(SignatureError::Missing));
    }

    #[test]
    fn a_bare_prefix_is_malformed() {
        assert!(matches!(
            check(Some("sha256="), BODY.as_bytes()),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn sixty_three_hex_digits_are_malformed() {
        let short = &HEADER[..HEADER.len() - 1];
        assert!(matches!(
            check(Some(short), BODY.as_bytes()),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn non_hex_garbage_is_malformed() {
        let garbage = format!("sha256={}", "zz".repeat(32));
        assert!(matches!(
            check(Some(&garbage), BODY.as_bytes()),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            check(Some("garbage"), BODY.as_bytes()),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn one_flipped_body_bit_is_a_mismatch() {
        let mut body = BODY.as_bytes().to_vec();
        body[40] ^= 0x01;
        assert_eq!(check(Some(HEADER), &body), Err(SignatureError::Mismatch));
    }

    #[test]
    fn only_the_legacy_sha1_header_is_refused() {
        let result = verify(&keys(&[SECRET]), None, true, BODY.as_bytes());
        assert_eq!(result, Err(SignatureError::LegacyOnly));
    }

    #[test]
    fn uppercase_hex_is_accepted() {
        let upper = format!("sha256={}", HEADER["sha256=".len()..].to_uppercase());
        assert_eq!(check(Some(&upper), BODY.as_bytes()), Ok(()));
    }

    #[test]
    fn a_wrong_secret_is_a_mismatch() {
        let result = verify(
            &keys(&["another"]),
            Some(HEADER.as_bytes()),
            false,
            BODY.as_bytes(),
        );
        assert_eq!(result, Err(SignatureError::Mismatch));
    }
}
