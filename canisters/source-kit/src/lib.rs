//! The canvault source kit: embed it in an app canister to back its stable memory up
//! to a vault on another subnet, and to receive restores.
//!
//! ```ignore
//! use canvault_kit::{AppMemory, Hooks};
//! use ic_stable_structures::{memory_manager::{MemoryId, MemoryManager}, StableBTreeMap};
//!
//! thread_local! {
//!     // The app builds its structures on the kit's memory instead of raw stable memory.
//!     static MM: RefCell<MemoryManager<AppMemory>> = RefCell::new(MemoryManager::init(canvault_kit::memory()));
//! }
//!
//! #[ic_cdk::init]
//! fn init() { canvault_kit::init(Hooks::default()); }
//! #[ic_cdk::post_upgrade]
//! fn post_upgrade() { canvault_kit::post_upgrade(Hooks::default()); }
//!
//! canvault_kit::export_endpoints!(); // canvault_configure, canvault_backup_now, canvault_status, ...
//! ```
//!
//! The app's image is exactly the bytes it writes through [`AppMemory`]; the kit keeps
//! its own state in other memories of the raw stable memory (see `kit.rs`).

pub mod adopt;
mod api;
pub mod backup;
pub mod bitmap;
pub mod dataset;
mod driver;
pub mod inspect;
pub mod integrity;
pub mod kit;
mod restore;
pub mod state;

use std::cell::RefCell;

use ic_stable_structures::{DefaultMemoryImpl, Memory};

pub use api::{
    abandon_restore, arm_restore, backup_dataset, backup_now, configure, dataset_info, image_vault,
    restore_begin, restore_chunks, restore_finish, status,
};
/// The candid decoding quotas of the kit's endpoints (used by [`export_endpoints!`]).
pub use canvault_protocol::decode;
pub use canvault_protocol::kit_api::DatasetInfo;
pub use canvault_protocol::kit_api::{
    ArmRestoreRequest, KitConfig, KitError, KitStatus, RestoreBeginRequest, RestoreChunksRequest,
};
pub use kit::Kit;

/// App callbacks around backups and restores.
#[derive(Clone, Copy, Default)]
pub struct Hooks {
    /// Runs right before the image is frozen: serialise heap state into the memory here.
    pub before_snapshot: Option<fn()>,
    /// Runs right after a restore switched the image: reload heap caches here (e.g.
    /// re-open `StableBTreeMap`s, whose roots live on the heap).
    pub after_restore: Option<fn()>,
}

thread_local! {
    static KIT: RefCell<Option<Kit<DefaultMemoryImpl>>> = const { RefCell::new(None) };
    static HOOKS: RefCell<Hooks> = RefCell::new(Hooks::default());
}

/// Runs `f` on the kit, opening it on first use.
pub(crate) fn with_kit<R>(f: impl FnOnce(&mut Kit<DefaultMemoryImpl>) -> R) -> R {
    KIT.with(|k| {
        let mut k = k.borrow_mut();
        let kit = k.get_or_insert_with(|| Kit::load(DefaultMemoryImpl::default()));
        f(kit)
    })
}

pub(crate) fn hooks() -> Hooks {
    HOOKS.with(|h| *h.borrow())
}

pub(crate) fn now() -> u64 {
    ic_cdk::api::time()
}

/// Call from `#[init]`: registers the hooks and arms the backup schedule.
pub fn init(hooks: Hooks) {
    HOOKS.with(|h| *h.borrow_mut() = hooks);
    with_kit(|_| ());
    api::arm_timers();
}

/// Call from `#[post_upgrade]`: as [`init`], and resumes a backup that was in progress.
/// Stable memory that is not the kit's layout (an existing canister's own data) makes it
/// trap, so the IC keeps the old module: adopting it takes [`post_upgrade_adopting`].
pub fn post_upgrade(hooks: Hooks) {
    init(hooks);
}

/// Call from `#[post_upgrade]` instead of [`post_upgrade`] to switch an existing canister
/// to the kit in one upgrade: whatever raw stable memory held (data written through
/// `ic0.stable*`, or the app's own `MemoryManager` over `DefaultMemoryImpl`) becomes the
/// kit's image byte for byte, so the app re-opens the same structures on [`memory()`]
/// (e.g. `MemoryManager::init(canvault_kit::memory())`) and raw-stable code reads
/// [`memory()`] at the same offsets. Call it first, before the app touches [`memory()`].
///
/// Explicit and idempotent: on memory that already has the kit's layout (every later
/// upgrade with the same line) or on empty memory it is exactly [`post_upgrade`].
/// The whole move runs inside this upgrade, which the IC commits atomically: a trap
/// at any point leaves the old module and its stable memory untouched. Stable memory
/// above [`adopt::MAX_ADOPTION_BYTES`] (7 GiB) is refused (trap, nothing changed).
/// See `adopt.rs` for the invariants, cost and peak memory.
///
/// # Panics
/// Traps when the memory cannot be adopted ([`adopt::AdoptError`]) or is a kit layout
/// the kit cannot read (as [`post_upgrade`]).
pub fn post_upgrade_adopting(hooks: Hooks) -> adopt::Adoption {
    let outcome = KIT.with(|k| {
        let mut k = k.borrow_mut();
        if k.is_some() {
            // Already opened in this execution, which only a kit layout allows.
            return adopt::Adoption::AlreadyKit;
        }
        let (kit, outcome) = Kit::load_or_adopt(DefaultMemoryImpl::default())
            .unwrap_or_else(|e| panic!("canvault kit: cannot adopt stable memory: {e}"));
        *k = Some(kit);
        outcome
    });
    if let adopt::Adoption::Adopted {
        bytes,
        raw_bytes_after,
    } = outcome
    {
        ic_cdk::println!(
            "canvault: adopted {bytes} bytes of stable memory as the app image ({raw_bytes_after} bytes of raw stable memory now; {} instructions)",
            ic_cdk::api::instruction_counter()
        );
    }
    post_upgrade(hooks);
    outcome
}

/// The kit's verdict on the ingress message being inspected; call it from the app's
/// `#[ic_cdk::inspect_message]` and accept the message only if it is
/// [`inspect::Verdict::Accept`] (or `NotKit` and the app's own filter accepts it):
///
/// ```ignore
/// #[ic_cdk::inspect_message]
/// fn inspect_message() {
///     match canvault_kit::inspect_message() {
///         canvault_kit::inspect::Verdict::Accept => ic_cdk::api::accept_message(),
///         canvault_kit::inspect::Verdict::Reject(_) => {}
///         canvault_kit::inspect::Verdict::NotKit => { /* the app's own filter */ }
///     }
/// }
/// ```
#[must_use]
pub fn inspect_message() -> inspect::Verdict {
    let method = ic_cdk::api::msg_method_name();
    let caller = ic_cdk::api::msg_caller();
    let (admins, armed_vault, last_restore_vault) = with_kit(|k| {
        let s = k.state();
        (
            s.config.admins.clone(),
            s.restore.as_ref().map(|r| r.vault),
            s.last_restore.as_ref().map(|r| r.vault),
        )
    });
    let is_admin = || ic_cdk::api::is_controller(&caller) || admins.contains(&caller);
    inspect::verdict(
        &method,
        caller,
        &inspect::Callers {
            is_admin: &is_admin,
            armed_vault,
            last_restore_vault,
        },
    )
}

/// The app's stable memory. Build `MemoryManager`s and stable structures on it as on
/// `DefaultMemoryImpl`; the kit tracks writes for incremental, point-in-time backups.
#[derive(Clone, Copy, Debug, Default)]
pub struct AppMemory;

/// The app's memory handle.
#[must_use]
pub fn memory() -> AppMemory {
    AppMemory
}

impl Memory for AppMemory {
    fn size(&self) -> u64 {
        with_kit(|k| k.image_pages())
    }

    fn grow(&self, pages: u64) -> i64 {
        with_kit(|k| k.image_grow(pages))
    }

    fn read(&self, offset: u64, dst: &mut [u8]) {
        with_kit(|k| k.image_read(offset, dst));
    }

    fn write(&self, offset: u64, src: &[u8]) {
        with_kit(|k| k.image_write(offset, src));
    }
}

/// Implements `ic_stable_structures::Storable` for a candid type (unbounded, encoded
/// with candid). For app records kept in stable structures on the kit's memory.
#[macro_export]
macro_rules! candid_storable {
    ($t:ty) => {
        impl ::ic_stable_structures::Storable for $t {
            fn to_bytes(&self) -> ::std::borrow::Cow<'_, [u8]> {
                ::std::borrow::Cow::Owned(::candid::encode_one(self).expect("candid encodes"))
            }
            fn into_bytes(self) -> Vec<u8> {
                ::candid::encode_one(&self).expect("candid encodes")
            }
            fn from_bytes(bytes: ::std::borrow::Cow<'_, [u8]>) -> Self {
                ::candid::decode_one(&bytes).expect("candid decodes")
            }
            const BOUND: ::ic_stable_structures::storable::Bound =
                ::ic_stable_structures::storable::Bound::Unbounded;
        }
    };
}

/// Exports the kit's endpoints from the app canister, one line:
/// `canvault_configure`, `canvault_backup_now`, `canvault_status`,
/// `canvault_arm_restore`, `canvault_abandon_restore`, and the vault-facing
/// `canvault_restore_begin`, `canvault_restore_chunks`, `canvault_restore_finish`.
/// Admin endpoints accept the app's controllers and the configured admins. Arguments
/// are decoded within [`decode::decoder_config`]'s quotas (a hostile argument traps
/// before the method runs); the candid interface keeps their types. Wire
/// [`inspect_message`] into the app's `#[inspect_message]` to drop ingress those
/// endpoints would refuse.
///
/// The app must depend on this crate as `canvault_kit` (the candid export records
/// the argument types by path).
#[macro_export]
macro_rules! export_endpoints {
    () => {
        /// Changes kit settings (admins).
        #[ic_cdk::update(decode_with = "::canvault_kit::decode::endpoint_arg", hidden = true)]
        #[::candid::candid_method(update, rename = "canvault_configure")]
        fn canvault_configure(
            config: ::canvault_kit::KitConfig,
        ) -> Result<(), ::canvault_kit::KitError> {
            ::canvault_kit::configure(config)
        }
        /// Freezes the image and starts a backup (admins).
        #[ic_cdk::update]
        fn canvault_backup_now() -> Result<(), ::canvault_kit::KitError> {
            ::canvault_kit::backup_now()
        }
        /// Backup and restore progress (admins).
        #[ic_cdk::query]
        fn canvault_status() -> Result<::canvault_kit::KitStatus, ::canvault_kit::KitError> {
            ::canvault_kit::status()
        }
        /// Allows one vault to push one snapshot into this canister (admins).
        #[ic_cdk::update(decode_with = "::canvault_kit::decode::endpoint_arg", hidden = true)]
        #[::candid::candid_method(update, rename = "canvault_arm_restore")]
        fn canvault_arm_restore(
            req: ::canvault_kit::ArmRestoreRequest,
        ) -> Result<(), ::canvault_kit::KitError> {
            ::canvault_kit::arm_restore(req)
        }
        /// Drops an armed restore; the live image is untouched (admins).
        #[ic_cdk::update]
        fn canvault_abandon_restore() -> Result<(), ::canvault_kit::KitError> {
            ::canvault_kit::abandon_restore()
        }
        /// The armed vault announces the image.
        #[ic_cdk::update(decode_with = "::canvault_kit::decode::endpoint_arg", hidden = true)]
        #[::candid::candid_method(update, rename = "canvault_restore_begin")]
        fn canvault_restore_begin(
            req: ::canvault_kit::RestoreBeginRequest,
        ) -> Result<(), ::canvault_kit::KitError> {
            ::canvault_kit::restore_begin(req)
        }
        /// The armed vault pushes verified chunks into the staging image.
        #[ic_cdk::update(decode_with = "::canvault_kit::decode::endpoint_arg", hidden = true)]
        #[::candid::candid_method(update, rename = "canvault_restore_chunks")]
        fn canvault_restore_chunks(
            req: ::canvault_kit::RestoreChunksRequest,
        ) -> Result<u32, ::canvault_kit::KitError> {
            ::canvault_kit::restore_chunks(req)
        }
        /// The armed vault asks to verify the whole image and switch to it.
        #[ic_cdk::update(decode_with = "::canvault_kit::decode::endpoint_arg", hidden = true)]
        #[::candid::candid_method(update, rename = "canvault_restore_finish")]
        fn canvault_restore_finish(snapshot_id: u64) -> Result<(), ::canvault_kit::KitError> {
            ::canvault_kit::restore_finish(snapshot_id)
        }
    };
}

#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod hardening_tests;
#[cfg(test)]
mod table_tests;
#[cfg(test)]
mod tests;
