//! Retention against a brute-force model, plus worked examples.

use proptest::prelude::*;

use super::*;

const HOUR_NS: u64 = 3_600 * 1_000_000_000;

fn source(n: u8) -> Principal {
    Principal::from_slice(&[n; 8])
}

fn complete(id: u64, src: u8, created_at_ns: u64) -> Candidate {
    Candidate {
        id,
        source: source(src),
        dataset: None,
        kind: Kind::Complete,
        created_at_ns,
        updated_at_ns: created_at_ns,
    }
}

fn policy(keep_last: u32, keep_daily: u32, keep_weekly: u32) -> RetentionPolicy {
    RetentionPolicy {
        keep_last,
        keep_daily,
        keep_weekly,
    }
}

/// The specification, written per snapshot without any incremental walk.
fn model(
    snapshots: &[Candidate],
    policy: &RetentionPolicy,
    now: u64,
    pinned: &BTreeSet<u64>,
) -> Plan {
    let mut plan = Plan::default();
    for s in snapshots {
        let idle = now.saturating_sub(s.updated_at_ns);
        let delete = match s.kind {
            Kind::InProgress => {
                if idle >= ABANDON_AFTER_NS {
                    plan.abandon.push(s.id);
                }
                false
            }
            Kind::Failed => idle >= FAILED_GRACE_NS,
            Kind::Complete => {
                let group: Vec<&Candidate> = snapshots
                    .iter()
                    .filter(|t| {
                        t.kind == Kind::Complete && t.source == s.source && t.dataset == s.dataset
                    })
                    .collect();
                let key = |t: &Candidate| (t.created_at_ns, t.id);
                let newer = group.iter().filter(|t| key(t) > key(s)).count();
                let newest_of = |period: fn(u64) -> u64| {
                    !group.iter().any(|t| {
                        period(t.created_at_ns) == period(s.created_at_ns) && key(t) > key(s)
                    })
                };
                let newer_periods = |period: fn(u64) -> u64| {
                    group
                        .iter()
                        .map(|t| period(t.created_at_ns))
                        .filter(|p| *p > period(s.created_at_ns))
                        .collect::<BTreeSet<u64>>()
                        .len()
                };
                let kept = newer == 0
                    || newer < policy.keep_last as usize
                    || (newest_of(day) && newer_periods(day) < policy.keep_daily as usize)
                    || (newest_of(week) && newer_periods(week) < policy.keep_weekly as usize);
                !kept
            }
        };
        if delete && !pinned.contains(&s.id) {
            plan.delete.push(s.id);
        }
    }
    plan
}

fn arb_case() -> impl Strategy<Value = (Vec<Candidate>, RetentionPolicy, u64, BTreeSet<u64>)> {
    let snapshot = (0u8..3, 0u8..4, 0u64..(40 * 24), 0u64..(10 * 24), 0u8..3);
    (
        prop::collection::vec(snapshot, 0..40),
        (0u32..4, 0u32..5, 0u32..4),
        prop::collection::btree_set(0u64..40, 0..6),
    )
        .prop_map(|(raw, (last, daily, weekly), pinned)| {
            let snapshots: Vec<Candidate> = raw
                .into_iter()
                .enumerate()
                .map(|(i, (src, kind, created_h, idle_h, set))| Candidate {
                    id: i as u64,
                    source: source(src),
                    dataset: (set > 0).then(|| format!("set {set}")),
                    kind: match kind {
                        0 => Kind::InProgress,
                        1 => Kind::Failed,
                        _ => Kind::Complete,
                    },
                    created_at_ns: created_h * HOUR_NS,
                    updated_at_ns: created_h * HOUR_NS + idle_h * HOUR_NS / 4,
                })
                .collect();
            let now = 50 * 24 * HOUR_NS;
            (snapshots, policy(last, daily, weekly), now, pinned)
        })
}

proptest! {
    #[test]
    fn plan_matches_the_model((snapshots, policy, now, pinned) in arb_case()) {
        let got = plan(&snapshots, &policy, now, &pinned);
        prop_assert_eq!(&got, &model(&snapshots, &policy, now, &pinned));
        for id in &got.delete {
            prop_assert!(!pinned.contains(id), "pinned snapshot {} deleted", id);
            let s = snapshots.iter().find(|s| s.id == *id).expect("deletes only known ids");
            prop_assert!(s.kind != Kind::InProgress, "in-progress snapshot {} deleted", id);
        }
        let newest: BTreeMap<(Principal, Option<String>), u64> = snapshots
            .iter()
            .filter(|s| s.kind == Kind::Complete)
            .fold(BTreeMap::new(), |mut m, s| {
                let best = m.entry((s.source, s.dataset.clone())).or_insert(s.id);
                let b = &snapshots[*best as usize];
                if (s.created_at_ns, s.id) > (b.created_at_ns, b.id) {
                    *best = s.id;
                }
                m
            });
        for id in newest.values() {
            prop_assert!(!got.delete.contains(id), "newest complete {} deleted", id);
        }
    }
}

#[test]
fn should_keep_only_the_newest_with_an_empty_policy() {
    let snaps = [
        complete(1, 0, HOUR_NS),
        complete(2, 0, 2 * HOUR_NS),
        complete(3, 1, HOUR_NS),
    ];
    let got = plan(&snaps, &policy(0, 0, 0), 100 * HOUR_NS, &BTreeSet::new());
    assert_eq!(got.delete, vec![1]);
}

#[test]
fn should_keep_last_n_then_one_per_day_and_week() {
    // Two snapshots a day for 20 days, ids in time order.
    let snaps: Vec<Candidate> = (0..40)
        .map(|i| complete(i, 0, i * 12 * HOUR_NS + HOUR_NS))
        .collect();
    let got = plan(&snaps, &policy(3, 4, 2), 1000 * HOUR_NS, &BTreeSet::new());
    let kept: Vec<u64> = (0..40).filter(|id| !got.delete.contains(id)).collect();
    // last 3: 39, 38, 37; daily: newest of days 19, 18, 17, 16 -> 39, 37, 35, 33;
    // weekly: day 19 is in week (19 + 3) / 7 = 3, days 11..=17 are week 2 -> 39 and 35.
    assert_eq!(kept, vec![33, 35, 37, 38, 39]);
}

#[test]
fn should_delete_failed_after_grace_and_abandon_stale_uploads() {
    let mut failed = complete(1, 0, 0);
    failed.kind = Kind::Failed;
    let mut fresh_failed = failed.clone();
    fresh_failed.id = 2;
    fresh_failed.updated_at_ns = ABANDON_AFTER_NS;
    let mut stale = complete(3, 0, 0);
    stale.kind = Kind::InProgress;
    let now = ABANDON_AFTER_NS;
    let got = plan(
        &[failed, fresh_failed, stale],
        &policy(1, 0, 0),
        now,
        &BTreeSet::new(),
    );
    assert_eq!(
        got,
        Plan {
            delete: vec![1],
            abandon: vec![3]
        }
    );
}

/// Issue #10.4: on a personal vault every data set has the app as its source; one
/// user's data-set backups must not evict another's.
#[test]
fn should_keep_the_newest_of_each_data_set_of_one_source() {
    let with_set = |id, set: &str, h| Candidate {
        dataset: Some(set.to_string()),
        ..complete(id, 0, h * HOUR_NS)
    };
    let snaps = [
        with_set(1, "alice", 1),
        with_set(2, "bob", 2),
        with_set(3, "bob", 3),
        with_set(4, "bob", 4),
        complete(5, 0, 5 * HOUR_NS),
    ];
    let got = plan(&snaps, &policy(1, 0, 0), 100 * HOUR_NS, &BTreeSet::new());
    assert_eq!(
        got.delete,
        vec![2, 3],
        "alice's only backup and the image stay"
    );
}

#[test]
fn should_never_delete_a_pinned_snapshot() {
    let snaps = [complete(1, 0, HOUR_NS), complete(2, 0, 2 * HOUR_NS)];
    let got = plan(
        &snaps,
        &policy(0, 0, 0),
        100 * HOUR_NS,
        &BTreeSet::from([1]),
    );
    assert!(got.delete.is_empty());
}
