use canvault_protocol::canister_image::CanisterJobState;

use super::*;
use crate::backup::tests::{owner, vault};

const H: u64 = 3_600 * NS;

fn canister(n: u8) -> Principal {
    Principal::from_slice(&[n; 10])
}

fn hourly(n: u8) -> CanisterSchedule {
    CanisterSchedule {
        canister: canister(n),
        interval_secs: 3_600,
        consistency: Consistency::StopTakeStart,
        label: Some("hourly".into()),
    }
}

#[test]
fn should_start_one_job_per_due_interval_and_never_two_on_one_canister() {
    let mut v = vault();
    let me = owner().principal;
    let info = v.set_canister_schedule(hourly(1), 10).expect("set");
    assert_eq!(info.next_due_ns, 10 + H);
    assert_eq!(v.next_schedule_due(), Some(10 + H));
    assert!(
        v.run_due_schedules(me, 10 + H - 1).is_empty(),
        "not yet due"
    );
    let first = v.run_due_schedules(me, 10 + H);
    assert_eq!(first.len(), 1);
    let info = &v.list_canister_schedules()[0];
    assert_eq!(
        (info.runs, info.last_job, info.next_due_ns),
        (1, Some(first[0]), 10 + 2 * H)
    );
    // The first job is still running when the next one is due: none starts, retried in a minute.
    assert!(v.run_due_schedules(me, 10 + 2 * H).is_empty());
    let info = &v.list_canister_schedules()[0];
    assert_eq!(info.next_due_ns, 10 + 2 * H + RETRY_NS);
    assert!(
        info.last_error
            .as_deref()
            .is_some_and(|e| e.contains("still running"))
    );
    // Once it ends, the retry starts the next one (missed slots are not made up for).
    let mut r = v.canister_jobs.map.get(&first[0]).expect("job");
    r.job.state = CanisterJobState::Done;
    v.canister_jobs.map.insert(first[0], r);
    let later = 10 + 5 * H + 7;
    let second = v.run_due_schedules(me, later);
    assert_eq!(second.len(), 1);
    let info = &v.list_canister_schedules()[0];
    assert_eq!(
        (info.runs, info.next_due_ns, info.last_error.clone()),
        (2, later + H, None)
    );
    // Cleared: nothing is due any more.
    v.clear_canister_schedule(canister(1)).expect("clear");
    assert_eq!(v.next_schedule_due(), None);
    assert!(v.run_due_schedules(me, 10 + 100 * H).is_empty());
    assert!(matches!(
        v.clear_canister_schedule(canister(1)),
        Err(VaultError::InvalidRequest(_))
    ));
}

#[test]
fn should_refuse_bad_schedules_and_more_than_the_limit() {
    let mut v = vault();
    for bad in [
        CanisterSchedule {
            interval_secs: MIN_INTERVAL_SECS - 1,
            ..hourly(1)
        },
        CanisterSchedule {
            interval_secs: MAX_INTERVAL_SECS + 1,
            ..hourly(1)
        },
        CanisterSchedule {
            consistency: Consistency::ReadOwnerSnapshot {
                snapshot_id: vec![1].into(),
            },
            ..hourly(1)
        },
        CanisterSchedule {
            label: Some("x".repeat(MAX_LABEL_BYTES + 1)),
            ..hourly(1)
        },
        CanisterSchedule {
            canister: Principal::management_canister(),
            ..hourly(1)
        },
    ] {
        assert!(
            matches!(
                v.set_canister_schedule(bad, 0),
                Err(VaultError::InvalidRequest(_))
            ),
            "refused"
        );
    }
    assert!(v.list_canister_schedules().is_empty(), "nothing stored");
    for n in 0..MAX_SCHEDULED_CANISTERS as u8 {
        v.set_canister_schedule(hourly(n + 1), 0)
            .expect("within the limit");
    }
    assert!(matches!(
        v.set_canister_schedule(hourly(200), 0),
        Err(VaultError::InvalidRequest(_))
    ));
    // Replacing an existing one is not a new canister.
    let info = v
        .set_canister_schedule(
            CanisterSchedule {
                interval_secs: 7_200,
                ..hourly(1)
            },
            5,
        )
        .expect("replaced");
    assert_eq!(info.next_due_ns, 5 + 2 * H);
    assert_eq!(v.list_canister_schedules().len(), MAX_SCHEDULED_CANISTERS);
}
