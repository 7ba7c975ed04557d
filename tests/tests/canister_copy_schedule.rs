//! Vault-side schedules of whole-canister backups: an owner schedules hourly backups of
//! the heap app; the vault's timer starts them as time passes, through a vault upgrade
//! in between; retention applies to what they make; clearing the schedule stops them.
//! Build the wasm first: `scripts/build-wasm.sh`.

use std::time::Duration;

use candid::Principal;
use canvault_protocol::canister_image::{
    CanisterJob, CanisterJobKind, CanisterJobState, CanisterSchedule, CanisterScheduleInfo,
    Consistency,
};
use canvault_protocol::vault_api::{
    RetentionPolicy, SnapshotKind, SnapshotState, VaultError, VaultInit,
};
use canvault_scenarios::heap_app;
use canvault_scenarios::vault::VaultClient;
use canvault_scenarios::{principal, wasm};
use ic_harness::{CanisterId, Harness};
use ic_management_canister_types::CanisterStatusType;

const HOUR: Duration = Duration::from_secs(3_600);

struct Scenario {
    ic: Harness,
    owner: Principal,
    vault: VaultClient,
    app: CanisterId,
}

impl Scenario {
    fn new() -> Self {
        let mut ic = canvault_scenarios::harness(2);
        let owner = principal("owner");
        let vault = VaultClient::install(
            &mut ic,
            1,
            &VaultInit {
                owners: vec![owner],
                retention: Some(RetentionPolicy {
                    keep_last: 1,
                    keep_daily: 0,
                    keep_weekly: 0,
                }),
                ..Default::default()
            },
            owner,
        );
        let app = heap_app::install_controlled(&mut ic, 0, owner, vault.id);
        Self {
            ic,
            owner,
            vault,
            app,
        }
    }

    fn fill(&mut self, seed: u64) {
        let () = self
            .ic
            .update_candid(self.app, self.owner, "fill", (seed, 8u32, 65_536u32))
            .expect("fill");
    }

    fn jobs(&mut self) -> Vec<CanisterJob> {
        self.vault
            .read(&mut self.ic, self.owner, "list_canister_jobs", ())
            .expect("list_canister_jobs")
    }

    fn schedules(&mut self) -> Vec<CanisterScheduleInfo> {
        self.vault
            .read(&mut self.ic, self.owner, "list_canister_schedules", ())
            .expect("list_canister_schedules")
    }

    /// Ticks until `n` canister jobs exist and all have ended.
    fn wait_for_jobs(&mut self, n: usize) -> Vec<CanisterJob> {
        for _ in 0..5_000 {
            let jobs = self.jobs();
            if jobs.len() >= n
                && jobs.iter().all(|j| {
                    matches!(
                        j.state,
                        CanisterJobState::Done | CanisterJobState::Failed { .. }
                    )
                })
            {
                return jobs;
            }
            self.ic.tick();
        }
        panic!("{n} jobs did not end");
    }

    /// Complete whole-canister snapshots of the app.
    fn whole_snapshots(&mut self) -> Vec<u64> {
        self.vault
            .list(&mut self.ic, self.owner, Some(self.app))
            .into_iter()
            .filter(|s| {
                s.state == SnapshotState::Complete
                    && matches!(s.kind, Some(SnapshotKind::WholeCanister(_)))
            })
            .map(|s| s.id)
            .collect()
    }
}

#[test]
fn canister_copy_scheduled_backups_run_survive_an_upgrade_and_stop_when_cleared() {
    let mut s = Scenario::new();
    s.fill(1);
    let schedule = CanisterSchedule {
        canister: s.app,
        interval_secs: 3_600,
        consistency: Consistency::StopTakeStart,
        label: Some("hourly".into()),
    };
    // Owners only.
    let refused =
        s.ic.update_candid::<_, (Result<CanisterScheduleInfo, VaultError>,)>(
            s.vault.id,
            principal("stranger"),
            "set_canister_schedule",
            (schedule.clone(),),
        );
    assert!(!matches!(refused, Ok((Ok(_),))), "{refused:?}");
    let info: CanisterScheduleInfo = s
        .vault
        .call(
            &mut s.ic,
            s.owner,
            "set_canister_schedule",
            (schedule.clone(),),
        )
        .expect("set_canister_schedule");
    assert_eq!(info.runs, 0);

    // Not due yet: nothing runs.
    s.ic.advance_time(HOUR / 2);
    for _ in 0..50 {
        s.ic.tick();
    }
    assert!(s.jobs().is_empty());

    // Due: the first scheduled backup; `status` counts it while it runs.
    s.ic.advance_time(HOUR / 2 + Duration::from_secs(1));
    while s.jobs().is_empty() {
        s.ic.tick();
    }
    let status = s.vault.status(&mut s.ic, s.owner);
    assert_eq!(
        (
            status.active_canister_jobs,
            status.scheduled_canisters,
            status.active_restores
        ),
        (Some(1), Some(1), 0)
    );
    let jobs = s.wait_for_jobs(1);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].state, CanisterJobState::Done, "{:?}", jobs[0]);
    let CanisterJobKind::Backup(req) = &jobs[0].kind else {
        panic!("a backup")
    };
    assert_eq!(req.label.as_deref(), Some("hourly"));
    let first = jobs[0].snapshot_id.expect("snapshot");
    assert_eq!(s.whole_snapshots(), vec![first]);
    assert_eq!(
        s.ic.canister_status(s.app, Some(s.owner))
            .expect("status")
            .status,
        CanisterStatusType::Running
    );

    // The vault is upgraded in between: the schedule is kept and its timer re-armed.
    s.ic.upgrade_canister(
        s.vault.id,
        wasm("canvault_vault"),
        candid::encode_one(None::<VaultInit>).expect("arg"),
        Some(s.owner),
    )
    .expect("upgrade");
    let kept = s.schedules();
    assert_eq!(kept.len(), 1);
    assert_eq!((kept[0].runs, kept[0].last_job), (1, Some(jobs[0].id)));
    s.fill(2);
    s.ic.advance_time(HOUR);
    let jobs = s.wait_for_jobs(2);
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[1].state, CanisterJobState::Done, "{:?}", jobs[1]);
    let second = jobs[1].snapshot_id.expect("snapshot");
    assert_ne!(second, first);
    // Retention (keep_last 1) applies to scheduled snapshots like to any other.
    for _ in 0..200 {
        if s.whole_snapshots() == vec![second] {
            break;
        }
        s.ic.tick();
    }
    assert_eq!(
        s.whole_snapshots(),
        vec![second],
        "retention kept the newest"
    );

    // Cleared: no more backups however much time passes.
    let cleared: Result<(), VaultError> =
        s.vault
            .call(&mut s.ic, s.owner, "clear_canister_schedule", (s.app,));
    cleared.expect("cleared");
    assert!(s.schedules().is_empty());
    for _ in 0..3 {
        s.ic.advance_time(HOUR);
        for _ in 0..100 {
            s.ic.tick();
        }
    }
    assert_eq!(
        s.jobs().len(),
        2,
        "no backup after the schedule was cleared"
    );
    let status = s.vault.status(&mut s.ic, s.owner);
    assert_eq!(
        (status.active_canister_jobs, status.scheduled_canisters),
        (Some(0), Some(0))
    );
}
