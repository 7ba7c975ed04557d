//! Quotas: vaults per principal and creations per caller and UTC day.
//!
//! A vault counts against its subject (see `deployment::quota_subject`) from the moment
//! its deployment is accepted until the deployment is cancelled or the vault deleted,
//! so concurrent requests cannot overshoot. Creations count on the day they were
//! accepted; a caller's older days are pruned when it creates again.

use candid::Principal;
use canvault_factory_api::{FactoryError, QuotaKind, Quotas};
use ic_stable_structures::{Memory, StableBTreeMap};

use crate::memory::{self, Memories, Vm};

/// Nanoseconds per day.
const DAY_NS: u64 = 86_400 * 1_000_000_000;

/// The UTC day of `now_ns`.
#[must_use]
pub fn day_of(now_ns: u64) -> u64 {
    now_ns / DAY_NS
}

/// Checks usage against the limits. Pure.
///
/// # Errors
/// [`FactoryError::QuotaExceeded`] when one more vault or one more creation today would
/// pass a limit.
pub fn check(limits: &Quotas, vaults: u32, today: u32) -> Result<(), FactoryError> {
    if vaults >= limits.max_vaults_per_principal {
        return Err(FactoryError::QuotaExceeded {
            quota: QuotaKind::VaultsPerPrincipal,
            limit: limits.max_vaults_per_principal,
            used: vaults,
        });
    }
    if today >= limits.max_creations_per_day {
        return Err(FactoryError::QuotaExceeded {
            quota: QuotaKind::CreationsPerDay,
            limit: limits.max_creations_per_day,
            used: today,
        });
    }
    Ok(())
}

/// Usage counters.
pub struct Quota<M: Memory> {
    vaults: StableBTreeMap<Principal, u32, Vm<M>>,
    daily: StableBTreeMap<(Principal, u64), u32, Vm<M>>,
}

impl<M: Memory> Quota<M> {
    /// Loads (or creates) the counters.
    pub fn init(memories: &Memories<M>) -> Self {
        Self {
            vaults: StableBTreeMap::init(memories.get(memory::VAULT_COUNTS)),
            daily: StableBTreeMap::init(memories.get(memory::DAILY_CREATIONS)),
        }
    }

    /// Vaults counted against `subject`.
    #[must_use]
    pub fn vaults(&self, subject: Principal) -> u32 {
        self.vaults.get(&subject).unwrap_or(0)
    }

    /// Creations `caller` started on the day of `now`.
    #[must_use]
    pub fn today(&self, caller: Principal, now: u64) -> u32 {
        self.daily.get(&(caller, day_of(now))).unwrap_or(0)
    }

    /// Checks that `subject` may have one more vault and `caller` create one more today.
    ///
    /// # Errors
    /// [`FactoryError::QuotaExceeded`].
    pub fn check(
        &self,
        limits: &Quotas,
        subject: Principal,
        caller: Principal,
        now: u64,
    ) -> Result<(), FactoryError> {
        check(limits, self.vaults(subject), self.today(caller, now))
    }

    /// Counts an accepted deployment.
    pub fn record_creation(&mut self, subject: Principal, caller: Principal, now: u64) {
        let day = day_of(now);
        let old: Vec<_> = self.daily.keys_range((caller, 0)..(caller, day)).collect();
        for key in old {
            self.daily.remove(&key);
        }
        let today = self.today(caller, now);
        self.daily.insert((caller, day), today + 1);
        let vaults = self.vaults(subject);
        self.vaults.insert(subject, vaults + 1);
    }

    /// A vault of `subject` is gone (deployment cancelled, vault deleted).
    pub fn release_vault(&mut self, subject: Principal) {
        match self.vaults(subject) {
            0 | 1 => {
                self.vaults.remove(&subject);
            }
            n => {
                self.vaults.insert(subject, n - 1);
            }
        }
    }
}

#[cfg(test)]
mod tests;
