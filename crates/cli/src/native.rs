//! Export to and import from the platform's snapshot directory, the layout written by
//! `icp canister snapshot download` and `dfx canister snapshot download`, and read by
//! their `upload`:
//!
//! ```text
//! DIR/
//!   metadata.json       ReadCanisterSnapshotMetadataResult as JSON (ic-management-canister-types)
//!   stable_memory.bin   stable memory, byte for byte
//!   wasm_module.bin     the module        ┐ whole-canister snapshots only
//!   wasm_memory.bin     the heap          │ (see `native_canister`): a kit image
//!   wasm_chunk_store/   uploaded chunks   ┘ leaves them out (sizes 0 in metadata.json)
//!   canvault.json       canvault's own header (source, vault, snapshot, root): provenance
//! ```
//!
//! A whole-canister snapshot (copied by the vault from a native snapshot) exports to the
//! complete directory, ready for `icp canister snapshot upload`, and a complete
//! directory imports back to the same image (`native_canister`).
//!
//! A kit image is the app's memory as the app sees it; `--layout raw` (default) writes
//! it as `stable_memory.bin` directly (for apps that do not embed the kit, and for tools
//! that inspect stable memory), `--layout kit` wraps it in the kit's own stable-memory
//! layout, as the stable memory of a canister that embeds the kit looks. What is not
//! carried: the wasm module, the heap, globals, the timer, certified data and the chunk
//! store; a native snapshot loaded with `load_canister_snapshot` needs them, so upload a
//! kit export only after merging it with a native snapshot of the same app (replace its
//! `stable_memory.bin`).
//!
//! Import reads `stable_memory.bin` (with `--layout kit`, the app image inside the kit's
//! layout), or the whole directory when `metadata.json` names a module, and writes a
//! canvault snapshot file, ready for `snapshot upload`.

use std::cell::RefCell;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use candid::{Principal, Reserved};
use canvault_kit::state::DEFAULT_KIT_CHUNK_SIZE;
use canvault_protocol::chunk;
use canvault_protocol::merkle;
use ic_management_canister_types::{ReadCanisterSnapshotMetadataResult, SnapshotSource};
use ic_stable_structures::VectorMemory;

use crate::error::{CliError, CliResult};
use crate::file_format::{ChunkRecord, SnapshotMeta, SnapshotWriter};
use crate::native_canister;
use crate::progress::ProgressMode;
use crate::verify;

/// Bytes per wasm page: native stable memory is a whole number of pages.
const WASM_PAGE: u64 = 65_536;

/// How an image sits in `stable_memory.bin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// The image is the stable memory.
    Raw,
    /// The image inside the canvault kit's layout (an app canister that embeds the kit).
    Kit,
}

/// What an export or import wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeReport {
    /// The canvault metadata.
    pub meta: SnapshotMeta,
    /// Bytes of `stable_memory.bin`.
    pub stable_memory_bytes: u64,
    /// A whole canister (module, heap, stable memory, chunk store), not a kit image.
    pub whole_canister: bool,
}

fn write_file(path: &Path, bytes: &[u8]) -> CliResult<()> {
    std::fs::write(path, bytes).map_err(|e| CliError::io("write", path, &e))
}

/// The image wrapped in the kit's stable-memory layout.
fn kit_memory(image: &[u8]) -> Vec<u8> {
    let raw = VectorMemory::new(RefCell::new(Vec::new()));
    let mut kit = canvault_kit::Kit::load(Rc::clone(&raw));
    let pages = (image.len() as u64).div_ceil(WASM_PAGE);
    if pages > 0 {
        let grown = kit.image_grow(pages);
        debug_assert!(grown >= 0, "a vector memory grows");
        kit.image_write(0, image);
    }
    drop(kit);
    raw.take()
}

/// The memory manager's header (ic-stable-structures 0.7): magic "MGR", layout version,
/// allocated buckets (u16), bucket size in pages (u16), 32 reserved bytes, then the
/// size in pages of each of its 255 memories (u64 each).
/// The bucket table follows: one byte per bucket naming the memory that owns it, in
/// order, buckets starting at the second wasm page.
const MGR_SIZES_AT: usize = 3 + 1 + 2 + 2 + 32;
const MGR_MEMORIES: usize = 255;
const MGR_BUCKETS_AT: usize = MGR_SIZES_AT + 8 * MGR_MEMORIES;
const MGR_MAX_BUCKETS: usize = 32_768;
/// The memory of the kit's state cell (`canvault_kit::kit`).
const KIT_STATE_MEMORY: u8 = 2;
/// A stable cell's header: magic "SCL", layout version, value length (u32).
const CELL_HEADER_BYTES: u64 = 8;

/// Checks the lengths a kit's stable memory declares against the bytes it has, before
/// the kit reads it: every memory of the memory manager, the state cell's value and
/// the image must fit in the file. Loading trusts these lengths (it allocates them),
/// so a hostile or damaged file would otherwise claim terabytes.
fn check_kit_lengths(bytes: &[u8]) -> Result<(), String> {
    let total = bytes.len() as u64;
    let fits = |pages: u64| pages.checked_mul(WASM_PAGE).is_some_and(|b| b <= total);
    let header = bytes
        .get(..MGR_SIZES_AT + 8 * MGR_MEMORIES)
        .ok_or("its memory manager header is cut short")?;
    if header[3] != 1 {
        return Err(format!(
            "memory manager layout version {} is not supported",
            header[3]
        ));
    }
    if header[6..8] == [0, 0] {
        return Err("its memory manager declares buckets of 0 pages".into());
    }
    for (id, size) in header[MGR_SIZES_AT..].chunks_exact(8).enumerate() {
        let pages = u64::from_le_bytes(size.try_into().expect("8 bytes"));
        if !fits(pages) {
            return Err(format!(
                "its memory {id} claims {pages} pages; the file holds {total} bytes"
            ));
        }
    }
    let table = bytes
        .get(MGR_BUCKETS_AT..MGR_BUCKETS_AT + MGR_MAX_BUCKETS)
        .ok_or("its memory manager's bucket table is cut short")?;
    let bucket_pages = u64::from(u16::from_le_bytes([header[6], header[7]]));
    let state_at = MGR_SIZES_AT + 8 * usize::from(KIT_STATE_MEMORY);
    let state_pages =
        u64::from_le_bytes(header[state_at..state_at + 8].try_into().expect("8 bytes"));
    if state_pages > 0 {
        let first = table
            .iter()
            .position(|m| *m == KIT_STATE_MEMORY)
            .ok_or("its state memory has no bucket")?;
        let at = WASM_PAGE + first as u64 * bucket_pages * WASM_PAGE;
        let head = usize::try_from(at)
            .ok()
            .and_then(|at| bytes.get(at..at + CELL_HEADER_BYTES as usize))
            .ok_or("its state cell lies past the end of the file")?;
        let len = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
        if &head[..3] == b"SCL" && CELL_HEADER_BYTES + len > state_pages * WASM_PAGE {
            return Err(format!(
                "its state cell claims {len} bytes in a memory of {state_pages} pages"
            ));
        }
    }
    Ok(())
}

/// Why a stable memory with a memory manager but no kit state is refused.
const NOT_A_KIT_LAYOUT: &str =
    "it is not the stable memory of a canister that embeds the canvault kit (use --layout raw)";

/// The app image inside a kit's stable memory; a clear error if it is not one.
fn image_in_kit_memory(bytes: Vec<u8>, path: &Path) -> CliResult<Vec<u8>> {
    if bytes.len() < 3 || &bytes[..3] != b"MGR" {
        return Err(CliError::bad_file(
            path,
            "it is not the stable memory of a canister that embeds the canvault kit (no memory manager header); use --layout raw",
        ));
    }
    let total = bytes.len() as u64;
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(move || {
        check_kit_lengths(&bytes)?;
        let kit = canvault_kit::Kit::open(VectorMemory::new(RefCell::new(bytes)))
            .map_err(|e| format!("{NOT_A_KIT_LAYOUT} ({e})"))?;
        let pages = kit.image_pages();
        if pages.checked_mul(WASM_PAGE).is_none_or(|b| b > total) {
            return Err(format!(
                "its kit state claims an image of {pages} pages; the file holds {total} bytes"
            ));
        }
        Ok(kit.image_bytes())
    });
    std::panic::set_hook(previous);
    match result {
        Ok(Ok(image)) if !image.is_empty() => Ok(image),
        Ok(Ok(_)) => Err(CliError::bad_file(
            path,
            "it holds no app image in the kit's layout (is it the stable memory of a canister that embeds the kit? otherwise use --layout raw)",
        )),
        Ok(Err(reason)) if reason.starts_with(NOT_A_KIT_LAYOUT) => {
            Err(CliError::bad_file(path, reason))
        }
        Ok(Err(reason)) => Err(CliError::bad_file(
            path,
            format!("its kit layout does not hold together: {reason}"),
        )),
        Err(_) => Err(CliError::bad_file(
            path,
            "its kit layout does not decode; use --layout raw",
        )),
    }
}

/// Exports the snapshot file `file` into the directory `dir` (created if missing; its
/// snapshot files must not exist yet).
///
/// # Errors
/// The file does not verify; `dir` already holds a snapshot; an I/O failure.
pub fn export(
    file: &Path,
    dir: &Path,
    layout: Layout,
    progress: ProgressMode,
) -> CliResult<NativeReport> {
    let metadata_path = dir.join("metadata.json");
    let stable_path = dir.join("stable_memory.bin");
    if metadata_path.exists() || stable_path.exists() {
        return Err(CliError::Usage(format!(
            "{} already holds a snapshot; choose an empty directory",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| CliError::io("create", dir, &e))?;
    let mut image = Vec::new();
    let report = verify::verify_with(file, progress, |_, bytes| {
        image.extend_from_slice(bytes);
        Ok(())
    })?;
    if let Some(header) = native_canister::header_of(&image, report.meta.chunk_size) {
        let stable_memory_bytes =
            native_canister::export(&image, &header, &report.meta, file, dir)?;
        return Ok(NativeReport {
            meta: report.meta,
            stable_memory_bytes,
            whole_canister: true,
        });
    }
    let padded = (image.len() as u64).div_ceil(WASM_PAGE) * WASM_PAGE;
    image.resize(
        usize::try_from(padded).map_err(|_| CliError::Usage("image too large".into()))?,
        0,
    );
    let stable = match layout {
        Layout::Raw => image,
        Layout::Kit => kit_memory(&image),
    };
    let metadata = ReadCanisterSnapshotMetadataResult {
        source: Some(SnapshotSource::MetadataUpload(Reserved)),
        taken_at_timestamp: report.meta.created_at_ns,
        wasm_module_size: 0,
        globals: Vec::new(),
        wasm_memory_size: 0,
        stable_memory_size: stable.len() as u64,
        wasm_chunk_store: Vec::new(),
        canister_version: 0,
        certified_data: Vec::new(),
        global_timer: None,
        on_low_wasm_memory_hook_status: None,
    };
    let json = serde_json::to_vec_pretty(&metadata).map_err(|e| CliError::Usage(e.to_string()))?;
    write_file(&metadata_path, &json)?;
    write_file(&stable_path, &stable)?;
    let sidecar =
        serde_json::to_vec_pretty(&report.meta).map_err(|e| CliError::Usage(e.to_string()))?;
    write_file(&dir.join("canvault.json"), &sidecar)?;
    Ok(NativeReport {
        meta: report.meta,
        stable_memory_bytes: stable.len() as u64,
        whole_canister: false,
    })
}

/// Reads `metadata.json` of a native snapshot directory.
///
/// # Errors
/// Missing or malformed.
pub fn read_metadata(dir: &Path) -> CliResult<ReadCanisterSnapshotMetadataResult> {
    let path = dir.join("metadata.json");
    let bytes = std::fs::read(&path).map_err(|e| CliError::io("read", &path, &e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| CliError::bad_file(&path, format!("not a snapshot metadata.json: {e}")))
}

/// Imports the native snapshot directory `dir` into the snapshot file `out`, as an
/// image of `source` (default: the source recorded by a canvault export), cut in
/// chunks of `chunk_size` (default: the exported snapshot's, else the kit's default).
///
/// # Errors
/// Missing files, sizes that disagree, no source, `out` exists, an I/O failure.
pub fn import(
    dir: &Path,
    out: &Path,
    source: Option<Principal>,
    layout: Layout,
    chunk_size: Option<u32>,
) -> CliResult<NativeReport> {
    if out.exists() {
        return Err(CliError::Usage(format!(
            "{} already exists; choose another output file",
            out.display()
        )));
    }
    let metadata = read_metadata(dir)?;
    let sidecar: Option<SnapshotMeta> = std::fs::read(dir.join("canvault.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let source = match (source, &sidecar) {
        (Some(s), _) => s,
        (None, Some(m)) => m
            .source_principal()
            .map_err(|e| CliError::bad_file(&dir.join("canvault.json"), e))?,
        (None, None) => {
            return Err(CliError::Usage(
                "a native snapshot does not name its canister: give the source canister with --source".into(),
            ));
        }
    };
    if native_canister::is_whole(&metadata) {
        let meta = native_canister::import(dir, out, source, &metadata, sidecar.as_ref())?;
        return Ok(NativeReport {
            meta,
            stable_memory_bytes: metadata.stable_memory_size,
            whole_canister: true,
        });
    }
    let stable_path = dir.join("stable_memory.bin");
    let mut stable = Vec::new();
    File::open(&stable_path)
        .and_then(|f| BufReader::new(f).read_to_end(&mut stable))
        .map_err(|e| CliError::io("read", &stable_path, &e))?;
    if stable.len() as u64 != metadata.stable_memory_size {
        return Err(CliError::bad_file(
            &stable_path,
            format!(
                "it holds {} bytes; metadata.json says {}",
                stable.len(),
                metadata.stable_memory_size
            ),
        ));
    }
    let stable_memory_bytes = stable.len() as u64;
    let image = match layout {
        Layout::Raw => stable,
        Layout::Kit => image_in_kit_memory(stable, &stable_path)?,
    };
    // The chunk size decides the root: keep the exported snapshot's, else the kit's.
    let chunk_size = chunk_size
        .or(sidecar.as_ref().map(|m| m.chunk_size))
        .unwrap_or(DEFAULT_KIT_CHUNK_SIZE);
    if !chunk::valid_chunk_size(chunk_size) {
        return Err(CliError::Usage(format!(
            "chunk size {chunk_size} is not a multiple of 64 KiB up to 1 MiB"
        )));
    }
    let image_size = image.len() as u64;
    let root = merkle::image_root_of_bytes(&image, chunk_size);
    let meta = SnapshotMeta {
        source: source.to_text(),
        vault: sidecar.as_ref().and_then(|m| m.vault.clone()),
        snapshot_id: sidecar.as_ref().and_then(|m| m.snapshot_id),
        created_at_ns: metadata.taken_at_timestamp,
        label: Some(format!(
            "imported from the native snapshot {}",
            dir.display()
        )),
        image_size,
        chunk_size,
        chunk_count: chunk::chunk_count(image_size, chunk_size),
        root: root.to_hex(),
    };
    let mut writer = SnapshotWriter::create(out, &meta)?;
    for (index, bytes) in (0u32..).zip(image.chunks(chunk_size as usize)) {
        writer.append(&ChunkRecord::of_bytes(index, bytes))?;
    }
    writer.finish()?;
    Ok(NativeReport {
        meta,
        stable_memory_bytes,
        whole_canister: false,
    })
}
