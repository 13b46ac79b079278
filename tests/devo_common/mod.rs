// Shared helpers for the Devo forwarder's end-to-end tests: test certificates made with
// the `openssl` CLI, a real rsyslogd (Debian `rsyslog` + `rsyslog-openssl`) listening with
// mutual TLS on 127.0.0.1 as the stand-in for Devo (docs/devo.md, Testing against a stand-in: raw bytes, one file
// per tag), and the expected line of every stored record. rsyslogd runs in the foreground
// as our child and is stopped by its pid. Included with `mod devo_common;`.
#![allow(dead_code)]

use m365audit::store::Store;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

/// True when rsyslogd, its TLS driver and openssl are here; otherwise prints a notice
/// (or panics under `M365AUDIT_REQUIRE_EXTERNAL=1`, where CI must have them).
pub fn have_rsyslog() -> bool {
    let driver = Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_ossl.so").exists()
        || Path::new("/usr/lib/rsyslog/lmnsd_ossl.so").exists();
    let openssl = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let ok = Path::new(RSYSLOGD).exists() && driver && openssl;
    if !ok {
        if std::env::var("M365AUDIT_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
            panic!(
                "rsyslogd with the ossl driver (rsyslog, rsyslog-openssl) or openssl is missing and M365AUDIT_REQUIRE_EXTERNAL=1"
            );
        }
        eprintln!("SKIPPED: rsyslogd (rsyslog + rsyslog-openssl) or openssl not installed");
    }
    ok
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes `<prefix>ca.crt/key`, `<prefix>server.crt/key` (localhost, 127.0.0.1) and
/// `<prefix>client.crt/key`, all signed by that CA, in `dir`.
pub fn make_certs(dir: &Path, prefix: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let ca = format!("{prefix}ca");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=m365audit test CA {prefix}"),
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.crt"),
        ],
    );
    for (name, ext) in [
        (
            "server",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        let n = format!("{prefix}{name}");
        std::fs::write(dir.join(format!("{n}.ext")), ext).unwrap();
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{n}.key"),
                "-out",
                &format!("{n}.csr"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{n}.csr"),
                "-CA",
                &format!("{ca}.crt"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{n}.ext"),
                "-out",
                &format!("{n}.crt"),
            ],
        );
    }
}

/// A running rsyslogd configured as in docs/devo.md (Testing against a stand-in).
pub struct Rsyslog {
    pub dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const CONF: &str = r#"
global(
  workDirectory="$DIR/work"
  maxMessageSize="1m"
  parser.escapeControlCharactersOnReceive="off"
  defaultNetstreamDriver="ossl"
  defaultNetstreamDriverCAFile="$DIR/certs/ca.crt"
  defaultNetstreamDriverCertFile="$DIR/certs/server.crt"
  defaultNetstreamDriverKeyFile="$DIR/certs/server.key"
)
module(load="imtcp"
       streamDriver.name="ossl"
       streamDriver.mode="1"
       streamDriver.authMode="x509/certvalid"
       maxSessions="100")
input(type="imtcp" address="127.0.0.1" port="$PORT" ruleset="devo")

template(name="raw" type="string" string="%rawmsg%\n")
template(name="pertag" type="string" string="$DIR/out/tags/%$!devo_tag%.log")
ruleset(name="devo") {
  set $!devo_host = re_extract($rawmsg, "^<[0-9]{1,3}>([A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8}|[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9:.]+(Z|[+-][0-9:]+)?) ([^ ]+) ([A-Za-z0-9_.-]+): ", 0, 3, "UNPARSED");
  set $!devo_tag  = re_extract($rawmsg, "^<[0-9]{1,3}>([A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8}|[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9:.]+(Z|[+-][0-9:]+)?) ([^ ]+) ([A-Za-z0-9_.-]+): ", 0, 4, "unknown.unknown");
  action(type="omfile" file="$DIR/out/raw.log" template="raw")
  action(type="omfile" dynaFile="pertag" template="raw")
}
"#;

impl Rsyslog {
    /// Certificates in `dir/certs` (made here), rsyslogd started and listening.
    pub fn start(dir: &Path) -> Rsyslog {
        make_certs(&dir.join("certs"), "");
        let mut r = Rsyslog {
            dir: dir.to_path_buf(),
            port: free_port(),
            child: None,
        };
        for d in ["work", "out/tags"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let conf = CONF
            .replace("$DIR", dir.to_str().unwrap())
            .replace("$PORT", &r.port.to_string());
        std::fs::write(dir.join("rsyslog.conf"), conf).unwrap();
        r.restart();
        r
    }

    /// Starts rsyslogd (again) on the same port and output folder.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "rsyslogd is running");
        let child = Command::new(RSYSLOGD)
            .arg("-n")
            .arg("-f")
            .arg(self.dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join("rsyslogd.stderr"))
                    .expect("rsyslogd.stderr"),
            ))
            .spawn()
            .expect("starting rsyslogd");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(st)) = c.try_wait()
            {
                let err = std::fs::read_to_string(self.dir.join("rsyslogd.stderr"));
                panic!("rsyslogd exited ({st}): {err:?}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "rsyslogd does not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM (rsyslogd writes what it received, then exits) and reap.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let start = Instant::now();
            while c.try_wait().ok().flatten().is_none() {
                if start.elapsed() > Duration::from_secs(20) {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Every line rsyslogd wrote to raw.log.
    pub fn raw_lines(&self) -> Vec<String> {
        read_lines(&self.dir.join("out/raw.log"))
    }

    /// Lines per tag file (file name without `.log`).
    pub fn tag_files(&self) -> BTreeMap<String, Vec<String>> {
        let mut m = BTreeMap::new();
        for e in std::fs::read_dir(self.dir.join("out/tags")).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            m.insert(name, read_lines(&p));
        }
        m
    }

    /// Waits until raw.log holds at least `n` lines (rsyslogd writes asynchronously).
    pub fn wait_lines(&self, n: usize, limit: Duration) -> usize {
        let start = Instant::now();
        loop {
            let have = self.raw_lines().len();
            if have >= n || start.elapsed() > limit {
                return have;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The `outputs.devo` object for a forwarder with this client identity.
    pub fn devo_config(&self, cert: &str, key: &str) -> serde_json::Value {
        let c = self.dir.join("certs");
        serde_json::json!({
            "mode": "syslog",
            "address": format!("127.0.0.1:{}", self.port),
            "tls": {
                "cert": c.join(cert), "key": c.join(key), "chain": c.join("ca.crt"),
                "verify_hostname": true
            },
            "timestamp": "collector",
            "gzip": false,
            "confirm_secs": 1,
            "drain_secs": 120
        })
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_lines(p: &Path) -> Vec<String> {
    match std::fs::read(p) {
        Ok(b) => String::from_utf8(b)
            .expect("rsyslog output is UTF-8")
            .lines()
            .map(str::to_string)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Adds `outputs.devo` to the config file written by `collect_common::setup`.
pub fn add_devo(config: &Path, devo: serde_json::Value) {
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(config).unwrap()).unwrap();
    cfg["outputs"] = serde_json::json!({ "devo": devo });
    std::fs::write(config, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
}

/// The line of every stored record after the timestamp: `HOSTNAME TAG: JSON`, by tag.
pub fn expected_lines(data: &Path, hostname: &str) -> BTreeMap<String, Vec<String>> {
    let store = Store::open_read_only(data).expect("open store");
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    store
        .for_each_record("cloud.office365.management", 0, |r| {
            let tag = m365audit::forward::line::tag_for(&r.header.workload);
            m.entry(tag.clone())
                .or_default()
                .push(format!("{hostname} {tag}: {}", r.raw));
            Ok(true)
        })
        .unwrap();
    m
}

/// Splits `<14>YYYY-MM-DD HH:MM:SS.mmm REST` into REST, checking PRI and timestamp form.
pub fn strip_header(line: &str) -> &str {
    let rest = line
        .strip_prefix("<14>")
        .unwrap_or_else(|| panic!("no <14> PRI: {:.120}", line));
    let (ts, rest) = rest.split_at(23);
    let b = ts.as_bytes();
    assert!(
        b[4] == b'-' && b[7] == b'-' && b[10] == b' ' && b[13] == b':' && b[19] == b'.',
        "not a collector timestamp: {ts:?}"
    );
    rest.strip_prefix(' ').expect("space after the timestamp")
}

/// The default hostname the binary puts on lines for collector id 12345.
pub fn default_hostname() -> String {
    m365audit::forward::line::default_hostname(
        "12345",
        &m365audit::forward::line::machine_hostname(),
    )
}
