//! Flow 3, rights expiry: the scheduled scan (date-range searches per alert window, an alert
//! recorded once per asset, window and end date, one digest per recipient and window, held through
//! their quiet hours), the expiry changes change detection publishes, and the actions recipients
//! take from an alert (written back to the DAM with their name). The rules are in
//! `domain::expiry`; this module orchestrates the ports.

use crate::connector_config::{Purpose, TemplateUse};
use crate::domain::contact::{Contact, Role, WhatsAppAddress};
use crate::domain::dam::{
    AssetId, AssetSnapshot, DamDates, DamInstant, DomainEvent, DomainEventKind,
};
use crate::domain::expiry::{
    self, AlertWindow, Digest, DigestLanguage, EndKind, ExpiringAsset, ExpiryAction, PendingAlert,
    Windows,
};
use crate::domain::outbound::{
    MessageFlow, OUTBOUND_VERSION, OutboundRequest, RoutedMessage, SendFrom, SendKey,
    TemplateMessage,
};
use crate::error::Retryable;
use crate::ports::{
    AlertRecord, ContactDirectory, DamError, EndingQuery, ExpiryCatalogue, ExpiryLedger,
    OutboundQueue, QueueError, ScanCursor, StoreError,
};
use crate::pseudonym::{Pseudonymizer, UserPseudonym};
use crate::whatsapp::messages::{
    Content, ListMessage, ListRow, ListSection, ReplyButton, ReplyButtons, TemplateHeader,
    TemplateParam, limits,
};
use futures::StreamExt as _;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// The DAM fields the flow reads (instance names, from the field map).
#[derive(Debug, Clone)]
pub struct ExpiryFields {
    /// Rights expiry date.
    pub expiry: String,
    /// Licence end date.
    pub licence_end: String,
    /// Workflow status.
    pub status: String,
    /// The owner (a WhatsApp number or the owner's directory name).
    pub owner: String,
    /// Campaign (alternatives share it).
    pub campaign: String,
    /// Title.
    pub title: String,
    /// Document type (alternatives share it).
    pub doc_type: String,
}

impl ExpiryFields {
    /// Every field a search returns.
    pub fn all(&self) -> Vec<String> {
        [
            &self.expiry,
            &self.licence_end,
            &self.status,
            &self.owner,
            &self.campaign,
            &self.title,
            &self.doc_type,
        ]
        .into_iter()
        .cloned()
        .collect()
    }
}

/// Tunables and configuration.
#[derive(Debug, Clone)]
pub struct ExpirySettings {
    /// The alert windows.
    pub windows: Windows,
    /// How far back ended rights of assets still approved are searched.
    pub expired_lookback_days: u32,
    /// Field names.
    pub fields: ExpiryFields,
    /// How the instance writes dates.
    pub dates: DamDates,
    /// The "approved" status value (published / in use; alternatives must have it).
    pub approved_status: String,
    /// The status "remove from use" sets; `None`: the action is not offered.
    pub withdrawn_status: Option<String>,
    /// Asset links: this prefix followed by the RecordID.
    pub asset_link_prefix: String,
    /// How long alert records are kept (a later change to the same date is no new alert).
    pub alert_ttl_seconds: i64,
    /// The scan stops and checkpoints when less than this is left of the invocation.
    pub time_margin: Duration,
    /// Results per search page (a shorter page is a search's last).
    pub page_size: usize,
}

/// What the flow needs.
#[derive(Debug)]
pub struct RightsExpiry<C, L, D, O> {
    /// The DAM.
    pub catalogue: C,
    /// Alerts, pending digests and the scan cursor.
    pub ledger: L,
    /// Who is who.
    pub directory: D,
    /// `outbound.fifo`.
    pub outbound: O,
    /// Pseudonyms of owners named by number.
    pub pseudonyms: Pseudonymizer,
    /// Configuration.
    pub settings: ExpirySettings,
}

/// Why flow 3 could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ExpiryError {
    /// The DAM failed.
    #[error("the DAM failed")]
    Dam(#[from] DamError),
    /// The ledger or the directory failed.
    #[error("a store failed")]
    Store(#[from] StoreError),
    /// The outbound queue failed.
    #[error("the outbound queue failed")]
    Queue(#[from] QueueError),
}

impl Retryable for ExpiryError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Dam(e) => e.is_retryable(),
            Self::Store(e) => e.is_retryable(),
            Self::Queue(e) => e.is_retryable(),
        }
    }
}

/// What one scheduled invocation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScanReport {
    /// Search results looked at.
    pub scanned: u64,
    /// Alerts newly recorded (asset × window × end date).
    pub alerted: u64,
    /// Whether the whole scan finished (else its cursor is saved for the next invocation).
    pub complete: bool,
    /// Digests handed to the sender.
    pub digests_sent: u64,
    /// Digests waiting for their recipients' quiet hours to end.
    pub digests_held: u64,
}

/// What handling one flow-queue message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Alerts newly recorded and pending ones cancelled.
    Event {
        /// Pending digest entries removed.
        cancelled: usize,
        /// New alerts.
        alerted: u64,
    },
    /// An action answered (and written to the DAM when it writes).
    Action(&'static str),
    /// Not for this flow, or already handled.
    Ignored,
}

/// The recipients of a scan: the legal reviewers, and owners by number and by name.
struct Recipients {
    legal: Vec<Contact>,
    owners_by_pseudonym: HashMap<UserPseudonym, Contact>,
    owners_by_name: HashMap<String, Contact>,
}

fn messageable(contact: &Contact) -> bool {
    contact.address.is_some() && !contact.is_opted_out()
}

impl<C, L, D, O> RightsExpiry<C, L, D, O>
where
    C: ExpiryCatalogue,
    L: ExpiryLedger,
    D: ContactDirectory,
    O: OutboundQueue,
{
    async fn recipients(&self) -> Result<Recipients, ExpiryError> {
        let legal = self.directory.with_role(Role::Legal).await?;
        let owners = self.directory.with_role(Role::Owner).await?;
        let mut by_pseudonym = HashMap::new();
        let mut by_name = HashMap::new();
        for owner in owners {
            if let Some(name) = &owner.name {
                by_name.insert(name.trim().to_lowercase(), owner.clone());
            }
            by_pseudonym.insert(owner.pseudonym.clone(), owner);
        }
        Ok(Recipients {
            legal: legal.into_iter().filter(messageable).collect(),
            owners_by_pseudonym: by_pseudonym,
            owners_by_name: by_name,
        })
    }

    fn owner_of<'a>(
        &self,
        snapshot: &AssetSnapshot,
        recipients: &'a Recipients,
    ) -> Option<&'a Contact> {
        let value = snapshot.field(&self.settings.fields.owner)?.trim();
        if value.is_empty() {
            return None;
        }
        let by_number = WhatsAppAddress::parse(value).ok().and_then(|address| {
            recipients
                .owners_by_pseudonym
                .get(&self.pseudonyms.pseudonym(address.expose()))
        });
        by_number
            .or_else(|| recipients.owners_by_name.get(&value.to_lowercase()))
            .filter(|c| messageable(c))
    }

    /// The end that counts for `snapshot` and its window at `now`; `None` when no alert is due
    /// (no date, beyond every window, or ended but no longer in use).
    fn due(
        &self,
        snapshot: &AssetSnapshot,
        now: DamInstant,
    ) -> Option<(AlertWindow, ExpiringAsset)> {
        let fields = &self.settings.fields;
        let date = |field: &str| {
            snapshot
                .field(field)
                .and_then(|t| self.settings.dates.parse(t))
        };
        let (kind, end) = expiry::first_end(date(&fields.expiry), date(&fields.licence_end))?;
        let window = self.settings.windows.window_of(now, end)?;
        if window == AlertWindow::Expired {
            let approved = snapshot.field(&fields.status).is_some_and(|s| {
                s.trim()
                    .eq_ignore_ascii_case(&self.settings.approved_status)
            });
            if !approved {
                return None;
            }
        }
        let title = snapshot
            .field(&fields.title)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .unwrap_or(snapshot.id.as_str())
            .to_owned();
        Some((
            window,
            ExpiringAsset {
                asset: snapshot.id.clone(),
                title,
                kind,
                ends: end.canonical(),
            },
        ))
    }

    /// Records the alert due for `snapshot` at `now`, once; the number of new alerts (0 or 1).
    async fn alert(
        &self,
        snapshot: &AssetSnapshot,
        now: DamInstant,
        recipients: &Recipients,
    ) -> Result<u64, ExpiryError> {
        let Some((window, asset)) = self.due(snapshot, now) else {
            return Ok(0);
        };
        let mut to: Vec<UserPseudonym> = recipients
            .legal
            .iter()
            .map(|c| c.pseudonym.clone())
            .collect();
        if let Some(owner) = self.owner_of(snapshot, recipients)
            && !to.contains(&owner.pseudonym)
        {
            to.push(owner.pseudonym.clone());
        }
        if to.is_empty() {
            tracing::warn!(asset = %snapshot.id, window = %window, "expiring asset has no owner or legal reviewer to alert");
            return Ok(0);
        }
        let pending: Vec<PendingAlert> = to
            .iter()
            .map(|recipient| PendingAlert {
                recipient: recipient.clone(),
                window,
                asset: asset.clone(),
            })
            .collect();
        let record = AlertRecord {
            asset: snapshot.id.clone(),
            window,
            ends: asset.ends.clone(),
            recipients: to,
        };
        let expires_at = now.unix_seconds() + self.settings.alert_ttl_seconds;
        let new = self
            .ledger
            .record_alert(&record, &pending, expires_at)
            .await?;
        Ok(u64::from(new))
    }

    /// The scheduled run: the scan (resumed where the last one stopped), then the digests that
    /// are due.
    pub async fn scan(
        &self,
        now: DamInstant,
        deadline: Instant,
    ) -> Result<ScanReport, ExpiryError> {
        let mut report = ScanReport::default();
        let cursor = self.ledger.cursor().await?;
        let as_of = cursor
            .as_ref()
            .and_then(|c| DamInstant::from_unix_seconds(c.as_of))
            .unwrap_or(now);
        let recipients = self.recipients().await?;
        let fields = &self.settings.fields;
        let mut steps = Vec::new();
        for range in self
            .settings
            .windows
            .ranges(as_of, self.settings.expired_lookback_days)
        {
            for field in [&fields.expiry, &fields.licence_end] {
                steps.push((range, field.clone()));
            }
        }
        let first = cursor.as_ref().map_or(0, |c| c.step);
        for (step, (range, field)) in steps.iter().enumerate().skip(first) {
            let mut after: Option<DamInstant> = cursor
                .as_ref()
                .filter(|c| c.step == step)
                .and_then(|c| c.after.as_deref())
                .and_then(DamInstant::parse_canonical);
            let query = EndingQuery {
                field: field.clone(),
                from: after.map_or(range.from, |a| a.max(range.from)),
                to: range.to,
                status: (range.window == AlertWindow::Expired)
                    .then(|| (fields.status.clone(), self.settings.approved_status.clone())),
            };
            let checkpoint = |step: usize, after: Option<DamInstant>| ScanCursor {
                as_of: as_of.unix_seconds(),
                step,
                after: after.map(DamInstant::canonical),
            };
            let resumed_at = after;
            let mut pages = std::pin::pin!(self.catalogue.ending_between(query));
            while let Some(page) = pages.next().await {
                let page = match page {
                    Ok(page) => page,
                    Err(error) => {
                        // Keep what was done: the next invocation resumes at the last date handled.
                        self.ledger
                            .save_cursor(Some(&checkpoint(step, after)))
                            .await?;
                        return Err(error.into());
                    }
                };
                // One alert at a time: each is a small transaction (moto, the local DynamoDB,
                // fails concurrent transactions on one table with 500s).
                for snapshot in &page {
                    report.scanned += 1;
                    report.alerted += self.alert(snapshot, as_of, &recipients).await?;
                    if let Some(end) = snapshot
                        .field(field)
                        .and_then(|t| self.settings.dates.parse(t))
                    {
                        after = Some(after.map_or(end, |a| a.max(end)));
                    }
                }
                if deadline.saturating_duration_since(Instant::now()) < self.settings.time_margin {
                    // A page short of full was this search's last: the next invocation starts the
                    // next search. A full page of one same date (no progress past the resume
                    // point) cannot be resumed by date: the next search too, with a warning.
                    let last = page.len() < self.settings.page_size;
                    let stuck = !last && after == resumed_at;
                    if stuck {
                        tracing::warn!(
                            step,
                            "a full page of one end date: the rest of this window's search waits for the next full scan"
                        );
                    }
                    let next = if last || stuck {
                        checkpoint(step + 1, None)
                    } else {
                        checkpoint(step, after)
                    };
                    self.ledger.save_cursor(Some(&next)).await?;
                    tracing::info!(
                        step,
                        scanned = report.scanned,
                        "rights-expiry scan checkpointed; the next invocation goes on"
                    );
                    return Ok(report);
                }
            }
        }
        if cursor.is_some() {
            self.ledger.save_cursor(None).await?;
        }
        report.complete = true;
        let (sent, held) = self.release(now).await?;
        report.digests_sent = sent;
        report.digests_held = held;
        Ok(report)
    }

    /// Sends every digest whose recipient is outside their quiet hours at `now`; returns how
    /// many were sent and how many wait.
    pub async fn release(&self, now: DamInstant) -> Result<(u64, u64), ExpiryError> {
        let pending = self.ledger.pending().await?;
        let (mut sent, mut held) = (0, 0);
        for digest in expiry::digests(&pending) {
            let entries: Vec<PendingAlert> = digest
                .assets
                .iter()
                .map(|asset| PendingAlert {
                    recipient: digest.recipient.clone(),
                    window: digest.window,
                    asset: asset.clone(),
                })
                .collect();
            let contact = self.directory.get(&digest.recipient).await?;
            let Some((contact, address)) = contact
                .filter(messageable)
                .and_then(|c| Some((c.clone(), c.address?)))
            else {
                tracing::info!(recipient = %digest.recipient, "digest recipient gone or opted out; its alerts are dropped");
                self.ledger.drop_pending(&entries).await?;
                continue;
            };
            let release =
                expiry::release_at(now, contact.time_zone.as_deref(), contact.quiet_hours);
            if release > now {
                held += 1;
                tracing::info!(recipient = %digest.recipient, window = %digest.window, release = %release.canonical(), "digest held through quiet hours");
                continue;
            }
            let request = self.digest_request(&digest, &contact, address, now);
            self.outbound.enqueue(&[request]).await?;
            self.ledger.drop_pending(&entries).await?;
            crate::metrics::count(
                crate::domain::outbound::MessageFlow::RightsExpiry,
                crate::metrics::Outcome::AlertSent,
                1,
            );
            sent += 1;
        }
        Ok((sent, held))
    }

    fn link(&self, id: &AssetId) -> String {
        format!("{}{}", self.settings.asset_link_prefix, id.as_str())
    }

    fn digest_request(
        &self,
        digest: &Digest,
        contact: &Contact,
        address: WhatsAppAddress,
        now: DamInstant,
    ) -> OutboundRequest {
        let language = DigestLanguage::of(contact.language.as_deref());
        let zone = contact.time_zone.as_deref();
        let text = expiry::digest_text(digest, language, zone, |id| self.link(id));
        let rows = digest
            .assets
            .iter()
            .take(limits::LIST_ROWS)
            .filter_map(|asset| {
                Some(ListRow {
                    id: ExpiryAction::Open(asset.asset.clone()).id()?,
                    title: asset.title.chars().take(limits::ROW_TITLE).collect(),
                    description: Some(
                        format!(
                            "{} {}",
                            match asset.kind {
                                EndKind::Expiry => "⏳",
                                EndKind::LicenceEnd => "📄",
                            },
                            expiry::local_date(&asset.ends, zone, language)
                        )
                        .chars()
                        .take(limits::ROW_DESCRIPTION)
                        .collect(),
                    ),
                })
            })
            .collect();
        let first = &digest.assets[0];
        let days = digest.window.days().to_string();
        OutboundRequest {
            v: OUTBOUND_VERSION,
            key: SendKey {
                flow: MessageFlow::RightsExpiry,
                subject: "digest".into(),
                version: digest.identity(),
                recipient: digest.recipient.clone(),
            },
            to: address,
            from: SendFrom::Purpose(Purpose::Notifications),
            content: Some(Content::List(ListMessage {
                header: Some(text.header),
                body: text.body,
                footer: None,
                button: text.button,
                sections: vec![ListSection { title: None, rows }],
            })),
            template: Some(TemplateMessage {
                template: TemplateUse::RightsExpiry,
                header: Some(TemplateHeader::Text(TemplateParam::text(days.clone()))),
                body: vec![
                    TemplateParam::text(digest.assets.len().to_string()),
                    TemplateParam::text(days),
                    TemplateParam::text(first.title.clone()),
                    TemplateParam::text(expiry::local_date(&first.ends, zone, language)),
                    TemplateParam::text(self.link(&first.asset)),
                ],
                buttons: Vec::new(),
            }),
            reply_to: None,
            actor: Some("system".into()),
            requested_at_ms: now.unix_seconds() * 1000,
        }
    }

    /// An expiry change or deletion from change detection: pending alerts for another end date
    /// are cancelled, and the new date is alerted for its window (when due).
    pub async fn on_event(
        &self,
        event: &DomainEvent,
        now: DamInstant,
    ) -> Result<Handled, ExpiryError> {
        let snapshot = match &event.kind {
            // The asset as it is now: the event says a date changed, the DAM says to what.
            DomainEventKind::ExpiryChanged { .. } => self.catalogue.read(&event.asset).await?,
            DomainEventKind::AssetDeleted => None,
            _ => return Ok(Handled::Ignored),
        };
        let due = snapshot.as_ref().and_then(|s| self.due(s, now));
        let mut cancelled = Vec::new();
        let records = self.ledger.alerts_of(&event.asset).await?;
        let pending = if records.is_empty() {
            Vec::new()
        } else {
            self.ledger.pending().await?
        };
        for record in records {
            let still = due.as_ref().is_some_and(|(window, asset)| {
                *window == record.window && asset.ends == record.ends
            });
            if still {
                continue;
            }
            cancelled.extend(
                pending
                    .iter()
                    .filter(|p| {
                        p.asset.asset == record.asset
                            && p.window == record.window
                            && p.asset.ends == record.ends
                    })
                    .cloned(),
            );
        }
        cancelled.dedup();
        if !cancelled.is_empty() {
            self.ledger.drop_pending(&cancelled).await?;
            tracing::info!(asset = %event.asset, cancelled = cancelled.len(), "pending expiry alerts cancelled");
        }
        let alerted = match &snapshot {
            Some(snapshot) => {
                let recipients = self.recipients().await?;
                self.alert(snapshot, now, &recipients).await?
            }
            None => 0,
        };
        Ok(Handled::Event {
            cancelled: cancelled.len(),
            alerted,
        })
    }

    /// A recipient's answer to an alert: a row or button of [`ExpiryAction`].
    pub async fn on_answer(
        &self,
        routed: &RoutedMessage,
        now: DamInstant,
    ) -> Result<Handled, ExpiryError> {
        let Some(action) = routed.button.as_deref().and_then(ExpiryAction::from_id) else {
            return Ok(Handled::Ignored);
        };
        let action_key = format!("{}#{}", routed.key, action.id().unwrap_or_default());
        if self.ledger.action_done(&action_key).await? {
            return Ok(Handled::Ignored);
        }
        let contact = self.directory.get(&routed.user).await?;
        let language = DigestLanguage::of(contact.as_ref().and_then(|c| c.language.as_deref()));
        let author = contact
            .as_ref()
            .and_then(|c| c.name.clone())
            .unwrap_or_else(|| format!("WhatsApp user {}", routed.user));
        let fr = language == DigestLanguage::French;
        let asset = self.catalogue.read(action.asset()).await?;
        let (name, content) = match (&action, asset) {
            (_, None) => (
                "gone",
                text(if fr {
                    "Cette ressource n'existe plus dans le DAM."
                } else {
                    "This asset is no longer in the DAM."
                }),
            ),
            (ExpiryAction::Open(id), Some(asset)) => {
                ("open", Content::Buttons(self.actions_of(id, &asset, fr)))
            }
            (ExpiryAction::RequestRenewal(id), Some(_)) => {
                self.comment(&action, id, &author, now).await?;
                (
                    "renew",
                    text(if fr {
                        "Demande de renouvellement transmise au service juridique."
                    } else {
                        "Renewal requested: legal has it on the asset in the DAM."
                    }),
                )
            }
            (ExpiryAction::RemoveFromUse(id), Some(_)) => match &self.settings.withdrawn_status {
                Some(status) => {
                    self.catalogue
                        .set_field(id, &self.settings.fields.status, status)
                        .await?;
                    self.comment(&action, id, &author, now).await?;
                    (
                        "remove",
                        text(if fr {
                            "La ressource est retirée de l'usage."
                        } else {
                            "The asset is removed from use."
                        }),
                    )
                }
                None => (
                    "remove_unavailable",
                    text(if fr {
                        "Le retrait n'est pas configuré."
                    } else {
                        "Removing from use is not configured."
                    }),
                ),
            },
            (ExpiryAction::ShowAlternatives(id), Some(asset)) => (
                "alternatives",
                self.alternatives(id, &asset, now, fr).await?,
            ),
            (
                ExpiryAction::UseAlternative {
                    asset: id,
                    alternative,
                },
                Some(_),
            ) => {
                let usable = self
                    .catalogue
                    .read(alternative)
                    .await?
                    .is_some_and(|alt| self.usable_alternative(&alt, now));
                if usable {
                    self.comment(&action, id, &author, now).await?;
                    (
                        "use_alternative",
                        text(if fr {
                            "C'est noté : l'alternative remplace la ressource dans le DAM."
                        } else {
                            "Noted in the DAM: the alternative replaces the asset."
                        }),
                    )
                } else {
                    (
                        "alternative_unusable",
                        text(if fr {
                            "Cette alternative n'est plus approuvée ou a expiré."
                        } else {
                            "That alternative is no longer approved or has expired."
                        }),
                    )
                }
            }
        };
        let reply = OutboundRequest {
            v: OUTBOUND_VERSION,
            key: SendKey {
                flow: MessageFlow::RightsExpiry,
                subject: routed.key.clone(),
                version: name.into(),
                recipient: routed.user.clone(),
            },
            to: routed.reply_address.clone(),
            from: SendFrom::Number(routed.number.clone()),
            content: Some(content),
            template: None,
            reply_to: Some(routed.key.clone()),
            actor: Some(routed.user.to_string()),
            requested_at_ms: now.unix_seconds() * 1000,
        };
        self.outbound.enqueue(&[reply]).await?;
        self.ledger
            .mark_action_done(&action_key, now.unix_seconds() + 8 * 24 * 3600)
            .await?;
        Ok(Handled::Action(name))
    }

    async fn comment(
        &self,
        action: &ExpiryAction,
        id: &AssetId,
        author: &str,
        now: DamInstant,
    ) -> Result<(), ExpiryError> {
        if let Some(line) = expiry::action_comment(action, author, now) {
            self.catalogue.append_comment(id, &line).await?;
        }
        Ok(())
    }

    fn actions_of(&self, id: &AssetId, asset: &AssetSnapshot, fr: bool) -> ReplyButtons {
        let title = asset
            .field(&self.settings.fields.title)
            .unwrap_or(id.as_str())
            .to_owned();
        let mut choices = vec![(
            ExpiryAction::RequestRenewal(id.clone()),
            if fr { "Renouveler" } else { "Request renewal" },
        )];
        if self.settings.withdrawn_status.is_some() {
            choices.push((
                ExpiryAction::RemoveFromUse(id.clone()),
                if fr { "Retirer" } else { "Remove from use" },
            ));
        }
        choices.push((
            ExpiryAction::ShowAlternatives(id.clone()),
            if fr {
                "Alternative"
            } else {
                "Pick alternative"
            },
        ));
        ReplyButtons {
            header: None,
            body: format!("{title}\n{}", self.link(id))
                .chars()
                .take(limits::BUTTONS_BODY)
                .collect(),
            footer: None,
            buttons: choices
                .into_iter()
                .filter_map(|(action, label)| {
                    Some(ReplyButton {
                        id: action.id()?,
                        title: label.into(),
                    })
                })
                .collect(),
        }
    }

    fn usable_alternative(&self, asset: &AssetSnapshot, now: DamInstant) -> bool {
        let fields = &self.settings.fields;
        let approved = asset.field(&fields.status).is_some_and(|s| {
            s.trim()
                .eq_ignore_ascii_case(&self.settings.approved_status)
        });
        let date = |field: &str| {
            asset
                .field(field)
                .and_then(|t| self.settings.dates.parse(t))
        };
        let unexpired = expiry::first_end(date(&fields.expiry), date(&fields.licence_end))
            .is_none_or(|(_, end)| self.settings.windows.window_of(now, end).is_none());
        approved && unexpired
    }

    async fn alternatives(
        &self,
        id: &AssetId,
        asset: &AssetSnapshot,
        now: DamInstant,
        fr: bool,
    ) -> Result<Content, ExpiryError> {
        let fields = &self.settings.fields;
        let mut criteria = vec![(fields.status.clone(), self.settings.approved_status.clone())];
        for field in [&fields.campaign, &fields.doc_type] {
            if let Some(value) = asset.field(field).filter(|v| !v.trim().is_empty()) {
                criteria.push((field.clone(), value.trim().to_owned()));
            }
        }
        let found = self.catalogue.matching(&criteria, 50).await?;
        let rows: Vec<ListRow> = found
            .iter()
            .filter(|alt| alt.id != *id && self.usable_alternative(alt, now))
            .take(limits::LIST_ROWS)
            .filter_map(|alt| {
                Some(ListRow {
                    id: ExpiryAction::UseAlternative {
                        asset: id.clone(),
                        alternative: alt.id.clone(),
                    }
                    .id()?,
                    title: alt
                        .field(&fields.title)
                        .unwrap_or(alt.id.as_str())
                        .chars()
                        .take(limits::ROW_TITLE)
                        .collect(),
                    description: Some(
                        alt.id
                            .as_str()
                            .chars()
                            .take(limits::ROW_DESCRIPTION)
                            .collect(),
                    ),
                })
            })
            .collect();
        if rows.is_empty() {
            return Ok(text(if fr {
                "Aucune alternative approuvée et valide dans la même campagne."
            } else {
                "No approved, unexpired alternative in the same campaign and type."
            }));
        }
        Ok(Content::List(ListMessage {
            header: None,
            body: if fr {
                "Alternatives approuvées de la même campagne :"
            } else {
                "Approved alternatives of the same campaign and type:"
            }
            .into(),
            footer: None,
            button: if fr { "Choisir" } else { "Choose one" }.into(),
            sections: vec![ListSection { title: None, rows }],
        }))
    }
}

fn text(body: &str) -> Content {
    Content::Text {
        body: body.into(),
        preview_url: false,
    }
}
