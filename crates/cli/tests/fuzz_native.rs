//! Fuzz target: native snapshot directories (`native::import`, the directory `icp` /
//! `dfx canister snapshot download` writes), read with both layouts.
//!
//! A corpus entry is a directory (`metadata.json`, `stable_memory.bin`,
//! `canvault.json`); a mutation edits one of its files. Imports must succeed with a
//! file that verifies, or fail with a typed `CliError`, never panic, and never
//! allocate what a header claims. The kit layout's inputs are a kit's whole stable
//! memory (tens of MiB, mostly empty buckets), so they are built in code from the
//! committed raw entries by the real exporter, and mutated where the kit's layout keeps
//! its lengths: the memory manager's header and the kit's state cell.
//!
//! Long run: `PROPTEST_CASES=5000 cargo test --release -p canvault-cli --test fuzz_native`.
//! Regenerate the corpus: `cargo test -p canvault-cli --test fuzz_native -- --ignored`.

#[path = "../../protocol/tests/fuzz_common/mod.rs"]
mod fuzz_common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candid::Principal;
use canvault_cli::error::CliError;
use canvault_cli::file_format::{ChunkRecord, SnapshotMeta, SnapshotWriter};
use canvault_cli::native::{self, Layout};
use canvault_cli::progress::ProgressMode;
use canvault_cli::verify;
use canvault_kit::state::KitState;
use canvault_protocol::{chunk, merkle};
use fuzz_common::{Expect, apply, config, corpus_dir, corpus_entries, expect_of, mutated};
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager};
use ic_stable_structures::{StableCell, VectorMemory};
use proptest::prelude::*;

const TARGET: &str = "native_dir";
const FILES: [&str; 3] = ["metadata.json", "stable_memory.bin", "canvault.json"];
const PAGE: usize = 65_536;

/// A directory's files (absent ones as `None`), in [`FILES`] order.
type Dir = [Option<Vec<u8>>; 3];

fn read_dir(path: &Path) -> Dir {
    FILES.map(|f| std::fs::read(path.join(f)).ok())
}

fn write_dir(path: &Path, dir: &Dir) {
    std::fs::create_dir_all(path).expect("create the directory");
    for (name, bytes) in FILES.iter().zip(dir) {
        if let Some(bytes) = bytes {
            std::fs::write(path.join(name), bytes).expect("write a file");
        }
    }
}

fn source() -> Principal {
    Principal::from_slice(&[1, 2, 3])
}

/// Imports `dir` with `layout` (naming the source or leaving it to `canvault.json`);
/// checks that an import writes a file that verifies and that a refusal is typed.
fn import(dir: &Dir, layout: Layout, name_source: bool) -> Result<Vec<u8>, CliError> {
    // A kit's stable memory is ~80 MiB of mostly empty buckets, held a few times over
    // by an import; one import at a time keeps the peak well under the cap.
    fuzz_common::raise_alloc_limit(1 << 30);
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let input = tmp.path().join("in");
    write_dir(&input, dir);
    let out = tmp.path().join("out.canvault");
    let source = name_source.then(source);
    match native::import(&input, &out, source, layout, None) {
        Ok(report) => {
            let verified = verify::verify(&out, ProgressMode::Hidden)
                .expect("an imported snapshot file verifies");
            assert_eq!(verified.meta, report.meta);
            Ok(std::fs::read(&out).expect("read the import"))
        }
        Err(e) => {
            assert!(
                matches!(
                    e,
                    CliError::BadFile { .. } | CliError::Io { .. } | CliError::Usage(_)
                ),
                "refused with an untyped or misleading error: {e:?}"
            );
            Err(e)
        }
    }
}

/// Exports a snapshot file with `layout`; the directory's files.
fn export(file: &[u8], layout: Layout) -> Dir {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let path = tmp.path().join("s.canvault");
    std::fs::write(&path, file).expect("write");
    let dir = tmp.path().join("dir");
    native::export(&path, &dir, layout, ProgressMode::Hidden).expect("export");
    read_dir(&dir)
}

fn corpus() -> &'static [(String, Dir)] {
    static CORPUS: OnceLock<Vec<(String, Dir)>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        corpus_entries(&corpus_dir(env!("CARGO_MANIFEST_DIR"), TARGET))
            .into_iter()
            .map(|p: PathBuf| {
                let name = p
                    .file_name()
                    .expect("a name")
                    .to_string_lossy()
                    .into_owned();
                (name, read_dir(&p))
            })
            .collect()
    })
}

/// A corpus entry: its file name and bytes.
type Entry = (String, Vec<u8>);

/// The corpus's files of one kind, as the mutation strategy takes them.
fn files_of(kind: usize) -> &'static [Entry] {
    static FILES_OF: OnceLock<Vec<Vec<Entry>>> = OnceLock::new();
    &FILES_OF.get_or_init(|| {
        (0..FILES.len())
            .map(|k| {
                corpus()
                    .iter()
                    .map(|(n, d)| (n.clone(), d[k].clone().unwrap_or_default()))
                    .collect()
            })
            .collect()
    })[kind]
}

#[test]
fn replay_corpus() {
    for (name, dir) in corpus() {
        let raw = import(dir, Layout::Raw, false);
        let kit = import(dir, Layout::Kit, false);
        match expect_of(name) {
            Expect::Valid => {
                let file = raw.unwrap_or_else(|e| panic!("{name}: {e}"));
                // Round trip: exporting the import gives back the same stable memory.
                let back = export(&file, Layout::Raw);
                assert_eq!(back[1], dir[1], "{name}: stable memory changed");
                assert!(kit.is_err(), "{name}: raw memory is not a kit layout");
            }
            Expect::Bad => {
                assert!(raw.is_err(), "{name}: the raw import accepted it");
                assert!(kit.is_err(), "{name}: the kit import accepted it");
            }
            Expect::Any => {}
        }
    }
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn mutated_directories_import_or_are_refused(
        (pick, edits) in mutated(corpus().len()),
        kind in 0..FILES.len(),
        name_source in any::<bool>(),
        remove in any::<bool>(),
    ) {
        let mut dir = corpus()[pick].1.clone();
        dir[kind] = if remove && edits.len() == 1 {
            None
        } else {
            Some(apply(files_of(kind), pick, &edits))
        };
        let _ = import(&dir, Layout::Raw, name_source);
        let _ = import(&dir, Layout::Kit, name_source);
    }
}

// ---- The kit layout, built from the committed entries by the real exporter. ----

/// A valid kit-layout directory and the snapshot file it was exported from.
fn kit_seed() -> &'static (Dir, Vec<u8>) {
    static SEED: OnceLock<(Dir, Vec<u8>)> = OnceLock::new();
    SEED.get_or_init(|| {
        let file = snapshot_file(&image());
        (export(&file, Layout::Kit), file)
    })
}

/// Byte offset of the first bucket of memory `id` in a memory manager's memory.
fn bucket_of(memory: &[u8], id: u8) -> usize {
    // Header: magic, version, allocated buckets (u16), bucket size in pages (u16),
    // 32 reserved bytes, 255 memory sizes (u64): then one byte per bucket.
    const TABLE: usize = 3 + 1 + 2 + 2 + 32 + 255 * 8;
    let bucket_pages = usize::from(u16::from_le_bytes([memory[6], memory[7]]));
    let i = memory[TABLE..TABLE + 32_768]
        .iter()
        .position(|m| *m == id)
        .expect("the memory has a bucket");
    PAGE + i * bucket_pages * PAGE
}

/// The kit's stable memory with its state cell rewritten by `edit`.
fn with_state(memory: &[u8], edit: impl FnOnce(&mut KitState)) -> Vec<u8> {
    let mem = VectorMemory::default();
    mem.borrow_mut().extend_from_slice(memory);
    let manager = MemoryManager::init(mem.clone());
    let mut cell = StableCell::init(manager.get(MemoryId::new(2)), KitState::default());
    let mut state = cell.get().clone();
    edit(&mut state);
    let _previous = cell.set(state);
    drop(cell);
    drop(manager);
    mem.take()
}

/// `dir` with `stable_memory.bin` replaced (metadata.json's size kept consistent).
fn with_memory(dir: &Dir, memory: Vec<u8>) -> Dir {
    let mut out = dir.clone();
    let meta = String::from_utf8(dir[0].clone().expect("metadata.json")).expect("utf-8");
    let old = dir[1].as_ref().expect("stable memory").len();
    out[0] = Some(
        meta.replace(
            &format!("\"stable_memory_size\": {old}"),
            &format!("\"stable_memory_size\": {}", memory.len()),
        )
        .into_bytes(),
    );
    out[1] = Some(memory);
    out
}

#[test]
fn kit_layout_round_trips() {
    let (dir, file) = kit_seed();
    let imported = import(dir, Layout::Kit, false).expect("the kit layout imports");
    let original = verify_bytes(file);
    let again = verify_bytes(&imported);
    assert_eq!(again.meta.root, original.meta.root);
    assert_eq!(again.meta.image_size, original.meta.image_size);
}

fn verify_bytes(file: &[u8]) -> verify::VerifyReport {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let path = tmp.path().join("f.canvault");
    std::fs::write(&path, file).expect("write");
    verify::verify(&path, ProgressMode::Hidden).expect("verifies")
}

/// A kit state whose image claims 2^30 pages (64 TiB) in a memory of a few MiB: the
/// import must refuse it, not allocate it.
#[test]
fn kit_state_claiming_a_huge_image_is_refused() {
    let (dir, _) = kit_seed();
    let memory = dir[1].as_ref().expect("stable memory");
    for pages in [1 << 30, u64::MAX / 65_536, u64::MAX] {
        let hostile = with_memory(dir, with_state(memory, |s| s.image_pages = pages));
        match import(&hostile, Layout::Kit, false) {
            Err(CliError::BadFile { .. }) => {}
            other => panic!("image_pages {pages}: expected BadFile, got {other:?}"),
        }
    }
}

/// A memory manager header declaring a virtual memory far larger than the file (the
/// kit reads its bitmaps whole): refused, not allocated.
#[test]
fn memory_manager_claiming_huge_memories_is_refused() {
    let (dir, _) = kit_seed();
    let memory = dir[1].as_ref().expect("stable memory");
    for id in [0usize, 2, 6, 7] {
        let mut hostile = memory.clone();
        let at = 40 + 8 * id;
        hostile[at..at + 8].copy_from_slice(&(1u64 << 30).to_le_bytes());
        match import(&with_memory(dir, hostile), Layout::Kit, false) {
            Err(CliError::BadFile { .. }) => {}
            other => panic!("memory {id}: expected BadFile, got {other:?}"),
        }
    }
}

/// The kit's state cell declaring a value of 4 GiB: refused, not allocated.
#[test]
fn state_cell_claiming_a_huge_value_is_refused() {
    let (dir, _) = kit_seed();
    let mut hostile = dir[1].clone().expect("stable memory");
    let cell = bucket_of(&hostile, 2);
    assert_eq!(&hostile[cell..cell + 3], b"SCL", "the state cell's magic");
    hostile[cell + 4..cell + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    match import(&with_memory(dir, hostile), Layout::Kit, false) {
        Err(CliError::BadFile { .. }) => {}
        other => panic!("expected BadFile, got {other:?}"),
    }
}

proptest! {
    #![proptest_config(config(48))]

    /// Mutations of the kit layout's length-bearing windows: the memory manager's
    /// header and bucket table, and the state cell.
    #[test]
    fn mutated_kit_layouts_import_or_are_refused(
        edits in proptest::collection::vec(fuzz_common::mutation(), 1..5),
        in_state in any::<bool>(),
    ) {
        let (dir, _) = kit_seed();
        let memory = dir[1].as_ref().expect("stable memory");
        let start = if in_state { bucket_of(memory, 2) } else { 0 };
        let end = start + 4096;
        let window = [(String::new(), memory[start..end].to_vec())];
        let mut hostile = memory[..start].to_vec();
        hostile.extend(apply(&window, 0, &edits));
        hostile.extend_from_slice(&memory[end..]);
        let _ = import(&with_memory(dir, hostile), Layout::Kit, false);
    }
}

// ---- The seed corpus. ----

const CS: u32 = 64 * 1024;

fn image() -> Vec<u8> {
    let mut image = b"native ".repeat(9363);
    image.resize(CS as usize, b'.');
    image.extend(std::iter::repeat_n(0u8, CS as usize));
    image.extend((0..CS).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8));
    image
}

fn snapshot_file(image: &[u8]) -> Vec<u8> {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let path = tmp.path().join("s.canvault");
    let meta = SnapshotMeta {
        source: source().to_text(),
        vault: None,
        snapshot_id: Some(1),
        created_at_ns: 1_700_000_000_000_000_000,
        label: None,
        image_size: image.len() as u64,
        chunk_size: CS,
        chunk_count: chunk::chunk_count(image.len() as u64, CS),
        root: merkle::image_root_of_bytes(image, CS).to_hex(),
    };
    let mut w = SnapshotWriter::create(&path, &meta).expect("create");
    for (i, raw) in (0u32..).zip(image.chunks(CS as usize)) {
        w.append(&ChunkRecord::of_bytes(i, raw)).expect("append");
    }
    w.finish().expect("finish");
    std::fs::read(&path).expect("read")
}

#[test]
#[ignore = "regenerates the committed corpus"]
fn generate_corpus() {
    let base = export(&snapshot_file(&image()), Layout::Raw);
    let one_page = export(&snapshot_file(&[7u8; 100]), Layout::Raw);
    let text = |d: &Dir, k: usize| String::from_utf8(d[k].clone().expect("a file")).expect("utf-8");
    let mut entries: Vec<(String, Dir)> = vec![
        ("valid-raw-three-pages".into(), base.clone()),
        ("valid-raw-one-page".into(), one_page.clone()),
    ];
    let mut no_sidecar = base.clone();
    no_sidecar[2] = None;
    entries.push(("bad-no-source".into(), no_sidecar));
    let mut no_memory = base.clone();
    no_memory[1] = None;
    entries.push(("bad-no-stable-memory".into(), no_memory));
    let mut no_metadata = base.clone();
    no_metadata[0] = None;
    entries.push(("bad-no-metadata".into(), no_metadata));
    let mut size = base.clone();
    size[0] = Some(
        text(&base, 0)
            .replace(
                "\"stable_memory_size\": 196608",
                "\"stable_memory_size\": 1099511627776",
            )
            .into_bytes(),
    );
    entries.push(("bad-metadata-size-1tib".into(), size));
    let mut short = base.clone();
    short[1].as_mut().expect("memory").truncate(100_000);
    entries.push(("bad-stable-memory-short".into(), short));
    let mut chunk_size = base.clone();
    chunk_size[2] = Some(
        text(&base, 2)
            .replace("\"chunk_size\": 65536", "\"chunk_size\": 12345")
            .into_bytes(),
    );
    entries.push(("bad-sidecar-chunk-size".into(), chunk_size));
    let mut sidecar_source = base.clone();
    sidecar_source[2] = Some(
        text(&base, 2)
            .replace(&source().to_text(), "not a principal")
            .into_bytes(),
    );
    entries.push(("bad-sidecar-source".into(), sidecar_source));
    let mut metadata_json = base.clone();
    metadata_json[0] = Some(b"{\"stable_memory_size\": []}".to_vec());
    entries.push(("bad-metadata-not-a-snapshot".into(), metadata_json));
    let mut garbage_sidecar = base.clone();
    garbage_sidecar[2] = Some(b"\xff\xfe not json".to_vec());
    entries.push(("other-garbage-sidecar".into(), garbage_sidecar));
    let mut kit_magic = one_page.clone();
    kit_magic[1].as_mut().expect("memory")[..3].copy_from_slice(b"MGR");
    entries.push(("other-raw-memory-with-kit-magic".into(), kit_magic));

    let root = corpus_dir(env!("CARGO_MANIFEST_DIR"), TARGET);
    for (name, dir) in &entries {
        write_dir(&root.join(name), dir);
    }
}
