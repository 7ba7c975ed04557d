//! Rewrites the generated tables of docs/benchmarks.md from tests/bench-results/*.json
//! (see `canvault_scenarios::bench_results`).
//!
//! ```text
//! cargo run -p canvault-scenarios --bin bench_tables
//! ```

use canvault_scenarios::bench_results::{benchmarks_doc, regenerate, results_dir};

fn main() {
    let path = benchmarks_doc();
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let new = regenerate(&doc, &results_dir()).unwrap_or_else(|e| panic!("{e}"));
    if new == doc {
        println!("{} is up to date", path.display());
    } else {
        std::fs::write(&path, new).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        println!("{} rewritten", path.display());
    }
}
