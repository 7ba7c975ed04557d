//! The vault canister on the in-process IC: the backup protocol's checks, roles,
//! idempotency, dedup, retention with garbage collection, download and upload.
//! Restore push is in `vault_restore.rs`.
//!
//! Writers here are user principals calling by ingress (the vault does not care
//! whether a writer is a canister). Every rejection test also checks that nothing
//! stored changed. Build the wasm first: `scripts/build-wasm.sh`.

use std::time::Duration;

use candid::{Encode, Principal};
use canvault_protocol::Codec;
use canvault_protocol::Hash256;
use canvault_protocol::chunk::{self, DEFAULT_CHUNK_SIZE};
use canvault_protocol::merkle::image_root_of_bytes;
use canvault_protocol::vault_api::{
    BeginSnapshotRequest, ChunkBody, ChunkPut, CommitSnapshotRequest, ListSnapshotsRequest,
    ManifestPage, PutChunksRequest, RetentionPolicy, Role, RoleChange, SnapshotInfo, SnapshotState,
    StartRestoreRequest, VaultError, VaultInit, VaultStatus,
};
use canvault_scenarios::vault::{VaultClient, batches, chunk_puts, fill_noise, noise_image};
use canvault_scenarios::{harness, principal};
use ic_harness::Harness;
use serde_bytes::ByteBuf;

const CS: u32 = 64 * 1024;
const DAY: Duration = Duration::from_secs(86_400);

struct Setup {
    ic: Harness,
    vault: VaultClient,
    owner: Principal,
    writer: Principal,
    writer2: Principal,
    reader: Principal,
    stranger: Principal,
}

/// What a rejected request must leave untouched: the catalogue, every manifest and the
/// store gauges (cycles excluded: every call burns some).
type Fingerprint = (Vec<SnapshotInfo>, Vec<ManifestPage>, VaultStatus);

impl Setup {
    fn new() -> Self {
        let mut ic = harness(2);
        let (owner, writer, writer2, reader) = (
            principal("owner"),
            principal("writer"),
            principal("writer 2"),
            principal("reader"),
        );
        let init = VaultInit {
            owners: vec![owner],
            writers: vec![writer, writer2],
            readers: vec![reader],
            retention: None,
        };
        let vault = VaultClient::install(&mut ic, 1, &init, owner);
        Self {
            ic,
            vault,
            owner,
            writer,
            writer2,
            reader,
            stranger: principal("stranger"),
        }
    }

    fn begin(&mut self, who: Principal, image: &[u8], nonce: u64) -> u64 {
        let req = begin_req(image, CS, nonce);
        self.vault
            .begin(&mut self.ic, who, req)
            .expect("begin")
            .snapshot_id
    }

    fn put(&mut self, who: Principal, id: u64, chunks: Vec<ChunkPut>) -> Result<u32, VaultError> {
        self.vault
            .put(&mut self.ic, who, id, chunks)
            .map(|r| r.recorded)
    }

    fn backup(&mut self, who: Principal, image: &[u8], nonce: u64) -> SnapshotInfo {
        self.vault.backup(&mut self.ic, who, image, CS, nonce)
    }

    fn fingerprint(&mut self) -> Fingerprint {
        let snapshots = self.vault.list(&mut self.ic, self.owner, None);
        let manifests = snapshots
            .iter()
            .map(|s| {
                self.vault
                    .manifest(&mut self.ic, self.owner, s.id, 0, 0)
                    .expect("manifest")
            })
            .collect();
        let mut status = self.vault.status(&mut self.ic, self.owner);
        status.cycles = 0;
        (snapshots, manifests, status)
    }

    /// Runs `f`, which must fail with `expected`, and checks that nothing changed.
    fn assert_rejected<T: std::fmt::Debug>(
        &mut self,
        expected: &VaultError,
        f: impl FnOnce(&mut Self) -> Result<T, VaultError>,
    ) {
        let before = self.fingerprint();
        let got = f(self);
        assert_eq!(got.as_ref().err(), Some(expected), "got {got:?}");
        assert_eq!(
            self.fingerprint(),
            before,
            "a rejected request changed stored data"
        );
    }
}

fn begin_req(image: &[u8], chunk_size: u32, nonce: u64) -> BeginSnapshotRequest {
    BeginSnapshotRequest {
        parent: None,
        image_size: image.len() as u64,
        chunk_size,
        nonce,
        label: None,
        source: None,
    }
}

fn bad_chunk(index: u32, needle: &str) -> impl Fn(&VaultError) -> bool {
    let needle = needle.to_string();
    move |e| matches!(e, VaultError::BadChunk { index: i, reason } if *i == index && reason.contains(&needle))
}

#[test]
fn should_reject_a_chunk_whose_hash_does_not_match() {
    let mut s = Setup::new();
    let img = noise_image(4, CS, 1);
    let id = s.begin(s.writer, &img, 1);
    let mut put = chunk_puts(&img, CS).remove(1);
    let claimed = Hash256::of(b"something else");
    put.hash = claimed;
    let before = s.fingerprint();
    let err = s.put(s.writer, id, vec![put]).expect_err("hash mismatch");
    assert!(bad_chunk(1, "hash mismatch")(&err), "{err:?}");
    assert_eq!(s.fingerprint(), before);
}

#[test]
fn should_reject_chunks_for_an_unknown_or_complete_snapshot() {
    let mut s = Setup::new();
    let img = noise_image(4, CS, 2);
    let puts = chunk_puts(&img, CS);
    let (w, one) = (s.writer, vec![puts[1].clone()]);
    s.assert_rejected(&VaultError::SnapshotNotFound(77), |s| {
        s.put(w, 77, one.clone())
    });
    let info = s.backup(s.writer, &img, 1);
    let expected = VaultError::WrongState {
        id: info.id,
        state: SnapshotState::Complete,
        expected: "InProgress".into(),
    };
    s.assert_rejected(&expected, |s| s.put(w, info.id, one.clone()));
}

#[test]
fn should_reject_an_oversize_chunk_or_a_wrong_length() {
    let mut s = Setup::new();
    let img = noise_image(4, CS, 3);
    let id = s.begin(s.writer, &img, 1);
    let good = chunk_puts(&img, CS).remove(1);
    let mut oversize = good.clone();
    oversize.body = ChunkBody::Data {
        codec: Codec::Deflate,
        bytes: ByteBuf::from(vec![7u8; CS as usize + 1]),
    };
    let mut short = good.clone();
    short.len = CS - 1;
    let mut beyond = good.clone();
    beyond.index = 4;
    let w = s.writer;
    for (put, needle) in [
        (oversize, "encoded bytes"),
        (short, "length"),
        (beyond, "out of range"),
    ] {
        let before = s.fingerprint();
        let err = s.put(w, id, vec![put.clone()]).expect_err("rejected");
        assert!(bad_chunk(put.index, needle)(&err), "{err:?}");
        assert_eq!(s.fingerprint(), before);
    }
    let mut big = vec![0u8; 3 << 20];
    fill_noise(&mut big, 9);
    let reply = s.ic.update_call(
        s.vault.id,
        w,
        "put_chunks",
        Encode!(&PutChunksRequest {
            snapshot_id: id,
            chunks: vec![ChunkPut {
                index: 1,
                hash: good.hash,
                len: CS,
                body: ChunkBody::Data {
                    codec: Codec::Raw,
                    bytes: ByteBuf::from(big),
                },
            }],
        })
        .expect("encode"),
    );
    assert!(
        reply.is_err(),
        "a message over 2 MiB never reaches the vault"
    );
}

#[test]
fn should_keep_a_snapshot_in_progress_on_a_wrong_root_or_missing_chunks() {
    let mut s = Setup::new();
    let img = noise_image(6, CS, 4);
    let id = s.begin(s.writer, &img, 1);
    let puts = chunk_puts(&img, CS);
    s.put(s.writer, id, vec![puts[0].clone(), puts[3].clone()])
        .expect("put");
    let w = s.writer;
    let root = image_root_of_bytes(&img, CS);
    s.assert_rejected(
        &VaultError::MissingChunks {
            missing: 4,
            first: 1,
        },
        |s| s.vault.commit(&mut s.ic, w, id, root),
    );
    s.put(s.writer, id, puts).expect("the rest");
    let wrong = Hash256::of(b"not the root");
    s.assert_rejected(
        &VaultError::RootMismatch {
            sent: wrong,
            computed: root,
        },
        |s| s.vault.commit(&mut s.ic, w, id, wrong),
    );
    let info = s
        .vault
        .commit(&mut s.ic, s.writer, id, root)
        .expect("commit");
    assert_eq!(
        (info.state, info.root),
        (SnapshotState::Complete, Some(root))
    );
}

#[test]
fn should_reject_a_conflicting_chunk() {
    let mut s = Setup::new();
    let img = noise_image(4, CS, 5);
    let id = s.begin(s.writer, &img, 1);
    let puts = chunk_puts(&img, CS);
    s.put(s.writer, id, vec![puts[2].clone()]).expect("put");
    let other = chunk_puts(&noise_image(4, CS, 6), CS).remove(2);
    let expected = VaultError::ConflictingChunk {
        index: 2,
        recorded: puts[2].hash,
        sent: other.hash,
    };
    let w = s.writer;
    s.assert_rejected(&expected, |s| s.put(w, id, vec![other.clone()]));
}

#[test]
fn should_change_nothing_when_one_chunk_of_a_batch_is_bad() {
    let mut s = Setup::new();
    let img = noise_image(8, CS, 7);
    let id = s.begin(s.writer, &img, 1);
    let mut puts = chunk_puts(&img, CS);
    if let ChunkBody::Data { bytes, .. } = &mut puts[6].body {
        bytes[100] ^= 1;
    }
    let w = s.writer;
    let before = s.fingerprint();
    let err = s.put(w, id, puts).expect_err("corrupt chunk 6");
    assert!(bad_chunk(6, "")(&err), "{err:?}");
    assert_eq!(s.fingerprint(), before);
    assert_eq!(
        s.vault.status(&mut s.ic, s.owner).chunks,
        0,
        "the good chunks were not stored either"
    );
}

/// Every endpoint, called by principals lacking its role, answers `Unauthorized`.
#[test]
fn should_refuse_every_endpoint_to_a_principal_without_the_role() {
    let mut s = Setup::new();
    let img = noise_image(2, CS, 8);
    let info = s.backup(s.writer, &img, 1);
    let hash = chunk_puts(&img, CS)[1].hash;
    let policy = RetentionPolicy::default();
    let restore = StartRestoreRequest {
        snapshot_id: info.id,
        target: s.writer,
    };
    let roles = vec![RoleChange {
        principal: s.stranger,
        role: Role::Owner,
        grant: true,
    }];
    let put = PutChunksRequest {
        snapshot_id: info.id,
        chunks: vec![],
    };
    let commit = CommitSnapshotRequest {
        snapshot_id: info.id,
        root: hash,
    };
    let endpoints: Vec<(&str, bool, Vec<u8>, Role)> = vec![
        (
            "begin_snapshot",
            false,
            Encode!(&begin_req(&img, CS, 9)),
            Role::Writer,
        ),
        ("put_chunks", false, Encode!(&put), Role::Writer),
        ("commit_snapshot", false, Encode!(&commit), Role::Writer),
        (
            "abort_snapshot",
            false,
            Encode!(&info.id, &"x".to_string()),
            Role::Writer,
        ),
        (
            "list_snapshots",
            true,
            Encode!(&None::<Principal>),
            Role::Reader,
        ),
        (
            "list_snapshot_page",
            true,
            Encode!(&ListSnapshotsRequest::default()),
            Role::Reader,
        ),
        ("get_snapshot", true, Encode!(&info.id), Role::Reader),
        (
            "get_manifest",
            true,
            Encode!(&info.id, &0u32, &10u32),
            Role::Reader,
        ),
        ("get_chunk", true, Encode!(&hash), Role::Reader),
        (
            "open_download",
            false,
            Encode!(&info.id, &60u64),
            Role::Reader,
        ),
        ("delete_snapshot", false, Encode!(&info.id), Role::Owner),
        ("set_retention", false, Encode!(&policy), Role::Owner),
        ("apply_retention", false, Encode!(), Role::Owner),
        ("update_roles", false, Encode!(&roles), Role::Owner),
        ("list_roles", true, Encode!(), Role::Owner),
        ("start_restore", false, Encode!(&restore), Role::Owner),
        ("restore_status", true, Encode!(&0u64), Role::Owner),
        ("list_restores", true, Encode!(), Role::Owner),
        ("status", true, Encode!(), Role::Reader),
    ]
    .into_iter()
    .map(|(m, q, arg, role)| (m, q, arg.expect("encode"), role))
    .collect();
    let before = s.fingerprint();
    for (method, is_query, arg, needed) in endpoints {
        let mut callers = vec![s.stranger, Principal::anonymous()];
        match needed {
            Role::Owner => callers.extend([s.writer, s.reader]),
            Role::Writer => callers.push(s.reader),
            Role::Reader => callers.push(s.writer),
        }
        for caller in callers {
            if is_query {
                let reply = s.ic.query_call(s.vault.id, caller, method, arg.clone());
                let reply = reply.unwrap_or_else(|r| panic!("{method} rejected: {r:?}"));
                let decoded = candid::decode_one::<Result<candid::Reserved, VaultError>>(&reply)
                    .expect("a Result");
                assert_eq!(
                    decoded.err(),
                    Some(VaultError::Unauthorized { caller, needed }),
                    "{method} called by {caller}"
                );
            } else {
                // Ingress updates are refused before they execute (inspect_message);
                // the method's own check answers `Unauthorized` to other callers.
                let reply = s.ic.update_call(s.vault.id, caller, method, arg.clone());
                let reject = reply.expect_err("refused by inspect_message");
                assert!(
                    reject.message.contains("IC0406"),
                    "{method} called by {caller}: {reject:?}"
                );
            }
        }
    }
    assert_eq!(s.fingerprint(), before);
    assert_eq!(
        s.vault.status(&mut s.ic, s.reader).snapshots,
        (0, 1, 0),
        "readers read the status"
    );
}

#[test]
fn should_make_begin_and_put_idempotent() {
    let mut s = Setup::new();
    let img = noise_image(4, CS, 10);
    let id = s.begin(s.writer, &img, 42);
    assert_eq!(
        s.begin(s.writer, &img, 42),
        id,
        "a re-sent begin returns the same snapshot"
    );
    assert_ne!(s.begin(s.writer2, &img, 42), id, "nonces are per caller");
    let puts = chunk_puts(&img, CS);
    assert_eq!(s.put(s.writer, id, puts.clone()), Ok(4));
    let once = s.fingerprint();
    assert_eq!(
        s.put(s.writer, id, puts),
        Ok(4),
        "a re-sent batch is recorded again as a no-op"
    );
    assert_eq!(s.fingerprint(), once);
}

#[test]
fn should_dedup_across_snapshots_and_sources() {
    let mut s = Setup::new();
    let img = noise_image(8, CS, 11);
    let first = s.backup(s.writer, &img, 1);
    let distinct = 6; // chunks 0 and 4 are zero
    let status = s.vault.status(&mut s.ic, s.owner);
    assert_eq!(
        (status.chunks, status.chunk_bytes),
        (distinct, distinct * u64::from(CS))
    );
    assert_eq!(first.new_bytes, status.chunk_bytes);

    // The next image changes one chunk: an incremental backup sends only that chunk.
    let mut next = img.clone();
    fill_noise(&mut next[(5 * CS) as usize..(6 * CS) as usize], 99);
    let mut req = begin_req(&next, CS, 2);
    req.parent = Some(first.id);
    let begun = s.vault.begin(&mut s.ic, s.writer, req).expect("begin");
    assert_eq!(begun.parent, Some(first.id));
    let changed = chunk_puts(&next, CS).remove(5);
    assert_eq!(s.put(s.writer, begun.snapshot_id, vec![changed]), Ok(1));
    let second = s
        .vault
        .commit(
            &mut s.ic,
            s.writer,
            begun.snapshot_id,
            image_root_of_bytes(&next, CS),
        )
        .expect("commit");
    assert_eq!(second.new_bytes, u64::from(CS));

    // Another source backs up the first image. It may not learn that the vault holds
    // these chunks (#10.7): naming them `Known` gets them reported missing, so it sends
    // their bytes; the store keeps one copy, and the new snapshot's `new_bytes` counts
    // what its own source had not stored, whatever other sources hold.
    let mut known = chunk_puts(&img, CS);
    let data: Vec<u32> = known
        .iter()
        .filter(|p| matches!(p.body, ChunkBody::Data { .. }))
        .map(|p| p.index)
        .collect();
    for p in &mut known {
        if matches!(p.body, ChunkBody::Data { .. }) {
            p.body = ChunkBody::Known;
        }
    }
    let id = s.begin(s.writer2, &img, 1);
    let r = s.vault.put(&mut s.ic, s.writer2, id, known).expect("known");
    assert_eq!(
        (r.recorded, r.missing),
        (2, data),
        "only the zero chunks recorded"
    );
    for batch in batches(chunk_puts(&img, CS)) {
        s.put(s.writer2, id, batch).expect("the bytes");
    }
    let third = s
        .vault
        .commit(&mut s.ic, s.writer2, id, image_root_of_bytes(&img, CS))
        .expect("commit");
    assert_eq!(
        third.new_bytes,
        distinct * u64::from(CS),
        "new to its source"
    );
    // Its own chunks it may name `Known` in its next snapshot.
    let mut again = chunk_puts(&img, CS);
    for p in &mut again {
        if matches!(p.body, ChunkBody::Data { .. }) {
            p.body = ChunkBody::Known;
        }
    }
    let id = s.begin(s.writer2, &img, 2);
    let r = s.vault.put(&mut s.ic, s.writer2, id, again).expect("known");
    assert_eq!((r.recorded, r.missing), (8, vec![]));
    assert_eq!(s.vault.status(&mut s.ic, s.owner).chunks, distinct + 1);
}

#[test]
fn should_apply_retention_and_collect_unreferenced_chunks() {
    let mut s = Setup::new();
    let policy = RetentionPolicy {
        keep_last: 2,
        keep_daily: 3,
        keep_weekly: 0,
    };
    s.vault
        .call::<_, ()>(&mut s.ic, s.owner, "set_retention", (policy,))
        .expect("set_retention");
    // Start just after midnight UTC, then two snapshots a day for five days. Every
    // image shares chunk 1 (`base`); chunk 2 is its own.
    let now = s.ic.time_nanos();
    let day_ns = DAY.as_nanos() as u64;
    s.ic.advance_time(Duration::from_nanos(day_ns - now % day_ns) + Duration::from_secs(3_600));
    let base = noise_image(4, CS, 500);
    let mut ids = Vec::new();
    let mut own_hashes = Vec::new();
    for n in 0..10u64 {
        let mut img = base.clone();
        fill_noise(&mut img[(2 * CS) as usize..(3 * CS) as usize], 1_000 + n);
        own_hashes.push(chunk_puts(&img, CS)[2].hash);
        ids.push(s.backup(s.writer, &img, n).id);
        s.ic.advance_time(DAY / 2);
        s.ic.tick(); // the retention pass a commit schedules
    }
    // Kept: the last two (9, 8) and the newest of the last three days (9, 7, 5).
    let kept: Vec<u64> = s
        .vault
        .list(&mut s.ic, s.owner, None)
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(kept, vec![ids[5], ids[7], ids[8], ids[9]]);
    let status = s.vault.status(&mut s.ic, s.owner);
    assert_eq!(
        status.chunks,
        2 + 4,
        "chunks 1 and 3 shared, one own chunk per snapshot kept"
    );
    for (n, hash) in own_hashes.iter().enumerate() {
        let stored = s.vault.chunk(&mut s.ic, s.owner, *hash).is_ok();
        assert_eq!(stored, kept.contains(&ids[n]), "chunk of snapshot {n}");
    }
    assert!(
        s.vault
            .chunk(&mut s.ic, s.owner, chunk_puts(&base, CS)[1].hash)
            .is_ok()
    );
    let again: Vec<u64> = s
        .vault
        .call(&mut s.ic, s.owner, "apply_retention", ())
        .expect("apply");
    assert!(again.is_empty(), "a second pass deletes nothing");
}

#[test]
fn should_pin_a_downloaded_snapshot_against_retention() {
    let mut s = Setup::new();
    let policy = RetentionPolicy {
        keep_last: 1,
        keep_daily: 0,
        keep_weekly: 0,
    };
    s.vault
        .call::<_, ()>(&mut s.ic, s.owner, "set_retention", (policy,))
        .expect("set_retention");
    let old = s.backup(s.writer, &noise_image(2, CS, 20), 1);
    let expiry: u64 = s
        .vault
        .call(&mut s.ic, s.reader, "open_download", (old.id, 600u64))
        .expect("lease");
    assert!(expiry > s.ic.time_nanos());
    s.backup(s.writer, &noise_image(2, CS, 21), 2);
    s.ic.tick();
    assert!(
        s.vault.snapshot(&mut s.ic, s.owner, old.id).is_ok(),
        "leased"
    );
    s.ic.advance_time(Duration::from_secs(601));
    let deleted: Vec<u64> = s
        .vault
        .call(&mut s.ic, s.owner, "apply_retention", ())
        .expect("apply");
    assert_eq!(deleted, vec![old.id]);
}

#[test]
fn should_reassemble_a_download_that_matches_the_root() {
    let mut s = Setup::new();
    let mut img = noise_image(11, CS, 30);
    img.truncate(img.len() - 1000); // a short last chunk
    let half = (3 * CS + CS / 2) as usize;
    img[half..half + 4096].fill(0x55); // compressible content somewhere
    let info = s.backup(s.writer, &img, 1);
    let got = s.vault.download(&mut s.ic, s.reader, info.id, 3);
    assert_eq!(got.len(), img.len());
    assert_eq!(image_root_of_bytes(&got, CS), info.root.expect("root"));
    assert!(got == img);
}

#[test]
fn should_accept_an_upload_by_an_owner_for_a_source() {
    let mut s = Setup::new();
    let img = noise_image(5, CS, 40);
    let mut req = begin_req(&img, CS, 1);
    req.source = Some(s.writer2);
    req.label = Some("restored from a file".into());
    let expected =
        VaultError::InvalidRequest("only owners may name a source (uploading a copy)".into());
    let w = s.writer;
    s.assert_rejected(&expected, |s| s.vault.begin(&mut s.ic, w, req.clone()));
    let id = s
        .vault
        .begin(&mut s.ic, s.owner, req)
        .expect("owner upload")
        .snapshot_id;
    for batch in batches(chunk_puts(&img, CS)) {
        s.put(s.owner, id, batch).expect("put");
    }
    let info = s
        .vault
        .commit(&mut s.ic, s.owner, id, image_root_of_bytes(&img, CS))
        .expect("commit");
    assert_eq!(
        (info.source, info.label.as_deref()),
        (s.writer2, Some("restored from a file"))
    );
    assert_eq!(
        s.vault.list(&mut s.ic, s.reader, Some(s.writer2)),
        vec![info]
    );
    assert!(s.vault.list(&mut s.ic, s.reader, Some(s.writer)).is_empty());
}

#[test]
fn should_keep_everything_across_an_upgrade() {
    let mut s = Setup::new();
    let img = noise_image(6, CS, 50);
    let info = s.backup(s.writer, &img, 1);
    let before = s.fingerprint();
    let newcomer = principal("newcomer");
    let arg = Encode!(&Some(VaultInit {
        readers: vec![newcomer],
        ..VaultInit::default()
    }))
    .expect("encode");
    s.ic.upgrade_canister(
        s.vault.id,
        canvault_scenarios::wasm("canvault_vault"),
        arg,
        Some(s.owner),
    )
    .expect("upgrade");
    assert_eq!(s.fingerprint(), before);
    assert_eq!(s.vault.download(&mut s.ic, newcomer, info.id, 0), img);
    let arg = Encode!().expect("encode");
    s.ic.upgrade_canister(
        s.vault.id,
        canvault_scenarios::wasm("canvault_vault"),
        arg,
        Some(s.owner),
    )
    .expect("upgrade without an argument");
    assert_eq!(s.fingerprint(), before);
}

/// Not a check: prints what verifying and storing 1 MiB chunks costs (`--nocapture`).
#[test]
fn measure_put_chunks_of_a_1_mib_chunk() {
    let mut s = Setup::new();
    let mut img = vec![0u8; 5 * DEFAULT_CHUNK_SIZE as usize];
    fill_noise(&mut img[..2 * DEFAULT_CHUNK_SIZE as usize], 7);
    for (i, b) in img[2 * DEFAULT_CHUNK_SIZE as usize..3 * DEFAULT_CHUNK_SIZE as usize]
        .iter_mut()
        .enumerate()
    {
        *b = (i / 512) as u8; // compressible
    }
    let req = begin_req(&img, DEFAULT_CHUNK_SIZE, 1);
    let id = s
        .vault
        .begin(&mut s.ic, s.writer, req)
        .expect("begin")
        .snapshot_id;
    let puts = chunk_puts(&img, DEFAULT_CHUNK_SIZE);
    let mut report = Vec::new();
    for (label, put) in [
        ("raw, new", &puts[0]),
        ("raw, new", &puts[1]),
        ("deflate, new", &puts[2]),
        ("zero", &puts[3]),
        ("zero again", &puts[4]),
    ] {
        let encoded = match &put.body {
            ChunkBody::Data { bytes, .. } => bytes.len(),
            _ => 0,
        };
        let before = s.ic.metrics(s.vault.id).instructions;
        s.put(s.writer, id, vec![put.clone()]).expect("put");
        let cost = s.ic.metrics(s.vault.id).instructions - before;
        report.push(format!(
            "put_chunks, one 1 MiB chunk ({label}, {encoded} bytes sent): {cost} instructions"
        ));
    }
    let before = s.ic.metrics(s.vault.id).instructions;
    s.put(s.writer, id, vec![puts[0].clone()]).expect("re-send");
    report.push(format!(
        "put_chunks, the same chunk re-sent: {} instructions",
        s.ic.metrics(s.vault.id).instructions - before
    ));
    let before = s.ic.metrics(s.vault.id).instructions;
    let root = image_root_of_bytes(&img, DEFAULT_CHUNK_SIZE);
    s.vault
        .commit(&mut s.ic, s.writer, id, root)
        .expect("commit");
    report.push(format!(
        "commit_snapshot of 5 chunks: {} instructions",
        s.ic.metrics(s.vault.id).instructions - before
    ));
    let got = s
        .vault
        .chunk(&mut s.ic, s.reader, puts[0].hash)
        .expect("get_chunk");
    assert_eq!(
        chunk::open(got.codec, &got.bytes, got.len, &puts[0].hash).map(|r| r.len()),
        Ok(1 << 20)
    );
    for line in report {
        println!("{line}");
    }
    assert!(s.ic.metrics(s.vault.id).max_instructions_per_execution < 2_000_000_000);
}

/// Not a check: prints what the per-entry table work costs for a 10,000-chunk image
/// (about 625 MiB at 64 KiB chunks), all chunks referencing one stored chunk.
#[test]
fn measure_large_chunk_tables() {
    const N: u32 = 10_000;
    let mut s = Setup::new();
    let mut raw = vec![0u8; CS as usize];
    fill_noise(&mut raw, 3);
    let first = ChunkPut::with_bytes(0, &raw);
    let hash = first.hash;
    let image_size = u64::from(N) * u64::from(CS);
    let req = BeginSnapshotRequest {
        image_size,
        ..begin_req(&[], CS, 1)
    };
    let id = s
        .vault
        .begin(&mut s.ic, s.writer, req)
        .expect("begin")
        .snapshot_id;
    s.put(s.writer, id, vec![first]).expect("data");
    let known: Vec<ChunkPut> = (1..N)
        .map(|index| ChunkPut {
            index,
            hash,
            len: CS,
            body: ChunkBody::Known,
        })
        .collect();
    let mut report = Vec::new();
    let mut measure = |s: &mut Setup, label: &str, f: &mut dyn FnMut(&mut Setup)| {
        let before = s.ic.metrics(s.vault.id).instructions;
        f(s);
        let cost = s.ic.metrics(s.vault.id).instructions - before;
        report.push(format!(
            "{label}: {cost} instructions ({} per entry)",
            cost / u64::from(N)
        ));
    };
    measure(&mut s, "put_chunks of 9,999 Known entries", &mut |s| {
        assert_eq!(s.put(s.writer, id, known.clone()), Ok(N - 1));
    });
    let root = canvault_protocol::merkle::image_root(image_size, CS, vec![hash; N as usize]);
    measure(&mut s, "commit_snapshot of 10,000 entries", &mut |s| {
        s.vault
            .commit(&mut s.ic, s.writer, id, root)
            .expect("commit");
    });
    let mut child = 0;
    measure(
        &mut s,
        "begin_snapshot inheriting 10,000 entries",
        &mut |s| {
            let req = BeginSnapshotRequest {
                image_size,
                parent: Some(id),
                ..begin_req(&[], CS, 2)
            };
            child = s
                .vault
                .begin(&mut s.ic, s.writer, req)
                .expect("begin")
                .snapshot_id;
        },
    );
    measure(&mut s, "delete_snapshot of 10,000 entries", &mut |s| {
        let r: Result<(), VaultError> = s.vault.call(&mut s.ic, s.owner, "delete_snapshot", (id,));
        r.expect("delete");
    });
    let page = s
        .vault
        .manifest(&mut s.ic, s.reader, child, 0, 0)
        .expect("manifest");
    assert_eq!((page.entries.len(), page.next), (N as usize, None));
    for line in report {
        println!("{line}");
    }
    assert!(s.ic.metrics(s.vault.id).max_instructions_per_execution < 2_000_000_000);
}
