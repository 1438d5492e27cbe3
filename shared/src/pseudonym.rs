//! Keyed-HMAC pseudonyms for phone numbers and WhatsApp user ids: the only form they take in logs,
//! metrics, queue group ids and table keys.

use ring::hmac;
use std::fmt;

/// A stable, non-reversible stand-in for a WhatsApp user (`u_` + 24 hex digits).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct UserPseudonym(String);

impl UserPseudonym {
    /// The pseudonym as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserPseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserPseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserPseudonym({})", self.0)
    }
}

/// Computes pseudonyms with the deployment's secret key.
#[derive(Clone)]
pub struct Pseudonymizer {
    key: hmac::Key,
}

impl fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pseudonymizer(<key redacted>)")
    }
}

impl Pseudonymizer {
    /// Builds the keyed hash once, at cold start.
    pub fn new(key: &crate::secrets::Secret) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key.expose().as_bytes()),
        }
    }

    /// The pseudonym of a phone number (`+` and formatting ignored) or of a business-scoped user id.
    pub fn pseudonym(&self, user: &str) -> UserPseudonym {
        let tag = if user.contains('.') {
            // BSUIDs (`US.1349…`) are opaque: hash them as they are.
            hmac::sign(&self.key, user.as_bytes())
        } else {
            let digits: String = user.chars().filter(char::is_ascii_digit).collect();
            hmac::sign(&self.key, digits.as_bytes())
        };
        // 96 bits: collisions are negligible for any contact directory, and the id stays short.
        UserPseudonym(format!("u_{}", hex::encode(&tag.as_ref()[..12])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Secret;

    fn p(key: &str) -> Pseudonymizer {
        Pseudonymizer::new(&Secret::new(key))
    }

    #[test]
    fn the_same_number_in_any_format_gets_one_pseudonym() {
        let ps = p("k");
        assert_eq!(
            ps.pseudonym("447700900123"),
            ps.pseudonym("+44 7700 900123")
        );
    }

    #[test]
    fn pseudonyms_hide_the_number_and_depend_on_the_key() {
        let a = p("key-a").pseudonym("447700900123");
        let b = p("key-b").pseudonym("447700900123");
        assert_ne!(a, b);
        assert!(!a.as_str().contains("447700900123"));
        assert_eq!(a.as_str().len(), 26);
    }

    #[test]
    fn business_scoped_user_ids_are_kept_distinct_from_numbers() {
        let ps = p("k");
        assert_ne!(
            ps.pseudonym("US.13491208655302741918"),
            ps.pseudonym("13491208655302741918")
        );
    }
}
