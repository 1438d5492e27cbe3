//! The one sender: every outbound request goes through here. Opt-out first, then the claim on its
//! send key, the 24-hour window, the pacing shared by every concurrent sender, and Graph, with
//! Meta's errors turned into retries, records or alarms.

use crate::connector_config::{BusinessNumber, TemplateRef, TemplateUse};
use crate::domain::outbound::{MessageFlow, OutboundRequest, SendFrom};
use crate::domain::sending::{
    self, Choice, Pace, PaceDecision, SuppressReason, jittered, render_template, retry_delay,
};
use crate::error::Retryable;
use crate::lambda::deadline;
use crate::metrics::{self, Outcome};
use crate::ports::{
    BusinessNumberId, ContactDirectory, ConversationStore, MessageSender, OwnerToken, SendClaim,
    SendLedger, SendOutcome, SendPacer, SendRecord, SentMessage, SentMessageStore, StoreError,
};
use crate::whatsapp::client::SendError;
use crate::whatsapp::errors::{ApiError, Backoff, ErrorClass};
use crate::whatsapp::messages::{Content, OutgoingMessage};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The log field operators alarm on when Graph refuses the token (template.yaml's metric filter).
pub const TOKEN_INVALID_METRIC: &str = "whatsapp_token_invalid";

/// The sender's knobs (Meta's limits by default; tests use small values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendSettings {
    /// Messages per second per business number, across every concurrent sender.
    pub per_number_per_second: u32,
    /// Messages to one user sent at once before the pair rate applies.
    pub pair_burst: u32,
    /// One message per this interval to one user after the burst.
    pub pair_interval: Duration,
    /// An unknown outcome is sent again only after this long without a status settling it.
    pub resend_unknown_after: Duration,
    /// The longest one Graph call takes (the client's timeout): never started without it left.
    pub send_worst_case: Duration,
    /// The longest wait for one retry after a throttling or server error.
    pub max_retry_wait: Duration,
}

impl Default for SendSettings {
    fn default() -> Self {
        Self {
            per_number_per_second: 80,
            pair_burst: 45,
            pair_interval: Duration::from_secs(6),
            resend_unknown_after: Duration::from_secs(300),
            send_worst_case: Duration::from_secs(10),
            max_retry_wait: Duration::from_secs(8),
        }
    }
}

/// What became of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// Graph accepted it.
    Accepted {
        /// The wamid.
        message_id: String,
    },
    /// Recorded and not sent.
    Suppressed(SuppressReason),
    /// Graph refused it for good; recorded with the reason.
    Refused {
        /// Meta's code.
        code: Option<i64>,
    },
    /// An earlier attempt already settled it.
    AlreadyDone,
}

/// A request that has to come back later (every variant is retryable but the malformed body).
#[derive(Debug, thiserror::Error)]
pub enum SendFlowError {
    /// A store failed.
    #[error("a store failed")]
    Store(#[from] StoreError),
    /// Another attempt holds the send.
    #[error("another attempt holds this send")]
    HeldElsewhere,
    /// An earlier attempt may have been accepted; waiting for its status.
    #[error("an earlier attempt's outcome is unknown; waiting for its status")]
    AwaitingStatus,
    /// The request may have reached Graph; its answer did not arrive.
    #[error("the outcome is unknown: the request may have reached Graph")]
    UnknownOutcome(#[source] ApiError),
    /// Pacing leaves no slot within the invocation's time.
    #[error("no send slot within the invocation's time")]
    Paced,
    /// Graph throttled or failed, and the retries ran out of time.
    #[error("Graph kept refusing the request for now")]
    Throttled(#[source] SendError),
    /// Graph refused the access token: every message stays on the queue.
    #[error("Graph refused the access token")]
    TokenInvalid(#[source] Option<SendError>),
}

impl Retryable for SendFlowError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            _ => true,
        }
    }
}

/// The sender and its ports.
#[derive(Debug)]
pub struct Sender<D, C, L, M, P, G> {
    /// Who may be messaged, and in which language.
    pub directory: D,
    /// The 24-hour windows.
    pub conversations: C,
    /// Claims and outcomes per send key.
    pub ledger: L,
    /// wamid → what was sent.
    pub messages: M,
    /// Shared pacing.
    pub pacer: P,
    /// Graph.
    pub graph: G,
    /// The configured business numbers.
    pub numbers: Vec<BusinessNumber>,
    /// The configured templates.
    pub templates: BTreeMap<TemplateUse, TemplateRef>,
    /// Knobs.
    pub settings: SendSettings,
    /// Set once Graph refused the token in this invocation: the rest of the batch is not tried.
    pub token_refused: AtomicBool,
}

fn unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn random_unit() -> f64 {
    let hex = crate::crypto::random_hex(4);
    f64::from(u32::from_str_radix(&hex, 16).unwrap_or(0)) / f64::from(u32::MAX)
}

/// What Graph's refusal means for this send.
enum Refusal {
    /// Retry after the class's backoff.
    Retry(Backoff),
    /// The request may have been accepted.
    Unknown,
    /// The token: stop, keep everything.
    Token,
    /// The window is closed (a synchronous 131047).
    NeedsTemplate,
    /// For good.
    Permanent { code: Option<i64>, reason: String },
}

fn refusal(error: &SendError) -> Refusal {
    let api = match error {
        SendError::Invalid(invalid) => {
            return Refusal::Permanent {
                code: None,
                reason: invalid.to_string(),
            };
        }
        SendError::Api(api) => api,
    };
    // A connection refused never reached Graph; anything else after the request left may have.
    if let ApiError::Transport(transport) = api
        && !transport.is_connect()
    {
        return Refusal::Unknown;
    }
    match api.class() {
        ErrorClass::Retryable { backoff } => Refusal::Retry(backoff),
        ErrorClass::Auth => Refusal::Token,
        ErrorClass::NeedsTemplate => Refusal::NeedsTemplate,
        ErrorClass::OptedOut | ErrorClass::Permanent => Refusal::Permanent {
            code: api.code(),
            reason: match api {
                ApiError::Graph { error, .. } => error.message.clone(),
                other => other.to_string(),
            },
        },
    }
}

impl<D, C, L, M, P, G> Sender<D, C, L, M, P, G>
where
    D: ContactDirectory,
    C: ConversationStore,
    L: SendLedger,
    M: SentMessageStore,
    P: SendPacer,
    G: MessageSender,
{
    /// The number a request goes out from: the first with the purpose, or the named one if configured.
    pub fn sending_number(&self, from: &SendFrom) -> Option<BusinessNumberId> {
        let id = match from {
            SendFrom::Purpose(purpose) => self
                .numbers
                .iter()
                .find(|n| n.purposes.contains(purpose))
                .map(|n| n.phone_number_id.as_str()),
            SendFrom::Number(id) => self
                .numbers
                .iter()
                .find(|n| n.phone_number_id == *id)
                .map(|n| n.phone_number_id.as_str()),
        }?;
        BusinessNumberId::parse(id)
    }

    /// Sends one request at most once, by `deadline_ms` (Unix milliseconds, the invocation's).
    #[tracing::instrument(name = "send_message", skip_all, fields(flow = ?request.key.flow, recipient = %request.key.recipient))]
    pub async fn send(
        &self,
        request: &OutboundRequest,
        now_ms: i64,
        deadline_ms: i64,
    ) -> Result<Sent, SendFlowError> {
        if self.token_refused.load(Ordering::SeqCst) {
            return Err(SendFlowError::TokenInvalid(None));
        }
        let owner = OwnerToken(crate::crypto::random_hex(16));
        let number = self.sending_number(&request.from);
        let record_of = |number: BusinessNumberId, what: String, fallback| SendRecord {
            key: request.key.clone(),
            number,
            actor: request.actor.clone(),
            what,
            fallback,
        };
        let Some(number) = number else {
            let Some(placeholder) = BusinessNumberId::parse("0") else {
                return Err(SendFlowError::Store(StoreError::Rejected {
                    reason: "no placeholder number".into(),
                }));
            };
            return self
                .suppress(
                    &record_of(placeholder, "none".into(), None),
                    &owner,
                    now_ms,
                    deadline_ms,
                    SuppressReason::UnknownSendingNumber,
                )
                .await;
        };
        let contact = self.directory.get(&request.key.recipient).await?;
        if contact.as_ref().is_some_and(|c| c.is_opted_out())
            && request.key.flow != MessageFlow::OptOut
        {
            return self
                .suppress(
                    &record_of(number, "none".into(), None),
                    &owner,
                    now_ms,
                    deadline_ms,
                    SuppressReason::OptedOut,
                )
                .await;
        }
        let window_open = match &request.content {
            Some(content) if !content.is_template() => self
                .conversations
                .get(&request.key.recipient, &number)
                .await?
                .is_some_and(|c| c.window_open(now_ms)),
            _ => false,
        };
        let language = contact.as_ref().and_then(|c| c.language.as_deref());
        let content = match sending::choose(request, window_open) {
            Choice::Suppress(reason) => {
                return self
                    .suppress(
                        &record_of(number, "none".into(), None),
                        &owner,
                        now_ms,
                        deadline_ms,
                        reason,
                    )
                    .await;
            }
            Choice::Content(content) => content.clone(),
            Choice::Template(template) => match self.templates.get(&template.template) {
                Some(configured) => {
                    Content::Template(render_template(template, configured, language))
                }
                None => {
                    return self
                        .suppress(
                            &record_of(number, "none".into(), None),
                            &owner,
                            now_ms,
                            deadline_ms,
                            SuppressReason::TemplateNotConfigured,
                        )
                        .await;
                }
            },
        };
        let fallback = (!content.is_template())
            .then(|| sending::template_version(request))
            .flatten();
        let record = record_of(number.clone(), describe(&content), fallback);
        match self
            .ledger
            .claim(
                &record,
                &owner,
                now_ms,
                deadline_ms,
                millis(self.settings.resend_unknown_after),
            )
            .await?
        {
            SendClaim::Acquired => {}
            SendClaim::Done => return Ok(Sent::AlreadyDone),
            SendClaim::HeldElsewhere => return Err(SendFlowError::HeldElsewhere),
            SendClaim::AwaitingStatus => return Err(SendFlowError::AwaitingStatus),
        }
        let mut message = OutgoingMessage {
            to: request.to.recipient(),
            reply_to: request.reply_to.clone(),
            callback_data: Some(request.key.encode()),
            content,
        };
        let result = self
            .send_claimed(request, &record, &mut message, &owner, language)
            .await;
        if let Err(error) = &result
            && release_after(error)
            && let Err(release) = self.ledger.release(&request.key, &owner).await
        {
            // The claim runs out at its deadline and is then treated as a possible send.
            tracing::warn!(error = %crate::error::chain(&release), "could not release the claim");
        }
        result
    }

    async fn send_claimed(
        &self,
        request: &OutboundRequest,
        record: &SendRecord,
        message: &mut OutgoingMessage,
        owner: &OwnerToken,
        language: Option<&str>,
    ) -> Result<Sent, SendFlowError> {
        let number = &record.number;
        let mut attempt = 0;
        loop {
            self.wait_for_slot(number, request).await?;
            if self.token_refused.load(Ordering::SeqCst) {
                return Err(SendFlowError::TokenInvalid(None));
            }
            let error = match self.graph.send(number, message).await {
                Ok(receipt) => {
                    let sent = SentMessage {
                        message_id: receipt.message_id.clone(),
                        key: request.key.clone(),
                        number: number.clone(),
                        actor: request.actor.clone(),
                        what: describe(&message.content),
                        at_ms: unix_micros() / 1000,
                    };
                    // A failure from here on comes back as retryable: the redelivery finds the
                    // claim held, then the status carrying the key settles it; never a resend.
                    self.messages.record(&sent).await?;
                    self.ledger
                        .complete(
                            &request.key,
                            owner,
                            &SendOutcome::Sent {
                                message_id: receipt.message_id.clone(),
                            },
                        )
                        .await?;
                    tracing::info!(outcome = "accepted", kind = %sent.what, "message accepted by Graph");
                    metrics::count(request.key.flow, Outcome::Sent, 1);
                    return Ok(Sent::Accepted {
                        message_id: receipt.message_id,
                    });
                }
                Err(error) => error,
            };
            match refusal(&error) {
                Refusal::Unknown => {
                    tracing::warn!(error = %crate::error::chain(&error), outcome = "unknown",
                        "no answer from Graph after the request left; its status settles it");
                    self.ledger
                        .mark_unknown(&request.key, owner, unix_micros() / 1000)
                        .await?;
                    let SendError::Api(api) = error else {
                        return Err(SendFlowError::Throttled(error));
                    };
                    return Err(SendFlowError::UnknownOutcome(api));
                }
                Refusal::Token => {
                    self.token_refused.store(true, Ordering::SeqCst);
                    tracing::error!(metric = TOKEN_INVALID_METRIC, error = %crate::error::chain(&error),
                        "Graph refused the access token: messages stay on the queue until it is renewed");
                    return Err(SendFlowError::TokenInvalid(Some(error)));
                }
                Refusal::NeedsTemplate => {
                    let Some(template) = &request.template else {
                        return self
                            .refuse(request, owner, Some(131_047), "window closed".into())
                            .await;
                    };
                    if message.content.is_template() {
                        return self
                            .refuse(request, owner, Some(131_047), "window closed".into())
                            .await;
                    }
                    let Some(configured) = self.templates.get(&template.template) else {
                        return self
                            .refuse(request, owner, Some(131_047), "no template".into())
                            .await;
                    };
                    message.content =
                        Content::Template(render_template(template, configured, language));
                }
                Refusal::Permanent { code, reason } => {
                    tracing::warn!(
                        code,
                        outcome = "refused",
                        "Graph refused the message for good"
                    );
                    return self.refuse(request, owner, code, reason).await;
                }
                Refusal::Retry(backoff) => {
                    let base = match backoff {
                        Backoff::PairRate => retry_delay(4, attempt, self.settings.max_retry_wait),
                        Backoff::Exponential => {
                            retry_delay(2, attempt, self.settings.max_retry_wait)
                        }
                        Backoff::AtLeast(at_least) => at_least,
                    };
                    let wait = jittered(base, random_unit());
                    let code = error.api().and_then(ApiError::code);
                    if !deadline::fits(wait, self.settings.send_worst_case) {
                        tracing::warn!(
                            code,
                            attempt,
                            "Graph keeps refusing for now; the request goes back to the queue"
                        );
                        return Err(SendFlowError::Throttled(error));
                    }
                    tracing::info!(
                        code,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "Graph refused for now; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Waits for this number's and this user's next slot, or fails when it is past the deadline.
    async fn wait_for_slot(
        &self,
        number: &BusinessNumberId,
        request: &OutboundRequest,
    ) -> Result<(), SendFlowError> {
        let buckets = [
            (
                format!("rate#{}", number.as_str()),
                Pace::per_number(self.settings.per_number_per_second),
            ),
            (
                format!("pair#{}#{}", number.as_str(), request.key.recipient),
                Pace::pair(self.settings.pair_burst, self.settings.pair_interval),
            ),
        ];
        // The pair slot first: a long per-user wait must not hold a per-number slot.
        for (bucket, pace) in buckets.iter().rev() {
            let horizon = deadline::remaining()
                .map_or(i64::MAX / 4, |left| {
                    micros(left.saturating_sub(self.settings.send_worst_case))
                })
                .max(0);
            let now = unix_micros();
            match self.pacer.reserve(bucket, *pace, now, horizon).await? {
                PaceDecision::Reserve { at, .. } => {
                    let wait = at - unix_micros();
                    if wait > 0 {
                        tokio::time::sleep(Duration::from_micros(wait.unsigned_abs())).await;
                    }
                }
                PaceDecision::Busy { .. } => return Err(SendFlowError::Paced),
            }
        }
        Ok(())
    }

    async fn refuse(
        &self,
        request: &OutboundRequest,
        owner: &OwnerToken,
        code: Option<i64>,
        reason: String,
    ) -> Result<Sent, SendFlowError> {
        self.ledger
            .complete(&request.key, owner, &SendOutcome::Failed { code, reason })
            .await?;
        let code_text = code.map_or_else(|| "refused".to_owned(), |c| c.to_string());
        metrics::count_reason(request.key.flow, Outcome::Failed, &code_text, 1);
        Ok(Sent::Refused { code })
    }

    async fn suppress(
        &self,
        record: &SendRecord,
        owner: &OwnerToken,
        now_ms: i64,
        deadline_ms: i64,
        reason: SuppressReason,
    ) -> Result<Sent, SendFlowError> {
        match self
            .ledger
            .claim(
                record,
                owner,
                now_ms,
                deadline_ms,
                millis(self.settings.resend_unknown_after),
            )
            .await?
        {
            SendClaim::Acquired => {}
            SendClaim::Done => return Ok(Sent::AlreadyDone),
            SendClaim::HeldElsewhere => return Err(SendFlowError::HeldElsewhere),
            SendClaim::AwaitingStatus => return Err(SendFlowError::AwaitingStatus),
        }
        self.ledger
            .complete(&record.key, owner, &SendOutcome::Suppressed(reason))
            .await?;
        tracing::info!(
            outcome = "suppressed",
            reason = reason.as_str(),
            "message recorded and not sent"
        );
        match reason {
            SuppressReason::OptedOut => {
                metrics::count(record.key.flow, Outcome::SuppressedOptOut, 1)
            }
            // Not sent for a reason of the connector's own: a failure, by that reason.
            other => metrics::count_reason(record.key.flow, Outcome::Failed, other.as_str(), 1),
        }
        Ok(Sent::Suppressed(reason))
    }
}

/// Whether the claim is given back after `error`: only when the request certainly did not go out.
fn release_after(error: &SendFlowError) -> bool {
    matches!(
        error,
        SendFlowError::Paced | SendFlowError::Throttled(_) | SendFlowError::TokenInvalid(_)
    )
}

/// `template:<name>` or the content type.
fn describe(content: &Content) -> String {
    match content {
        Content::Template(template) => format!("template:{}", template.name),
        other => other.type_name().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector_config::{ConnectorConfig, Purpose};
    use crate::domain::contact::{Contact, WhatsAppAddress};
    use crate::domain::outbound::{OUTBOUND_VERSION, SendKey, TemplateMessage};
    use crate::ports::SendState;
    use crate::pseudonym::Pseudonymizer;
    use crate::secrets::Secret;
    use crate::testing::{
        InMemoryContactDirectory, InMemoryConversationStore, InMemoryPacer, InMemorySendLedger,
        InMemorySentMessageStore,
    };
    use crate::whatsapp::client::SendReceipt;
    use crate::whatsapp::errors::GraphError;
    use crate::whatsapp::messages::TemplateParam;
    use std::sync::Mutex;

    /// Graph as a script: each call takes the next answer (an error code, or acceptance).
    #[derive(Debug, Default)]
    struct ScriptedGraph {
        refusals: Mutex<Vec<(u16, i64)>>,
        accepted: Mutex<Vec<OutgoingMessage>>,
    }

    impl ScriptedGraph {
        fn refusing(codes: &[(u16, i64)]) -> Self {
            Self {
                refusals: Mutex::new(codes.iter().rev().copied().collect()),
                accepted: Mutex::default(),
            }
        }

        fn accepted(&self) -> Vec<OutgoingMessage> {
            self.accepted.lock().map(|a| a.clone()).unwrap_or_default()
        }
    }

    impl MessageSender for ScriptedGraph {
        async fn send(
            &self,
            _from: &BusinessNumberId,
            message: &OutgoingMessage,
        ) -> Result<SendReceipt, SendError> {
            message.validate().map_err(SendError::Invalid)?;
            if let Some((status, code)) = self.refusals.lock().ok().and_then(|mut r| r.pop()) {
                return Err(SendError::Api(ApiError::Graph {
                    status,
                    error: Box::new(GraphError {
                        code,
                        message: format!("(#{code}) refused"),
                        error_type: None,
                        error_subcode: None,
                        error_data: None,
                        fbtrace_id: None,
                    }),
                }));
            }
            let mut accepted = self
                .accepted
                .lock()
                .map_err(|_| SendError::Api(ApiError::Status { status: 500 }))?;
            accepted.push(message.clone());
            Ok(SendReceipt {
                message_id: format!("wamid.T{}", accepted.len()),
                wa_id: None,
                user_id: None,
                message_status: None,
            })
        }
    }

    type TestSender = Sender<
        InMemoryContactDirectory,
        InMemoryConversationStore,
        InMemorySendLedger,
        InMemorySentMessageStore,
        InMemoryPacer,
        ScriptedGraph,
    >;

    fn sender(graph: ScriptedGraph) -> TestSender {
        let config = ConnectorConfig::parse(include_str!("../../../local/connector.yaml"))
            .unwrap_or_else(|e| panic!("{e}"));
        Sender {
            directory: InMemoryContactDirectory::default(),
            conversations: InMemoryConversationStore::default(),
            ledger: InMemorySendLedger::default(),
            messages: InMemorySentMessageStore::default(),
            pacer: InMemoryPacer::default(),
            graph,
            numbers: config.whatsapp.business_numbers,
            templates: config.whatsapp.templates,
            settings: SendSettings {
                max_retry_wait: Duration::from_millis(50),
                send_worst_case: Duration::from_millis(100),
                ..SendSettings::default()
            },
            token_refused: AtomicBool::new(false),
        }
    }

    fn request(flow: MessageFlow) -> OutboundRequest {
        let user = Pseudonymizer::new(&Secret::new("k")).pseudonym("447700900123");
        OutboundRequest {
            v: OUTBOUND_VERSION,
            key: SendKey {
                flow,
                subject: "wamid.IN1".into(),
                version: "1".into(),
                recipient: user,
            },
            to: WhatsAppAddress::parse("+447700900123").expect("number"),
            from: SendFrom::Purpose(Purpose::FieldIngest),
            content: Some(Content::Text {
                body: "Received 3 photos".into(),
                preview_url: false,
            }),
            template: Some(TemplateMessage {
                template: TemplateUse::Receipt,
                header: None,
                body: vec![TemplateParam::text("3")],
                buttons: Vec::new(),
            }),
            reply_to: None,
            actor: Some("system".into()),
            requested_at_ms: 1,
        }
    }

    fn now_ms() -> i64 {
        unix_micros() / 1000
    }

    async fn open_window(sender: &TestSender, request: &OutboundRequest) {
        let number = sender.sending_number(&request.from).expect("configured");
        sender
            .conversations
            .record_inbound(&request.key.recipient, &number, now_ms())
            .await
            .expect("recorded");
    }

    async fn send(sender: &TestSender, request: &OutboundRequest) -> Result<Sent, SendFlowError> {
        let now = now_ms();
        deadline::scope(
            tokio::time::Instant::now() + Duration::from_secs(30),
            sender.send(request, now, now + 30_000),
        )
        .await
    }

    #[tokio::test]
    async fn a_request_to_an_opted_out_user_is_recorded_suppressed_and_never_sent() {
        let sender = sender(ScriptedGraph::default());
        let request = request(MessageFlow::Review);
        sender
            .directory
            .opt_out(&request.key.recipient, 5)
            .await
            .expect("opted out");
        let sent = send(&sender, &request).await.expect("acknowledged");
        assert_eq!(sent, Sent::Suppressed(SuppressReason::OptedOut));
        assert!(sender.graph.accepted().is_empty());
        let entries = sender.ledger.entries();
        assert_eq!(entries[0].state, SendState::Suppressed);
        assert_eq!(entries[0].reason.as_deref(), Some("opted_out"));
        let mut confirmation = request.clone();
        confirmation.key.flow = MessageFlow::OptOut;
        open_window(&sender, &confirmation).await;
        assert!(matches!(
            send(&sender, &confirmation).await,
            Ok(Sent::Accepted { .. })
        ));
    }

    #[tokio::test]
    async fn free_form_outside_the_window_goes_as_the_template_in_the_users_language() {
        let sender = sender(ScriptedGraph::default());
        let request = request(MessageFlow::FieldIngest);
        let mut contact = Contact::new(request.key.recipient.clone());
        contact.language = Some("fr_FR".into());
        sender.directory.put(&contact).await.expect("put");
        send(&sender, &request).await.expect("sent");
        let accepted = sender.graph.accepted();
        let Content::Template(template) = &accepted[0].content else {
            panic!("expected the template, got {:?}", accepted[0].content);
        };
        assert_eq!(
            (template.name.as_str(), template.language.as_str()),
            ("content_receipt", "fr_FR")
        );
        assert_eq!(
            accepted[0].callback_data.as_deref(),
            Some(request.key.encode().as_str())
        );
        let mut no_template = request.clone();
        no_template.key.subject = "wamid.IN2".into();
        no_template.template = None;
        assert_eq!(
            send(&sender, &no_template).await.expect("recorded"),
            Sent::Suppressed(SuppressReason::WindowClosedNoTemplate)
        );
    }

    #[tokio::test]
    async fn inside_the_window_the_content_goes_and_its_template_version_is_kept_for_a_late_131047()
    {
        let sender = sender(ScriptedGraph::default());
        let request = request(MessageFlow::FieldIngest);
        open_window(&sender, &request).await;
        let Sent::Accepted { message_id } = send(&sender, &request).await.expect("sent") else {
            panic!("not accepted");
        };
        assert!(matches!(
            sender.graph.accepted()[0].content,
            Content::Text { .. }
        ));
        let entry = sender
            .ledger
            .find(&request.key.encode())
            .await
            .expect("read")
            .expect("entry");
        assert_eq!(entry.message_id.as_deref(), Some(message_id.as_str()));
        let fallback = entry.record.fallback.expect("template version kept");
        assert!(fallback.content.is_none());
        let tracked = sender.messages.get(&message_id).await.expect("read");
        assert_eq!(tracked.expect("recorded").message.what, "text");
    }

    #[tokio::test]
    async fn a_redelivered_request_is_not_sent_twice() {
        let sender = sender(ScriptedGraph::default());
        let request = request(MessageFlow::FieldIngest);
        open_window(&sender, &request).await;
        send(&sender, &request).await.expect("sent");
        assert_eq!(
            send(&sender, &request).await.expect("acknowledged"),
            Sent::AlreadyDone
        );
        assert_eq!(sender.graph.accepted().len(), 1);
    }

    #[tokio::test]
    async fn an_unknown_outcome_waits_for_its_status_and_is_resent_only_after_the_wait() {
        let mut sender = sender(ScriptedGraph::default());
        let request = request(MessageFlow::FieldIngest);
        open_window(&sender, &request).await;
        let earlier = OwnerToken("crashed-attempt".into());
        let record = SendRecord {
            key: request.key.clone(),
            number: sender.sending_number(&request.from).expect("configured"),
            actor: None,
            what: "text".into(),
            fallback: None,
        };
        let now = now_ms();
        sender
            .ledger
            .claim(&record, &earlier, now, now + 10, 0)
            .await
            .expect("claimed");
        sender
            .ledger
            .mark_unknown(&request.key, &earlier, now)
            .await
            .expect("marked");
        assert!(matches!(
            send(&sender, &request).await,
            Err(SendFlowError::AwaitingStatus)
        ));
        assert!(sender.graph.accepted().is_empty());
        sender.settings.resend_unknown_after = Duration::ZERO;
        assert!(matches!(
            send(&sender, &request).await,
            Ok(Sent::Accepted { .. })
        ));
        assert_eq!(sender.graph.accepted().len(), 1);
    }

    #[tokio::test]
    async fn throttling_and_server_errors_are_retried_within_the_invocation() {
        let sender = sender(ScriptedGraph::refusing(&[
            (400, 130_429),
            (400, 131_056),
            (500, 131_000),
        ]));
        let request = request(MessageFlow::FieldIngest);
        open_window(&sender, &request).await;
        assert!(matches!(
            send(&sender, &request).await,
            Ok(Sent::Accepted { .. })
        ));
        assert_eq!(sender.graph.accepted().len(), 1);
    }

    #[tokio::test]
    async fn a_permanent_refusal_is_recorded_with_its_reason_and_acknowledged() {
        let sender = sender(ScriptedGraph::refusing(&[(400, 131_026)]));
        let request = request(MessageFlow::FieldIngest);
        open_window(&sender, &request).await;
        assert_eq!(
            send(&sender, &request).await.expect("acknowledged"),
            Sent::Refused {
                code: Some(131_026)
            }
        );
        let entry = &sender.ledger.entries()[0];
        assert_eq!(entry.state, SendState::Failed);
        assert!(
            entry
                .reason
                .as_deref()
                .is_some_and(|r| r.starts_with("131026"))
        );
    }

    #[tokio::test]
    async fn a_refused_token_keeps_the_message_and_stops_the_rest_of_the_batch() {
        let sender = sender(ScriptedGraph::refusing(&[(401, 190)]));
        let request = request(MessageFlow::FieldIngest);
        open_window(&sender, &request).await;
        let error = send(&sender, &request).await.expect_err("kept");
        assert!(matches!(error, SendFlowError::TokenInvalid(Some(_))));
        assert!(error.is_retryable());
        assert!(
            sender.ledger.entries().is_empty(),
            "the claim is given back"
        );
        let mut other = request.clone();
        other.key.subject = "wamid.IN2".into();
        assert!(matches!(
            send(&sender, &other).await,
            Err(SendFlowError::TokenInvalid(None))
        ));
        assert!(sender.graph.accepted().is_empty());
    }

    #[tokio::test]
    async fn throttling_past_the_deadline_goes_back_to_the_queue_with_the_claim_released() {
        let sender = sender(ScriptedGraph::refusing(&[(400, 130_429); 50]));
        let request = request(MessageFlow::FieldIngest);
        open_window(&sender, &request).await;
        let now = now_ms();
        let result = deadline::scope(
            tokio::time::Instant::now() + Duration::from_millis(400),
            sender.send(&request, now, now + 400),
        )
        .await;
        assert!(matches!(result, Err(SendFlowError::Throttled(_))));
        assert!(sender.ledger.entries().is_empty());
    }
}
