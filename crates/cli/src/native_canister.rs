//! Whole-canister snapshots in the platform's snapshot directory, the layout
//! `icp canister snapshot download` writes and `icp canister snapshot upload` reads
//! (dfx uses the same):
//!
//! ```text
//! DIR/
//!   metadata.json          ReadCanisterSnapshotMetadataResult as JSON
//!   wasm_module.bin        the module
//!   wasm_memory.bin        the heap
//!   stable_memory.bin      stable memory (absent when empty)
//!   wasm_chunk_store/      one <hex sha256>.bin per chunk-store chunk
//!   canvault.json          canvault's own header (source, vault, snapshot, root)
//! ```
//!
//! A whole-canister image (`canvault_protocol::canister_image`) carries every part and,
//! in its header chunk, the metadata exactly as the platform returned it, so an export
//! is the native snapshot byte for byte, and an import rebuilds the very image (and
//! root) the vault would have stored.

use std::path::Path;

use candid::Principal;
use canvault_protocol::canister_image::{
    CANISTER_IMAGE_CHUNK_SIZE, CanisterImageHeader, CanisterImageLayout, Part,
};
use canvault_protocol::{chunk, merkle};
use ic_management_canister_types::{ChunkHash, ReadCanisterSnapshotMetadataResult};
use sha2::{Digest, Sha256};

use crate::error::{CliError, CliResult};
use crate::file_format::{ChunkRecord, SnapshotMeta, SnapshotWriter};

/// The header of `image` if it is a whole-canister image: 1 MiB chunks, a last chunk
/// that decodes as a header whose layout has exactly this size.
#[must_use]
pub fn header_of(image: &[u8], chunk_size: u32) -> Option<CanisterImageHeader> {
    let size = CANISTER_IMAGE_CHUNK_SIZE as usize;
    if chunk_size != CANISTER_IMAGE_CHUNK_SIZE || image.len() < size {
        return None;
    }
    header_in_last_chunk(&image[image.len() - size..], image.len() as u64)
}

/// The header if `last`, the last chunk of an image of `image_size` bytes, is the header
/// chunk of a whole-canister image of that size.
#[must_use]
pub fn header_in_last_chunk(last: &[u8], image_size: u64) -> Option<CanisterImageHeader> {
    let header = CanisterImageHeader::from_chunk(last).ok()?;
    (header.layout.image_size() == image_size
        && header.wasm_chunk_lengths.len() == header.layout.wasm_chunks as usize)
        .then_some(header)
}

/// The parts of a whole-canister image.
struct Parts {
    module: Vec<u8>,
    heap: Vec<u8>,
    stable: Vec<u8>,
    chunks: Vec<Vec<u8>>,
}

fn split(image: &[u8], header: &CanisterImageHeader) -> Result<Parts, String> {
    let size = u64::from(CANISTER_IMAGE_CHUNK_SIZE);
    let mut parts = Parts {
        module: Vec::new(),
        heap: Vec::new(),
        stable: Vec::new(),
        chunks: Vec::new(),
    };
    for index in 0..header.layout.header_index() {
        let piece = header.layout.piece(index).ok_or("the layout ends early")?;
        let at = usize::try_from(index * size).map_err(|_| "image too large")?;
        let take = |len: u64| -> Result<&[u8], String> {
            let len = usize::try_from(len).map_err(|_| "part too large")?;
            image
                .get(at..at + len)
                .ok_or_else(|| "a part runs past the image".to_string())
        };
        match piece.part {
            Part::WasmModule => parts.module.extend_from_slice(take(piece.len)?),
            Part::WasmMemory => parts.heap.extend_from_slice(take(piece.len)?),
            Part::StableMemory => parts.stable.extend_from_slice(take(piece.len)?),
            Part::WasmChunk(n) => {
                let len = header
                    .wasm_chunk_lengths
                    .get(n as usize)
                    .ok_or("a chunk-store chunk has no length")?;
                if u64::from(*len) > size {
                    return Err(format!("chunk-store chunk {n} claims {len} bytes"));
                }
                parts.chunks.push(take(u64::from(*len))?.to_vec());
            }
            Part::Header => return Err("a header before the end".into()),
        }
    }
    Ok(parts)
}

fn write(path: &Path, bytes: &[u8]) -> CliResult<()> {
    std::fs::write(path, bytes).map_err(|e| CliError::io("write", path, &e))
}

fn read(path: &Path) -> CliResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| CliError::io("read", path, &e))
}

/// The metadata a header carries, checked against the parts it describes.
fn metadata_of(
    header: &CanisterImageHeader,
    parts: &Parts,
) -> Result<ReadCanisterSnapshotMetadataResult, String> {
    let m: ReadCanisterSnapshotMetadataResult =
        canvault_protocol::decode::decode_one(&header.metadata)
            .map_err(|e| format!("its snapshot metadata does not decode: {e}"))?;
    let sizes = (m.wasm_module_size, m.wasm_memory_size, m.stable_memory_size);
    let actual = (
        parts.module.len() as u64,
        parts.heap.len() as u64,
        parts.stable.len() as u64,
    );
    if sizes != actual || m.wasm_chunk_store.len() != parts.chunks.len() {
        return Err(format!(
            "its metadata (module, heap, stable sizes {sizes:?}, {} chunks) disagrees with its parts ({actual:?}, {} chunks)",
            m.wasm_chunk_store.len(),
            parts.chunks.len()
        ));
    }
    for (n, (listed, bytes)) in m.wasm_chunk_store.iter().zip(&parts.chunks).enumerate() {
        if listed.hash != Sha256::digest(bytes).as_slice() {
            return Err(format!(
                "chunk-store chunk {n} does not hash to its listed hash"
            ));
        }
    }
    Ok(m)
}

/// Writes the whole-canister `image` (verified by the caller, header `header`) into
/// the empty directory `dir`. Returns the stable memory's size.
///
/// # Errors
/// The parts disagree with the metadata; an I/O failure.
pub fn export(
    image: &[u8],
    header: &CanisterImageHeader,
    meta: &SnapshotMeta,
    file: &Path,
    dir: &Path,
) -> CliResult<u64> {
    let bad = |why: String| CliError::bad_file(file, why);
    let parts = split(image, header).map_err(bad)?;
    let metadata = metadata_of(header, &parts).map_err(bad)?;
    for name in ["metadata.json", "wasm_module.bin", "wasm_chunk_store"] {
        if dir.join(name).exists() {
            return Err(CliError::Usage(format!(
                "{} already holds a snapshot; choose an empty directory",
                dir.display()
            )));
        }
    }
    let store = dir.join("wasm_chunk_store");
    std::fs::create_dir_all(&store).map_err(|e| CliError::io("create", &store, &e))?;
    write(&dir.join("metadata.json"), &json(&metadata)?)?;
    write(&dir.join("wasm_module.bin"), &parts.module)?;
    write(&dir.join("wasm_memory.bin"), &parts.heap)?;
    if !parts.stable.is_empty() {
        write(&dir.join("stable_memory.bin"), &parts.stable)?;
    }
    for bytes in &parts.chunks {
        let name = format!("{}.bin", hex::encode(Sha256::digest(bytes)));
        write(&store.join(name), bytes)?;
    }
    write(&dir.join("canvault.json"), &json(meta)?)?;
    Ok(parts.stable.len() as u64)
}

/// Pretty JSON.
fn json<T: serde::Serialize>(value: &T) -> CliResult<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|e| CliError::Usage(e.to_string()))
}

/// True if `metadata` describes a whole canister (a module is part of it).
#[must_use]
pub fn is_whole(metadata: &ReadCanisterSnapshotMetadataResult) -> bool {
    metadata.wasm_module_size > 0
}

/// Reads a whole native snapshot directory into a whole-canister image of `source`,
/// written to the snapshot file `out`.
///
/// # Errors
/// Missing files, sizes or hashes that disagree with `metadata.json`, an I/O failure.
pub fn import(
    dir: &Path,
    out: &Path,
    source: Principal,
    metadata: &ReadCanisterSnapshotMetadataResult,
    sidecar: Option<&SnapshotMeta>,
) -> CliResult<SnapshotMeta> {
    let sized = |name: &str, expected: u64| -> CliResult<Vec<u8>> {
        let path = dir.join(name);
        let bytes = if expected == 0 && !path.exists() {
            Vec::new()
        } else {
            read(&path)?
        };
        if bytes.len() as u64 != expected {
            return Err(CliError::bad_file(
                &path,
                format!(
                    "it holds {} bytes; metadata.json says {expected}",
                    bytes.len()
                ),
            ));
        }
        Ok(bytes)
    };
    let module = sized("wasm_module.bin", metadata.wasm_module_size)?;
    let heap = sized("wasm_memory.bin", metadata.wasm_memory_size)?;
    let stable = sized("stable_memory.bin", metadata.stable_memory_size)?;
    let mut chunks = Vec::new();
    for ChunkHash { hash } in &metadata.wasm_chunk_store {
        let path = dir
            .join("wasm_chunk_store")
            .join(format!("{}.bin", hex::encode(hash)));
        let bytes = read(&path)?;
        if Sha256::digest(&bytes).as_slice() != hash.as_slice()
            || bytes.len() > CANISTER_IMAGE_CHUNK_SIZE as usize
        {
            return Err(CliError::bad_file(
                &path,
                "it does not hash to its name, or is larger than 1 MiB",
            ));
        }
        chunks.push(bytes);
    }
    let layout = CanisterImageLayout {
        wasm_module_bytes: module.len() as u64,
        wasm_memory_bytes: heap.len() as u64,
        stable_memory_bytes: stable.len() as u64,
        wasm_chunks: u32::try_from(chunks.len())
            .map_err(|_| CliError::Usage("too many chunk-store chunks".into()))?,
    };
    let header = CanisterImageHeader {
        source,
        layout: layout.clone(),
        wasm_chunk_lengths: chunks.iter().map(|c| c.len() as u32).collect(),
        metadata: serde_bytes::ByteBuf::from(
            candid::encode_one(metadata).map_err(|e| CliError::Usage(e.to_string()))?,
        ),
    };
    let header_chunk = header
        .to_chunk()
        .map_err(|e| CliError::bad_file(&dir.join("metadata.json"), e.to_string()))?;
    let size = CANISTER_IMAGE_CHUNK_SIZE as usize;
    let mut image = Vec::with_capacity(usize::try_from(layout.image_size()).unwrap_or(0));
    for part in [&module, &heap, &stable] {
        image.extend_from_slice(part);
        image.resize(image.len().div_ceil(size) * size, 0);
    }
    for c in &chunks {
        image.extend_from_slice(c);
        image.resize(image.len().div_ceil(size) * size, 0);
    }
    image.extend_from_slice(&header_chunk);
    debug_assert_eq!(image.len() as u64, layout.image_size());
    if out.exists() {
        return Err(CliError::Usage(format!(
            "{} already exists; choose another output file",
            out.display()
        )));
    }
    let image_size = image.len() as u64;
    let chunk_size = CANISTER_IMAGE_CHUNK_SIZE;
    let meta = SnapshotMeta {
        source: source.to_text(),
        vault: sidecar.and_then(|m| m.vault.clone()),
        snapshot_id: sidecar.and_then(|m| m.snapshot_id),
        created_at_ns: metadata.taken_at_timestamp,
        label: Some(format!(
            "whole canister imported from the native snapshot {}",
            dir.display()
        )),
        image_size,
        chunk_size,
        chunk_count: chunk::chunk_count(image_size, chunk_size),
        root: merkle::image_root_of_bytes(&image, chunk_size).to_hex(),
    };
    let mut writer = SnapshotWriter::create(out, &meta)?;
    for (index, bytes) in (0u32..).zip(image.chunks(size)) {
        writer.append(&ChunkRecord::of_bytes(index, bytes))?;
    }
    writer.finish()?;
    Ok(meta)
}
