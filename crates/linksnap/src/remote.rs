//! One writer per data directory: a library command opens the library itself, or, when a
//! server holds it, is sent to the server over the data directory's private socket and run
//! there (see `linksnap_server::cli`), its output streamed back.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::{Buf as _, Bytes, BytesMut};
use futures_util::future::BoxFuture;
use http_body_util::BodyExt as _;
use linksnap_server::cli::{self as proto, CliCall, CliRunner};
use linksnap_store::{Libraries, OpenError};

use crate::commands::{Command, parse_forwarded, reads_stdin, run_library};
use crate::exit::{self, Code};
use crate::library_cmds::{Term, open_library};
use crate::scope::Scope;

/// Runs `command` on the library, here or through the server running on it.
/// `password`, when given, was asked for on the terminal: the command reads it as its
/// standard input (as with `--password-stdin`).
pub async fn run_here_or_on_server(
    data: Option<&Path>,
    user: Option<String>,
    command: Command,
    password: Option<String>,
) -> anyhow::Result<Code> {
    match open_library(data).await {
        Ok(libs) => {
            let mut term = Term::local();
            if let Some(p) = &password {
                term.stdin = Box::new(std::io::Cursor::new(format!("{p}\n").into_bytes()));
            }
            let scope = Scope::new(&libs, user.as_deref()).await?;
            run_library(&scope, &mut term, command).await
        }
        Err(OpenError::Locked(dir)) => {
            let socket = dir.join(linksnap_server::SOCKET_NAME);
            match tokio::net::UnixStream::connect(&socket).await {
                Ok(stream) => forward(stream, &command, password).await,
                // No server answers: another command holds the lock.
                Err(_) => Err(OpenError::Locked(dir).into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

async fn forward(
    stream: tokio::net::UnixStream,
    command: &Command,
    password: Option<String>,
) -> anyhow::Result<Code> {
    let mut args = std::env::args_os()
        .skip(1)
        .map(|a| {
            a.into_string()
                .map_err(|a| anyhow::anyhow!("{a:?}: not UTF-8; cannot send it to the server"))
        })
        .collect::<anyhow::Result<Vec<String>>>()?;
    if password.is_some() {
        args.push("--password-stdin".to_owned());
    }
    let cwd = std::env::current_dir().context("the working directory")?;
    let mut body = serde_json::to_vec(&serde_json::json!({"args": args, "cwd": cwd}))?;
    body.push(b'\n');
    if let Some(p) = password {
        body.extend_from_slice(p.as_bytes());
        body.push(b'\n');
    } else if reads_stdin(command) {
        use std::io::Read as _;
        std::io::stdin()
            .read_to_end(&mut body)
            .context("reading standard input")?;
    }
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .context("the server's socket")?;
    tokio::spawn(conn);
    let req = hyper::Request::post("/_cli/v1/run")
        .header("host", "linksnap")
        .header("linksnap-protocol", proto::PROTOCOL.to_string())
        .header("linksnap-version", proto::VERSION)
        .body(http_body_util::Full::new(Bytes::from(body)))?;
    let res = sender
        .send_request(req)
        .await
        .context("sending the command to the server")?;
    let status = res.status();
    let mut body = res.into_body();
    if !status.is_success() {
        let bytes = body.collect().await?.to_bytes();
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        anyhow::bail!("the server refused the command: {message}");
    }
    let mut buf = BytesMut::new();
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.context("the server's answer")?.into_data() {
            buf.extend_from_slice(&data);
        }
        while buf.len() >= 5 {
            let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            if buf.len() < 5 + len {
                break;
            }
            let kind = buf[0];
            buf.advance(5);
            let payload = buf.split_to(len);
            match kind {
                proto::FRAME_STDOUT => out.write_all(&payload)?,
                proto::FRAME_STDERR => err.write_all(&payload)?,
                proto::FRAME_EXIT if payload.len() == 4 => {
                    out.flush()?;
                    let code = i32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                    return Ok(Code::from_number(code));
                }
                _ => anyhow::bail!("the server sent a frame this linksnap does not know"),
            }
        }
    }
    anyhow::bail!("the server closed the connection before the command finished")
}

/// Runs forwarded commands inside `serve`, each on a thread and runtime of its own
/// (`on_own_thread`): commands may capture (`add --wait`), and a capture is not `Send`.
pub struct Runner;

impl CliRunner for Runner {
    fn run(&self, libs: Arc<Libraries>, call: CliCall) -> BoxFuture<'static, i32> {
        Box::pin(async move {
            // The user's library is opened here, on the server's runtime (it outlives the
            // command's own thread).
            if let Ok((Some(user), _)) = parse_forwarded(&call.args) {
                let _ = libs.of_user_name(&user).await;
            }
            linksnap_server::on_own_thread("cli-command", move || async move {
                run_call(&libs, call).await
            })
            .await
            .unwrap_or(1)
        })
    }
}

async fn run_call(libs: &Libraries, call: CliCall) -> i32 {
    let mut t = Term {
        out: Box::new(call.stdout),
        err: Box::new(call.stderr),
        stdin: Box::new(std::io::Cursor::new(call.stdin)),
        cwd: call.cwd,
        remote: true,
    };
    let (user, command) = match parse_forwarded(&call.args) {
        Ok(c) => c,
        Err(e) => {
            let text = e.render().to_string();
            let _ = if e.use_stderr() {
                t.err.write_all(text.as_bytes())
            } else {
                t.out.write_all(text.as_bytes())
            };
            return e.exit_code();
        }
    };
    let scope = match Scope::new(libs, user.as_deref()).await {
        Ok(s) => s,
        Err(err) => {
            let _ = writeln!(t.err, "linksnap: error: {}", exit::one_line(&err));
            return i32::from(exit::code_for(&err).number());
        }
    };
    let code = match run_library(&scope, &mut t, command).await {
        Ok(code) => code,
        Err(err) => {
            let code = exit::code_for(&err);
            if code != Code::BrokenPipe {
                let _ = writeln!(t.err, "linksnap: error: {}", exit::one_line(&err));
            }
            code
        }
    };
    i32::from(code.number())
}
