//! Splits a webhook notification into queue items without losing any: every entry, every change,
//! every message, status and error. Parsing borrows from the body and keeps each item's raw JSON.
//!
//! An element of an unexpected shape (`entry: [5, {..}]`, `changes: ["x", {..}]`, a message that
//! is not an object) is refused on its own and reported by its path, so it costs no other item.
//! Items nested deeper than [`MAX_ITEM_DEPTH`] are refused too: no consumer could parse them.
//! Every path through the parser keeps serde_json's recursion limit, and skipped values are
//! walked without recursion, so no nesting depth can exhaust the stack.

use crate::domain::inbound::{ENVELOPE_VERSION, InboundItem, InboundKind};
use crate::pseudonym::Pseudonymizer;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The only `object` the Cloud API sends.
pub const WHATSAPP_OBJECT: &str = "whatsapp_business_account";

/// Deepest nesting accepted in one queued item (a message, status, error or contact), counting
/// each `[` or `{` level of the item itself. Meta's deepest documented items (interactive replies,
/// order items, referrals) nest about 5 levels; 64 leaves more than ten times that for new
/// shapes, and stays well under serde_json's default recursion limit of 128, so a consumer can
/// still parse the item inside its queue envelope.
pub const MAX_ITEM_DEPTH: usize = 64;

/// A notification, split.
#[derive(Debug, Default)]
pub struct Split {
    /// Items to enqueue, in notification order.
    pub items: Vec<InboundItem>,
    /// Parts deliberately ignored (other objects or webhook fields), for the log line.
    pub ignored: Vec<String>,
    /// Elements refused on their own, in notification order; the other items are unaffected.
    pub refused: Vec<Refusal>,
}

/// One element of a notification that could not be queued, named by where it was, never by
/// what it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Where in the notification, e.g. `entry[1].changes[0].value.messages[2]`.
    pub path: String,
    /// Why.
    pub reason: RefusalReason,
}

/// Why an element was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// A list was expected (`entry`, `changes`).
    NotAList,
    /// An object was expected (an entry, a change, a messages change's value, an item).
    NotAnObject,
    /// Nested deeper than [`MAX_ITEM_DEPTH`].
    TooDeep,
    /// Well-formed to a skipping reader but not decodable (a lone `\ud800` surrogate escape):
    /// serde_json skips such strings without decoding them, a consumer decodes and fails.
    Undecodable,
}

impl RefusalReason {
    /// A short fixed description, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotAList => "not a list",
            Self::NotAnObject => "not an object",
            Self::TooDeep => "nested deeper than the item depth limit",
            Self::Undecodable => "holds a string no JSON reader can decode",
        }
    }
}

/// The body is not a JSON notification at all. Only where parsing stopped is kept: serde_json's
/// own text can quote the body (`invalid type: string "..."`), which must not reach a log.
#[derive(Debug, thiserror::Error)]
#[error("the webhook body is not a JSON notification ({category} at line {line}, column {column})")]
pub struct EnvelopeError {
    category: &'static str,
    line: usize,
    column: usize,
}

impl From<serde_json::Error> for EnvelopeError {
    fn from(error: serde_json::Error) -> Self {
        use serde_json::error::Category;
        Self {
            category: match error.classify() {
                Category::Io => "unreadable",
                Category::Syntax => "not JSON",
                Category::Data => "not an object",
                Category::Eof => "cut short",
            },
            line: error.line(),
            column: error.column(),
        }
    }
}

#[derive(Deserialize)]
struct Notification<'a> {
    #[serde(borrow, default, deserialize_with = "lenient")]
    object: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    entry: Option<Elements<Entry<'a>>>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow, default, deserialize_with = "lenient")]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    changes: Option<Elements<Change<'a>>>,
}

/// A list whose elements are read one by one: an element that is not an object is kept as
/// `None` (to be refused by its index) instead of failing the whole list; a value that is not a
/// list at all is `NotAList`.
enum Elements<T> {
    List(Vec<Option<T>>),
    NotAList,
}

/// An object read as `T`, anything else as `None`.
struct ObjectOr<T>(Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOr<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::value::MapAccessDeserializer;
        use serde::de::{MapAccess, SeqAccess, Visitor};
        use std::marker::PhantomData;

        struct V<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = ObjectOr<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(|t| ObjectOr(Some(t)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq).map(|()| ObjectOr(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(ObjectOr(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(ObjectOr(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(ObjectOr(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(ObjectOr(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(ObjectOr(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(ObjectOr(None))
            }
        }

        deserializer.deserialize_any(V(PhantomData))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Elements<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{MapAccess, SeqAccess, Visitor};
        use std::marker::PhantomData;

        struct V<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Elements<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut elements = Vec::new();
                while let Some(ObjectOr(element)) = seq.next_element::<ObjectOr<T>>()? {
                    elements.push(element);
                }
                Ok(Elements::List(elements))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                skip_map(map).map(|()| Elements::NotAList)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Elements::NotAList)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Elements::NotAList)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Elements::NotAList)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Elements::NotAList)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Elements::NotAList)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                // `"entry": null` says there is nothing, which is not an odd shape.
                Ok(Elements::List(Vec::new()))
            }
        }

        deserializer.deserialize_any(V(PhantomData))
    }
}

/// Skips the rest of a list without recursing (serde_json walks ignored values iteratively).
fn skip_seq<'de, A: serde::de::SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Skips the rest of an object without recursing.
fn skip_map<'de, A: serde::de::MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map
        .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
        .is_some()
    {}
    Ok(())
}

#[derive(Deserialize)]
struct Change<'a> {
    #[serde(borrow, default, deserialize_with = "lenient")]
    field: Option<Cow<'a, str>>,
    /// Read in the same pass as the envelope (Meta sends `value` before `field`); `None` when the
    /// value is not an object.
    #[serde(borrow, default, deserialize_with = "object_or_nothing")]
    value: Option<MessagesValue<'a>>,
}

/// A `MessagesValue` for an object, `None` for any other JSON value.
fn object_or_nothing<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<MessagesValue<'de>>, D::Error> {
    use serde::de::value::MapAccessDeserializer;
    use serde::de::{MapAccess, SeqAccess, Visitor};

    struct ObjectOrNothing;

    impl<'de> Visitor<'de> for ObjectOrNothing {
        type Value = Option<MessagesValue<'de>>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            MessagesValue::deserialize(MapAccessDeserializer::new(map)).map(Some)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            skip_seq(seq).map(|()| None)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }

    deserializer.deserialize_any(ObjectOrNothing)
}

/// A `messages` change's value. Each part is kept raw and read on its own, so one part of an
/// unexpected shape never costs the others.
#[derive(Deserialize)]
struct MessagesValue<'a> {
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
    #[serde(borrow, default)]
    contacts: Option<&'a RawValue>,
    #[serde(borrow, default)]
    messages: Option<&'a RawValue>,
    #[serde(borrow, default)]
    statuses: Option<&'a RawValue>,
    #[serde(borrow, default)]
    errors: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(borrow, default)]
    phone_number_id: Option<Cow<'a, str>>,
}

/// The elements of a part with their paths: a list's elements, or one object standing alone
/// (still queued). An element that is not an object, or nests too deep, is refused by its path.
fn items<'a>(
    part: Option<&'a RawValue>,
    path: &str,
    refused: &mut Vec<Refusal>,
) -> Vec<(String, &'a RawValue)> {
    let Some(raw) = part else {
        return Vec::new();
    };
    let text = raw.get();
    let elements: Vec<(String, &RawValue)> = match text.as_bytes().first() {
        Some(b'[') => match serde_json::from_str::<Vec<&RawValue>>(text) {
            Ok(list) => list
                .into_iter()
                .enumerate()
                .map(|(i, element)| (format!("{path}[{i}]"), element))
                .collect(),
            Err(_) => vec![(path.to_owned(), raw)],
        },
        Some(b'n') => Vec::new(),
        _ => vec![(path.to_owned(), raw)],
    };
    elements
        .into_iter()
        .filter(|(path, element)| {
            let reason = if !element.get().starts_with('{') {
                Some(RefusalReason::NotAnObject)
            } else if nesting_exceeds(element.get(), MAX_ITEM_DEPTH) {
                Some(RefusalReason::TooDeep)
            } else if !decodes(element.get()) {
                Some(RefusalReason::Undecodable)
            } else {
                None
            };
            if let Some(reason) = reason {
                refused.push(Refusal {
                    path: path.clone(),
                    reason,
                });
            }
            reason.is_none()
        })
        .collect()
}

/// Whether every string of `text` (JSON within the depth limit) decodes, as a consumer reading
/// the item will decode it. Found by fuzzing: `"from":"447\ud800123"` was queued, and
/// route-inbound could not read it.
fn decodes(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok()
}

/// Whether valid JSON `text` nests deeper than `limit` levels of `[` / `{`; one pass over the
/// bytes, no recursion, stopping as soon as the limit is passed.
pub fn nesting_exceeds(text: &str, limit: usize) -> bool {
    let mut depth = 0_usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in text.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// The ids of a message, status or contact; absent ones (or ones of an unexpected type) stay
/// `None` without affecting the others.
#[derive(Deserialize, Default)]
struct Ids<'a> {
    #[serde(borrow, default, deserialize_with = "lenient")]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient")]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient")]
    from: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient")]
    from_user_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient")]
    from_parent_user_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient")]
    recipient_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient")]
    recipient_user_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient")]
    parent_recipient_user_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient")]
    wa_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient")]
    user_id: Option<Cow<'a, str>>,
}

/// A string field, or `None` for any other JSON value; borrows from the body when it can.
fn lenient<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'de, str>>, D::Error> {
    use serde::de::{MapAccess, SeqAccess, Visitor};

    struct StringOrNothing;

    impl<'de> Visitor<'de> for StringOrNothing {
        type Value = Option<Cow<'de, str>>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v)))
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            skip_seq(seq).map(|()| None)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            skip_map(map).map(|()| None)
        }
    }

    deserializer.deserialize_any(StringOrNothing)
}

impl<'a> Ids<'a> {
    fn of(raw: &'a RawValue) -> Self {
        // An item that is not an object keeps no ids; it is still queued, keyed by its digest.
        serde_json::from_str(raw.get()).unwrap_or_default()
    }

    /// The user a message or status is about: the business-scoped id when Meta sends one
    /// (phone numbers may be absent for username users), else the phone number.
    fn user(&self) -> Option<&str> {
        self.from_parent_user_id
            .as_deref()
            .or(self.from_user_id.as_deref())
            .or(self.parent_recipient_user_id.as_deref())
            .or(self.recipient_user_id.as_deref())
            .or(self.from.as_deref())
            .or(self.recipient_id.as_deref())
    }
}

/// Splits `body`; `received_at_ms` stamps every item.
pub fn split(
    body: &[u8],
    pseudonyms: &Pseudonymizer,
    received_at_ms: i64,
) -> Result<Split, EnvelopeError> {
    let notification: Notification<'_> =
        serde_json::from_slice(body).map_err(EnvelopeError::from)?;
    let mut split = Split::default();
    let object = notification.object.as_deref().unwrap_or("");
    if object != WHATSAPP_OBJECT {
        split.ignored.push(format!("object {object:?}"));
        return Ok(split);
    }
    let entries = match notification.entry {
        None => Vec::new(),
        Some(Elements::List(entries)) => entries,
        Some(Elements::NotAList) => {
            split.refuse("entry".to_owned(), RefusalReason::NotAList);
            Vec::new()
        }
    };
    for (e, entry) in entries.into_iter().enumerate() {
        let Some(entry) = entry else {
            split.refuse(format!("entry[{e}]"), RefusalReason::NotAnObject);
            continue;
        };
        let changes = match entry.changes {
            None => Vec::new(),
            Some(Elements::List(changes)) => changes,
            Some(Elements::NotAList) => {
                split.refuse(format!("entry[{e}].changes"), RefusalReason::NotAList);
                Vec::new()
            }
        };
        for (c, change) in changes.into_iter().enumerate() {
            let at = format!("entry[{e}].changes[{c}]");
            let Some(change) = change else {
                split.refuse(at, RefusalReason::NotAnObject);
                continue;
            };
            let field = change.field.as_deref().unwrap_or("");
            let value = match (field, change.value) {
                ("messages", Some(value)) => value,
                ("messages", None) => {
                    split.refuse(format!("{at}.value"), RefusalReason::NotAnObject);
                    continue;
                }
                _ => {
                    split.ignored.push(format!("field {field:?}"));
                    continue;
                }
            };
            let metadata: Option<Metadata<'_>> = value
                .metadata
                .and_then(|raw| serde_json::from_str(raw.get()).ok());
            let ctx = ItemContext {
                pseudonyms,
                received_at_ms,
                waba_id: entry.id.as_deref(),
                phone_number_id: metadata.as_ref().and_then(|m| m.phone_number_id.as_deref()),
            };
            let contacts: Vec<(Ids<'_>, &RawValue)> = items(
                value.contacts,
                &format!("{at}.value.contacts"),
                &mut split.refused,
            )
            .into_iter()
            .map(|(_, raw)| (Ids::of(raw), raw))
            .collect();
            for (_, raw) in items(
                value.messages,
                &format!("{at}.value.messages"),
                &mut split.refused,
            ) {
                let ids = Ids::of(raw);
                let contact = contacts
                    .iter()
                    .find(|(c, _)| same_user(&ids, c))
                    .map(|(_, raw)| *raw);
                // An empty wamid is no identity: two such messages would share one key and the
                // queue would drop the second as a duplicate (found by fuzzing).
                let key = ids
                    .id
                    .as_deref()
                    .filter(|id| !id.is_empty())
                    .map(str::to_owned);
                split
                    .items
                    .push(ctx.item(InboundKind::Message, key, &ids, raw, contact));
            }
            for (_, raw) in items(
                value.statuses,
                &format!("{at}.value.statuses"),
                &mut split.refused,
            ) {
                let ids = Ids::of(raw);
                let key = ids
                    .id
                    .as_deref()
                    .map(|id| format!("{id}:{}", ids.status.as_deref().unwrap_or("")));
                split
                    .items
                    .push(ctx.item(InboundKind::Status, key, &ids, raw, None));
            }
            for (_, raw) in items(
                value.errors,
                &format!("{at}.value.errors"),
                &mut split.refused,
            ) {
                split
                    .items
                    .push(ctx.item(InboundKind::Error, None, &Ids::default(), raw, None));
            }
        }
    }
    Ok(split)
}

impl Split {
    fn refuse(&mut self, path: String, reason: RefusalReason) {
        self.refused.push(Refusal { path, reason });
    }
}

fn same_user(message: &Ids<'_>, contact: &Ids<'_>) -> bool {
    let by_phone = matches!((&message.from, &contact.wa_id), (Some(a), Some(b)) if a == b);
    let by_user = matches!((&message.from_user_id, &contact.user_id), (Some(a), Some(b)) if a == b);
    by_phone || by_user
}

struct ItemContext<'c> {
    pseudonyms: &'c Pseudonymizer,
    received_at_ms: i64,
    waba_id: Option<&'c str>,
    phone_number_id: Option<&'c str>,
}

impl ItemContext<'_> {
    fn item(
        &self,
        kind: InboundKind,
        key: Option<String>,
        ids: &Ids<'_>,
        raw: &RawValue,
        contact: Option<&RawValue>,
    ) -> InboundItem {
        // Items without an id of their own are keyed by where they came from and what they say.
        let key = key.unwrap_or_else(|| {
            let scope = self.phone_number_id.unwrap_or("");
            format!(
                "{kind:?}:{}",
                crate::crypto::sha256_hex(&[scope.as_bytes(), b"\n", raw.get().as_bytes()])
            )
        });
        InboundItem {
            v: ENVELOPE_VERSION,
            kind,
            key,
            user: ids.user().map(|u| self.pseudonyms.pseudonym(u)),
            phone_number_id: self.phone_number_id.map(str::to_owned),
            waba_id: self.waba_id.map(str::to_owned),
            received_at_ms: self.received_at_ms,
            item: raw.to_owned(),
            contact: contact.map(RawValue::to_owned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Secret;

    fn pseudonyms() -> Pseudonymizer {
        Pseudonymizer::new(&Secret::new("test-key"))
    }

    fn split_str(body: &str) -> Split {
        split(body.as_bytes(), &pseudonyms(), 1_767_225_600_000).expect("json")
    }

    const TWO_ENTRIES: &str = r#"{"object":"whatsapp_business_account","entry":[
      {"id":"W1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp",
        "metadata":{"display_phone_number":"15551230000","phone_number_id":"P1"},
        "contacts":[{"profile":{"name":"Ana"},"wa_id":"447700900001"},{"profile":{"name":"Bo"},"wa_id":"447700900002"}],
        "messages":[{"from":"447700900001","id":"wamid.A","timestamp":"1","type":"text","text":{"body":"a"}},
                    {"from":"447700900002","id":"wamid.B","timestamp":"2","type":"text","text":{"body":"b"}}]}}]},
      {"id":"W2","changes":[
        {"field":"messages","value":{"metadata":{"phone_number_id":"P2"},
          "contacts":[{"profile":{"name":"Cy"},"wa_id":"447700900003"}],
          "messages":[{"from":"447700900003","id":"wamid.C","timestamp":"3","type":"image","image":{"id":"m1"}}]}},
        {"field":"messages","value":{"metadata":{"phone_number_id":"P2"},
          "statuses":[{"id":"wamid.OUT","status":"sent","timestamp":"4","recipient_id":"447700900001"},
                      {"id":"wamid.OUT","status":"delivered","timestamp":"5","recipient_id":"447700900001"}]}}]}]}"#;

    #[test]
    fn every_message_and_status_of_every_entry_becomes_an_item() {
        let split = split_str(TWO_ENTRIES);
        let keys: Vec<&str> = split.items.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "wamid.A",
                "wamid.B",
                "wamid.C",
                "wamid.OUT:sent",
                "wamid.OUT:delivered"
            ]
        );
        assert_eq!(split.items[2].phone_number_id.as_deref(), Some("P2"));
        assert_eq!(split.items[2].waba_id.as_deref(), Some("W2"));
    }

    #[test]
    fn each_message_carries_its_own_senders_contact() {
        let split = split_str(TWO_ENTRIES);
        let contact = split.items[1].contact.as_ref().expect("matched").get();
        assert!(contact.contains("Bo"), "{contact}");
    }

    #[test]
    fn a_users_messages_and_statuses_share_one_group_and_no_clear_number() {
        let split = split_str(TWO_ENTRIES);
        assert_eq!(split.items[0].group_id(), split.items[3].group_id());
        assert_ne!(split.items[0].group_id(), split.items[1].group_id());
        assert!(
            split
                .items
                .iter()
                .all(|i| !i.group_id().contains("4477009"))
        );
    }

    #[test]
    fn business_scoped_user_ids_win_over_phone_numbers() {
        let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages",
          "value":{"metadata":{"phone_number_id":"P"},"messages":[
            {"from_user_id":"US.1349","id":"wamid.U","timestamp":"1","type":"text","text":{"body":"hi"}}]}}]}]}"#;
        let split = split_str(body);
        assert_eq!(split.items[0].user, Some(pseudonyms().pseudonym("US.1349")));
    }

    #[test]
    fn system_errors_are_kept_and_keyed_by_content() {
        let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages",
          "value":{"metadata":{"phone_number_id":"P"},"errors":[{"code":130429,"title":"Rate limit hit"}]}}]}]}"#;
        let first = split_str(body);
        let again = split_str(body);
        assert_eq!(first.items.len(), 1);
        assert_eq!(first.items[0].kind, InboundKind::Error);
        assert_eq!(first.items[0].key, again.items[0].key);
        assert_eq!(first.items[0].group_id(), "business-P");
    }

    #[test]
    fn other_objects_and_fields_are_ignored_on_purpose() {
        let other = split_str(r#"{"object":"page","entry":[]}"#);
        assert!(other.items.is_empty());
        assert_eq!(other.ignored, [r#"object "page""#]);
        let field = split_str(
            r#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[
              {"field":"message_template_status_update","value":{"event":"APPROVED"}}]}]}"#,
        );
        assert!(field.items.is_empty());
        assert_eq!(field.ignored, [r#"field "message_template_status_update""#]);
    }

    #[test]
    fn odd_shapes_never_panic_and_never_drop_a_message() {
        for body in [
            "{}",
            "[]",
            "null",
            r#"{"object":"whatsapp_business_account"}"#,
            r#"{"object":"whatsapp_business_account","entry":null}"#,
            r#"{"object":"whatsapp_business_account","entry":{"id":"W"}}"#,
            r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":7}]}]}"#,
            r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[5]}}]}]}"#,
        ] {
            if let Ok(split) = split(body.as_bytes(), &pseudonyms(), 0) {
                assert!(split.items.is_empty(), "{body}");
            }
        }
        assert!(split(b"not json", &pseudonyms(), 0).is_err());
    }

    #[test]
    fn a_body_that_is_not_a_notification_is_refused_without_quoting_it() {
        let err = split(br#""call +447700900123""#, &pseudonyms(), 0).expect_err("a string");
        let text = err.to_string();
        assert!(!text.contains("7700900123"), "{text}");
        assert!(text.contains("not an object"), "{text}");
    }

    /// A notification with one valid message of id `wamid.V` in the entry, change or list given.
    fn with_valid(entry: &str) -> String {
        format!(r#"{{"object":"whatsapp_business_account","entry":{entry}}}"#)
    }

    const VALID_ENTRY: &str = r#"{"id":"W","changes":[{"field":"messages","value":{
      "metadata":{"phone_number_id":"P"},
      "messages":[{"from":"447700900001","id":"wamid.V","type":"text","text":{"body":"hi"}}]}}]}"#;

    fn keys(split: &Split) -> Vec<&str> {
        split.items.iter().map(|i| i.key.as_str()).collect()
    }

    fn paths(split: &Split) -> Vec<(&str, RefusalReason)> {
        split
            .refused
            .iter()
            .map(|r| (r.path.as_str(), r.reason))
            .collect()
    }

    #[test]
    fn an_entry_that_is_not_an_object_costs_the_valid_entries_nothing() {
        let split = split_str(&with_valid(&format!("[5, {VALID_ENTRY}, null]")));
        assert_eq!(keys(&split), ["wamid.V"]);
        assert_eq!(
            paths(&split),
            [
                ("entry[0]", RefusalReason::NotAnObject),
                ("entry[2]", RefusalReason::NotAnObject)
            ]
        );
    }

    #[test]
    fn a_change_that_is_not_an_object_costs_the_valid_changes_nothing() {
        let entry = r#"[{"id":"W","changes":["x",{"field":"messages","value":{
          "metadata":{"phone_number_id":"P"},
          "messages":[{"from":"1","id":"wamid.V","type":"text"}]}}]},
          {"id":"W2","changes":"odd"}]"#;
        let split = split_str(&with_valid(entry));
        assert_eq!(keys(&split), ["wamid.V"]);
        assert_eq!(
            paths(&split),
            [
                ("entry[0].changes[0]", RefusalReason::NotAnObject),
                ("entry[1].changes", RefusalReason::NotAList)
            ]
        );
    }

    #[test]
    fn odd_messages_and_statuses_are_refused_one_by_one() {
        let entry = r#"[{"id":"W","changes":[{"field":"messages","value":{
          "metadata":{"phone_number_id":"P"},
          "messages":[5,{"from":"1","id":"wamid.M","type":"text"},"text",[1]],
          "statuses":[null,{"id":"wamid.S","status":"read","recipient_id":"1"}],
          "errors":[true]}}]}]"#;
        let split = split_str(&with_valid(entry));
        assert_eq!(keys(&split), ["wamid.M", "wamid.S:read"]);
        let at = "entry[0].changes[0].value";
        assert_eq!(
            paths(&split),
            [
                (
                    format!("{at}.messages[0]").as_str(),
                    RefusalReason::NotAnObject
                ),
                (&format!("{at}.messages[2]"), RefusalReason::NotAnObject),
                (&format!("{at}.messages[3]"), RefusalReason::NotAnObject),
                (&format!("{at}.statuses[0]"), RefusalReason::NotAnObject),
                (&format!("{at}.errors[0]"), RefusalReason::NotAnObject),
            ]
        );
    }

    fn nested(levels: usize) -> String {
        format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn an_item_nested_a_hundred_thousand_levels_is_refused_and_the_others_queued() {
        let deep = nested(100_000);
        let entry = format!(
            r#"[{{"id":"W","changes":[{{"field":"messages","value":{{
              "metadata":{{"phone_number_id":"P"}},
              "contacts":[{{"wa_id":"1","profile":{{"name":{deep}}}}}],
              "messages":[{{"from":"1","id":"wamid.DEEP","type":"text","text":{{"body":{deep}}}}},
                          {{"from":"1","id":"wamid.M","type":"text"}}]}}}}]}},
              {deep}, {{"id":{deep},"unknown":{deep},"changes":[{deep}]}}, {VALID_ENTRY}]"#
        );
        let split = split_str(&with_valid(&entry));
        assert_eq!(keys(&split), ["wamid.M", "wamid.V"]);
        assert!(
            split.items.iter().all(|i| i.contact.is_none()),
            "the deep contact is not attached"
        );
        let at = "entry[0].changes[0].value";
        assert_eq!(
            paths(&split),
            [
                (format!("{at}.contacts[0]").as_str(), RefusalReason::TooDeep),
                (&format!("{at}.messages[0]"), RefusalReason::TooDeep),
                ("entry[1]", RefusalReason::NotAnObject),
                ("entry[2].changes[0]", RefusalReason::NotAnObject),
            ]
        );
    }

    #[test]
    fn a_whole_body_nested_a_hundred_thousand_levels_is_refused_without_overflowing() {
        let deep = nested(100_000);
        let split = split_str(&with_valid(&deep));
        assert!(split.items.is_empty());
        assert_eq!(paths(&split), [("entry[0]", RefusalReason::NotAnObject)]);
        // Nested objects, not lists, as the top level: serde_json's recursion limit refuses it.
        let objects = format!("{}{}", r#"{"a":"#.repeat(100_000), "}".repeat(100_000));
        assert!(super::split(objects.as_bytes(), &pseudonyms(), 0).is_err());
    }

    #[test]
    fn items_up_to_the_depth_limit_are_queued_and_one_level_more_is_refused() {
        let item = |levels: usize| {
            // The item object itself is the first level.
            format!(
                r#"{{"from":"1","id":"wamid.{levels}","type":"text","x":{}}}"#,
                nested(levels - 1)
            )
        };
        let entry = format!(
            r#"[{{"id":"W","changes":[{{"field":"messages","value":{{"metadata":{{"phone_number_id":"P"}},
              "messages":[{},{}]}}}}]}}]"#,
            item(MAX_ITEM_DEPTH),
            item(MAX_ITEM_DEPTH + 1)
        );
        let split = split_str(&with_valid(&entry));
        assert_eq!(keys(&split), [format!("wamid.{MAX_ITEM_DEPTH}")]);
        assert_eq!(split.refused.len(), 1);
        assert_eq!(split.refused[0].reason, RefusalReason::TooDeep);
        let queued: serde_json::Value =
            serde_json::from_str(split.items[0].item.get()).expect("a consumer can parse it");
        assert_eq!(queued["id"], format!("wamid.{MAX_ITEM_DEPTH}"));
    }

    /// Found by `local/fuzz.sh` (target `webhook_split`): a lone surrogate escape in one message
    /// was queued, and route-inbound could not decode it.
    #[test]
    fn a_message_with_a_lone_surrogate_escape_is_refused_and_costs_its_neighbour_nothing() {
        let body: &[u8] = br#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"P"},"contacts":[{"profile":{"name":"Jos\ud800"},"wa_id":"447700900123"}],"messages":[{"from":"447\ud800123","id":"wamid.BAD","type":"text","text":{"body":"a"}},{"from":"447700900123","id":"wamid.OK","type":"text","text":{"body":"b"}}]}}]}]}"#;
        let split = split(body, &pseudonyms(), 1).expect("a notification");
        assert_eq!(keys(&split), ["wamid.OK"]);
        let refused: Vec<(&str, RefusalReason)> = split
            .refused
            .iter()
            .map(|r| (r.path.as_str(), r.reason))
            .collect();
        assert_eq!(
            refused,
            [
                (
                    "entry[0].changes[0].value.contacts[0]",
                    RefusalReason::Undecodable
                ),
                (
                    "entry[0].changes[0].value.messages[0]",
                    RefusalReason::Undecodable
                )
            ]
        );
        let queued: crate::whatsapp::webhook_types::InboundMessage =
            serde_json::from_str(split.items[0].item.get()).expect("the consumer decodes it");
        assert_eq!(queued.id, "wamid.OK");
    }

    /// Found by `local/fuzz.sh` (target `webhook_split`, seed 0x6): `"id":""` keyed the item "".
    #[test]
    fn two_messages_with_an_empty_id_get_distinct_non_empty_keys() {
        let body: &[u8] = br#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"P"},"messages":[{"from":"1","id":"","type":"text","text":{"body":"a"}},{"from":"1","id":"","type":"text","text":{"body":"b"}}]}}]}]}"#;
        let split = split(body, &pseudonyms(), 1).expect("a notification");
        assert_eq!(split.items.len(), 2);
        assert!(split.items.iter().all(|i| !i.key.is_empty()));
        assert_ne!(split.items[0].key, split.items[1].key);
    }

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        assert!(!nesting_exceeds(r#"{"a":"[[[[[[","b":"\"[[["}"#, 1));
        assert!(nesting_exceeds(r#"{"a":"\\","b":[1]}"#, 1));
        assert!(!nesting_exceeds(r#"[[1],[2],{"c":[3]}]"#, 3));
        assert!(nesting_exceeds(r#"[[1],[2],{"c":[[3]]}]"#, 3));
    }

    #[test]
    fn a_part_of_an_unexpected_shape_costs_no_other_item() {
        let body = r#"{"object":"whatsapp_business_account","entry":[{"id":7,"changes":[{"field":"messages",
          "value":{"metadata":{"phone_number_id":109876543210987},"contacts":"odd","statuses":{"id":"wamid.S"},
            "messages":[{"from":447700900123,"id":"wamid.M","type":"text","text":{"body":"hi"}}]}}]}]}"#;
        let split = split_str(body);
        let keys: Vec<&str> = split.items.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert_eq!(
            keys[0], "wamid.M",
            "the message keeps its wamid key despite a numeric `from`"
        );
        assert_eq!(split.items[1].kind, InboundKind::Status);
    }

    #[test]
    fn items_keep_metas_exact_bytes() {
        let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages",
          "value":{"metadata":{"phone_number_id":"P"},"messages":[
            {"from":"1","id":"wamid.E","type":"text","text":{"body":"caf\u00e9 https:\/\/x"}}]}}]}]}"#;
        let item = &split_str(body).items[0];
        assert!(item.item.get().contains(r"caf\u00e9 https:\/\/x"));
    }

    #[test]
    fn truncated_and_bit_flipped_bodies_never_panic() {
        let body = TWO_ENTRIES.as_bytes();
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for cut in 0..body.len() {
            let _ = split(&body[..cut], &pseudonyms(), 0);
        }
        for _ in 0..2_000 {
            let mut mutated = body.to_vec();
            for _ in 0..1 + next() % 4 {
                let at = usize::try_from(next()).unwrap_or(0) % mutated.len();
                mutated[at] ^= 1 << (next() % 8);
            }
            let _ = split(&mutated, &pseudonyms(), 0);
        }
    }
}
