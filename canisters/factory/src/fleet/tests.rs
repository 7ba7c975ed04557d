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
            reason: SkipReason::OptedOut
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
        s.vaults
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
    assert_eq!((s.id, s.vaults.len(), s.pending), (2, 1, 1));
}
