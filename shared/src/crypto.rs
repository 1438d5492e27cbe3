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

/// Makes ring the process's rustls crypto provider, which reqwest (built without a provider of
/// its own) uses for TLS; called before any reqwest client is built. A provider installed first
/// (a test binary's) is kept.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
