//! The TLS client of syslog mode: loads Devo's three PEM files (certificate, key, chain CA),
//! checks them with errors that name the file and what is wrong (not PEM, expired, key does
//! not match the certificate), and builds the rustls client (TLS 1.2–1.3, SNI = the
//! configured host, server verified against the chain, hostname check on or off).
//! Never prints key material.

use crate::config::DevoTls;
use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// The loaded material, with what `check` prints about it.
pub struct Material {
    pub config: Arc<rustls::ClientConfig>,
    /// One line per file: what it holds and until when it is valid.
    pub summary: Vec<String>,
    /// The client certificate's expiry, if it could be read.
    pub cert_not_after: Option<DateTime<Utc>>,
}

fn certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("{what} {}: cannot read", path.display()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            anyhow!(
                "{what} {}: not a PEM certificate file ({e})",
                path.display()
            )
        })?;
    if certs.is_empty() {
        bail!(
            "{what} {}: no certificate in it (expected PEM \"-----BEGIN CERTIFICATE-----\")",
            path.display()
        );
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("private key {}: cannot read", path.display()))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        anyhow!(
            "private key {}: not a PEM private key ({e}); expected \"-----BEGIN PRIVATE KEY-----\" (PKCS#8), RSA or EC",
            path.display()
        )
    })
}

/// Loads and checks the three files and builds the client configuration.
pub fn load(tls: &DevoTls, now: DateTime<Utc>) -> Result<Material> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs(&tls.chain, "chain CA")?;
    let mut roots = rustls::RootCertStore::empty();
    for (i, c) in chain.iter().enumerate() {
        roots.add(c.clone()).map_err(|e| {
            anyhow!(
                "chain CA {}: certificate {} is not usable as a trust anchor ({e})",
                tls.chain.display(),
                i + 1
            )
        })?;
    }
    let client = certs(&tls.cert, "client certificate")?;
    let key = key(&tls.key)?;
    let mut summary = Vec::new();
    let mut cert_not_after = None;
    for (path, what, list) in [
        (&tls.cert, "client certificate", &client),
        (&tls.chain, "chain CA", &chain),
    ] {
        for (i, c) in list.iter().enumerate() {
            let (nb, na) = validity(c).with_context(|| {
                format!(
                    "{what} {}: certificate {} is not valid X.509",
                    path.display(),
                    i + 1
                )
            })?;
            if na < now {
                bail!(
                    "{what} {}: certificate {} expired on {} (download a new one from Devo: Administration → Credentials → X.509 Certificates)",
                    path.display(),
                    i + 1,
                    na.format("%Y-%m-%d")
                );
            }
            if nb > now {
                bail!(
                    "{what} {}: certificate {} is not valid before {}",
                    path.display(),
                    i + 1,
                    nb.format("%Y-%m-%d %H:%M UTC")
                );
            }
            if i == 0 && what == "client certificate" {
                cert_not_after = Some(na);
            }
            summary.push(format!(
                "{what} {} (#{}): valid until {} ({} days)",
                path.display(),
                i + 1,
                na.format("%Y-%m-%d"),
                (na - now).num_days()
            ));
        }
    }
    let certified =
        rustls::sign::CertifiedKey::from_der(client.clone(), key.clone_key(), &provider).map_err(
            |e| {
                anyhow!(
                    "private key {} does not match the client certificate {} ({e})",
                    tls.key.display(),
                    tls.cert.display()
                )
            },
        )?;
    drop(certified);
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS versions")?;
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .with_context(|| {
        format!(
            "chain CA {}: cannot verify servers with it",
            tls.chain.display()
        )
    })?;
    let builder = if tls.verify_hostname {
        builder.with_webpki_verifier(webpki)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoHostname(webpki)))
    };
    let mut config = builder
        .with_client_auth_cert(client, key)
        .with_context(|| {
            format!(
                "client certificate {} / key {}: not usable",
                tls.cert.display(),
                tls.key.display()
            )
        })?;
    // Every confirmation is a new connection; OpenSSL servers that ask for a client
    // certificate refuse resumed sessions without a session id context (rsyslog does:
    // "session id context uninitialized"), so always a full handshake.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Material {
        config: Arc::new(config),
        summary,
        cert_not_after,
    })
}

/// The server name for SNI and (if on) the hostname check.
pub fn server_name(host: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(host.to_string()).map_err(|e| anyhow!("{host:?} is not a host name ({e})"))
}

/// Verifies the chain like webpki, but accepts a certificate that is valid except for the
/// name (Devo's own collectors switch the hostname check off).
#[derive(Debug)]
struct NoHostname(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for NoHostname {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

// ---- a minimal DER walk to the validity of an X.509 certificate ----------------------

/// (tag, content, rest) of the DER element at the start of `b`.
fn der(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, hdr) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let content = b.get(hdr..hdr.checked_add(len)?)?;
    Some((tag, content, &b[hdr + len..]))
}

fn der_time(tag: u8, s: &[u8]) -> Option<DateTime<Utc>> {
    let s = std::str::from_utf8(s).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let y: i32 = s.get(0..2)?.parse().ok()?;
            (if y >= 50 { 1900 + y } else { 2000 + y }, s.get(2..)?)
        }
        0x18 => (s.get(0..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    let n = |r: std::ops::Range<usize>| -> Option<u32> { rest.get(r)?.parse().ok() };
    let date = NaiveDate::from_ymd_opt(year, n(0..2)?, n(2..4)?)?;
    let time = NaiveTime::from_hms_opt(n(4..6)?, n(6..8)?, n(8..10).unwrap_or(0))?;
    Some(NaiveDateTime::new(date, time).and_utc())
}

/// notBefore and notAfter of a certificate.
fn validity(cert: &CertificateDer<'_>) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    let parse = || -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let (_, certificate, _) = der(cert.as_ref())?;
        let (_, tbs, _) = der(certificate)?;
        let mut rest = tbs;
        // [0] version (optional), serial, signature algorithm, issuer, validity
        let (tag, _, r) = der(rest)?;
        if tag == 0xa0 {
            rest = r;
        }
        let (_, _, r) = der(rest)?; // serial
        let (_, _, r) = der(r)?; // signature
        let (_, _, r) = der(r)?; // issuer
        let (_, validity, _) = der(r)?;
        let (t1, nb, r) = der(validity)?;
        let (t2, na, _) = der(r)?;
        Some((der_time(t1, nb)?, der_time(t2, na)?))
    };
    parse().context("cannot read its validity dates")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_times_parse_in_both_forms() {
        assert_eq!(
            der_time(0x17, b"491231235959Z").map(|t| t.to_rfc3339()),
            Some("2049-12-31T23:59:59+00:00".to_string())
        );
        assert_eq!(
            der_time(0x18, b"20510101000000Z").map(|t| t.to_rfc3339()),
            Some("2051-01-01T00:00:00+00:00".to_string())
        );
        assert_eq!(der_time(0x17, b"garbage"), None);
    }

    #[test]
    fn missing_and_non_pem_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let junk = dir.path().join("junk.crt");
        std::fs::write(&junk, "not pem at all").expect("write");
        let tls = DevoTls {
            cert: junk.clone(),
            key: dir.path().join("none.key"),
            chain: junk.clone(),
            verify_hostname: true,
        };
        let e = format!("{:#}", load(&tls, Utc::now()).err().expect("fails"));
        assert!(e.contains("chain CA") && e.contains("junk.crt"), "{e}");
        assert!(e.contains("no certificate"), "{e}");
    }
}
