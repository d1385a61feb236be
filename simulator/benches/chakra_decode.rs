//! Decoding throughput of the binary codec on real traces.
//!
//! `cargo bench -p simulator --bench chakra_decode` reports MB/s for the 3 MB
//! PyTorch-converted `chakra.0.et` (3,664 nodes, Chakra's feeder test input) and
//! for the 32-rank MLP text-converter output, each with a baseline in the same
//! run: a plain byte copy (memcpy) of the same file, to put the number in scale.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use simulator::chakra;

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data").join(rel)
}

fn decode(c: &mut Criterion) {
    let cases = [
        (
            "pytorch_chakra.0.et",
            shared(
                "public-traces/mlcommons__chakra/tests/data/feeder_tests_trace.tar.gz.extracted/tests/data/chakra.0.et",
            ),
        ),
        (
            "resnet50_rank0.et",
            shared("public-traces/astra-sim__astra-sim/runs/example/workload/resnet50_DataParallel.0.et"),
        ),
    ];
    for (name, path) in cases {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut group = c.benchmark_group(format!("decode/{name}"));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function("strata_decode", |b| {
            b.iter(|| chakra::decode_et_bytes(black_box(&bytes), &path).expect("valid trace"))
        });
        group.bench_function("strata_stream", |b| {
            b.iter(|| {
                let mut r = chakra::EtReader::new(black_box(bytes.as_slice()), &path).expect("valid trace");
                let mut n = 0usize;
                while let Some(node) = r.next_node().expect("valid trace") {
                    n += node.data_deps.len();
                }
                n
            })
        });
        let trace = chakra::decode_et_bytes(&bytes, &path).expect("valid trace");
        group.bench_function("strata_encode", |b| b.iter(|| chakra::encode_et(black_box(&trace))));
        group.bench_function("baseline_memcpy", |b| b.iter(|| black_box(&bytes).to_vec()));
        group.finish();
    }
}

criterion_group!(benches, decode);
criterion_main!(benches);
