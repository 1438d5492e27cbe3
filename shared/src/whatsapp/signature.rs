//! `X-Hub-Signature-256` verification: HMAC-SHA256 of the exact request bytes with the app secret.

use crate::secrets::Secret;
use ring::hmac;
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

    /// The repository's signed POST (`fixtures/whatsapp/signature.json`): the exact bytes, escaped
    /// as Meta escapes them, and their `X-Hub-Signature-256`.
    #[derive(serde::Deserialize)]
    struct Signed {
        app_secret: String,
        raw_body: String,
        x_hub_signature_256: String,
        reserialized_body: String,
        reserialized_signature_does_not_match: String,
    }

    fn signed() -> &'static Signed {
        static SIGNED: std::sync::OnceLock<Signed> = std::sync::OnceLock::new();
        SIGNED.get_or_init(|| {
            serde_json::from_str(include_str!("../../../fixtures/whatsapp/signature.json"))
                .expect("the signature fixture")
        })
    }

    fn secret() -> &'static str {
        &signed().app_secret
    }

    fn body() -> &'static [u8] {
        signed().raw_body.as_bytes()
    }

    fn header() -> &'static str {
        &signed().x_hub_signature_256
    }

    fn keys(secrets: &[&str]) -> AppSecretKeys {
        AppSecretKeys::new(&secrets.iter().map(|s| Secret::new(*s)).collect::<Vec<_>>())
    }

    fn check(header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
        verify(&keys(&[secret()]), header.map(str::as_bytes), false, body)
    }

    #[test]
    fn a_valid_signature_is_accepted() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let header = keys(&[secret()]).sign(body).expect("one key");
        assert_eq!(check(Some(&header), body), Ok(()));
    }

    #[test]
    fn metas_escaped_unicode_and_slashes_are_hashed_as_sent() {
        assert_eq!(check(Some(header()), body()), Ok(()));
    }

    #[test]
    fn a_re_serialized_body_does_not_verify() {
        let value: serde_json::Value = serde_json::from_slice(body()).expect("json");
        let reserialized = serde_json::to_vec(&value).expect("json");
        assert_eq!(
            check(Some(header()), &reserialized),
            Err(SignatureError::Mismatch)
        );
        // Unescaped (`é`, `/`), the same notification has another digest, as the fixture records.
        let unescaped = signed().reserialized_body.as_bytes();
        assert_eq!(
            check(Some(header()), unescaped),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            keys(&[secret()]).sign(unescaped).as_deref(),
            Some(signed().reserialized_signature_does_not_match.as_str())
        );
    }

    #[test]
    fn a_base64_encoded_body_verifies_once_decoded() {
        let encoded = base64::engine::general_purpose::STANDARD.encode(body());
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("b64");
        assert_eq!(check(Some(header()), &decoded), Ok(()));
    }

    #[test]
    fn the_previous_secret_is_accepted_during_rotation() {
        let rotating = keys(&["the-new-secret", secret()]);
        assert_eq!(
            verify(&rotating, Some(header().as_bytes()), false, body()),
            Ok(())
        );
    }

    #[test]
    fn a_missing_header_is_refused() {
        assert_eq!(check(None, body()), Err(SignatureError::Missing));
    }

    #[test]
    fn a_bare_prefix_is_malformed() {
        assert!(matches!(
            check(Some("sha256="), body()),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn sixty_three_hex_digits_are_malformed() {
        let short = &header()[..header().len() - 1];
        assert!(matches!(
            check(Some(short), body()),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn non_hex_garbage_is_malformed() {
        let garbage = format!("sha256={}", "zz".repeat(32));
        assert!(matches!(
            check(Some(&garbage), body()),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            check(Some("garbage"), body()),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn one_flipped_body_bit_is_a_mismatch() {
        let mut body = body().to_vec();
        body[40] ^= 0x01;
        assert_eq!(check(Some(header()), &body), Err(SignatureError::Mismatch));
    }

    #[test]
    fn only_the_legacy_sha1_header_is_refused() {
        let result = verify(&keys(&[secret()]), None, true, body());
        assert_eq!(result, Err(SignatureError::LegacyOnly));
    }

    #[test]
    fn uppercase_hex_is_accepted() {
        let upper = format!("sha256={}", header()["sha256=".len()..].to_uppercase());
        assert_eq!(check(Some(&upper), body()), Ok(()));
    }

    #[test]
    fn a_wrong_secret_is_a_mismatch() {
        let result = verify(
            &keys(&["another"]),
            Some(header().as_bytes()),
            false,
            body(),
        );
        assert_eq!(result, Err(SignatureError::Mismatch));
    }
}
