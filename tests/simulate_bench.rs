//! Prints the practice tenant's blob-serving throughput. Not a timed test: it asserts only
//! that every record was served; run with
//! `cargo test --release --test simulate_bench -- --ignored --nocapture`.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly (release) to print records/s"]
async fn bench_serve_prints_records_per_second() {
    let n: u64 = std::env::var("M365AUDIT_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let g = m365audit::simulate::bench_generate(n);
    println!("generate: {}", serde_json::to_string(&g).unwrap());
    let r = m365audit::simulate::bench_serve(n).await.unwrap();
    print!("serve: ");
    println!("{}", serde_json::to_string(&r).unwrap());
    assert!(r.records as f64 > n as f64 * 0.9, "{r:?}");
}
