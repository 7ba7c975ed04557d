//! The ingress filter (`canister_inspect_message`): refuses, before the vault pays for
//! executing it, an ingress message whose sender could not be served anyway. Only a
//! cycle saver: every method still checks the caller's role itself.
//!
//! Inspection only runs for ingress update calls (queries called as updates included),
//! never for inter-canister calls, so sources calling from their canisters are not
//! affected.

use candid::Principal;
use canvault_protocol::vault_api::Role;

/// The role each method needs; `None` for a name the vault does not export.
pub fn required_role(method: &str) -> Option<Role> {
    Some(match method {
        "begin_snapshot" | "put_chunks" | "commit_snapshot" | "abort_snapshot" => Role::Writer,
        "list_snapshots" | "list_snapshot_page" | "get_snapshot" | "get_manifest" | "get_chunk"
        | "open_download" | "status" => Role::Reader,
        "delete_snapshot"
        | "set_retention"
        | "apply_retention"
        | "update_roles"
        | "list_roles"
        | "start_restore"
        | "restore_status"
        | "list_restores"
        | "backup_canister"
        | "canister_backup_status"
        | "restore_canister"
        | "canister_restore_status"
        | "list_canister_jobs"
        | "set_canister_schedule"
        | "clear_canister_schedule"
        | "list_canister_schedules" => Role::Owner,
        _ => return None,
    })
}

/// True if an ingress call of `method` by `sender` may execute: the sender is not
/// anonymous and holds the method's role (`holds` answers for a role, owners holding
/// all of them).
pub fn admits(method: &str, sender: Principal, holds: impl Fn(Role) -> bool) -> bool {
    sender != Principal::anonymous() && required_role(method).is_some_and(holds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_admit_only_holders_of_the_method_role() {
        let writer = Principal::from_slice(&[1; 10]);
        let only_writer = |r| r == Role::Writer;
        assert!(admits("put_chunks", writer, only_writer));
        assert!(!admits("delete_snapshot", writer, only_writer));
        assert!(!admits("get_chunk", writer, only_writer));
        assert!(!admits("put_chunks", Principal::anonymous(), |_| true));
        assert!(!admits("no_such_method", writer, |_| true));
        assert!(!admits("put_chunks", writer, |_| false), "a stranger");
    }

    /// Every method of `vault.did` has a role here (a new endpoint needs a row).
    #[test]
    fn should_know_every_method_of_the_interface() {
        let did = include_str!("../vault.did");
        let service = &did[did.find("service").expect("a service")..];
        let methods: Vec<&str> = service
            .lines()
            .filter_map(|l| l.trim().split_once(" :").map(|(name, _)| name.trim()))
            .filter(|name| !name.is_empty() && !name.starts_with("service"))
            .collect();
        assert!(methods.len() >= 19, "{methods:?}");
        for m in methods {
            assert!(
                required_role(m).is_some(),
                "{m} has no role in the ingress filter"
            );
        }
    }
}
