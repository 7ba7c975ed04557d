//! Writer limits (#10.6), leases (#10.13) and counters on `VectorMemory`.

use canvault_protocol::vault_api::{ListSnapshotsRequest, SnapshotState, VaultError};

use crate::backup::tests::{CS, backup, begin, image, put, send, unlimited, vault, writer};
use crate::backup::{MAX_OPEN_PER_SOURCE, MAX_REASON_BYTES};
use crate::download::{MAX_LIST_PAGE, MAX_PIN_NS, PIN_COOL_DOWN_NS};
use crate::vault::Platform;

const S: u64 = 1_000_000_000;

#[test]
fn should_cap_snapshots_in_progress_per_source() {
    let mut v = vault();
    let img = image(2, 1);
    let ids: Vec<u64> = (0..u64::from(MAX_OPEN_PER_SOURCE))
        .map(|n| begin(&mut v, writer(0), &img, n, None))
        .collect();
    let req = canvault_protocol::vault_api::BeginSnapshotRequest {
        parent: None,
        image_size: img.len() as u64,
        chunk_size: CS,
        nonce: 99,
        label: None,
        source: None,
    };
    let err = v.begin_snapshot(writer(0), req.clone(), None, 1, &unlimited);
    assert!(matches!(err, Err(VaultError::InvalidRequest(m)) if m.contains("in progress")));
    assert_eq!(
        begin(&mut v, writer(0), &img, 0, None),
        ids[0],
        "a re-sent begin is not a new snapshot"
    );
    begin(&mut v, writer(1), &img, 0, None);
    v.abort_snapshot(writer(0), ids[0], "done".into(), 2)
        .expect("abort");
    v.begin_snapshot(writer(0), req, None, 1, &unlimited)
        .expect("one slot free");
}

#[test]
fn should_refuse_a_long_reason_with_a_typed_error() {
    let mut v = vault();
    let id = begin(&mut v, writer(0), &image(2, 2), 1, None);
    let err = v.abort_snapshot(writer(0), id, "x".repeat(MAX_REASON_BYTES + 1), 2);
    assert!(matches!(err, Err(VaultError::InvalidRequest(_))));
    assert_eq!(
        v.get_snapshot(id).map(|i| i.state),
        Ok(SnapshotState::InProgress)
    );
}

#[test]
fn should_page_the_catalogue() {
    let mut v = vault();
    let img = image(2, 3);
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(backup(&mut v, writer(0), &img, n));
        ids.push(backup(&mut v, writer(1), &img, n));
    }
    let page = |start, limit, source| ListSnapshotsRequest {
        source,
        start,
        limit,
    };
    let first = v.list_snapshot_page(&page(None, Some(4), None));
    assert_eq!(first.snapshots.len(), 4);
    assert_eq!(first.next, Some(ids[4]));
    let rest = v.list_snapshot_page(&page(first.next, Some(100), None));
    assert_eq!((rest.snapshots.len(), rest.next), (6, None));
    let mine = v.list_snapshot_page(&page(None, Some(3), Some(writer(1).principal)));
    assert_eq!(
        mine.snapshots.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![ids[1], ids[3], ids[5]]
    );
    assert_eq!(mine.next, Some(ids[6]));
    assert_eq!(v.list_snapshots(None).len(), 10);
    const { assert!(MAX_LIST_PAGE >= 10) };
}

#[test]
fn should_keep_status_counters_equal_to_a_scan() {
    let mut v = vault();
    let img = image(3, 4);
    let a = backup(&mut v, writer(0), &img, 1);
    let b = begin(&mut v, writer(0), &img, 2, None);
    let c = begin(&mut v, writer(1), &img, 1, None);
    send(&mut v, writer(1), c, vec![put(&img, 1)]).expect("put");
    v.abort_snapshot(writer(1), c, "no".into(), 3)
        .expect("abort");
    let scan = |v: &crate::vault::Vault<_>| {
        let mut counts = (0, 0, 0);
        for info in v.list_snapshots(None) {
            match info.state {
                SnapshotState::InProgress => counts.0 += 1,
                SnapshotState::Complete => counts.1 += 1,
                SnapshotState::Failed { .. } => counts.2 += 1,
            }
        }
        counts
    };
    assert_eq!(v.status(Platform::default()).snapshots, (1, 1, 1));
    assert_eq!(v.status(Platform::default()).snapshots, scan(&v));
    v.delete_snapshot(a, &unlimited).expect("delete");
    v.delete_snapshot(b, &unlimited).expect("delete");
    assert_eq!(v.status(Platform::default()).snapshots, (0, 0, 1));
    assert_eq!(v.catalogue.open_count(writer(0).principal), 0);
}

/// L2: renewing a lease again and again pins a snapshot for at most `MAX_PIN_NS`;
/// a new window opens only after a day without a lease.
#[test]
fn should_bound_how_long_leases_pin_a_snapshot() {
    let mut v = vault();
    let id = backup(&mut v, writer(0), &image(2, 5), 1);
    let week = 7 * 86_400;
    let mut now = 10 * S;
    let mut expiry = v.open_download(id, week, now).expect("lease");
    assert_eq!(expiry, now + week * S);
    let end = now + MAX_PIN_NS;
    while now + S < end {
        now = expiry - S;
        expiry = v.open_download(id, week, now).expect("renewal");
        assert!(expiry <= end, "never past the window");
        assert!(v.pinned(now).contains(&id));
    }
    assert_eq!(expiry, end);
    let err = v.open_download(id, 60, end);
    assert!(matches!(err, Err(VaultError::InvalidRequest(m)) if m.contains("pinned")));
    assert!(!v.pinned(end).contains(&id), "retention may delete it now");
    assert!(v.open_download(id, 60, end + PIN_COOL_DOWN_NS - S).is_err());
    let reopened = v
        .open_download(id, 60, end + PIN_COOL_DOWN_NS)
        .expect("a new window");
    assert_eq!(reopened, end + PIN_COOL_DOWN_NS + 60 * S);
}
