//! The simulator's state: users and their conversations, the 24-hour windows, rate limits,
//! templates and media. Pure and synchronous; the server holds it behind a mutex.

use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A Graph error the simulator answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimGraphError {
    /// HTTP status.
    pub status: u16,
    /// Graph code.
    pub code: i64,
    /// Title.
    pub title: &'static str,
    /// `error_data.details`.
    pub details: String,
}

impl SimGraphError {
    /// A 400 with `code`.
    pub fn new(code: i64, title: &'static str, details: impl Into<String>) -> Self {
        Self {
            status: 400,
            code,
            title,
            details: details.into(),
        }
    }

    /// The response body, shaped like Meta's.
    pub fn body(&self, trace: u64) -> Value {
        let mut error = json!({
            "message": format!("(#{}) {}", self.code, self.title),
            "type": "OAuthException",
            "code": self.code,
            "fbtrace_id": format!("Sim{trace:016x}"),
        });
        if self.code != 190 {
            error["error_data"] = json!({"messaging_product": "whatsapp", "details": self.details});
        } else {
            error["message"] = json!(self.details);
        }
        json!({ "error": error })
    }

    /// 190: bad or expired token.
    pub fn token() -> Self {
        Self {
            status: 401,
            code: 190,
            title: "Invalid OAuth access token",
            details: "Error validating access token: Session has expired or the token is invalid."
                .into(),
        }
    }

    /// 100: invalid parameter.
    pub fn invalid(details: impl Into<String>) -> Self {
        Self::new(100, "Invalid parameter", details)
    }
}

/// Template header kinds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderDef {
    /// No header variable.
    None,
    /// A text header with this many variables.
    Text(usize),
    /// An image header.
    Image,
    /// A video header.
    Video,
    /// A document header.
    Document,
}

/// Template buttons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ButtonDef {
    /// Quick reply (payload optional).
    QuickReply,
    /// URL button; `dynamic` ones need a suffix parameter.
    Url {
        /// Needs a parameter.
        dynamic: bool,
    },
    /// Copy-code button: needs its coupon code.
    CopyCode,
    /// A button that takes no value (phone number, OTP, flow).
    Fixed,
}

/// An approved template of the WABA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateDef {
    /// Name.
    pub name: String,
    /// Exact approved locale.
    pub language: String,
    /// `MARKETING`, `UTILITY`, `AUTHENTICATION`.
    pub category: String,
    /// Header.
    pub header: HeaderDef,
    /// Body variables: their names for named templates, `{{1}}`... for positional ones.
    pub body_params: Vec<String>,
    /// Buttons by index.
    pub buttons: Vec<ButtonDef>,
}

impl TemplateDef {
    /// A positional template with `n` body variables.
    pub fn positional(name: &str, language: &str, n: usize) -> Self {
        Self {
            name: name.into(),
            language: language.into(),
            category: "UTILITY".into(),
            header: HeaderDef::None,
            body_params: (1..=n).map(|i| i.to_string()).collect(),
            buttons: Vec::new(),
        }
    }

    /// What an approved create-template request lets a send fill in.
    pub fn from_request(template: &shared::templates::Template) -> Self {
        let header = template
            .components
            .iter()
            .find(|c| c.kind.eq_ignore_ascii_case("HEADER"))
            .map_or(HeaderDef::None, |c| {
                match c.format.as_deref().unwrap_or_default() {
                    "IMAGE" => HeaderDef::Image,
                    "VIDEO" => HeaderDef::Video,
                    "DOCUMENT" => HeaderDef::Document,
                    "TEXT" => match template.shape().header {
                        0 => HeaderDef::None,
                        n => HeaderDef::Text(n),
                    },
                    // Location headers are not simulated on sends (written down in
                    // docs/templates.md).
                    _ => HeaderDef::None,
                }
            });
        let buttons = template
            .components
            .iter()
            .filter(|c| c.kind.eq_ignore_ascii_case("BUTTONS"))
            .flat_map(|c| c.buttons.iter().flatten())
            .map(|b| match b.kind.to_ascii_uppercase().as_str() {
                "QUICK_REPLY" => ButtonDef::QuickReply,
                "URL" => ButtonDef::Url {
                    dynamic: b.takes_parameter(),
                },
                "COPY_CODE" => ButtonDef::CopyCode,
                _ => ButtonDef::Fixed,
            })
            .collect();
        Self {
            name: template.name.clone(),
            language: template.language.clone(),
            category: template.category.clone(),
            header,
            body_params: template.shape().body,
            buttons,
        }
    }

    fn named(&self) -> bool {
        self.body_params.iter().any(|p| p.parse::<usize>().is_err())
    }

    /// Checks a send's `template` object: 132000 on a parameter mismatch.
    pub fn check(&self, template: &Value) -> Result<(), SimGraphError> {
        let mismatch = |details: String| {
            SimGraphError::new(
                132_000,
                "Number of parameters does not match the expected number of params",
                details,
            )
        };
        let components = template["components"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let of_type = |t: &str| -> Vec<&Value> {
            components
                .iter()
                .filter(|c| {
                    c["type"]
                        .as_str()
                        .is_some_and(|ct| ct.eq_ignore_ascii_case(t))
                })
                .collect()
        };
        let params = |c: &Value| c["parameters"].as_array().cloned().unwrap_or_default();
        let body: Vec<Value> = of_type("body")
            .first()
            .map(|c| params(c))
            .unwrap_or_default();
        if body.len() != self.body_params.len() {
            return Err(mismatch(format!(
                "body: expected {} parameters, got {}",
                self.body_params.len(),
                body.len()
            )));
        }
        if self.named() {
            let names: HashSet<&str> = body
                .iter()
                .filter_map(|p| p["parameter_name"].as_str())
                .collect();
            let expected: HashSet<&str> = self.body_params.iter().map(String::as_str).collect();
            if names != expected {
                return Err(mismatch(
                    "body: named parameters do not match the template".into(),
                ));
            }
        }
        let header: Vec<Value> = of_type("header")
            .first()
            .map(|c| params(c))
            .unwrap_or_default();
        let header_ok = match &self.header {
            HeaderDef::None => header.is_empty(),
            HeaderDef::Text(n) => header.len() == *n,
            HeaderDef::Image => header.len() == 1 && header[0]["type"] == "image",
            HeaderDef::Video => header.len() == 1 && header[0]["type"] == "video",
            HeaderDef::Document => header.len() == 1 && header[0]["type"] == "document",
        };
        if !header_ok {
            return Err(mismatch(format!("header: expected {:?}", self.header)));
        }
        let mut given = HashSet::new();
        for button in of_type("button") {
            let index = match &button["index"] {
                Value::String(s) => s.parse::<usize>().ok(),
                Value::Number(n) => n.as_u64().map(|n| n as usize),
                _ => None,
            };
            let Some(index) = index.filter(|i| *i < self.buttons.len()) else {
                return Err(mismatch(format!(
                    "button index {} is not in the template",
                    button["index"]
                )));
            };
            given.insert(index);
        }
        for (index, button) in self.buttons.iter().enumerate() {
            if matches!(
                button,
                ButtonDef::Url { dynamic: true } | ButtonDef::CopyCode
            ) && !given.contains(&index)
            {
                return Err(mismatch(format!(
                    "button {index}: its parameter (URL suffix or code) is missing"
                )));
            }
        }
        Ok(())
    }
}

/// The templates the simulator knows by default (those of the connector's flows and Meta's examples).
pub fn default_templates() -> Vec<TemplateDef> {
    vec![
        TemplateDef::positional("hello_world", "en_US", 0),
        TemplateDef {
            name: "order_invoice_ready".into(),
            language: "en_US".into(),
            category: "UTILITY".into(),
            header: HeaderDef::Document,
            body_params: vec!["1".into(), "2".into(), "3".into()],
            buttons: vec![ButtonDef::Url { dynamic: true }, ButtonDef::QuickReply],
        },
        TemplateDef {
            name: "appointment_reminder".into(),
            language: "es".into(),
            category: "UTILITY".into(),
            header: HeaderDef::Image,
            body_params: vec!["first_name".into(), "appt_time".into()],
            buttons: Vec::new(),
        },
        TemplateDef {
            category: "MARKETING".into(),
            ..TemplateDef::positional("spring_campaign", "en_US", 1)
        },
        TemplateDef {
            name: "review_request".into(),
            language: "en_US".into(),
            category: "UTILITY".into(),
            header: HeaderDef::None,
            body_params: vec!["1".into(), "2".into()],
            buttons: vec![ButtonDef::QuickReply, ButtonDef::QuickReply],
        },
    ]
}

/// Where Meta's review of a submitted template stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewStatus {
    /// Submitted, not reviewed yet.
    Pending,
    /// Usable for sends.
    Approved,
    /// Refused, with Meta's `rejected_reason` (`INVALID_FORMAT`, `PROMOTIONAL`, ...).
    Rejected(String),
}

impl ReviewStatus {
    /// Meta's `status` value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Approved => "APPROVED",
            Self::Rejected(_) => "REJECTED",
        }
    }
}

/// A template submitted through `POST /{waba}/message_templates`.
#[derive(Debug, Clone)]
pub struct SubmittedTemplate {
    /// Meta's template id.
    pub id: String,
    /// The request as accepted.
    pub request: shared::templates::Template,
    /// The review's state.
    pub status: ReviewStatus,
}

/// The templates of a catalogue directory (`templates/<name>/<language>.yaml`), as if submitted and
/// approved: a stack can start with the connector's own templates. Files with problems are left out.
pub fn catalogue_templates(dir: &std::path::Path) -> Vec<TemplateDef> {
    let catalogue = shared::templates::Catalogue::load(dir);
    catalogue
        .entries
        .iter()
        .filter(|e| !catalogue.problems.iter().any(|p| p.path == e.path))
        .map(|e| TemplateDef::from_request(&e.template))
        .collect()
}

/// Bytes of a media object.
#[derive(Debug, Clone)]
pub enum MediaBytes {
    /// Held in memory (uploads, small user media).
    Stored(axum::body::Bytes),
    /// Generated on the fly, for large downloads without large memory.
    Synthetic {
        /// Total size.
        size: u64,
    },
}

/// A media object.
#[derive(Debug, Clone)]
pub struct Media {
    /// MIME type.
    pub mime_type: String,
    /// The bytes.
    pub bytes: MediaBytes,
    /// Hex SHA-256 (what `GET /{media-id}` reports).
    pub sha256_hex: String,
    /// Size.
    pub size: u64,
    /// Serve one flipped byte (simulates corruption: the hash no longer matches).
    pub tampered: bool,
}

/// One line of a conversation.
#[derive(Debug, Clone, Serialize)]
pub struct ConversationLine {
    /// `in` (user → business) or `out`.
    pub direction: &'static str,
    /// The wamid.
    pub id: String,
    /// Message type.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short human-readable rendering.
    pub summary: String,
    /// For outbound: `accepted`, `sent`, `delivered`, `read`, `failed:<code>`; inbound: `received` / `read`.
    pub status: String,
    /// Unix seconds.
    pub timestamp: u64,
}

/// A simulated WhatsApp user.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    /// Phone digits, absent for username-only users.
    pub wa_id: Option<String>,
    /// Business-scoped user id.
    pub user_id: Option<String>,
    /// Profile name.
    pub name: String,
    /// Username, when adopted.
    pub username: Option<String>,
    #[serde(skip)]
    last_inbound: Option<Instant>,
    #[serde(skip)]
    pair_tokens: f64,
    #[serde(skip)]
    pair_updated: Option<Instant>,
    /// The user stopped marketing messages from the business (marketing templates fail with 131050).
    pub stopped_marketing: bool,
    /// The conversation, oldest first.
    pub lines: Vec<ConversationLine>,
}

impl User {
    /// The `contacts[]` object of webhooks about this user.
    pub fn contact(&self) -> Value {
        let mut profile = json!({ "name": self.name });
        if let Some(username) = &self.username {
            profile["username"] = json!(username);
        }
        let mut contact = json!({ "profile": profile });
        if let Some(wa_id) = &self.wa_id {
            contact["wa_id"] = json!(wa_id);
        }
        if let Some(user_id) = &self.user_id {
            contact["user_id"] = json!(user_id);
        }
        contact
    }

    /// `true` when the user wrote within the last 24 hours.
    pub fn window_open(&self, now: Instant) -> bool {
        self.last_inbound
            .is_some_and(|at| now.duration_since(at) < Duration::from_secs(24 * 3600))
    }
}

/// Limits the simulator enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Messages per second per business number (130429 beyond).
    pub throughput_per_second: u32,
    /// Burst of messages to one user before the pair rate applies (131056 beyond).
    pub pair_burst: u32,
    /// One message per this interval to one user, once the burst is spent.
    pub pair_interval: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            throughput_per_second: 80,
            pair_burst: 45,
            pair_interval: Duration::from_secs(6),
        }
    }
}

/// Everything the simulator remembers.
#[derive(Debug)]
pub struct World {
    /// Users by key (phone digits or BSUID).
    pub users: BTreeMap<String, User>,
    /// Media by id.
    pub media: HashMap<String, Media>,
    /// Download tickets: ticket → (media id, expiry).
    pub tickets: HashMap<String, (String, Instant)>,
    /// Approved templates.
    pub templates: Vec<TemplateDef>,
    /// Templates submitted to the WABA, in submission order.
    pub submitted: Vec<SubmittedTemplate>,
    /// Review rules: a template of this name is rejected with this reason; others are approved.
    pub review_rejections: BTreeMap<String, String>,
    /// The next download URL handed out is already expired (to exercise the client's refetch).
    pub expire_next_url: bool,
    /// This many coming message requests fail with a 500 and code 131000 (a Graph outage).
    pub outage_requests: u32,
    /// Inbound wamids (for mark-as-read).
    pub inbound: HashMap<String, String>,
    /// Outbound wamids → user key.
    pub outbound: HashMap<String, String>,
    /// When each message request was accepted, oldest first (for the most in any second).
    pub accepted_at: Vec<Instant>,
    /// A fault answering every message request while its count lasts (a switch, not a clock).
    pub fault: Option<(Fault, u32)>,
    /// The next this many accepted messages are answered only after this delay (longer than the
    /// client's timeout: the message exists, the sender never learns its id).
    pub stall: Option<(u32, std::time::Duration)>,
    limits: Limits,
    window: (Option<Instant>, u32),
    counter: u64,
}

/// A fault window of the message endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 130429: throughput reached.
    Throughput,
    /// 131056: pair rate limit hit.
    PairRate,
    /// HTTP 500 without a Graph error body (a proxy's or a load balancer's answer).
    ServerError,
    /// 190: the access token expired.
    TokenInvalid,
}

impl Fault {
    /// The error answered, or `None` for a bare HTTP 500.
    pub fn error(self) -> Option<SimGraphError> {
        match self {
            Self::Throughput => Some(SimGraphError::new(
                130_429,
                "Rate limit hit",
                "Cloud API message throughput has been reached.",
            )),
            Self::PairRate => Some(SimGraphError::new(
                131_056,
                "(Business Account, Consumer Account) pair rate limit hit",
                "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.",
            )),
            Self::ServerError => None,
            Self::TokenInvalid => Some(SimGraphError::token()),
        }
    }
}

/// The most instants of `sorted` within any window of one second (`[t, t + 1 s)`).
pub fn most_in_any_second(sorted: &[Instant]) -> usize {
    let mut most = 0;
    let mut start = 0;
    for (end, at) in sorted.iter().enumerate() {
        while at.duration_since(sorted[start]) >= Duration::from_secs(1) {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}

impl World {
    /// An empty world.
    pub fn new(templates: Vec<TemplateDef>, limits: Limits) -> Self {
        Self {
            users: BTreeMap::new(),
            media: HashMap::new(),
            tickets: HashMap::new(),
            templates,
            submitted: Vec::new(),
            review_rejections: BTreeMap::new(),
            expire_next_url: false,
            outage_requests: 0,
            inbound: HashMap::new(),
            outbound: HashMap::new(),
            accepted_at: Vec::new(),
            fault: None,
            stall: None,
            limits,
            window: (None, 0),
            counter: 0,
        }
    }

    /// A fresh number for ids.
    pub fn next_id(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// A wamid like Meta's (`wamid.` + base64).
    pub fn wamid(&mut self, direction: &str) -> String {
        use base64::Engine as _;
        let n = self.next_id();
        let raw = format!("SIM{direction}{n:020}");
        format!(
            "wamid.{}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    /// The user with this key, created (window closed) on first contact.
    pub fn user(&mut self, key: &str) -> &mut User {
        self.users.entry(key.to_owned()).or_insert_with(|| {
            let is_bsuid = key.contains('.');
            let tail: String = key
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            User {
                wa_id: (!is_bsuid).then(|| key.to_owned()),
                user_id: is_bsuid.then(|| key.to_owned()),
                name: format!("Sim User {tail}"),
                username: None,
                last_inbound: None,
                pair_tokens: 0.0,
                pair_updated: None,
                stopped_marketing: false,
                lines: Vec::new(),
            }
        })
    }

    /// Records that the user wrote now (opens or refreshes the 24-hour window).
    pub fn touch_inbound(&mut self, key: &str, at: Instant) {
        self.user(key).last_inbound = Some(at);
    }

    /// Moves the user's last inbound message `ago` into the past (to close the window in tests).
    pub fn set_last_inbound(&mut self, key: &str, at: Option<Instant>) {
        self.user(key).last_inbound = at;
    }

    /// Counts a request against the per-number throughput; `Err` is 130429.
    pub fn take_throughput(&mut self, now: Instant) -> Result<(), SimGraphError> {
        let (start, count) = &mut self.window;
        if start.is_none_or(|s| now.duration_since(s) >= Duration::from_secs(1)) {
            *start = Some(now);
            *count = 0;
        }
        *count += 1;
        if *count > self.limits.throughput_per_second {
            return Err(SimGraphError::new(
                130_429,
                "Rate limit hit",
                "Cloud API message throughput has been reached.",
            ));
        }
        Ok(())
    }

    /// Takes one message from the user's pair-rate bucket; `Err` is 131056.
    pub fn take_pair(&mut self, key: &str, now: Instant) -> Result<(), SimGraphError> {
        let limits = self.limits;
        let user = self.user(key);
        let burst = f64::from(limits.pair_burst.max(1));
        let tokens = match user.pair_updated {
            None => burst,
            Some(at) => (user.pair_tokens
                + now.duration_since(at).as_secs_f64()
                    / limits.pair_interval.as_secs_f64().max(1e-3))
            .min(burst),
        };
        user.pair_updated = Some(now);
        if tokens < 1.0 {
            user.pair_tokens = tokens;
            return Err(SimGraphError::new(
                131_056,
                "(Business Account, Consumer Account) pair rate limit hit",
                "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.",
            ));
        }
        user.pair_tokens = tokens - 1.0;
        Ok(())
    }

    /// 132001 unless a template with this name and exact language exists; then its parameter check.
    pub fn check_template(&self, template: &Value) -> Result<(), SimGraphError> {
        let name = template["name"].as_str().unwrap_or_default();
        let language = template["language"]["code"].as_str().unwrap_or_default();
        let Some(def) = self
            .templates
            .iter()
            .find(|t| t.name == name && t.language == language)
        else {
            return Err(SimGraphError::new(
                132_001,
                "Template name does not exist in the translation",
                format!("template name ({name}) does not exist in {language}"),
            ));
        };
        def.check(template)
    }

    /// Accepts a create-template request as Meta does: the same checks as the offline
    /// validator, then no second template of one name and language. The template is PENDING.
    pub fn submit_template(
        &mut self,
        request: shared::templates::Template,
    ) -> Result<&SubmittedTemplate, SimGraphError> {
        let problems = request.validate_request();
        if !problems.is_empty() {
            let details: Vec<String> = problems.iter().take(5).map(ToString::to_string).collect();
            return Err(SimGraphError::invalid(details.join("; ")));
        }
        let exists = self
            .templates
            .iter()
            .any(|t| t.name == request.name && t.language == request.language)
            || self.submitted.iter().any(|t| {
                t.request.name == request.name
                    && t.request.language == request.language
                    && !matches!(t.status, ReviewStatus::Rejected(_))
            });
        if exists {
            return Err(SimGraphError::invalid(format!(
                "Content in this language already exists: {} ({})",
                request.name, request.language
            )));
        }
        // A rejected template is replaced by its corrected resubmission.
        self.submitted.retain(|t| {
            !(t.request.name == request.name && t.request.language == request.language)
        });
        let id = format!("{}", 1_600_000_000_000_000 + self.next_id());
        self.submitted.push(SubmittedTemplate {
            id,
            request,
            status: ReviewStatus::Pending,
        });
        Ok(self.submitted.last().expect("just pushed"))
    }

    /// Completes the review of every PENDING template: rejected when a review rule names it,
    /// approved (and usable for sends) otherwise. Returns how many were reviewed.
    pub fn review_templates(&mut self) -> usize {
        let mut approved = Vec::new();
        let mut reviewed = 0;
        for t in &mut self.submitted {
            if t.status != ReviewStatus::Pending {
                continue;
            }
            reviewed += 1;
            t.status = match self.review_rejections.get(&t.request.name) {
                Some(reason) => ReviewStatus::Rejected(reason.clone()),
                None => {
                    approved.push(TemplateDef::from_request(&t.request));
                    ReviewStatus::Approved
                }
            };
        }
        self.templates.extend(approved);
        reviewed
    }

    /// `true` when the template is a marketing one.
    pub fn is_marketing(&self, template: &Value) -> bool {
        let name = template["name"].as_str().unwrap_or_default();
        self.templates
            .iter()
            .any(|t| t.name == name && t.category.eq_ignore_ascii_case("MARKETING"))
    }

    /// Appends a conversation line.
    pub fn record(&mut self, key: &str, line: ConversationLine) {
        self.user(key).lines.push(line);
    }

    /// Sets the status of a line.
    pub fn set_status(&mut self, key: &str, id: &str, status: &str) {
        if let Some(line) = self.user(key).lines.iter_mut().find(|l| l.id == id) {
            line.status = status.to_owned();
        }
    }
}

/// Unix seconds now, as Meta's timestamp string.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Renders a sent body for the conversation view.
pub fn summarize(body: &Value) -> (String, String) {
    let kind = body["type"].as_str().unwrap_or("text").to_owned();
    let content = &body[kind.as_str()];
    let summary = match kind.as_str() {
        "text" => content["body"].as_str().unwrap_or_default().to_owned(),
        "template" => format!("template {}", content["name"].as_str().unwrap_or_default()),
        "interactive" => {
            let body_text = content["body"]["text"].as_str().unwrap_or_default();
            let choices: Vec<&str> = content["action"]["buttons"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|b| b["reply"]["title"].as_str())
                .collect();
            format!("{body_text} [{}]", choices.join(" | "))
        }
        other => {
            let caption = content["caption"].as_str().unwrap_or_default();
            format!("{other} {caption}").trim().to_owned()
        }
    };
    (kind, summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn world(limits: Limits) -> World {
        World::new(default_templates(), limits)
    }

    #[test]
    fn the_most_in_any_second_slides_over_second_boundaries() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let sends = [at(0), at(600), at(900), at(1100), at(1500), at(2600)];
        assert_eq!(most_in_any_second(&sends), 4, "600, 900, 1100, 1500");
        assert_eq!(most_in_any_second(&[]), 0);
    }

    #[test]
    fn throughput_beyond_the_limit_in_one_second_is_130429() {
        let mut w = world(Limits {
            throughput_per_second: 3,
            ..Limits::default()
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(w.take_throughput(t0).is_ok());
        }
        assert_eq!(w.take_throughput(t0).map_err(|e| e.code), Err(130_429));
        assert!(w.take_throughput(t0 + Duration::from_millis(1001)).is_ok());
    }

    #[test]
    fn the_pair_rate_allows_a_burst_then_one_message_per_interval() {
        let mut w = world(Limits {
            pair_burst: 2,
            ..Limits::default()
        });
        let t0 = Instant::now();
        assert!(w.take_pair("1", t0).is_ok());
        assert!(w.take_pair("1", t0).is_ok());
        assert_eq!(w.take_pair("1", t0).map_err(|e| e.code), Err(131_056));
        assert!(w.take_pair("2", t0).is_ok(), "other users are unaffected");
        assert!(w.take_pair("1", t0 + Duration::from_secs(6)).is_ok());
        assert!(w.take_pair("1", t0 + Duration::from_secs(7)).is_err());
    }

    #[test]
    fn templates_are_matched_by_name_and_exact_language_then_parameter_count() {
        let w = world(Limits::default());
        let template = |name: &str, language: &str, params: usize| {
            json!({"name": name, "language": {"code": language}, "components": [
                {"type": "body", "parameters": (0..params).map(|i| json!({"type": "text", "text": i.to_string()})).collect::<Vec<_>>()}
            ]})
        };
        assert!(
            w.check_template(&template("review_request", "en_US", 2))
                .is_ok()
        );
        assert_eq!(
            w.check_template(&template("review_request", "en", 2))
                .map_err(|e| e.code),
            Err(132_001)
        );
        assert_eq!(
            w.check_template(&template("nope", "en_US", 2))
                .map_err(|e| e.code),
            Err(132_001)
        );
        assert_eq!(
            w.check_template(&template("review_request", "en_US", 1))
                .map_err(|e| e.code),
            Err(132_000)
        );
        assert_eq!(
            w.check_template(&json!({"name": "order_invoice_ready", "language": {"code": "en_US"}, "components": [
                {"type": "header", "parameters": [{"type": "document", "document": {"id": "1"}}]},
                {"type": "body", "parameters": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}, {"type": "text", "text": "c"}]}
            ]})).map_err(|e| e.code),
            Err(132_000),
            "the dynamic URL button needs its parameter"
        );
    }

    #[test]
    fn the_window_is_open_for_24_hours_after_the_last_inbound_message() {
        let mut w = world(Limits::default());
        let now = Instant::now();
        assert!(!w.user("447700900123").window_open(now));
        w.touch_inbound("447700900123", now);
        assert!(
            w.user("447700900123")
                .window_open(now + Duration::from_secs(23 * 3600))
        );
        assert!(
            !w.user("447700900123")
                .window_open(now + Duration::from_secs(24 * 3600))
        );
    }
}
