//! A typed client for the vault canister, over the harness, plus image helpers: cut an
//! image into chunk puts, pack them into batches, back it up, download it back.

use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{CandidType, Principal};
use canvault_protocol::Hash256;
use canvault_protocol::canister_image::{CanisterJob, CanisterJobState};
use canvault_protocol::chunk::{self, ENTRY_OVERHEAD_BYTES, MAX_BATCH_PAYLOAD_BYTES};
use canvault_protocol::merkle::image_root_of_bytes;
use canvault_protocol::vault_api::{
    BeginSnapshotRequest, BeginSnapshotResponse, ChunkBody, ChunkPut, CommitSnapshotRequest,
    ListSnapshotsRequest, ManifestPage, PutChunksRequest, PutChunksResponse, RestoreJob,
    SnapshotId, SnapshotInfo, SnapshotPage, StoredChunk, VaultError, VaultInit, VaultStatus,
};
use ic_harness::{CanisterId, Harness};
use serde::de::DeserializeOwned;

/// The vault canister's crate name.
pub const VAULT_WASM: &str = "canvault_vault";

/// A vault canister in a harness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaultClient {
    /// Its canister id.
    pub id: CanisterId,
}

impl VaultClient {
    /// Installs a vault on the `subnet`-th application subnet.
    pub fn install(
        ic: &mut Harness,
        subnet: usize,
        init: &VaultInit,
        controller: Principal,
    ) -> Self {
        let arg = candid::encode_one(init).expect("encode VaultInit");
        Self {
            id: crate::install(ic, subnet, VAULT_WASM, arg, controller),
        }
    }

    /// An ingress update that must be answered (not rejected).
    pub fn update<A: ArgumentEncoder, R: for<'de> ArgumentDecoder<'de>>(
        &self,
        ic: &mut Harness,
        sender: Principal,
        method: &str,
        args: A,
    ) -> R {
        ic.update_candid(self.id, sender, method, args)
            .unwrap_or_else(|e| panic!("vault {method} failed: {e:?}"))
    }

    /// An ingress query that must be answered.
    pub fn query<A: ArgumentEncoder, R: for<'de> ArgumentDecoder<'de>>(
        &self,
        ic: &mut Harness,
        sender: Principal,
        method: &str,
        args: A,
    ) -> R {
        ic.query_candid(self.id, sender, method, args)
            .unwrap_or_else(|e| panic!("vault {method} failed: {e:?}"))
    }

    /// An update answering `Result<T, VaultError>`.
    pub fn call<A: ArgumentEncoder, T: CandidType + DeserializeOwned>(
        &self,
        ic: &mut Harness,
        sender: Principal,
        method: &str,
        args: A,
    ) -> Result<T, VaultError> {
        self.update::<_, (Result<T, VaultError>,)>(ic, sender, method, args)
            .0
    }

    /// A query answering `Result<T, VaultError>`.
    pub fn read<A: ArgumentEncoder, T: CandidType + DeserializeOwned>(
        &self,
        ic: &mut Harness,
        sender: Principal,
        method: &str,
        args: A,
    ) -> Result<T, VaultError> {
        self.query::<_, (Result<T, VaultError>,)>(ic, sender, method, args)
            .0
    }

    /// `begin_snapshot`.
    pub fn begin(
        &self,
        ic: &mut Harness,
        sender: Principal,
        req: BeginSnapshotRequest,
    ) -> Result<BeginSnapshotResponse, VaultError> {
        self.call(ic, sender, "begin_snapshot", (req,))
    }

    /// `put_chunks`.
    pub fn put(
        &self,
        ic: &mut Harness,
        sender: Principal,
        snapshot_id: SnapshotId,
        chunks: Vec<ChunkPut>,
    ) -> Result<PutChunksResponse, VaultError> {
        self.call(
            ic,
            sender,
            "put_chunks",
            (PutChunksRequest {
                snapshot_id,
                chunks,
            },),
        )
    }

    /// `commit_snapshot`.
    pub fn commit(
        &self,
        ic: &mut Harness,
        sender: Principal,
        snapshot_id: SnapshotId,
        root: Hash256,
    ) -> Result<SnapshotInfo, VaultError> {
        self.call(
            ic,
            sender,
            "commit_snapshot",
            (CommitSnapshotRequest { snapshot_id, root },),
        )
    }

    /// `list_snapshots`, which must succeed.
    pub fn list(
        &self,
        ic: &mut Harness,
        sender: Principal,
        source: Option<Principal>,
    ) -> Vec<SnapshotInfo> {
        self.read(ic, sender, "list_snapshots", (source,))
            .expect("list_snapshots")
    }

    /// `get_snapshot`.
    pub fn snapshot(
        &self,
        ic: &mut Harness,
        sender: Principal,
        id: SnapshotId,
    ) -> Result<SnapshotInfo, VaultError> {
        self.read(ic, sender, "get_snapshot", (id,))
    }

    /// `get_manifest`.
    pub fn manifest(
        &self,
        ic: &mut Harness,
        sender: Principal,
        id: SnapshotId,
        start: u32,
        limit: u32,
    ) -> Result<ManifestPage, VaultError> {
        self.read(ic, sender, "get_manifest", (id, start, limit))
    }

    /// `get_chunk`.
    pub fn chunk(
        &self,
        ic: &mut Harness,
        sender: Principal,
        hash: Hash256,
    ) -> Result<StoredChunk, VaultError> {
        self.read(ic, sender, "get_chunk", (hash,))
    }

    /// `status`, which must succeed.
    pub fn status(&self, ic: &mut Harness, sender: Principal) -> VaultStatus {
        self.read(ic, sender, "status", ()).expect("status")
    }

    /// Ticks until the canister job `id` is done or failed, reading it with `status`
    /// (`canister_backup_status` or `canister_restore_status`); panics after 20,000 rounds.
    pub fn wait_canister_job(
        &self,
        ic: &mut Harness,
        sender: Principal,
        id: u64,
        status: &str,
    ) -> CanisterJob {
        for _ in 0..20_000 {
            let job: CanisterJob = self.read(ic, sender, status, (id,)).expect("status");
            if matches!(
                job.state,
                CanisterJobState::Done | CanisterJobState::Failed { .. }
            ) {
                return job;
            }
            ic.tick();
        }
        panic!("canister job {id} did not end in 20,000 rounds");
    }

    /// `restore_status`, which must succeed.
    pub fn restore_job(&self, ic: &mut Harness, sender: Principal, job: u64) -> RestoreJob {
        self.read(ic, sender, "restore_status", (job,))
            .expect("restore_status")
    }

    /// Backs up `image` in full (data and zero chunks, packed batches) under `nonce`
    /// and commits it.
    pub fn backup(
        &self,
        ic: &mut Harness,
        sender: Principal,
        image: &[u8],
        chunk_size: u32,
        nonce: u64,
    ) -> SnapshotInfo {
        let req = BeginSnapshotRequest {
            parent: None,
            image_size: image.len() as u64,
            chunk_size,
            nonce,
            label: None,
            source: None,
        };
        let id = self
            .begin(ic, sender, req)
            .expect("begin_snapshot")
            .snapshot_id;
        for batch in batches(chunk_puts(image, chunk_size)) {
            let r = self.put(ic, sender, id, batch).expect("put_chunks");
            assert!(r.missing.is_empty());
        }
        self.commit_until_done(ic, sender, id, image_root_of_bytes(image, chunk_size))
            .expect("commit_snapshot")
    }

    /// `commit_snapshot` again (a round later) while the vault answers `InUse`: a large
    /// table is walked over several calls.
    pub fn commit_until_done(
        &self,
        ic: &mut Harness,
        sender: Principal,
        snapshot_id: SnapshotId,
        root: Hash256,
    ) -> Result<SnapshotInfo, VaultError> {
        loop {
            match self.commit(ic, sender, snapshot_id, root) {
                Err(VaultError::InUse(_)) => ic.tick(),
                other => return other,
            }
        }
    }

    /// `list_snapshot_page`.
    pub fn list_page(
        &self,
        ic: &mut Harness,
        sender: Principal,
        req: ListSnapshotsRequest,
    ) -> Result<SnapshotPage, VaultError> {
        self.read(ic, sender, "list_snapshot_page", (req,))
    }

    /// Downloads a snapshot through `get_manifest` pages of `page` entries and
    /// `get_chunk`, verifying every chunk, and returns the image.
    pub fn download(
        &self,
        ic: &mut Harness,
        sender: Principal,
        id: SnapshotId,
        page: u32,
    ) -> Vec<u8> {
        let info = self.snapshot(ic, sender, id).expect("get_snapshot");
        let mut image = Vec::with_capacity(info.image_size as usize);
        let mut start = Some(0);
        while let Some(from) = start {
            let ManifestPage { entries, next } = self
                .manifest(ic, sender, id, from, page)
                .expect("get_manifest");
            for e in entries {
                assert_eq!(
                    e.index as usize,
                    image.len().div_ceil(info.chunk_size as usize)
                );
                if e.zero {
                    assert_eq!(e.hash, chunk::zero_hash(e.len));
                    image.resize(image.len() + e.len as usize, 0);
                } else {
                    let c = self.chunk(ic, sender, e.hash).expect("get_chunk");
                    let raw =
                        chunk::open(c.codec, &c.bytes, e.len, &e.hash).expect("verified chunk");
                    image.extend_from_slice(&raw);
                }
            }
            start = next;
        }
        image
    }
}

/// One put per chunk of `image`: zero chunks as `Zero`, others sealed.
pub fn chunk_puts(image: &[u8], chunk_size: u32) -> Vec<ChunkPut> {
    (0u32..)
        .zip(image.chunks(chunk_size as usize))
        .map(|(i, raw)| ChunkPut::with_bytes(i, raw))
        .collect()
}

/// Packs puts into batches within the protocol's payload budget.
pub fn batches(puts: Vec<ChunkPut>) -> Vec<Vec<ChunkPut>> {
    let mut out: Vec<Vec<ChunkPut>> = Vec::new();
    let mut size = 0;
    for put in puts {
        let cost = ENTRY_OVERHEAD_BYTES
            + match &put.body {
                ChunkBody::Data { bytes, .. } => bytes.len(),
                ChunkBody::Known | ChunkBody::Zero => 0,
            };
        match out.last_mut() {
            Some(batch) if size + cost <= MAX_BATCH_PAYLOAD_BYTES => {
                batch.push(put);
                size += cost;
            }
            _ => {
                out.push(vec![put]);
                size = cost;
            }
        }
    }
    out
}

/// A deterministic test image of `chunks` chunks of `chunk_size` bytes: chunk `i` is
/// zero when `i % 4 == 0`, incompressible noise seeded by `(seed, i)` otherwise.
pub fn noise_image(chunks: u32, chunk_size: u32, seed: u64) -> Vec<u8> {
    let mut image = vec![0u8; chunks as usize * chunk_size as usize];
    for (i, part) in image.chunks_mut(chunk_size as usize).enumerate() {
        if i % 4 != 0 {
            fill_noise(part, seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
        }
    }
    image
}

/// Fills `bytes` with xorshift noise from `seed` (distinct seeds, distinct noise).
pub fn fill_noise(bytes: &mut [u8], seed: u64) {
    // The splitmix64 finaliser: a bijection, so distinct seeds start distinct streams.
    let mut x = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x = (x ^ (x >> 31)).max(1);
    for b in bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
}
