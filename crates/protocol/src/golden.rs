//! Golden files of persistent formats, checked byte for byte (the `golden` feature, for
//! tests only: the vault, kit and factory layouts and the CLI's snapshot file).
//!
//! A test replays a fixed history, takes the bytes it wrote (a raw stable memory, a
//! file) and calls [`assert_golden`] with the gzipped golden file committed beside the
//! crate. A difference means the format changed: the writer bumps its generation or
//! version, adds the migration (or keeps reading the old format), and regenerates the
//! file with `CANVAULT_UPDATE_GOLDEN=1`, which makes [`assert_golden`] write instead of
//! compare.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

/// The variable that makes [`assert_golden`] (re)write golden files.
pub const UPDATE_VAR: &str = "CANVAULT_UPDATE_GOLDEN";

/// The bytes of the gzipped golden file at `path`.
///
/// # Panics
/// If the file is missing or not gzip.
#[must_use]
pub fn read_golden(path: &str) -> Vec<u8> {
    let gz = std::fs::read(path).unwrap_or_else(|e| panic!("golden file {path}: {e}"));
    let mut bytes = Vec::new();
    GzDecoder::new(gz.as_slice())
        .read_to_end(&mut bytes)
        .unwrap_or_else(|e| panic!("golden file {path} is not gzip: {e}"));
    bytes
}

/// Writes `bytes` gzipped to `path`.
///
/// # Panics
/// If the file cannot be written.
pub fn write_golden(path: &str, bytes: &[u8]) {
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(bytes).expect("gzip into memory");
    std::fs::write(path, gz.finish().expect("gzip into memory"))
        .unwrap_or_else(|e| panic!("writing golden file {path}: {e}"));
}

/// The first offset at which `a` and `b` differ (the shorter length if one is a prefix
/// of the other), `None` if they are equal.
#[must_use]
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    Some(
        a.iter()
            .zip(b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len())),
    )
}

/// Checks that `actual` equals the gzipped golden file at `path`; with
/// `CANVAULT_UPDATE_GOLDEN` set, writes `actual` there instead.
///
/// # Panics
/// On a difference, naming `what` changed, the first differing byte, both sizes, and
/// `remedy` (what to do before regenerating).
pub fn assert_golden(path: &str, actual: &[u8], what: &str, remedy: &str) {
    if std::env::var_os(UPDATE_VAR).is_some() {
        write_golden(path, actual);
        return;
    }
    let golden = read_golden(path);
    if let Some(first) = first_difference(actual, &golden) {
        panic!(
            "{what} changed (first difference at byte {first}; {} bytes now, {} in {path}): \
             {remedy}, then regenerate with {UPDATE_VAR}=1",
            actual.len(),
            golden.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_find_the_first_difference() {
        assert_eq!(first_difference(b"abc", b"abc"), None);
        assert_eq!(first_difference(b"abc", b"abd"), Some(2));
        assert_eq!(first_difference(b"ab", b"abc"), Some(2));
        assert_eq!(first_difference(b"", b"x"), Some(0));
    }

    #[test]
    fn should_round_trip_through_gzip() {
        let dir = std::env::temp_dir().join(format!("canvault-golden-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("g.bin.gz");
        let path = path.to_str().unwrap();
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        write_golden(path, &bytes);
        assert_eq!(read_golden(path), bytes);
        assert_golden(path, &bytes, "the test bytes", "nothing");
        let mut other = bytes.clone();
        other[77_777] ^= 1;
        let err = std::panic::catch_unwind(|| {
            assert_golden(path, &other, "the test bytes", "nothing");
        })
        .expect_err("a difference panics");
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("first difference at byte 77777"), "{msg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
