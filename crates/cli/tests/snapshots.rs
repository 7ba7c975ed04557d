//! `snapshot download | upload | verify | export | import` end to end on the in-process
//! IC, through the CLI's command dispatch: interrupted and resumed downloads, corrupt
//! chunks, tampered files, uploads, and the platform's snapshot directory.

mod common;

use std::path::Path;

use canvault_cli::download::partial_path;
use canvault_cli::file_format::{RecordBody, SnapshotMeta, SnapshotReader};
use canvault_protocol::merkle::image_root_of_bytes;
use common::{Env, Fault, Faulty, arg, run_with};

/// The image a snapshot file holds, and its metadata.
fn read_image(path: &Path) -> (SnapshotMeta, Vec<u8>) {
    let mut r = SnapshotReader::open(path).unwrap();
    let mut image = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        image.extend(rec.decode().unwrap());
    }
    let meta = r.meta.clone();
    r.finish().unwrap();
    (meta, image)
}

/// The app backed up once: (env, its image at the backup).
fn backed_up(data_mib: u64) -> (Env, Vec<u8>) {
    let env = Env::new(data_mib);
    let out = env.backup();
    assert!(
        out.contains("backup of") && out.contains("complete: snapshot 0"),
        "{out}"
    );
    let image = env.image(env.app);
    (env, image)
}

#[test]
fn should_download_resume_after_an_interruption_and_verify() {
    let (env, image) = backed_up(6);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.canvault");
    let vault = env.vault.to_text();
    let args = [
        "snapshot",
        "download",
        "0",
        "--vault",
        &vault,
        "-o",
        arg(&file),
    ];

    let broken = Faulty::new(env.t.clone(), Fault::FailFrom(3));
    let e = run_with(broken, &args).unwrap_err().to_string();
    assert!(
        e.starts_with("cannot reach the in-process IC: connection reset by peer"),
        "{e}"
    );
    assert!(
        !file.exists(),
        "an incomplete download is never at the final path"
    );
    assert!(partial_path(&file).exists(), "verified chunks are kept");

    let out = env.run(&args).unwrap();
    assert!(
        out.contains("(resumed after ") && out.contains("chunks already on disk"),
        "{out}"
    );
    assert!(!out.contains("resumed after 0 "), "{out}");
    assert!(!partial_path(&file).exists());
    let (meta, downloaded) = read_image(&file);
    assert_eq!(downloaded, image, "the file holds the image byte for byte");
    assert_eq!(
        meta.root,
        image_root_of_bytes(&image, meta.chunk_size).to_hex()
    );
    assert_eq!(meta.source, env.app.to_text());

    let out = env.run(&["snapshot", "verify", arg(&file)]).unwrap();
    assert!(out.contains(": OK") && out.contains(&meta.root), "{out}");
    let e = env.run(&args).unwrap_err().to_string();
    assert!(e.contains("already exists"), "{e}");
}

#[test]
fn should_detect_a_corrupted_chunk_and_recover_on_the_next_run() {
    let (env, image) = backed_up(4);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.canvault");
    let vault = env.vault.to_text();
    let args = [
        "snapshot",
        "download",
        "0",
        "--vault",
        &vault,
        "-o",
        arg(&file),
    ];

    let e = run_with(Faulty::new(env.t.clone(), Fault::CorruptAt(1)), &args)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("integrity check failed: chunk "), "{e}");
    assert!(e.contains("is corrupt (chunk "), "{e}");
    assert!(e.contains("run the same command again to resume"), "{e}");
    assert!(!file.exists());

    let out = env.run(&args).unwrap();
    assert!(out.contains("resumed after"), "{out}");
    assert_eq!(read_image(&file).1, image);
}

#[test]
fn should_fail_verification_of_a_tampered_file() {
    let (env, _) = backed_up(3);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.canvault");
    env.download(env.vault, 0, &file);
    let good = std::fs::read(&file).unwrap();

    // A flipped byte inside a chunk's data.
    let mut r = SnapshotReader::open(&file).unwrap();
    let mut at = None;
    while let Some(rec) = r.next_record().unwrap() {
        if let RecordBody::Data { bytes, .. } = &rec.body {
            at = Some(r.offset() - bytes.len() as u64 / 2);
            break;
        }
    }
    let mut bad = good.clone();
    bad[usize::try_from(at.unwrap()).unwrap()] ^= 1;
    std::fs::write(&file, &bad).unwrap();
    let e = env
        .run(&["snapshot", "verify", arg(&file)])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("integrity check failed: chunk ") && e.contains("does not verify"),
        "{e}"
    );
    let e = env
        .run(&[
            "snapshot",
            "upload",
            arg(&file),
            "--vault",
            &env.vault.to_text(),
        ])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("does not verify"),
        "a damaged file is never uploaded: {e}"
    );

    // Another root in the header.
    let root = SnapshotReader::open(&file).unwrap().meta.root;
    let other = format!(
        "{}{}",
        if root.starts_with('0') { '1' } else { '0' },
        &root[1..]
    );
    let mut bytes = good.clone();
    let pos = good.windows(64).position(|w| w == root.as_bytes()).unwrap();
    bytes[pos..pos + 64].copy_from_slice(other.as_bytes());
    std::fs::write(&file, &bytes).unwrap();
    let e = env
        .run(&["snapshot", "verify", arg(&file)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("recompute the root"), "{e}");

    // A truncated copy.
    std::fs::write(&file, &good[..good.len() - 5]).unwrap();
    let e = env
        .run(&["snapshot", "verify", arg(&file)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not a valid canvault snapshot file"), "{e}");
}

#[test]
fn should_upload_a_downloaded_file_and_download_the_same_image_again() {
    let (env, image) = backed_up(3);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.canvault"), dir.path().join("b.canvault"));
    let vault = env.vault.to_text();
    env.download(env.vault, 0, &a);

    let out = env
        .run(&[
            "snapshot",
            "upload",
            arg(&a),
            "--vault",
            &vault,
            "--label",
            "off-chain copy",
        ])
        .unwrap();
    assert!(
        out.contains("as snapshot 1 of") && out.contains("(complete,"),
        "{out}"
    );
    assert!(
        out.contains(", 0 B sent,") && !out.contains(" 0 chunks already stored"),
        "the vault holds every chunk of snapshot 0: only digests travel: {out}"
    );
    let again = env
        .run(&["snapshot", "upload", arg(&a), "--vault", &vault])
        .unwrap();
    assert!(
        again.contains("as snapshot 1 of"),
        "re-running an upload continues the same snapshot: {again}"
    );

    env.download(env.vault, 1, &b);
    let ((ma, ia), (mb, ib)) = (read_image(&a), read_image(&b));
    assert_eq!(ia, image);
    assert_eq!(
        ib, image,
        "the uploaded snapshot downloads as the same image"
    );
    assert_eq!(
        (ma.root, ma.source, ma.image_size, ma.chunk_size),
        (mb.root, mb.source, mb.image_size, mb.chunk_size)
    );
    assert_eq!(mb.snapshot_id, Some(1));
    assert_eq!(mb.label.as_deref(), Some("off-chain copy"));
    let list = env.run(&["snapshot", "list", "--vault", &vault]).unwrap();
    assert!(list.contains("off-chain copy"), "{list}");
}

#[test]
fn should_export_and_import_the_platform_snapshot_directory() {
    let (env, image) = backed_up(3);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.canvault");
    env.download(env.vault, 0, &file);
    let root = SnapshotReader::open(&file).unwrap().meta.root;

    // Raw layout: stable_memory.bin is the image.
    let native = dir.path().join("native");
    let out = env
        .run(&["snapshot", "export", arg(&file), "--dir", arg(&native)])
        .unwrap();
    assert!(out.contains("not carried"), "{out}");
    assert_eq!(
        std::fs::read(native.join("stable_memory.bin")).unwrap(),
        image
    );
    let meta: ic_management_canister_types::ReadCanisterSnapshotMetadataResult =
        serde_json::from_slice(&std::fs::read(native.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta.stable_memory_size, image.len() as u64);
    assert_eq!((meta.wasm_module_size, meta.wasm_memory_size), (0, 0));
    let back = dir.path().join("back.canvault");
    let out = env
        .run(&["snapshot", "import", arg(&native), "-o", arg(&back)])
        .unwrap();
    assert!(out.contains(&root), "same image, same root: {out}");
    assert_eq!(read_image(&back).1, image);

    // Kit layout: the stable memory of a canister embedding the kit, both ways.
    let kit_dir = dir.path().join("kit");
    env.run(&[
        "snapshot",
        "export",
        arg(&file),
        "--dir",
        arg(&kit_dir),
        "--layout",
        "kit",
    ])
    .unwrap();
    let kit_back = dir.path().join("kit.canvault");
    env.run(&[
        "snapshot",
        "import",
        arg(&kit_dir),
        "-o",
        arg(&kit_back),
        "--layout",
        "kit",
    ])
    .unwrap();
    assert_eq!(read_image(&kit_back).1, image);

    // A native snapshot of the live app (what `icp canister snapshot download` writes):
    // its stable memory is the kit's layout, and the app image inside is the backup's.
    let live = dir.path().join("live");
    std::fs::create_dir_all(&live).unwrap();
    let raw = env.raw_stable_memory(env.app);
    std::fs::write(live.join("stable_memory.bin"), &raw).unwrap();
    std::fs::write(
        live.join("metadata.json"),
        format!(
            r#"{{"source":{{"taken_from_canister":null}},"taken_at_timestamp":1,"wasm_module_size":0,"globals":[],"wasm_memory_size":0,"stable_memory_size":{},"wasm_chunk_store":[],"canister_version":3,"certified_data":[],"global_timer":null,"on_low_wasm_memory_hook_status":null}}"#,
            raw.len()
        ),
    )
    .unwrap();
    let live_file = dir.path().join("live.canvault");
    let e = env
        .run(&[
            "snapshot",
            "import",
            arg(&live),
            "-o",
            arg(&live_file),
            "--layout",
            "kit",
        ])
        .unwrap_err();
    assert!(
        e.to_string().contains("--source"),
        "a native snapshot does not name its canister: {e}"
    );
    let out = env
        .run(&[
            "snapshot",
            "import",
            arg(&live),
            "-o",
            arg(&live_file),
            "--layout",
            "kit",
            "--source",
            &env.app.to_text(),
        ])
        .unwrap();
    assert!(out.contains(&root), "{out}");
    let e = env
        .run(&[
            "snapshot",
            "import",
            arg(&native),
            "-o",
            arg(&dir.path().join("x")),
            "--layout",
            "kit",
        ])
        .unwrap_err();
    // The raw export is the app's own memory-manager layout, without the kit's state.
    assert!(
        e.to_string()
            .contains("not the stable memory of a canister that embeds the canvault kit"),
        "{e}"
    );
}

/// An upload cut off mid-way continues where it stopped when run again, and only the
/// chunks the vault lacks travel with their bytes.
#[test]
fn should_resume_an_interrupted_upload_into_a_vault_without_the_chunks() {
    let (env, image) = backed_up(6);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.canvault");
    env.download(env.vault, 0, &file);
    // A second vault, empty: the upload must carry the data.
    let other = env.new_vault(2);
    let other_text = other.to_text();
    let args = ["snapshot", "upload", arg(&file), "--vault", &other_text];

    let broken = Faulty::new(env.t.clone(), Fault::FailPutsFrom(3));
    let e = run_with(broken, &args).unwrap_err().to_string();
    assert!(e.contains("connection reset by peer"), "{e}");

    let out = env.run(&args).unwrap();
    assert!(
        out.contains("(complete,") && out.contains("resumed after "),
        "{out}"
    );
    assert!(!out.contains(" 0 B sent"), "{out}");
    let copy = dir.path().join("b.canvault");
    env.download(other, 0, &copy);
    assert_eq!(
        read_image(&copy).1,
        image,
        "the resumed upload is the image"
    );
}
