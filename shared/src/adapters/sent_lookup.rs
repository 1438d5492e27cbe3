//! Reads what a sent message was about (`SentMessagesTable`, written by the one sender) for the
//! router's `context.id` lookups. Item: `pk` = the wamid, `flow` (its code), `subject`,
//! `version`, `recipient` (the pseudonym).

use crate::adapters::dynamodb::store_error;
use crate::domain::outbound::{MessageFlow, SendKey, SentMessageRef};
use crate::ports::{SentMessageLookup, StoreError};
use crate::pseudonym::UserPseudonym;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// `SentMessagesTable`, read by wamid.
#[derive(Debug, Clone)]
pub struct DynamoSentMessageLookup {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoSentMessageLookup {
    /// Wraps a client and the table name.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// The send key of a stored item; `None` when the item lacks one of its parts.
pub fn key_of(item: &HashMap<String, AttributeValue>) -> Option<SendKey> {
    let flow = MessageFlow::from_code(text(item, "flow")?)?;
    let recipient: UserPseudonym = serde_json::from_value(serde_json::Value::String(
        text(item, "recipient")?.to_owned(),
    ))
    .ok()?;
    Some(SendKey {
        flow,
        subject: text(item, "subject")?.to_owned(),
        version: text(item, "version")?.to_owned(),
        recipient,
    })
}

impl SentMessageLookup for DynamoSentMessageLookup {
    async fn find(&self, message_id: &str) -> Result<Option<SentMessageRef>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(message_id.to_owned()))
            .send()
            .await
            .map_err(store_error)?
            .item;
        let Some(item) = item else {
            return Ok(None);
        };
        match key_of(&item) {
            Some(key) => Ok(Some(SentMessageRef {
                message_id: message_id.to_owned(),
                key,
            })),
            None => Err(StoreError::Rejected {
                reason: "a sent-message record lacks its send key".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_record_yields_its_send_key_and_an_incomplete_one_none() {
        let mut item: HashMap<String, AttributeValue> = [
            ("pk", "wamid.OUT1"),
            ("flow", "rv"),
            ("subject", "A-1"),
            ("version", "3"),
            ("recipient", "u_0123456789abcdef01234567"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), AttributeValue::S(v.to_owned())))
        .collect();
        let key = key_of(&item).expect("key");
        assert_eq!(key.flow, MessageFlow::Review);
        assert_eq!(key.recipient.as_str(), "u_0123456789abcdef01234567");
        item.remove("version");
        assert_eq!(key_of(&item), None);
    }
}
