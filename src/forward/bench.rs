//! The loopback TLS receiver the forwarding `bench` stages send to: a rustls
//! server on 127.0.0.1 with mutual TLS that counts the lines it reads and answers our
//! close with its own (so the forwarder's confirmation works as against rsyslog).
//!
//! The certificates in `bench_certs/` are throwaway loopback material made for this
//! benchmark (a test CA, `127.0.0.1`); they protect nothing and are never used elsewhere.

use crate::config::{DevoOutput, DevoTls, DevoTransport, TimestampStyle};
use anyhow::Result;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::Read;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

const CA: &str = include_str!("bench_certs/ca.crt");
const SERVER_CRT: &str = include_str!("bench_certs/server.crt");
const SERVER_KEY: &str = include_str!("bench_certs/server.key");
const CLIENT_CRT: &str = include_str!("bench_certs/client.crt");
const CLIENT_KEY: &str = include_str!("bench_certs/client.key");

/// A loopback syslog-over-TLS receiver that counts lines.
pub struct Receiver {
    pub port: u16,
    lines: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    pub fn start() -> Result<Receiver> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(CA.as_bytes()) {
            roots.add(c?)?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()?;
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(SERVER_CRT.as_bytes()).collect::<Result<_, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(SERVER_KEY.as_bytes())?;
        let cfg = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_client_cert_verifier(verifier)
                .with_single_cert(certs, key)?,
        );
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let lines = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (lines, stop) = (lines.clone(), stop.clone());
            std::thread::Builder::new()
                .name("bench-receiver".into())
                .spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        match listener.accept() {
                            Ok((sock, _)) => {
                                let (cfg, lines) = (cfg.clone(), lines.clone());
                                let _ = std::thread::Builder::new()
                                    .name("bench-receiver-conn".into())
                                    .spawn(move || serve(cfg, sock, &lines));
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(5)),
                        }
                    }
                })?;
        }
        Ok(Receiver { port, lines, stop })
    }

    pub fn lines(&self) -> u64 {
        self.lines.load(Ordering::SeqCst)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(cfg: Arc<rustls::ServerConfig>, sock: TcpStream, lines: &AtomicU64) {
    let _ = sock.set_nonblocking(false);
    let Ok(conn) = rustls::ServerConnection::new(cfg) else {
        return;
    };
    let mut s = rustls::StreamOwned::new(conn, sock);
    let mut buf = vec![0u8; 256 * 1024];
    let mut n_lines = 0u64;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n_lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64,
            Err(_) => return, // not confirmed: the lines of this connection do not count
        }
    }
    lines.fetch_add(n_lines, Ordering::SeqCst);
    s.conn.send_close_notify();
    let _ = s.conn.complete_io(&mut s.sock);
    let _ = s.sock.shutdown(Shutdown::Both);
}

/// Settings that send to `port` with the bench certificates (written to `dir`).
pub fn settings(port: u16, dir: &Path) -> Result<super::Settings> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in [
        ("ca.crt", CA),
        ("client.crt", CLIENT_CRT),
        ("client.key", CLIENT_KEY),
    ] {
        std::fs::write(dir.join(name), text)?;
    }
    let devo = DevoOutput {
        transport: DevoTransport::Syslog {
            host: "127.0.0.1".into(),
            port,
            tls: Some(DevoTls {
                cert: dir.join("client.crt"),
                key: dir.join("client.key"),
                chain: dir.join("ca.crt"),
                verify_hostname: true,
            }),
            gzip: false,
        },
        timestamp: TimestampStyle::Collector,
        hostname: Some("collector-12345-bench".into()),
        max_record_bytes: crate::config::DEFAULT_MAX_RECORD_BYTES,
        batch_records: crate::config::DEFAULT_BATCH_RECORDS as usize,
        confirm_secs: crate::config::DEFAULT_CONFIRM_SECS,
        alert_after_secs: 600,
        drain_secs: 600,
    };
    super::Settings::new(&devo, "12345")
}
