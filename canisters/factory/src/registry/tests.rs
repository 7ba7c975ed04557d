use super::*;
use ic_stable_structures::DefaultMemoryImpl;

fn p(n: u8) -> Principal {
    Principal::from_slice(&[n; 10])
}

fn registry() -> Registry<DefaultMemoryImpl> {
    Registry::init(&Memories::init(DefaultMemoryImpl::default()))
}

fn vault(id: u8, kind: VaultKind, owners: &[Principal]) -> VaultRecord {
    VaultInfo {
        canister_id: p(id),
        kind,
        owners: owners.to_vec(),
        writers: vec![kind.app()],
        readers: vec![],
        controllers: owners.to_vec(),
        subnet: None,
        version: Hash256::of(b"v1"),
        managed_upgrades: true,
        created_at_ns: 1,
        deployment_id: u64::from(id),
    }
}

#[test]
fn should_index_vaults_by_owner_and_by_app() {
    let mut r = registry();
    let (app, other_app, user, ops) = (p(1), p(2), p(3), p(4));
    r.insert(vault(10, VaultKind::App { app }, &[ops]));
    r.insert(vault(11, VaultKind::Personal { user, app }, &[user]));
    r.insert(vault(12, VaultKind::App { app: other_app }, &[ops, user]));
    let ids = |v: Vec<VaultRecord>| v.into_iter().map(|v| v.canister_id).collect::<Vec<_>>();
    assert_eq!(ids(r.of_app(app)), vec![p(10), p(11)]);
    assert_eq!(ids(r.of_app(other_app)), vec![p(12)]);
    assert_eq!(ids(r.of_owner(ops)), vec![p(10), p(12)]);
    assert_eq!(ids(r.of_owner(user)), vec![p(11), p(12)]);
    assert_eq!(
        r.personal_vault(user, app).map(|v| v.canister_id),
        Some(p(11))
    );
    assert_eq!(r.personal_vault(user, other_app), None);
    assert_eq!(r.len(), 3);
}

#[test]
fn should_drop_index_entries_with_the_record() {
    let mut r = registry();
    let (app, user) = (p(1), p(3));
    r.insert(vault(11, VaultKind::Personal { user, app }, &[user]));
    assert_eq!(r.remove(&p(11)).map(|v| v.canister_id), Some(p(11)));
    assert!(r.of_owner(user).is_empty());
    assert!(r.of_app(app).is_empty());
    assert!(r.by_owner.is_empty() && r.by_app.is_empty());
    assert_eq!(r.remove(&p(11)), None);
}

#[test]
fn should_replace_a_record_and_its_index_entries() {
    let mut r = registry();
    let (app, a, b) = (p(1), p(5), p(6));
    r.insert(vault(10, VaultKind::App { app }, &[a]));
    r.insert(vault(10, VaultKind::App { app }, &[b]));
    assert!(r.of_owner(a).is_empty());
    assert_eq!(r.of_owner(b).len(), 1);
    assert_eq!(r.by_app.len(), 1);
    assert!(r.set_version(&p(10), Hash256::of(b"v2")));
    assert_eq!(r.get(&p(10)).unwrap().version, Hash256::of(b"v2"));
    assert!(!r.set_version(&p(99), Hash256::of(b"v2")));
}
