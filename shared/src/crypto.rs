//! The few hashing primitives the domain needs, behind names that say what they are for.

use aws_lc_rs::digest;

/// Lowercase hex SHA-256 of `bytes` (64 characters).
pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in parts {
        ctx.update(part);
    }
    hex::encode(ctx.finish().as_ref())
}
