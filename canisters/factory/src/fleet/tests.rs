use super::*;
use canvault_factory_api::VaultKind;
use ic_stable_structures::DefaultMemoryImpl;

fn p(n: u8) -> Principal {
    Principal::from_slice(&[n; 10])
}

const FACTORY: u8 = 100;

fn vault(id: u8, version: &[u8], managed: bool, factory_controls: bool) -> VaultInfo {
    let mut controllers = vec![p(3)];
    if factory_controls {
        controllers.push(p(FACTORY));
    }
    VaultInfo {
        canister_id: p(id),
        kind: VaultKind::App { app: p(1) },
        owners: vec![p(3)],
        writers: vec![p(1)],
        readers: vec![],
        controllers,
        subnet: None,
        version: Hash256::of(version),
        managed_upgrades: managed,
        created_at_ns: 0,
        deployment_id: 0,
    }
}

fn fleet() -> Fleet<DefaultMemoryImpl> {
    Fleet::init(&Memories::init(DefaultMemoryImpl::default()))
}

#[test]
fn should_plan_skips_for_opted_out_and_current_vaults() {
    let v2 = Hash256::of(b"v2");
    let f = p(FACTORY);
    assert_eq!(
        plan(&vault(1, b"v1", true, true), v2, f),
        VaultUpgradeState::Pending
    );
    assert_eq!(
        plan(&vault(1, b"v1", false, true), v2, f),
        VaultUpgradeState::Skipped {
            reason: SkipReason::OptedOut
        }
    );
    assert_eq!(
        plan(&vault(1, b"v1", true, false), v2, f),
        VaultUpgradeState::Skipped {
            reason: SkipReason::NotController
        }
    );
    assert_eq!(
        plan(&vault(1, b"v2", true, true), v2, f),
        VaultUpgradeState::Skipped {
            reason: SkipReason::AlreadyCurrent
        }
    );
}

#[test]
fn should_run_batches_until_every_vault_has_a_final_state() {
    let mut fl = fleet();
    let v2 = Hash256::of(b"v2");
    let vaults: Vec<VaultInfo> = (10..15).map(|i| vault(i, b"v1", i != 12, true)).collect();
    fl.start(1, v2, &vaults, p(FACTORY), 7);
    let s = fl.status().unwrap();
    assert_eq!((s.pending, s.skipped, s.finished), (4, 1, false));
    assert_eq!(fl.running(), Some(1));
    let first = fl.next_batch(3);
    assert_eq!(first, vec![p(10), p(11), p(13)]);
    fl.set_state(&p(10), VaultUpgradeState::Upgraded { at_ns: 8 });
    fl.set_state(&p(11), VaultUpgradeState::Failed { reason: "x".into() });
    // p(13)'s result was lost: it stays InProgress and is taken first next time.
    let second = fl.next_batch(3);
    assert_eq!(second, vec![p(13), p(14)]);
    for v in &second {
        fl.set_state(v, VaultUpgradeState::Upgraded { at_ns: 9 });
    }
    let s = fl.status().unwrap();
    assert_eq!(
        (s.pending, s.upgraded, s.skipped, s.failed, s.finished),
        (0, 3, 1, 1, true)
    );
    assert_eq!(fl.running(), None);
    assert!(fl.next_batch(3).is_empty());
    assert_eq!(
        fl.page(None, 100)
            .vaults
            .iter()
            .find(|v| v.canister_id == p(12))
            .unwrap()
            .from_version,
        Hash256::of(b"v1")
    );
}

#[test]
fn should_cancel_pending_vaults_and_replace_a_finished_rollout() {
    let mut fl = fleet();
    let vaults: Vec<VaultInfo> = (10..13).map(|i| vault(i, b"v1", true, true)).collect();
    fl.start(1, Hash256::of(b"v2"), &vaults, p(FACTORY), 0);
    let taken = fl.next_batch(1);
    assert_eq!(fl.cancel(), 2);
    fl.set_state(&taken[0], VaultUpgradeState::Upgraded { at_ns: 1 });
    let s = fl.status().unwrap();
    assert!(s.finished);
    assert_eq!(s.skipped, 2);
    fl.start(2, Hash256::of(b"v3"), &vaults[..1], p(FACTORY), 5);
    let s = fl.status().unwrap();
    assert_eq!((s.id, s.total, s.pending), (2, 1, 1));
}

#[test]
fn should_page_through_the_vaults_of_a_rollout() {
    let mut fl = fleet();
    let vaults: Vec<VaultInfo> = (10..17).map(|i| vault(i, b"v1", true, true)).collect();
    fl.start(1, Hash256::of(b"v2"), &vaults, p(FACTORY), 0);
    let mut seen = Vec::new();
    let mut start = None;
    loop {
        let page = fl.page(start, 3);
        assert!(page.vaults.len() <= 3);
        seen.extend(page.vaults.iter().map(|v| v.canister_id));
        match page.next {
            Some(next) => start = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, (10..17).map(p).collect::<Vec<_>>());
    assert_eq!(fl.page(None, 0).vaults.len(), 1, "a limit of 0 reads one");
}

/// A rollout header stored before counts existed is recounted when the state loads.
#[test]
fn should_recount_a_rollout_stored_without_counts() {
    let memory = DefaultMemoryImpl::default();
    let mut fl = Fleet::init(&Memories::init(memory.clone()));
    let vaults: Vec<VaultInfo> = (10..14).map(|i| vault(i, b"v1", i != 11, true)).collect();
    fl.start(3, Hash256::of(b"v2"), &vaults, p(FACTORY), 0);
    fl.next_batch(1);
    let expected = fl.status().unwrap();
    // The old layout: the same header without counts and cursor.
    #[derive(CandidType)]
    struct OldHeader {
        id: u64,
        version: Hash256,
        started_at_ns: u64,
    }
    let old = candid::encode_one(Some(OldHeader {
        id: 3,
        version: Hash256::of(b"v2"),
        started_at_ns: 0,
    }))
    .unwrap();
    let decoded: RolloutCell = ic_stable_structures::Storable::from_bytes(old.into());
    assert_eq!(decoded.0.as_ref().map(|h| h.counts), Some(None));
    fl.header.set(decoded);
    let reloaded = Fleet::init(&Memories::init(memory));
    assert_eq!(reloaded.status().unwrap(), expected);
    assert_eq!(reloaded.running(), Some(3));
}
