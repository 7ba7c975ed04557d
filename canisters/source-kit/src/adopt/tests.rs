//! Adoption on in-memory stable memory: raw and `MemoryManager` app layouts become the
//! kit's image byte for byte; the move never loses a byte at any interruption point.

use std::cell::RefCell;
use std::rc::Rc;

use ic_stable_structures::memory_manager::{MemoryId, MemoryManager};
use ic_stable_structures::{Memory, StableBTreeMap, StableCell, VectorMemory};
use proptest::prelude::*;

use super::*;
use crate::kit::{Kit, WASM_PAGE};

fn memory() -> VectorMemory {
    Rc::new(RefCell::new(Vec::new()))
}

fn bytes(m: &VectorMemory) -> Vec<u8> {
    m.borrow().clone()
}

/// Fills `n` bytes with a pattern that differs per offset and seed.
fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn raw_app(pages: u64, seed: u64) -> VectorMemory {
    let m = memory();
    m.grow(pages);
    m.write(0, &pattern((pages * PAGE) as usize, seed));
    m
}

/// An app that used its own memory manager: a map in memory 0, raw bytes in memory 1,
/// and a `StableCell` in memory 2 (where the kit keeps its state cell).
fn managed_app(entries: u64, blob_pages: u64, seed: u64) -> VectorMemory {
    let raw = memory();
    let mm = MemoryManager::init(raw.clone());
    let mut map: StableBTreeMap<u64, Vec<u8>, _> = StableBTreeMap::init(mm.get(MemoryId::new(0)));
    let blob = mm.get(MemoryId::new(1));
    let _cell = StableCell::init(mm.get(MemoryId::new(2)), 42u64);
    for i in 0..entries {
        map.insert(i, pattern(3000, seed ^ i));
        if i % 7 == 0 && blob.size() < blob_pages {
            blob.grow(1);
            let at = (blob.size() - 1) * PAGE;
            blob.write(at, &pattern(PAGE as usize, seed + i));
        }
    }
    raw
}

fn adopt(raw: &VectorMemory) -> (Kit<VectorMemory>, Adoption) {
    Kit::load_or_adopt(raw.clone()).expect("adoptable")
}

#[test]
fn classify_tells_fresh_kit_and_foreign_apart() {
    assert_eq!(classify(&memory(), MemoryId::new(2)), Layout::Empty);
    assert_eq!(classify(&raw_app(3, 1), MemoryId::new(2)), Layout::Foreign);
    // An app memory manager with a StableCell in memory 2 is not the kit.
    assert_eq!(
        classify(&managed_app(20, 2, 1), MemoryId::new(2)),
        Layout::Foreign
    );
    let kit_raw = memory();
    let mut kit = Kit::load(kit_raw.clone());
    kit.image_grow(1);
    assert_eq!(classify(&kit_raw, MemoryId::new(2)), Layout::Kit);
}

#[test]
fn raw_memory_becomes_the_image_byte_for_byte() {
    let raw = raw_app(200, 7);
    let old = bytes(&raw);
    let (kit, outcome) = adopt(&raw);
    assert_eq!(
        outcome,
        Adoption::Adopted {
            bytes: 200 * PAGE,
            raw_bytes_after: raw.size() * PAGE,
        }
    );
    assert_eq!(kit.image_pages(), 200);
    assert!(
        kit.image_bytes() == old,
        "image differs from the old memory"
    );
    assert!(kit.foreign_stable_memory().is_none());
    // Peak: the image, one header page, bucket rounding and the kit's own buckets.
    let kit_buckets = 12 * 128 * PAGE;
    assert!(raw.size() * PAGE <= old.len() as u64 + PAGE + 128 * PAGE + kit_buckets);
}

#[test]
fn an_app_memory_manager_reopens_unchanged_on_the_image() {
    let raw = managed_app(300, 20, 3);
    let old = bytes(&raw);
    let (kit, _) = adopt(&raw);
    assert!(
        kit.image_bytes() == old,
        "image differs from the old memory"
    );
    // The app's structures re-open on the image, as they would on canvault_kit::memory().
    let image = memory();
    image.grow(kit.image_pages());
    image.write(0, &kit.image_bytes());
    let mm = MemoryManager::init(image);
    let map: StableBTreeMap<u64, Vec<u8>, _> = StableBTreeMap::init(mm.get(MemoryId::new(0)));
    assert_eq!(map.len(), 300);
    for i in [0u64, 1, 150, 299] {
        assert!(
            map.get(&i) == Some(pattern(3000, 3 ^ i)),
            "entry {i} differs"
        );
    }
    let cell: StableCell<u64, _> = StableCell::init(mm.get(MemoryId::new(2)), 0);
    assert_eq!(*cell.get(), 42);
}

#[test]
fn a_second_adopting_upgrade_is_a_normal_one_and_writes_go_to_the_image() {
    let raw = raw_app(5, 9);
    let old = bytes(&raw);
    let (mut kit, _) = adopt(&raw);
    kit.image_write(10, b"after");
    kit.image_grow(3);
    drop(kit);
    let (kit, outcome) = adopt(&raw);
    assert_eq!(outcome, Adoption::AlreadyKit);
    let image = kit.image_bytes();
    assert_eq!(image.len() as u64, 8 * WASM_PAGE);
    assert_eq!(&image[10..15], b"after");
    assert!(
        image[15..old.len()] == old[15..],
        "the rest of the old bytes"
    );
    assert!(
        image[old.len()..].iter().all(|b| *b == 0),
        "grown pages are zero"
    );
}

#[test]
fn fresh_memory_is_a_normal_init() {
    let raw = memory();
    let (kit, outcome) = adopt(&raw);
    assert_eq!(outcome, Adoption::Fresh);
    assert_eq!(kit.image_pages(), 0);
}

#[test]
fn too_large_memory_is_refused_before_anything_is_written() {
    let raw = raw_app(4, 2);
    let old = bytes(&raw);
    let Err(err) = relocate(&raw, MemoryId::new(0), 3 * PAGE, BLOCK_BYTES) else {
        panic!("relocated beyond the limit");
    };
    assert_eq!(
        err,
        AdoptError::TooLarge {
            bytes: 4 * PAGE,
            limit: 3 * PAGE
        }
    );
    assert!(bytes(&raw) == old, "refused adoption changed memory");
}

#[test]
fn plain_load_still_refuses_a_foreign_layout() {
    assert!(Kit::open(raw_app(2, 1)).is_err());
}

/// The move's invariant after `steps` steps, at cursor `c`: below `c` the old bytes are
/// in place, from `c` on they are one page up.
fn check_partial_move(raw: &VectorMemory, old: &[u8], cursor: u64) {
    let now = bytes(raw);
    let c = cursor as usize;
    let p = PAGE as usize;
    assert!(now[..c] == old[..c], "an unmoved byte was overwritten");
    assert!(
        now[c + p..old.len() + p] == old[c..],
        "a moved byte differs"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any size, app layout and block size: the image is the old memory, the kit's own
    /// structures (written after adoption) never touch it, and at every interruption
    /// point of the move every old byte is still somewhere known.
    #[test]
    fn adoption_keeps_every_byte(
        pages in 1u64..300,
        managed in any::<bool>(),
        block_pages in 1u64..40,
        block_extra in 0u64..PAGE,
        seed in any::<u64>(),
        interrupt_after in 0u64..50,
    ) {
        let raw = if managed {
            managed_app(pages * 2, pages / 4, seed)
        } else {
            raw_app(pages, seed)
        };
        let old = bytes(&raw);
        let block = block_pages * PAGE / 3 + block_extra + 1;

        // Interrupted: the invariant holds after every step.
        let partial = memory();
        partial.grow(raw.size() + 1);
        partial.write(0, &old);
        let mut buf = Vec::new();
        let mut cursor = old.len() as u64;
        for _ in 0..interrupt_after {
            if cursor == 0 { break; }
            cursor = move_up_step(&partial, cursor, block, &mut buf);
            check_partial_move(&partial, &old, cursor);
        }

        // Whole: the image is the old memory, also after the kit writes its own state.
        let (mut kit, outcome) = Kit::load_or_adopt_with(raw.clone(), MAX_ADOPTION_BYTES, block).unwrap();
        let adopted = matches!(outcome, Adoption::Adopted { bytes, .. } if bytes == old.len() as u64);
        prop_assert!(adopted, "not adopted: {:?}", outcome);
        kit.update_state(|s| s.config.admins = vec![candid::Principal::anonymous(); 50]);
        prop_assert!(kit.image_bytes() == old, "image differs from the old memory");
        drop(kit);
        let (kit, outcome) = adopt(&raw);
        prop_assert_eq!(outcome, Adoption::AlreadyKit);
        prop_assert!(kit.image_bytes() == old, "image differs after re-opening");
    }
}
