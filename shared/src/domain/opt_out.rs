//! The opt-out and opt-in commands a user can send: STOP, UNSUBSCRIBE and their usual
//! translations, START to come back. Recognised in any case, with any spacing, punctuation or
//! emoji around them, and only as the whole message ("stop sending the pier photos" is not one).

/// What a message asks of the connector's sends to its author.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptCommand {
    /// Send nothing more (the confirmation aside).
    Stop,
    /// Sends may resume.
    Start,
}

/// Opt-out words, normalised (upper case, accents folded, one space between words).
pub const STOP_WORDS: &[&str] = &[
    // English
    "STOP",
    "STOP ALL",
    "STOPALL",
    "UNSUBSCRIBE",
    "OPT OUT",
    "OPTOUT",
    // Spanish, Portuguese
    "PARAR",
    "BAJA",
    "DARSE DE BAJA",
    "CANCELAR",
    // French
    "ARRET",
    "DESABONNER",
    "DESINSCRIRE",
    // German, Scandinavian
    "STOPP",
    "ABMELDEN",
    // Italian
    "DESISCRIVI",
    "DISISCRIVI",
    "BASTA",
    // Chinese, Japanese
    "停止",
    "退订",
    "取消订阅",
    "配信停止",
];

/// Opt-in words, normalised like [`STOP_WORDS`].
pub const START_WORDS: &[&str] = &[
    "START",
    "UNSTOP",
    "SUBSCRIBE",
    "OPT IN",
    "OPTIN",
    "INICIAR",
    "ALTA",
    "COMECAR",
    "DEMARRER",
    "REPRENDRE",
    "ANMELDEN",
    "ISCRIVI",
    "开始",
    "订阅",
    "配信再開",
];

/// The command `text` is, if it is one.
pub fn parse_command(text: &str) -> Option<OptCommand> {
    // Commands are single short words; a long message is never one (and is not normalised).
    if text.len() > 64 {
        return None;
    }
    let normalised = normalise(text);
    if STOP_WORDS.contains(&normalised.as_str()) {
        Some(OptCommand::Stop)
    } else if START_WORDS.contains(&normalised.as_str()) {
        Some(OptCommand::Start)
    } else {
        None
    }
}

/// Upper case, Latin accents folded, everything that is not a letter or digit turned into a
/// single space between words.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut gap = false;
    for c in text.chars().flat_map(char::to_uppercase) {
        if c.is_alphanumeric() {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.push(fold(c));
        } else {
            gap = true;
        }
    }
    out
}

fn fold(c: char) -> char {
    match c {
        'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => 'A',
        'Ç' => 'C',
        'È' | 'É' | 'Ê' | 'Ë' => 'E',
        'Ì' | 'Í' | 'Î' | 'Ï' => 'I',
        'Ñ' => 'N',
        'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' => 'O',
        'Ù' | 'Ú' | 'Û' | 'Ü' => 'U',
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_is_recognised_in_any_case_spacing_and_punctuation() {
        for text in [
            "STOP",
            "stop",
            "Stop.",
            " stop! ",
            "STOP!!!",
            "«Stop»",
            "stop 🛑",
            "\tStOp\n",
        ] {
            assert_eq!(parse_command(text), Some(OptCommand::Stop), "{text:?}");
        }
    }

    #[test]
    fn translations_of_stop_and_unsubscribe_opt_out() {
        for text in [
            "UNSUBSCRIBE",
            "Unsubscribe.",
            "opt-out",
            "Parar",
            "ARRÊT",
            "arrêt !",
            "Arret",
            "STOPP",
            "停止",
            "停止。",
            "baja",
            "Cancelar",
            "desiscrivi",
            "Darse de baja",
        ] {
            assert_eq!(parse_command(text), Some(OptCommand::Stop), "{text:?}");
        }
    }

    #[test]
    fn start_and_its_translations_opt_back_in() {
        for text in [
            "START",
            "start.",
            " Start! ",
            "Iniciar",
            "démarrer",
            "开始",
            "opt in",
        ] {
            assert_eq!(parse_command(text), Some(OptCommand::Start), "{text:?}");
        }
    }

    #[test]
    fn a_sentence_containing_stop_is_not_a_command() {
        for text in [
            "stop sending the pier photos",
            "please don't stop",
            "stopping by later",
            "",
            "   ",
            "?",
            "starter",
        ] {
            assert_eq!(parse_command(text), None, "{text:?}");
        }
        assert_eq!(parse_command(&"stop ".repeat(40)), None);
    }

    #[test]
    fn every_listed_word_is_in_normal_form() {
        for word in STOP_WORDS.iter().chain(START_WORDS) {
            assert_eq!(normalise(word), *word);
        }
    }
}
