//! The few hashing primitives the domain needs, behind names that say what they are for.

use ring::digest;

/// Lowercase hex SHA-256 of `bytes` (64 characters).
pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in parts {
        ctx.update(part);
    }
    hex::encode(ctx.finish().as_ref())
}

/// The first 8 bytes of the SHA-256 of `bytes`, base64url without padding (11 characters): a
/// short name for a key where a collision among a few dozen keys is what matters (2^-64 a pair).
pub fn short_digest(bytes: &[u8]) -> String {
    use base64::Engine as _;
    let digest = digest::digest(&digest::SHA256, bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..8])
}

/// `bytes` random bytes from the system's CSPRNG, as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    use ring::rand::SecureRandom as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    static FALLBACK: AtomicU64 = AtomicU64::new(0);
    let mut buffer = vec![0_u8; bytes];
    if ring::rand::SystemRandom::new().fill(&mut buffer).is_err() {
        // Only if the OS has no entropy source: stay unique within the process at least.
        tracing::error!("the system random number generator failed");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let n = FALLBACK.fetch_add(1, Ordering::SeqCst);
        return sha256_hex(&[&nanos.to_le_bytes(), &n.to_le_bytes()]);
    }
    hex::encode(buffer)
}

/// Compares two secrets in time independent of where they differ and of their lengths
/// (both are hashed to fixed-length digests first).
pub fn secrets_equal(presented: &[u8], expected: &[u8]) -> bool {
    let a = digest::digest(&digest::SHA256, presented);
    let b = digest::digest(&digest::SHA256, expected);
    use subtle::ConstantTimeEq as _;
    bool::from(a.as_ref().ct_eq(b.as_ref()))
}

/// HMAC-SHA256 of `data` under `key` (the local stack's HS256 operator tokens).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, data).as_ref().to_vec()
}

/// The system's root certificates that rustls takes as trust anchors, read once per process
/// (Lambda's image provides them; here `SSL_CERT_FILE` / `SSL_CERT_DIR` or the usual places).
fn system_roots() -> Result<&'static [rustls::pki_types::CertificateDer<'static>], TlsSetupError> {
    static ROOTS: std::sync::OnceLock<
        Result<Vec<rustls::pki_types::CertificateDer<'static>>, TlsSetupError>,
    > = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let loaded = rustls_native_certs::load_native_certs();
            if !loaded.errors.is_empty() {
                tracing::warn!(
                    errors = loaded.errors.len(),
                    "some system root certificates could not be read"
                );
            }
            // Only those a root store accepts (an expired or odd one is skipped, as the SDK does).
            let anchors: Vec<_> = loaded
                .certs
                .into_iter()
                .filter(|cert| rustls::RootCertStore::empty().add(cert.clone()).is_ok())
                .collect();
            if anchors.is_empty() {
                Err(TlsSetupError::NoRootCertificates)
            } else {
                Ok(anchors)
            }
        })
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Clone::clone)
}

/// The TLS settings of every reqwest client (Graph, Orange Logic): rustls with ring, the bundle's
/// one crypto provider, and the system's root certificates. Built once per process: each client
/// loading the roots on its own read the whole certificate store again at every cold start
/// (BENCHMARKS.md, init).
pub fn tls_client_config() -> Result<rustls::ClientConfig, TlsSetupError> {
    static CONFIG: std::sync::OnceLock<Result<rustls::ClientConfig, TlsSetupError>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(system_roots()?.iter().cloned());
            let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
            Ok(rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsSetupError::Rustls(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth())
        })
        .clone()
}

/// The same root certificates as PEM, for the AWS SDK's trust store (which takes PEM), so that
/// the SDK does not read the certificate store a second time.
pub fn root_certificates_pem() -> Result<String, TlsSetupError> {
    use base64::Engine as _;
    let mut pem = String::new();
    for cert in system_roots()? {
        let encoded = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    Ok(pem)
}

/// The TLS settings could not be made: no HTTPS call could succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TlsSetupError {
    /// The system has no root certificate that parses (none in `SSL_CERT_FILE` / `SSL_CERT_DIR`
    /// or the usual places).
    #[error("no system root certificate could be loaded (SSL_CERT_FILE, SSL_CERT_DIR)")]
    NoRootCertificates,
    /// rustls refused the protocol versions (a build without TLS 1.2 and 1.3).
    #[error("TLS settings refused: {0}")]
    Rustls(String),
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_tls_settings_are_made_once_from_the_system_roots() {
        let first = super::tls_client_config().expect("this machine has root certificates");
        let second = super::tls_client_config().expect("again");
        // One crypto provider: ring's cipher suites, no other.
        let ring = rustls::crypto::ring::default_provider();
        assert_eq!(
            first.crypto_provider().cipher_suites.len(),
            ring.cipher_suites.len()
        );
        assert!(std::sync::Arc::ptr_eq(
            first.crypto_provider(),
            second.crypto_provider()
        ));
    }

    #[test]
    fn the_pem_roots_for_the_sdk_are_the_same_certificates() {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject as _;
        let pem = super::root_certificates_pem().expect("pem");
        let parsed: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("valid PEM");
        assert_eq!(parsed.as_slice(), super::system_roots().expect("roots"));
        let mut store = rustls::RootCertStore::empty();
        for cert in parsed {
            store.add(cert).expect("each one is a trust anchor");
        }
        assert!(!store.is_empty());
    }
}
