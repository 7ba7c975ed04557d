//! Upgrades from the previous release's modules (`tests/fixtures/previous/`, built from
//! d973571) to the modules of this tree: every snapshot made before the upgrade still
//! downloads byte for byte and restores into a fresh app, and the upgraded kit and
//! vault keep backing up. A persistent layout change without its migration fails here.
//! Build the wasm first: `scripts/build-wasm.sh`.

use std::io::Read;

use candid::Encode;
use canvault_protocol::vault_api::{RestoreJobState, SnapshotState, VaultInit};
use canvault_scenarios::app::AppScenario;
use canvault_scenarios::wasm;
use flate2::read::GzDecoder;

const MIB: u64 = 1 << 20;

/// The previous release's module `name` (e.g. `canvault_vault`).
fn previous(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/fixtures/previous/{name}.wasm.gz",
        env!("CARGO_MANIFEST_DIR")
    );
    let gz = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut wasm = Vec::new();
    GzDecoder::new(gz.as_slice())
        .read_to_end(&mut wasm)
        .expect("a gzip file");
    wasm
}

/// A snapshot made by the previous modules: its id, its image as downloaded then, and
/// the app's content digest when it was taken.
struct Made {
    id: u64,
    image: Vec<u8>,
    content: Vec<Vec<u8>>,
}

#[test]
fn snapshots_made_by_the_previous_release_restore_after_upgrading_vault_and_app() {
    let mut s =
        AppScenario::with_modules(previous("canvault_vault"), previous("canvault_example_app"));
    let mut made = Vec::new();
    for (round, bytes) in [(1u64, 3 * MIB), (2, 4 * MIB)] {
        s.fill(s.app, bytes, round);
        let status = s.backup();
        let id = status.last_backup.expect("a backup completed").snapshot_id;
        let content = s.content_digest(s.app);
        let image = s.download(id);
        made.push(Made { id, image, content });
    }

    // Upgrade both the IC way: stop, upgrade to this tree's module, start.
    for (canister, module, arg) in [
        (
            s.vault,
            "canvault_vault",
            Encode!(&None::<VaultInit>).unwrap(),
        ),
        (s.app, "canvault_example_app", Encode!().unwrap()),
    ] {
        s.ic.stop_canister(canister, Some(s.admin)).unwrap();
        s.ic.upgrade_canister(canister, wasm(module), arg, Some(s.admin))
            .unwrap_or_else(|e| panic!("upgrading {module} from the previous release: {e:?}"));
        s.ic.start_canister(canister, Some(s.admin)).unwrap();
    }

    // Every snapshot is still listed as complete, downloads as it did, and restores.
    let listed = s.snapshots();
    for m in &made {
        let info = listed
            .iter()
            .find(|i| i.id == m.id)
            .unwrap_or_else(|| panic!("snapshot {} lost in the upgrade", m.id));
        assert_eq!(info.state, SnapshotState::Complete, "{info:?}");
        assert_eq!(s.download(m.id), m.image, "snapshot {} changed", m.id);

        let subnet = s.ic.topology().app_subnets[2];
        let fresh = s.ic.create_canister_on_subnet(Some(s.admin), None, subnet);
        s.ic.install_canister(
            fresh,
            wasm("canvault_example_app"),
            Encode!().unwrap(),
            Some(s.admin),
        );
        let job = s.restore_into(fresh, m.id);
        assert_eq!(job.state, RestoreJobState::Done, "{job:?}");
        assert_eq!(
            s.content_digest(fresh),
            m.content,
            "snapshot {} restored",
            m.id
        );
    }

    // The upgraded kit continues incrementally from the last snapshot of the old one.
    s.fill(s.app, 5 * MIB, 3);
    let status = s.backup();
    let last = status.last_backup.expect("a backup after the upgrade");
    assert!(last.snapshot_id > made[1].id);
    assert!(
        last.bytes_sent < 3 * MIB,
        "an incremental backup after the upgrade sent {} bytes",
        last.bytes_sent
    );
    let image = s.download(last.snapshot_id);
    assert_eq!(image, s.app_image(s.app));
}
