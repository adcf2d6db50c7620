//! `linksnap snap URL`: one capture, written to a file or standard output.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use linksnap_capture::capture::outcome_counts;
use linksnap_capture::{Capture, Capturer};

use std::path::PathBuf;

use clap::Args;

use crate::args::{FetchArgs, Format};
use crate::exit::{Code, UsageError};
use crate::wire::SnapReport;

/// Arguments of `linksnap snap`.
#[derive(Debug, Args)]
pub struct SnapArgs {
    /// The page to capture (http or https; a bare host/path is taken as https).
    pub url: String,
    /// Write to FILE instead of standard output (written atomically: all or nothing).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// What to write.
    #[arg(long, value_enum, default_value_t = Format::Html)]
    pub format: Format,
    /// Print no summary line on standard error.
    #[arg(short, long)]
    pub quiet: bool,
    /// Also write a full-page PNG of the rendered page (1280 px wide, at most 16,384 px
    /// tall) to FILE. Browser engine only.
    #[arg(long, value_name = "FILE")]
    pub screenshot: Option<PathBuf>,
    /// Also write the rendered page printed to PDF (A4, backgrounds printed) to FILE.
    /// Browser engine only.
    #[arg(long, value_name = "FILE")]
    pub pdf: Option<PathBuf>,
    #[command(flatten)]
    pub fetch: FetchArgs,
}

/// Runs the command.
///
/// # Errors
/// The capture's error, or a failure to write the output.
pub async fn run(args: SnapArgs) -> anyhow::Result<Code> {
    let (options, names) = args.fetch.build(args.format != Format::Html)?;
    let capturer = Capturer::with_resolver(options, names)?;
    let chromium = args.fetch.chromium_to_run()?;
    let extras = linksnap_browser::Extras {
        screenshot: args.screenshot.is_some(),
        thumbnail: false,
        pdf: args.pdf.is_some(),
    };
    if chromium.is_none() && (extras.screenshot || extras.pdf) {
        return Err(UsageError(
            "--screenshot and --pdf need the browser engine (--engine browser, and Chromium installed)"
                .to_owned(),
        )
        .into());
    }
    let capture = match chromium {
        None => capturer.capture(&args.url).await?,
        Some(path) => {
            let started = std::time::Instant::now();
            let browser = linksnap_browser::BrowserCapturer::launch(
                &path,
                capturer,
                args.fetch.browser_settings(),
            )
            .await?;
            tracing::debug!(elapsed = ?started.elapsed(), "Chromium started");
            let result = browser.capture(&args.url, extras).await;
            tracing::debug!(elapsed = ?started.elapsed(), "captured");
            browser.close().await;
            tracing::debug!(elapsed = ?started.elapsed(), "Chromium closed");
            match result {
                Ok(done) => {
                    if done.unsettled && !args.quiet {
                        eprintln!(
                            "linksnap: the page was still loading at the deadline; saved as it was then"
                        );
                    }
                    let made = &done.capture.renderings;
                    if let (Some(path), Some(png)) = (&args.screenshot, &made.screenshot) {
                        write_atomically(path, png)?;
                        if done.screenshot_cut && !args.quiet {
                            eprintln!(
                                "linksnap: the page is taller than {} px: the screenshot shows its top {} px",
                                linksnap_browser::MAX_SCREENSHOT_HEIGHT,
                                linksnap_browser::MAX_SCREENSHOT_HEIGHT
                            );
                        }
                    }
                    if let (Some(path), Some(pdf)) = (&args.pdf, &made.pdf) {
                        write_atomically(path, pdf)?;
                    }
                    done.capture
                }
                Err(linksnap_browser::BrowserError::Capture(e)) => return Err(e.into()),
                Err(e) => return Err(e.into()),
            }
        }
    };
    let body = render(&capture, args.format)?;
    match &args.output {
        Some(path) => write_atomically(path, &body)?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&body)?;
            out.flush()?;
        }
    }
    if !args.quiet {
        eprintln!("{}", summary(&capture, args.output.as_deref()));
    }
    Ok(if capture.is_http_error() {
        Code::HttpError
    } else {
        Code::Ok
    })
}

fn render(capture: &Capture, format: Format) -> anyhow::Result<Vec<u8>> {
    Ok(match format {
        Format::Html => capture.snapshot_bytes().to_vec(),
        Format::Text => match &capture.readable {
            Some(r) => format!("{}\n\n{}\n", r.title, r.text).into_bytes(),
            None => anyhow::bail!(
                "{} is {}, not HTML: it has no readable text (use --format html to save the file)",
                capture.page.final_url,
                capture.page.media_type
            ),
        },
        Format::Json => {
            let mut v = serde_json::to_vec_pretty(&SnapReport::new(capture))?;
            v.push(b'\n');
            v
        }
    })
}

/// Writes `path` through a temporary file in the same directory and a rename, so the
/// destination holds either its old content or the complete new one.
///
/// No fsync: `snap -o` is an export, like `curl -o`, and the fsync doubled the time of a
/// small capture (≈1 ms of 3.8 ms). The archive, where losing data matters, syncs.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.linksnap-{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

fn summary(capture: &Capture, output: Option<&Path>) -> String {
    let counts = outcome_counts(&capture.resources);
    let inlined = counts.get("inlined").copied().unwrap_or(0);
    let failed = capture.resources.len() - inlined;
    let dest = output.map_or_else(|| "stdout".to_owned(), |p| p.display().to_string());
    let mut line = format!(
        "saved {} → {} ({} bytes, {}, HTTP {}; {} resources inlined, {} left out) in {} ms",
        capture.page.final_url,
        dest,
        capture.snapshot_bytes().len(),
        capture.snapshot_media_type(),
        capture.page.status,
        inlined,
        failed,
        capture.elapsed.as_millis()
    );
    if failed > 0 {
        let mut why: Vec<String> = counts
            .iter()
            .filter(|(k, _)| **k != "inlined")
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        why.sort();
        line.push_str(&format!(" [{}]", why.join(", ")));
    }
    line
}
