//! A POP3 client (RFC 1939) with CAPA (RFC 2449), STLS (RFC 2595) and SASL PLAIN
//! (RFC 5034). Generic over the stream, so the protocol is tested over in-memory pipes;
//! `connect` makes the real TCP and TLS connections.
//!
//! Every read and write has a deadline; single-line responses are capped at
//! [`MAX_LINE`]; a multi-line response is dot-unstuffed and capped by the caller's limit
//! while it is read.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::config::{Mailbox, TlsMode};

/// The longest status line (or line of a listing) read. RFC 1939 allows 512 octets.
pub const MAX_LINE: usize = 8 * 1024;

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum Pop3Error {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {0:?} ({1})")]
    Timeout(Duration, &'static str),
    #[error("the connection closed {0}")]
    Closed(&'static str),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
    /// The server refused a command.
    #[error("{command} refused: {message}")]
    Refused {
        command: &'static str,
        message: String,
    },
    #[error("sign-in refused for {user}: {message}")]
    Auth { user: String, message: String },
    #[error("message larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
}

/// Anything a session can run over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A POP3 session.
pub struct Pop3<S> {
    stream: BufReader<S>,
    timeout: Duration,
    greeting: String,
    capabilities: Vec<String>,
}

/// One entry of LIST or UIDL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<T> {
    pub number: u32,
    pub value: T,
}

impl<S: Io> Pop3<S> {
    /// Reads the greeting.
    ///
    /// # Errors
    /// [`Pop3Error`] when the server does not greet with `+OK`.
    pub async fn start(stream: S, timeout: Duration) -> Result<Self, Pop3Error> {
        let mut s = Self {
            stream: BufReader::new(stream),
            timeout,
            greeting: String::new(),
            capabilities: Vec::new(),
        };
        s.greeting = s.status("greeting").await?;
        Ok(s)
    }

    /// The greeting's text after `+OK`.
    #[must_use]
    pub fn greeting(&self) -> &str {
        &self.greeting
    }

    /// The capabilities from the last CAPA (upper-cased first word kept as sent).
    #[must_use]
    pub fn capabilities(&self) -> &[String] {
        &self.capabilities
    }

    fn has(&self, name: &str) -> bool {
        self.capabilities.iter().any(|c| {
            c.split_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case(name))
        })
    }

    fn sasl_plain(&self) -> bool {
        self.capabilities.iter().any(|c| {
            let mut w = c.split_whitespace();
            w.next().is_some_and(|f| f.eq_ignore_ascii_case("SASL"))
                && w.any(|m| m.eq_ignore_ascii_case("PLAIN"))
        })
    }

    /// CAPA; a server without it (`-ERR`) has none listed.
    ///
    /// # Errors
    /// [`Pop3Error`] on IO or protocol errors.
    pub async fn capa(&mut self) -> Result<&[String], Pop3Error> {
        self.send("CAPA").await?;
        match self.status("CAPA").await {
            Ok(_) => {
                let lines = self.multiline(MAX_LINE as u64 * 64).await?;
                self.capabilities = String::from_utf8_lossy(&lines)
                    .lines()
                    .map(str::to_owned)
                    .collect();
            }
            Err(Pop3Error::Refused { .. }) => self.capabilities.clear(),
            Err(e) => return Err(e),
        }
        Ok(&self.capabilities)
    }

    /// Signs in: SASL PLAIN when CAPA lists it, else USER and PASS.
    ///
    /// # Errors
    /// [`Pop3Error::Auth`] when the server refuses.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<(), Pop3Error> {
        let auth = |e: Pop3Error| match e {
            Pop3Error::Refused { message, .. } => Pop3Error::Auth {
                user: user.to_owned(),
                message,
            },
            e => e,
        };
        if self.sasl_plain() {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
            self.send_secret(&format!("AUTH PLAIN {token}")).await?;
            self.status("AUTH").await.map_err(auth)?;
        } else {
            self.send(&format!("USER {user}")).await?;
            self.status("USER").await.map_err(auth)?;
            self.send_secret(&format!("PASS {password}")).await?;
            self.status("PASS").await.map_err(auth)?;
        }
        Ok(())
    }

    /// STAT: message count and total size.
    ///
    /// # Errors
    /// [`Pop3Error`].
    pub async fn stat(&mut self) -> Result<(u32, u64), Pop3Error> {
        self.send("STAT").await?;
        let line = self.status("STAT").await?;
        let mut w = line.split_whitespace();
        let n = w.next().and_then(|n| n.parse().ok());
        let size = w.next().and_then(|n| n.parse().ok());
        n.zip(size)
            .ok_or_else(|| Pop3Error::Protocol(format!("STAT answered `{line}`")))
    }

    /// LIST: each message's size.
    ///
    /// # Errors
    /// [`Pop3Error`].
    pub async fn list(&mut self) -> Result<Vec<Entry<u64>>, Pop3Error> {
        self.send("LIST").await?;
        self.status("LIST").await?;
        let body = self.multiline(MAX_LINE as u64 * 1_000_000).await?;
        parse_listing(&body, |v| v.parse().ok())
    }

    /// UIDL: each message's unique id.
    ///
    /// # Errors
    /// [`Pop3Error`]; `Refused` from a server without UIDL.
    pub async fn uidl(&mut self) -> Result<Vec<Entry<String>>, Pop3Error> {
        self.send("UIDL").await?;
        self.status("UIDL").await?;
        let body = self.multiline(MAX_LINE as u64 * 1_000_000).await?;
        parse_listing(&body, |v| {
            // RFC 1939: 1 to 70 characters in the range 0x21 to 0x7E.
            (!v.is_empty() && v.len() <= 70 && v.bytes().all(|b| (0x21..=0x7e).contains(&b)))
                .then(|| v.to_owned())
        })
    }

    /// RETR: the message, at most `limit` bytes (more is [`Pop3Error::TooLarge`], after
    /// which the session cannot be used).
    ///
    /// # Errors
    /// [`Pop3Error`].
    pub async fn retr(&mut self, number: u32, limit: u64) -> Result<Vec<u8>, Pop3Error> {
        self.send(&format!("RETR {number}")).await?;
        self.status("RETR").await?;
        self.multiline(limit).await
    }

    /// DELE: marks a message deleted (the server deletes it at QUIT).
    ///
    /// # Errors
    /// [`Pop3Error`].
    pub async fn dele(&mut self, number: u32) -> Result<(), Pop3Error> {
        self.send(&format!("DELE {number}")).await?;
        self.status("DELE").await.map(drop)
    }

    /// RSET: unmarks every deleted message.
    ///
    /// # Errors
    /// [`Pop3Error`].
    pub async fn rset(&mut self) -> Result<(), Pop3Error> {
        self.send("RSET").await?;
        self.status("RSET").await.map(drop)
    }

    /// NOOP.
    ///
    /// # Errors
    /// [`Pop3Error`].
    pub async fn noop(&mut self) -> Result<(), Pop3Error> {
        self.send("NOOP").await?;
        self.status("NOOP").await.map(drop)
    }

    /// QUIT: ends the session; the server commits the deletions. An `-ERR` here means
    /// they were not committed.
    ///
    /// # Errors
    /// [`Pop3Error`].
    pub async fn quit(mut self) -> Result<(), Pop3Error> {
        self.send("QUIT").await?;
        self.status("QUIT").await?;
        let _ = self.stream.get_mut().shutdown().await;
        Ok(())
    }

    /// STLS: asks to start TLS; on `+OK` gives back the raw stream to wrap.
    ///
    /// # Errors
    /// [`Pop3Error::Refused`] when the server will not, or data arrived after `+OK`.
    pub async fn stls(mut self) -> Result<S, Pop3Error> {
        self.send("STLS").await?;
        self.status("STLS").await?;
        if !self.stream.buffer().is_empty() {
            return Err(Pop3Error::Protocol(
                "data sent before the TLS handshake".into(),
            ));
        }
        Ok(self.stream.into_inner())
    }

    async fn send(&mut self, command: &str) -> Result<(), Pop3Error> {
        tracing::trace!(command, "pop3 >");
        self.write(command).await
    }

    /// Sends a line that carries a secret: never traced.
    async fn send_secret(&mut self, command: &str) -> Result<(), Pop3Error> {
        tracing::trace!(command = "[redacted]", "pop3 >");
        self.write(command).await
    }

    async fn write(&mut self, command: &str) -> Result<(), Pop3Error> {
        let mut line = Vec::with_capacity(command.len() + 2);
        line.extend_from_slice(command.as_bytes());
        line.extend_from_slice(b"\r\n");
        let stream = self.stream.get_mut();
        tokio::time::timeout(self.timeout, async {
            stream.write_all(&line).await?;
            stream.flush().await
        })
        .await
        .map_err(|_| Pop3Error::Timeout(self.timeout, "writing"))??;
        Ok(())
    }

    /// Reads one line of at most `max` bytes, CRLF (or LF) removed.
    async fn line(&mut self, max: usize, what: &'static str) -> Result<Vec<u8>, Pop3Error> {
        let timeout = self.timeout;
        let mut out = Vec::new();
        loop {
            let buf = tokio::time::timeout(timeout, self.stream.fill_buf())
                .await
                .map_err(|_| Pop3Error::Timeout(timeout, what))??;
            if buf.is_empty() {
                return Err(Pop3Error::Closed(what));
            }
            let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            if out.len() + take > max + 2 {
                return Err(Pop3Error::Protocol(format!(
                    "a line longer than {max} bytes"
                )));
            }
            out.extend_from_slice(&buf[..take]);
            self.stream.consume(take);
            if done {
                out.pop();
                if out.last() == Some(&b'\r') {
                    out.pop();
                }
                return Ok(out);
            }
        }
    }

    /// Reads a status line: `+OK text` gives the text, `-ERR text` is `Refused`.
    async fn status(&mut self, command: &'static str) -> Result<String, Pop3Error> {
        let line = self.line(MAX_LINE, command).await?;
        let text = String::from_utf8_lossy(&line).into_owned();
        tracing::trace!(line = %text, "pop3 <");
        if let Some(rest) = text.strip_prefix("+OK") {
            Ok(rest.trim_start().to_owned())
        } else if let Some(rest) = text.strip_prefix("-ERR") {
            Err(Pop3Error::Refused {
                command,
                message: rest.trim().to_owned(),
            })
        } else {
            Err(Pop3Error::Protocol(format!("{command} answered `{text}`")))
        }
    }

    /// Reads a multi-line body up to the terminating `.`: lines joined with CRLF, one
    /// leading dot removed from dot-stuffed lines, at most `limit` bytes.
    async fn multiline(&mut self, limit: u64) -> Result<Vec<u8>, Pop3Error> {
        let mut body = Vec::new();
        loop {
            let room = usize::try_from(limit.saturating_sub(body.len() as u64))
                .unwrap_or(usize::MAX)
                .max(1);
            let line = match self
                .line(room.saturating_add(1), "a multi-line answer")
                .await
            {
                Err(Pop3Error::Protocol(_)) => return Err(Pop3Error::TooLarge { limit }),
                other => other?,
            };
            if line == b"." {
                return Ok(body);
            }
            let line = line.strip_prefix(b".").unwrap_or(&line);
            if body.len() as u64 + line.len() as u64 + 2 > limit {
                return Err(Pop3Error::TooLarge { limit });
            }
            body.extend_from_slice(line);
            body.extend_from_slice(b"\r\n");
        }
    }
}

fn parse_listing<T>(
    body: &[u8],
    value: impl Fn(&str) -> Option<T>,
) -> Result<Vec<Entry<T>>, Pop3Error> {
    String::from_utf8_lossy(body)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut w = l.split_whitespace();
            let number = w.next().and_then(|n| n.parse().ok());
            let v = w.next().and_then(&value);
            match (number, v) {
                (Some(number), Some(value)) => Ok(Entry { number, value }),
                _ => Err(Pop3Error::Protocol(format!("bad listing line `{l}`"))),
            }
        })
        .collect()
}

/// The TLS settings for a mailbox: the web's roots, plus `ca_file`'s certificates. A
/// certificate in `ca_file` is also accepted as the server's own when presented exactly
/// (a self-signed certificate, which is often marked as a CA and so cannot be checked
/// as a chain).
///
/// # Errors
/// [`Pop3Error::Tls`] when the file cannot be read or holds no certificate.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, Pop3Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut pinned = Vec::new();
    if let Some(path) = ca_file {
        let bad = |e: &dyn std::fmt::Display| Pop3Error::Tls(format!("{}: {e}", path.display()));
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(&e))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(&e))?;
        if certs.is_empty() {
            return Err(bad(&"no certificate in it"));
        }
        for cert in certs {
            // A leaf that is no CA cannot be a root; it is still pinned below.
            let _ = roots.add(cert.clone());
            pinned.push(cert);
        }
    }
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| Pop3Error::Tls(e.to_string()))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Pop3Error::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Verifier { webpki, pinned }))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The web PKI, or a certificate the operator named exactly.
#[derive(Debug)]
struct Verifier {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl rustls::client::danger::ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

async fn wrap_tls(
    tcp: TcpStream,
    mailbox: &Mailbox,
    config: Arc<rustls::ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Pop3Error> {
    let host = mailbox.host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| Pop3Error::Tls(format!("{host}: {e}")))?;
    tokio::time::timeout(
        mailbox.timeout,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| Pop3Error::Timeout(mailbox.timeout, "the TLS handshake"))?
    .map_err(|e| {
        let hint = if e.to_string().contains("certificate") {
            " (for a server with a self-signed certificate, name the certificate with ca_file / --ca-file)"
        } else {
            ""
        };
        Pop3Error::Tls(format!("{e}{hint}"))
    })
}

/// Connects and secures a session as the mailbox says (CAPA read, not yet signed in).
///
/// # Errors
/// [`Pop3Error`].
pub async fn connect(mailbox: &Mailbox) -> Result<Pop3<Box<dyn Io>>, Pop3Error> {
    let host = mailbox.host.trim_start_matches('[').trim_end_matches(']');
    let tcp = tokio::time::timeout(mailbox.timeout, TcpStream::connect((host, mailbox.port)))
        .await
        .map_err(|_| Pop3Error::Timeout(mailbox.timeout, "connecting"))??;
    let mut session: Pop3<Box<dyn Io>> = match mailbox.tls {
        TlsMode::None => Pop3::start(Box::new(tcp) as Box<dyn Io>, mailbox.timeout).await?,
        TlsMode::Implicit => {
            let tls = wrap_tls(tcp, mailbox, tls_config(mailbox.ca_file.as_deref())?).await?;
            Pop3::start(Box::new(tls) as Box<dyn Io>, mailbox.timeout).await?
        }
        TlsMode::Starttls => {
            let config = tls_config(mailbox.ca_file.as_deref())?;
            let mut plain = Pop3::start(tcp, mailbox.timeout).await?;
            plain.capa().await?;
            if !plain.has("STLS") {
                return Err(Pop3Error::Tls("the server does not offer STLS".into()));
            }
            let tcp = plain.stls().await?;
            let tls = wrap_tls(tcp, mailbox, config).await?;
            let mut s = Pop3 {
                stream: BufReader::new(Box::new(tls) as Box<dyn Io>),
                timeout: mailbox.timeout,
                greeting: String::new(),
                capabilities: Vec::new(),
            };
            // RFC 2595: the capabilities may differ once secured; ask again.
            s.capa().await?;
            return Ok(s);
        }
    };
    session.capa().await?;
    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A session against a scripted server: `script` is what the server sends, in pieces
    /// of `chunk` bytes; returns what the client sent once the test body is done.
    async fn scripted<F, Fut>(script: &'static str, chunk: usize, body: F) -> String
    where
        F: FnOnce(Pop3<tokio::io::DuplexStream>) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let feeder = tokio::spawn(async move {
            for piece in script.as_bytes().chunks(chunk) {
                // The client may stop reading early (a limit): that is not the test's failure.
                if server.write_all(piece).await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            let _ = server.shutdown().await;
            let mut sent = Vec::new();
            let _ = server.read_to_end(&mut sent).await;
            String::from_utf8(sent).unwrap()
        });
        let session = Pop3::start(client, Duration::from_secs(2)).await.unwrap();
        body(session).await;
        feeder.await.unwrap()
    }

    #[tokio::test]
    async fn multi_line_answers_are_unstuffed_across_any_chunking() {
        for chunk in [1, 3, 7, 64, 4096] {
            let sent = scripted(
                "+OK ready\r\n+OK\r\nUSER\r\nSASL PLAIN LOGIN\r\nUIDL\r\n.\r\n+OK\r\n+OK 2 messages\r\n1 000001\r\n2 000002\r\n.\r\n\
                 +OK 9 octets\r\nline\r\n..dot\r\n.\r\n+OK\r\n+OK bye\r\n",
                chunk,
                |mut s| async move {
                    assert_eq!(s.greeting(), "ready");
                    s.capa().await.unwrap();
                    assert!(s.has("uidl") && s.sasl_plain());
                    s.login("me", "pw").await.unwrap();
                    let ids = s.uidl().await.unwrap();
                    assert_eq!(ids[1], Entry { number: 2, value: "000002".into() });
                    assert_eq!(s.retr(1, 100).await.unwrap(), b"line\r\n.dot\r\n");
                    s.dele(1).await.unwrap();
                    s.quit().await.unwrap();
                },
            )
            .await;
            assert_eq!(
                sent, "CAPA\r\nAUTH PLAIN AG1lAHB3\r\nUIDL\r\nRETR 1\r\nDELE 1\r\nQUIT\r\n",
                "chunk {chunk}"
            );
        }
    }

    #[tokio::test]
    async fn the_size_limit_holds_at_its_boundary() {
        // "abcd\r\n" + "ef\r\n" = 10 bytes once read.
        const MSG: &str = "+OK hi\r\n+OK\r\nabcd\r\nef\r\n.\r\n";
        scripted(MSG, 5, |mut s| async move {
            assert_eq!(s.retr(1, 10).await.unwrap().len(), 10);
        })
        .await;
        scripted(MSG, 5, |mut s| async move {
            assert!(matches!(
                s.retr(1, 9).await,
                Err(Pop3Error::TooLarge { limit: 9 })
            ));
        })
        .await;
    }

    #[tokio::test]
    async fn refusals_and_broken_answers_are_told_apart() {
        scripted(
            "+OK hi\r\n-ERR no CAPA\r\n+OK\r\n-ERR [AUTH] bad\r\n",
            100,
            |mut s| async move {
                assert!(s.capa().await.unwrap().is_empty());
                let err = s.login("me", "secret").await.unwrap_err();
                assert!(matches!(err, Pop3Error::Auth { .. }), "{err}");
                assert!(!err.to_string().contains("secret"));
            },
        )
        .await;
        scripted("+OK hi\r\nHTTP/1.1 400\r\n", 100, |mut s| async move {
            assert!(matches!(s.stat().await, Err(Pop3Error::Protocol(_))));
        })
        .await;
        scripted("+OK hi\r\n+OK\r\n1 000001\r\n", 100, |mut s| async move {
            assert!(matches!(s.uidl().await, Err(Pop3Error::Closed(_))));
        })
        .await;
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let (client, _server) = tokio::io::duplex(1024);
        let err = Pop3::start(client, Duration::from_millis(50))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, Pop3Error::Timeout(_, "greeting")), "{err}");
    }
}
