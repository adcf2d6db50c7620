//! Talking to a page: evaluating scripts in it (in its main world, or a frame's),
//! serialising its DOM with every frame written in, and drawing it (screenshot,
//! thumbnail, PDF).

use chromiumoxide::Page;
use chromiumoxide::cdp::js_protocol::runtime::ExecutionContextId;
use tokio::time::{Duration, Instant};

use crate::error::BrowserError;

/// The page-side serialiser (see its head).
const SERIALIZE_JS: &str = include_str!("serialize.js");

/// Tallest screenshot, in CSS pixels: a page taller than this is captured from its top
/// down to here (Chromium's own limit for one capture is 16,384).
pub const MAX_SCREENSHOT_HEIGHT: u32 = 16_384;

/// A4 in inches, the PDF's paper.
const A4_INCHES: (f64, f64) = (8.27, 11.69);

/// Width and height of a thumbnail: the top 1280×720 of the page at half size.
pub const THUMBNAIL_SIZE: (u32, u32) = (640, 360);

/// What a browser capture makes besides the snapshot, when asked (into
/// [`linksnap_capture::Capture::renderings`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras {
    /// A full-page PNG at the window's width ([`crate::chromium::WINDOW_WIDTH`]), at most
    /// [`MAX_SCREENSHOT_HEIGHT`] tall.
    pub screenshot: bool,
    /// A JPEG of the page's top, [`THUMBNAIL_SIZE`].
    pub thumbnail: bool,
    /// The page printed to PDF (A4, backgrounds printed).
    pub pdf: bool,
}

/// The images and prints of a settled page.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    pub(crate) renderings: linksnap_capture::Renderings,
    pub(crate) screenshot_cut: bool,
}

/// The screenshot and the PDF of the settled page, as asked.
pub(crate) async fn take(page: &Page, extras: Extras) -> Result<Taken, BrowserError> {
    use base64::Engine as _;
    use chromiumoxide::cdp::browser_protocol::page::{
        CaptureScreenshotFormat, CaptureScreenshotParams, PrintToPdfParams, Viewport,
    };
    let fail = |e: chromiumoxide::error::CdpError| BrowserError::Browser(e.to_string());
    let decode = |data: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| BrowserError::Browser(e.to_string()))
    };
    // The page from its top, `width` × `height` CSS pixels, drawn at `scale`.
    let shot = |format, quality, width, height, scale| CaptureScreenshotParams {
        format: Some(format),
        quality,
        clip: Some(Viewport {
            x: 0.0,
            y: 0.0,
            width,
            height,
            scale,
        }),
        from_surface: Some(true),
        capture_beyond_viewport: Some(true),
        optimize_for_speed: None,
    };
    let mut taken = Taken::default();
    if extras.screenshot {
        let height: f64 = evaluate(
            page,
            "Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0, innerHeight)",
        )
        .await?;
        let max = f64::from(MAX_SCREENSHOT_HEIGHT);
        taken.screenshot_cut = height > max;
        let png = CaptureScreenshotFormat::Png;
        let (width, height) = (
            f64::from(crate::chromium::WINDOW_WIDTH),
            height.min(max).max(1.0),
        );
        let shot = page
            .execute(shot(png, None, width, height, 1.0))
            .await
            .map_err(fail)?;
        taken.renderings.screenshot = Some(decode(shot.result.data.as_ref())?.into());
    }
    if extras.thumbnail {
        // The top 1280×720 of the page at half size.
        let (w, h) = THUMBNAIL_SIZE;
        let jpeg = CaptureScreenshotFormat::Jpeg;
        let params = shot(jpeg, Some(80), f64::from(w * 2), f64::from(h * 2), 0.5);
        let shot = page.execute(params).await.map_err(fail)?;
        taken.renderings.thumbnail = Some(decode(shot.result.data.as_ref())?.into());
    }
    if extras.pdf {
        let params = PrintToPdfParams::builder()
            .print_background(true)
            .paper_width(A4_INCHES.0)
            .paper_height(A4_INCHES.1)
            .build();
        let pdf = page.execute(params).await.map_err(fail)?;
        taken.renderings.pdf = Some(decode(pdf.result.data.as_ref())?.into());
    }
    Ok(taken)
}

/// Whether a document of `media_type` is a page the browser renders and the serialiser
/// writes (HTML, XHTML); anything else is kept as it was answered.
pub(crate) fn is_page(media_type: &str) -> bool {
    matches!(media_type, "text/html" | "application/xhtml+xml")
}

/// Frames inside frames written in, at most (deeper ones keep what their address
/// answered, inlined by the static walk).
const MAX_FRAME_DEPTH: usize = 5;

/// A new random word, for names the page cannot guess (each `RandomState` is keyed
/// afresh at random).
fn nonce() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let h = std::collections::hash_map::RandomState::new().build_hasher();
    format!("{:016x}", h.finish())
}

/// The serialiser called with `nonce`, for a document that will be a `srcdoc` when
/// `as_frame`.
fn serializer(nonce: &str, as_frame: bool) -> String {
    format!("({SERIALIZE_JS})(\"{nonce}\", {as_frame})")
}

/// The page's DOM as it stands, serialised without scripts, every frame written in
/// (frames of another origin each in its own context). The page is asked again while it
/// has no context (between two documents), until `by`.
///
/// # Errors
/// [`BrowserError`] when the page never answers by `by` or the serialiser throws.
pub(crate) async fn serialise(page: &Page, by: Instant) -> Result<String, BrowserError> {
    let nonce = nonce();
    let html: String = evaluate_until(page, &serializer(&nonce, false), by).await?;
    Ok(with_frames(page, html, None, &nonce, 1).await)
}

/// `html`, serialised in `context` (the page's main world when `None`), with each frame
/// of another origin it marked (see serialize.js) written in as a `srcdoc`: each
/// serialised in its own frame's context, its own frames likewise, to
/// [`MAX_FRAME_DEPTH`]. A frame that cannot be serialised keeps its address.
fn with_frames<'a>(
    page: &'a Page,
    html: String,
    context: Option<ExecutionContextId>,
    nonce: &'a str,
    depth: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send + 'a>> {
    Box::pin(async move {
        let marker = format!("data-linksnap-frame-{nonce}");
        if !html.contains(&marker) {
            return html;
        }
        let mut html = html;
        let count: usize = evaluate_in(
            page,
            &format!("window.__linksnapFrames{nonce}.length"),
            context,
            false,
        )
        .await
        .unwrap_or(0);
        for i in 0..count {
            let written = match frame_html(page, context, nonce, i, depth).await {
                Some((inner, inner_context)) => {
                    let inner =
                        with_frames(page, inner, Some(inner_context), nonce, depth + 1).await;
                    format!(
                        " srcdoc=\"{}\"",
                        inner.replace('&', "&amp;").replace('"', "&quot;")
                    )
                }
                None => String::new(),
            };
            html = html.replacen(&format!(" {marker}=\"{i}\""), &written, 1);
        }
        html
    })
}

/// The document of the `i`th frame of another origin listed in `context`, serialised in
/// that frame's own context (returned with it), if it can be.
async fn frame_html(
    page: &Page,
    context: Option<ExecutionContextId>,
    nonce: &str,
    i: usize,
    depth: usize,
) -> Option<(String, ExecutionContextId)> {
    use chromiumoxide::cdp::browser_protocol::dom::DescribeNodeParams;
    use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
    if depth > MAX_FRAME_DEPTH {
        return None;
    }
    let mut element = EvaluateParams::builder()
        .expression(format!("window.__linksnapFrames{nonce}[{i}]"))
        .return_by_value(false);
    if let Some(context) = context {
        element = element.context_id(context);
    }
    let element = page.execute(element.build().ok()?).await.ok()?;
    let object = element.result.result.object_id.clone()?;
    let node = page
        .execute(DescribeNodeParams::builder().object_id(object).build())
        .await
        .ok()?;
    let frame = node.result.node.frame_id.clone()?;
    let frame_context = page.frame_execution_context(frame).await.ok()??;
    let html = evaluate_in(page, &serializer(nonce, true), Some(frame_context), false)
        .await
        .ok()?;
    Some((html, frame_context))
}

/// How [`evaluate`] reports an exception thrown by the evaluated script.
const SCRIPT_FAILED: &str = "the page's serialiser failed";

/// [`evaluate`], asked again every 100 ms while the page has no context to answer in
/// (between two documents), until `by`.
pub(crate) async fn evaluate_until<T: serde::de::DeserializeOwned>(
    page: &Page,
    js: &str,
    by: Instant,
) -> Result<T, BrowserError> {
    loop {
        match evaluate(page, js).await {
            Ok(v) => return Ok(v),
            // The script itself failed: asking again gives the same answer.
            Err(e) if e.to_string().starts_with(SCRIPT_FAILED) => return Err(e),
            Err(e) if Instant::now() >= by => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Evaluates `js` in the page's main world as it is now (not waiting for a navigation
/// the page may have attempted), returning its value.
pub(crate) async fn evaluate<T: serde::de::DeserializeOwned>(
    page: &Page,
    js: &str,
) -> Result<T, BrowserError> {
    evaluate_in(page, js, None, false).await
}

/// [`evaluate`] of a script whose value is a promise: its settled value.
pub(crate) async fn evaluate_async<T: serde::de::DeserializeOwned>(
    page: &Page,
    js: &str,
) -> Result<T, BrowserError> {
    evaluate_in(page, js, None, true).await
}

/// [`evaluate`] in `context` (the page's main world when `None`), awaiting the value when
/// it is a promise if `await_promise`.
async fn evaluate_in<T: serde::de::DeserializeOwned>(
    page: &Page,
    js: &str,
    context: Option<ExecutionContextId>,
    await_promise: bool,
) -> Result<T, BrowserError> {
    use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
    let mut params = EvaluateParams::builder()
        .expression(js)
        .return_by_value(true)
        .await_promise(await_promise);
    if let Some(context) = context {
        params = params.context_id(context);
    }
    let params = params.build().map_err(BrowserError::Browser)?;
    let response = page
        .execute(params)
        .await
        .map_err(|e| BrowserError::Browser(e.to_string()))?;
    if let Some(exception) = &response.result.exception_details {
        return Err(BrowserError::Browser(format!(
            "{SCRIPT_FAILED}: {}",
            exception.text
        )));
    }
    let value = response
        .result
        .result
        .value
        .clone()
        .unwrap_or(serde_json::Value::Null);
    serde_json::from_value(value).map_err(|e| BrowserError::Browser(e.to_string()))
}
