//! The file behind a stable memory kept on disk: one sparse, already unlinked temporary
//! file per memory, accessed with positional reads and writes (`pread`/`pwrite`), so the
//! contents live in the OS page cache rather than in this process's resident memory.
//!
//! Invariants: the file's length is the memory's size in bytes, and bytes never written
//! (holes) read as zeros. The file is unlinked right after it is created, so it disappears
//! when its last handle closes, even if the process is killed.
//!
//! Host I/O failures (a full disk, a vanished directory) are not canister behaviour the
//! harness could model: they panic with the file's directory and the operation.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes copied per read when duplicating a file.
const COPY_BUFFER: usize = 1 << 20;

static NEXT_FILE: AtomicU64 = AtomicU64::new(0);

/// An unlinked sparse file holding the blocks of one stable memory.
#[derive(Debug)]
pub(super) struct BlockFile {
    file: File,
    dir: Arc<PathBuf>,
}

fn fail(dir: &Path, what: &str, err: std::io::Error) -> ! {
    panic!(
        "ic-harness: stable memory file in {}: {what} failed: {err}",
        dir.display()
    )
}

impl BlockFile {
    /// A new empty file in `dir`, already unlinked.
    pub(super) fn create(dir: &Arc<PathBuf>) -> Self {
        let name = format!(
            "ic-harness-stable-{}-{}",
            std::process::id(),
            NEXT_FILE.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap_or_else(|e| fail(dir, "create", e));
        std::fs::remove_file(&path).unwrap_or_else(|e| fail(dir, "unlink", e));
        Self {
            file,
            dir: Arc::clone(dir),
        }
    }

    /// The directory the file was created in.
    pub(super) fn dir(&self) -> &Arc<PathBuf> {
        &self.dir
    }

    /// Fills `dst` from `offset`; the range must lie within the file's length.
    pub(super) fn read(&self, offset: u64, dst: &mut [u8]) {
        self.file
            .read_exact_at(dst, offset)
            .unwrap_or_else(|e| fail(&self.dir, "read", e));
    }

    /// Writes `src` at `offset`; the range must lie within the file's length.
    pub(super) fn write(&self, offset: u64, src: &[u8]) {
        self.file
            .write_all_at(src, offset)
            .unwrap_or_else(|e| fail(&self.dir, "write", e));
    }

    /// Sets the length: growing adds a hole (zeros, no disk space), shrinking drops the tail.
    pub(super) fn set_len(&self, bytes: u64) {
        self.file
            .set_len(bytes)
            .unwrap_or_else(|e| fail(&self.dir, "set_len", e));
    }

    /// A new file in the same directory, `len` bytes long, holding this file's bytes in the
    /// `(offset, len)` ranges of `runs` and holes elsewhere (O(bytes in `runs`)).
    pub(super) fn duplicate(&self, len: u64, runs: impl Iterator<Item = (u64, u64)>) -> Self {
        let copy = Self::create(&self.dir);
        copy.set_len(len);
        let mut buffer = vec![0; COPY_BUFFER];
        for (start, run) in runs {
            let mut done = 0;
            while done < run {
                let n = (run - done).min(COPY_BUFFER as u64) as usize;
                self.read(start + done, &mut buffer[..n]);
                copy.write(start + done, &buffer[..n]);
                done += n as u64;
            }
        }
        copy
    }
}
