//! One syslog connection to Devo (or a relay): TCP, TLS unless configured off, blocking
//! I/O on the forwarder's own thread. Owns the connection lifecycle of docs/devo.md (Syslog over TLS):
//! write timeout, the EOF check before a write, and the closing handshake — half-close
//! (TLS close_notify, then FIN) and read until the server's EOF. Syslog has no
//! acknowledgement, so that handshake is the forwarder's confirmation: the server has read
//! every byte sent before it answers our close with its own.

use anyhow::{Context, Result, anyhow, bail};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Give up a write after this long (docs/devo.md, Syslog over TLS).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the closing handshake waits for the server's EOF.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how to connect.
#[derive(Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

/// An open connection.
pub struct Conn {
    stream: Stream,
}

fn tcp(ep: &Endpoint) -> Result<TcpStream> {
    let addrs: Vec<_> = (ep.host.as_str(), ep.port)
        .to_socket_addrs()
        .with_context(|| format!("resolving {}:{}", ep.host, ep.port))?
        .collect();
    let mut last = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_nodelay(true)?;
                s.set_write_timeout(Some(WRITE_TIMEOUT))?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => anyhow!("connecting to {}:{}: {e}", ep.host, ep.port),
        None => anyhow!("{} resolves to no address", ep.host),
    })
}

impl Conn {
    /// Connects and, with TLS, completes the handshake (so a refused client certificate
    /// or an untrusted server shows here, not at the first write).
    pub fn open(ep: &Endpoint) -> Result<Conn> {
        let sock = tcp(ep)?;
        let stream = match &ep.tls {
            None => Stream::Plain(sock),
            Some(cfg) => {
                let name = super::tls::server_name(&ep.host)?;
                let conn =
                    rustls::ClientConnection::new(cfg.clone(), name).context("starting TLS")?;
                let mut s = rustls::StreamOwned::new(conn, sock);
                s.sock.set_read_timeout(Some(CONNECT_TIMEOUT))?;
                while s.conn.is_handshaking() {
                    s.conn
                        .complete_io(&mut s.sock)
                        .map_err(|e| anyhow!("TLS handshake with {}:{}: {e}", ep.host, ep.port))?;
                }
                s.sock.set_read_timeout(None)?;
                Stream::Tls(Box::new(s))
            }
        };
        Ok(Conn { stream })
    }

    fn sock(&self) -> &TcpStream {
        match &self.stream {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }

    /// True when the server has closed (or reset) the connection: it is readable with
    /// 0 bytes, a close_notify, or an error (docs/devo.md, Syslog over TLS). Session tickets and other
    /// TLS housekeeping the server sends are consumed.
    pub fn peer_closed(&mut self) -> bool {
        if self.sock().set_nonblocking(true).is_err() {
            return true;
        }
        let closed = match &mut self.stream {
            Stream::Plain(s) => {
                let mut b = [0u8; 256];
                match s.read(&mut b) {
                    Ok(0) => true,
                    Ok(_) => false, // a relay has nothing to say; ignore it
                    Err(e) => e.kind() != ErrorKind::WouldBlock,
                }
            }
            Stream::Tls(s) => loop {
                match s.conn.read_tls(&mut s.sock) {
                    Ok(0) => break true,
                    Ok(_) => match s.conn.process_new_packets() {
                        Ok(st) if st.peer_has_closed() => break true,
                        Ok(_) => {
                            let mut b = [0u8; 256];
                            while let Ok(n) = s.conn.reader().read(&mut b) {
                                if n == 0 {
                                    break;
                                }
                            }
                        }
                        Err(_) => break true,
                    },
                    Err(e) => break e.kind() != ErrorKind::WouldBlock,
                }
            },
        };
        if self.sock().set_nonblocking(false).is_err() {
            return true;
        }
        closed
    }

    /// Writes all of `buf` (bounded by the write timeout).
    pub fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        let r = match &mut self.stream {
            Stream::Plain(s) => s.write_all(buf).and_then(|_| s.flush()),
            Stream::Tls(s) => s.write_all(buf).and_then(|_| s.flush()),
        };
        r.map_err(|e| match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                anyhow!("write timed out after {} s", WRITE_TIMEOUT.as_secs())
            }
            _ => anyhow!("write failed: {e}"),
        })?;
        Ok(())
    }

    /// The closing handshake: close_notify (TLS) and FIN, then read until the server's
    /// EOF. Ok means the server read everything sent before (docs/devo.md, Syslog over TLS); a TLS alert
    /// instead (a refused client certificate shows only here under TLS 1.3) is an error.
    pub fn close(self) -> Result<()> {
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        let timed_out = || {
            anyhow!(
                "the server did not close within {} s after our close",
                CLOSE_TIMEOUT.as_secs()
            )
        };
        match self.stream {
            Stream::Plain(mut sock) => {
                sock.shutdown(Shutdown::Write)
                    .map_err(|e| anyhow!("half-closing: {e}"))?;
                sock.set_read_timeout(Some(CLOSE_TIMEOUT))?;
                let mut b = [0u8; 4096];
                loop {
                    match sock.read(&mut b) {
                        Ok(0) => return Ok(()),
                        Ok(_) if Instant::now() < deadline => {}
                        Ok(_) => return Err(timed_out()),
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                        {
                            return Err(timed_out());
                        }
                        Err(e) => bail!("closing: {e}"),
                    }
                }
            }
            Stream::Tls(mut s) => {
                s.conn.send_close_notify();
                while s.conn.wants_write() {
                    s.conn
                        .write_tls(&mut s.sock)
                        .map_err(|e| anyhow!("sending close_notify: {e}"))?;
                }
                s.sock
                    .shutdown(Shutdown::Write)
                    .map_err(|e| anyhow!("half-closing: {e}"))?;
                s.sock.set_read_timeout(Some(CLOSE_TIMEOUT))?;
                loop {
                    match s.conn.read_tls(&mut s.sock) {
                        Ok(0) => return Ok(()),
                        Ok(_) => {
                            let st = s
                                .conn
                                .process_new_packets()
                                .map_err(|e| anyhow!("the server ended the TLS session: {e}"))?;
                            if st.peer_has_closed() {
                                return Ok(());
                            }
                            let mut b = [0u8; 4096];
                            while let Ok(n) = s.conn.reader().read(&mut b) {
                                if n == 0 {
                                    break;
                                }
                            }
                            if Instant::now() >= deadline {
                                return Err(timed_out());
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                        {
                            return Err(timed_out());
                        }
                        Err(e) => bail!("closing: {e}"),
                    }
                }
            }
        }
    }
}
