//! Machine-readable benchmark results and the tables of docs/benchmarks.md generated
//! from them.
//!
//! Every benchmark program overwrites `tests/bench-results/<bench>.json` on each run
//! (keys in a stable order, one object per row, no wall-clock figures), so a regression
//! shows in `git diff`. `bench_tables` rewrites every section of docs/benchmarks.md
//! between `<!-- bench:<bench>[/<table>]:begin -->` and `<!-- bench:...:end -->` from
//! those files; `tests/tests/bench_tables.rs` fails when the page differs from what it
//! would write.
//!
//! A file of the same name in `tests/bench-results/baseline/` is the run before the
//! harness modelled the replica's weights, scheduling and fees (issue #12): where a
//! figure moved, the table shows the old one beside it, `new (was old)`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How a column's value is printed.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A string as it is.
    Text,
    /// An integer, with thousands separators.
    Int,
    /// One decimal.
    Dec1,
    /// Two decimals.
    Dec2,
    /// Three decimals.
    Dec3,
    /// Four decimals.
    Dec4,
    /// A fraction as a percentage with one decimal.
    Percent1,
    /// Bytes as MiB with one decimal.
    Mib1,
    /// Cycles as T (10^12) with three decimals.
    TCycles3,
    /// Cycles as B (10^9) with three decimals.
    BCycles3,
}

/// One column of a table.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The row key it shows.
    pub key: String,
    /// Its header.
    pub header: String,
    /// How it is printed.
    pub format: Format,
}

/// One table: its columns and rows.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Table {
    /// Its name (`<bench>/<name>` in the markers).
    pub name: String,
    /// Columns shown in the docs (rows may hold more figures).
    pub columns: Vec<Column>,
    /// One object per row.
    pub rows: Vec<Map<String, Value>>,
}

/// One benchmark program's results.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct BenchResults {
    /// The program.
    pub bench: String,
    /// The command that produced the file.
    pub command: String,
    /// The commit it ran on (`git describe --always --dirty`).
    pub commit: String,
    /// Its parameters.
    pub parameters: Map<String, Value>,
    /// Its tables.
    pub tables: Vec<Table>,
}

/// A column.
#[must_use]
pub fn column(key: &str, header: &str, format: Format) -> Column {
    Column {
        key: key.into(),
        header: header.into(),
        format,
    }
}

/// A row from `(key, value)` pairs.
#[must_use]
pub fn row(pairs: Vec<(&str, Value)>) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The directory of the result files.
#[must_use]
pub fn results_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-results")
}

/// The workspace's docs/benchmarks.md.
#[must_use]
pub fn benchmarks_doc() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks.md")
}

/// The current commit, `unknown` outside a git checkout.
#[must_use]
pub fn commit() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=10"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown".into(), |s| s.trim().to_string())
}

impl BenchResults {
    /// Results of `bench` run with `args`.
    #[must_use]
    pub fn new(bench: &str, args: &[String], parameters: Vec<(&str, Value)>) -> Self {
        let mut command = format!("cargo run --release -p canvault-scenarios --bin {bench} --");
        for a in args {
            command.push(' ');
            command.push_str(a);
        }
        Self {
            bench: bench.into(),
            command,
            commit: commit(),
            parameters: row(parameters),
            tables: Vec::new(),
        }
    }

    /// Writes `<results_dir>/<bench>.json` and says where.
    ///
    /// # Panics
    /// If the file cannot be written.
    pub fn write(&self) {
        let path = results_dir().join(format!("{}.json", self.bench));
        let mut json = serde_json::to_string_pretty(self).expect("serialises");
        json.push('\n');
        std::fs::write(&path, json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        println!("results written to {}", path.display());
    }
}

fn thousands(n: i128) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// One cell.
#[must_use]
pub fn cell(value: Option<&Value>, format: Format) -> String {
    let Some(value) = value else {
        return String::new();
    };
    if let Value::String(s) = value {
        return s.clone();
    }
    let x = value.as_f64().unwrap_or(f64::NAN);
    match format {
        Format::Text => value.to_string(),
        Format::Int => value
            .as_i64()
            .map(i128::from)
            .or_else(|| value.as_u64().map(i128::from))
            .map_or_else(|| thousands(x.round() as i128), thousands),
        Format::Dec1 => format!("{x:.1}"),
        Format::Dec2 => format!("{x:.2}"),
        Format::Dec3 => format!("{x:.3}"),
        Format::Dec4 => format!("{x:.4}"),
        Format::Percent1 => format!("{:.1}%", x * 100.0),
        Format::Mib1 => format!("{:.1}", x / 1_048_576.0),
        Format::TCycles3 => format!("{:.3}", x / 1e12),
        Format::BCycles3 => format!("{:.3}", x / 1e9),
    }
}

/// The identity of a row: its text cells (labels), which a baseline row must share.
fn row_key(table: &Table, r: &Map<String, Value>) -> String {
    table
        .columns
        .iter()
        .filter(|c| c.format == Format::Text)
        .map(|c| cell(r.get(&c.key), c.format))
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

/// A table as markdown, preceded by where it comes from; with a `baseline` run, every
/// figure that moved shows its old value beside it.
#[must_use]
pub fn render(results: &BenchResults, table: &Table, baseline: Option<&BenchResults>) -> String {
    let mut s = format!(
        "<!-- generated by `cargo run -p canvault-scenarios --bin bench_tables` from tests/bench-results/{}.json: do not edit -->\n",
        results.bench
    );
    s.push_str(&format!(
        "`{}` (commit {}):\n\n",
        results.command, results.commit
    ));
    let old_table = baseline.and_then(|b| b.tables.iter().find(|t| t.name == table.name));
    let old_rows: std::collections::BTreeMap<String, &Map<String, Value>> = old_table
        .map(|t| t.rows.iter().map(|r| (row_key(t, r), r)).collect())
        .unwrap_or_default();
    if let (Some(b), Some(_)) = (baseline, old_table) {
        s.push_str(&format!(
            "(was: the same program before the replica's weights, scheduling and fees were modelled, commit {}, tests/bench-results/baseline/{}.json)\n\n",
            b.commit, b.bench
        ));
    }
    let headers: Vec<&str> = table.columns.iter().map(|c| c.header.as_str()).collect();
    s.push_str(&format!("| {} |\n", headers.join(" | ")));
    let aligns: Vec<&str> = table
        .columns
        .iter()
        .map(|c| {
            if c.format == Format::Text {
                "---"
            } else {
                "---:"
            }
        })
        .collect();
    s.push_str(&format!("|{}|\n", aligns.join("|")));
    for r in &table.rows {
        let old = old_rows.get(&row_key(table, r));
        let cells: Vec<String> = table
            .columns
            .iter()
            .map(|c| {
                let new = cell(r.get(&c.key), c.format);
                let was = old.map(|o| cell(o.get(&c.key), c.format));
                match was {
                    Some(was) if c.format != Format::Text && !was.is_empty() && was != new => {
                        format!("{new} (was {was})")
                    }
                    _ => new,
                }
            })
            .collect();
        s.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    s
}

/// Reads `<dir>/<bench>.json`.
///
/// # Errors
/// It is missing or malformed.
pub fn load(dir: &Path, bench: &str) -> Result<BenchResults, String> {
    let path = dir.join(format!("{bench}.json"));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// `doc` with every marked section rewritten from the result files in `dir`.
///
/// # Errors
/// A marker without its end, an unknown bench or table.
pub fn regenerate(doc: &str, dir: &Path) -> Result<String, String> {
    const OPEN: &str = "<!-- bench:";
    const BEGIN: &str = ":begin -->";
    let mut out = String::new();
    let mut rest = doc;
    while let Some(at) = rest.find(OPEN) {
        let after = &rest[at + OPEN.len()..];
        let Some(name_end) = after.find(BEGIN) else {
            // Not a begin marker (an end marker out of place, or another comment).
            return Err(format!(
                "marker without `{BEGIN}`: {}",
                &rest[at..at + 40.min(rest.len() - at)]
            ));
        };
        let name = &after[..name_end];
        if name.contains(char::is_whitespace) {
            return Err(format!("a marker without `{BEGIN}` before: {name}"));
        }
        let end_marker = format!("{OPEN}{name}:end -->");
        let body_start = at + OPEN.len() + name_end + BEGIN.len();
        let body_len = rest[body_start..]
            .find(&end_marker)
            .ok_or_else(|| format!("no `{end_marker}`"))?;
        let (bench, table) = name.split_once('/').unwrap_or((name, ""));
        let results = load(dir, bench)?;
        let baseline = load(&dir.join("baseline"), bench).ok();
        let t = if table.is_empty() {
            results.tables.first()
        } else {
            results.tables.iter().find(|t| t.name == table)
        }
        .ok_or_else(|| format!("{bench}.json has no table `{table}`"))?;
        out.push_str(&rest[..body_start]);
        out.push('\n');
        out.push_str(&render(&results, t, baseline.as_ref()));
        out.push_str(&end_marker);
        rest = &rest[body_start + body_len + end_marker.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_formatted() {
        assert_eq!(
            cell(Some(&Value::from(1_234_567u64)), Format::Int),
            "1,234,567"
        );
        assert_eq!(cell(Some(&Value::from(0.4534)), Format::Percent1), "45.3%");
        assert_eq!(cell(Some(&Value::from(3_145_728u64)), Format::Mib1), "3.0");
        assert_eq!(
            cell(Some(&Value::from(488_000_000_000u64)), Format::TCycles3),
            "0.488"
        );
        assert_eq!(cell(Some(&Value::from("x")), Format::Int), "x");
        assert_eq!(cell(None, Format::Int), "");
    }

    #[test]
    fn sections_are_replaced_and_the_rest_kept() {
        let dir = tempdir();
        let mut r = BenchResults {
            bench: "b".into(),
            command: "c".into(),
            commit: "abc".into(),
            ..BenchResults::default()
        };
        r.tables.push(Table {
            name: "t".into(),
            columns: vec![column("n", "n", Format::Int)],
            rows: vec![row(vec![("n", Value::from(7))])],
        });
        std::fs::write(dir.join("b.json"), serde_json::to_string(&r).unwrap()).unwrap();
        let doc = "head\n<!-- bench:b/t:begin -->\nold\n<!-- bench:b/t:end -->\ntail\n";
        let new = regenerate(doc, &dir).unwrap();
        assert!(new.starts_with("head\n<!-- bench:b/t:begin -->\n"), "{new}");
        assert!(
            new.contains("| n |\n|---:|\n| 7 |\n<!-- bench:b/t:end -->\ntail\n"),
            "{new}"
        );
        assert!(!new.contains("old"), "{new}");
        assert_eq!(regenerate(&new, &dir).unwrap(), new, "idempotent");
        let two = format!("{doc}{doc}");
        let new_two = regenerate(&two, &dir).unwrap();
        assert!(new_two == format!("{new}{new}"), "{new_two}");
        assert!(regenerate("<!-- bench:b/t:end -->\n<!-- bench:b/t:begin -->", &dir).is_err());
        assert!(regenerate("<!-- bench:b/t:begin -->", &dir).is_err());
        assert!(regenerate("<!-- bench:b/zz:begin --><!-- bench:b/zz:end -->", &dir).is_err());
        // A baseline run shows the figures that moved beside the new ones.
        std::fs::create_dir_all(dir.join("baseline")).unwrap();
        let mut old = r.clone();
        old.commit = "old".into();
        old.tables[0].rows = vec![row(vec![("n", Value::from(5))])];
        std::fs::write(
            dir.join("baseline/b.json"),
            serde_json::to_string(&old).unwrap(),
        )
        .unwrap();
        let with_baseline = regenerate(doc, &dir).unwrap();
        assert!(with_baseline.contains("| 7 (was 5) |"), "{with_baseline}");
        assert!(with_baseline.contains("commit old"), "{with_baseline}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bench-results-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
