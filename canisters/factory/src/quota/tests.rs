use super::*;
use ic_stable_structures::DefaultMemoryImpl;

fn p(n: u8) -> Principal {
    Principal::from_slice(&[n; 10])
}

const DAY: u64 = DAY_NS;

fn limits(vaults: u32, per_day: u32) -> Quotas {
    Quotas {
        max_vaults_per_principal: vaults,
        max_creations_per_day: per_day,
    }
}

#[test]
fn should_allow_up_to_the_limit_and_refuse_at_it() {
    let l = limits(3, 5);
    assert_eq!(check(&l, 2, 4), Ok(()));
    assert_eq!(
        check(&l, 3, 0),
        Err(FactoryError::QuotaExceeded {
            quota: QuotaKind::VaultsPerPrincipal,
            limit: 3,
            used: 3
        })
    );
    assert_eq!(
        check(&l, 0, 5),
        Err(FactoryError::QuotaExceeded {
            quota: QuotaKind::CreationsPerDay,
            limit: 5,
            used: 5
        })
    );
    assert!(
        check(&limits(0, 5), 0, 0).is_err(),
        "a zero limit forbids creation"
    );
}

#[test]
fn should_count_vaults_per_subject_and_creations_per_caller_and_day() {
    let mut q = Quota::init(&Memories::init(DefaultMemoryImpl::default()));
    let (app, user, other) = (p(1), p(2), p(3));
    let l = limits(2, 2);
    let t0 = 10 * DAY + 5;
    q.record_creation(user, app, t0);
    q.record_creation(app, app, t0);
    assert_eq!((q.vaults(user), q.vaults(app), q.today(app, t0)), (1, 1, 2));
    assert!(q.check(&l, other, app, t0).is_err(), "the app made 2 today");
    assert_eq!(q.check(&l, other, other, t0), Ok(()));
    // The next day the daily count starts again, and older days are pruned.
    let t1 = 11 * DAY;
    assert_eq!(q.today(app, t1), 0);
    q.record_creation(user, app, t1);
    assert_eq!(q.daily.len(), 1);
    assert_eq!(q.vaults(user), 2);
    assert_eq!(
        q.check(&l, user, other, t1),
        Err(FactoryError::QuotaExceeded {
            quota: QuotaKind::VaultsPerPrincipal,
            limit: 2,
            used: 2
        })
    );
    q.release_vault(user);
    assert_eq!(q.check(&l, user, other, t1), Ok(()));
    q.release_vault(user);
    q.release_vault(user);
    assert_eq!(q.vaults(user), 0);
    assert_eq!(day_of(t1 - 1), 10);
}
