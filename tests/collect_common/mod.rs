// Shared helpers for the collector's end-to-end tests: the real binary runs the practice
// tenant (`m365audit simulate`) and the collector (`m365audit collect`); the store is then
// compared with the simulator's ground truth. Every process started here is killed by a
// Drop guard. Included with `mod collect_common;` by each test file.
#![allow(dead_code)]

use m365audit::store::Store;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_m365audit");

/// A child process killed (SIGKILL) and reaped on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running practice tenant.
pub struct Sim {
    pub proc: Proc,
    pub ready: Value,
    pub http: Http,
}

/// Blocking HTTP without reqwest's `blocking` feature: one current-thread runtime per call.
#[derive(Clone)]
pub struct Http(reqwest::Client);

impl Http {
    pub fn new() -> Http {
        m365audit::install_crypto_provider();
        Http(reqwest::Client::builder().build().expect("http client"))
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    pub fn get(&self, url: &str) -> (u16, String) {
        Self::rt().block_on(async {
            let r = self.0.get(url).send().await.expect("GET");
            let s = r.status().as_u16();
            (s, r.text().await.expect("body"))
        })
    }

    pub fn post(&self, url: &str, body: String) -> (u16, String) {
        Self::rt().block_on(async {
            let r = self
                .0
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("POST");
            let s = r.status().as_u16();
            (s, r.text().await.expect("body"))
        })
    }
}

impl Sim {
    /// Starts `m365audit simulate` with these extra arguments and waits for its ready line.
    pub fn start(args: &[&str]) -> Sim {
        let mut child = Command::new(BIN)
            .arg("simulate")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting m365audit simulate");
        let stdout = child.stdout.take().expect("stdout");
        let proc = Proc(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("simulate printed no ready line within 120 s");
        let ready: Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("bad ready line {line:?}: {e}"));
        Sim {
            proc,
            ready,
            http: Http::new(),
        }
    }

    pub fn control(&self, path: &str) -> String {
        format!("{}{path}", self.ready["control_url"].as_str().unwrap())
    }

    pub fn freeze(&self) {
        let (s, b) = self
            .http
            .post(&self.control("/__control/freeze"), String::new());
        assert!(s < 300, "freeze: {s} {b}");
    }

    pub fn unfreeze(&self) {
        let (s, b) = self
            .http
            .post(&self.control("/__control/unfreeze"), String::new());
        assert!(s < 300, "unfreeze: {s} {b}");
    }

    pub fn advance(&self, seconds: i64) {
        let (s, b) = self.http.post(
            &self.control(&format!("/__control/advance?seconds={seconds}")),
            String::new(),
        );
        assert!(s < 300, "advance: {s} {b}");
    }

    pub fn faults(&self, on: &[&str], off: &[&str]) {
        let body = serde_json::json!({"on": on, "off": off}).to_string();
        let (s, b) = self.http.post(&self.control("/__control/faults"), body);
        assert!(s < 300, "faults: {s} {b}");
    }

    /// Every record a correct collector can have now, by Id.
    pub fn truth(&self) -> BTreeMap<String, Value> {
        let (s, body) = self.http.get(&self.control("/__control/truth"));
        assert_eq!(s, 200, "truth: {body}");
        body.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("truth line is JSON");
                (v["Id"].as_str().expect("truth record Id").to_string(), v)
            })
            .collect()
    }

    pub fn report(&self) -> Value {
        let (s, body) = self.http.get(&self.control("/__control/report"));
        assert_eq!(s, 200, "report: {body}");
        serde_json::from_str(&body).expect("report is JSON")
    }

    pub fn secret(&self) -> String {
        self.ready["client_secret"].as_str().unwrap().to_string()
    }
}

/// A temp dir with a config pointing at `sim` (all five content types) and a data dir.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub data: PathBuf,
}

pub fn setup(sim: &Sim, extra: Value) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let r = &sim.ready;
    let mut o = serde_json::json!({
        "credentials": {
            "client_id": r["client_id"],
            "client_secret": r["client_secret"],
            "tenant_id": r["tenant_id"],
        },
        "enabled": true,
        "id": "12345",
        "services": {
            "azure_active_directory": {}, "exchange": {}, "sharepoint": {},
            "general_audit": {}, "dlp": {}
        },
        "login_url": r["login_url"],
        "api_url": r["api_url"],
        "requests_per_minute": 100000,
        "max_concurrency": 8,
    });
    if let Value::Object(m) = extra {
        for (k, v) in m {
            o[k] = v;
        }
    }
    let cfg = serde_json::json!({"inputs": {"office365": o}});
    let config = dir.path().join("config.json");
    std::fs::write(&config, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let data = dir.path().join("data");
    Setup { dir, config, data }
}

/// Runs `m365audit collect --once` to completion (with a generous deadline).
pub fn collect_once(s: &Setup, env: &[(&str, &str)]) -> Output {
    let child = Command::new(BIN)
        .args(["collect", "--once", "--config"])
        .arg(&s.config)
        .arg("--data")
        .arg(&s.data)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting m365audit collect");
    wait_output(child, Duration::from_secs(600))
}

/// Waits for a child with a deadline; kills it (and fails) when the deadline passes.
pub fn wait_output(mut child: Child, deadline: Duration) -> Output {
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs the binary with arguments and returns its output.
pub fn run(args: &[&str]) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting m365audit");
    wait_output(child, Duration::from_secs(120))
}

pub fn stats_json(data: &Path) -> Value {
    let out = run(&["stats", "--json", "--data", data.to_str().unwrap()]);
    assert!(out.status.success(), "stats failed: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stats --json is JSON")
}

/// Asserts the store holds exactly the truth: the same Ids, each once, each raw record
/// equal (as JSON) to the simulator's.
pub fn assert_store_equals_truth(data: &Path, truth: &BTreeMap<String, Value>) {
    let store = Store::open_read_only(data).expect("open store");
    let keys = store.record_keys().unwrap();
    let mut ids: Vec<&str> = keys.iter().map(|(_, id)| id.as_str()).collect();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "an Id is stored twice");
    let missing: Vec<&String> = truth
        .keys()
        .filter(|k| ids.binary_search(&k.as_str()).is_err())
        .take(5)
        .collect();
    let extra: Vec<&&str> = ids
        .iter()
        .filter(|k| !truth.contains_key(**k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && n == truth.len(),
        "store != truth: {} stored, {} in truth; missing e.g. {missing:?}; extra e.g. {extra:?}",
        n,
        truth.len()
    );
    let mut checked = 0;
    store
        .for_each_record("cloud.office365.management", 0, |r| {
            let v = r.value()?;
            assert_eq!(
                &v, &truth[&r.header.id],
                "record {} differs from the truth",
                r.header.id
            );
            checked += 1;
            Ok(true)
        })
        .unwrap();
    assert_eq!(checked, truth.len());
}

pub fn misbehaviours(sim: &Sim) -> Vec<Value> {
    sim.report()["misbehaviours"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}
