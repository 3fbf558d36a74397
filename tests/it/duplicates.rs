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
