//! HTTP fetching for one capture: redirects followed by hand (each hop re-checked against
//! the address policy), bodies read in chunks against byte limits counted after
//! decompression, every request bounded by its own timeout and by the capture deadline,
//! and a host that failed in a way that will not change failing once, not per asset.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use reqwest::cookie::CookieStore as _;
use reqwest::header::{
    ACCEPT, ACCEPT_ENCODING, ACCEPT_LANGUAGE, CONTENT_TYPE, COOKIE, HeaderValue, LOCATION,
    USER_AGENT,
};
use tokio::sync::OnceCell;
use tokio::time::Instant;
use url::Url;

use crate::dns::{ClientResolver, GuardedResolver, HostError};
use crate::resource::{Failure, Fetched, Redirected, Wire, media_type_of};

/// Settings a [`Fetcher`] needs; derived from the capture options.
#[derive(Debug, Clone)]
pub(crate) struct FetchSettings {
    pub user_agent: String,
    pub accept_language: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub max_redirects: usize,
    /// The whole capture ends here.
    pub deadline: Instant,
}

/// The TLS configuration every capture of a process shares: Mozilla's root certificates
/// compiled in (no trust-store files read at start), plus the operator's extra roots, and
/// ALPN offering HTTP/2 then HTTP/1.1.
///
/// # Errors
/// When an extra root is not a valid PEM certificate.
pub(crate) fn tls_config(extra_roots_pem: &[Vec<u8>]) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for pem in extra_roots_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("extra CA certificate: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("extra CA certificate: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// What the page fetch needs to know besides the body.
const PAGE_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// The content codings asked for: those the client decodes (reqwest's gzip, brotli, zstd
/// and deflate features), in the order its decompression layer would ask for them. Set
/// by the fetcher itself, so that the request it records is the request it sent.
const ACCEPT_ENCODINGS: &str = "zstd,gzip,deflate,br";

/// Per-(scheme, host, port) record of the first contact; later requests wait for it and
/// skip the host when it failed for a reason that would not change.
type HostGate = Arc<OnceCell<Result<(), Failure>>>;

/// Fetches URLs for one capture. Cookies set by any response are sent with later requests
/// of the same capture, and only of that capture.
pub(crate) struct Fetcher {
    /// One client per capture: it owns the cookie jar.
    client: reqwest::Client,
    /// The capture's cookies: the client stores what responses set, and sends them.
    jar: Arc<reqwest::cookie::Jar>,
    /// Resolves and checks hosts; also the client's DNS resolver.
    resolver: Arc<GuardedResolver>,
    settings: FetchSettings,
    /// First-contact results by origin.
    gates: Mutex<HashMap<String, HostGate>>,
}

impl Fetcher {
    /// # Errors
    /// When the HTTP client cannot be built (TLS roots unavailable).
    pub fn new(
        resolver: Arc<GuardedResolver>,
        tls: &rustls::ClientConfig,
        settings: FetchSettings,
    ) -> Result<Self, String> {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls.clone())
            .user_agent(settings.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .no_proxy()
            .connect_timeout(settings.connect_timeout)
            .dns_resolver(ClientResolver(resolver.clone()))
            .build()
            .map_err(|e| error_chain(&e))?;
        Ok(Self {
            client,
            jar,
            resolver,
            settings,
            gates: Mutex::default(),
        })
    }

    /// Fetches `url`, following redirects, reading at most `max_bytes` of body.
    ///
    /// # Errors
    /// A [`Failure`] saying why nothing usable came back. Error statuses are not errors
    /// here: the caller decides what a 404 means for its resource.
    pub async fn fetch(
        &self,
        url: &Url,
        max_bytes: u64,
        is_page: bool,
    ) -> Result<Fetched, Failure> {
        let gate = {
            let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
            gates.entry(origin_key(url)).or_default().clone()
        };
        let mut first = None;
        let host_status = gate
            .get_or_init(|| async {
                let result = self.fetch_following(url, max_bytes, is_page).await;
                let status = match &result {
                    Err(f @ (Failure::Refused(_) | Failure::Connect(_))) => Err(f.clone()),
                    _ => Ok(()),
                };
                first = Some(result);
                status
            })
            .await
            .clone();
        if let Some(result) = first {
            return result;
        }
        if let Err(failure) = host_status {
            return Err(Failure::HostFailed(failure.to_string()));
        }
        self.fetch_following(url, max_bytes, is_page).await
    }

    async fn fetch_following(
        &self,
        url: &Url,
        max_bytes: u64,
        is_page: bool,
    ) -> Result<Fetched, Failure> {
        let mut current = url.clone();
        let mut seen = HashSet::from([current.clone()]);
        let mut redirects = Vec::new();
        for _hop in 0..=self.settings.max_redirects {
            if !matches!(current.scheme(), "http" | "https") {
                return Err(Failure::UnsupportedScheme(current.scheme().to_owned()));
            }
            self.check(&current).await?;
            let request_deadline = self.request_deadline();
            let mut request = self
                .client
                .get(current.clone())
                .header(ACCEPT_LANGUAGE, &self.settings.accept_language);
            if is_page {
                request = request.header(ACCEPT, PAGE_ACCEPT);
            }
            let (response, wire) = self.send(request, request_deadline).await?;
            if let Some(next) = redirect_target(&current, &response)? {
                if !seen.insert(next.clone()) {
                    return Err(Failure::Redirect(format!("redirect loop at {next}")));
                }
                let hop = self
                    .read(response, wire, current, max_bytes, request_deadline)
                    .await?;
                redirects.push(hop.into_redirected());
                current = next;
                continue;
            }
            let mut fetched = self
                .read(response, wire, current, max_bytes, request_deadline)
                .await?;
            fetched.redirects = redirects;
            return Ok(fetched);
        }
        Err(Failure::Redirect(format!(
            "more than {} redirects, the limit (max_redirects)",
            self.settings.max_redirects
        )))
    }

    /// One request as a browser made it (method, headers, body), one hop only: a
    /// redirect is answered as it came, for the browser to follow (and be checked again).
    /// The address is checked first; the body is read against `max_bytes`.
    pub async fn exchange(&self, request: &Exchange, max_bytes: u64) -> Result<Hop, Failure> {
        let url = &request.url;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Failure::UnsupportedScheme(url.scheme().to_owned()));
        }
        self.check(url).await?;
        let request_deadline = self.request_deadline();
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| Failure::Network(format!("bad method `{}`", request.method)))?;
        let mut builder = self.client.request(method, url.clone());
        for (name, value) in &request.headers {
            // What the client sets itself (the connection, the body's length and
            // encoding, cookies from this capture's jar) is not taken from the browser.
            let lower = name.to_ascii_lowercase();
            if matches!(
                lower.as_str(),
                "host"
                    | "connection"
                    | "content-length"
                    | "accept-encoding"
                    | "cookie"
                    | "keep-alive"
                    | "proxy-connection"
                    | "transfer-encoding"
                    | "upgrade"
                    | "te"
            ) {
                continue;
            }
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let (response, wire) = self.send(builder, request_deadline).await?;
        if let Some(next) = redirect_target(url, &response)? {
            let hop = self
                .read(response, wire, url.clone(), max_bytes, request_deadline)
                .await?;
            return Ok(Hop::Redirect {
                location: next,
                response: Box::new(hop.into_redirected()),
            });
        }
        self.read(response, wire, url.clone(), max_bytes, request_deadline)
            .await
            .map(|f| Hop::Done(Box::new(f)))
    }

    /// Refuses an address the policy does not allow, before any connection.
    async fn check(&self, url: &Url) -> Result<(), Failure> {
        self.resolver
            .check_url(url)
            .await
            .map(|_| ())
            .map_err(|e| match e {
                HostError::Refused { .. } => Failure::Refused(e.to_string()),
                HostError::Dns { .. } => Failure::Connect(e.to_string()),
            })
    }

    /// When a request sent now must be done: its own timeout or the capture's deadline.
    fn request_deadline(&self) -> Instant {
        self.settings
            .deadline
            .min(Instant::now() + self.settings.request_timeout)
    }

    /// Sends `request`, bounded by `deadline`; returns the response and how it was had.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        deadline: Instant,
    ) -> Result<(reqwest::Response, Wire), Failure> {
        let mut request = request
            .build()
            .map_err(|e| Failure::Network(error_chain(&e)))?;
        // What the client would add on its way out, added here, so that the headers
        // recorded are the headers sent.
        let cookies = self.jar.cookies(request.url());
        let headers = request.headers_mut();
        if let Ok(agent) = HeaderValue::from_str(&self.settings.user_agent) {
            headers.entry(USER_AGENT).or_insert(agent);
        }
        headers
            .entry(ACCEPT)
            .or_insert(HeaderValue::from_static("*/*"));
        headers
            .entry(ACCEPT_ENCODING)
            .or_insert(HeaderValue::from_static(ACCEPT_ENCODINGS));
        if let Some(cookies) = cookies {
            headers.insert(COOKIE, cookies);
        }
        let mut wire = Wire {
            sent_at: Some(std::time::SystemTime::now()),
            method: request.method().to_string(),
            request_headers: request
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            ..Wire::default()
        };
        let response = tokio::time::timeout_at(deadline, self.client.execute(request))
            .await
            .map_err(|_| Failure::TimedOut)?
            .map_err(|e| {
                if e.is_connect() {
                    Failure::Connect(error_chain(&e))
                } else {
                    Failure::Network(error_chain(&e))
                }
            })?;
        wire.remote_addr = response.remote_addr();
        wire.version = format!("{:?}", response.version());
        // Over HTTP/1.x the client names the host in a header of its own (HTTP/2 has its
        // `:authority` instead).
        if matches!(
            response.version(),
            reqwest::Version::HTTP_10 | reqwest::Version::HTTP_11
        ) && let Some(host) = response.url().host_str()
        {
            let host = match response.url().port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            };
            wire.request_headers.insert(0, ("host".to_owned(), host));
        }
        Ok((response, wire))
    }

    async fn read(
        &self,
        mut response: reqwest::Response,
        wire: Wire,
        final_url: Url,
        max_bytes: u64,
        deadline: Instant,
    ) -> Result<Fetched, Failure> {
        let too_large = || {
            Failure::TooLarge(format!(
                "{final_url} is larger than the limit of {max_bytes} bytes"
            ))
        };
        // Content-Length counts the encoded body; when it alone is over the limit the
        // decoded body can only be larger.
        if response.content_length().is_some_and(|len| len > max_bytes) {
            return Err(too_large());
        }
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = BytesMut::new();
        loop {
            let chunk = tokio::time::timeout_at(deadline, response.chunk())
                .await
                .map_err(|_| Failure::TimedOut)?
                .map_err(|e| {
                    // A body that does not decompress is the content's fault, not the
                    // network's.
                    if e.is_decode() || e.is_body() && error_chain(&e).contains("corrupt") {
                        Failure::Decode(error_chain(&e))
                    } else {
                        Failure::Network(error_chain(&e))
                    }
                })?;
            let Some(chunk) = chunk else { break };
            if (body.len() + chunk.len()) as u64 > max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let bytes = body.freeze();
        Ok(Fetched {
            media_type: media_type_of(content_type.as_deref(), &bytes),
            final_url,
            status,
            headers,
            content_type,
            bytes,
            wire,
            redirects: Vec::new(),
        })
    }
}

/// A request as a browser made it.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// `GET`, `POST`…
    pub method: String,
    pub url: Url,
    /// The browser's request headers, in order.
    pub headers: Vec<(String, String)>,
    pub body: Option<bytes::Bytes>,
}

/// The answer to one [`Exchange`].
#[derive(Debug, Clone)]
pub enum Hop {
    /// A redirect, for the browser to follow (its next request is checked again).
    Redirect {
        /// Where to, resolved against the request's URL.
        location: Url,
        /// The redirect as it came (its status is 301, 302, 303, 307 or 308).
        response: Box<Redirected>,
    },
    /// The response, its body read whole.
    Done(Box<Fetched>),
}

/// Where a redirect answer of a request for `url` points, if it is one.
fn redirect_target(url: &Url, response: &reqwest::Response) -> Result<Option<Url>, Failure> {
    if !response.status().is_redirection() {
        return Ok(None);
    }
    let Some(location) = response.headers().get(LOCATION) else {
        return Ok(None);
    };
    let location = location
        .to_str()
        .map_err(|_| Failure::Redirect("the Location header is not text".to_owned()))?;
    url.join(location.trim())
        .map(Some)
        .map_err(|e| Failure::Redirect(format!("bad Location `{location}`: {e}")))
}

fn origin_key(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or_default().to_ascii_lowercase(),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// An error with its sources, the way a person wants to read it: "error sending request
/// for url (…): client error (Connect): tcp connect error: Connection refused".
///
/// reqwest's and hyper's wrappers ("error sending request for url (…)", "client error
/// (Connect)") repeat what the caller already says; they are left out.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = current {
        let text = err.to_string();
        let wrapper = text.starts_with("error sending request for url")
            || text.starts_with("error decoding response body")
            || text.starts_with("client error (");
        if !wrapper && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = err.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}
