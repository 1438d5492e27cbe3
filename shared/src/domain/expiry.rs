//! Flow 3 (rights expiry), the pure rules: which alert window an end date falls in, the date
//! ranges the scan searches, one digest per recipient and window, when a digest may go out given
//! the recipient's quiet hours, the digest's words in the recipient's language, and the actions a
//! recipient can take from the alert.

use crate::domain::contact::QuietHours;
use crate::domain::dam::{AssetId, DamInstant};
use crate::domain::outbound::{ButtonId, MessageFlow};
use crate::pseudonym::UserPseudonym;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan as _};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

const DAY: i64 = 24 * 3600;

/// An alert window: the end falls within this many days, or it has already passed while the
/// asset is still in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertWindow {
    /// Ends within this many days (and after the next smaller window).
    Days(u32),
    /// Already ended, the asset still approved (published / in use).
    Expired,
}

impl AlertWindow {
    /// The window's code in keys and button ids: `30d`, `7d`, `expired`.
    pub fn code(self) -> String {
        match self {
            Self::Days(days) => format!("{days}d"),
            Self::Expired => "expired".into(),
        }
    }

    /// Reads [`AlertWindow::code`] back.
    pub fn parse(code: &str) -> Option<Self> {
        if code == "expired" {
            return Some(Self::Expired);
        }
        let days: u32 = code.strip_suffix('d')?.parse().ok()?;
        (days > 0).then_some(Self::Days(days))
    }

    /// The days the window's message names (0 for expired).
    pub fn days(self) -> u32 {
        match self {
            Self::Days(days) => days,
            Self::Expired => 0,
        }
    }
}

impl fmt::Display for AlertWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code())
    }
}

/// The configured windows, smallest first, without repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Windows(Vec<u32>);

impl Windows {
    /// From `alerts.expiry_windows_days` (validated there: whole days, no repeats).
    pub fn new(days: &[u32]) -> Self {
        let mut days: Vec<u32> = days.iter().copied().filter(|d| *d > 0).collect();
        days.sort_unstable();
        days.dedup();
        Self(days)
    }

    /// The window `end` falls in at `now`: the smallest window that still holds it, `Expired` when
    /// it has passed, `None` beyond the largest window.
    pub fn window_of(&self, now: DamInstant, end: DamInstant) -> Option<AlertWindow> {
        let left = end.unix_seconds() - now.unix_seconds();
        if left <= 0 {
            return Some(AlertWindow::Expired);
        }
        self.0
            .iter()
            .find(|days| left <= i64::from(**days) * DAY)
            .map(|days| AlertWindow::Days(*days))
    }

    /// The date ranges a scan at `now` searches, one per window: `(from, to]` by the window's
    /// definition, searched inclusively (the search syntax has no strict bounds), so each result
    /// is placed again with [`Windows::window_of`]. Expired ends are searched back `lookback_days`.
    pub fn ranges(&self, now: DamInstant, lookback_days: u32) -> Vec<WindowRange> {
        let at = |days: i64| {
            DamInstant::from_unix_seconds(now.unix_seconds() + days * DAY).unwrap_or(now)
        };
        let mut ranges = vec![WindowRange {
            window: AlertWindow::Expired,
            from: at(-i64::from(lookback_days)),
            to: now,
        }];
        let mut previous = 0_i64;
        for days in &self.0 {
            ranges.push(WindowRange {
                window: AlertWindow::Days(*days),
                from: at(previous),
                to: at(i64::from(*days)),
            });
            previous = i64::from(*days);
        }
        ranges
    }
}

/// The ends one window's search looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowRange {
    /// The window.
    pub window: AlertWindow,
    /// Earliest end searched (inclusive).
    pub from: DamInstant,
    /// Latest end searched (inclusive).
    pub to: DamInstant,
}

/// Which of the asset's dates ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndKind {
    /// The rights expiry date.
    Expiry,
    /// The licence end date.
    LicenceEnd,
}

/// The earlier of an asset's expiry and licence end: the date its use must stop.
pub fn first_end(
    expiry: Option<DamInstant>,
    licence_end: Option<DamInstant>,
) -> Option<(EndKind, DamInstant)> {
    match (expiry, licence_end) {
        (Some(e), Some(l)) if l < e => Some((EndKind::LicenceEnd, l)),
        (Some(e), _) => Some((EndKind::Expiry, e)),
        (None, Some(l)) => Some((EndKind::LicenceEnd, l)),
        (None, None) => None,
    }
}

/// One asset in one alert: what a recipient sees of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiringAsset {
    /// The asset.
    pub asset: AssetId,
    /// Its title (the record id when it has none).
    pub title: String,
    /// Which date ends.
    pub kind: EndKind,
    /// When, canonical UTC.
    pub ends: String,
}

/// An alert waiting to go out to one recipient in their digest for `window`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAlert {
    /// Who hears about it.
    pub recipient: UserPseudonym,
    /// The window.
    #[serde(with = "window_code")]
    pub window: AlertWindow,
    /// The asset.
    pub asset: ExpiringAsset,
}

mod window_code {
    use super::AlertWindow;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(window: &AlertWindow, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&window.code())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<AlertWindow, D::Error> {
        let code = String::deserialize(d)?;
        AlertWindow::parse(&code).ok_or_else(|| serde::de::Error::custom("unknown alert window"))
    }
}

/// One message: every pending asset of one recipient and window, ending soonest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// Who it goes to.
    pub recipient: UserPseudonym,
    /// The window.
    pub window: AlertWindow,
    /// The assets, ending soonest first.
    pub assets: Vec<ExpiringAsset>,
}

impl Digest {
    /// The send key's version: the same set of assets always gives the same digest identity, so
    /// a digest sent again after a failure is sent once.
    pub fn identity(&self) -> String {
        let mut parts: Vec<String> = self
            .assets
            .iter()
            .map(|a| format!("{}@{}", a.asset.as_str(), a.ends))
            .collect();
        parts.sort();
        let digest = crate::crypto::sha256_hex(&[parts.join(",").as_bytes()]);
        format!("{}:{}", self.window.code(), &digest[..16])
    }
}

/// Groups pending alerts into one digest per recipient and window (an asset listed once).
pub fn digests(alerts: &[PendingAlert]) -> Vec<Digest> {
    let mut groups: BTreeMap<(UserPseudonym, AlertWindow), Vec<ExpiringAsset>> = BTreeMap::new();
    for alert in alerts {
        let assets = groups
            .entry((alert.recipient.clone(), alert.window))
            .or_default();
        if !assets.iter().any(|a| a.asset == alert.asset.asset) {
            assets.push(alert.asset.clone());
        }
    }
    groups
        .into_iter()
        .map(|((recipient, window), mut assets)| {
            assets.sort_by(|a, b| (&a.ends, &a.asset).cmp(&(&b.ends, &b.asset)));
            Digest {
                recipient,
                window,
                assets,
            }
        })
        .collect()
}

/// When a message due at `now` may go out to someone with `quiet_hours` in `time_zone`: `now`
/// outside their quiet hours, else the first minute after they end, local to them. An unknown or
/// missing zone is read as UTC; no quiet hours, no wait.
pub fn release_at(
    now: DamInstant,
    time_zone: Option<&str>,
    quiet_hours: Option<QuietHours>,
) -> DamInstant {
    let Some(quiet) = quiet_hours else {
        return now;
    };
    let zone = time_zone
        .and_then(|name| TimeZone::get(name).ok())
        .unwrap_or(TimeZone::UTC);
    let Ok(at) = Timestamp::from_second(now.unix_seconds()) else {
        return now;
    };
    let local = at.to_zoned_datetime(zone);
    let minute =
        u16::try_from(local.hour()).unwrap_or(0) * 60 + u16::try_from(local.minute()).unwrap_or(0);
    if !quiet.contains(minute) {
        return now;
    }
    let end_hour = i8::try_from(quiet.end_minute / 60).unwrap_or(0);
    let end_minute = i8::try_from(quiet.end_minute % 60).unwrap_or(0);
    let mut day = local.date();
    if minute >= quiet.end_minute {
        // Quiet began this evening and ends tomorrow morning.
        day = day.tomorrow().unwrap_or(day);
    }
    let end = day
        .at(end_hour, end_minute, 0, 0)
        .to_zoned_datetime(local.time_zone().clone())
        .map(|z| z.timestamp())
        .unwrap_or_else(|_| at.saturating_add(1.hour()).unwrap_or(at));
    DamInstant::from_unix_seconds(end.as_second()).unwrap_or(now)
}

/// The languages digests are written in; anything else gets English.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestLanguage {
    /// English.
    English,
    /// French.
    French,
}

impl DigestLanguage {
    /// The language of a directory entry's `language` (`fr_FR`, `fr`, `en_US`, none).
    pub fn of(language: Option<&str>) -> Self {
        match language.map(|l| l.to_ascii_lowercase()) {
            Some(l) if l == "fr" || l.starts_with("fr_") || l.starts_with("fr-") => Self::French,
            _ => Self::English,
        }
    }
}

/// A date as a recipient reads it: their zone, their language's order (`9 Dec 2026`, `09/12/2026`).
pub fn local_date(canonical: &str, time_zone: Option<&str>, language: DigestLanguage) -> String {
    let Some(at) = DamInstant::parse_canonical(canonical) else {
        return canonical.to_owned();
    };
    let zone = time_zone
        .and_then(|name| TimeZone::get(name).ok())
        .unwrap_or(TimeZone::UTC);
    let Ok(ts) = Timestamp::from_second(at.unix_seconds()) else {
        return canonical.to_owned();
    };
    let local = ts.to_zoned_datetime(zone);
    match language {
        DigestLanguage::English => local.strftime("%-d %b %Y").to_string(),
        DigestLanguage::French => local.strftime("%d/%m/%Y").to_string(),
    }
}

/// The words of a digest in one language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestText {
    /// The header (max 60 characters).
    pub header: String,
    /// The body: one line per asset (as many as fit the list body).
    pub body: String,
    /// The list's button label.
    pub button: String,
}

/// Writes a digest for its recipient. Each asset line has its date and its link.
pub fn digest_text(
    digest: &Digest,
    language: DigestLanguage,
    time_zone: Option<&str>,
    link: impl Fn(&AssetId) -> String,
) -> DigestText {
    let n = digest.assets.len();
    let (header, intro, button) = match (language, digest.window) {
        (DigestLanguage::English, AlertWindow::Days(d)) => (
            format!("Usage rights end in {d} days"),
            format!("The usage rights of {n} assets you own or review end within {d} days:"),
            "Act on an asset",
        ),
        (DigestLanguage::English, AlertWindow::Expired) => (
            "Usage rights have ended".to_owned(),
            format!("The usage rights of {n} assets still in use have ended:"),
            "Act on an asset",
        ),
        (DigestLanguage::French, AlertWindow::Days(d)) => (
            format!("Droits d'utilisation : fin dans {d} jours"),
            format!(
                "Les droits d'utilisation de {n} ressources dont vous êtes responsable prennent fin d'ici {d} jours :"
            ),
            "Agir sur une ressource",
        ),
        (DigestLanguage::French, AlertWindow::Expired) => (
            "Droits d'utilisation expirés".to_owned(),
            format!("Les droits d'utilisation de {n} ressources encore utilisées ont pris fin :"),
            "Agir sur une ressource",
        ),
    };
    let mut body = intro;
    let limit = crate::whatsapp::messages::limits::LIST_BODY - 80;
    for (shown, asset) in digest.assets.iter().enumerate() {
        let line = format!(
            "\n• {} — {} — {}",
            asset.title,
            local_date(&asset.ends, time_zone, language),
            link(&asset.asset)
        );
        if body.chars().count() + line.chars().count() > limit {
            let more = n - shown;
            body.push_str(&match language {
                DigestLanguage::English => format!("\n… and {more} more in the DAM."),
                DigestLanguage::French => format!("\n… et {more} autres dans le DAM."),
            });
            break;
        }
        body.push_str(&line);
    }
    DigestText {
        header: header.chars().take(60).collect(),
        body,
        button: button.chars().take(20).collect(),
    }
}

/// What a recipient can do from an alert. Each is a button or list row id of flow 3:
/// `rx|<action>|<asset>|<alternative>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpiryAction {
    /// Chose an asset of the digest: show what can be done with it.
    Open(AssetId),
    /// Ask legal to renew the rights (a comment on the asset).
    RequestRenewal(AssetId),
    /// Take the asset out of use (the configured status).
    RemoveFromUse(AssetId),
    /// Offer approved, unexpired assets of the same campaign and type.
    ShowAlternatives(AssetId),
    /// Use `alternative` instead of the asset.
    UseAlternative {
        /// The expiring asset.
        asset: AssetId,
        /// Its replacement.
        alternative: AssetId,
    },
}

impl ExpiryAction {
    /// The button or row id.
    pub fn id(&self) -> Option<String> {
        let (action, subject, version) = match self {
            Self::Open(a) => ("open", a, ""),
            Self::RequestRenewal(a) => ("renew", a, ""),
            Self::RemoveFromUse(a) => ("remove", a, ""),
            Self::ShowAlternatives(a) => ("alts", a, ""),
            Self::UseAlternative { asset, alternative } => ("use", asset, alternative.as_str()),
        };
        ButtonId {
            flow: MessageFlow::RightsExpiry,
            action: action.into(),
            subject: subject.as_str().into(),
            version: version.into(),
        }
        .encode()
    }

    /// The action of a tapped id of flow 3; `None` for anything else.
    pub fn from_id(id: &str) -> Option<Self> {
        let button = ButtonId::decode(id)?;
        if button.flow != MessageFlow::RightsExpiry {
            return None;
        }
        let asset = AssetId::parse(&button.subject).ok()?;
        Some(match button.action.as_str() {
            "open" => Self::Open(asset),
            "renew" => Self::RequestRenewal(asset),
            "remove" => Self::RemoveFromUse(asset),
            "alts" => Self::ShowAlternatives(asset),
            "use" => Self::UseAlternative {
                asset,
                alternative: AssetId::parse(&button.version).ok()?,
            },
            _ => return None,
        })
    }

    /// The asset acted on.
    pub fn asset(&self) -> &AssetId {
        match self {
            Self::Open(a)
            | Self::RequestRenewal(a)
            | Self::RemoveFromUse(a)
            | Self::ShowAlternatives(a)
            | Self::UseAlternative { asset: a, .. } => a,
        }
    }
}

/// The DAM comment an action leaves, naming its author and when (UTC).
pub fn action_comment(action: &ExpiryAction, author: &str, at: DamInstant) -> Option<String> {
    let when = at.canonical();
    match action {
        ExpiryAction::RequestRenewal(_) => Some(format!(
            "[{when}Z] Rights renewal requested for legal by {author} (WhatsApp)"
        )),
        ExpiryAction::RemoveFromUse(_) => Some(format!(
            "[{when}Z] Removed from use by {author} (WhatsApp): usage rights ending"
        )),
        ExpiryAction::UseAlternative { alternative, .. } => Some(format!(
            "[{when}Z] Replaced by alternative {} chosen by {author} (WhatsApp): usage rights ending",
            alternative.as_str()
        )),
        ExpiryAction::Open(_) | ExpiryAction::ShowAlternatives(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pseudonym::Pseudonymizer;
    use crate::secrets::Secret;

    fn at(text: &str) -> DamInstant {
        DamInstant::parse_canonical(text).expect("date")
    }

    fn asset(id: &str, ends: &str) -> ExpiringAsset {
        ExpiringAsset {
            asset: AssetId::parse(id).expect("id"),
            title: format!("Title {id}"),
            kind: EndKind::Expiry,
            ends: ends.into(),
        }
    }

    #[test]
    fn an_end_date_falls_in_the_smallest_window_that_holds_it() {
        let windows = Windows::new(&[30, 7, 1]);
        let now = at("2026-12-01T12:00:00");
        let window = |end: &str| windows.window_of(now, at(end));
        assert_eq!(window("2026-12-02T11:00:00"), Some(AlertWindow::Days(1)));
        assert_eq!(window("2026-12-02T12:00:00"), Some(AlertWindow::Days(1)));
        assert_eq!(window("2026-12-06T00:00:00"), Some(AlertWindow::Days(7)));
        assert_eq!(window("2026-12-20T00:00:00"), Some(AlertWindow::Days(30)));
        assert_eq!(window("2027-01-30T00:00:00"), None);
        assert_eq!(window("2026-11-30T00:00:00"), Some(AlertWindow::Expired));
    }

    #[test]
    fn the_search_ranges_cover_every_window_back_to_back() {
        let windows = Windows::new(&[30, 7, 1]);
        let now = at("2026-12-01T00:00:00");
        let ranges = windows.ranges(now, 90);
        let codes: Vec<String> = ranges.iter().map(|r| r.window.code()).collect();
        assert_eq!(codes, ["expired", "1d", "7d", "30d"]);
        assert_eq!(ranges[0].to, now);
        assert_eq!(ranges[1].from, now);
        assert_eq!(ranges[2].from, ranges[1].to);
        assert_eq!(ranges[3].from, ranges[2].to);
        assert_eq!(ranges[3].to.canonical(), "2026-12-31T00:00:00");
    }

    #[test]
    fn the_earlier_of_expiry_and_licence_end_is_the_one_that_counts() {
        let e = at("2026-12-10T00:00:00");
        let l = at("2026-12-05T00:00:00");
        assert_eq!(first_end(Some(e), Some(l)), Some((EndKind::LicenceEnd, l)));
        assert_eq!(first_end(Some(e), None), Some((EndKind::Expiry, e)));
        assert_eq!(first_end(None, None), None);
    }

    #[test]
    fn alerts_group_into_one_digest_per_recipient_and_window_ending_soonest_first() {
        let ps = Pseudonymizer::new(&Secret::new("k"));
        let (owner, legal) = (ps.pseudonym("+447700900001"), ps.pseudonym("+447700900002"));
        let alert = |who: &UserPseudonym, window, a: ExpiringAsset| PendingAlert {
            recipient: who.clone(),
            window,
            asset: a,
        };
        let alerts = vec![
            alert(
                &owner,
                AlertWindow::Days(7),
                asset("B", "2026-12-06T00:00:00"),
            ),
            alert(
                &owner,
                AlertWindow::Days(7),
                asset("A", "2026-12-04T00:00:00"),
            ),
            alert(
                &owner,
                AlertWindow::Days(30),
                asset("C", "2026-12-20T00:00:00"),
            ),
            alert(
                &legal,
                AlertWindow::Days(7),
                asset("A", "2026-12-04T00:00:00"),
            ),
            alert(
                &legal,
                AlertWindow::Days(7),
                asset("A", "2026-12-04T00:00:00"),
            ),
        ];
        let digests = digests(&alerts);
        assert_eq!(digests.len(), 3);
        let owner_7 = digests
            .iter()
            .find(|d| d.recipient == owner && d.window == AlertWindow::Days(7))
            .expect("owner's 7-day digest");
        let ids: Vec<&str> = owner_7.assets.iter().map(|a| a.asset.as_str()).collect();
        assert_eq!(ids, ["A", "B"]);
        let legal_7 = digests
            .iter()
            .find(|d| d.recipient == legal)
            .expect("legal");
        assert_eq!(legal_7.assets.len(), 1);
        assert_ne!(owner_7.identity(), legal_7.identity());
    }

    #[test]
    fn a_digest_due_in_quiet_hours_waits_for_their_end_in_the_recipients_zone() {
        let quiet = QuietHours::parse("22:00-07:00");
        // 03:00 in Paris (UTC+1 in December) is 02:00 UTC; quiet ends at 07:00 Paris, 06:00 UTC.
        let release = release_at(at("2026-12-02T02:00:00"), Some("Europe/Paris"), quiet);
        assert_eq!(release.canonical(), "2026-12-02T06:00:00");
        // 23:00 in New York (UTC-5) ends at 07:00 the next morning there.
        let release = release_at(at("2026-12-02T04:00:00"), Some("America/New_York"), quiet);
        assert_eq!(release.canonical(), "2026-12-02T12:00:00");
        // Midday: no wait; no quiet hours: no wait.
        let noon = at("2026-12-02T11:00:00");
        assert_eq!(release_at(noon, Some("Europe/Paris"), quiet), noon);
        assert_eq!(
            release_at(at("2026-12-02T02:00:00"), Some("Europe/Paris"), None).canonical(),
            "2026-12-02T02:00:00"
        );
    }

    #[test]
    fn a_digest_is_written_in_the_recipients_language_with_local_dates_and_links() {
        let ps = Pseudonymizer::new(&Secret::new("k"));
        let digest = Digest {
            recipient: ps.pseudonym("+33600000001"),
            window: AlertWindow::Days(7),
            assets: vec![asset("A1", "2026-12-08T23:30:00")],
        };
        let link = |id: &AssetId| format!("https://dam.example.com/AssetLink/{}", id.as_str());
        let fr = digest_text(
            &digest,
            DigestLanguage::of(Some("fr_FR")),
            Some("Europe/Paris"),
            link,
        );
        assert!(fr.header.starts_with("Droits d'utilisation"));
        assert!(fr.body.contains("09/12/2026"), "{}", fr.body);
        assert!(fr.body.contains("https://dam.example.com/AssetLink/A1"));
        let en = digest_text(&digest, DigestLanguage::of(Some("en_US")), None, link);
        assert_eq!(en.header, "Usage rights end in 7 days");
        assert!(en.body.contains("8 Dec 2026"), "{}", en.body);
    }

    #[test]
    fn a_long_digest_lists_what_fits_and_counts_the_rest() {
        let ps = Pseudonymizer::new(&Secret::new("k"));
        let digest = Digest {
            recipient: ps.pseudonym("+447700900001"),
            window: AlertWindow::Days(30),
            assets: (0..300)
                .map(|i| asset(&format!("ASSET{i:04}"), "2026-12-20T00:00:00"))
                .collect(),
        };
        let text = digest_text(&digest, DigestLanguage::English, None, |id| {
            format!("https://dam.example.com/AssetLink/{}", id.as_str())
        });
        assert!(text.body.chars().count() <= crate::whatsapp::messages::limits::LIST_BODY);
        assert!(text.body.contains("more in the DAM"));
    }

    #[test]
    fn alert_actions_round_trip_through_their_ids_and_foreign_ids_are_not_actions() {
        let a = AssetId::parse("2S0000001A").expect("id");
        let b = AssetId::parse("2S0000002B").expect("id");
        for action in [
            ExpiryAction::Open(a.clone()),
            ExpiryAction::RequestRenewal(a.clone()),
            ExpiryAction::RemoveFromUse(a.clone()),
            ExpiryAction::ShowAlternatives(a.clone()),
            ExpiryAction::UseAlternative {
                asset: a.clone(),
                alternative: b.clone(),
            },
        ] {
            let id = action.id().expect("fits");
            assert_eq!(ExpiryAction::from_id(&id), Some(action));
        }
        assert_eq!(ExpiryAction::from_id("rv|approve|A|1"), None);
        assert_eq!(ExpiryAction::from_id("rx|dance|A|"), None);
    }

    #[test]
    fn action_comments_name_their_author() {
        let a = AssetId::parse("A1").expect("id");
        let now = at("2026-12-02T10:00:00");
        let line = action_comment(&ExpiryAction::RequestRenewal(a.clone()), "Lena Legal", now)
            .expect("a comment");
        assert!(line.contains("Lena Legal") && line.contains("renewal"));
        assert_eq!(action_comment(&ExpiryAction::Open(a), "x", now), None);
    }

    #[test]
    fn window_codes_round_trip() {
        for w in [AlertWindow::Days(30), AlertWindow::Expired] {
            assert_eq!(AlertWindow::parse(&w.code()), Some(w));
        }
        assert_eq!(AlertWindow::parse("0d"), None);
    }
}
