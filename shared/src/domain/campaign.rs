//! Flow 4, campaign rollout: the rules. Who receives an approved campaign package (regional
//! contacts covering one of its regions), which of its member assets each of them is shown, what
//! each answer writes on the package (the comment lines), the per-region status and the words
//! people are told. No I/O here; `flows::campaign_rollout` orchestrates.

use crate::domain::contact::{Contact, Role};
use crate::pseudonym::UserPseudonym;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Button action: confirm receipt.
pub const CONFIRM: &str = "confirm";
/// Button action: ask for another format (answered with the list of renditions).
pub const FORMAT: &str = "format";
/// Button action: flag an issue (answered with a question for a short description).
pub const ISSUE: &str = "issue";
/// List row action prefix: the rendition picked, `fmt:<code>`.
pub const PICK_PREFIX: &str = "fmt:";
/// The version suffix of the awaited flag description (`<version>#issue`).
pub const ISSUE_SUFFIX: &str = "#issue";
/// The version of the send key route-inbound gives a `status <campaign>` command.
pub const STATUS_COMMAND: &str = "#status";

/// One recipient of a package version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The directory key.
    pub who: UserPseudonym,
    /// The display name written in comments.
    pub name: String,
    /// The package's regions this contact covers, in the package's order.
    pub regions: Vec<String>,
}

/// A package version rolled out: who was notified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    /// The package's RecordID.
    pub package: String,
    /// The package version (file version, else the edit date of the approval).
    pub version: String,
    /// The campaign (the package's campaign field).
    pub campaign: String,
    /// The package's title.
    pub title: String,
    /// The package's regions, in its order.
    pub regions: Vec<String>,
    /// Everyone notified.
    pub recipients: Vec<Recipient>,
    /// When it was rolled out, Unix milliseconds.
    pub at_ms: i64,
}

impl Rollout {
    /// The recipient `who`, if they were notified of this version.
    pub fn recipient(&self, who: &UserPseudonym) -> Option<&Recipient> {
        self.recipients.iter().find(|r| &r.who == who)
    }
}

/// What one recipient has answered so far (each mark keeps its first time; a later format
/// request replaces the format named).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientStatus {
    /// Who.
    pub who: Option<UserPseudonym>,
    /// When they were notified.
    pub notified_at_ms: Option<i64>,
    /// When they confirmed receipt.
    pub confirmed_at_ms: Option<i64>,
    /// The rendition they asked for last, and when.
    pub format_requested: Option<(String, i64)>,
    /// The issue they flagged, and when.
    pub flagged: Option<(String, i64)>,
}

/// One answer, as it is recorded and written on the package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    /// Receipt confirmed.
    Confirmed,
    /// A rendition asked for and sent (its label).
    FormatRequested(String),
    /// An issue flagged (the description).
    Flagged(String),
}

/// The package's regions: the entries of its region field (`|`, `;` or `,` separated), trimmed,
/// each once (compared without case), in the field's order.
pub fn package_regions(value: &str) -> Vec<String> {
    let mut regions: Vec<String> = Vec::new();
    for entry in crate::domain::review::field_entries(value) {
        if !regions.iter().any(|r| r.eq_ignore_ascii_case(&entry)) {
            regions.push(entry);
        }
    }
    regions
}

/// The package regions `contact` covers, in the package's order: a contact with the role
/// `regional` covers a region when one of their directory regions names it (without case). A
/// regional contact without regions covers none: a package goes to the regions it names only.
pub fn covered_regions(contact: &Contact, regions: &[String]) -> Vec<String> {
    if !contact.has_role(Role::Regional) {
        return Vec::new();
    }
    regions
        .iter()
        .filter(|r| {
            contact
                .regions
                .iter()
                .any(|c| c.trim().eq_ignore_ascii_case(r))
        })
        .cloned()
        .collect()
}

/// The recipients of a package among `contacts`: regional contacts covering one of its regions,
/// with an address, not opted out; each once, in pseudonym order.
pub fn recipients(contacts: &[Contact], regions: &[String]) -> Vec<Recipient> {
    let mut found: Vec<Recipient> = contacts
        .iter()
        .filter(|c| c.address.is_some() && !c.is_opted_out())
        .filter_map(|c| {
            let covered = covered_regions(c, regions);
            (!covered.is_empty()).then(|| Recipient {
                who: c.pseudonym.clone(),
                name: display_name(c),
                regions: covered,
            })
        })
        .collect();
    found.sort_by(|a, b| a.who.cmp(&b.who));
    found.dedup_by(|a, b| a.who == b.who);
    found
}

/// A contact's name for comments and messages.
pub fn display_name(contact: &Contact) -> String {
    contact
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("a regional contact")
        .to_owned()
}

/// Whether a member asset belongs in the message to someone covering `regions`: members without a
/// region are for everyone; the others for the regions they name.
pub fn member_for(member_regions: &[String], regions: &[String]) -> bool {
    member_regions.is_empty()
        || member_regions
            .iter()
            .any(|m| regions.iter().any(|r| r.eq_ignore_ascii_case(m)))
}

/// The asset list of the template's last value: `Title (Region): link; ...` on one line
/// (template values hold no line breaks).
pub fn asset_list(members: &[(String, String)]) -> String {
    members
        .iter()
        .map(|(label, link)| format!("{}: {link}", one_line(label)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The comment line an answer adds to the package.
pub fn comment(campaign: &str, recipient: &Recipient, mark: &Mark, at_ms: i64) -> String {
    let at = crate::domain::review::utc_minute(at_ms);
    let who = format!(
        "{} ({})",
        one_line(&recipient.name),
        recipient.regions.join(", ")
    );
    let campaign = one_line(campaign);
    match mark {
        Mark::Confirmed => {
            format!("Campaign {campaign}: receipt confirmed via WhatsApp by {who} at {at}")
        }
        Mark::FormatRequested(format) => format!(
            "Campaign {campaign}: format {} requested via WhatsApp by {who} at {at}",
            one_line(format)
        ),
        Mark::Flagged(description) => format!(
            "Campaign {campaign}: issue flagged via WhatsApp by {who} at {at}: {}",
            one_line(description)
        ),
    }
}

/// A flag's description from the text of the answer: one line, at most 500 characters.
pub fn clean_description(text: &str) -> Option<String> {
    crate::domain::review::clean_reason(text)
}

/// The campaign of a `status <campaign>` command (the word `status` in any case, then one token).
pub fn status_command(text: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    let keyword = words.next()?;
    let campaign = words.next()?;
    let valid = keyword.eq_ignore_ascii_case("status")
        && words.next().is_none()
        && !campaign.contains('|')
        && campaign.len() <= 100;
    valid.then(|| campaign.to_owned())
}

/// Where a region stands: how many recipients covering it are at each step, and who.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegionStatus {
    /// Recipients notified.
    pub notified: Vec<String>,
    /// Of them, who confirmed.
    pub confirmed: Vec<String>,
    /// Who asked for another format (and which).
    pub format_requested: Vec<String>,
    /// Who flagged an issue (and what).
    pub flagged: Vec<String>,
}

/// The status per region of one rollout, in the package's region order.
pub fn region_status(
    rollout: &Rollout,
    statuses: &[RecipientStatus],
) -> Vec<(String, RegionStatus)> {
    let by_who: BTreeMap<&UserPseudonym, &RecipientStatus> = statuses
        .iter()
        .filter_map(|s| s.who.as_ref().map(|w| (w, s)))
        .collect();
    rollout
        .regions
        .iter()
        .map(|region| {
            let mut status = RegionStatus::default();
            for recipient in rollout
                .recipients
                .iter()
                .filter(|r| r.regions.iter().any(|x| x.eq_ignore_ascii_case(region)))
            {
                let Some(s) = by_who.get(&recipient.who) else {
                    continue;
                };
                let name = one_line(&recipient.name);
                if s.notified_at_ms.is_some() {
                    status.notified.push(name.clone());
                }
                if s.confirmed_at_ms.is_some() {
                    status.confirmed.push(name.clone());
                }
                if let Some((format, _)) = &s.format_requested {
                    status.format_requested.push(format!("{name}: {format}"));
                }
                if let Some((issue, _)) = &s.flagged {
                    status.flagged.push(format!("{name}: {issue}"));
                }
            }
            (region.clone(), status)
        })
        .collect()
}

/// The status as text lines: a heading per package, then one line per region.
pub fn status_lines(rollout: &Rollout, statuses: &[RecipientStatus]) -> Vec<String> {
    let mut lines = vec![format!(
        "{} (campaign {}, version {}):",
        one_line(&rollout.title),
        one_line(&rollout.campaign),
        rollout.version
    )];
    fn named(names: &[String]) -> String {
        if names.is_empty() {
            String::new()
        } else {
            format!(" ({})", names.join("; "))
        }
    }
    for (region, s) in region_status(rollout, statuses) {
        lines.push(format!(
            "{region}: notified {}{}, confirmed {}{}, format requested {}{}, flagged {}{}",
            s.notified.len(),
            named(&s.notified),
            s.confirmed.len(),
            named(&s.confirmed),
            s.format_requested.len(),
            named(&s.format_requested),
            s.flagged.len(),
            named(&s.flagged),
        ));
    }
    lines
}

/// The thanks for an answer.
pub fn acknowledgement(title: &str, mark: &Mark) -> String {
    let title = one_line(title);
    match mark {
        Mark::Confirmed => format!("Thank you: your receipt of {title} is confirmed."),
        Mark::FormatRequested(format) => {
            format!("Here is {title} as {format}. The links expire; ask again for fresh ones.")
        }
        Mark::Flagged(_) => {
            format!(
                "Thank you: your issue with {title} is logged and the campaign team will see it."
            )
        }
    }
}

/// The question after Flag an issue.
pub fn issue_prompt(title: &str) -> String {
    format!(
        "What is wrong with {}? Reply with a short description.",
        one_line(title)
    )
}

/// Why an answer changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No rollout of that package is stored.
    NoRollout,
    /// The buttons belong to an earlier version of the package.
    EarlierVersion,
    /// The person answering was not notified of this package.
    NotNotified,
    /// A rendition the configuration does not offer.
    UnknownFormat,
    /// A status command from someone who is neither regional nor an owner.
    NotAllowedStatus,
}

/// The polite words of a refusal.
pub fn refusal_text(refusal: Refusal, title: &str) -> String {
    let title = one_line(title);
    match refusal {
        Refusal::NoRollout => {
            "This campaign package is no longer being rolled out. Nothing was changed.".into()
        }
        Refusal::EarlierVersion => format!(
            "Those buttons were for an earlier version of {title}; please use the latest message. Nothing was changed."
        ),
        Refusal::NotNotified => format!(
            "Sorry, {title} was not sent to you, so this answer cannot be recorded. Nothing was changed."
        ),
        Refusal::UnknownFormat => format!(
            "Sorry, that format is not available for {title}. Tap Request another format for the list."
        ),
        Refusal::NotAllowedStatus => {
            "Sorry, campaign status is only shown to regional leads and asset owners.".into()
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::contact::WhatsAppAddress;
    use crate::pseudonym::Pseudonymizer;
    use crate::secrets::Secret;

    fn who(n: &str) -> UserPseudonym {
        Pseudonymizer::new(&Secret::new("k")).pseudonym(n)
    }

    fn regional(n: &str, name: &str, regions: &[&str]) -> Contact {
        let mut c = Contact::new(who(n));
        c.address = Some(WhatsAppAddress::from_wa_id(n).expect("phone"));
        c.name = Some(name.into());
        c.roles = [Role::Regional].into();
        c.regions = regions.iter().map(|r| (*r).to_owned()).collect();
        c
    }

    #[test]
    fn a_package_lists_its_regions_once_in_its_own_order() {
        assert_eq!(
            package_regions("Iberia | DACH; nordics,iberia"),
            ["Iberia", "DACH", "nordics"]
        );
        assert!(package_regions(" ").is_empty());
    }

    #[test]
    fn regional_contacts_covering_a_region_receive_it_once_and_others_do_not() {
        let regions = package_regions("Iberia|DACH|Nordics");
        let mut opted_out = regional("447700900304", "Olle", &["Nordics"]);
        opted_out.opted_out_at_ms = Some(1);
        let mut approver = regional("447700900305", "Ada", &["Iberia"]);
        approver.roles = [Role::Approver].into();
        let contacts = vec![
            regional("447700900301", "Ana", &["iberia"]),
            regional("447700900302", "Dirk", &["DACH", "Nordics"]),
            regional("447700900303", "Fran", &["France"]),
            regional("447700900306", "Nobody", &[]),
            opted_out,
            approver,
        ];
        let found = recipients(&contacts, &regions);
        let names: Vec<_> = found.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        let dirk = found.iter().find(|r| r.name == "Dirk").expect("Dirk");
        assert_eq!(dirk.regions, ["DACH", "Nordics"]);
        assert!(found.iter().any(|r| r.name == "Ana"));
    }

    #[test]
    fn members_without_a_region_go_to_everyone_and_the_others_to_their_regions() {
        let iberia = vec!["Iberia".to_owned()];
        assert!(member_for(&[], &iberia));
        assert!(member_for(&["IBERIA".into()], &iberia));
        assert!(!member_for(&["DACH".into()], &iberia));
    }

    #[test]
    fn comments_name_the_author_region_answer_and_time() {
        let r = Recipient {
            who: who("1"),
            name: "Ana  Ruiz".into(),
            regions: vec!["Iberia".into()],
        };
        let at = 1_764_000_000_000;
        assert_eq!(
            comment("SUMMER26", &r, &Mark::Confirmed, at),
            "Campaign SUMMER26: receipt confirmed via WhatsApp by Ana Ruiz (Iberia) at 2025-11-24 16:00 UTC"
        );
        assert!(
            comment("SUMMER26", &r, &Mark::Flagged("Logo\nwrong".into()), at)
                .ends_with(": Logo wrong")
        );
        assert!(
            comment(
                "SUMMER26",
                &r,
                &Mark::FormatRequested("Print PDF".into()),
                at
            )
            .contains("format Print PDF requested via WhatsApp by Ana Ruiz")
        );
    }

    #[test]
    fn a_status_command_names_one_campaign() {
        assert_eq!(status_command("status SUMMER26"), Some("SUMMER26".into()));
        assert_eq!(
            status_command("  STATUS  summer26 "),
            Some("summer26".into())
        );
        assert_eq!(status_command("status"), None);
        assert_eq!(status_command("status a b"), None);
        assert_eq!(status_command("statuses X"), None);
    }

    #[test]
    fn the_region_status_counts_each_step_per_region() {
        let ana = Recipient {
            who: who("1"),
            name: "Ana".into(),
            regions: vec!["Iberia".into()],
        };
        let dirk = Recipient {
            who: who("2"),
            name: "Dirk".into(),
            regions: vec!["DACH".into()],
        };
        let rollout = Rollout {
            package: "P".into(),
            version: "1".into(),
            campaign: "SUMMER26".into(),
            title: "Summer kit".into(),
            regions: vec!["Iberia".into(), "DACH".into(), "Nordics".into()],
            recipients: vec![ana, dirk],
            at_ms: 0,
        };
        let statuses = vec![
            RecipientStatus {
                who: Some(who("1")),
                notified_at_ms: Some(1),
                confirmed_at_ms: Some(2),
                ..RecipientStatus::default()
            },
            RecipientStatus {
                who: Some(who("2")),
                notified_at_ms: Some(1),
                flagged: Some(("Wrong logo".into(), 3)),
                ..RecipientStatus::default()
            },
        ];
        let lines = status_lines(&rollout, &statuses);
        assert_eq!(lines[0], "Summer kit (campaign SUMMER26, version 1):");
        assert_eq!(
            lines[1],
            "Iberia: notified 1 (Ana), confirmed 1 (Ana), format requested 0, flagged 0"
        );
        assert_eq!(
            lines[2],
            "DACH: notified 1 (Dirk), confirmed 0, format requested 0, flagged 1 (Dirk: Wrong logo)"
        );
        assert_eq!(
            lines[3],
            "Nordics: notified 0, confirmed 0, format requested 0, flagged 0"
        );
    }
}
