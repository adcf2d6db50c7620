//! Exit codes, documented in the README and in `linksnap --help`. Scripts rely on them.

use linksnap_capture::CaptureError;

/// What the process reports to its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 0: done.
    Ok,
    /// 1: the work failed (network, DNS, redirects, empty page, writing the output…).
    Failure,
    /// 2: bad input on the command line (unparseable URL, unsupported scheme, bad flag).
    Usage,
    /// 3: the page was saved, but the server answered 4xx or 5xx.
    HttpError,
    /// 4: the address policy refused the page's address.
    Refused,
    /// 5: a limit was reached (size or time).
    Limit,
    /// 6: the library could not be written, through no fault of the command: the disk is
    /// full, the data directory is read-only, or the database stayed locked. Nothing was
    /// half-saved; the same command can be run again once the cause is gone.
    Unavailable,
    /// stdout was closed early (`linksnap snap … | head`): quiet, and not a failure.
    BrokenPipe,
}

impl Code {
    /// The number the process exits with.
    pub fn number(self) -> u8 {
        match self {
            Self::Ok | Self::BrokenPipe => 0,
            Self::Failure => 1,
            Self::Usage => 2,
            Self::HttpError => 3,
            Self::Refused => 4,
            Self::Limit => 5,
            Self::Unavailable => 6,
        }
    }

    /// The code for an exit number (a command run by the server reports a number).
    pub fn from_number(n: i32) -> Self {
        match n {
            0 => Self::Ok,
            2 => Self::Usage,
            3 => Self::HttpError,
            4 => Self::Refused,
            5 => Self::Limit,
            6 => Self::Unavailable,
            _ => Self::Failure,
        }
    }
}

impl From<Code> for std::process::ExitCode {
    fn from(c: Code) -> Self {
        Self::from(c.number())
    }
}

/// An error raised for bad command-line input that clap itself cannot see.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code for an error that ended the command.
pub fn code_for(err: &anyhow::Error) -> Code {
    if let Some(io) = err.downcast_ref::<std::io::Error>()
        && io.kind() == std::io::ErrorKind::BrokenPipe
    {
        return Code::BrokenPipe;
    }
    if err.downcast_ref::<UsageError>().is_some() {
        return Code::Usage;
    }
    if let Some(e) = err.downcast_ref::<linksnap_store::StoreError>()
        && e.fault().is_some()
    {
        return Code::Unavailable;
    }
    match err.downcast_ref::<linksnap_store::OpenError>() {
        Some(linksnap_store::OpenError::Setting { .. }) => return Code::Usage,
        Some(e) if e.fault().is_some() => return Code::Unavailable,
        _ => {}
    }
    match err.downcast_ref::<CaptureError>() {
        Some(CaptureError::InvalidUrl { .. } | CaptureError::UnsupportedScheme { .. }) => {
            Code::Usage
        }
        Some(CaptureError::Refused { .. }) => Code::Refused,
        Some(CaptureError::TooLarge { .. } | CaptureError::TimedOut { .. }) => Code::Limit,
        _ => Code::Failure,
    }
}

/// The error and its causes on one line.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for (i, cause) in err.chain().enumerate() {
        let text = cause.to_string();
        if i > 0 {
            if out.contains(&text) {
                continue;
            }
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out.replace('\n', " ")
}
