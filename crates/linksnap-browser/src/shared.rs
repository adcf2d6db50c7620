//! Shared workers' requests, answered like the page's.
//!
//! A shared worker is a target of the browser, not of the page: the page's interception
//! never sees what it asks for, and the driver does not attach to it. So each capture
//! opens a DevTools connection of its own beside the driver's, asks the browser to attach
//! it to every shared worker as it starts (paused until told to run), and, for a worker of
//! the capture's browser context, enables the same interception on the worker's session
//! before letting it run. Its requests are then answered by the capture's fetcher, as the
//! page's are ([`crate::intercept::reply`]). A worker of another context (another capture
//! of the same Chromium) is let run at once and left to its own capture's connection.

use std::collections::HashSet;

use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::target::{
    FilterEntry, SessionId, SetAutoAttachParams, TargetFilter,
};
use chromiumoxide::cdp::{CdpEvent, CdpEventMessage};
use chromiumoxide::conn::Connection;
use chromiumoxide::types::{Message, Method as _};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use linksnap_capture::CaptureSession;

use crate::error::BrowserError;
use crate::intercept::{Seen, reply};

/// A DevTools connection attached to the shared workers of one browser context.
pub(crate) struct SharedWorkers {
    conn: Connection<CdpEventMessage>,
    context: BrowserContextId,
}

impl SharedWorkers {
    /// Connects to the browser at `websocket` and asks to be attached to every shared
    /// worker as it starts; returns once the browser has agreed, so that no worker the
    /// page starts afterwards runs unseen.
    pub(crate) async fn attach(
        websocket: &str,
        context: BrowserContextId,
    ) -> Result<Self, BrowserError> {
        let fail = |e: chromiumoxide::error::CdpError| BrowserError::Browser(e.to_string());
        let mut conn = Connection::<CdpEventMessage>::connect(websocket)
            .await
            .map_err(fail)?;
        let only_shared_workers = FilterEntry {
            r#type: Some("shared_worker".to_owned()),
            exclude: Some(false),
        };
        let attach = SetAutoAttachParams::builder()
            .auto_attach(true)
            .wait_for_debugger_on_start(true)
            .flatten(true)
            .filter(TargetFilter::new(vec![only_shared_workers]))
            .build()
            .map_err(BrowserError::Browser)?;
        let asked = submit(&mut conn, None, attach.identifier(), &attach)?;
        while let Some(message) = conn.next().await {
            if let Message::Response(r) = message.map_err(fail)?
                && r.id == asked
            {
                return match r.error {
                    None => Ok(Self { conn, context }),
                    Some(e) => Err(BrowserError::Browser(format!(
                        "attaching to shared workers: {}",
                        e.message
                    ))),
                };
            }
        }
        Err(BrowserError::Browser(
            "the browser closed the connection for shared workers".to_owned(),
        ))
    }

    /// Answers every request of the context's shared workers through `session`, keeping
    /// each answer in `seen`; runs until the connection ends (or is dropped with the
    /// capture).
    pub(crate) async fn intercept(mut self, session: &CaptureSession<'_>, seen: &Seen) {
        let mut ours: HashSet<String> = HashSet::new();
        let mut answering = FuturesUnordered::new();
        loop {
            tokio::select! {
                message = self.conn.next() => {
                    let Some(Ok(Message::Event(event))) = message else {
                        if matches!(message, None | Some(Err(_))) {
                            return;
                        }
                        continue;
                    };
                    match event.params {
                        CdpEvent::TargetAttachedToTarget(attached) => {
                            let worker = attached.session_id.clone();
                            let of_ours = attached.target_info.browser_context_id.as_ref()
                                == Some(&self.context);
                            if of_ours {
                                ours.insert(worker.as_ref().to_owned());
                                // Before the worker runs: every request of it is paused.
                                let enable = serde_json::json!({ "patterns": [{ "urlPattern": "*" }] });
                                let _ = submit_json(&mut self.conn, &worker, "Fetch.enable", enable);
                            }
                            let _ = submit_json(
                                &mut self.conn,
                                &worker,
                                "Runtime.runIfWaitingForDebugger",
                                serde_json::json!({}),
                            );
                        }
                        CdpEvent::FetchRequestPaused(paused) => {
                            let Some(worker) = event.session_id.filter(|s| ours.contains(s)) else {
                                continue;
                            };
                            answering.push(async move {
                                (worker, reply(session, seen, None, &paused).await)
                            });
                        }
                        _ => {}
                    }
                }
                Some((worker, answer)) = answering.next(), if !answering.is_empty() => {
                    let (method, params) = answer.command();
                    let _ = self.conn.submit_command(method, Some(SessionId::from(worker)), params);
                    seen.answered();
                }
            }
        }
    }
}

/// Queues `params` as the command `method` on `session` (the browser's when none).
fn submit<T: serde::Serialize>(
    conn: &mut Connection<CdpEventMessage>,
    session: Option<SessionId>,
    method: chromiumoxide::types::MethodId,
    params: &T,
) -> Result<chromiumoxide::types::CallId, BrowserError> {
    let params = serde_json::to_value(params).map_err(|e| BrowserError::Browser(e.to_string()))?;
    conn.submit_command(method, session, params)
        .map_err(|e| BrowserError::Browser(e.to_string()))
}

/// Queues a command given by name and JSON parameters on the worker's `session`.
fn submit_json(
    conn: &mut Connection<CdpEventMessage>,
    session: &SessionId,
    method: &'static str,
    params: serde_json::Value,
) -> Result<chromiumoxide::types::CallId, BrowserError> {
    submit(conn, Some(session.clone()), method.into(), &params)
}
