//! Orange Logic's legacy APIs answer XML unless asked for `format=json`: a plain rendering of the
//! same document.

use serde_json::Value;

/// Renders `value` as `<Response>...</Response>`.
pub fn render(value: &Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    element(&mut out, "Response", value);
    out
}

fn element(out: &mut String, name: &str, value: &Value) {
    let name = tag(name);
    out.push('<');
    out.push_str(&name);
    out.push('>');
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                element(out, key, child);
            }
        }
        Value::Array(items) => {
            for item in items {
                element(out, "Item", item);
            }
        }
        Value::Null => {}
        Value::String(s) => escape(out, s),
        other => escape(out, &other.to_string()),
    }
    out.push_str("</");
    out.push_str(&name);
    out.push('>');
}

fn tag(name: &str) -> String {
    let mut tag: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !tag.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        tag.insert(0, '_');
    }
    tag
}

fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_render_as_escaped_elements() {
        let doc = serde_json::json!({"APIResponse":{"Code":"SUCCESS","Items":[{"CoreField.Title":"A & B"}]}});
        assert_eq!(
            render(&doc),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Response><APIResponse><Code>SUCCESS</Code>\
             <Items><Item><CoreField.Title>A &amp; B</CoreField.Title></Item></Items></APIResponse></Response>"
        );
    }
}
