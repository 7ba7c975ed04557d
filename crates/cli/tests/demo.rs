//! `canvault demo`, small: the whole story runs through the CLI's dispatch on the real
//! canister wasm, and its JSON report says every verification held (the kit app restored
//! byte for byte, the heap app forked and answering as before).

mod common;

use common::{arg, run_with};

#[test]
fn the_demo_backs_up_restores_and_forks_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    // The transport is unused: the demo builds its own in-process IC.
    let out = run_with(
        common::harness(),
        &["demo", "--size-mib", "4", "--json", arg(&json)],
    )
    .unwrap();
    assert!(out.contains("demo complete"), "{out}");
    assert!(
        out.contains("heap app fork answers as before:        yes"),
        "{out}"
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["restored_image_identical"], true);
    assert_eq!(report["app_answers_identical"], true);
    let whole = &report["whole_canister"];
    assert_eq!(whole["fork_answers_identical"], true, "{whole}");
    assert!(
        whole["bytes_read"].as_u64().unwrap() >= whole["heap_data_bytes"].as_u64().unwrap(),
        "the heap was read: {whole}"
    );
    assert!(whole["backup_rounds"].as_u64().unwrap() > 0, "{whole}");
}
