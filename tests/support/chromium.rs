//! Real headless Chromium for UI tests: `--dump-dom` (the DOM after scripts ran) and
//! `--screenshot`, each a fresh process with a fresh profile, killed on drop; plus a
//! loopback "canary" listener that records every request, so a test can prove that no
//! planted payload made the browser call out.
//!
//! If Chromium is missing, [`Chromium::find`] prints a notice and returns `None` — unless
//! `M365AUDIT_REQUIRE_EXTERNAL=1`, in which case it panics (CI installs it).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long one Chromium run may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(90);

pub struct Chromium {
    bin: PathBuf,
}

/// Kills and reaps a child process when dropped, so a failing test leaves nothing behind.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Chromium {
    pub fn find() -> Option<Chromium> {
        for c in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
            if Path::new(c).exists() {
                return Some(Chromium { bin: c.into() });
            }
        }
        if std::env::var("M365AUDIT_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
            panic!("chromium is not installed and M365AUDIT_REQUIRE_EXTERNAL=1");
        }
        eprintln!(
            "notice: chromium not installed; skipping this browser test (apt-get install chromium)"
        );
        None
    }

    /// The browser's executable (for a session driven over DevTools: `support::cdp`).
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Runs Chromium once on `url` with `extra` flags; returns stdout.
    fn run(&self, url: &str, extra: &[String]) -> String {
        let profile = tempfile::tempdir().expect("profile dir");
        let out = tempfile::NamedTempFile::new().expect("stdout file");
        let child = Command::new(&self.bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--virtual-time-budget=4000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(out.reopen().expect("reopen stdout file"))
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning chromium");
        let mut guard = KillOnDrop(child);
        let deadline = Instant::now() + RUN_LIMIT;
        loop {
            match guard.0.try_wait().expect("waiting for chromium") {
                Some(_) => break,
                None if Instant::now() > deadline => panic!("chromium did not finish on {url}"),
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        std::fs::read_to_string(out.path()).expect("reading chromium output")
    }

    /// The serialized DOM of `url` after load and scripts.
    pub fn dump_dom(&self, url: &str) -> String {
        self.run(url, &["--dump-dom".to_string()])
    }

    /// Writes a PNG of `url` to `path`.
    pub fn screenshot(&self, url: &str, path: &Path) {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).expect("screenshot dir");
        }
        let _ = std::fs::remove_file(path);
        self.run(
            url,
            &[
                format!("--screenshot={}", path.display()),
                "--window-size=1366,1000".to_string(),
            ],
        );
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1000, "no screenshot written to {}", path.display());
    }
}

/// The folder screenshots go to: `target/test-output/<name>` (git-ignored).
pub fn output_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-output")
        .join(name);
    std::fs::create_dir_all(&d).expect("test output dir");
    d
}

/// A loopback HTTP listener that records the request line of everything it receives and
/// answers 200. `/control-page` returns a page that loads `/control-hit`, which proves the
/// browser can reach the canary (so silence elsewhere means something).
pub struct Canary {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Canary {
    pub fn start() -> Canary {
        let listener = TcpListener::bind("127.0.0.1:0").expect("canary bind");
        let addr = listener.local_addr().expect("canary addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let seen = seen2.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    seen.lock().expect("canary lock").push(path.clone());
                    let body = if path == "/control-page" {
                        "<!doctype html><title>control</title><img src=\"/control-hit\">"
                    } else {
                        ""
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        Canary { addr, seen }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every path requested so far.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("canary lock").clone()
    }

    /// Waits (polling) until `path` was requested; false after `limit`.
    pub fn wait_for(&self, path: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.seen().iter().any(|p| p == path) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

/// Payloads that each call the canary at `/xss-<n>` if they ever run or load, covering
/// script tags, event handlers, `javascript:` links, CSS and SVG, meta refresh and frames.
pub fn xss_payloads(canary: &Canary) -> Vec<String> {
    let u = |n: u32| canary.url(&format!("/xss-{n}"));
    vec![
        format!("<script>fetch('{}')</script>", u(1)),
        format!("\"><img src=x onerror=\"fetch('{}')\">", u(2)),
        format!("'><img src=x onerror='fetch(\"{}\")'>", u(3)),
        format!("javascript:fetch('{}')", u(4)),
        format!("<a href=\"javascript:fetch('{}')\" id=xss>click</a>", u(5)),
        format!("<svg onload=\"fetch('{}')\"></svg>", u(6)),
        format!("report.svg\"><svg><image href=\"{}\"/></svg>", u(7)),
        format!("</style><style>body{{background:url({})}}</style>", u(8)),
        format!("<link rel=stylesheet href=\"{}\">", u(9)),
        format!("<meta http-equiv=refresh content=\"0;url={}\">", u(10)),
        format!("<iframe src=\"{}\"></iframe>", u(11)),
        format!("\" autofocus onfocus=\"fetch('{}')\" x=\"", u(12)),
        format!("<img src=\"{}\">", u(13)),
        format!("</textarea></pre><script>fetch('{}')</script>", u(14)),
        format!("{{{{7*7}}}}<object data=\"{}\"></object>", u(15)),
    ]
}

/// Asserts that no request under `/xss-` reached the canary.
pub fn assert_no_payload_ran(canary: &Canary, context: &str) {
    let ran: Vec<String> = canary
        .seen()
        .into_iter()
        .filter(|p| p.starts_with("/xss-"))
        .collect();
    assert!(ran.is_empty(), "payloads ran on {context}: {ran:?}");
}
