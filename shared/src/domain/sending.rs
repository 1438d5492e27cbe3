//! The one sender's rules, pure: what goes out (free-form inside the 24-hour window, the template
//! outside it), in which language, how long to back off, how sends are paced, and how delivery
//! statuses combine whatever order they arrive in.

use crate::connector_config::TemplateRef;
use crate::domain::outbound::{OutboundRequest, SendKey, TemplateMessage};
use crate::whatsapp::messages::{Content, Template};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Why a request was recorded and acknowledged without reaching Graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressReason {
    /// The recipient opted out (STOP) before the request was sent.
    OptedOut,
    /// The 24-hour window is closed and the request carries no template.
    WindowClosedNoTemplate,
    /// The request's template use has no template in the configuration.
    TemplateNotConfigured,
    /// No configured business number matches the request's `from`.
    UnknownSendingNumber,
}

impl SuppressReason {
    /// The reason as recorded.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OptedOut => "opted_out",
            Self::WindowClosedNoTemplate => "window_closed_no_template",
            Self::TemplateNotConfigured => "template_not_configured",
            Self::UnknownSendingNumber => "unknown_sending_number",
        }
    }
}

/// What the sender sends for a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Choice<'a> {
    /// The free-form content (the window is open).
    Content(&'a Content),
    /// The request's template (the window is closed, or there is no content).
    Template(&'a TemplateMessage),
    /// Nothing can go out.
    Suppress(SuppressReason),
}

/// Free-form content inside the window; the template outside it (or when there is no content).
/// Content that is itself a template is sent whatever the window.
pub fn choose(request: &OutboundRequest, window_open: bool) -> Choice<'_> {
    match (&request.content, &request.template) {
        (Some(content), _) if window_open || content.is_template() => Choice::Content(content),
        (_, Some(template)) => Choice::Template(template),
        (Some(_), None) | (None, None) => Choice::Suppress(SuppressReason::WindowClosedNoTemplate),
    }
}

/// The approved template for a message: the recipient's language when the template exists in it,
/// else the configured default.
pub fn render_template(
    message: &TemplateMessage,
    configured: &TemplateRef,
    recipient_language: Option<&str>,
) -> Template {
    let language = recipient_language
        .filter(|l| configured.has_language(l))
        .unwrap_or(&configured.language);
    Template {
        name: configured.name.clone(),
        language: language.to_owned(),
        header: message.header.clone(),
        body: message.body.clone(),
        buttons: message.buttons.clone(),
    }
}

/// The send key of the template version of a request (after a late `131047`): another send,
/// which the claims let happen once.
pub fn template_version_key(key: &SendKey) -> SendKey {
    SendKey {
        version: format!("{}#template", key.version),
        ..key.clone()
    }
}

/// The template version of a request whose free-form content failed outside the window; `None`
/// when it has no template or already is the template version.
pub fn template_version(request: &OutboundRequest) -> Option<OutboundRequest> {
    if request.key.version.ends_with("#template") {
        return None;
    }
    let template = request.template.clone()?;
    Some(OutboundRequest {
        key: template_version_key(&request.key),
        content: None,
        template: Some(template),
        ..request.clone()
    })
}

/// "Full jitter" backoff: a uniformly random wait in `[base/2, base]`, where `base` is the
/// error class's delay for `attempt`, so concurrent senders do not retry in step. `unit` is a
/// random number in `[0, 1)`.
pub fn jittered(base: Duration, unit: f64) -> Duration {
    let unit = unit.clamp(0.0, 1.0);
    base.mul_f64(0.5 + unit / 2.0)
}

/// The first retry waits this long for the exponential classes (Meta's own guidance starts at
/// seconds; a sender inside a Lambda invocation starts lower and lets the deadline decide).
pub const FIRST_RETRY: Duration = Duration::from_millis(250);

/// Base delay of retry `attempt` (0-based): `FIRST_RETRY × factor^attempt`, capped.
pub fn retry_delay(factor: u32, attempt: u32, cap: Duration) -> Duration {
    let multiplier = factor.saturating_pow(attempt);
    FIRST_RETRY.saturating_mul(multiplier).min(cap)
}

/// A pacing bucket: the generic cell rate algorithm (GCRA) over a "theoretical arrival time".
/// A send is allowed at `max(now, tat - tolerance)`; each send moves `tat` on by `interval`.
/// Times are microseconds (80/s is 12.5 ms apart: milliseconds are too coarse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Time between sends at the sustained rate.
    pub interval_us: i64,
    /// How far ahead of the sustained rate a burst may go (`(burst - 1) × interval`).
    pub tolerance_us: i64,
}

impl Pace {
    /// At most `per_second` messages in any one-second window. The spacing keeps 10 % headroom
    /// below the limit, for the jitter between a reserved time and the request reaching Graph.
    pub fn per_number(per_second: u32) -> Self {
        let usable = f64::from(per_second.max(1)) * 0.9;
        Self {
            interval_us: (1_000_000.0 / usable).ceil() as i64,
            tolerance_us: 0,
        }
    }

    /// Meta's pair rate: a burst of `burst` messages, then one per `interval`.
    pub fn pair(burst: u32, interval: Duration) -> Self {
        let interval_us = i64::try_from(interval.as_micros()).unwrap_or(i64::MAX);
        Self {
            interval_us,
            tolerance_us: interval_us.saturating_mul(i64::from(burst.max(1) - 1)),
        }
    }
}

/// What the pacing algorithm decides for one send at `now` (microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaceDecision {
    /// Send at `at` (≥ now); the bucket's new theoretical arrival time is `tat`.
    Reserve {
        /// When to send.
        at: i64,
        /// The new theoretical arrival time.
        tat: i64,
    },
    /// The earliest slot is later than `now + horizon`: nothing reserved; try again at `retry_at`.
    Busy {
        /// When a slot within the horizon opens.
        retry_at: i64,
    },
}

/// GCRA over `tat` (absent: the bucket is idle), allowing a wait of at most `horizon`.
pub fn pace(pace: Pace, tat: Option<i64>, now: i64, horizon: i64) -> PaceDecision {
    let tat = tat.unwrap_or(now).max(now);
    let at = (tat - pace.tolerance_us).max(now);
    if at > now + horizon {
        return PaceDecision::Busy {
            retry_at: at - horizon,
        };
    }
    PaceDecision::Reserve {
        at,
        tat: tat + pace.interval_us,
    }
}

/// A delivery state as the sent-message record keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Graph accepted the request.
    Accepted,
    /// Left Meta's servers.
    Sent,
    /// On the phone.
    Delivered,
    /// Opened (or a voice message played).
    Read,
    /// Failed; the record keeps Meta's code and title.
    Failed,
}

impl DeliveryState {
    /// The state's name in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
        }
    }

    /// Parses a recorded name.
    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::Accepted,
            Self::Sent,
            Self::Delivered,
            Self::Read,
            Self::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == value)
    }

    /// Rank for the monotonic update: a later status never moves a record back
    /// (read beats delivered beats sent; a failure is final).
    pub fn rank(self) -> u8 {
        match self {
            Self::Accepted => 0,
            Self::Sent => 1,
            Self::Delivered => 2,
            Self::Read => 3,
            Self::Failed => 4,
        }
    }

    /// The state a record ends in after `incoming` arrives, whatever the order.
    pub fn merge(current: Option<Self>, incoming: Self) -> Self {
        match current {
            Some(current) if current.rank() >= incoming.rank() => current,
            _ => incoming,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector_config::{Purpose, TemplateUse};
    use crate::domain::contact::WhatsAppAddress;
    use crate::domain::outbound::{MessageFlow, OUTBOUND_VERSION, SendFrom};
    use crate::pseudonym::Pseudonymizer;
    use crate::secrets::Secret;
    use crate::whatsapp::messages::TemplateParam;

    fn request(content: bool, template: bool) -> OutboundRequest {
        OutboundRequest {
            v: OUTBOUND_VERSION,
            key: SendKey {
                flow: MessageFlow::FieldIngest,
                subject: "wamid.IN1".into(),
                version: "receipt".into(),
                recipient: Pseudonymizer::new(&Secret::new("k")).pseudonym("447700900123"),
            },
            to: WhatsAppAddress::parse("+447700900123").expect("number"),
            from: SendFrom::Purpose(Purpose::FieldIngest),
            content: content.then(|| Content::Text {
                body: "Received".into(),
                preview_url: false,
            }),
            template: template.then(|| TemplateMessage {
                template: TemplateUse::Receipt,
                header: None,
                body: vec![TemplateParam::text("3")],
                buttons: Vec::new(),
            }),
            reply_to: None,
            actor: None,
            requested_at_ms: 1,
        }
    }

    #[test]
    fn free_form_goes_inside_the_window_and_the_template_outside_it() {
        let both = request(true, true);
        assert!(matches!(choose(&both, true), Choice::Content(_)));
        assert!(matches!(choose(&both, false), Choice::Template(_)));
        assert_eq!(
            choose(&request(true, false), false),
            Choice::Suppress(SuppressReason::WindowClosedNoTemplate)
        );
        assert!(matches!(
            choose(&request(false, true), true),
            Choice::Template(_)
        ));
    }

    #[test]
    fn the_recipients_language_is_used_only_when_the_template_exists_in_it() {
        let configured = TemplateRef {
            name: "content_receipt".into(),
            language: "en_US".into(),
            languages: vec!["en_US".into(), "fr_FR".into()],
        };
        let message = request(false, true).template.expect("template");
        assert_eq!(
            render_template(&message, &configured, Some("fr_FR")).language,
            "fr_FR"
        );
        assert_eq!(
            render_template(&message, &configured, Some("de_DE")).language,
            "en_US"
        );
        assert_eq!(
            render_template(&message, &configured, None).name,
            "content_receipt"
        );
    }

    #[test]
    fn the_template_version_is_another_send_made_only_once() {
        let original = request(true, true);
        let fallback = template_version(&original).expect("has a template");
        assert_eq!(fallback.key.version, "receipt#template");
        assert!(fallback.content.is_none());
        assert_eq!(template_version(&fallback), None, "never a second fallback");
        assert_eq!(template_version(&request(true, false)), None);
    }

    #[test]
    fn jitter_stays_between_half_and_the_whole_delay() {
        let base = Duration::from_secs(2);
        assert_eq!(jittered(base, 0.0), Duration::from_secs(1));
        assert!(jittered(base, 0.999) <= base);
        assert_eq!(
            retry_delay(4, 2, Duration::from_secs(60)),
            Duration::from_secs(4)
        );
        assert_eq!(
            retry_delay(2, 20, Duration::from_secs(5)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn the_per_number_pace_never_allows_more_than_the_limit_in_any_second() {
        let pace_80 = Pace::per_number(80);
        let mut tat = None;
        let mut sends = Vec::new();
        for _ in 0..400 {
            match pace(pace_80, tat, 0, 10_000_000) {
                PaceDecision::Reserve { at, tat: next } => {
                    sends.push(at);
                    tat = Some(next);
                }
                PaceDecision::Busy { .. } => panic!("the horizon is wide"),
            }
        }
        let most = sends
            .iter()
            .map(|start| {
                sends
                    .iter()
                    .filter(|t| **t >= *start && **t < start + 1_000_000)
                    .count()
            })
            .max()
            .unwrap_or(0);
        assert!(most <= 80, "{most} in one second");
        assert!(most >= 70, "{most}: the pace wastes too much of the limit");
    }

    #[test]
    fn the_pair_pace_allows_a_burst_then_one_per_interval_and_never_waits_past_the_horizon() {
        let pair = Pace::pair(3, Duration::from_secs(6));
        let mut tat = None;
        let mut at = Vec::new();
        for _ in 0..4 {
            let PaceDecision::Reserve { at: t, tat: next } = pace(pair, tat, 0, 60_000_000) else {
                panic!("within the horizon");
            };
            at.push(t);
            tat = Some(next);
        }
        assert_eq!(at, [0, 0, 0, 6_000_000]);
        assert_eq!(
            pace(pair, tat, 0, 1_000_000),
            PaceDecision::Busy {
                retry_at: 11_000_000
            }
        );
    }

    #[test]
    fn statuses_combine_monotonically_whatever_their_order() {
        use DeliveryState::*;
        let mut state = None;
        for s in [Read, Delivered, Sent] {
            state = Some(DeliveryState::merge(state, s));
        }
        assert_eq!(state, Some(Read));
        assert_eq!(DeliveryState::merge(Some(Sent), Failed), Failed);
        assert_eq!(DeliveryState::merge(Some(Failed), Read), Failed);
        assert_eq!(DeliveryState::parse("delivered"), Some(Delivered));
    }
}
