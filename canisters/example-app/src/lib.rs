//! canvault's example app: a small social network (users, posts) kept in
//! ic-stable-structures on the kit's memory, with bulk endpoints so tests and the demo
//! can build realistic images of any size. It embeds the kit in three lines:
//! `canvault_kit::init`, `canvault_kit::post_upgrade` and `canvault_kit::export_endpoints!()`.

mod content;

use std::cell::RefCell;

use candid::{CandidType, Encode, Principal};
use canvault_kit::{AppMemory, Hooks};
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::{StableBTreeMap, Storable};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use content::Rng;

type Vm = VirtualMemory<AppMemory>;

/// Instructions a bulk call may spend before it returns and asks to be called again.
const BULK_INSTRUCTION_BUDGET: u64 = 20_000_000_000;

/// A user.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// When the user joined.
    pub joined_at_ns: u64,
}

/// A post.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Post {
    /// Id.
    pub id: u64,
    /// Author's user id.
    pub author: u64,
    /// When it was posted.
    pub created_at_ns: u64,
    /// The text.
    pub text: String,
    /// Times it was edited.
    pub edits: u32,
}

canvault_kit::candid_storable!(User);
canvault_kit::candid_storable!(Post);

/// Counts and size.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AppStats {
    /// Users.
    pub users: u64,
    /// Posts.
    pub posts: u64,
    /// Size of the app's stable memory image in bytes.
    pub image_bytes: u64,
}

/// Errors of the app's own endpoints.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum AppError {
    /// Only the app's controllers may change data in bulk.
    Unauthorized(Principal),
    /// The caller has not joined (call `join` first).
    NotAMember(Principal),
    /// The caller has not opted in to a personal vault.
    NotOptedIn(Principal),
    /// The kit refused the data-set backup.
    Backup(String),
    /// The vault named for personal backups may not be used (the app's own backup
    /// vault, the app itself, or a vault another user registered).
    VaultNotAllowed(Principal),
}

struct Db {
    users: StableBTreeMap<u64, User, Vm>,
    posts: StableBTreeMap<u64, Post, Vm>,
    /// Raw media bytes (incompressible), for benchmarks of worst-case images.
    media: Vm,
    /// Reserved but unwritten space (zeros), for benchmarks of mostly-empty images.
    reserve: Vm,
    /// Signed-in principals → their user id.
    members: StableBTreeMap<Principal, u64, Vm>,
    /// Users who opted in to a personal vault → that vault.
    personal_vaults: StableBTreeMap<Principal, Principal, Vm>,
    /// Personal vault → the user who registered it (one user per vault).
    vault_users: StableBTreeMap<Principal, Principal, Vm>,
}

thread_local! {
    static DB: RefCell<Option<Db>> = const { RefCell::new(None) };
}

fn open() -> Db {
    let mm = MemoryManager::init(canvault_kit::memory());
    Db {
        users: StableBTreeMap::init(mm.get(MemoryId::new(0))),
        posts: StableBTreeMap::init(mm.get(MemoryId::new(1))),
        media: mm.get(MemoryId::new(2)),
        reserve: mm.get(MemoryId::new(3)),
        members: StableBTreeMap::init(mm.get(MemoryId::new(4))),
        personal_vaults: StableBTreeMap::init(mm.get(MemoryId::new(5))),
        vault_users: StableBTreeMap::init(mm.get(MemoryId::new(6))),
    }
}

/// Builds the vault → user index (memory 6, added after memory 5) from the
/// registrations of an older image that has none. The first user of a vault keeps it.
fn index_vault_users(db: &mut Db) {
    if db.vault_users.is_empty() {
        let pairs: Vec<(Principal, Principal)> =
            db.personal_vaults.iter().map(|e| e.into_pair()).collect();
        for (user, vault) in pairs {
            if !db.vault_users.contains_key(&vault) {
                db.vault_users.insert(vault, user);
            }
        }
    }
}

fn with_db<R>(f: impl FnOnce(&mut Db) -> R) -> R {
    DB.with(|d| f(d.borrow_mut().get_or_insert_with(open)))
}

/// After a restore the image under the maps changed: re-open them.
fn reopen() {
    DB.with(|d| *d.borrow_mut() = Some(open()));
    with_db(index_vault_users);
}

const HOOKS: Hooks = Hooks {
    before_snapshot: None,
    after_restore: Some(reopen),
};

fn require_controller() -> Result<(), AppError> {
    let caller = ic_cdk::api::msg_caller();
    if ic_cdk::api::is_controller(&caller) {
        Ok(())
    } else {
        Err(AppError::Unauthorized(caller))
    }
}

fn image_bytes() -> u64 {
    use ic_stable_structures::Memory;
    canvault_kit::memory().size() * 65_536
}

#[ic_cdk::init]
fn init() {
    canvault_kit::init(HOOKS);
    with_db(|_| ());
}

#[ic_cdk::post_upgrade]
fn post_upgrade() {
    canvault_kit::post_upgrade(HOOKS);
    with_db(index_vault_users);
}

/// Endpoints only the app's controllers may call.
const CONTROLLER_METHODS: &[&str] = &[
    "add_users",
    "add_posts",
    "fill_to",
    "fill_articles_to",
    "fill_media_to",
    "reserve_to",
    "edit_posts",
];

/// Drops ingress the endpoints would refuse before it costs the app anything: the
/// kit's endpoints by the kit's verdict, the bulk endpoints from non-controllers, and
/// every update from the anonymous principal. The checks in the methods stay.
#[ic_cdk::inspect_message]
fn inspect_message() {
    use canvault_kit::inspect::Verdict;
    let accept = match canvault_kit::inspect_message() {
        Verdict::Accept => true,
        Verdict::Reject(_) => false,
        Verdict::NotKit => {
            let caller = ic_cdk::api::msg_caller();
            let method = ic_cdk::api::msg_method_name();
            caller != Principal::anonymous()
                && (!CONTROLLER_METHODS.contains(&method.as_str())
                    || ic_cdk::api::is_controller(&caller))
        }
    };
    if accept {
        ic_cdk::api::accept_message();
    }
}

/// Adds `count` users; returns the user count.
#[ic_cdk::update(decode_with = "canvault_kit::decode::endpoint_args", hidden = true)]
#[::candid::candid_method(update, rename = "add_users")]
fn add_users(count: u32, seed: u64) -> Result<u64, AppError> {
    require_controller()?;
    let now = ic_cdk::api::time();
    Ok(with_db(|db| {
        for _ in 0..count {
            let id = db.users.len();
            let name = content::user_name(&mut Rng::new(seed, id), id);
            db.users.insert(
                id,
                User {
                    id,
                    name,
                    joined_at_ns: now,
                },
            );
        }
        db.users.len()
    }))
}

/// Appends a post with the next id; returns the id.
fn append_post(db: &mut Db, author: u64, created_at_ns: u64, text: String) -> u64 {
    let id = db.posts.len();
    let post = Post {
        id,
        author,
        created_at_ns,
        text,
        edits: 0,
    };
    db.posts.insert(id, post);
    id
}

/// Appends a generated post (`text` makes a short post or an article) by a
/// pseudo-random author, deterministic in `seed` and the post id.
fn generated_post(db: &mut Db, seed: u64, now: u64, text: fn(&mut Rng) -> String) {
    let mut rng = Rng::new(seed, db.posts.len());
    let author = rng.below(db.users.len().max(1));
    let text = text(&mut rng);
    append_post(db, author, now, text);
}

/// Adds `count` posts; returns the post count.
#[ic_cdk::update(decode_with = "canvault_kit::decode::endpoint_args", hidden = true)]
#[::candid::candid_method(update, rename = "add_posts")]
fn add_posts(count: u32, seed: u64) -> Result<u64, AppError> {
    require_controller()?;
    let now = ic_cdk::api::time();
    Ok(with_db(|db| {
        for _ in 0..count {
            generated_post(db, seed, now, content::post_text);
        }
        db.posts.len()
    }))
}

/// Adds posts until the image reaches `target_bytes` or this call's instruction budget
/// is spent; call again until it returns stats with `image_bytes >= target_bytes`.
#[ic_cdk::update(decode_with = "canvault_kit::decode::endpoint_args", hidden = true)]
#[::candid::candid_method(update, rename = "fill_to")]
fn fill_to(target_bytes: u64, seed: u64) -> Result<AppStats, AppError> {
    require_controller()?;
    let now = ic_cdk::api::time();
    with_db(|db| {
        while image_bytes() < target_bytes
            && ic_cdk::api::instruction_counter() < BULK_INSTRUCTION_BUDGET
        {
            for _ in 0..64 {
                generated_post(db, seed, now, content::post_text);
            }
        }
    });
    Ok(stats())
}

/// As `fill_to`, with long-form posts (about 4 KiB each): builds large images fast.
#[ic_cdk::update(decode_with = "canvault_kit::decode::endpoint_args", hidden = true)]
#[::candid::candid_method(update, rename = "fill_articles_to")]
fn fill_articles_to(target_bytes: u64, seed: u64) -> Result<AppStats, AppError> {
    require_controller()?;
    let now = ic_cdk::api::time();
    with_db(|db| {
        while image_bytes() < target_bytes
            && ic_cdk::api::instruction_counter() < BULK_INSTRUCTION_BUDGET
        {
            generated_post(db, seed, now, content::article_text);
        }
    });
    Ok(stats())
}

/// Appends incompressible media bytes until the image reaches `target_bytes` (or the
/// call's budget is spent; call again).
#[ic_cdk::update(decode_with = "canvault_kit::decode::endpoint_args", hidden = true)]
#[::candid::candid_method(update, rename = "fill_media_to")]
fn fill_media_to(target_bytes: u64, seed: u64) -> Result<AppStats, AppError> {
    use ic_stable_structures::Memory;
    require_controller()?;
    with_db(|db| {
        let mut buf = vec![0u8; 1 << 20];
        while image_bytes() < target_bytes
            && ic_cdk::api::instruction_counter() < BULK_INSTRUCTION_BUDGET
        {
            let offset = db.media.size() * 65_536;
            content::random_bytes(&mut Rng::new(seed, offset), &mut buf);
            assert!(db.media.grow(16) >= 0, "stable memory exhausted");
            db.media.write(offset, &buf);
        }
    });
    Ok(stats())
}

/// Grows the image to `target_bytes` without writing (reserved, all-zero space).
#[ic_cdk::update(decode_with = "canvault_kit::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "reserve_to")]
fn reserve_to(target_bytes: u64) -> Result<AppStats, AppError> {
    use ic_stable_structures::Memory;
    require_controller()?;
    with_db(|db| {
        while image_bytes() < target_bytes {
            assert!(db.reserve.grow(128) >= 0, "stable memory exhausted");
        }
    });
    Ok(stats())
}

/// Rewrites the text of posts `first_id..first_id + count` (recent edits, as users make
/// them); returns how many were edited.
#[ic_cdk::update(decode_with = "canvault_kit::decode::endpoint_args", hidden = true)]
#[::candid::candid_method(update, rename = "edit_posts")]
fn edit_posts(first_id: u64, count: u64, seed: u64) -> Result<u64, AppError> {
    require_controller()?;
    Ok(with_db(|db| {
        let mut edited = 0;
        for id in first_id..first_id.saturating_add(count) {
            let Some(mut post) = db.posts.get(&id) else {
                break;
            };
            post.text = content::post_text(&mut Rng::new(seed ^ 0xED17, id));
            post.edits += 1;
            db.posts.insert(id, post);
            edited += 1;
        }
        edited
    }))
}

fn member() -> Result<(Principal, u64), AppError> {
    let caller = ic_cdk::api::msg_caller();
    with_db(|db| db.members.get(&caller))
        .map(|id| (caller, id))
        .ok_or(AppError::NotAMember(caller))
}

/// The caller joins the app as a user with `name`; returns their user id (joining
/// twice returns the same id).
#[ic_cdk::update(decode_with = "canvault_kit::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "join")]
fn join(name: String) -> Result<u64, AppError> {
    let caller = ic_cdk::api::msg_caller();
    if caller == Principal::anonymous() {
        return Err(AppError::NotAMember(caller));
    }
    let now = ic_cdk::api::time();
    Ok(with_db(|db| {
        if let Some(id) = db.members.get(&caller) {
            return id;
        }
        let id = db.users.len();
        db.users.insert(
            id,
            User {
                id,
                name,
                joined_at_ns: now,
            },
        );
        db.members.insert(caller, id);
        id
    }))
}

/// The caller posts `text`; returns the post id.
#[ic_cdk::update(decode_with = "canvault_kit::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "post")]
fn post(text: String) -> Result<u64, AppError> {
    let (_, author) = member()?;
    let now = ic_cdk::api::time();
    Ok(with_db(|db| append_post(db, author, now, text)))
}

/// The caller opts in to backups of their own data into `vault`, their personal vault
/// (which they own and control; this app must be one of its writers). Refused for the
/// app's own backup vault, the app itself, and a vault another user registered: one
/// user's data never lands in the app's vault or in another user's.
#[ic_cdk::update(decode_with = "canvault_kit::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(update, rename = "opt_in_personal_vault")]
fn opt_in_personal_vault(vault: Principal) -> Result<(), AppError> {
    let (caller, _) = member()?;
    if vault == ic_cdk::api::canister_self()
        || Some(vault) == canvault_kit::image_vault()
        || vault == Principal::anonymous()
    {
        return Err(AppError::VaultNotAllowed(vault));
    }
    with_db(|db| {
        if db
            .vault_users
            .get(&vault)
            .is_some_and(|user| user != caller)
        {
            return Err(AppError::VaultNotAllowed(vault));
        }
        if let Some(old) = db.personal_vaults.insert(caller, vault)
            && old != vault
        {
            db.vault_users.remove(&old);
        }
        db.vault_users.insert(vault, caller);
        Ok(())
    })
}

/// Backs the caller's data (their profile and posts, candid-encoded) up to their
/// personal vault; only the changed chunks travel.
#[ic_cdk::update]
fn backup_my_data() -> Result<(), AppError> {
    let (caller, user_id) = member()?;
    let (vault, bytes) = with_db(|db| {
        let vault = db
            .personal_vaults
            .get(&caller)
            .ok_or(AppError::NotOptedIn(caller))?;
        let user = db.users.get(&user_id);
        let posts: Vec<Post> = db
            .posts
            .iter()
            .map(|e| e.value())
            .filter(|p| p.author == user_id)
            .collect();
        Ok((vault, Encode!(&user, &posts).expect("encodes")))
    })?;
    canvault_kit::backup_dataset(&caller.to_text(), vault, bytes)
        .map_err(|e| AppError::Backup(e.to_string()))
}

/// The state of the caller's personal backups.
#[ic_cdk::query]
fn my_data_backup() -> Result<Option<canvault_kit::DatasetInfo>, AppError> {
    let (caller, _) = member()?;
    Ok(canvault_kit::dataset_info(&caller.to_text()))
}

/// One post.
#[ic_cdk::query(decode_with = "canvault_kit::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(query, rename = "get_post")]
fn get_post(id: u64) -> Option<Post> {
    with_db(|db| db.posts.get(&id))
}

/// One user.
#[ic_cdk::query(decode_with = "canvault_kit::decode::endpoint_arg", hidden = true)]
#[::candid::candid_method(query, rename = "get_user")]
fn get_user(id: u64) -> Option<User> {
    with_db(|db| db.users.get(&id))
}

/// Counts and image size.
#[ic_cdk::query]
fn stats() -> AppStats {
    with_db(|db| AppStats {
        users: db.users.len(),
        posts: db.posts.len(),
        image_bytes: image_bytes(),
    })
}

/// SHA-256 over the candid encoding of posts `start..` (at most `limit`), and the id
/// to continue from: lets a client compare two apps' content page by page.
#[ic_cdk::query(decode_with = "canvault_kit::decode::endpoint_args", hidden = true)]
#[::candid::candid_method(query, rename = "digest")]
fn digest(start: u64, limit: u64) -> (Vec<u8>, Option<u64>) {
    with_db(|db| {
        let mut h = Sha256::new();
        let mut next = None;
        for (n, entry) in db.posts.range(start..).enumerate() {
            if n as u64 == limit {
                next = Some(*entry.key());
                break;
            }
            h.update(entry.value().to_bytes());
        }
        (h.finalize().to_vec(), next)
    })
}

canvault_kit::export_endpoints!();

/// The candid interface, generated from the endpoints (`example-app.did` is its
/// committed copy, checked by the test below).
mod candid_interface {
    #[allow(clippy::wildcard_imports)]
    use super::*;

    ic_cdk::export_candid!();

    #[cfg(test)]
    mod tests {
        #[test]
        fn candid_interface_matches_example_app_did() {
            use candid_parser::utils::{CandidSource, service_equal};
            let code = super::__export_service();
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/example-app.did");
            if std::env::var_os("CANVAULT_UPDATE_DID").is_some() {
                std::fs::write(path, &code).expect("writes example-app.did");
            }
            let committed = std::fs::read_to_string(path).expect("example-app.did exists");
            service_equal(CandidSource::Text(&committed), CandidSource::Text(&code)).unwrap_or_else(|e| {
                panic!("example-app.did is out of date ({e}); regenerate: CANVAULT_UPDATE_DID=1 cargo test -p canvault-example-app")
            });
        }
    }
}
