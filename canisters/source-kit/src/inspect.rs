//! An early filter for ingress to the kit's endpoints, for the app's
//! `#[inspect_message]`: refusing there costs the app nothing, where a refused update
//! still pays for decoding its (up to 2 MiB) argument. The checks inside the methods
//! stay authoritative (inspect does not run for calls from canisters, and a replica
//! may skip it); this only drops ingress that those checks would refuse anyway.

use candid::Principal;

/// The kit's admin endpoints (controllers and configured admins).
pub const ADMIN_METHODS: &[&str] = &[
    "canvault_configure",
    "canvault_backup_now",
    "canvault_status",
    "canvault_arm_restore",
    "canvault_abandon_restore",
];

/// The kit's vault-facing endpoints (only the armed vault).
pub const VAULT_METHODS: &[&str] = &[
    "canvault_restore_begin",
    "canvault_restore_chunks",
    "canvault_restore_finish",
];

/// What to do with an ingress message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not one of the kit's endpoints: the app decides.
    NotKit,
    /// A kit endpoint whose in-method check may accept the caller.
    Accept,
    /// A kit endpoint whose in-method check would refuse the caller.
    Reject(&'static str),
}

/// Who may call what, as far as inspect can tell.
pub struct Callers<'a> {
    /// Whether the caller is a controller or a configured admin.
    pub is_admin: &'a dyn Fn() -> bool,
    /// The vault armed for a restore, if any.
    pub armed_vault: Option<Principal>,
    /// The vault of the last restore applied (it may retry `canvault_restore_finish`).
    pub last_restore_vault: Option<Principal>,
}

/// The verdict for ingress calling `method` from `caller`.
#[must_use]
pub fn verdict(method: &str, caller: Principal, callers: &Callers<'_>) -> Verdict {
    let admin = ADMIN_METHODS.contains(&method);
    let vault = VAULT_METHODS.contains(&method);
    if !admin && !vault {
        return Verdict::NotKit;
    }
    if caller == Principal::anonymous() {
        return Verdict::Reject("anonymous callers may not call the kit's endpoints");
    }
    if admin {
        return if (callers.is_admin)() {
            Verdict::Accept
        } else {
            Verdict::Reject("not a controller or admin of the kit")
        };
    }
    let may_push = callers.armed_vault == Some(caller)
        || (method == "canvault_restore_finish" && callers.last_restore_vault == Some(caller));
    if may_push {
        Verdict::Accept
    } else {
        Verdict::Reject("not the vault armed for a restore")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 10])
    }

    #[test]
    fn anonymous_strangers_and_unarmed_vaults_are_rejected_early() {
        let yes = || true;
        let no = || false;
        let armed = Callers {
            is_admin: &no,
            armed_vault: Some(p(1)),
            last_restore_vault: Some(p(2)),
        };
        let anon = Principal::anonymous();
        for m in ADMIN_METHODS.iter().chain(VAULT_METHODS) {
            assert!(
                matches!(verdict(m, anon, &armed), Verdict::Reject(_)),
                "{m}"
            );
        }
        assert_eq!(
            verdict("canvault_restore_chunks", p(1), &armed),
            Verdict::Accept
        );
        assert!(matches!(
            verdict("canvault_restore_chunks", p(3), &armed),
            Verdict::Reject(_)
        ));
        assert!(matches!(
            verdict("canvault_restore_chunks", p(2), &armed),
            Verdict::Reject(_)
        ));
        assert_eq!(
            verdict("canvault_restore_finish", p(2), &armed),
            Verdict::Accept
        );
        assert!(matches!(
            verdict("canvault_configure", p(1), &armed),
            Verdict::Reject(_)
        ));
        let admin = Callers {
            is_admin: &yes,
            armed_vault: None,
            last_restore_vault: None,
        };
        assert_eq!(
            verdict("canvault_backup_now", p(5), &admin),
            Verdict::Accept
        );
        assert!(matches!(
            verdict("canvault_restore_begin", p(5), &admin),
            Verdict::Reject(_)
        ));
        assert_eq!(verdict("post", anon, &admin), Verdict::NotKit);
    }
}
