//! The local CLI's way in: when a server holds the data directory, `linksnap` commands are
//! run by the server (which owns the database) and their output streamed back, like tmux's
//! client and server. Only on the data directory's private socket, from this user.
//!
//! Request: `POST /_cli/v1/run` with headers `linksnap-protocol` and `linksnap-version`
//! (the handshake: a mismatch is a 409 `version_mismatch`), and a body of one JSON line
//! `{"args": [...], "cwd": "..."}` followed by the command's standard input.
//! Response: frames of `[kind: u8][length: u32 big-endian][payload]`, kind `o` (stdout),
//! `e` (stderr) or `x` (exit code, i32 big-endian), `x` last.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::future::BoxFuture;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::error::ApiError;

/// The CLI protocol's version; bumped on any incompatible change.
pub const PROTOCOL: u32 = 1;
/// This build's version: CLI and server must be the same build of linksnap.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Frame kinds.
pub const FRAME_STDOUT: u8 = b'o';
pub const FRAME_STDERR: u8 = b'e';
pub const FRAME_EXIT: u8 = b'x';

/// One command sent by the CLI.
pub struct CliCall {
    /// The command line after the program name.
    pub args: Vec<String>,
    /// The CLI's working directory: relative paths in `args` are relative to it.
    pub cwd: PathBuf,
    /// The CLI's standard input, when the command reads it (else empty).
    pub stdin: Bytes,
    pub stdout: FrameWriter,
    pub stderr: FrameWriter,
}

/// Runs CLI commands against the server's library (implemented by the binary, which owns
/// the commands). Returns the exit code.
pub trait CliRunner: Send + Sync {
    /// Runs `call` on the data directory's libraries (the command line chooses one).
    fn run(&self, libs: Arc<linksnap_store::Libraries>, call: CliCall) -> BoxFuture<'static, i32>;
}

/// A `std::io::Write` that sends what is written as frames of one kind.
#[derive(Clone)]
pub struct FrameWriter {
    kind: u8,
    tx: mpsc::UnboundedSender<Bytes>,
}

/// Encodes one frame.
pub fn frame(kind: u8, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + payload.len());
    b.put_u8(kind);
    b.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    b.put_slice(payload);
    b.freeze()
}

impl std::io::Write for FrameWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // At most 1 MiB a frame.
        let n = buf.len().min(1 << 20);
        self.tx
            .send(frame(self.kind, &buf[..n]))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Deserialize)]
struct Head {
    args: Vec<String>,
    cwd: PathBuf,
}

pub(crate) fn start(
    runner: Option<Arc<dyn CliRunner>>,
    libs: Arc<linksnap_store::Libraries>,
    local: bool,
    headers: &axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(runner) = runner.filter(|_| local) else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "CLI commands are taken only on the data directory's socket",
        ));
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (protocol, version) = (header("linksnap-protocol"), header("linksnap-version"));
    if protocol != PROTOCOL.to_string() || version != VERSION {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "version_mismatch",
            format!(
                "this linksnap is version {} (protocol {}), but the server running on this data directory is {VERSION} (protocol {PROTOCOL}): use the server's version of linksnap, or stop the server",
                if version.is_empty() {
                    "unknown"
                } else {
                    &version
                },
                if protocol.is_empty() {
                    "unknown"
                } else {
                    &protocol
                },
            ),
        ));
    }
    let split = body
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", "no command line"))?;
    let head: Head = serde_json::from_slice(&body[..split]).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("command: {e}"),
        )
    })?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let call = CliCall {
        args: head.args,
        cwd: head.cwd,
        stdin: body.slice(split + 1..),
        stdout: FrameWriter {
            kind: FRAME_STDOUT,
            tx: tx.clone(),
        },
        stderr: FrameWriter {
            kind: FRAME_STDERR,
            tx: tx.clone(),
        },
    };
    // Its own task: a CLI that goes away does not cancel durable work half-way.
    tokio::spawn(async move {
        let code = runner.run(libs, call).await;
        let _ = tx.send(frame(FRAME_EXIT, &code.to_be_bytes()));
    });
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|o| o.map(Ok::<_, std::convert::Infallible>))
    });
    Ok(Response::builder()
        .header("content-type", "application/vnd.linksnap.cli-frames")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}
