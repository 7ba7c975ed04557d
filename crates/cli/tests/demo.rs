//! `canvault demo`, small: the whole story runs through the CLI's dispatch on the real
//! canister wasm, and its JSON report says every verification held (the kit app restored
//! byte for byte, the heap app forked and answering as before) and that today's
//! alternatives were measured side by side.

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
    today_s_alternatives_are_measured(&report["alternatives"]);
}

/// The comparison with today's alternatives: three measured, verified paths, and ratios
/// that are canvault's measured figures over the alternatives'.
fn today_s_alternatives_are_measured(c: &serde_json::Value) {
    let num = |v: &serde_json::Value, key: &str| {
        v[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} is a number in {v}"))
    };
    let image = num(c, "image_bytes");
    assert!(image > 0.0, "{c}");
    let canvault = c["canvault"].as_array().expect("canvault rows");
    let alternatives = c["alternatives"].as_array().expect("alternative rows");
    let ratios = c["ratios"].as_array().expect("ratios");
    assert_eq!(
        canvault.len(),
        4,
        "full, incremental, restore, full + restore"
    );
    assert_eq!(alternatives.len(), 3, "manual, Distrikt-style, naive push");
    assert_eq!(ratios.len(), 3);
    for p in canvault.iter().chain(alternatives) {
        let parts = num(p, "app_cycles") + num(p, "receiver_cycles") + num(p, "operator_cycles");
        assert!(num(p, "total_cycles") == parts, "payers add up: {p}");
        assert!(
            num(p, "total_cycles") > 0.0 && num(p, "rounds") > 0.0,
            "{p}"
        );
        assert!(num(p, "operator_steps") > 0.0, "{p}");
        assert!(p["verifies"].is_string(), "{p}");
    }
    let (full, incremental, restore, copy) =
        (&canvault[0], &canvault[1], &canvault[2], &canvault[3]);
    assert!(
        num(copy, "total_cycles") == num(full, "total_cycles") + num(restore, "total_cycles"),
        "{copy}"
    );
    assert_eq!(full["verifies"], "SHA-256 per chunk + root");
    for (a, r) in alternatives.iter().zip(ratios) {
        assert_eq!(a["path"], r["alternative"]);
        assert_eq!(
            a["verifies"], "none",
            "the alternatives check nothing themselves"
        );
        assert!(
            num(a, "bytes_moved") >= image,
            "every byte moved at least once: {a}"
        );
        // Every ratio is canvault's measured figure over the alternative's.
        for (ratio, canvault, field) in [
            ("copy_cycles", copy, "total_cycles"),
            ("copy_bytes", copy, "bytes_moved"),
            ("copy_rounds", copy, "rounds"),
            ("incremental_cycles", incremental, "total_cycles"),
        ] {
            let expected = num(canvault, field) / num(a, field);
            let got = num(r, ratio);
            assert!(
                (got - expected).abs() <= 1e-9 * expected.abs().max(1.0),
                "{ratio}: {got} != {expected}: {r}"
            );
        }
    }
    let manual = &alternatives[0];
    assert!(
        num(manual, "downtime_rounds") > 0.0,
        "the manual path stops the app: {manual}"
    );
}
