//! Throughput of re-running every detection over records (what `detect` does per stored
//! record), printed, never asserted: run it with `cargo test --test detect_throughput --
//! --ignored --nocapture` (numbers belong to `m365audit bench` in release builds).

use m365audit::detect::{Detections, Grouper, Input, Vars};
use m365audit::model::RecordHeader;
use std::time::Instant;

#[test]
#[ignore = "measurement, prints numbers; run explicitly"]
fn print_detection_throughput() {
    // `M365AUDIT_THROUGHPUT_RECORDS=FILE` (JSON lines, e.g. `m365audit query '.'` of a
    // practice-tenant store): measure on those records instead of synthetic ones
    let raws: Vec<String> = match std::env::var("M365AUDIT_THROUGHPUT_RECORDS") {
        Ok(f) => std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect(),
        Err(_) => m365audit::corpus::synthetic_records(50_000, 7),
    };
    let headers: Vec<RecordHeader> = raws
        .iter()
        .map(|r| RecordHeader::from_value(&serde_json::from_str(r).unwrap()).unwrap())
        .collect();
    let d = Detections::load_embedded(Vars::default());
    let t = Instant::now();
    let wanted = headers.iter().filter(|h| d.wants(h)).count();
    let prefilter = t.elapsed();
    let t = Instant::now();
    let ((), r) = Grouper::stream(&d, |g| {
        for (h, raw) in headers.iter().zip(&raws) {
            g.add_record(h, raw.as_bytes());
        }
    });
    let all = t.elapsed();
    let n = raws.len() as f64;
    println!(
        "{} records, {} candidates; prefilter {:.0} rec/s; detect {:.0} rec/s; {} detections with groups",
        raws.len(),
        wanted,
        n / prefilter.as_secs_f64(),
        n / all.as_secs_f64(),
        r.detections.iter().filter(|d| !d.groups.is_empty()).count()
    );
    for m in d.metas() {
        let one = Detections::load_embedded(Vars::default())
            .only(&m.id)
            .unwrap();
        let t = Instant::now();
        let mut c = 0;
        for (h, raw) in headers.iter().zip(&raws) {
            if one.wants(h) {
                c += 1;
                let _ = one.run(h, Input::Text(raw.as_bytes()));
            }
        }
        let e = t.elapsed().as_secs_f64();
        if c > 0 {
            println!(
                "  {:<32} {:>6} candidates {:>8.0} candidates/s",
                m.id,
                c,
                c as f64 / e
            );
        }
    }
}

#[test]
#[ignore = "measurement, prints numbers; run explicitly"]
fn print_parse_cost() {
    let raws = m365audit::corpus::synthetic_records(20_000, 7);
    let t = Instant::now();
    for r in &raws {
        let v: serde_json::Value = serde_json::from_str(r).unwrap();
        std::hint::black_box(v);
    }
    let serde = t.elapsed().as_secs_f64();
    let q = m365audit::detect::Query::compile(".", Vars::default()).unwrap();
    let t = Instant::now();
    for r in &raws {
        std::hint::black_box(q.run_bytes(r.as_bytes()).unwrap());
    }
    let ident = t.elapsed().as_secs_f64();
    let q = m365audit::detect::Query::compile("empty", Vars::default()).unwrap();
    let t = Instant::now();
    for r in &raws {
        std::hint::black_box(q.run_bytes(r.as_bytes()).unwrap());
    }
    let empty = t.elapsed().as_secs_f64();
    let n = raws.len() as f64;
    println!(
        "serde Value {:.0}/s; Val parse+`.`+to_json {:.0}/s; Val parse+`empty` {:.0}/s",
        n / serde,
        n / ident,
        n / empty
    );
}
