//! Whole-canister jobs of the vault (backup through a native snapshot, restore into a
//! canister it controls), as the benchmarks drive them.

use candid::{CandidType, Principal};
use canvault_protocol::canister_image::{CanisterJob, CanisterJobState};
use ic_harness::{CanisterId, Harness};
use ic_management_canister_types::CanisterStatusType;

use crate::vault::VaultClient;

/// Whether `canister` is running (as `owner`, a controller, sees it).
pub fn running(ic: &mut Harness, canister: CanisterId, owner: Principal) -> bool {
    ic.canister_status(canister, Some(owner))
        .is_ok_and(|s| s.status == CanisterStatusType::Running)
}

/// Starts the vault job `method(arg)`, ticks until `status` says it ended and returns it
/// with the rounds `canister` (the app, or the restore's target) was not running.
///
/// # Panics
/// If the job is refused or fails.
pub fn vault_job<A: CandidType>(
    ic: &mut Harness,
    vault: VaultClient,
    owner: Principal,
    (method, arg): (&str, A),
    status: &str,
    canister: CanisterId,
) -> (CanisterJob, u64) {
    let job: CanisterJob = vault.call(ic, owner, method, (arg,)).expect(method);
    let mut down = 0;
    loop {
        let job: CanisterJob = vault.read(ic, owner, status, (job.id,)).expect("status");
        match job.state {
            CanisterJobState::Done => return (job, down),
            CanisterJobState::Failed { reason } => panic!("{method} failed: {reason}"),
            _ => {}
        }
        ic.tick();
        if !running(ic, canister, owner) {
            down += 1;
        }
    }
}
