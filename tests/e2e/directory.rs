//! The contact directory and conversation state on DynamoDB (moto): opt-out kept across imports,
//! role lookups, number changes, a window that never moves back, one courtesy reply per window,
//! the bounded list of items seen.

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::TestEnv;
use shared::adapters::directory::{DynamoContactDirectory, DynamoConversationStore};
use shared::domain::contact::{Contact, OptChange, Role, WhatsAppAddress};
use shared::ports::{BusinessNumberId, ContactDirectory, ConversationStore, SEEN_ITEMS, SeenMark};
use shared::pseudonym::{Pseudonymizer, UserPseudonym};
use shared::secrets::Secret;

fn pseudonym(number: &str) -> UserPseudonym {
    Pseudonymizer::new(&Secret::new("test-key")).pseudonym(number)
}

fn contact(number: &str, roles: &[Role]) -> Contact {
    let mut contact = Contact::new(pseudonym(number));
    contact.address = Some(WhatsAppAddress::parse(number).expect("number"));
    contact.name = Some(format!("Contact {number}"));
    contact.roles = roles.iter().copied().collect();
    contact.language = Some("fr_FR".into());
    contact
}

async fn directory(env: &TestEnv) -> DynamoContactDirectory {
    DynamoContactDirectory::new(
        aws_sdk_dynamodb::Client::new(&env.stack.aws),
        env.stack.resources.tables["ContactsTable"].clone(),
    )
}

#[tokio::test]
async fn a_contact_who_opted_out_stays_opted_out_when_the_directory_is_imported_again() {
    let env = TestEnv::start().await;
    let directory = directory(&env).await;
    let ana = contact("+447700900001", &[Role::Approver]);
    directory.put(&ana).await.expect("put");
    assert_eq!(
        directory
            .opt_out(&ana.pseudonym, 1_000)
            .await
            .expect("stop"),
        OptChange::Changed
    );
    assert_eq!(
        directory
            .opt_out(&ana.pseudonym, 2_000)
            .await
            .expect("stop again"),
        OptChange::Unchanged,
        "a second STOP changes nothing (and is not confirmed twice)"
    );
    directory
        .put_many(std::slice::from_ref(&ana))
        .await
        .expect("re-import");
    let read = directory
        .get(&ana.pseudonym)
        .await
        .expect("get")
        .expect("entry");
    assert_eq!(read.opted_out_at_ms, Some(1_000));
    assert_eq!(read.name, ana.name);
    assert_eq!(read.address, ana.address);

    assert_eq!(
        directory
            .opt_in(&ana.pseudonym, 3_000, "whatsapp:START")
            .await
            .expect("start"),
        OptChange::Changed
    );
    let read = directory
        .get(&ana.pseudonym)
        .await
        .expect("get")
        .expect("entry");
    assert!(!read.is_opted_out());
    assert_eq!(read.opted_in.expect("opt-in").source, "whatsapp:START");
}

#[tokio::test]
async fn someone_outside_the_directory_who_sends_stop_gets_a_bare_entry_with_the_opt_out() {
    let env = TestEnv::start().await;
    let directory = directory(&env).await;
    let stranger = pseudonym("+15550100999");
    directory.opt_out(&stranger, 42).await.expect("stop");
    let read = directory.get(&stranger).await.expect("get").expect("entry");
    assert!(read.is_opted_out());
    assert!(read.roles.is_empty());
    assert!(read.address.is_none(), "no clear number is kept for them");
}

#[tokio::test]
async fn recipients_by_role_follow_role_changes_and_imports() {
    let env = TestEnv::start().await;
    let directory = directory(&env).await;
    let contacts: Vec<Contact> = (0..60)
        .map(|i| {
            let roles: &[Role] = if i % 3 == 0 {
                &[Role::Legal, Role::Owner]
            } else {
                &[Role::Field]
            };
            contact(&format!("+4477009{i:05}"), roles)
        })
        .collect();
    directory.put_many(&contacts).await.expect("import");
    assert_eq!(
        directory.with_role(Role::Legal).await.expect("legal").len(),
        20
    );
    assert_eq!(
        directory.with_role(Role::Field).await.expect("field").len(),
        40
    );
    assert_eq!(directory.all().await.expect("all").len(), 60);

    // One legal reviewer becomes a field contributor.
    let mut moved = contacts[0].clone();
    moved.roles = [Role::Field].into_iter().collect();
    directory.put(&moved).await.expect("put");
    let legal = directory.with_role(Role::Legal).await.expect("legal");
    assert_eq!(legal.len(), 19);
    assert!(legal.iter().all(|c| c.pseudonym != moved.pseudonym));
    assert_eq!(
        directory.with_role(Role::Field).await.expect("field").len(),
        41
    );
}

#[tokio::test]
async fn a_changed_number_moves_the_entry_and_its_roles() {
    let env = TestEnv::start().await;
    let directory = directory(&env).await;
    let old = contact("+447700900002", &[Role::Rep]);
    directory.put(&old).await.expect("put");
    let mut new = contact("+447700900003", &[Role::Rep]);
    new.name = old.name.clone();
    directory
        .change_number(&old.pseudonym, &new)
        .await
        .expect("move");
    assert!(directory.get(&old.pseudonym).await.expect("get").is_none());
    let reps = directory.with_role(Role::Rep).await.expect("reps");
    assert_eq!(reps.len(), 1);
    assert_eq!(reps[0].pseudonym, new.pseudonym);
}

#[tokio::test]
async fn the_service_window_never_moves_back_and_the_courtesy_reply_goes_once_per_window() {
    let env = TestEnv::start().await;
    let store = DynamoConversationStore::new(
        aws_sdk_dynamodb::Client::new(&env.stack.aws),
        env.stack.resources.tables["ConversationsTable"].clone(),
    );
    let who = pseudonym("+447700900004");
    let number = BusinessNumberId::parse("109876543210987").expect("number");
    assert!(store.get(&who, &number).await.expect("get").is_none());
    store
        .record_inbound(&who, &number, 5_000)
        .await
        .expect("inbound");
    store
        .record_inbound(&who, &number, 4_000)
        .await
        .expect("an older item arriving late");
    let conversation = store.get(&who, &number).await.expect("get").expect("kept");
    assert_eq!(conversation.last_inbound_at_ms, Some(5_000));
    assert!(conversation.window_open(5_000 + 23 * 3600 * 1000));
    assert!(!conversation.window_open(5_000 + 24 * 3600 * 1000));

    let day = 24 * 3600 * 1000;
    assert!(
        store
            .take_courtesy_reply(&who, &number, 10_000, day)
            .await
            .expect("first")
    );
    assert!(
        !store
            .take_courtesy_reply(&who, &number, 20_000, day)
            .await
            .expect("second")
    );
    assert!(
        store
            .take_courtesy_reply(&who, &number, 10_000 + day, day)
            .await
            .expect("next window")
    );

    store
        .set_state(&who, &number, Some("consent:SUMMER26"))
        .await
        .expect("state");
    let state = store
        .get(&who, &number)
        .await
        .expect("get")
        .expect("kept")
        .state;
    assert_eq!(state.as_deref(), Some("consent:SUMMER26"));
    store.set_state(&who, &number, None).await.expect("clear");
    assert_eq!(
        store
            .get(&who, &number)
            .await
            .expect("get")
            .expect("kept")
            .state,
        None
    );
}

fn mark(key: &str, at_ms: i64) -> SeenMark<'_> {
    SeenMark {
        key,
        at_ms,
        records_inbound: true,
    }
}

#[tokio::test]
async fn marking_an_item_seen_moves_the_window_forward_keeps_the_last_items_and_never_loses_a_mark()
{
    let env = TestEnv::start().await;
    let store = DynamoConversationStore::new(
        aws_sdk_dynamodb::Client::new(&env.stack.aws),
        env.stack.resources.tables["ConversationsTable"].clone(),
    );
    let who = pseudonym("+447700900005");
    let number = BusinessNumberId::parse("109876543210987").expect("number");
    let read = || async {
        store
            .get(&who, &number)
            .await
            .expect("get")
            .unwrap_or_default()
    };

    let before = read().await;
    assert!(
        store
            .mark_seen(&who, &number, &before, &mark("wamid.A", 5_000))
            .await
            .expect("first")
    );
    // A mark built on the same (now stale) read would drop wamid.A: refused, nothing written.
    assert!(
        !store
            .mark_seen(&who, &number, &before, &mark("wamid.B", 6_000))
            .await
            .expect("stale")
    );
    // An older item arriving late is marked; the time stays where it was.
    let now = read().await;
    assert!(
        store
            .mark_seen(&who, &number, &now, &mark("wamid.B", 4_000))
            .await
            .expect("late")
    );
    let conversation = read().await;
    assert_eq!(conversation.last_inbound_at_ms, Some(5_000));
    assert!(conversation.seen.contains("wamid.A") && conversation.seen.contains("wamid.B"));

    // A `system` message is marked without moving the window.
    let system = SeenMark {
        records_inbound: false,
        ..mark("wamid.SYS", 9_000)
    };
    assert!(
        store
            .mark_seen(&who, &number, &conversation, &system)
            .await
            .expect("system")
    );
    assert_eq!(read().await.last_inbound_at_ms, Some(5_000));

    for i in 0..SEEN_ITEMS {
        let key = format!("wamid.N{i}");
        let now = read().await;
        assert!(
            store
                .mark_seen(&who, &number, &now, &mark(&key, 10_000 + i as i64))
                .await
                .expect("mark")
        );
    }
    let conversation = read().await;
    assert_eq!(conversation.seen.len(), SEEN_ITEMS, "bounded");
    assert!(!conversation.seen.contains("wamid.A"), "the oldest dropped");
    assert!(conversation.seen.contains("wamid.N0"));
    assert_eq!(
        conversation.last_inbound_at_ms,
        Some(10_000 + SEEN_ITEMS as i64 - 1)
    );
    // The whole item stays far under the 1 KB of one write unit.
    let item = aws_sdk_dynamodb::Client::new(&env.stack.aws)
        .get_item()
        .table_name(env.stack.resources.tables["ConversationsTable"].clone())
        .key("pk", AttributeValue::S(who.as_str().into()))
        .key("sk", AttributeValue::S(number.as_str().into()))
        .send()
        .await
        .expect("raw item")
        .item
        .expect("item");
    let size: usize = item
        .iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    AttributeValue::S(s) => s.len(),
                    _ => 21,
                }
        })
        .sum();
    assert!(size < 512, "{size} bytes: {item:?}");
}
