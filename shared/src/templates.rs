//! Templates as code: the message templates the flows send, one file per name and language
//! (`templates/<name>/<language>.yaml`), in the shape Meta's `POST /{waba}/message_templates` takes,
//! plus a list of what the sender fills in. Validated offline here with Meta's rules (placeholder
//! numbering, examples, lengths, button limits, category), so a broken template is caught before
//! review; the simulator applies the same rules to what it is sent.

use crate::connector_config::{TemplateRef, TemplateUse};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// Meta's limits on templates (characters).
pub mod limits {
    /// Template name.
    pub const NAME: usize = 512;
    /// Body text.
    pub const BODY: usize = 1024;
    /// Text header.
    pub const HEADER: usize = 60;
    /// Footer.
    pub const FOOTER: usize = 60;
    /// Button label.
    pub const BUTTON_TEXT: usize = 25;
    /// Buttons in one template.
    pub const BUTTONS: usize = 10;
    /// URL buttons in one template.
    pub const URL_BUTTONS: usize = 2;
    /// Phone-number buttons in one template.
    pub const PHONE_BUTTONS: usize = 1;
    /// Copy-code buttons in one template.
    pub const COPY_CODE_BUTTONS: usize = 1;
    /// A button's URL.
    pub const URL: usize = 2000;
    /// A button's phone number.
    pub const PHONE: usize = 20;
    /// A named placeholder.
    pub const PARAMETER_NAME: usize = 20;
}

/// One template in one language: Meta's create-template request and what the sender fills in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// Lowercase letters, digits and underscores.
    pub name: String,
    /// Meta's locale code (`en_US`, `fr_FR`, `es`).
    pub language: String,
    /// `UTILITY`, `MARKETING` or `AUTHENTICATION`.
    pub category: String,
    /// `POSITIONAL` (`{{1}}`, the default) or `NAMED` (`{{first_name}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_format: Option<String>,
    /// `HEADER`, `BODY`, `FOOTER`, `BUTTONS`.
    pub components: Vec<Component>,
    /// What the sender puts in each placeholder; kept in the repository, never sent to Meta.
    #[serde(default, skip_serializing)]
    pub parameters: ParameterDocs,
}

/// What the flow sends for each placeholder, in order (one line of meaning each).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterDocs {
    /// Header placeholders.
    #[serde(default)]
    pub header: Vec<String>,
    /// Body placeholders.
    #[serde(default)]
    pub body: Vec<String>,
    /// Buttons that take a value at send time (quick-reply payload, URL suffix, coupon code).
    #[serde(default)]
    pub buttons: Vec<String>,
}

/// A template component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// `HEADER`, `BODY`, `FOOTER`, `BUTTONS` (Meta accepts any case).
    #[serde(rename = "type")]
    pub kind: String,
    /// Header format: `TEXT`, `IMAGE`, `VIDEO`, `DOCUMENT`, `LOCATION`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// The text of a text header, the body or the footer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Example values, required for every placeholder and media header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<Example>,
    /// The buttons of a `BUTTONS` component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buttons: Option<Vec<Button>>,
    /// Authentication body: Meta's security sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_security_recommendation: Option<bool>,
    /// Authentication footer: code lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_expiration_minutes: Option<u32>,
}

/// Example values of a component.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    /// Positional text header examples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_text: Option<Vec<String>>,
    /// Named text header examples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_text_named_params: Option<Vec<NamedExample>>,
    /// Media header sample handles (from the resumable upload API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_handle: Option<Vec<String>>,
    /// Positional body examples: one list of values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_text: Option<Vec<Vec<String>>>,
    /// Named body examples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_text_named_params: Option<Vec<NamedExample>>,
}

/// An example of a named placeholder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedExample {
    /// The placeholder's name.
    pub param_name: String,
    /// A sample value.
    pub example: String,
}

/// A template button.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Button {
    /// `QUICK_REPLY`, `URL`, `PHONE_NUMBER`, `COPY_CODE`, `OTP`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// URL buttons: the link, optionally ending in `{{1}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Phone-number buttons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// URL suffix or coupon examples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<Vec<String>>,
    /// OTP buttons: `COPY_CODE`, `ONE_TAP`, `ZERO_TAP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp_type: Option<String>,
}

impl Button {
    /// Whether the button takes a value at send time.
    pub fn takes_parameter(&self) -> bool {
        match self.kind.to_ascii_uppercase().as_str() {
            "QUICK_REPLY" | "COPY_CODE" => true,
            "URL" => self.url.as_deref().is_some_and(|u| u.contains("{{")),
            _ => false,
        }
    }
}

/// One problem found in a template: where (a field path such as `components[1].text`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Field path inside the template.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A placeholder found in a text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Placeholder {
    /// `{{3}}`.
    Positional(u32),
    /// `{{first_name}}`.
    Named(String),
}

/// The placeholders of `text` in order, or why one is malformed.
pub fn placeholders(text: &str) -> Result<Vec<Placeholder>, String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        if rest[..open].contains("}}") {
            return Err("has `}}` without a matching `{{`".into());
        }
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err("has `{{` without a closing `}}`".into());
        };
        let inner = &after[..close];
        if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
            match inner.parse::<u32>() {
                Ok(n) if n > 0 => found.push(Placeholder::Positional(n)),
                _ => {
                    return Err(format!(
                        "has placeholder `{{{{{inner}}}}}`: numbers start at 1"
                    ));
                }
            }
        } else if valid_parameter_name(inner) {
            found.push(Placeholder::Named(inner.to_owned()));
        } else {
            return Err(format!(
                "has malformed placeholder `{{{{{inner}}}}}` (use {{{{1}}}} or {{{{lowercase_name}}}})"
            ));
        }
        rest = &after[close + 2..];
    }
    if rest.contains("}}") {
        return Err("has `}}` without a matching `{{`".into());
    }
    Ok(found)
}

fn valid_parameter_name(name: &str) -> bool {
    name.len() <= limits::PARAMETER_NAME
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Whether `name` is a valid template name (lowercase letters, digits, underscores; ≤ 512).
pub fn valid_template_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= limits::NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Whether `code` looks like one of Meta's language codes (`en`, `fil`, `en_US`, `zh_CN`).
pub fn valid_language_code(code: &str) -> bool {
    let (lang, region) = match code.split_once('_') {
        Some((l, r)) => (l, Some(r)),
        None => (code, None),
    };
    matches!(lang.len(), 2 | 3)
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && region.is_none_or(|r| r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase()))
}

const CATEGORIES: [&str; 3] = ["UTILITY", "MARKETING", "AUTHENTICATION"];
const HEADER_FORMATS: [&str; 5] = ["TEXT", "IMAGE", "VIDEO", "DOCUMENT", "LOCATION"];
const BUTTON_TYPES: [&str; 8] = [
    "QUICK_REPLY",
    "URL",
    "PHONE_NUMBER",
    "COPY_CODE",
    "OTP",
    "FLOW",
    "MPM",
    "CATALOG",
];

/// How many placeholders each part has and how many buttons take a value: what a send must fill.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// Header placeholders.
    pub header: usize,
    /// Body placeholders (names, for named templates; `1`, `2`... otherwise).
    pub body: Vec<String>,
    /// Buttons taking a value at send time.
    pub buttons: usize,
}

impl Template {
    /// Components of a type (any case).
    fn components_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Component> + 'a {
        self.components
            .iter()
            .filter(move |c| c.kind.eq_ignore_ascii_case(kind))
    }

    /// The request body for `POST /{waba}/message_templates` (without the repository's notes).
    pub fn to_request(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// What a send must fill in.
    pub fn shape(&self) -> Shape {
        let count = |text: Option<&String>| {
            text.and_then(|t| placeholders(t).ok())
                .map(|p| p.into_iter().collect::<BTreeSet<_>>().len())
                .unwrap_or(0)
        };
        let header = self
            .components_of("HEADER")
            .next()
            .map_or(0, |c| count(c.text.as_ref()));
        let body = self
            .components_of("BODY")
            .next()
            .and_then(|c| c.text.as_deref())
            .and_then(|t| placeholders(t).ok())
            .unwrap_or_default();
        let mut seen = BTreeSet::new();
        let body = body
            .into_iter()
            .filter(|p| seen.insert(p.clone()))
            .map(|p| match p {
                Placeholder::Positional(n) => n.to_string(),
                Placeholder::Named(name) => name,
            })
            .collect();
        let buttons = self
            .components_of("BUTTONS")
            .flat_map(|c| c.buttons.iter().flatten())
            .filter(|b| b.takes_parameter())
            .count();
        Shape {
            header,
            body,
            buttons,
        }
    }

    /// Every problem Meta would refuse the template for, and every placeholder the repository's
    /// notes leave undocumented.
    pub fn validate(&self) -> Vec<Problem> {
        let mut problems = self.validate_request();
        if problems.is_empty() {
            check_documented(self, &mut problems);
        }
        problems
    }

    /// Every problem Meta would refuse the create-template request for (the repository's notes
    /// aside).
    pub fn validate_request(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut issue = |field: &str, message: String| problems.push(Problem::new(field, message));
        if !valid_template_name(&self.name) {
            issue(
                "name",
                format!(
                    "`{}` must be 1 to {} lowercase letters, digits and underscores",
                    self.name,
                    limits::NAME
                ),
            );
        }
        if !valid_language_code(&self.language) {
            issue(
                "language",
                format!(
                    "`{}` is not a WhatsApp language code such as en or en_US",
                    self.language
                ),
            );
        }
        if !CATEGORIES.contains(&self.category.as_str()) {
            issue(
                "category",
                format!(
                    "`{}` must be one of {}",
                    self.category,
                    CATEGORIES.join(", ")
                ),
            );
        }
        let named = match self.parameter_format.as_deref() {
            None | Some("POSITIONAL") => false,
            Some("NAMED") => true,
            Some(other) => {
                issue(
                    "parameter_format",
                    format!("`{other}` must be POSITIONAL or NAMED"),
                );
                false
            }
        };
        let authentication = self.category == "AUTHENTICATION";
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for (i, component) in self.components.iter().enumerate() {
            let kind = component.kind.to_ascii_uppercase();
            *counts.entry(kind.clone()).or_default() += 1;
            let at = format!("components[{i}]");
            match kind.as_str() {
                "HEADER" => check_header(component, &at, named, &mut problems),
                "BODY" => check_body(component, &at, named, authentication, &mut problems),
                "FOOTER" => check_footer(component, &at, authentication, &mut problems),
                "BUTTONS" => check_buttons(component, &at, authentication, &mut problems),
                other => problems.push(Problem::new(
                    format!("{at}.type"),
                    format!("`{other}` must be HEADER, BODY, FOOTER or BUTTONS"),
                )),
            }
        }
        for (kind, n) in &counts {
            if *n > 1 {
                problems.push(Problem::new(
                    "components",
                    format!("has {n} {kind} components; at most one is allowed"),
                ));
            }
        }
        if !counts.contains_key("BODY") {
            problems.push(Problem::new("components", "needs a BODY component"));
        }
        problems
    }
}

fn check_text(text: Option<&String>, at: &str, max: usize, problems: &mut Vec<Problem>) -> bool {
    match text {
        None => {
            problems.push(Problem::new(format!("{at}.text"), "is missing"));
            false
        }
        Some(t) if t.trim().is_empty() => {
            problems.push(Problem::new(format!("{at}.text"), "is empty"));
            false
        }
        Some(t) => {
            let len = t.chars().count();
            if len > max {
                problems.push(Problem::new(
                    format!("{at}.text"),
                    format!("is {len} characters long; the limit is {max}"),
                ));
            }
            true
        }
    }
}

/// Checks numbering (positional: `{{1}}`..`{{n}}` in order, once each; named: the template says
/// NAMED) and returns the distinct placeholders.
fn check_numbering(
    text: &str,
    field: &str,
    named: bool,
    problems: &mut Vec<Problem>,
) -> Option<Vec<Placeholder>> {
    let found = match placeholders(text) {
        Ok(found) => found,
        Err(message) => {
            problems.push(Problem::new(field, message));
            return None;
        }
    };
    let mut distinct: Vec<Placeholder> = Vec::new();
    let mut ok = true;
    for p in found {
        match (&p, named) {
            (Placeholder::Positional(n), false) => {
                if distinct.contains(&p) {
                    problems.push(Problem::new(field, format!("uses {{{{{n}}}}} twice")));
                    ok = false;
                } else if *n as usize != distinct.len() + 1 {
                    problems.push(Problem::new(
                        field,
                        format!(
                            "has {{{{{n}}}}} where {{{{{}}}}} is expected: placeholders are numbered {{{{1}}}}, {{{{2}}}}... in order",
                            distinct.len() + 1
                        ),
                    ));
                    ok = false;
                } else {
                    distinct.push(p);
                }
            }
            (Placeholder::Named(name), true) => {
                if distinct.contains(&p) {
                    problems.push(Problem::new(field, format!("uses {{{{{name}}}}} twice")));
                    ok = false;
                } else {
                    distinct.push(p);
                }
            }
            (Placeholder::Positional(n), true) => {
                problems.push(Problem::new(
                    field,
                    format!("has positional {{{{{n}}}}} in a NAMED template"),
                ));
                ok = false;
            }
            (Placeholder::Named(name), false) => {
                problems.push(Problem::new(
                    field,
                    format!(
                        "has named {{{{{name}}}}}: set parameter_format: NAMED, or number the placeholders"
                    ),
                ));
                ok = false;
            }
        }
    }
    ok.then_some(distinct)
}

fn check_named_examples(
    found: &[Placeholder],
    examples: Option<&Vec<NamedExample>>,
    field: &str,
    problems: &mut Vec<Problem>,
) {
    let Some(examples) = examples else {
        problems.push(Problem::new(
            field,
            "is missing: every placeholder needs an example",
        ));
        return;
    };
    let wanted: BTreeSet<&str> = found
        .iter()
        .filter_map(|p| match p {
            Placeholder::Named(n) => Some(n.as_str()),
            Placeholder::Positional(_) => None,
        })
        .collect();
    let given: BTreeSet<&str> = examples.iter().map(|e| e.param_name.as_str()).collect();
    for missing in wanted.difference(&given) {
        problems.push(Problem::new(
            field,
            format!("has no example for {{{{{missing}}}}}"),
        ));
    }
    for extra in given.difference(&wanted) {
        problems.push(Problem::new(
            field,
            format!("has an example for `{extra}`, which the text does not use"),
        ));
    }
    for (i, e) in examples.iter().enumerate() {
        if e.example.trim().is_empty() {
            problems.push(Problem::new(format!("{field}[{i}].example"), "is empty"));
        }
    }
}

fn check_header(component: &Component, at: &str, named: bool, problems: &mut Vec<Problem>) {
    let format = component.format.as_deref().unwrap_or_default();
    if !HEADER_FORMATS.contains(&format) {
        problems.push(Problem::new(
            format!("{at}.format"),
            format!("`{format}` must be one of {}", HEADER_FORMATS.join(", ")),
        ));
        return;
    }
    let example = component.example.clone().unwrap_or_default();
    if format != "TEXT" {
        if component.text.is_some() {
            problems.push(Problem::new(
                format!("{at}.text"),
                format!("a {format} header has no text"),
            ));
        }
        if format != "LOCATION"
            && example
                .header_handle
                .as_ref()
                .is_none_or(|h| h.is_empty() || h.iter().any(|h| h.trim().is_empty()))
        {
            problems.push(Problem::new(
                format!("{at}.example.header_handle"),
                format!("a {format} header needs a sample media handle"),
            ));
        }
        return;
    }
    if !check_text(component.text.as_ref(), at, limits::HEADER, problems) {
        return;
    }
    let text = component.text.as_deref().unwrap_or_default();
    let field = format!("{at}.text");
    let Some(found) = check_numbering(text, &field, named, problems) else {
        return;
    };
    if found.len() > 1 {
        problems.push(Problem::new(
            field,
            format!(
                "has {} placeholders; a header takes at most one",
                found.len()
            ),
        ));
        return;
    }
    if found.is_empty() {
        return;
    }
    if named {
        check_named_examples(
            &found,
            example.header_text_named_params.as_ref(),
            &format!("{at}.example.header_text_named_params"),
            problems,
        );
    } else {
        match example.header_text.as_deref() {
            Some([value]) if !value.trim().is_empty() => {}
            Some([_]) => problems.push(Problem::new(
                format!("{at}.example.header_text[0]"),
                "is empty",
            )),
            _ => problems.push(Problem::new(
                format!("{at}.example.header_text"),
                "needs exactly one example value for the header's placeholder",
            )),
        }
    }
}

fn check_body(
    component: &Component,
    at: &str,
    named: bool,
    authentication: bool,
    problems: &mut Vec<Problem>,
) {
    if authentication {
        // Meta writes the body of authentication templates; only the security note is chosen.
        if component.text.is_some() {
            problems.push(Problem::new(
                format!("{at}.text"),
                "an AUTHENTICATION body has no text (Meta supplies it)",
            ));
        }
        return;
    }
    if !check_text(component.text.as_ref(), at, limits::BODY, problems) {
        return;
    }
    let text = component.text.as_deref().unwrap_or_default();
    let field = format!("{at}.text");
    let Some(found) = check_numbering(text, &field, named, problems) else {
        return;
    };
    let trimmed = text.trim();
    if !found.is_empty() && (trimmed.starts_with("{{") || trimmed.ends_with("}}")) {
        problems.push(Problem::new(
            &field,
            "starts or ends with a placeholder, which Meta refuses",
        ));
    }
    if found.is_empty() {
        if component
            .example
            .as_ref()
            .is_some_and(|e| e.body_text.is_some() || e.body_text_named_params.is_some())
        {
            problems.push(Problem::new(
                format!("{at}.example"),
                "gives examples but the text has no placeholders",
            ));
        }
        return;
    }
    let example = component.example.clone().unwrap_or_default();
    if named {
        check_named_examples(
            &found,
            example.body_text_named_params.as_ref(),
            &format!("{at}.example.body_text_named_params"),
            problems,
        );
        return;
    }
    let field = format!("{at}.example.body_text");
    match example.body_text.as_deref() {
        None => problems.push(Problem::new(
            field,
            "is missing: every placeholder needs an example",
        )),
        Some([values]) => {
            if values.len() != found.len() {
                problems.push(Problem::new(
                    format!("{field}[0]"),
                    format!(
                        "has {} example values for {} placeholders",
                        values.len(),
                        found.len()
                    ),
                ));
            }
            for (i, v) in values.iter().enumerate() {
                if v.trim().is_empty() {
                    problems.push(Problem::new(format!("{field}[0][{i}]"), "is empty"));
                }
            }
        }
        Some(_) => problems.push(Problem::new(
            field,
            "must hold exactly one list of example values",
        )),
    }
}

fn check_footer(
    component: &Component,
    at: &str,
    authentication: bool,
    problems: &mut Vec<Problem>,
) {
    if authentication && component.text.is_none() {
        return;
    }
    if !check_text(component.text.as_ref(), at, limits::FOOTER, problems) {
        return;
    }
    let text = component.text.as_deref().unwrap_or_default();
    match placeholders(text) {
        Ok(found) if found.is_empty() => {}
        Ok(_) => problems.push(Problem::new(
            format!("{at}.text"),
            "a footer takes no placeholders",
        )),
        Err(message) => problems.push(Problem::new(format!("{at}.text"), message)),
    }
}

fn check_buttons(
    component: &Component,
    at: &str,
    authentication: bool,
    problems: &mut Vec<Problem>,
) {
    let Some(buttons) = component.buttons.as_ref().filter(|b| !b.is_empty()) else {
        problems.push(Problem::new(
            format!("{at}.buttons"),
            "a BUTTONS component needs at least one button",
        ));
        return;
    };
    if buttons.len() > limits::BUTTONS {
        problems.push(Problem::new(
            format!("{at}.buttons"),
            format!(
                "has {} buttons; the limit is {}",
                buttons.len(),
                limits::BUTTONS
            ),
        ));
    }
    let mut per_type: BTreeMap<String, usize> = BTreeMap::new();
    for (i, button) in buttons.iter().enumerate() {
        let field = format!("{at}.buttons[{i}]");
        let kind = button.kind.to_ascii_uppercase();
        *per_type.entry(kind.clone()).or_default() += 1;
        if !BUTTON_TYPES.contains(&kind.as_str()) {
            problems.push(Problem::new(
                format!("{field}.type"),
                format!(
                    "`{}` must be one of {}",
                    button.kind,
                    BUTTON_TYPES.join(", ")
                ),
            ));
            continue;
        }
        if authentication != (kind == "OTP") {
            problems.push(Problem::new(
                format!("{field}.type"),
                if authentication {
                    "an AUTHENTICATION template takes only OTP buttons"
                } else {
                    "OTP buttons belong to AUTHENTICATION templates"
                },
            ));
        }
        match button.text.as_deref() {
            Some(t) if t.trim().is_empty() => {
                problems.push(Problem::new(format!("{field}.text"), "is empty"))
            }
            Some(t) => {
                let len = t.chars().count();
                if len > limits::BUTTON_TEXT {
                    problems.push(Problem::new(
                        format!("{field}.text"),
                        format!(
                            "is {len} characters long; the limit is {}",
                            limits::BUTTON_TEXT
                        ),
                    ));
                }
                if placeholders(t).is_ok_and(|p| !p.is_empty()) {
                    problems.push(Problem::new(
                        format!("{field}.text"),
                        "a button label takes no placeholders",
                    ));
                }
            }
            None if kind != "OTP" => {
                problems.push(Problem::new(format!("{field}.text"), "is missing"))
            }
            None => {}
        }
        match kind.as_str() {
            "URL" => check_url_button(button, &field, problems),
            "PHONE_NUMBER" => match button.phone_number.as_deref() {
                None => problems.push(Problem::new(format!("{field}.phone_number"), "is missing")),
                Some(p) => {
                    let digits = p.strip_prefix('+').unwrap_or(p);
                    if digits.is_empty()
                        || p.len() > limits::PHONE
                        || !digits.bytes().all(|b| b.is_ascii_digit())
                    {
                        problems.push(Problem::new(
                            format!("{field}.phone_number"),
                            format!("must be up to {} digits", limits::PHONE),
                        ));
                    }
                }
            },
            "COPY_CODE" if button.example.as_ref().is_none_or(|e| e.len() != 1) => {
                problems.push(Problem::new(
                    format!("{field}.example"),
                    "a COPY_CODE button needs one example code",
                ));
            }
            _ => {}
        }
    }
    for (kind, max) in [
        ("URL", limits::URL_BUTTONS),
        ("PHONE_NUMBER", limits::PHONE_BUTTONS),
        ("COPY_CODE", limits::COPY_CODE_BUTTONS),
    ] {
        let n = per_type.get(kind).copied().unwrap_or(0);
        if n > max {
            problems.push(Problem::new(
                format!("{at}.buttons"),
                format!("has {n} {kind} buttons; the limit is {max}"),
            ));
        }
    }
    // Meta groups quick replies apart from call-to-action buttons: they may not be interleaved.
    let quick: Vec<bool> = buttons
        .iter()
        .map(|b| b.kind.eq_ignore_ascii_case("QUICK_REPLY"))
        .collect();
    let switches = quick.windows(2).filter(|w| w[0] != w[1]).count();
    if switches > 1 {
        problems.push(Problem::new(
            format!("{at}.buttons"),
            "interleaves QUICK_REPLY with other buttons; group the quick replies together",
        ));
    }
}

fn check_url_button(button: &Button, field: &str, problems: &mut Vec<Problem>) {
    let Some(url) = button.url.as_deref() else {
        problems.push(Problem::new(format!("{field}.url"), "is missing"));
        return;
    };
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        problems.push(Problem::new(
            format!("{field}.url"),
            "must start with https:// or http://",
        ));
    }
    if url.chars().count() > limits::URL {
        problems.push(Problem::new(
            format!("{field}.url"),
            format!("is longer than {} characters", limits::URL),
        ));
    }
    match placeholders(url) {
        Err(message) => problems.push(Problem::new(format!("{field}.url"), message)),
        Ok(found) if found.is_empty() => {}
        Ok(found) => {
            if found != [Placeholder::Positional(1)] || !url.ends_with("{{1}}") {
                problems.push(Problem::new(
                    format!("{field}.url"),
                    "may hold one placeholder, {{1}}, at its end",
                ));
            }
            if button
                .example
                .as_ref()
                .is_none_or(|e| e.len() != 1 || e[0].trim().is_empty())
            {
                problems.push(Problem::new(
                    format!("{field}.example"),
                    "a URL with a placeholder needs one example",
                ));
            }
        }
    }
}

/// The repository's notes must say what goes in every placeholder (what the flows send).
fn check_documented(template: &Template, problems: &mut Vec<Problem>) {
    let shape = template.shape();
    let docs = &template.parameters;
    for (field, documented, expected) in [
        ("parameters.header", docs.header.len(), shape.header),
        ("parameters.body", docs.body.len(), shape.body.len()),
        ("parameters.buttons", docs.buttons.len(), shape.buttons),
    ] {
        if documented != expected {
            problems.push(Problem::new(
                field,
                format!("describes {documented} values but the template takes {expected}"),
            ));
        }
    }
}

/// A template read from the catalogue.
#[derive(Debug, Clone)]
pub struct CatalogueEntry {
    /// The file it came from.
    pub path: PathBuf,
    /// The template.
    pub template: Template,
}

/// A problem in one file of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    /// The file.
    pub path: PathBuf,
    /// Where in it and what.
    pub problem: Problem,
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

/// The catalogue: every template file of a directory, and every problem found in it.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    /// Templates that parsed (valid or not).
    pub entries: Vec<CatalogueEntry>,
    /// Problems, by file and field.
    pub problems: Vec<FileProblem>,
}

impl Catalogue {
    /// Reads and validates `dir/<name>/<language>.yaml`.
    pub fn load(dir: &Path) -> Self {
        let mut catalogue = Self::default();
        let mut files = Vec::new();
        match std::fs::read_dir(dir) {
            Err(e) => catalogue.file_problem(dir, "", format!("cannot be read: {e}")),
            Ok(names) => {
                for name_dir in names.flatten() {
                    let path = name_dir.path();
                    if !path.is_dir() {
                        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                            catalogue.file_problem(
                                &path,
                                "",
                                "is outside a template folder: use <name>/<language>.yaml",
                            );
                        }
                        continue;
                    }
                    match std::fs::read_dir(&path) {
                        Err(e) => catalogue.file_problem(&path, "", format!("cannot be read: {e}")),
                        Ok(langs) => files.extend(langs.flatten().map(|f| f.path())),
                    }
                }
            }
        }
        files.sort();
        for path in files {
            if path.extension().is_some_and(|e| e == "yaml") {
                catalogue.read_file(&path);
            } else {
                catalogue.file_problem(&path, "", "is not a .yaml template file");
            }
        }
        catalogue.check_languages_agree();
        catalogue
    }

    fn file_problem(&mut self, path: &Path, field: &str, message: impl Into<String>) {
        self.problems.push(FileProblem {
            path: path.to_owned(),
            problem: Problem::new(field, message),
        });
    }

    fn read_file(&mut self, path: &Path) {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => return self.file_problem(path, "", format!("cannot be read: {e}")),
        };
        let template: Template =
            match serde_path_to_error::deserialize(serde_norway::Deserializer::from_str(&text)) {
                Ok(t) => t,
                Err(e) => {
                    let field = e.path().to_string();
                    let field = if field == "." { String::new() } else { field };
                    return self.file_problem(path, &field, e.into_inner().to_string());
                }
            };
        let folder = path
            .parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let stem = path
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if template.name != folder {
            self.file_problem(
                path,
                "name",
                format!("`{}` differs from its folder `{folder}`", template.name),
            );
        }
        if template.language != stem {
            self.file_problem(
                path,
                "language",
                format!(
                    "`{}` differs from the file name `{stem}`",
                    template.language
                ),
            );
        }
        for problem in template.validate() {
            self.problems.push(FileProblem {
                path: path.to_owned(),
                problem,
            });
        }
        self.entries.push(CatalogueEntry {
            path: path.to_owned(),
            template,
        });
    }

    /// Every language of a template must take the same values, so a send fits whichever language
    /// the recipient gets.
    fn check_languages_agree(&mut self) {
        let mut first: BTreeMap<&str, &CatalogueEntry> = BTreeMap::new();
        let mut found = Vec::new();
        // A file with problems of its own is reported for them, not compared.
        let faulty: BTreeSet<&Path> = self.problems.iter().map(|p| p.path.as_path()).collect();
        for entry in self
            .entries
            .iter()
            .filter(|e| !faulty.contains(e.path.as_path()))
        {
            let Some(reference) = first.get(entry.template.name.as_str()) else {
                first.insert(&entry.template.name, entry);
                continue;
            };
            let (a, b) = (&reference.template, &entry.template);
            if a.category != b.category {
                found.push((
                    entry.path.clone(),
                    "category",
                    format!(
                        "`{}` differs from {} (`{}`)",
                        b.category,
                        reference.path.display(),
                        a.category
                    ),
                ));
            }
            if a.shape() != b.shape() {
                found.push((
                    entry.path.clone(),
                    "components",
                    format!(
                        "take other values than {}: every language must take the same header, body and button values",
                        reference.path.display()
                    ),
                ));
            }
        }
        for (path, field, message) in found {
            self.file_problem(&path, field, message);
        }
    }

    /// The template of `name` in `language`.
    pub fn get(&self, name: &str, language: &str) -> Option<&Template> {
        self.entries
            .iter()
            .map(|e| &e.template)
            .find(|t| t.name == name && t.language == language)
    }

    /// Configured templates the catalogue lacks (in their configured default language).
    pub fn check_configuration(
        &self,
        configured: &BTreeMap<TemplateUse, TemplateRef>,
    ) -> Vec<String> {
        configured
            .iter()
            .filter(|(_, r)| self.get(&r.name, &r.language).is_none())
            .map(|(usage, r)| {
                format!(
                    "whatsapp.templates.{}: `{}` in {} is not in the catalogue",
                    serde_json::to_value(usage)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    r.name,
                    r.language
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Template {
        serde_norway::from_str(yaml).expect("template yaml")
    }

    const REVIEW: &str = r#"
name: asset_review_request
language: en_US
category: UTILITY
components:
  - type: HEADER
    format: TEXT
    text: "Review: {{1}}"
    example: { header_text: ["Spring hero image"] }
  - type: BODY
    text: "Asset {{1}} is ready for your review, due {{2}}."
    example: { body_text: [["Spring hero image", "5 Dec"]] }
  - type: FOOTER
    text: Orange Logic connector
  - type: BUTTONS
    buttons:
      - { type: QUICK_REPLY, text: Approve }
      - { type: QUICK_REPLY, text: Reject }
parameters:
  header: [asset title]
  body: [asset title, review deadline]
  buttons: [approve button id, reject button id]
"#;

    fn fields(t: &Template) -> Vec<String> {
        t.validate().into_iter().map(|p| p.field).collect()
    }

    fn repository() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root")
            .to_owned()
    }

    #[test]
    fn the_repository_catalogue_validates_and_covers_the_local_configuration() {
        let catalogue = Catalogue::load(&repository().join("templates"));
        let problems: Vec<String> = catalogue.problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems, Vec::<String>::new());
        let config = crate::connector_config::ConnectorConfig::parse(
            &std::fs::read_to_string(repository().join("local/connector.yaml")).expect("config"),
        )
        .expect("local/connector.yaml parses");
        assert_eq!(
            catalogue.check_configuration(&config.whatsapp.templates),
            Vec::<String>::new()
        );
        for usage in [
            TemplateUse::ReviewRequest,
            TemplateUse::Receipt,
            TemplateUse::RightsExpiry,
            TemplateUse::CampaignRollout,
            TemplateUse::AssetShare,
            TemplateUse::IssueAlert,
        ] {
            let configured = &config.whatsapp.templates[&usage];
            let languages = catalogue
                .entries
                .iter()
                .filter(|e| e.template.name == configured.name)
                .count();
            assert!(
                languages >= 2,
                "{} has {languages} language(s)",
                configured.name
            );
        }
    }

    #[test]
    fn every_language_of_a_template_must_take_the_same_values_and_sit_in_its_own_file() {
        let dir = std::env::temp_dir().join(format!("templates-langs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("asset_review_request")).expect("mkdir");
        std::fs::write(dir.join("asset_review_request/en_US.yaml"), REVIEW).expect("write");
        let french = REVIEW
            .replace("language: en_US", "language: fr_FR")
            .replace(", due {{2}}.", ".")
            .replace(r#", "5 Dec"]]"#, "]]")
            .replace(
                "  body: [asset title, review deadline]",
                "  body: [asset title]",
            );
        std::fs::write(dir.join("asset_review_request/fr_FR.yaml"), french).expect("write");
        std::fs::write(dir.join("asset_review_request/es.yaml"), REVIEW).expect("write");
        std::fs::write(dir.join("loose.yaml"), REVIEW).expect("write");
        let catalogue = Catalogue::load(&dir);
        let problems: Vec<(String, String)> = catalogue
            .problems
            .iter()
            .map(|p| {
                (
                    p.path
                        .strip_prefix(&dir)
                        .expect("inside")
                        .display()
                        .to_string(),
                    p.problem.field.clone(),
                )
            })
            .collect();
        assert_eq!(
            problems,
            vec![
                ("loose.yaml".to_owned(), String::new()),
                (
                    "asset_review_request/es.yaml".to_owned(),
                    "language".to_owned()
                ),
                (
                    "asset_review_request/fr_FR.yaml".to_owned(),
                    "components".to_owned()
                ),
            ]
        );
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn a_complete_positional_template_has_no_problems() {
        let t = parse(REVIEW);
        assert_eq!(t.validate(), vec![]);
        assert_eq!(
            t.shape(),
            Shape {
                header: 1,
                body: vec!["1".into(), "2".into()],
                buttons: 2
            }
        );
    }

    #[test]
    fn the_request_to_meta_leaves_out_the_repository_notes() {
        let request = parse(REVIEW).to_request();
        assert!(request.get("parameters").is_none());
        assert_eq!(request["components"][1]["type"], "BODY");
        assert!(request["components"][2].get("example").is_none());
    }

    #[test]
    fn a_skipped_placeholder_number_is_reported_on_the_body_text() {
        let t = parse(&REVIEW.replace("due {{2}}", "due {{3}}"));
        let problems = t.validate();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "components[1].text");
        assert!(problems[0].message.contains("{{3}} where {{2}}"));
    }

    #[test]
    fn malformed_and_repeated_placeholders_are_refused() {
        for (body, expected) in [
            ("{{1}} is ready, due {{ 2 }}.", "malformed"),
            ("{{1}} is ready, due {{2}.", "without a closing"),
            ("{{1}} is ready, due 2}}.", "without a matching"),
            ("{{1}} is ready, {{1}} again {{2}}.", "twice"),
            ("{{1}} is ready, due {{0}}.", "start at 1"),
        ] {
            let t =
                parse(&REVIEW.replace("Asset {{1}} is ready for your review, due {{2}}.", body));
            let problems = t.validate();
            assert!(
                problems
                    .iter()
                    .any(|p| p.field == "components[1].text" && p.message.contains(expected)),
                "{body}: {problems:?}"
            );
        }
    }

    #[test]
    fn each_placeholder_needs_an_example() {
        let t = parse(&REVIEW.replace(r#"[["Spring hero image", "5 Dec"]]"#, r#"[["Spring"]]"#));
        assert_eq!(fields(&t), vec!["components[1].example.body_text[0]"]);
        let t = parse(&REVIEW.replace(r#"example: { header_text: ["Spring hero image"] }"#, ""));
        assert_eq!(fields(&t), vec!["components[0].example.header_text"]);
    }

    #[test]
    fn lengths_follow_metas_limits() {
        let t = parse(&REVIEW.replace("Orange Logic connector", &"f".repeat(61)));
        assert_eq!(fields(&t), vec!["components[2].text"]);
        let t = parse(&REVIEW.replace("text: Approve", "text: Approve this asset right away"));
        assert_eq!(fields(&t), vec!["components[3].buttons[0].text"]);
        let long_body = format!("A {{{{1}}}} {} {{{{2}}}}.", "b".repeat(1020));
        let t = parse(&REVIEW.replace(
            "Asset {{1}} is ready for your review, due {{2}}.",
            &long_body,
        ));
        assert_eq!(fields(&t), vec!["components[1].text"]);
    }

    #[test]
    fn names_categories_and_languages_are_checked() {
        let t = parse(
            &REVIEW
                .replace("name: asset_review_request", "name: Asset-Review")
                .replace("category: UTILITY", "category: TRANSACTIONAL")
                .replace("language: en_US", "language: english"),
        );
        assert_eq!(fields(&t), vec!["name", "language", "category"]);
    }

    #[test]
    fn button_counts_and_kinds_are_limited() {
        let eleven: String = (0..11)
            .map(|i| format!("      - {{ type: QUICK_REPLY, text: Option {i} }}\n"))
            .collect();
        let t = parse(&REVIEW.replace(
            "      - { type: QUICK_REPLY, text: Approve }\n      - { type: QUICK_REPLY, text: Reject }\n",
            &eleven,
        ));
        assert!(fields(&t).contains(&"components[3].buttons".to_owned()));
        let mixed = "      - { type: QUICK_REPLY, text: Approve }\n      - { type: URL, text: Open, url: \"https://example.com/a/{{1}}\", example: [\"A-1\"] }\n      - { type: QUICK_REPLY, text: Reject }\n";
        let t = parse(&REVIEW.replace(
            "      - { type: QUICK_REPLY, text: Approve }\n      - { type: QUICK_REPLY, text: Reject }\n",
            mixed,
        ));
        let problems = t.validate();
        assert!(
            problems.iter().any(|p| p.message.contains("interleaves")),
            "{problems:?}"
        );
        let t = parse(&REVIEW.replace("type: QUICK_REPLY, text: Reject", "type: OTP, text: Code"));
        assert_eq!(fields(&t), vec!["components[3].buttons[1].type"]);
    }

    #[test]
    fn a_url_button_may_end_in_one_placeholder_with_an_example() {
        let url = |u: &str, example: &str| {
            parse(&REVIEW.replace(
                "{ type: QUICK_REPLY, text: Reject }",
                &format!("{{ type: URL, text: Open, url: \"{u}\"{example} }}"),
            ))
        };
        let ok = url("https://dam.example.com/a/{{1}}", ", example: [\"A-1\"]");
        assert_eq!(ok.validate(), vec![]);
        assert_eq!(
            fields(&url("https://dam.example.com/a/{{1}}", "")),
            vec!["components[3].buttons[1].example"]
        );
        assert_eq!(
            fields(&url(
                "https://dam.example.com/{{1}}/x",
                ", example: [\"A-1\"]"
            )),
            vec!["components[3].buttons[1].url"]
        );
    }

    #[test]
    fn named_templates_need_named_examples_and_no_numbers() {
        let named = r#"
name: named_one
language: fr_FR
category: MARKETING
parameter_format: NAMED
components:
  - type: body
    text: "Bonjour {{first_name}}, votre code est {{code}}."
    example:
      body_text_named_params:
        - { param_name: first_name, example: Marie }
        - { param_name: code, example: "1234" }
parameters:
  body: [first name, code]
"#;
        assert_eq!(parse(named).validate(), vec![]);
        assert_eq!(parse(named).shape().body, vec!["first_name", "code"]);
        let missing = named.replace("        - { param_name: code, example: \"1234\" }\n", "");
        let problems = parse(&missing).validate();
        assert!(problems[0].message.contains("{{code}}"), "{problems:?}");
        let mixed = named.replace("{{code}}", "{{2}}");
        assert!(parse(&mixed).validate()[0].message.contains("positional"));
        let undeclared = named.replace("parameter_format: NAMED\n", "");
        assert!(parse(&undeclared).validate()[0].message.contains("NAMED"));
    }

    #[test]
    fn undocumented_placeholders_are_reported_against_the_notes() {
        let t = parse(&REVIEW.replace(
            "  body: [asset title, review deadline]\n",
            "  body: [asset title]\n",
        ));
        let problems = t.validate();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].field, "parameters.body");
    }

    #[test]
    fn a_body_may_not_start_or_end_with_a_placeholder_nor_be_missing() {
        let t = parse(&REVIEW.replace(
            "Asset {{1}} is ready for your review, due {{2}}.",
            "{{1}} is ready, due {{2}}",
        ));
        assert!(t.validate()[0].message.contains("starts or ends"));
        let no_body = parse(
            r#"
name: x
language: en
category: UTILITY
components:
  - { type: FOOTER, text: hi }
"#,
        );
        assert_eq!(fields(&no_body), vec!["components"]);
    }
}
