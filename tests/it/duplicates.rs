//! A second open request for the same person and app is refused by the
//! store's unique index, alone and when group commit put it in one
//! transaction with other writes: the duplicate gets its own answer
//! (`DuplicateOpen`, which the core turns into "already open") and the writes
//! beside it still land.

use accessbot::store::StoreError;
use accessbot::workflow::engine::{self, NewRequest};
use accessbot::workflow::model::Changeset;
use accessbot::workflow::{Actor, Catalog, Party, Source};

use crate::helpers::*;

fn submit(catalog: &Catalog) -> Changeset {
    let who = || Party::new("U0DUP", None);
    let input = NewRequest {
        app_id: "github".into(),
        requested_by: who(),
        requested_for: who(),
        justification: "twice".into(),
        fields: vec![],
        extension: None,
    };
    engine::submit(catalog, input, &Actor::user(who(), Source::Slack), chrono::Utc::now()).expect("a request")
}

async fn a_second_open_request_is_a_duplicate_alone_and_inside_a_batch(b: Backend) {
    let db = TestDb::create(&b).await;
    let store = accessbot::store::open(&db.url).await.expect("store");
    let catalog = accessbot::config::parse_catalog("t.toml", CONFIG).expect("catalog");
    let first = submit(&catalog);
    store.commit(&first).await.expect("first request");

    let alone = store.commit(&submit(&catalog)).await;
    assert!(matches!(alone, Err(StoreError::DuplicateOpen)), "{alone:?}");

    let beside = submit(&catalog);
    let (dup, other) = tokio::join!(store.commit(&beside), store.enqueue(&[], chrono::Utc::now()));
    assert!(matches!(dup, Err(StoreError::DuplicateOpen)), "{dup:?}");
    other.expect("the write beside the duplicate");
    let id = beside.request.as_ref().map(|r| r.id.clone()).unwrap_or_default();
    assert!(store.request(&id).await.expect("read").is_none(), "the duplicate left a row");
    let kept = first.request.as_ref().map(|r| r.id.clone()).unwrap_or_default();
    assert!(store.request(&kept).await.expect("read").is_some());
}
crate::both!(a_second_open_request_is_a_duplicate_alone_and_inside_a_batch);

/// Whether a person has an open request for an app, asked after any history
/// of opens (alone and two at once), closes and restarts, always matches
/// what was written. On SQLite the answer "none" comes from the writer's
/// in-memory index of open pairs and known people without a statement, so
/// the index must never miss a pair that has an open request.
async fn the_open_request_is_found_after_any_history(b: Backend) {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use std::collections::HashMap;

    let db = TestDb::create(&b).await;
    let mut store = accessbot::store::open(&db.url).await.expect("store");
    let catalog = accessbot::config::parse_catalog("t.toml", CONFIG).expect("catalog");
    let new = |user: &str, app: &str| {
        let who = || Party::new(user, None);
        let input = NewRequest {
            app_id: app.into(),
            requested_by: who(),
            requested_for: who(),
            justification: "history".into(),
            fields: vec![],
            extension: None,
        };
        engine::submit(&catalog, input, &Actor::user(who(), Source::Slack), chrono::Utc::now()).expect("a request")
    };
    let (users, apps) = (["U0H1", "U0H2", "U0H3"], ["github", "salesforce"]);
    let mut model: HashMap<(&str, &str), String> = HashMap::new();
    let mut rng = StdRng::seed_from_u64(13);
    for turn in 0..240 {
        let (user, app) = (users[rng.gen_range(0..3)], apps[rng.gen_range(0..2)]);
        match rng.gen_range(0..10) {
            0..=3 => {
                let cs = new(user, app);
                let id = cs.request.as_ref().map(|r| r.id.clone()).unwrap_or_default();
                match store.commit(&cs).await {
                    Ok(()) => assert!(model.insert((user, app), id).is_none(), "turn {turn}: a second open request"),
                    Err(StoreError::DuplicateOpen) => assert!(model.contains_key(&(user, app)), "turn {turn}"),
                    Err(e) => panic!("turn {turn}: {e}"),
                }
            }
            4 => {
                // Two at once share a batch: exactly one opens, unless one was open already.
                let (a, c) = (new(user, app), new(user, app));
                let (ra, rc) = tokio::join!(store.commit(&a), store.commit(&c));
                let opened: Vec<_> =
                    [(ra, a), (rc, c)].into_iter().filter_map(|(r, cs)| r.ok().and(cs.request.map(|r| r.id))).collect();
                let was_open = model.contains_key(&(user, app));
                assert_eq!(opened.len(), usize::from(!was_open), "turn {turn}: {opened:?}");
                if let Some(id) = opened.into_iter().next() {
                    model.insert((user, app), id);
                }
            }
            5..=8 => {
                if let Some(id) = model.remove(&(user, app)) {
                    let mut req = store.request(&id).await.expect("read").expect("the open request");
                    req.status = accessbot::workflow::model::Status::Denied;
                    store.commit(&Changeset { request: Some(req), ..Default::default() }).await.expect("closed");
                }
            }
            _ => {
                drop(store);
                store = accessbot::store::open(&db.url).await.expect("store again");
            }
        }
        for user in users {
            for app in apps {
                let found = store.open_request(user, app).await.expect("read").map(|r| r.id);
                assert_eq!(found.as_ref(), model.get(&(user, app)), "turn {turn}: {user} {app}");
            }
        }
    }
    if matches!(b, Backend::Sqlite) {
        let before = store.statements();
        assert!(store.open_request("U0NEVER", "github").await.expect("read").is_none());
        assert!(store.identity("U0NEVER").await.expect("read").is_none());
        assert!(!store.home_opened("U0NEVER").await.expect("read"));
        assert_eq!(store.statements(), before, "asking about a stranger read the database");
    }
}
crate::both!(the_open_request_is_found_after_any_history);
