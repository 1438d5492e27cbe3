//! DynamoDB adapters of the contact directory and the conversation state.
//!
//! Contacts table (`pk`, `sk`): the entry of a user is `pk = <pseudonym>, sk = contact`, one native
//! attribute per field so opt-out and opt-in are single conditional updates; role membership is
//! `pk = role#<role>, sk = <pseudonym>`, so picking recipients by role is one query, not a scan.
//! Membership is written after the entry and filtered against the entry's roles when read, so a
//! write interrupted between the two never sends to someone who lost the role.
//!
//! Conversations table (`pk` = pseudonym, `sk` = business number id): last inbound time, the
//! courtesy reply's time, the state a flow waits in; expires 90 days after the last message.

use crate::adapters::dynamodb::{Failure, classify, n, s, store_error};
use crate::domain::contact::{Contact, OptChange, OptIn, QuietHours, Role, WhatsAppAddress};
use crate::ports::{
    BusinessNumberId, ContactDirectory, Conversation, ConversationStore, SeenItems, SeenMark,
    StoreError,
};
use crate::pseudonym::UserPseudonym;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, PutRequest, WriteRequest,
};
use futures::{StreamExt, TryStreamExt};
use std::collections::{BTreeSet, HashMap};

type Item = HashMap<String, AttributeValue>;

const CONTACT_SK: &str = "contact";
/// Writes of an import in flight at once.
const IMPORT_CONCURRENCY: usize = 16;

fn role_pk(role: Role) -> String {
    format!("role#{}", role.as_str())
}

/// The contact directory on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoContactDirectory {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoContactDirectory {
    /// Wraps a client and the contacts table name.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn contact_key(who: &UserPseudonym) -> [(&'static str, AttributeValue); 2] {
        [("pk", s(who.as_str())), ("sk", s(CONTACT_SK))]
    }

    /// Writes the directory fields of `contact`, keeping a recorded opt-out; returns the roles the
    /// entry had before.
    async fn write_fields(&self, contact: &Contact) -> Result<BTreeSet<Role>, StoreError> {
        let mut set = Vec::new();
        let mut remove = Vec::new();
        let mut values: Vec<(String, AttributeValue)> = Vec::new();
        let mut field = |name: &str, value: Option<AttributeValue>| match value {
            Some(value) => {
                set.push(format!("#{name} = :{name}"));
                values.push((format!(":{name}"), value));
            }
            None => remove.push(format!("#{name}")),
        };
        field("address", contact.address.as_ref().map(|a| s(a.expose())));
        field("name", contact.name.clone().map(s));
        field(
            "roles",
            string_set(contact.roles.iter().map(|r| r.as_str())),
        );
        field(
            "regions",
            string_set(contact.regions.iter().map(String::as_str)),
        );
        field("language", contact.language.clone().map(s));
        field("time_zone", contact.time_zone.clone().map(s));
        field("quiet_hours", contact.quiet_hours.map(|q| s(q.to_string())));
        field("project_tag", contact.project_tag.clone().map(s));
        field("opted_in_at", contact.opted_in.as_ref().map(|o| n(o.at_ms)));
        field(
            "opted_in_source",
            contact.opted_in.as_ref().map(|o| s(o.source.clone())),
        );
        let mut expression = String::new();
        if !set.is_empty() {
            expression.push_str("SET ");
            expression.push_str(&set.join(", "));
        }
        if !remove.is_empty() {
            expression.push_str(" REMOVE ");
            expression.push_str(&remove.join(", "));
        }
        let names = set
            .iter()
            .chain(&remove)
            .filter_map(|part| part.split_whitespace().next())
            .map(|name| (name.to_owned(), name.trim_start_matches('#').to_owned()));
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .update_expression(expression.trim())
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld);
        for (k, v) in Self::contact_key(&contact.pseudonym) {
            request = request.key(k, v);
        }
        for (name, attribute) in names {
            request = request.expression_attribute_names(name, attribute);
        }
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        let old = request.send().await.map_err(store_error)?.attributes;
        Ok(old.as_ref().map(roles_of).unwrap_or_default())
    }

    /// Adds and removes role membership items after an entry's roles changed from `before`.
    async fn write_membership(
        &self,
        who: &UserPseudonym,
        before: &BTreeSet<Role>,
        after: &BTreeSet<Role>,
    ) -> Result<(), StoreError> {
        let mut writes = Vec::new();
        for role in after.difference(before) {
            let put = PutRequest::builder()
                .item("pk", s(role_pk(*role)))
                .item("sk", s(who.as_str()))
                .build()
                .map_err(rejected)?;
            writes.push(WriteRequest::builder().put_request(put).build());
        }
        for role in before.difference(after) {
            let delete = DeleteRequest::builder()
                .key("pk", s(role_pk(*role)))
                .key("sk", s(who.as_str()))
                .build()
                .map_err(rejected)?;
            writes.push(WriteRequest::builder().delete_request(delete).build());
        }
        self.batch_write(writes).await
    }

    /// BatchWriteItem in chunks of 25, retrying what DynamoDB leaves unprocessed.
    async fn batch_write(&self, writes: Vec<WriteRequest>) -> Result<(), StoreError> {
        for chunk in writes.chunks(25) {
            let mut pending = chunk.to_vec();
            for attempt in 0..8u32 {
                if pending.is_empty() {
                    break;
                }
                let answer = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(store_error)?;
                pending = answer
                    .unprocessed_items
                    .and_then(|mut left| left.remove(&self.table))
                    .unwrap_or_default();
                if !pending.is_empty() {
                    tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                }
            }
            if !pending.is_empty() {
                return Err(StoreError::Unavailable(
                    "DynamoDB kept leaving writes unprocessed".into(),
                ));
            }
        }
        Ok(())
    }

    async fn get_many(&self, who: &[String]) -> Result<Vec<Contact>, StoreError> {
        let mut found = Vec::new();
        for chunk in who.chunks(100) {
            let mut keys = KeysAndAttributes::builder().consistent_read(true);
            for pseudonym in chunk {
                keys = keys.keys(HashMap::from([
                    ("pk".to_owned(), s(pseudonym.clone())),
                    ("sk".to_owned(), s(CONTACT_SK)),
                ]));
            }
            let mut pending = Some(keys.build().map_err(rejected)?);
            for attempt in 0..8u32 {
                let Some(keys) = pending.take() else { break };
                let answer = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .send()
                    .await
                    .map_err(store_error)?;
                if let Some(mut responses) = answer.responses
                    && let Some(items) = responses.remove(&self.table)
                {
                    for item in &items {
                        found.push(contact_of(item)?);
                    }
                }
                pending = answer
                    .unprocessed_keys
                    .and_then(|mut left| left.remove(&self.table))
                    .filter(|k| !k.keys.is_empty());
                if pending.is_some() {
                    tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                }
            }
            if pending.is_some() {
                return Err(StoreError::Unavailable(
                    "DynamoDB kept leaving reads unprocessed".into(),
                ));
            }
        }
        found.sort_by(|a, b| a.pseudonym.cmp(&b.pseudonym));
        Ok(found)
    }
}

fn rejected(error: impl std::fmt::Display) -> StoreError {
    StoreError::Rejected {
        reason: error.to_string(),
    }
}

fn string_set<'a>(values: impl Iterator<Item = &'a str>) -> Option<AttributeValue> {
    let values: Vec<String> = values.map(str::to_owned).collect();
    (!values.is_empty()).then_some(AttributeValue::Ss(values))
}

fn text(item: &Item, name: &str) -> Option<String> {
    item.get(name)?.as_s().ok().cloned()
}

fn number_attr(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn strings(item: &Item, name: &str) -> Vec<String> {
    item.get(name)
        .and_then(|v| v.as_ss().ok())
        .cloned()
        .unwrap_or_default()
}

fn roles_of(item: &Item) -> BTreeSet<Role> {
    strings(item, "roles")
        .iter()
        .filter_map(|r| Role::parse(r))
        .collect()
}

fn contact_of(item: &Item) -> Result<Contact, StoreError> {
    let pk = text(item, "pk").ok_or_else(|| rejected("a contact item has no pk"))?;
    let pseudonym: UserPseudonym = serde_json::from_value(serde_json::Value::String(pk))
        .map_err(|e| rejected(format!("a contact's key is unreadable: {e}")))?;
    let address = text(item, "address")
        .map(|a| WhatsAppAddress::parse(&a))
        .transpose()
        .map_err(|e| rejected(format!("the address of {pseudonym} is unreadable: {e}")))?;
    Ok(Contact {
        pseudonym,
        address,
        name: text(item, "name"),
        roles: roles_of(item),
        regions: strings(item, "regions").into_iter().collect(),
        language: text(item, "language"),
        time_zone: text(item, "time_zone"),
        quiet_hours: text(item, "quiet_hours").and_then(|q| QuietHours::parse(&q)),
        project_tag: text(item, "project_tag"),
        opted_in: number_attr(item, "opted_in_at").map(|at_ms| OptIn {
            at_ms,
            source: text(item, "opted_in_source").unwrap_or_default(),
        }),
        opted_out_at_ms: number_attr(item, "opted_out_at"),
    })
}

impl ContactDirectory for DynamoContactDirectory {
    async fn get(&self, who: &UserPseudonym) -> Result<Option<Contact>, StoreError> {
        let mut request = self
            .client
            .get_item()
            .table_name(&self.table)
            .consistent_read(true);
        for (k, v) in Self::contact_key(who) {
            request = request.key(k, v);
        }
        let item = request.send().await.map_err(store_error)?.item;
        item.as_ref().map(contact_of).transpose()
    }

    async fn put(&self, contact: &Contact) -> Result<(), StoreError> {
        let before = self.write_fields(contact).await?;
        self.write_membership(&contact.pseudonym, &before, &contact.roles)
            .await
    }

    async fn put_many(&self, contacts: &[Contact]) -> Result<(), StoreError> {
        // The futures are made before the stream: a closure in the stream would not be `Send`
        // for every lifetime the port's `impl Future + Send` asks.
        let writes: Vec<_> = contacts.iter().map(|c| self.write_fields(c)).collect();
        let befores: Vec<BTreeSet<Role>> = futures::stream::iter(writes)
            .buffered(IMPORT_CONCURRENCY)
            .try_collect()
            .await?;
        let written = contacts.iter().zip(befores);
        // Membership changes of the whole import, in batches of 25.
        let mut writes = Vec::new();
        for (contact, before) in written {
            let who = contact.pseudonym.as_str();
            for role in contact.roles.difference(&before) {
                let put = PutRequest::builder()
                    .item("pk", s(role_pk(*role)))
                    .item("sk", s(who))
                    .build()
                    .map_err(rejected)?;
                writes.push(WriteRequest::builder().put_request(put).build());
            }
            for role in before.difference(&contact.roles) {
                let delete = DeleteRequest::builder()
                    .key("pk", s(role_pk(*role)))
                    .key("sk", s(who))
                    .build()
                    .map_err(rejected)?;
                writes.push(WriteRequest::builder().delete_request(delete).build());
            }
        }
        let batches: Vec<_> = writes
            .chunks(25)
            .map(|chunk| self.batch_write(chunk.to_vec()))
            .collect();
        futures::stream::iter(batches)
            .buffer_unordered(IMPORT_CONCURRENCY / 4)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    async fn all(&self) -> Result<Vec<Contact>, StoreError> {
        let mut contacts = Vec::new();
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("sk = :contact")
            .expression_attribute_values(":contact", s(CONTACT_SK))
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            contacts.push(contact_of(&item.map_err(store_error)?)?);
        }
        contacts.sort_by(|a, b| a.pseudonym.cmp(&b.pseudonym));
        Ok(contacts)
    }

    async fn with_role(&self, role: Role) -> Result<Vec<Contact>, StoreError> {
        let mut members = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :role")
            .expression_attribute_values(":role", s(role_pk(role)))
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            if let Some(sk) = text(&item.map_err(store_error)?, "sk") {
                members.push(sk);
            }
        }
        Ok(self
            .get_many(&members)
            .await?
            .into_iter()
            .filter(|c| c.has_role(role))
            .collect())
    }

    async fn opt_out(&self, who: &UserPseudonym, at_ms: i64) -> Result<OptChange, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .update_expression("SET opted_out_at = :at")
            .condition_expression("attribute_not_exists(opted_out_at)")
            .expression_attribute_values(":at", n(at_ms));
        for (k, v) in Self::contact_key(who) {
            request = request.key(k, v);
        }
        match request.send().await {
            Ok(_) => Ok(OptChange::Changed),
            Err(error) => match classify(error) {
                Failure::ConditionFailed => Ok(OptChange::Unchanged),
                Failure::Store(e) => Err(e),
            },
        }
    }

    async fn opt_in(
        &self,
        who: &UserPseudonym,
        at_ms: i64,
        source: &str,
    ) -> Result<OptChange, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .update_expression(
                "SET opted_in_at = :at, opted_in_source = :source REMOVE opted_out_at",
            )
            .condition_expression("attribute_exists(opted_out_at)")
            .expression_attribute_values(":at", n(at_ms))
            .expression_attribute_values(":source", s(source));
        for (k, v) in Self::contact_key(who) {
            request = request.key(k, v);
        }
        match request.send().await {
            Ok(_) => Ok(OptChange::Changed),
            Err(error) => match classify(error) {
                Failure::ConditionFailed => Ok(OptChange::Unchanged),
                Failure::Store(e) => Err(e),
            },
        }
    }

    async fn change_number(&self, old: &UserPseudonym, new: &Contact) -> Result<(), StoreError> {
        let previous = self.get(old).await?;
        let before_new = self.write_fields(new).await?;
        if let Some(at_ms) = new.opted_out_at_ms {
            self.opt_out(&new.pseudonym, at_ms).await?;
        }
        self.write_membership(&new.pseudonym, &before_new, &new.roles)
            .await?;
        if let Some(previous) = previous {
            self.write_membership(old, &previous.roles, &BTreeSet::new())
                .await?;
        }
        let mut request = self.client.delete_item().table_name(&self.table);
        for (k, v) in Self::contact_key(old) {
            request = request.key(k, v);
        }
        request.send().await.map_err(store_error)?;
        Ok(())
    }
}

/// Conversation state on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoConversationStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

/// A conversation nobody wrote in for this long is forgotten (TTL).
const CONVERSATION_TTL_MS: i64 = 90 * 24 * 3600 * 1000;

impl DynamoConversationStore {
    /// Wraps a client and the conversations table name.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// A conditional update; `false` when the condition did not hold.
    async fn update(
        &self,
        who: &UserPseudonym,
        number: &BusinessNumberId,
        expression: &str,
        condition: Option<&str>,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(who.as_str()))
            .key("sk", s(number.as_str()))
            .update_expression(expression)
            .set_condition_expression(condition.map(str::to_owned));
        if expression.contains("#state") {
            request = request.expression_attribute_names("#state", "state");
        }
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(error) => match classify(error) {
                Failure::ConditionFailed => Ok(false),
                Failure::Store(e) => Err(e),
            },
        }
    }
}

impl ConversationStore for DynamoConversationStore {
    async fn get(
        &self,
        who: &UserPseudonym,
        number: &BusinessNumberId,
    ) -> Result<Option<Conversation>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(who.as_str()))
            .key("sk", s(number.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?
            .item;
        Ok(item.map(|item| Conversation {
            last_inbound_at_ms: number_attr(&item, "last_inbound_at"),
            courtesy_reply_at_ms: number_attr(&item, "courtesy_at"),
            state: text(&item, "state"),
            seen: text(&item, "seen")
                .map(|seen| SeenItems::decode(&seen))
                .unwrap_or_default(),
        }))
    }

    async fn record_inbound(
        &self,
        who: &UserPseudonym,
        number: &BusinessNumberId,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        // An older item arriving late fails the condition: the window never moves back.
        self.update(
            who,
            number,
            "SET last_inbound_at = :at, expires_at = :expires",
            Some("attribute_not_exists(last_inbound_at) OR last_inbound_at < :at"),
            vec![
                (":at", n(at_ms)),
                (":expires", n((at_ms + CONVERSATION_TTL_MS) / 1000)),
            ],
        )
        .await
        .map(|_| ())
    }

    async fn mark_seen(
        &self,
        who: &UserPseudonym,
        number: &BusinessNumberId,
        read: &Conversation,
        mark: &SeenMark<'_>,
    ) -> Result<bool, StoreError> {
        // The seen items are one string attribute, so the condition compares them whole: the
        // write lands only on the list it was built from (route-inbound handles one user's items
        // one after another, so this only refuses a redelivery handled at the same time).
        let seen = read.seen.with(mark.key).encode();
        let mut condition = if read.seen.is_empty() {
            "attribute_not_exists(seen)".to_owned()
        } else {
            "seen = :read".to_owned()
        };
        let mut values = vec![(":seen", s(seen))];
        if !read.seen.is_empty() {
            values.push((":read", s(read.seen.encode())));
        }
        let expression = match read.last_inbound_after(mark) {
            Some(at) if mark.records_inbound => {
                // Never back: a mark built on an older read fails rather than undo a later time.
                condition.push_str(
                    " AND (attribute_not_exists(last_inbound_at) OR last_inbound_at <= :at)",
                );
                values.push((":at", n(at)));
                values.push((":expires", n((at + CONVERSATION_TTL_MS) / 1000)));
                "SET seen = :seen, last_inbound_at = :at, expires_at = :expires"
            }
            _ => {
                // A conversation only a `system` message made still expires.
                values.push((":expires", n((mark.at_ms + CONVERSATION_TTL_MS) / 1000)));
                "SET seen = :seen, expires_at = if_not_exists(expires_at, :expires)"
            }
        };
        self.update(who, number, expression, Some(&condition), values)
            .await
    }

    async fn take_courtesy_reply(
        &self,
        who: &UserPseudonym,
        number: &BusinessNumberId,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<bool, StoreError> {
        self.update(
            who,
            number,
            "SET courtesy_at = :now",
            Some("attribute_not_exists(courtesy_at) OR courtesy_at <= :since"),
            vec![(":now", n(now_ms)), (":since", n(now_ms - window_ms))],
        )
        .await
    }

    async fn set_state(
        &self,
        who: &UserPseudonym,
        number: &BusinessNumberId,
        state: Option<&str>,
    ) -> Result<(), StoreError> {
        match state {
            Some(state) => {
                self.update(
                    who,
                    number,
                    "SET #state = :state",
                    None,
                    vec![(":state", s(state))],
                )
                .await?
            }
            None => {
                self.update(who, number, "REMOVE #state", None, vec![])
                    .await?
            }
        };
        Ok(())
    }
}
