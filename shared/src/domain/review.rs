//! Review requests (flow 1) and issue alerts (flow 7): who may decide, what a late or foreign tap
//! is told, and the lines written to the DAM's comment log. Pure: the flows hold the I/O.

use crate::domain::dam::{DomainEventKind, PolicyReason};
use crate::pseudonym::UserPseudonym;
use serde::{Deserialize, Serialize};

/// Button action of an approval.
pub const APPROVE: &str = "approve";
/// Button action of a rejection.
pub const REJECT: &str = "reject";
/// Send-key version suffix of the prompt asking a rejecting approver for the reason.
pub const REASON_SUFFIX: &str = "#reason";

/// An approver asked to decide one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approver {
    /// Their directory key.
    pub who: UserPseudonym,
    /// Their display name (as the comment names them).
    pub name: String,
}

/// What was decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Approved.
    Approved,
    /// Rejected, with the approver's reason.
    Rejected {
        /// As the approver wrote it.
        reason: String,
    },
}

/// The one decision of a review request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// What.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// Who (`None`: decided in the DAM itself).
    pub by: Option<UserPseudonym>,
    /// Their name, as written in the comment.
    pub by_name: String,
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// The wamid of the answer that decided (a redelivery of it finishes the job, it is not "late").
    pub message: Option<String>,
}

/// One review request: an asset version and the approvers asked to decide it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRequest {
    /// The asset.
    pub asset: String,
    /// The version asked about.
    pub version: String,
    /// Who was asked.
    pub approvers: Vec<Approver>,
    /// The review deadline, Unix seconds, when the asset has one.
    pub deadline: Option<i64>,
    /// The decision, once made.
    pub decision: Option<Decision>,
    /// Whether the reminder went out.
    pub reminded: bool,
}

impl ReviewRequest {
    /// The approver entry of `who`, if they were asked.
    pub fn approver(&self, who: &UserPseudonym) -> Option<&Approver> {
        self.approvers.iter().find(|a| &a.who == who)
    }
}

/// A tap or an answer on a review request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<'a> {
    /// Who answered.
    pub who: &'a UserPseudonym,
    /// The version their buttons were for.
    pub version: &'a str,
    /// The answer's wamid.
    pub message: &'a str,
}

/// What to do with an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// The request is open and the approver was asked: their answer may decide.
    MayDecide,
    /// This very answer already decided (a redelivery): finish what it started.
    DecidedByThis,
    /// Someone (or the DAM) decided first.
    AlreadyDecided {
        /// Who.
        by_name: String,
        /// When, Unix milliseconds.
        at_ms: i64,
    },
    /// The buttons were for a version no longer under review.
    OlderVersion,
    /// The person was not asked to review this version.
    NotAsked,
    /// There is no request for this asset.
    NoRequest,
}

/// Judges `answer` against the asset's current request.
pub fn judge(request: Option<&ReviewRequest>, answer: &Answer<'_>) -> Judgement {
    let Some(request) = request else {
        return Judgement::NoRequest;
    };
    if let Some(decision) = &request.decision
        && decision.message.as_deref() == Some(answer.message)
    {
        return Judgement::DecidedByThis;
    }
    if request.version != answer.version {
        // An older version's buttons: say it was decided when it was, else that it moved on.
        return Judgement::OlderVersion;
    }
    if request.approver(answer.who).is_none() {
        return Judgement::NotAsked;
    }
    match &request.decision {
        Some(decision) => Judgement::AlreadyDecided {
            by_name: decision.by_name.clone(),
            at_ms: decision.at_ms,
        },
        None => Judgement::MayDecide,
    }
}

/// `2026-12-02 14:05 UTC`.
pub fn utc_minute(at_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(at_ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| at_ms.to_string())
}

/// The comment line a decision adds to the asset.
pub fn decision_comment(decision: &Decision) -> String {
    let at = utc_minute(decision.at_ms);
    let name = one_line(&decision.by_name);
    match &decision.verdict {
        Verdict::Approved => format!("Approved via WhatsApp by {name} at {at}"),
        Verdict::Rejected { reason } => format!(
            "Rejected via WhatsApp by {name} at {at}: {}",
            one_line(reason)
        ),
    }
}

/// What an answer that cannot decide is told.
pub fn refusal_text(judgement: &Judgement, title: &str) -> Option<String> {
    Some(match judgement {
        Judgement::AlreadyDecided { by_name, at_ms } => format!(
            "Thank you. \"{title}\" was already decided by {by_name} at {}. Nothing was changed.",
            utc_minute(*at_ms)
        ),
        Judgement::OlderVersion => format!(
            "Thank you. Those buttons were for an earlier version of \"{title}\", which is no longer under review. Nothing was changed."
        ),
        Judgement::NotAsked => format!(
            "Sorry, you were not asked to review \"{title}\", so your answer was not recorded. Nothing was changed."
        ),
        Judgement::NoRequest => {
            "Sorry, this review request is no longer open. Nothing was changed.".to_owned()
        }
        Judgement::MayDecide | Judgement::DecidedByThis => return None,
    })
}

/// The confirmation each approver gets once a decision is written.
pub fn confirmation_text(decision: &Decision, title: &str, to_decider: bool) -> String {
    let at = utc_minute(decision.at_ms);
    match (&decision.verdict, to_decider) {
        (Verdict::Approved, true) => {
            format!("Thank you. \"{title}\" is approved; your answer is in the DAM.")
        }
        (Verdict::Rejected { .. }, true) => {
            format!("Thank you. \"{title}\" is rejected with your reason; it is in the DAM.")
        }
        (Verdict::Approved, false) => format!(
            "\"{title}\" was approved by {} at {at}. No answer is needed from you.",
            decision.by_name
        ),
        (Verdict::Rejected { reason }, false) => format!(
            "\"{title}\" was rejected by {} at {at}: {}. No answer is needed from you.",
            decision.by_name,
            one_line(reason)
        ),
    }
}

/// The question a rejecting approver is asked.
pub fn reason_prompt(title: &str, reasons: &[String]) -> String {
    if reasons.is_empty() {
        format!("Why do you reject \"{title}\"? Reply with the reason; it goes into the DAM.")
    } else {
        format!(
            "Why do you reject \"{title}\"? Reply with the reason (for example: {}); it goes into the DAM.",
            reasons.join(", ")
        )
    }
}

/// A usable rejection reason: trimmed, on one line, at most 500 characters; `None` when empty.
pub fn clean_reason(text: &str) -> Option<String> {
    let reason: String = one_line(text).chars().take(500).collect();
    let reason = reason.trim().to_owned();
    (!reason.is_empty()).then_some(reason)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Why an owner is alerted (flow 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueReason {
    /// Rejected in review; the reviewer and reason when the rejection came through WhatsApp.
    Rejected {
        /// `Name: reason`, when known.
        detail: Option<String>,
    },
    /// Required fields are empty, by the DAM's labels.
    MissingMetadata {
        /// Field labels.
        labels: Vec<String>,
    },
    /// Blocked by policy.
    Blocked(PolicyReason),
}

impl IssueReason {
    /// The reason of an issue event (`None` for events that are not issues). Missing fields are
    /// named by `label`.
    pub fn of(kind: &DomainEventKind, label: impl Fn(&str) -> String) -> Option<Self> {
        Some(match kind {
            DomainEventKind::Rejected => Self::Rejected { detail: None },
            DomainEventKind::MissingRequiredMetadata { missing } => Self::MissingMetadata {
                labels: missing.iter().map(|f| label(f)).collect(),
            },
            DomainEventKind::BlockedByPolicy { reason } => Self::Blocked(*reason),
            _ => return None,
        })
    }

    /// A short tag for send keys and claims (`rejected`, `missing`, `blocked-status`).
    pub fn tag(&self) -> &'static str {
        match self {
            Self::Rejected { .. } => "rejected",
            Self::MissingMetadata { .. } => "missing",
            Self::Blocked(PolicyReason::Status) => "blocked-status",
            Self::Blocked(PolicyReason::BrandCompliance) => "blocked-brand",
        }
    }

    /// The reason as the owner reads it (the template's second variable).
    pub fn text(&self) -> String {
        match self {
            Self::Rejected { detail: Some(d) } => format!("it was rejected in review ({d})"),
            Self::Rejected { detail: None } => "it was rejected in review".to_owned(),
            Self::MissingMetadata { labels } => {
                format!("required fields are empty: {}", labels.join(", "))
            }
            Self::Blocked(PolicyReason::Status) => "it is blocked by policy".to_owned(),
            Self::Blocked(PolicyReason::BrandCompliance) => {
                "it is blocked by policy: it is marked not brand-compliant".to_owned()
            }
        }
    }
}

/// The note the alert adds to the asset (deterministic: a redelivery finds it already there).
pub fn alert_note(reason: &IssueReason, recipient_name: &str, version: &str) -> String {
    format!(
        "WhatsApp issue alert (version {version}) sent to {}: {}",
        one_line(recipient_name),
        one_line(&reason.text())
    )
}

/// A field's label when the DAM gives none: the API name without its prefix
/// (`CoreField.Photographer` → `Photographer`, `Custom.ReviewDeadline` → `Review Deadline`).
pub fn label_of(field: &str) -> String {
    let name = field.rsplit('.').next().unwrap_or(field);
    let mut label = String::new();
    for (i, c) in name.chars().enumerate() {
        if i > 0 && c.is_uppercase() && !label.ends_with(' ') {
            label.push(' ');
        }
        label.push(if c == '_' || c == '-' { ' ' } else { c });
    }
    label
}

/// Entries of an approvers or owner field (`a|b`, `a; b`, `a, b`).
pub fn field_entries(value: &str) -> Vec<String> {
    value
        .split(['|', ';', ','])
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pseudonym::Pseudonymizer;
    use crate::secrets::Secret;

    fn who(n: &str) -> UserPseudonym {
        Pseudonymizer::new(&Secret::new("k")).pseudonym(n)
    }

    fn request(decision: Option<Decision>) -> ReviewRequest {
        ReviewRequest {
            asset: "A-1".into(),
            version: "2".into(),
            approvers: vec![
                Approver {
                    who: who("447700900001"),
                    name: "Ada".into(),
                },
                Approver {
                    who: who("447700900002"),
                    name: "Bo".into(),
                },
            ],
            deadline: None,
            decision,
            reminded: false,
        }
    }

    fn decided_by_ada() -> Decision {
        Decision {
            verdict: Verdict::Approved,
            by: Some(who("447700900001")),
            by_name: "Ada".into(),
            at_ms: 1_796_220_300_000,
            message: Some("wamid.A".into()),
        }
    }

    #[test]
    fn an_asked_approver_may_decide_an_open_request() {
        let bo = who("447700900002");
        let answer = Answer {
            who: &bo,
            version: "2",
            message: "wamid.B",
        };
        assert_eq!(judge(Some(&request(None)), &answer), Judgement::MayDecide);
    }

    #[test]
    fn a_second_approver_after_a_decision_is_told_who_decided_and_when() {
        let bo = who("447700900002");
        let answer = Answer {
            who: &bo,
            version: "2",
            message: "wamid.B",
        };
        let judgement = judge(Some(&request(Some(decided_by_ada()))), &answer);
        assert_eq!(
            judgement,
            Judgement::AlreadyDecided {
                by_name: "Ada".into(),
                at_ms: 1_796_220_300_000
            }
        );
        let text = refusal_text(&judgement, "Pier").expect("a refusal");
        assert!(
            text.contains("already decided by Ada at 2026-12-02"),
            "{text}"
        );
    }

    #[test]
    fn the_deciding_answer_redelivered_finishes_instead_of_being_refused() {
        let ada = who("447700900001");
        let answer = Answer {
            who: &ada,
            version: "2",
            message: "wamid.A",
        };
        assert_eq!(
            judge(Some(&request(Some(decided_by_ada()))), &answer),
            Judgement::DecidedByThis
        );
    }

    #[test]
    fn someone_not_asked_and_an_older_versions_buttons_cannot_decide() {
        let stranger = who("447700900009");
        let ada = who("447700900001");
        let open = request(None);
        assert_eq!(
            judge(
                Some(&open),
                &Answer {
                    who: &stranger,
                    version: "2",
                    message: "m"
                }
            ),
            Judgement::NotAsked
        );
        assert_eq!(
            judge(
                Some(&open),
                &Answer {
                    who: &ada,
                    version: "1",
                    message: "m"
                }
            ),
            Judgement::OlderVersion
        );
        assert_eq!(
            judge(
                None,
                &Answer {
                    who: &ada,
                    version: "1",
                    message: "m"
                }
            ),
            Judgement::NoRequest
        );
    }

    #[test]
    fn comments_name_the_approver_the_time_and_the_reason_on_one_line() {
        assert_eq!(
            decision_comment(&decided_by_ada()),
            "Approved via WhatsApp by Ada at 2026-12-02 14:05 UTC"
        );
        let rejected = Decision {
            verdict: Verdict::Rejected {
                reason: "logo\ncropped".into(),
            },
            ..decided_by_ada()
        };
        assert_eq!(
            decision_comment(&rejected),
            "Rejected via WhatsApp by Ada at 2026-12-02 14:05 UTC: logo cropped"
        );
    }

    #[test]
    fn blank_reasons_are_not_reasons() {
        assert_eq!(clean_reason("  \n "), None);
        assert_eq!(clean_reason(" too\n dark ").as_deref(), Some("too dark"));
    }

    #[test]
    fn missing_fields_are_named_by_their_labels() {
        let kind = DomainEventKind::MissingRequiredMetadata {
            missing: vec![
                "CoreField.Photographer".into(),
                "Custom.ReviewDeadline".into(),
            ],
        };
        let reason = IssueReason::of(&kind, label_of).expect("an issue");
        assert_eq!(
            reason.text(),
            "required fields are empty: Photographer, Review Deadline"
        );
        assert_eq!(IssueReason::of(&DomainEventKind::Approved, label_of), None);
    }

    #[test]
    fn approver_fields_split_on_the_usual_separators() {
        assert_eq!(field_entries("a| b ;c,,"), ["a", "b", "c"]);
    }
}
