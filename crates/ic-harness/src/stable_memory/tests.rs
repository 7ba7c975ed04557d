//! Unit tests and a model-based proptest for the journaled stable memory.

use proptest::prelude::*;

use super::*;

const PAGE: u64 = WASM_PAGE_BYTES;

/// A fresh directory for disk-mode memories, removed by the caller's `TempDir` drop.
fn disk_dir() -> (tempfile::TempDir, StableStorage) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let storage = StableStorage::disk(dir.path());
    (dir, storage)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

#[test]
fn new_memory_is_empty() {
    let mut m = StableMemory::new();
    assert_eq!(
        (m.size_pages(), m.size_bytes(), m.allocated_bytes()),
        (0, 0, 0)
    );
    assert!(m.to_vec().is_empty());
    m.read(0, &mut []).unwrap();
    m.write(0, &[]).unwrap();
    assert_eq!(
        m.read(0, &mut [0]),
        Err(OutOfBounds {
            offset: 0,
            size: 1,
            size_bytes: 0
        })
    );
}

#[test]
fn bounds_are_checked_including_overflow() {
    let mut m = StableMemory::new();
    assert_eq!(m.grow(1, 10), Some(0));
    m.write(PAGE - 1, &[7]).unwrap();
    m.read(PAGE, &mut []).unwrap();
    let err = m.write(PAGE - 1, &[1, 2]).unwrap_err();
    assert_eq!(
        err,
        OutOfBounds {
            offset: PAGE - 1,
            size: 2,
            size_bytes: PAGE
        }
    );
    assert!(err.to_string().contains("out of bounds"));
    assert!(m.read(PAGE + 1, &mut []).is_err());
    assert!(m.read(u64::MAX, &mut [0; 2]).is_err());
    assert!(m.write(u64::MAX - 1, &[0; 4]).is_err());
    // A failed write changes nothing.
    let mut b = [0u8; 1];
    m.read(PAGE - 1, &mut b).unwrap();
    assert_eq!(b, [7]);
}

#[test]
fn grow_respects_the_limit() {
    let mut m = StableMemory::new();
    assert_eq!(m.grow(3, 2), None);
    assert_eq!(m.size_pages(), 0);
    assert_eq!(m.grow(2, 2), Some(0));
    assert_eq!(m.grow(1, 2), None);
    assert_eq!(m.grow(0, 2), Some(2));
    assert_eq!(m.grow(u64::MAX, u64::MAX), None);
    assert_eq!(m.grow(MAX_STABLE_PAGES, u64::MAX), None);
    assert_eq!(m.size_pages(), 2);
    assert_eq!(MAX_STABLE_PAGES, 8_192_000);
}

#[test]
fn reads_and_writes_cross_block_and_chunk_boundaries() {
    let mut m = StableMemory::new();
    m.grow(4, 100).unwrap();
    let data = pattern(3 * BLOCK + 123, 5);
    let offset = BLOCK_BYTES * CHUNK_BLOCKS as u64 - 1000;
    m.write(offset, &data).unwrap();
    let mut back = vec![0; data.len()];
    m.read(offset, &mut back).unwrap();
    assert_eq!(back, data);
    // A read spanning absent blocks, present blocks and the end of the memory.
    let mut all = vec![0xaa; m.size_bytes() as usize];
    m.read(0, &mut all).unwrap();
    let mut expected = vec![0; m.size_bytes() as usize];
    expected[offset as usize..offset as usize + data.len()].copy_from_slice(&data);
    assert_eq!(all, expected);
    assert_eq!(m.to_vec(), expected);
    // 1000 bytes in the last block of chunk 0, then 11_411 bytes over three more blocks.
    assert_eq!(m.allocated_bytes(), 4 * BLOCK_BYTES);
}

#[test]
fn zero_writes_into_absent_blocks_allocate_nothing() {
    let mut m = StableMemory::new();
    m.grow(2, 2).unwrap();
    m.begin();
    m.write(10, &vec![0; 3 * BLOCK]).unwrap();
    assert_eq!(m.allocated_bytes(), 0);
    assert_eq!(m.commit(), 0);
    m.write(0, &[1]).unwrap();
    m.write(1, &[0; 10]).unwrap();
    assert_eq!(m.allocated_bytes(), BLOCK_BYTES);
}

#[test]
fn from_bytes_pads_to_whole_pages() {
    let data = pattern(PAGE as usize + 5, 1);
    let m = StableMemory::from_bytes(&data);
    assert_eq!(m.size_pages(), 2);
    let v = m.to_vec();
    assert_eq!(v.len(), 2 * PAGE as usize);
    assert_eq!(&v[..data.len()], &data[..]);
    assert!(v[data.len()..].iter().all(|&b| b == 0));
    assert_eq!(StableMemory::from_bytes(&[]).size_pages(), 0);
    assert_eq!(StableMemory::from_bytes(&[0; 100]).allocated_bytes(), 0);
}

#[test]
fn rollback_restores_content_and_size() {
    let mut m = StableMemory::from_bytes(&pattern(PAGE as usize, 3));
    let before = m.to_vec();
    let allocated = m.allocated_bytes();
    m.begin();
    m.write(100, &[0; 5000]).unwrap();
    m.write(200, &[9; 10]).unwrap();
    assert_eq!(m.grow(3, 10), Some(1));
    m.write(3 * PAGE, &pattern(100, 7)).unwrap();
    assert_eq!(m.journaled_bytes(), 3 * BLOCK_BYTES);
    m.rollback();
    assert!(!m.in_transaction());
    assert_eq!(m.size_pages(), 1);
    assert_eq!(m.to_vec(), before);
    assert_eq!(m.allocated_bytes(), allocated);
    // Pages grown again after the rollback read as zeros.
    m.grow(3, 10).unwrap();
    let mut b = vec![1; 100];
    m.read(3 * PAGE, &mut b).unwrap();
    assert!(b.iter().all(|&x| x == 0));
}

#[test]
fn commit_keeps_changes_and_reports_journaled_bytes() {
    let mut m = StableMemory::new();
    m.grow(1, 1).unwrap();
    m.write(0, &[1; 10]).unwrap(); // outside a transaction: no journal
    m.begin();
    m.write(0, &[2; 10]).unwrap();
    m.write(5, &[3; 10]).unwrap(); // same block: journaled once
    m.write(BLOCK_BYTES, &[4]).unwrap();
    assert_eq!(m.commit(), 2 * BLOCK_BYTES);
    m.begin();
    m.rollback();
    let mut b = [0; 16];
    m.read(0, &mut b).unwrap();
    assert_eq!(&b[..15], &[2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]);
}

#[test]
#[should_panic(expected = "already open")]
fn begin_twice_panics() {
    let mut m = StableMemory::new();
    m.begin();
    m.begin();
}

#[test]
#[should_panic(expected = "without begin")]
fn rollback_without_begin_panics() {
    StableMemory::new().rollback();
}

#[test]
fn journaling_survives_epoch_wraparound() {
    let mut m = StableMemory::from_bytes(&[1; 100]);
    m.epoch = u32::MAX - 2;
    for round in 0..6u8 {
        m.begin();
        m.write(0, &[round + 10; 50]).unwrap();
        if round % 2 == 0 {
            m.commit();
        } else {
            m.rollback();
        }
    }
    // Rounds 0, 2 and 4 committed; the last committed value is 14.
    let mut b = [0; 100];
    m.read(0, &mut b).unwrap();
    assert_eq!(&b[..50], &[14; 50]);
    assert_eq!(&b[50..], &[1; 50]);
    assert!(m.epoch > 0 && m.epoch < 10);
}

#[test]
fn large_sparse_memory_stays_cheap() {
    let mut m = StableMemory::new();
    let gib_pages = (1 << 30) / PAGE;
    m.grow(gib_pages, MAX_STABLE_PAGES).unwrap();
    m.begin();
    m.write((1 << 30) - 3, &[1, 2, 3]).unwrap();
    assert_eq!(m.allocated_bytes(), BLOCK_BYTES);
    m.rollback();
    assert_eq!(m.allocated_bytes(), 0);
    assert_eq!(m.size_pages(), gib_pages);
    let dbg = format!("{m:?}");
    assert!(dbg.contains("size_pages: 16384"), "{dbg}");
}

#[test]
fn clone_is_independent() {
    let mut a = StableMemory::from_bytes(&[5; 10]);
    let b = a.clone();
    a.write(0, &[6]).unwrap();
    assert_eq!(b.to_vec()[0], 5);
    assert_eq!(a.to_vec()[0], 6);
}

#[test]
fn disk_files_are_unlinked_and_independent() {
    let (dir, disk) = disk_dir();
    let mut a = StableMemory::from_bytes_in(&disk, &pattern(3 * BLOCK + 5, 9));
    assert_eq!(a.storage(), disk);
    // The file exists only as an open handle: nothing is left in the directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let b = a.clone();
    a.write(1, &[0; 10]).unwrap();
    assert_eq!(b.to_vec()[..3 * BLOCK + 5], pattern(3 * BLOCK + 5, 9)[..]);
    assert_eq!(a.to_vec()[1..11], [0; 10]);
    let empty = a.empty_like();
    assert_eq!((empty.storage(), empty.size_bytes()), (disk.clone(), 0));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn disk_rollback_restores_content_size_and_allocation() {
    let (_dir, disk) = disk_dir();
    let mut m = StableMemory::from_bytes_in(&disk, &[7; 100]);
    m.begin();
    assert_eq!(m.grow(2, 10), Some(1));
    m.write(50, &pattern(2 * BLOCK, 3)).unwrap();
    m.write(2 * PAGE + 1, &[9]).unwrap();
    assert_eq!(m.allocated_bytes(), 4 * BLOCK_BYTES);
    m.rollback();
    assert_eq!(m.size_pages(), 1);
    assert_eq!(m.allocated_bytes(), BLOCK_BYTES);
    let mut expected = vec![7; 100];
    expected.resize(PAGE as usize, 0);
    assert_eq!(m.to_vec(), expected);
    // Regrown pages read as zeros again (the file was truncated).
    m.grow(2, 10).unwrap();
    let mut b = [1u8; 2];
    m.read(2 * PAGE, &mut b).unwrap();
    assert_eq!(b, [0, 0]);
}

/// Operations of the model test; offsets and lengths are chosen to hit block and chunk edges.
#[derive(Debug, Clone)]
enum Op {
    Begin,
    Commit,
    Rollback,
    Write { offset: u64, data: Vec<u8> },
    Zeros { offset: u64, len: usize },
    Read { offset: u64, len: usize },
    Grow { pages: u64, max: u64 },
}

const MODEL_MAX_PAGES: u64 = 5;

fn op() -> impl Strategy<Value = Op> {
    let offset = prop_oneof![
        0..MODEL_MAX_PAGES * PAGE + 10,
        (0..MODEL_MAX_PAGES * 16 + 1, -3i64..4)
            .prop_map(|(b, d)| (b * BLOCK_BYTES).saturating_add_signed(d)),
    ];
    prop_oneof![
        2 => Just(Op::Begin),
        1 => Just(Op::Commit),
        1 => Just(Op::Rollback),
        6 => (offset.clone(), prop::collection::vec(any::<u8>(), 0..3 * BLOCK))
            .prop_map(|(offset, data)| Op::Write { offset, data }),
        2 => (offset.clone(), 0..2 * BLOCK).prop_map(|(offset, len)| Op::Zeros { offset, len }),
        2 => (offset, 0..3 * BLOCK).prop_map(|(offset, len)| Op::Read { offset, len }),
        2 => (0..3u64, 0..MODEL_MAX_PAGES + 1).prop_map(|(pages, max)| Op::Grow { pages, max }),
    ]
}

fn nonzero_blocks(bytes: &[u8]) -> u64 {
    bytes
        .chunks(BLOCK)
        .filter(|b| b.iter().any(|&x| x != 0))
        .count() as u64
}

/// Blocks whose content differs between `old` and `new` (`old` may be shorter).
fn changed_blocks(old: &[u8], new: &[u8]) -> u64 {
    new.chunks(BLOCK)
        .enumerate()
        .filter(|(i, block)| match old.get(i * BLOCK..(i + 1) * BLOCK) {
            Some(before) => before != *block,
            None => block.iter().any(|&x| x != 0),
        })
        .count() as u64
}

proptest! {
    #[test]
    fn matches_a_plain_vec_model(ops in prop::collection::vec(op(), 1..60)) {
        let (_dir, disk) = disk_dir();
        // RAM and disk storage in lockstep: every answer must be the model's and each other's.
        let mut m = StableMemory::new();
        let mut d = StableMemory::new_in(&disk);
        let mut model: Vec<u8> = Vec::new();
        let mut snapshot: Option<Vec<u8>> = None;
        let mut written_blocks = std::collections::BTreeSet::new();
        for op in ops {
            match op {
                Op::Begin => if snapshot.is_none() {
                    m.begin();
                    d.begin();
                    snapshot = Some(model.clone());
                    written_blocks.clear();
                },
                Op::Commit => if let Some(old) = snapshot.take() {
                    let bytes = m.commit();
                    prop_assert_eq!(d.commit(), bytes);
                    prop_assert_eq!(bytes % BLOCK_BYTES, 0);
                    prop_assert!(bytes <= written_blocks.len() as u64 * BLOCK_BYTES);
                    prop_assert!(bytes >= changed_blocks(&old, &model) * BLOCK_BYTES);
                },
                Op::Rollback => if let Some(old) = snapshot.take() {
                    m.rollback();
                    d.rollback();
                    model = old;
                },
                Op::Write { offset, data } => {
                    let end = offset as usize + data.len();
                    let result = m.write(offset, &data);
                    prop_assert_eq!(d.write(offset, &data), result);
                    prop_assert_eq!(result.is_ok(), end <= model.len());
                    if end <= model.len() {
                        model[offset as usize..end].copy_from_slice(&data);
                        written_blocks.extend(
                            (offset / BLOCK_BYTES..(end as u64).div_ceil(BLOCK_BYTES)).map(|b| b as usize),
                        );
                    }
                }
                Op::Zeros { offset, len } => {
                    let end = offset as usize + len;
                    let result = m.write(offset, &vec![0; len]);
                    prop_assert_eq!(d.write(offset, &vec![0; len]), result);
                    prop_assert_eq!(result.is_ok(), end <= model.len());
                    if end <= model.len() {
                        model[offset as usize..end].fill(0);
                        written_blocks.extend(
                            (offset / BLOCK_BYTES..(end as u64).div_ceil(BLOCK_BYTES)).map(|b| b as usize),
                        );
                    }
                }
                Op::Read { offset, len } => {
                    let mut buf = vec![0xee; len];
                    let result = m.read(offset, &mut buf);
                    let mut from_disk = vec![0xdd; len];
                    prop_assert_eq!(d.read(offset, &mut from_disk), result);
                    if result.is_ok() {
                        prop_assert_eq!(&from_disk, &buf);
                    }
                    let end = offset as usize + len;
                    prop_assert_eq!(result.is_ok(), end <= model.len());
                    if end <= model.len() {
                        prop_assert_eq!(&buf[..], &model[offset as usize..end]);
                    } else {
                        prop_assert_eq!(result, Err(OutOfBounds {
                            offset, size: len as u64, size_bytes: model.len() as u64,
                        }));
                    }
                }
                Op::Grow { pages, max } => {
                    let old = model.len() as u64 / PAGE;
                    let expected = (old + pages <= max).then_some(old);
                    prop_assert_eq!(m.grow(pages, max), expected);
                    prop_assert_eq!(d.grow(pages, max), expected);
                    if expected.is_some() {
                        model.resize(((old + pages) * PAGE) as usize, 0);
                    }
                }
            }
            prop_assert_eq!(m.size_bytes(), model.len() as u64);
            prop_assert_eq!(m.in_transaction(), snapshot.is_some());
            prop_assert!(m.allocated_bytes() >= nonzero_blocks(&model) * BLOCK_BYTES);
            prop_assert!(m.allocated_bytes() <= m.size_bytes());
            prop_assert!(m.to_vec() == model, "content differs from the model");
            prop_assert_eq!(d.size_bytes(), m.size_bytes());
            prop_assert_eq!(d.in_transaction(), m.in_transaction());
            prop_assert_eq!(d.journaled_bytes(), m.journaled_bytes());
            prop_assert_eq!(d.allocated_bytes(), m.allocated_bytes());
            prop_assert!(d.to_vec() == model, "disk content differs from the model");
        }
        // A copy (what a snapshot takes) holds the same content in its own file.
        if !d.in_transaction() {
            let copy = d.clone();
            prop_assert!(copy.to_vec() == model);
            prop_assert_eq!(copy.allocated_bytes(), d.allocated_bytes());
        }
    }
}
