//! An app written before the kit (test canister): its structures live in raw stable
//! memory, in a `MemoryManager` over `DefaultMemoryImpl` or as records at fixed offsets
//! (`store.rs`). legacy-app-kit is the same app after adopting the kit; the adoption
//! scenarios (`tests/tests/kit_adoption.rs`) fill this one and upgrade it to that one.
//! Interface: `endpoints.rs`.

mod endpoints;
mod store;

use std::cell::RefCell;

use ic_stable_structures::DefaultMemoryImpl;

use store::{Kind, Store};

type Mem = DefaultMemoryImpl;

thread_local! {
    static STORE: RefCell<Option<Store<Mem>>> = const { RefCell::new(None) };
}

fn app_memory() -> Mem {
    DefaultMemoryImpl::default()
}

fn with_store<R>(f: impl FnOnce(&mut Store<Mem>) -> R) -> R {
    STORE.with(|s| {
        f(s.borrow_mut()
            .get_or_insert_with(|| Store::open(app_memory())))
    })
}

#[ic_cdk::init]
fn init(kind: Kind) {
    STORE.with(|s| *s.borrow_mut() = Some(Store::create(app_memory(), kind)));
}

#[ic_cdk::post_upgrade]
fn post_upgrade() {
    with_store(|_| ());
}
