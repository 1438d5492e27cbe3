//! The GET subscription handshake: `hub.mode=subscribe`, `hub.verify_token`, `hub.challenge`.

use crate::secrets::Secret;

/// What the handshake answers.
#[derive(Debug, PartialEq, Eq)]
pub enum Handshake {
    /// Token matches: echo the challenge as `text/plain`.
    Verified { challenge: String },
    /// Token does not match (403).
    WrongToken,
    /// A part is missing or `hub.mode` is not `subscribe` (400).
    Incomplete,
}

/// Answers a handshake from the raw query string (keys with dots are read as they are).
pub fn answer(raw_query: &str, verify_token: &Secret) -> Handshake {
    let (mut mode, mut token, mut challenge) = (None, None, None);
    for (key, value) in form_urlencoded::parse(raw_query.as_bytes()) {
        match key.as_ref() {
            "hub.mode" => mode = Some(value.into_owned()),
            "hub.verify_token" => token = Some(value.into_owned()),
            "hub.challenge" => challenge = Some(value.into_owned()),
            _ => {}
        }
    }
    match (mode.as_deref(), token, challenge) {
        (Some("subscribe"), Some(token), Some(challenge)) if !challenge.is_empty() => {
            if crate::crypto::secrets_equal(token.as_bytes(), verify_token.expose().as_bytes()) {
                Handshake::Verified { challenge }
            } else {
                Handshake::WrongToken
            }
        }
        _ => Handshake::Incomplete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Secret {
        Secret::new("my-verify-token")
    }

    #[test]
    fn the_right_token_echoes_the_challenge() {
        let q = "hub.mode=subscribe&hub.challenge=1982364570&hub.verify_token=my-verify-token";
        assert_eq!(
            answer(q, &token()),
            Handshake::Verified {
                challenge: "1982364570".into()
            }
        );
    }

    #[test]
    fn a_wrong_token_is_refused() {
        let q = "hub.mode=subscribe&hub.challenge=1&hub.verify_token=guess";
        assert_eq!(answer(q, &token()), Handshake::WrongToken);
    }

    #[test]
    fn missing_parts_are_incomplete() {
        assert_eq!(
            answer(
                "hub.mode=subscribe&hub.verify_token=my-verify-token",
                &token()
            ),
            Handshake::Incomplete
        );
        assert_eq!(answer("", &token()), Handshake::Incomplete);
        assert_eq!(
            answer(
                "hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=my-verify-token",
                &token()
            ),
            Handshake::Incomplete
        );
    }

    #[test]
    fn percent_encoded_values_are_decoded() {
        let q = "hub.mode=subscribe&hub.challenge=a%2Fb+c&hub.verify_token=my%2Dverify%2Dtoken";
        assert_eq!(
            answer(q, &token()),
            Handshake::Verified {
                challenge: "a/b c".into()
            }
        );
    }
}
