//! Who people are, as the store keeps them: a new person's first row is
//! queued without waiting for its commit (SQLite writes every identity that
//! way, PostgreSQL a first row this replica just read was missing), so these
//! check that nothing is lost or read stale for it.

use std::time::{Duration, Instant};

use accessbot::store::Identity;

use crate::helpers::*;

fn ann(email: &str) -> Identity {
    Identity { user_id: "U0ANN".into(), email: Some(email.into()), resolved: true, ..Identity::default() }
}

/// Read back at once by the store that saved it, in full by a second store
/// (another replica, or the same file opened again) once committed, and a
/// later save merges into it.
async fn a_new_persons_identity_is_read_back_everywhere(b: Backend) {
    let db = TestDb::create(&b).await;
    let store = accessbot::store::open(&db.url).await.expect("store");
    assert!(store.identity("U0ANN").await.expect("read").is_none(), "a stranger");
    store.save_identity(&ann("ann@example.com")).await.expect("saved");
    assert_eq!(store.identity("U0ANN").await.expect("read"), Some(ann("ann@example.com")));
    let dm = Identity { user_id: "U0ANN".into(), dm_channel: Some("D0ANN".into()), ..Identity::default() };
    store.save_identity(&dm).await.expect("saved");
    let both = Identity { dm_channel: Some("D0ANN".into()), ..ann("ann@example.com") };
    assert_eq!(store.identity("U0ANN").await.expect("read"), Some(both.clone()));
    assert_eq!(store.identity_by_email("ann@example.com").await.expect("read"), Some(both.clone()));

    // Another store (a replica, or the file opened again) reads it once committed.
    let started = Instant::now();
    loop {
        let other = accessbot::store::open(&db.url).await.expect("a second store");
        let seen = other.identity("U0ANN").await.expect("read");
        if seen.as_ref() == Some(&both) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "a second store reads {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

crate::both!(a_new_persons_identity_is_read_back_everywhere);
