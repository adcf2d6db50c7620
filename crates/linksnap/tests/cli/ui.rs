//! The web UI in real headless Chromium, driven over CDP (chromiumoxide): sign in, add a
//! link from a loopback fixture page and watch it reach "saved" without reloading, filter
//! by a nested tag, search a Chinese word, open the snapshot (and prove a hostile archived
//! page cannot use the viewer's session), rename a tag, switch to Chinese. Screenshots of
//! the main pages land in target/test-artifacts/ui/.

use std::path::Path;
use std::time::{Duration, Instant};

use chromiumoxide::Page;
use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::page::ScreenshotParams;
use futures_util::StreamExt as _;

use crate::serve::Serve;
use crate::support::{FixtureServer, artifact_dir};

pub(crate) async fn browser(profile: &Path) -> Browser {
    let config = BrowserConfig::builder()
        .chrome_executable(crate::support::chromium())
        .no_sandbox()
        .new_headless_mode()
        .user_data_dir(profile)
        .window_size(1200, 900)
        .viewport(None)
        // The driver adds the leading `--` itself.
        .args(
            crate::support::CHROMIUM_FLAGS
                .iter()
                .map(|f| f.trim_start_matches("--"))
                .chain(["lang=en-US"]),
        )
        .build()
        .expect("browser config");
    let (browser, mut handler) = Browser::launch(config).await.expect("launch chromium");
    tokio::spawn(async move { while handler.next().await.is_some() {} });
    browser
}

/// Adds `name` as an administrator of the data directory `data`, with the password
/// the UI tests sign in with (`correct horse battery`).
pub(crate) fn add_admin(data: &Path, name: &str) {
    let added = crate::support::linksnap_stdin(
        &[
            "--data",
            data.to_str().unwrap(),
            "user",
            "add",
            name,
            "--admin",
            "--password-stdin",
        ],
        b"correct horse battery\n",
    );
    assert_eq!(added.code, 0, "{}", added.stderr);
}

/// Gives `page` the session cookie `session` for the server at `base`.
pub(crate) async fn set_session(page: &Page, base: &str, session: &str) {
    use chromiumoxide::cdp::browser_protocol::network::CookieParam;
    page.set_cookie(
        CookieParam::builder()
            .name("linksnap_session")
            .value(session)
            .url(base)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
}

pub(crate) async fn eval<T: serde::de::DeserializeOwned>(page: &Page, js: &str) -> T {
    page.evaluate(js)
        .await
        .unwrap_or_else(|e| panic!("{js}: {e}"))
        .into_value()
        .unwrap_or_else(|e| panic!("{js}: {e}"))
}

/// Polls `js` (an expression) until it is true.
pub(crate) async fn wait_for(page: &Page, js: &str, what: &str) {
    let start = Instant::now();
    loop {
        if page
            .evaluate(js)
            .await
            .ok()
            .and_then(|v| v.into_value::<bool>().ok())
            == Some(true)
        {
            return;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let last = page.evaluate(js).await.map(|v| format!("{:?}", v.value()));
            let url = page.url().await;
            panic!("timed out waiting for {what} ({js}); last: {last:?}; url: {url:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Navigates like a user would (chromiumoxide's own `goto` loses track of navigations in
/// pages with sandboxed frames) and waits until the new page has loaded.
async fn go(page: &Page, url: &str) {
    let before: String = eval(page, "String(performance.timeOrigin)").await;
    let target = serde_json::to_string(url).unwrap();
    page.evaluate(format!("location.href = {target}"))
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    wait_for(
        page,
        &format!(
            "String(performance.timeOrigin) !== '{before}' && document.readyState === 'complete'"
        ),
        url,
    )
    .await;
}

async fn shot(page: &Page, dir: &Path, name: &str) {
    let png = page
        .screenshot(ScreenshotParams::builder().full_page(true).build())
        .await
        .expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Types `value` into `selector` (a newline presses Enter).
async fn fill(page: &Page, selector: &str, value: &str) {
    let el = page
        .find_element(selector)
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"));
    el.click().await.unwrap();
    for (i, line) in value.split('\n').enumerate() {
        if i > 0 {
            el.press_key("Enter").await.unwrap();
        }
        if line.is_ascii() {
            el.type_str(line).await.unwrap();
        } else {
            // Text an input method would commit (keys exist only for ASCII).
            page.execute(chromiumoxide::cdp::browser_protocol::input::InsertTextParams::new(line))
                .await
                .unwrap();
        }
    }
}

async fn click_and_load(page: &Page, selector: &str) {
    let before: String = eval(page, "String(performance.timeOrigin)").await;
    page.find_element(selector)
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .click()
        .await
        .unwrap();
    wait_for(
        page,
        &format!(
            "String(performance.timeOrigin) !== '{before}' && document.readyState === 'complete'"
        ),
        selector,
    )
    .await;
}

#[test]
fn the_web_ui_end_to_end_in_chromium() {
    let site = FixtureServer::start();
    let dir = artifact_dir("ui");
    let data = dir.join("data");
    add_admin(&data, "ann");
    let s = Serve::start(&data, &["--workers", "1", "--sse-heartbeat", "1s"]);
    let base = s.url("");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut browser = browser(&dir.join("profile")).await;
        let page = browser.new_page("about:blank").await.unwrap();

        // Every page needs a user: off to sign in.
        go(&page, &format!("{base}/")).await;
        let path: String = eval(&page, "location.pathname").await;
        assert_eq!(path, "/login");
        shot(&page, &dir, "login").await;
        fill(&page, "#name", "ann").await;
        fill(&page, "#password", "wrong password").await;
        click_and_load(&page, "#login-submit").await;
        let err: String = eval(&page, "document.getElementById('login-error').textContent").await;
        assert!(err.contains("Wrong"), "{err}");
        fill(&page, "#name", "ann").await;
        fill(&page, "#password", "correct horse battery").await;
        click_and_load(&page, "#login-submit").await;
        assert_eq!(eval::<String>(&page, "location.pathname").await, "/");

        // Add two links: the fixture site's page and a Chinese article.
        let urls = format!(
            "{}\n{}",
            site.url("/site/pages/index.html"),
            site.url("/corpus/readability/qq/source.html")
        );
        fill(&page, "#add-urls", &urls).await;
        fill(&page, "#add-tags", "lang/rust, 中文").await;
        click_and_load(&page, "#add-submit").await;
        let body_text: String = eval(&page, "document.body.innerText.slice(0, 500)").await;
        assert!(
            eval::<bool>(&page, "!!document.getElementById('notice')").await,
            "{body_text}"
        );
        // Live progress: the badges turn to "saved" through the event stream, no reload.
        let origin: String = eval(&page, "String(performance.timeOrigin)").await;
        wait_for(
            &page,
            "[...document.querySelectorAll('li.link [data-status]')].length === 2 && [...document.querySelectorAll('li.link [data-status]')].every(e => e.dataset.status === 'ok')",
            "both captures to reach ok",
        )
        .await;
        assert_eq!(
            eval::<String>(&page, "String(performance.timeOrigin)").await,
            origin,
            "the page was not reloaded"
        );
        assert_eq!(
            eval::<String>(&page, "document.querySelector('li.link .status').textContent").await,
            "saved"
        );
        go(&page, &format!("{base}/")).await;
        shot(&page, &dir, "list").await;

        // A nested tag filters: `lang` finds lang/rust.
        go(&page, &format!("{base}/?tag=lang")).await;
        assert_eq!(eval::<u32>(&page, "document.querySelectorAll('li.link').length").await, 2);
        go(&page, &format!("{base}/?tag=nothing")).await;
        assert!(eval::<bool>(&page, "!!document.getElementById('empty')").await);

        // A Chinese word from the middle of a sentence.
        go(&page, &format!("{base}/")).await;
        fill(&page, "#q", "人工智能").await;
        click_and_load(&page, "#search-submit").await;
        let titles: Vec<String> = eval(&page, "[...document.querySelectorAll('li.link .title')].map(a => a.textContent)").await;
        assert_eq!(titles.len(), 1, "{titles:?}");
        let snippet: String = eval(&page, "document.querySelector('.snippet').innerHTML").await;
        assert!(snippet.contains("<b>人工智能</b>"), "{snippet}");
        shot(&page, &dir, "search").await;

        // A link's page: versions, resources, the sandboxed snapshot frame.
        let first: String = eval(&page, "String([...document.querySelectorAll('li.link')].length)").await;
        assert_eq!(first, "1");
        go(&page, &format!("{base}/links/1")).await;
        assert!(eval::<u32>(&page, "document.querySelectorAll('table.versions tr').length").await >= 1);
        assert!(eval::<u32>(&page, "document.querySelectorAll('#resources tbody tr').length").await >= 1);
        let sandbox: String = eval(&page, "document.getElementById('snapshot-frame').getAttribute('sandbox')").await;
        assert!(!sandbox.contains("allow-same-origin"), "{sandbox}");
        // Give the framed snapshot a moment to paint before the screenshot.
        tokio::time::sleep(Duration::from_millis(800)).await;
        shot(&page, &dir, "link").await;
        // A public share link: made on the page, shown once, opens for anyone.
        click_and_load(&page, "#share").await;
        let shared: String = eval(&page, "document.getElementById('share-url').textContent").await;
        assert!(shared.contains("/s/"), "{shared}");
        let anon = browser.new_page(shared.clone()).await.unwrap();
        wait_for(&anon, "document.readyState === 'complete'", "the shared snapshot").await;
        assert!(eval::<String>(&anon, "document.title").await.contains("fixture"));
        anon.close().await.ok();
        // The snapshot itself opens (in a tab of its own, as the link does) and renders
        // the captured page.
        let tab = browser
            .new_page(format!("{base}/snapshots/1/latest"))
            .await
            .unwrap();
        wait_for(&tab, "document.readyState === 'complete'", "the snapshot").await;
        let title: String = eval(&tab, "document.title").await;
        assert!(title.contains("fixture"), "{title}");
        tab.close().await.ok();

        // A hostile page, archived: its script runs, but cannot use the viewer's session.
        let tok = {
            go(&page, &format!("{base}/")).await;
            fill(&page, "#add-urls", &site.url("/hostile.html")).await;
            click_and_load(&page, "#add-submit").await;
            wait_for(&page, "[...document.querySelectorAll('li.link [data-status]')].length === 3 && [...document.querySelectorAll('li.link [data-status]')].every(e => e.dataset.status === 'ok')", "the hostile page's capture").await;
            eval::<String>(&page, "document.querySelector('li.link').dataset.id").await
        };
        // Opened in a tab, the snapshot is framed by a page of its own; the script's
        // colour tells what it managed (green: no cookie, no API).
        let tab = browser
            .new_page(format!("{base}/snapshots/{tok}/latest"))
            .await
            .unwrap();
        crate::sandbox::wait_script_ran(&tab, "the hostile script").await;
        tab.close().await.ok();
        // The same script on the app's own origin would have read the links: the sandbox,
        // not a missing session, is what stopped it.
        go(&page, &format!("{base}/settings")).await;
        let control: String = eval(&page, "fetch('/api/v1/links', {credentials: 'include'}).then(r => r.status + ' ' + r.headers.get('content-type'))").await;
        assert!(control.starts_with("200 application/json"), "{control}");

        // Rename a tag in the tag manager.
        go(&page, &format!("{base}/tags")).await;
        shot(&page, &dir, "tags").await;
        page.evaluate("(() => { const li = document.querySelector('li[data-tag=\"lang\"]'); li.querySelector('details').open = true; const f = li.querySelector('form[action=\"/tags/rename\"]'); f.querySelector('input[name=to]').value = 'language'; f.querySelector('button').click(); })()")
            .await
            .unwrap();
        wait_for(&page, "location.pathname === '/tags' && !!document.querySelector('li[data-tag=\"language/rust\"]')", "the renamed tag").await;
        assert!(!eval::<bool>(&page, "!!document.querySelector('li[data-tag=\"lang\"]')").await);

        // A form without the session's CSRF token is refused.
        let forged: u16 = eval(&page, "fetch('/tags/delete', {method: 'POST', headers: {'content-type': 'application/x-www-form-urlencoded'}, body: 'name=language'}).then(r => r.status)").await;
        assert_eq!(forged, 403);
        assert!(eval::<bool>(&page, "fetch('/tags').then(r => r.text()).then(t => t.includes('language/rust'))").await);

        // Import a bookmarks file on the import page (progress, then the report), and the
        // export links give the links back.
        go(&page, &format!("{base}/io")).await;
        page.evaluate(r#"(() => {
            let file = '<!DOCTYPE NETSCAPE-Bookmark-file-1>\n<DL><p>\n';
            for (let i = 0; i < 3000; i++) file += `<DT><A HREF="https://imported.example/${i}" TAGS="imported">Imported ${i}</A>\n`;
            file += '<DT><A HREF="javascript:alert(1)">bad</A>\n</DL><p>\n';
            const dt = new DataTransfer();
            dt.items.add(new File([file], 'bookmarks.html', {type: 'text/html'}));
            document.getElementById('import-file').files = dt.files;
            document.querySelector('#import-form input[name=capture]').checked = false;
            document.getElementById('import-start').click();
        })()"#)
            .await
            .unwrap();
        wait_for(&page, "document.getElementById('import-result').className === 'notice'", "the import report").await;
        let report: String = eval(&page, "document.getElementById('import-result').textContent").await;
        assert_eq!(report, "added 3000 · already there 0 · skipped 1", "{report}");
        assert_eq!(eval::<f64>(&page, "document.getElementById('import-progress').value").await, 1.0);
        shot(&page, &dir, "import").await;
        let exported: String = eval(&page, "fetch(document.getElementById('export-netscape').href).then(r => r.text())").await;
        assert!(exported.contains("https://imported.example/2999"), "{}", &exported[..exported.len().min(300)]);

        // Settings: create an API token.
        go(&page, &format!("{base}/settings")).await;
        fill(&page, "#token-name", "browser-made").await;
        click_and_load(&page, "#token-create").await;
        let token: String = eval(&page, "document.getElementById('new-token').textContent").await;
        assert!(token.starts_with("lsk_"));
        // The share link made above is listed, with its link.
        assert_eq!(eval::<u32>(&page, "document.querySelectorAll('#shares tr').length").await, 1);
        // An administrator adds a user, then removes them (not themselves).
        page.evaluate("(() => { const f = document.querySelector('form[action=\"/settings/users\"]'); f.name.value = 'guest'; f.password.value = 'guest password'; f.querySelector('button').click(); })()")
            .await
            .unwrap();
        wait_for(&page, "[...document.querySelectorAll('#users td')].some(td => td.textContent === 'guest')", "the new user").await;
        assert!(!eval::<bool>(&page, "!!document.querySelector('#users form input[name=name][value=ann]')").await, "no remove button for oneself");
        page.evaluate("document.querySelector('#users form input[name=name][value=guest]').form.querySelector('button').click()")
            .await
            .unwrap();
        wait_for(&page, "document.readyState === 'complete' && ![...document.querySelectorAll('#users td')].some(td => td.textContent === 'guest')", "the user removed").await;
        shot(&page, &dir, "settings").await;

        // Switch to Chinese.
        go(&page, &format!("{base}/")).await;
        click_and_load(&page, "#lang-switch").await;
        assert_eq!(eval::<String>(&page, "document.getElementById('nav-links').textContent").await, "链接");
        assert_eq!(eval::<String>(&page, "document.documentElement.lang").await, "zh-CN");
        shot(&page, &dir, "list-zh").await;

        browser.close().await.ok();
    });
    let stopping = Instant::now();
    let (code, log) = s.stop();
    // Open event streams end with the server: it does not wait out its grace period.
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopping.elapsed()
    );
    assert_eq!(code, 0, "{log}");
}
