//! canvault's codec benchmark (a program that prints figures, not a timed test).
//!
//! ```text
//! scripts/build-wasm.sh
//! cargo run --release -p canvault-scenarios --bin codec_bench -- [SIZE_MIB] [CHUNK_KIB]   (default 64 64)
//! ```
//!
//! Fills the example app with posts, then with articles (long-form posts), takes up to
//! 64 non-zero chunks spread over each image, and runs each candidate codec on them
//! inside the `codec-probe` canister: real wasm, instructions counted by the harness
//! as the IC counts them. For each it prints the ratio, the instructions per byte to
//! encode and decode, and what a full backup would cost per byte of data under the
//! fee model: 1,000 cycles per byte sent, plus the encode instructions, plus SHA-256 of
//! the frame on both sides (the kit seals, the vault verifies). The naive baseline is
//! 1,000 cycles per byte. "sealed" is what the kit ships (`chunk::seal`).
//! Writes tests/bench-results/codec_bench.json (docs/benchmarks.md's table).

use candid::{Encode, Principal};
use canvault_scenarios::app::AppScenario;
use canvault_scenarios::bench_results::{BenchResults, Format, Table, column, row};
use serde::Deserialize;
use serde_json::Value;

const MIB: u64 = 1024 * 1024;
const SAMPLE_CHUNKS: usize = 64;

#[derive(candid::CandidType, Deserialize, Debug, Clone, Copy)]
enum Probe {
    Sha256,
    Lz4,
    Deflate(u8),
    ZstdFastest,
    Sealed,
}

#[derive(candid::CandidType, Deserialize, Debug, Clone, Copy, Default)]
struct Measurement {
    encoded_bytes: u64,
    encode_instructions: u64,
    decode_instructions: u64,
}

fn measure(
    s: &mut AppScenario,
    probe_canister: Principal,
    probe: Probe,
    chunks: &[&[u8]],
) -> Measurement {
    let mut total = Measurement::default();
    for chunk in chunks {
        let (m,): (Measurement,) =
            s.ic.update_candid(
                probe_canister,
                s.admin,
                "measure",
                (probe, serde_bytes::ByteBuf::from(chunk.to_vec())),
            )
            .unwrap_or_else(|r| panic!("{probe:?}: {r}"));
        total.encoded_bytes += m.encoded_bytes;
        total.encode_instructions += m.encode_instructions;
        total.decode_instructions += m.decode_instructions;
    }
    total
}

fn main() {
    let arg = |n: usize, default: u64| {
        std::env::args()
            .nth(n)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let size_mib = arg(1, 64);
    let chunk_kib = arg(2, 64);
    let chunk = (chunk_kib * 1024) as usize;
    let mut rows = Vec::new();
    println!(
        "canvault codec benchmark: example-app images of {size_mib} MiB, {} KiB chunks, up to {SAMPLE_CHUNKS} non-zero chunks each, measured in wasm",
        chunk / 1024
    );
    println!(
        "backup cycles per data byte = 1,000 / ratio + encode instr/B + 2 x SHA-256 instr/B / ratio (baseline: 1,000)\n"
    );
    println!(
        "| image | codec | ratio | encode instr/B | decode instr/B | backup cycles per data byte | % of baseline |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (label, method) in [("posts", "fill_to"), ("articles", "fill_articles_to")] {
        let mut s = AppScenario::new();
        let subnet = s.ic.topology().app_subnets[0];
        let probe_canister = s.ic.create_canister_on_subnet(Some(s.admin), None, subnet);
        s.ic.install_canister(
            probe_canister,
            canvault_scenarios::wasm("codec_probe"),
            Encode!().unwrap(),
            Some(s.admin),
        );
        let app = s.app;
        s.fill_with(app, method, size_mib * MIB, 1);
        let image = s.app_image(app);
        let data: Vec<&[u8]> = image
            .chunks(chunk)
            .filter(|c| !canvault_protocol::chunk::is_zero(c))
            .collect();
        let step = data.len().div_ceil(SAMPLE_CHUNKS).max(1);
        let sample: Vec<&[u8]> = data.iter().step_by(step).copied().collect();
        let bytes: u64 = sample.iter().map(|c| c.len() as u64).sum();
        let per_byte = |x: u64| x as f64 / bytes as f64;
        let sha =
            per_byte(measure(&mut s, probe_canister, Probe::Sha256, &sample).encode_instructions);
        println!(
            "| {label} ({} of {} chunks) | SHA-256 alone | | {sha:.1} | | | |",
            sample.len(),
            data.len()
        );
        let candidates = [
            ("none (raw)", None),
            ("LZ4", Some(Probe::Lz4)),
            ("deflate 1", Some(Probe::Deflate(1))),
            ("deflate 2", Some(Probe::Deflate(2))),
            ("deflate 6", Some(Probe::Deflate(6))),
            ("zstd fastest (ruzstd)", Some(Probe::ZstdFastest)),
            ("sealed (shipped)", Some(Probe::Sealed)),
        ];
        for (name, probe) in candidates {
            let m = probe.map_or(
                Measurement {
                    encoded_bytes: bytes,
                    ..Measurement::default()
                },
                |p| measure(&mut s, probe_canister, p, &sample),
            );
            let ratio = bytes as f64 / m.encoded_bytes as f64;
            let encode = per_byte(m.encode_instructions);
            // `Sealed` already includes the kit's frame digest; the vault hashes once more.
            let hashing = match probe {
                Some(Probe::Sealed) => sha / ratio,
                _ => 2.0 * sha / ratio,
            };
            let cycles = 1000.0 / ratio + encode + hashing;
            println!(
                "| {label} | {name} | {ratio:.2}x | {encode:.1} | {:.1} | {cycles:.0} | {:.1}% |",
                per_byte(m.decode_instructions),
                cycles / 10.0
            );
            rows.push(row(vec![
                ("image", Value::from(label)),
                ("codec", Value::from(name)),
                ("sample_chunks", Value::from(sample.len())),
                ("ratio", Value::from(ratio)),
                ("encode_instructions_per_byte", Value::from(encode)),
                (
                    "decode_instructions_per_byte",
                    Value::from(per_byte(m.decode_instructions)),
                ),
                ("sha256_instructions_per_byte", Value::from(sha)),
                ("backup_cycles_per_data_byte", Value::from(cycles)),
                ("of_baseline", Value::from(cycles / 1000.0)),
            ]));
        }
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut results = BenchResults::new(
        "codec_bench",
        &args,
        vec![
            ("size_mib", Value::from(size_mib)),
            ("chunk_kib", Value::from(chunk_kib)),
            ("max_sample_chunks", Value::from(SAMPLE_CHUNKS)),
        ],
    );
    results.tables.push(Table {
        name: "codecs".into(),
        columns: vec![
            column("image", "image", Format::Text),
            column("codec", "codec", Format::Text),
            column("ratio", "ratio", Format::Dec2),
            column(
                "encode_instructions_per_byte",
                "encode instr/B",
                Format::Dec1,
            ),
            column(
                "decode_instructions_per_byte",
                "decode instr/B",
                Format::Dec1,
            ),
            column(
                "backup_cycles_per_data_byte",
                "backup cycles per data byte",
                Format::Int,
            ),
            column("of_baseline", "of baseline", Format::Percent1),
        ],
        rows,
    });
    results.write();
}
