//! Live progress: capture state changes pushed to the pages over Server-Sent Events.

use super::*;
use crate::state::LinkEvent;

/// Most links one event stream reports the current state of when it opens.
pub const MAX_WATCHED: usize = 200;

pub(super) fn link_event(e: &LinkEvent) -> Result<Event, Infallible> {
    Ok(Event::default()
        .event("link")
        .data(serde_json::to_string(e).unwrap_or_default()))
}

/// Server-Sent Events: one `link` event per status change, and a comment every
/// `sse_heartbeat` so that a browser that vanished is found out (the write fails and the
/// stream is dropped) and proxies keep the stream open.
pub(super) async fn events(
    Scoped(s): Scoped,
    RawQuery(raw): RawQuery,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    // Subscribed first, then the current state of the links the page asks about: a change
    // between the page's rendering and this stream is never missed.
    let rx = s.events.subscribe();
    let params = query(raw.as_deref());
    let mut current = Vec::new();
    for id in field(&params, "ids")
        .split(',')
        .filter_map(|i| i.trim().parse::<i64>().ok())
        .take(MAX_WATCHED)
    {
        if let Ok(l) = s.library.get(LinkId(id)).await {
            current.push(LinkEvent {
                library: crate::support::library_key(&s.library),
                id,
                status: l.status.as_str(),
            });
        }
    }
    let live = crate::state::SseGuard::new(s.sse_streams.clone());
    let stopping = s.stopping.clone();
    let first = futures_util::stream::iter(current.iter().map(link_event).collect::<Vec<_>>());
    let mine = crate::support::library_key(&s.library);
    let changes = futures_util::stream::unfold(
        (rx, live, stopping, mine),
        |(mut rx, live, mut stopping, mine)| async move {
            loop {
                let next = tokio::select! {
                    e = rx.recv() => e,
                    // A shutdown ends the stream, so the connection can close.
                    _ = stopping.wait_for(|s| *s) => return None,
                };
                match next {
                    // Another user's links are not this stream's business.
                    Ok(e) if e.library != mine => {}
                    Ok(e) => return Some((link_event(&e), (rx, live, stopping, mine))),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    let stream = futures_util::StreamExt::chain(first, changes);
    Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(s.sse_heartbeat.max(Duration::from_millis(100)))
            .text("heartbeat"),
    )
}
