//! Redaction of queue bodies and attributes before they are printed: DLQ records carry phone
//! numbers, message text, captions and names. Fields that hold personal data by name are replaced
//! whole; in every other string, runs of seven or more digits (a phone number, with or without `+`)
//! are masked. A body that is not JSON is not shown at all.

use serde_json::Value;

/// Field names whose values are personal data (or may contain it), whatever their shape.
const PERSONAL_FIELDS: [&str; 18] = [
    "to",
    "from",
    "wa_id",
    "phone",
    "phone_number",
    "display_phone_number",
    "recipient_id",
    "address",
    "body",
    "text",
    "caption",
    "name",
    "profile",
    "contacts",
    "location",
    "filename",
    "title",
    "description",
];

/// Masks digit runs of seven or more (with a leading `+`) in `text`.
pub fn mask_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        let count = digits.chars().filter(char::is_ascii_digit).count();
        if count >= 7 {
            out.push_str("‹number›");
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() || (c == '+' && digits.is_empty()) {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

fn redact_value(value: &mut Value) {
    match value {
        Value::String(s) => *s = mask_numbers(s),
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                if PERSONAL_FIELDS.contains(&name.as_str()) && !field.is_null() {
                    *field = Value::String("‹redacted›".into());
                } else {
                    redact_value(field);
                }
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The body as it may be printed.
pub fn body(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(mut value) => {
            redact_value(&mut value);
            value.to_string()
        }
        Err(_) => format!("‹not JSON, {} bytes, not shown›", text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_text_and_names_never_survive_while_ids_and_flows_do() {
        let shown = body(
            r#"{"key":{"flow":"fi","subject":"wamid.IN-1","recipient":"u_ab12"},
                "to":"+447700900123","content":{"type":"text","text":{"body":"call me on 07700 900123"}},
                "note":"from +447700900123 about A-12","n":1764000000}"#,
        );
        assert!(!shown.contains("447700900123"), "{shown}");
        assert!(!shown.contains("call me"), "{shown}");
        assert!(shown.contains(r#""flow":"fi""#), "{shown}");
        assert!(shown.contains("wamid.IN-1"), "{shown}");
        assert!(shown.contains("from ‹number› about A-12"), "{shown}");
        assert_eq!(
            body("poison +447700900123"),
            "‹not JSON, 20 bytes, not shown›"
        );
    }
}
