//! Roles: who may do what. Stored as a bit set per principal.
//!
//! - `Owner` satisfies every role: manage, restore, download, upload, delete.
//! - `Writer` may push backups of itself (source = caller).
//! - `Reader` may list and download.
//!
//! Invariant: at least one owner exists once the vault is installed; `apply` refuses a
//! change set that would remove the last one, and then changes nothing.

use std::collections::BTreeMap;

use candid::Principal;
use canvault_protocol::vault_api::{Role, RoleChange, VaultError};
use ic_stable_structures::{Memory, StableBTreeMap};

const ALL_ROLES: [Role; 3] = [Role::Owner, Role::Writer, Role::Reader];

fn bit(role: Role) -> u8 {
    match role {
        Role::Owner => 1,
        Role::Writer => 2,
        Role::Reader => 4,
    }
}

/// An authorized caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Who called.
    pub principal: Principal,
    /// True if the caller holds the owner role (acts on any snapshot).
    pub is_owner: bool,
}

/// The role table.
pub struct Roles<M: Memory> {
    bits: StableBTreeMap<Principal, u8, M>,
}

impl<M: Memory> Roles<M> {
    /// Loads the table from `memory`, or creates it.
    pub fn init(memory: M) -> Self {
        Self {
            bits: StableBTreeMap::init(memory),
        }
    }

    /// Checks that `principal` holds `needed` (owners hold every role).
    ///
    /// # Errors
    /// [`VaultError::Unauthorized`] otherwise.
    pub fn authorize(&self, principal: Principal, needed: Role) -> Result<Caller, VaultError> {
        let bits = self.bits.get(&principal).unwrap_or(0);
        let is_owner = bits & bit(Role::Owner) != 0;
        if is_owner || bits & bit(needed) != 0 {
            Ok(Caller {
                principal,
                is_owner,
            })
        } else {
            Err(VaultError::Unauthorized {
                caller: principal,
                needed,
            })
        }
    }

    /// Like [`Self::authorize`], but any role will do (`needed` names the weakest).
    ///
    /// # Errors
    /// [`VaultError::Unauthorized`] if the principal holds no role.
    pub fn authorize_any(&self, principal: Principal) -> Result<Caller, VaultError> {
        match self.bits.get(&principal).unwrap_or(0) {
            0 => Err(VaultError::Unauthorized {
                caller: principal,
                needed: Role::Reader,
            }),
            bits => Ok(Caller {
                principal,
                is_owner: bits & bit(Role::Owner) != 0,
            }),
        }
    }

    /// Grants `role` to `principal`; never to the anonymous principal (an install
    /// argument naming it is ignored there).
    pub fn grant(&mut self, principal: Principal, role: Role) {
        if principal == Principal::anonymous() {
            return;
        }
        let bits = self.bits.get(&principal).unwrap_or(0) | bit(role);
        self.bits.insert(principal, bits);
    }

    /// Applies grants and revocations in order, all or nothing.
    ///
    /// # Errors
    /// [`VaultError::InvalidRequest`] if a change grants a role to the anonymous
    /// principal (anyone could then act with it), or if no owner would remain.
    pub fn apply(&mut self, changes: &[RoleChange]) -> Result<(), VaultError> {
        if changes
            .iter()
            .any(|c| c.grant && c.principal == Principal::anonymous())
        {
            return Err(VaultError::InvalidRequest(
                "the anonymous principal cannot hold a role".to_string(),
            ));
        }
        let mut touched: BTreeMap<Principal, u8> = BTreeMap::new();
        for change in changes {
            let current = touched
                .get(&change.principal)
                .copied()
                .unwrap_or_else(|| self.bits.get(&change.principal).unwrap_or(0));
            let next = if change.grant {
                current | bit(change.role)
            } else {
                current & !bit(change.role)
            };
            touched.insert(change.principal, next);
        }
        let owner = bit(Role::Owner);
        let untouched_owners = self
            .bits
            .iter()
            .any(|e| e.value() & owner != 0 && !touched.contains_key(e.key()));
        if !untouched_owners && !touched.values().any(|b| b & owner != 0) {
            return Err(VaultError::InvalidRequest(
                "the change set would remove the last owner".to_string(),
            ));
        }
        for (principal, bits) in touched {
            if bits == 0 {
                self.bits.remove(&principal);
            } else {
                self.bits.insert(principal, bits);
            }
        }
        Ok(())
    }

    /// Every (principal, role) granted, in principal order.
    pub fn list(&self) -> Vec<(Principal, Role)> {
        self.bits
            .iter()
            .flat_map(|e| {
                let (principal, bits) = e.into_pair();
                ALL_ROLES
                    .into_iter()
                    .filter(move |r| bits & bit(*r) != 0)
                    .map(move |r| (principal, r))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use ic_stable_structures::VectorMemory;

    use super::*;

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 10])
    }

    fn change(n: u8, role: Role, grant: bool) -> RoleChange {
        RoleChange {
            principal: p(n),
            role,
            grant,
        }
    }

    #[test]
    fn should_let_owners_act_in_every_role_and_no_one_else() {
        let mut roles = Roles::init(VectorMemory::default());
        roles.grant(p(1), Role::Owner);
        roles.grant(p(2), Role::Writer);
        assert!(roles.authorize(p(1), Role::Reader).expect("owner").is_owner);
        assert!(
            !roles
                .authorize(p(2), Role::Writer)
                .expect("writer")
                .is_owner
        );
        assert_eq!(
            roles.authorize(p(2), Role::Reader),
            Err(VaultError::Unauthorized {
                caller: p(2),
                needed: Role::Reader
            })
        );
        assert!(roles.authorize_any(p(3)).is_err());
        assert!(roles.authorize_any(p(2)).is_ok());
    }

    #[test]
    fn should_refuse_removing_the_last_owner_and_change_nothing() {
        let mut roles = Roles::init(VectorMemory::default());
        roles.grant(p(1), Role::Owner);
        let before = roles.list();
        let err = roles.apply(&[change(2, Role::Reader, true), change(1, Role::Owner, false)]);
        assert!(matches!(err, Err(VaultError::InvalidRequest(_))));
        assert_eq!(roles.list(), before);
        roles
            .apply(&[change(2, Role::Owner, true), change(1, Role::Owner, false)])
            .expect("another owner remains");
        assert_eq!(roles.list(), vec![(p(2), Role::Owner)]);
    }

    #[test]
    fn should_refuse_a_role_for_the_anonymous_principal() {
        let mut roles = Roles::init(VectorMemory::default());
        roles.grant(p(1), Role::Owner);
        roles.grant(Principal::anonymous(), Role::Reader);
        assert_eq!(roles.list(), vec![(p(1), Role::Owner)]);
        let grant = RoleChange {
            principal: Principal::anonymous(),
            role: Role::Writer,
            grant: true,
        };
        assert!(matches!(
            roles.apply(std::slice::from_ref(&grant)),
            Err(VaultError::InvalidRequest(m)) if m.contains("anonymous")
        ));
        assert!(
            roles
                .authorize(Principal::anonymous(), Role::Writer)
                .is_err()
        );
        let revoke = RoleChange {
            grant: false,
            ..grant
        };
        roles.apply(&[revoke]).expect("revoking is always allowed");
    }
}
