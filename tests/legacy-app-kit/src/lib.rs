//! legacy-app after adopting the canvault kit (test canister). The same store code
//! (`../legacy-app/src/store.rs`) over `canvault_kit::memory()` instead of
//! `DefaultMemoryImpl`, the kit's endpoints exported, and one changed line in
//! `post_upgrade`: `canvault_kit::post_upgrade_adopting`. The first upgrade from
//! legacy-app moves its stable memory into the kit's image; every later upgrade is a
//! normal one.
//!
//! `post_upgrade` takes an optional text argument for the fault scenarios:
//! `"trap-after-adoption"` makes the app's own part of `post_upgrade` trap after the
//! kit adopted (an app bug in the first kit release), which must roll the whole upgrade
//! back.

#[path = "../../legacy-app/src/endpoints.rs"]
mod endpoints;
#[path = "../../legacy-app/src/store.rs"]
mod store;

use std::cell::RefCell;

use canvault_kit::{AppMemory, Hooks};

use store::{Kind, Store};

type Mem = AppMemory;

thread_local! {
    static STORE: RefCell<Option<Store<Mem>>> = const { RefCell::new(None) };
}

fn app_memory() -> Mem {
    canvault_kit::memory()
}

fn with_store<R>(f: impl FnOnce(&mut Store<Mem>) -> R) -> R {
    STORE.with(|s| {
        f(s.borrow_mut()
            .get_or_insert_with(|| Store::open(app_memory())))
    })
}

/// After a restore the image changed under the structures: re-open them.
fn reopen() {
    STORE.with(|s| *s.borrow_mut() = Some(Store::open(app_memory())));
}

const HOOKS: Hooks = Hooks {
    before_snapshot: None,
    after_restore: Some(reopen),
};

#[ic_cdk::init]
fn init(kind: Kind) {
    canvault_kit::init(HOOKS);
    STORE.with(|s| *s.borrow_mut() = Some(Store::create(app_memory(), kind)));
}

#[ic_cdk::post_upgrade]
fn post_upgrade(fault: Option<String>) {
    canvault_kit::post_upgrade_adopting(HOOKS);
    with_store(|_| ());
    if fault.as_deref() == Some("trap-after-adoption") {
        ic_cdk::trap("legacy-app-kit: trap after adoption (fault scenario)");
    }
}

canvault_kit::export_endpoints!();
