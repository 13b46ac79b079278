//! One headless Chromium driven over the DevTools protocol (`--remote-debugging-pipe`:
//! JSON messages, each ended by a NUL byte, on file descriptors 3 and 4), for tests that
//! act as an analyst: navigate, fill and submit a form with a real click, read the DOM,
//! take screenshots. The page's own CSP still applies to the page; DevTools' evaluation
//! is the test's hand, not page script. The browser is killed when the session drops.

use super::chromium::{Chromium, KillOnDrop};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long one DevTools command or one page load may take.
const STEP_LIMIT: Duration = Duration::from_secs(60);

pub struct Cdp {
    _child: KillOnDrop,
    to: std::fs::File,
    rx: mpsc::Receiver<Value>,
    next: u64,
    session: String,
    _profile: tempfile::TempDir,
}

/// A close-on-exec pipe (read end, write end), both above the descriptors the child gets.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let high = |fd: i32| {
        // SAFETY: `fd` is a descriptor pipe2 just returned; the duplicate is ours to own.
        let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
        assert!(d >= 10);
        // SAFETY: `fd` is open and owned by nobody else.
        unsafe { libc::close(fd) };
        // SAFETY: `d` is a fresh descriptor owned by nobody else.
        unsafe { OwnedFd::from_raw_fd(d) }
    };
    (high(fds[0]), high(fds[1]))
}

impl Cdp {
    /// Starts the browser at `about:blank` and attaches to its page.
    pub fn start(chrome: &Chromium) -> Cdp {
        use std::os::fd::AsRawFd;
        let profile = tempfile::tempdir().expect("profile dir");
        let (child_in, to) = pipe();
        let (from, child_out) = pipe();
        let (cin, cout) = (child_in.as_raw_fd(), child_out.as_raw_fd());
        let mut cmd = Command::new(chrome.bin());
        cmd.args([
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
            "--window-size=1366,1000",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (dup2) between fork and exec; dup2 clears
        // close-on-exec on the copies, so the browser keeps exactly fds 3 and 4.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(cin, 3) < 0 || libc::dup2(cout, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = KillOnDrop(cmd.spawn().expect("spawning chromium"));
        drop(child_in);
        drop(child_out);
        let (tx, rx) = mpsc::channel();
        let mut from = std::fs::File::from(from);
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            loop {
                let n = match from.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                while let Some(end) = buf.iter().position(|b| *b == 0) {
                    let msg: Vec<u8> = buf.drain(..=end).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&msg[..msg.len() - 1])
                        && tx.send(v).is_err()
                    {
                        return;
                    }
                }
            }
        });
        let mut cdp = Cdp {
            _child: child,
            to: std::fs::File::from(to),
            rx,
            next: 0,
            session: String::new(),
            _profile: profile,
        };
        let targets = cdp.call("Target.getTargets", json!({}));
        let page = targets["targetInfos"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .unwrap_or_else(|| panic!("no page target: {targets}"))["targetId"]
            .clone();
        let attached = cdp.call(
            "Target.attachToTarget",
            json!({"targetId": page, "flatten": true}),
        );
        cdp.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        cdp.call("Page.enable", json!({}));
        cdp
    }

    /// Sends one command (to the page once attached) and returns its result.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = self.session.clone().into();
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).expect("writing to chromium");
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("chromium did not answer {method}"));
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {}", v["error"]);
                return v["result"].clone();
            }
        }
    }

    /// Evaluates `js` in the page and returns its value.
    pub fn eval(&mut self, js: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true}),
        );
        assert!(
            r.get("exceptionDetails").is_none(),
            "{js}: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Runs `act` (which leaves the page: a navigation, a click on submit) and waits until
    /// a new document has loaded.
    fn leave_and_wait(&mut self, act: impl FnOnce(&mut Cdp)) {
        self.eval("window.__m365audit_old = true");
        act(self);
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            let done =
                self.eval("window.__m365audit_old !== true && document.readyState === 'complete'");
            if done == Value::Bool(true) {
                return;
            }
            assert!(Instant::now() < deadline, "the page did not load");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Opens `url` and waits for it to load.
    pub fn goto(&mut self, url: &str) {
        let url = url.to_string();
        self.leave_and_wait(|c| {
            c.call("Page.navigate", json!({"url": url}));
        });
    }

    /// Reloads the page.
    pub fn reload(&mut self) {
        self.leave_and_wait(|c| {
            c.call("Page.reload", json!({}));
        });
    }

    /// Clicks the element `selector` names (a submit button) and waits for the next page.
    pub fn click_and_wait(&mut self, selector: &str) {
        let js = format!(
            "(function(){{ var e = document.querySelector({}); if (!e) return false; e.click(); return true; }})()",
            serde_json::to_string(selector).unwrap()
        );
        self.leave_and_wait(|c| {
            assert_eq!(c.eval(&js), Value::Bool(true), "no element {selector}");
        });
    }

    /// The serialized DOM.
    pub fn html(&mut self) -> String {
        self.eval("document.documentElement.outerHTML")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page's visible text.
    pub fn text(&mut self) -> String {
        self.eval("document.body.innerText")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Writes a PNG of the top of the page (its width, at most 1800 px of its height) to
    /// `path`.
    pub fn screenshot(&mut self, path: &Path) {
        use base64::Engine as _;
        let height = self
            .eval("Math.min(document.documentElement.scrollHeight, 1800)")
            .as_f64()
            .unwrap_or(1000.0);
        let width = self
            .eval("document.documentElement.scrollWidth")
            .as_f64()
            .unwrap_or(1366.0);
        let r = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true,
                   "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("screenshot data"))
            .expect("screenshot base64");
        assert!(
            png.len() > 1000,
            "an empty screenshot of {}",
            path.display()
        );
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("writing the screenshot");
    }
}
