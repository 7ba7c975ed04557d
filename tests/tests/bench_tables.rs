//! docs/benchmarks.md shows what tests/bench-results/*.json hold: every generated section
//! is what `bench_tables` would write.

use canvault_scenarios::bench_results::{benchmarks_doc, regenerate, results_dir};

#[test]
fn benchmark_tables_match_the_result_files() {
    let doc = std::fs::read_to_string(benchmarks_doc()).expect("docs/benchmarks.md");
    assert!(
        doc.contains("<!-- bench:"),
        "docs/benchmarks.md has generated sections"
    );
    let generated = regenerate(&doc, &results_dir()).expect("every marked section has its results");
    assert!(
        generated == doc,
        "docs/benchmarks.md differs from tests/bench-results/*.json: run `cargo run -p canvault-scenarios --bin bench_tables`"
    );
}
