//! A mailbox's settings: the `[[mail]]` tables of the config file, or the flags of
//! `linksnap mail poll`, checked once into a [`Mailbox`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use linksnap_store::TagName;
use serde::Deserialize;

/// How often a mailbox is polled by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(300);
/// The largest message read by default (checked with LIST before RETR, and while reading).
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 25 * 1024 * 1024;
/// Links one message may add; a message with more is kept in the mailbox.
pub const DEFAULT_MAX_LINKS_PER_MESSAGE: usize = 100;
/// Links one poll adds; messages beyond wait for the next poll.
pub const DEFAULT_MAX_LINKS_PER_POLL: usize = 1000;
/// The default deadline for connecting and for every read and write.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The tag every mailed link gets unless the mailbox says otherwise.
pub const DEFAULT_TAG: &str = "mail";

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (POP3S, port 995).
    Implicit,
    /// Plain, then `STLS` before signing in (RFC 2595, port 110).
    Starttls,
    /// No TLS: refused unless the host is loopback or plaintext is explicitly allowed.
    None,
}

impl TlsMode {
    /// The usual port.
    #[must_use]
    pub fn default_port(self) -> u16 {
        match self {
            Self::Implicit => 995,
            Self::Starttls | Self::None => 110,
        }
    }
}

impl std::str::FromStr for TlsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "implicit" => Ok(Self::Implicit),
            "starttls" => Ok(Self::Starttls),
            "none" => Ok(Self::None),
            _ => Err(format!("`{s}`: expected implicit, starttls or none")),
        }
    }
}

/// A password: never printed, never logged.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    #[must_use]
    pub fn new(s: String) -> Self {
        Self(s)
    }
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// One `[[mail]]` table as written. Unknown keys are errors.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxFile {
    /// The name status and records use (default `USER@HOST`).
    pub name: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub tls: Option<TlsMode>,
    pub user: String,
    /// The environment variable that holds the password.
    pub password_env: Option<String>,
    /// A file whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// Extra CA certificates (PEM) to trust, e.g. for a self-signed server.
    pub ca_file: Option<PathBuf>,
    /// Allow `tls = "none"` to a host that is not loopback.
    pub allow_plaintext: Option<bool>,
    pub poll_interval: Option<String>,
    /// The linksnap user the links are for (must exist).
    pub owner: Option<String>,
    /// Only mail from these senders (`a@b.example`, `@b.example` for a domain, `*` for
    /// anyone); none: no mail is taken.
    pub allowed_senders: Option<Vec<String>>,
    /// The receiving server's authserv-id: a message must carry its
    /// `Authentication-Results` verdict (dmarc pass, or aligned dkim pass) for the sender.
    pub authserv_id: Option<String>,
    /// The environment variable that holds the mailbox's secret: a message must carry it
    /// in a recipient address (`links+SECRET@…`) or its subject.
    pub secret_env: Option<String>,
    /// A file whose first line is that secret.
    pub secret_file: Option<PathBuf>,
    /// Most links one message may add (default 100); a message with more is kept.
    pub max_links_per_message: Option<usize>,
    /// Most links one poll adds (default 1000); later messages wait for the next poll.
    pub max_links_per_poll: Option<usize>,
    /// Tags every link gets (default `["mail"]`).
    pub tags: Option<Vec<String>>,
    /// `#word` in the subject becomes a tag (default true).
    pub subject_tags: Option<bool>,
    /// Delete a message once its links are saved (default true; else UIDLs are kept).
    pub delete: Option<bool>,
    pub max_message_size: Option<u64>,
    pub timeout: Option<String>,
}

/// A mailbox ready to poll.
#[derive(Debug, Clone)]
pub struct Mailbox {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub user: String,
    pub password: Secret,
    pub ca_file: Option<PathBuf>,
    pub poll_interval: Duration,
    pub owner: Option<String>,
    pub allowed_senders: Vec<String>,
    pub authserv_id: Option<String>,
    pub secret: Option<Secret>,
    pub max_links_per_message: usize,
    pub max_links_per_poll: usize,
    pub tags: Vec<TagName>,
    pub subject_tags: bool,
    pub delete: bool,
    pub max_message_bytes: u64,
    pub timeout: Duration,
}

/// A mailbox that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    #[error("mailbox {mailbox}: {message}")]
    Invalid { mailbox: String, message: String },
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("`{s}` is not a duration: {e}"))
}

/// A value given as `WHAT_env` (the variable's name) or `WHAT_file` (its first line), not
/// both; `None` when neither is set.
fn from_env_or_file(
    what: &str,
    var: Option<&str>,
    file: Option<&Path>,
    base: &Path,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, String> {
    match (var, file) {
        (Some(var), None) => env(var)
            .map(Some)
            .ok_or_else(|| format!("the environment variable {var} is not set")),
        (None, Some(file)) => {
            let path = base.join(file);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            Ok(Some(text.lines().next().unwrap_or("").to_owned()))
        }
        (Some(_), Some(_)) => Err(format!("give {what}_env or {what}_file, not both")),
        (None, None) => Ok(None),
    }
}

/// Whether `host` is a loopback address or `localhost`.
#[must_use]
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl MailboxFile {
    /// Checks the settings and reads the password (from `env` or the file; a relative
    /// path is taken from `base`).
    ///
    /// # Errors
    /// [`MailConfigError`] naming the mailbox and the setting.
    pub fn resolve(
        &self,
        base: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Mailbox, MailConfigError> {
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("{}@{}", self.user, self.host));
        let bad = |message: String| MailConfigError::Invalid {
            mailbox: name.clone(),
            message,
        };
        if self.host.trim().is_empty() {
            return Err(bad("`host` is empty".into()));
        }
        if self.user.is_empty() {
            return Err(bad("`user` is empty".into()));
        }
        let tls = self.tls.unwrap_or(TlsMode::Implicit);
        if tls == TlsMode::None
            && !is_loopback_host(&self.host)
            && !self.allow_plaintext.unwrap_or(false)
        {
            return Err(bad(format!(
                "tls = \"none\" would send the password in the clear to {}; use implicit or starttls, or set allow_plaintext = true",
                self.host
            )));
        }
        let password = from_env_or_file(
            "password",
            self.password_env.as_deref(),
            self.password_file.as_deref(),
            base,
            &env,
        )
        .map_err(&bad)?
        .ok_or_else(|| bad("no password: set password_env or password_file".into()))?;
        if password.is_empty() {
            return Err(bad("the password is empty".into()));
        }
        let tags = match &self.tags {
            Some(t) => t.clone(),
            None => vec![DEFAULT_TAG.to_owned()],
        }
        .iter()
        .map(|t| TagName::parse(t).map_err(|e| bad(format!("tag `{t}`: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
        let poll_interval = match &self.poll_interval {
            Some(d) => duration(d).map_err(&bad)?,
            None => DEFAULT_POLL_INTERVAL,
        };
        if poll_interval.is_zero() {
            return Err(bad("poll_interval must be more than 0".into()));
        }
        let timeout = match &self.timeout {
            Some(d) => duration(d).map_err(&bad)?,
            None => DEFAULT_TIMEOUT,
        };
        if timeout.is_zero() {
            return Err(bad("timeout must be more than 0".into()));
        }
        let secret = from_env_or_file(
            "secret",
            self.secret_env.as_deref(),
            self.secret_file.as_deref(),
            base,
            &env,
        )
        .map_err(&bad)?
        .map(|s| s.trim().to_owned());
        if let Some(s) = &secret
            && (s.len() < 8 || !s.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(bad(
                "the secret must be at least 8 letters and digits (it goes into an address)".into(),
            ));
        }
        let max_links_per_message = self
            .max_links_per_message
            .unwrap_or(DEFAULT_MAX_LINKS_PER_MESSAGE);
        let max_links_per_poll = self
            .max_links_per_poll
            .unwrap_or(DEFAULT_MAX_LINKS_PER_POLL);
        if max_links_per_message == 0 || max_links_per_poll == 0 {
            return Err(bad(
                "max_links_per_message and max_links_per_poll must be more than 0".into(),
            ));
        }
        let max_message_bytes = self.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES);
        if max_message_bytes == 0 {
            return Err(bad("max_message_size must be more than 0".into()));
        }
        Ok(Mailbox {
            host: self.host.trim().to_owned(),
            port: self.port.unwrap_or_else(|| tls.default_port()),
            tls,
            user: self.user.clone(),
            password: Secret(password),
            ca_file: self.ca_file.as_ref().map(|f| base.join(f)),
            poll_interval,
            owner: self.owner.clone(),
            allowed_senders: self
                .allowed_senders
                .iter()
                .flatten()
                .map(|s| s.trim().to_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
            authserv_id: self
                .authserv_id
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            secret: secret.map(|s| Secret(s.to_lowercase())),
            max_links_per_message,
            max_links_per_poll,
            tags,
            subject_tags: self.subject_tags.unwrap_or(true),
            delete: self.delete.unwrap_or(true),
            max_message_bytes,
            timeout,
            name,
        })
    }
}

impl Mailbox {
    /// What this mailbox asks of a message before it takes its links.
    #[must_use]
    pub fn rules(&self) -> crate::trust::Rules<'_> {
        crate::trust::Rules {
            allowed_senders: &self.allowed_senders,
            authserv_id: self.authserv_id.as_deref(),
            secret: self.secret.as_ref().map(Secret::expose),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(host: &str, tls: TlsMode) -> MailboxFile {
        MailboxFile {
            host: host.into(),
            tls: Some(tls),
            user: "u".into(),
            password_env: Some("PW".into()),
            ..MailboxFile::default()
        }
    }

    fn env(name: &str) -> Option<String> {
        (name == "PW").then(|| "s3cret".to_owned())
    }

    #[test]
    fn plaintext_is_refused_unless_loopback_or_allowed() {
        let base = Path::new("/");
        for host in ["127.0.0.1", "::1", "[::1]", "localhost", "127.3.4.5"] {
            file(host, TlsMode::None).resolve(base, env).unwrap();
        }
        let err = file("mail.example.org", TlsMode::None)
            .resolve(base, env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("in the clear"), "{err}");
        let mut allowed = file("192.0.2.1", TlsMode::None);
        allowed.allow_plaintext = Some(true);
        allowed.resolve(base, env).unwrap();
        file("mail.example.org", TlsMode::Starttls)
            .resolve(base, env)
            .unwrap();
    }

    #[test]
    fn defaults_ports_and_the_password_never_shows() {
        let m = file("mail.example.org", TlsMode::Implicit)
            .resolve(Path::new("/"), env)
            .unwrap();
        assert_eq!(m.port, 995);
        assert_eq!(m.name, "u@mail.example.org");
        assert_eq!(m.tags[0].as_str(), DEFAULT_TAG);
        assert!(m.delete && m.subject_tags);
        let shown = format!("{m:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("[redacted]"),
            "{shown}"
        );
        assert_eq!(
            file("h", TlsMode::Starttls)
                .resolve(Path::new("/"), env)
                .unwrap()
                .port,
            110
        );
        let mut missing = file("h", TlsMode::Implicit);
        missing.password_env = Some("NOPE".into());
        assert!(
            missing
                .resolve(Path::new("/"), env)
                .unwrap_err()
                .to_string()
                .contains("NOPE")
        );
    }

    #[test]
    fn senders_match_by_address_or_domain() {
        let mut f = file("h", TlsMode::Implicit);
        f.allowed_senders = Some(vec!["Me@Home.test".into(), "@work.test".into()]);
        let m = f.resolve(Path::new("/"), env).unwrap();
        let allowed = |s: &str| crate::trust::sender_allowed(&m.allowed_senders, s);
        assert!(allowed("me@home.test"));
        assert!(allowed("anyone@WORK.test"));
        assert!(!allowed("other@home.test"));
        assert!(!allowed("x@sub.work.test"));
        // Nobody until the list is set.
        let none = file("h", TlsMode::Implicit)
            .resolve(Path::new("/"), env)
            .unwrap();
        assert!(!crate::trust::sender_allowed(
            &none.allowed_senders,
            "me@home.test"
        ));
    }
}
