//! The contact directory's entries: who a WhatsApp user is to the connector (roles, regions,
//! language, quiet hours) and whether they may be messaged (opt-in / opt-out).

use crate::pseudonym::UserPseudonym;
use crate::whatsapp::messages::{Recipient, ValidationError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// What a contact does; flows pick recipients by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reviews assets (flow 1).
    Approver,
    /// Sends photos, videos and documents from the field (flow 2).
    Field,
    /// A regional team, agency or store manager receiving campaign packages (flow 4).
    Regional,
    /// Sales or support rep sharing approved assets (flow 5).
    Rep,
    /// Legal reviewer of rights and licences (flow 3).
    Legal,
    /// Owns assets: hears about expiry and issues (flows 3 and 7).
    Owner,
    /// A customer or ambassador submitting content (flow 6).
    Ugc,
}

impl Role {
    /// Every role, in a stable order.
    pub const ALL: [Role; 7] = [
        Role::Approver,
        Role::Field,
        Role::Regional,
        Role::Rep,
        Role::Legal,
        Role::Owner,
        Role::Ugc,
    ];

    /// The role's name in files and tables (`approver`, `field`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approver => "approver",
            Self::Field => "field",
            Self::Regional => "regional",
            Self::Rep => "rep",
            Self::Legal => "legal",
            Self::Owner => "owner",
            Self::Ugc => "ugc",
        }
    }

    /// Parses a role name, case-insensitively.
    pub fn parse(name: &str) -> Option<Self> {
        let name = name.trim();
        Self::ALL
            .into_iter()
            .find(|role| role.as_str().eq_ignore_ascii_case(name))
    }
}

/// Where a message to a user goes: a phone number in E.164 (`+` and digits) or a business-scoped
/// user id. Personal data: `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WhatsAppAddress(String);

impl WhatsAppAddress {
    /// A phone number in any usual format (normalised to `+` and digits) or a BSUID (`US.1349…`).
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        let recipient = if value.contains('.') {
            Recipient::user_id(value.trim())?
        } else {
            Recipient::phone(value.trim())?
        };
        Ok(Self(match recipient {
            Recipient::Phone(phone) | Recipient::UserId(phone) => phone,
        }))
    }

    /// Meta's `wa_id` of an inbound message (digits, no `+`) or a BSUID.
    pub fn from_wa_id(wa_id: &str) -> Result<Self, ValidationError> {
        Self::parse(wa_id)
    }

    /// The recipient of a send.
    pub fn recipient(&self) -> Recipient {
        if self.0.starts_with('+') {
            Recipient::Phone(self.0.clone())
        } else {
            Recipient::UserId(self.0.clone())
        }
    }

    /// The clear value, for the directory export and the Graph request only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WhatsAppAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WhatsAppAddress(<redacted>)")
    }
}

/// Local hours during which a contact is not sent non-urgent messages (`22:00`–`07:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietHours {
    /// Minutes after local midnight when quiet begins.
    pub start_minute: u16,
    /// Minutes after local midnight when quiet ends (before `start_minute`: quiet spans midnight).
    pub end_minute: u16,
}

impl QuietHours {
    /// Parses `HH:MM-HH:MM`.
    pub fn parse(value: &str) -> Option<Self> {
        let (start, end) = value.trim().split_once('-')?;
        let minute = |t: &str| {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let (start_minute, end_minute) = (minute(start)?, minute(end)?);
        (start_minute != end_minute).then_some(Self {
            start_minute,
            end_minute,
        })
    }

    /// Whether `minute_of_day` (local) falls inside the quiet hours.
    pub fn contains(&self, minute_of_day: u16) -> bool {
        if self.start_minute < self.end_minute {
            (self.start_minute..self.end_minute).contains(&minute_of_day)
        } else {
            minute_of_day >= self.start_minute || minute_of_day < self.end_minute
        }
    }
}

impl fmt::Display for QuietHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start_minute / 60,
            self.start_minute % 60,
            self.end_minute / 60,
            self.end_minute % 60
        )
    }
}

/// How and when a contact agreed to be messaged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptIn {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// Where the consent came from (`import:hr-2026-11.csv`, `whatsapp:START`, ...).
    pub source: String,
}

/// One directory entry. A user the directory does not list (a customer who wrote once, someone who
/// only sent STOP) may still have an entry holding just their opt-out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The key: the keyed hash of the number or BSUID.
    pub pseudonym: UserPseudonym,
    /// Where sends go; kept only for contacts the connector messages.
    #[serde(default)]
    pub address: Option<WhatsAppAddress>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// What they do.
    #[serde(default)]
    pub roles: BTreeSet<Role>,
    /// Regions they cover (campaign rollout targets them by region).
    #[serde(default)]
    pub regions: BTreeSet<String>,
    /// Preferred template language (`en_US`, `fr_FR`).
    #[serde(default)]
    pub language: Option<String>,
    /// IANA time zone, for quiet hours and dates in messages.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Local hours without non-urgent messages.
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    /// The project their field media is tagged with unless a caption says otherwise.
    #[serde(default)]
    pub project_tag: Option<String>,
    /// When and how they opted in.
    #[serde(default)]
    pub opted_in: Option<OptIn>,
    /// When they opted out (Unix milliseconds); nothing is sent to them while set.
    #[serde(default)]
    pub opted_out_at_ms: Option<i64>,
}

impl Contact {
    /// An entry with nothing but its key.
    pub fn new(pseudonym: UserPseudonym) -> Self {
        Self {
            pseudonym,
            address: None,
            name: None,
            roles: BTreeSet::new(),
            regions: BTreeSet::new(),
            language: None,
            time_zone: None,
            quiet_hours: None,
            project_tag: None,
            opted_in: None,
            opted_out_at_ms: None,
        }
    }

    /// Whether the contact has `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether sends to them are suppressed.
    pub fn is_opted_out(&self) -> bool {
        self.opted_out_at_ms.is_some()
    }
}

/// What an opt-out or opt-in did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptChange {
    /// The state changed (confirm it to the user).
    Changed,
    /// It already was so (do not confirm twice).
    Unchanged,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_in_any_case_and_unknown_ones_are_refused() {
        assert_eq!(Role::parse(" Approver "), Some(Role::Approver));
        assert_eq!(Role::parse("LEGAL"), Some(Role::Legal));
        assert_eq!(Role::parse("boss"), None);
    }

    #[test]
    fn an_address_is_normalised_and_never_shown_in_debug() {
        let a = WhatsAppAddress::parse("+44 7700 900123").expect("valid");
        assert_eq!(a.expose(), "+447700900123");
        assert_eq!(
            a,
            WhatsAppAddress::from_wa_id("447700900123").expect("valid")
        );
        assert!(!format!("{a:?}").contains("7700"));
        assert!(matches!(a.recipient(), Recipient::Phone(_)));
        let b = WhatsAppAddress::parse("US.13491208655302741918").expect("valid");
        assert!(matches!(b.recipient(), Recipient::UserId(_)));
        assert!(WhatsAppAddress::parse("12ab").is_err());
    }

    #[test]
    fn quiet_hours_may_span_midnight() {
        let q = QuietHours::parse("22:00-07:00").expect("valid");
        assert!(q.contains(23 * 60));
        assert!(q.contains(6 * 60 + 59));
        assert!(!q.contains(7 * 60));
        assert!(!q.contains(12 * 60));
        assert_eq!(q.to_string(), "22:00-07:00");
        let day = QuietHours::parse("12:00-13:30").expect("valid");
        assert!(day.contains(12 * 60 + 15));
        assert!(!day.contains(13 * 60 + 30));
        assert_eq!(QuietHours::parse("25:00-07:00"), None);
        assert_eq!(QuietHours::parse("07:00-07:00"), None);
    }
}
