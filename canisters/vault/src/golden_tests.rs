//! The vault's persistent layout, byte for byte: a fixed history (two writers, a full and
//! an incremental snapshot, a deletion half released by a tight budget, a
//! role change, a retention policy) is replayed on a `VectorMemory`, and the raw stable
//! memory must equal `golden/vault-layout.bin.gz`.
//!
//! A difference means the layout changed. Then: bump the generation of what changed,
//! write the migration from the old layout (the upgrade test
//! `tests/tests/upgrade_from_previous.rs` runs it on the previous module's memory), and
//! regenerate with `CANVAULT_UPDATE_GOLDEN=1 cargo test -p canvault-vault golden`.

use std::cell::Cell;

use canvault_protocol::golden::assert_golden;
use canvault_protocol::vault_api::{RetentionPolicy, Role, RoleChange};
use ic_stable_structures::{Memory, VectorMemory};

use crate::backup::tests::{backup, begin, commit, image, owner, put, send, writer};
use crate::vault::Vault;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden/vault-layout.bin.gz");

/// The fixed history; returns the raw memory.
fn replay() -> Vec<u8> {
    let memory = VectorMemory::default();
    let mut v = Vault::init(memory.clone());
    let init = canvault_protocol::vault_api::VaultInit {
        writers: vec![writer(0).principal, writer(1).principal],
        ..Default::default()
    };
    v.configure(&init, Some(owner().principal));
    let first = image(7, 1);
    let full = backup(&mut v, writer(0), &first, 1);
    let mut second = first.clone();
    second[3 * 65_536 + 5] ^= 0xff;
    let incremental = begin(&mut v, writer(0), &second, 2, Some(full));
    for i in 0..7 {
        send(&mut v, writer(0), incremental, vec![put(&second, i)]).expect("put");
    }
    commit(&mut v, writer(0), incremental, &second).expect("commit");
    backup(&mut v, writer(1), &image(4, 9), 1);
    let doomed = backup(&mut v, writer(1), &image(5, 20), 2);
    // A budget that runs out after a few checks leaves the deletion queued.
    let left = Cell::new(3u32);
    let tight = || {
        let l = left.get();
        left.set(l.saturating_sub(1));
        l > 0
    };
    v.delete_snapshot(doomed, &tight).expect("delete");
    v.update_roles(&[RoleChange {
        principal: candid::Principal::from_slice(&[42; 10]),
        role: Role::Reader,
        grant: true,
    }])
    .expect("roles");
    v.set_retention(RetentionPolicy {
        keep_last: 3,
        keep_daily: 2,
        keep_weekly: 1,
    });
    let mut raw = vec![0; usize::try_from(memory.size() * 65_536).expect("fits")];
    memory.read(0, &mut raw);
    raw
}

#[test]
fn the_persistent_layout_matches_the_golden_file() {
    assert_golden(
        GOLDEN,
        &replay(),
        "the vault's stable layout",
        "bump the layout generation and add the migration (see golden_tests.rs)",
    );
}

#[test]
fn the_replay_is_deterministic() {
    assert!(replay() == replay());
}
