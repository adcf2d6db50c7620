//! The library commands, black-box: a real SQLite file and blob directory per test.

use std::path::{Path, PathBuf};

use crate::support::{FixtureServer, artifact_dir, linksnap};

/// `linksnap --data DIR ARGS… --allow-net 127.0.0.0/8` for commands that fetch.
fn lib(dir: &Path, args: &[&str]) -> crate::support::Run {
    let mut all = vec!["--data", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    if matches!(args.first(), Some(&"add" | &"recapture" | &"work")) {
        all.extend_from_slice(&["--allow-net", "127.0.0.0/8"]);
    }
    linksnap(&all)
}

/// The ids `ls --json ARGS…` lists, sorted.
fn listed_ids(dir: &Path, args: &[&str]) -> Vec<i64> {
    let mut all = vec!["ls", "--json"];
    all.extend_from_slice(args);
    let run = lib(dir, &all);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut v: Vec<i64> = run
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_i64().unwrap())
        .collect();
    v.sort_unstable();
    v
}

fn blob_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "zst") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dir.join("blobs"), &mut out);
    out
}

#[test]
fn an_added_link_is_captured_listed_and_opens_byte_identical_to_snap() {
    let server = FixtureServer::start();
    let dir = artifact_dir("library-add");
    let url = server.url("/site/pages/index.html");
    let run = lib(
        &dir,
        &[
            "add",
            &url,
            "--tag",
            "Lang/Rust",
            "--tag",
            "编程",
            "--note",
            "first",
            "--wait",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout_str(), "1\n");
    assert!(
        run.stderr
            .contains(&format!("created a new library in {}", dir.display())),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("link 1: saved version 1 (HTTP 200)"),
        "{}",
        run.stderr
    );

    let ls = lib(&dir, &["ls", "--json"]).json();
    let link = &ls[0];
    assert_eq!(link["id"], 1);
    assert_eq!(link["url"], url);
    assert_eq!(link["title"], "linksnap fixture: every construct");
    assert_eq!(link["tags"], serde_json::json!(["Lang/Rust", "编程"]));
    assert_eq!(link["status"], "ok");
    assert_eq!(link["snapshots"], 1);
    assert!(link["created_at"].as_str().unwrap().ends_with('Z'));

    let open = lib(&dir, &["open", "1"]);
    assert_eq!(open.code, 0, "{}", open.stderr);
    let path = PathBuf::from(open.stdout_str().trim());
    let stored = std::fs::read(&path).unwrap();
    let direct = crate::support::snap(&url, &["-q"]).stdout;
    assert_eq!(stored, direct, "the stored snapshot rebuilds byte for byte");
    assert_eq!(
        crate::remote_references(std::str::from_utf8(&stored).unwrap()),
        Vec::<String>::new()
    );

    let fsck = lib(&dir, &["fsck"]);
    assert_eq!(fsck.code, 0, "{}", fsck.stderr);
    assert!(
        fsck.stderr.contains("0 damaged or missing"),
        "{}",
        fsck.stderr
    );
}

#[test]
fn adding_a_url_again_returns_the_existing_link_and_adds_tags() {
    let server = FixtureServer::start();
    let dir = artifact_dir("library-dedupe");
    let url = server.url("/plain");
    assert_eq!(
        lib(&dir, &["add", &url, "--tag", "a", "--wait"]).stdout_str(),
        "1\n"
    );
    let again = lib(
        &dir,
        &["add", &format!("{url}?utm_source=feed#top"), "--tag", "B"],
    );
    assert_eq!(again.stdout_str(), "1\n", "{}", again.stderr);
    let ls = lib(&dir, &["ls", "--json"]).json();
    assert_eq!(ls.as_array().unwrap().len(), 1);
    assert_eq!(ls[0]["tags"], serde_json::json!(["a", "B"]));
    assert_eq!(ls[0]["snapshots"], 1, "no second capture for a duplicate");
}

#[test]
fn nested_tags_filter_rename_merge_and_delete() {
    let dir = artifact_dir("library-tags");
    for (url, tag) in [
        ("https://a.test/1", "lang/rust"),
        ("https://a.test/2", "Lang/Go"),
        ("https://a.test/3", "language"),
        ("https://a.test/4", "todo"),
    ] {
        assert_eq!(lib(&dir, &["add", url, "--tag", tag]).code, 0);
    }
    let ids = |args: &[&str]| listed_ids(&dir, args);
    assert_eq!(
        ids(&["--tag", "LANG"]),
        [1, 2],
        "lang matches lang/rust and Lang/Go, not language"
    );
    assert_eq!(ids(&["--tag", "lang/rust"]), [1]);
    assert_eq!(lib(&dir, &["tag", "4", "+lang/zig", "-todo"]).code, 0);
    assert_eq!(ids(&["--tag", "lang"]), [1, 2, 4]);
    assert_eq!(ids(&["--tag", "todo"]), Vec::<i64>::new());

    let run = lib(&dir, &["tags", "rename", "lang", "code"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let names: Vec<String> = lib(&dir, &["tags", "--json"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        names.contains(&"code/rust".to_owned()) && names.contains(&"code/Go".to_owned()),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.starts_with("lang/")), "{names:?}");
    assert_eq!(ids(&["--tag", "code"]), [1, 2, 4]);

    assert_eq!(
        lib(&dir, &["tags", "merge", "language", "code/zig", "misc"]).code,
        0
    );
    assert_eq!(ids(&["--tag", "misc"]), [3, 4]);
    assert_eq!(lib(&dir, &["tags", "delete", "code"]).code, 0);
    assert_eq!(ids(&["--tag", "code"]), Vec::<i64>::new());
    let counts = lib(&dir, &["tags", "--json"]).json();
    assert_eq!(counts, serde_json::json!([{"name": "misc", "links": 2}]));

    // Expressions: AND, OR, NOT, UNTAGGED, quoting.
    assert_eq!(lib(&dir, &["add", "https://b.test/5"]).code, 0);
    // 1 and 2 lost their only tags when `code` was deleted.
    assert_eq!(ids(&["--tag", "UNTAGGED"]), [1, 2, 5]);
    assert_eq!(ids(&["--tag", "misc OR UNTAGGED"]), [1, 2, 3, 4, 5]);
    assert_eq!(ids(&["--tag", "misc AND NOT UNTAGGED"]), [3, 4]);
    assert_eq!(ids(&["--tag", "NOT misc"]), [1, 2, 5]);
    let bad = lib(&dir, &["ls", "--tag", "(misc"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("a parenthesis is not closed"),
        "{}",
        bad.stderr
    );

    let run = lib(&dir, &["tags", "rename", "nothing", "x"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("no tag named `nothing`"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_queued_link_is_captured_by_work_and_recapture_adds_a_version() {
    let server = FixtureServer::start();
    let dir = artifact_dir("library-queue");
    let url = server.url("/plain");
    assert_eq!(lib(&dir, &["add", &url]).stdout_str(), "1\n");
    assert_eq!(lib(&dir, &["ls", "--json"]).json()[0]["status"], "queued");
    assert_eq!(
        server.hits("/plain"),
        0,
        "add without --wait returns at once"
    );
    let work = lib(&dir, &["work", "--once"]);
    assert_eq!(work.code, 0, "{}", work.stderr);
    assert_eq!(lib(&dir, &["ls", "--json"]).json()[0]["status"], "ok");
    assert_eq!(lib(&dir, &["recapture", "1", "--wait"]).code, 0);
    let versions = lib(&dir, &["versions", "1", "--json"]).json();
    assert_eq!(versions.as_array().unwrap().len(), 2);
    assert_eq!(versions[1]["version"], 2);
    assert_eq!(versions[1]["http_status"], 200);
    assert!(lib(&dir, &["open", "1", "--version", "1"]).code == 0);
    let run = lib(&dir, &["open", "1", "--version", "9"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("link 1 has no snapshot version 9"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_refused_capture_marks_the_link_failed_with_the_reason() {
    let server = FixtureServer::start();
    let dir = artifact_dir("library-failed");
    // No --allow-net: the loopback page is refused by the address policy.
    let run = linksnap(&[
        "--data",
        dir.to_str().unwrap(),
        "add",
        &server.url("/plain"),
        "--wait",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let link = &lib(&dir, &["ls", "--json"]).json()[0];
    assert_eq!(link["status"], "failed");
    assert!(
        link["failure"]
            .as_str()
            .unwrap()
            .contains("refused by the rule loopback"),
        "{link}"
    );
}

#[test]
fn pages_of_one_site_store_their_shared_assets_once() {
    let server = FixtureServer::start();
    let dir = artifact_dir("library-dedupe-blobs");
    let page = |n: u32| {
        server.url(&format!(
            "/page-with?css=/site/css/main.css&img=/site/img/photo.png&img=/blob/{}",
            1000 + n
        ))
    };
    assert_eq!(lib(&dir, &["add", &page(1), "--wait"]).code, 0);
    let after_one = blob_files(&dir).len();
    assert_eq!(lib(&dir, &["add", &page(2), "--wait"]).code, 0);
    let after_two = blob_files(&dir).len();
    // The second page brings its own page, template and one new image; the stylesheets,
    // their background and font, and photo.png are already there.
    assert!(
        after_two - after_one <= 4,
        "{after_one} → {after_two} blobs"
    );
    for id in ["1", "2"] {
        assert_eq!(lib(&dir, &["open", id]).code, 0);
    }
}

#[test]
fn removed_links_leave_blobs_that_gc_collects_and_fsck_finds_damage() {
    let server = FixtureServer::start();
    let dir = artifact_dir("library-gc");
    assert_eq!(
        lib(
            &dir,
            &["add", &server.url("/site/pages/index.html"), "--wait"]
        )
        .code,
        0
    );
    assert_eq!(lib(&dir, &["add", &server.url("/plain"), "--wait"]).code, 0);
    let before = blob_files(&dir).len();
    assert_eq!(lib(&dir, &["rm", "1"]).code, 0);
    let young = lib(&dir, &["gc"]);
    assert!(
        young.stderr.contains("removed 0 blobs"),
        "fresh blobs are kept: {}",
        young.stderr
    );
    let gc = lib(&dir, &["gc", "--older-than", "0"]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    let after = blob_files(&dir).len();
    assert!(after < before && after > 0, "{before} → {after}");
    assert_eq!(lib(&dir, &["fsck"]).code, 0);
    assert_eq!(
        lib(&dir, &["open", "2"]).code,
        0,
        "the other link is intact"
    );

    // Damage one blob: fsck says which, and exits 1.
    let victim = &blob_files(&dir)[0];
    std::fs::write(victim, b"garbage").unwrap();
    let fsck = lib(&dir, &["fsck"]);
    assert_eq!(fsck.code, 1, "{}", fsck.stderr);
    assert!(
        fsck.stdout_str().contains("damaged: snapshot"),
        "{}",
        fsck.stdout_str()
    );
    assert!(
        fsck.stdout_str().contains("does not decompress"),
        "{}",
        fsck.stdout_str()
    );
    // The damaged blob was moved aside when read (so a recapture can store it whole):
    // from now on it is missing.
    assert!(!victim.exists());
    assert!(victim.with_extension("zst.damaged").is_file());
    let fsck = lib(&dir, &["fsck"]);
    assert_eq!(fsck.code, 1);
    assert!(
        fsck.stdout_str().contains(": missing"),
        "{}",
        fsck.stdout_str()
    );
}

#[test]
fn bad_input_changes_nothing() {
    let dir = artifact_dir("library-bad-input");
    assert_eq!(lib(&dir, &["add", "https://a.test/ok"]).code, 0);
    let run = lib(&dir, &["add", "https://a.test/2", "ftp://a.test/x"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("unsupported scheme `ftp:`"),
        "{}",
        run.stderr
    );
    // 100 KB: a command-line argument cannot be larger (Linux's MAX_ARG_STRLEN is 128 KB).
    let huge = "x".repeat(100 << 10);
    let run = lib(&dir, &["add", "https://a.test/3", "--tag", &huge]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("longer than the limit of 256 bytes"),
        "{}",
        run.stderr
    );
    let deep = vec!["a"; 10_000].join("/");
    let run = lib(&dir, &["add", "https://a.test/4", "--tag", &deep]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("tag:"), "{}", run.stderr);
    assert_eq!(
        lib(&dir, &["ls", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1,
        "nothing was added"
    );
    let run = lib(&dir, &["show", "42"]);
    assert_eq!(run.code, 1);
    assert_eq!(run.stderr.trim(), "linksnap: error: no link with id 42");
    let run = lib(&dir, &["tag", "1", "oops"]);
    assert_eq!(run.code, 2);
}

#[test]
fn a_second_writer_gets_a_clear_error() {
    let dir = artifact_dir("library-lock");
    assert_eq!(lib(&dir, &["add", "https://a.test/1"]).code, 0);
    // A worker without --once holds the library until it is stopped.
    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_linksnap"))
        .env("LINKSNAP_ENGINE", "static")
        .args([
            "--data",
            dir.to_str().unwrap(),
            "work",
            "--dns-server",
            &crate::support::stub_dns().to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once it says it is working, it holds the lock.
    let mut first_line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(worker.stderr.as_mut().unwrap()),
        &mut first_line,
    )
    .unwrap();
    assert!(
        first_line.contains("capturing queued links"),
        "{first_line}"
    );
    let run = lib(&dir, &["ls"]);
    let _ = worker.kill();
    let output = worker.wait_with_output().unwrap();
    let worker_err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(run.code, 1, "the worker said: {worker_err}");
    assert!(
        run.stderr.contains("is in use by another linksnap process"),
        "{}",
        run.stderr
    );
    assert_eq!(lib(&dir, &["ls"]).code, 0, "the lock goes with the process");
}

#[test]
fn filters_combine_domain_dates_and_flags_and_edits_stick() {
    let dir = artifact_dir("library-filters");
    for url in [
        "https://news.example.com/1",
        "https://example.com/2",
        "https://other.test/3",
    ] {
        assert_eq!(lib(&dir, &["add", url]).code, 0);
    }
    let ids = |args: &[&str]| listed_ids(&dir, args);
    assert_eq!(ids(&["--domain", "example.com"]), [1, 2]);
    assert_eq!(ids(&["--domain", "news.example.com"]), [1]);
    assert_eq!(ids(&["--since", "2000-01-01"]), [1, 2, 3]);
    assert_eq!(ids(&["--until", "2000-01-01"]), Vec::<i64>::new());
    assert_eq!(
        lib(
            &dir,
            &[
                "edit",
                "3",
                "--favourite",
                "--read",
                "--title",
                "My own title",
                "--note",
                "n"
            ]
        )
        .code,
        0
    );
    assert_eq!(ids(&["--favourite"]), [3]);
    assert_eq!(ids(&["--unread"]), [1, 2]);
    assert_eq!(ids(&["--read", "--domain", "other.test"]), [3]);
    assert_eq!(ids(&["--status", "queued"]), [1, 2, 3]);
    let show = lib(&dir, &["show", "3", "--json"]).json();
    assert_eq!(show["title"], "My own title");
    assert_eq!(show["note"], "n");
    assert_eq!(show["favourite"], true);
    let bad = lib(&dir, &["ls", "--since", "yesterday"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("`yesterday` is not a date"),
        "{}",
        bad.stderr
    );
    assert_eq!(lib(&dir, &["edit", "99", "--read"]).code, 1);
}

#[test]
fn search_finds_chinese_japanese_and_english_text_and_follows_edits() {
    let server = FixtureServer::start();
    let dir = artifact_dir("library-search");
    let corpus = |name: &str| server.url(&format!("/corpus/readability/{name}/source.html"));
    // qq: a Chinese news page; wikipedia: English.
    assert_eq!(
        lib(
            &dir,
            &["add", &corpus("qq"), "--tag", "news/收藏夹", "--wait"]
        )
        .code,
        0
    );
    assert_eq!(
        lib(
            &dir,
            &["add", &corpus("wikipedia"), "--tag", "reference", "--wait"]
        )
        .code,
        0
    );
    assert_eq!(
        lib(&dir, &["add", &server.url("/encoded/sjis-meta"), "--wait"]).code,
        0
    );
    let hits = |args: &[&str]| -> Vec<i64> {
        let mut all = vec!["search"];
        all.extend_from_slice(args);
        all.push("--json");
        let run = lib(&dir, &all);
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_i64().unwrap())
            .collect()
    };
    // A Chinese word from the middle of the qq article's text.
    let qq_text = crate::support::snap(&corpus("qq"), &["--format", "text", "-q"]).stdout_str();
    assert!(
        qq_text.contains("收购的人工智能公司"),
        "人工智能 stands mid-sentence in the qq article"
    );
    assert_eq!(hits(&["人工智能"]), [1]);
    assert_eq!(
        hits(&["ウェブページ"]),
        [3],
        "Japanese by character bigrams"
    );
    assert_eq!(hits(&["promoting"]), [2]);
    assert_eq!(
        hits(&["promotes"]),
        [2],
        "stemmed: promoting, promotes → promot"
    );
    assert_eq!(hits(&["\"open standards\""]), [2]);
    assert_eq!(
        hits(&["\"standards open\""]),
        Vec::<i64>::new(),
        "a phrase keeps its order"
    );
    assert_eq!(
        hits(&["人工智能", "--tag", "reference"]),
        Vec::<i64>::new(),
        "filters combine with search"
    );
    assert!(!qq_text.contains("收藏夹"));
    assert_eq!(hits(&["收藏夹"]), [1], "tags are searched");
    assert_eq!(hits(&["nothing-matches-this-zzqx"]), Vec::<i64>::new());

    let first = &lib(&dir, &["search", "人工智能", "--json"]).json()[0];
    assert!(
        first["snippet"]
            .as_str()
            .unwrap()
            .contains("<b>人工智能</b>"),
        "{first}"
    );
    assert!(first["score"].as_f64().unwrap() > 0.0);
    assert_eq!(first["url"], corpus("qq"));

    // The index follows edits, tags and removal.
    assert_eq!(lib(&dir, &["edit", "2", "--note", "zebracorn"]).code, 0);
    assert_eq!(hits(&["zebracorn"]), [2]);
    assert_eq!(lib(&dir, &["tag", "2", "+unicornish"]).code, 0);
    assert_eq!(hits(&["unicornish"]), [2]);
    assert_eq!(lib(&dir, &["rm", "2"]).code, 0);
    assert_eq!(hits(&["promoting"]), Vec::<i64>::new());

    // Damage: the index is rebuilt from the database.
    std::fs::remove_dir_all(dir.join("index")).unwrap();
    std::fs::create_dir_all(dir.join("index")).unwrap();
    std::fs::write(dir.join("index/meta.json"), "{ not json").unwrap();
    assert_eq!(hits(&["人工智能"]), [1], "rebuilt on open after damage");
    let run = lib(&dir, &["reindex"]);
    assert_eq!(run.code, 0);
    assert!(run.stderr.contains("reindexed 2 links"), "{}", run.stderr);
}

#[test]
fn diff_shows_what_changed_in_the_text_between_versions() {
    let server = FixtureServer::start();
    let dir = artifact_dir("library-diff");
    assert_eq!(
        lib(&dir, &["add", &server.url("/changing"), "--wait"]).code,
        0
    );
    let one = lib(&dir, &["diff", "1"]);
    assert_eq!(one.code, 1);
    assert!(
        one.stderr
            .contains("link 1 has 1 version(s); a diff needs two"),
        "{}",
        one.stderr
    );
    assert_eq!(lib(&dir, &["recapture", "1", "--wait"]).code, 0);
    let diff = lib(&dir, &["diff", "1"]);
    assert_eq!(diff.code, 0, "{}", diff.stderr);
    let out = diff.stdout_str();
    assert!(
        out.contains("--- link 1 v1 ") && out.contains("+++ link 1 v2 "),
        "{out}"
    );
    assert!(out.contains("-The price today is 10 euros."), "{out}");
    assert!(out.contains("+The price today is 20 euros."), "{out}");
    assert!(
        !out.contains("+This paragraph stays"),
        "unchanged text is context only: {out}"
    );
    let same = lib(&dir, &["diff", "1", "2", "2"]);
    assert_eq!(same.code, 0);
    assert!(
        same.stdout.is_empty() && same.stderr.contains("is the same"),
        "{}",
        same.stderr
    );
    assert_eq!(lib(&dir, &["diff", "1", "1", "7"]).code, 1);
}

const BOOKMARKS: &str = r#"<!DOCTYPE NETSCAPE-Bookmark-file-1>
<META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=UTF-8">
<TITLE>Bookmarks</TITLE>
<H1>Bookmarks</H1>
<DL><p>
    <DT><H3>Reading</H3>
    <DL><p>
        <DT><A HREF="https://a.test/article?utm_source=x" ADD_DATE="1700000000" TAGS="lang/rust,读书" TOREAD="1">Article &amp; more</A>
        <DD>Worth a second read
        <DT><A HREF="https://b.test/">B</A>
    </DL><p>
    <DT><A HREF="javascript:void(0)">a bookmarklet</A>
</DL><p>
"#;

#[test]
fn netscape_bookmarks_import_idempotently_and_round_trip() {
    let dir = artifact_dir("library-import");
    let file = dir.join("bookmarks.html");
    std::fs::write(&file, BOOKMARKS).unwrap();
    let run = lib(
        &dir,
        &[
            "import",
            file.to_str().unwrap(),
            "--no-capture",
            "--folders-as-tags",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("imported 2 new links, 0 already saved, 1 skipped"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("skipped javascript:void(0): unsupported scheme `javascript:`"),
        "{}",
        run.stderr
    );
    let ls = lib(&dir, &["ls", "--json"]).json();
    let a = ls
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["url"] == "https://a.test/article")
        .expect("normalised URL");
    assert_eq!(a["title"], "Article & more");
    assert_eq!(a["note"], "Worth a second read");
    assert_eq!(
        a["tags"],
        serde_json::json!(["lang/rust", "Reading", "读书"])
    );
    assert_eq!(a["created_at"], "2023-11-14T22:13:20.000Z");
    assert_eq!(a["unread"], true);
    // Again: nothing new.
    let again = lib(
        &dir,
        &[
            "import",
            file.to_str().unwrap(),
            "--no-capture",
            "--folders-as-tags",
        ],
    );
    assert!(
        again
            .stderr
            .contains("imported 0 new links, 2 already saved"),
        "{}",
        again.stderr
    );
    assert_eq!(
        lib(&dir, &["ls", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Search sees imported titles and notes.
    assert_eq!(
        lib(&dir, &["search", "second read", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    for format in ["netscape", "json"] {
        let exported = lib(&dir, &["export", "--format", format]);
        assert_eq!(exported.code, 0);
        let other = artifact_dir(&format!("library-import-roundtrip-{format}"));
        let run = crate::support::linksnap_stdin(
            &[
                "--data",
                other.to_str().unwrap(),
                "import",
                "-",
                "--no-capture",
            ],
            &exported.stdout,
        );
        assert_eq!(run.code, 0, "{format}: {}", run.stderr);
        let mut before = lib(&dir, &["ls", "--json"]).json();
        let mut after = lib(&other, &["ls", "--json"]).json();
        for v in [&mut before, &mut after] {
            for l in v.as_array_mut().unwrap() {
                let o = l.as_object_mut().unwrap();
                for k in ["id", "updated_at", "status", "snapshots"] {
                    o.remove(k);
                }
                if format == "netscape" {
                    // ADD_DATE holds whole seconds.
                    let t = o["created_at"].as_str().unwrap()[..19].to_owned();
                    o.insert("created_at".into(), t.into());
                }
            }
        }
        assert_eq!(before, after, "{format} round trip");
    }
}

#[test]
fn url_lists_import_from_stdin_and_queue_captures() {
    let server = FixtureServer::start();
    let dir = artifact_dir("library-import-urls");
    let list = format!(
        "# saved for later\n{}\n\n{}\nnot a url\n",
        server.url("/plain"),
        server.url("/changing")
    );
    let run = crate::support::linksnap_stdin(
        &["--data", dir.to_str().unwrap(), "import", "-"],
        list.as_bytes(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "imported 2 new links, 0 already saved, 1 skipped; their captures are queued"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(lib(&dir, &["work", "--once"]).code, 0);
    let ls = lib(&dir, &["ls", "--json", "--status", "ok"]).json();
    assert_eq!(ls.as_array().unwrap().len(), 2);
}

#[test]
fn a_json_import_read_in_batches_still_imports_all_or_nothing() {
    // 2,500 entries are handed to the library in three batches as they are read; an error
    // after the last of them must still leave the library as it was, and a good file of
    // the same size must import every entry.
    let dir = artifact_dir("library-import-json-batches");
    let entries: Vec<String> = (0..2500)
        .map(|i| format!("{{\"url\": \"https://j{i}.test/\", \"tags\": [\"batch\"]}}"))
        .collect();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, format!("[{},\n {{\"url\": ]", entries.join(",\n"))).unwrap();
    let run = lib(&dir, &["import", bad.to_str().unwrap(), "--no-capture"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("JSON: expected value at line 2501 column 10"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("nothing was imported"),
        "{}",
        run.stderr
    );
    assert_eq!(
        lib(&dir, &["ls", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let good = dir.join("good.json");
    std::fs::write(&good, format!("[{}]", entries.join(",\n"))).unwrap();
    let run = lib(&dir, &["import", good.to_str().unwrap(), "--no-capture"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("imported 2500 new links"),
        "{}",
        run.stderr
    );
    let run = lib(&dir, &["ls", "--json", "--tag", "batch"]);
    assert_eq!(run.json().as_array().unwrap().len(), 2500, "{}", run.stderr);
}

#[test]
fn malformed_imports_are_clear_errors_and_change_nothing() {
    let dir = artifact_dir("library-import-bad");
    assert_eq!(lib(&dir, &["add", "https://kept.test/"]).code, 0);
    let bad_utf8 = dir.join("bad.html");
    let mut bytes = BOOKMARKS.as_bytes().to_vec();
    bytes.extend_from_slice(b"<DT><A HREF=\"https://c.test/\">\xff\xfe</A>");
    std::fs::write(&bad_utf8, &bytes).unwrap();
    let run = lib(&dir, &["import", bad_utf8.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("the file is not UTF-8: invalid bytes at offset"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("nothing was imported"),
        "{}",
        run.stderr
    );
    let bad_json = dir.join("bad.json");
    std::fs::write(&bad_json, "[{\"url\": \"https://d.test/\"},\n {\"url\": }]").unwrap();
    let run = lib(&dir, &["import", bad_json.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("JSON: expected value at line 2 column 10"),
        "{}",
        run.stderr
    );
    let run = lib(&dir, &["import", "/nonexistent/file.html"]);
    assert_eq!(run.code, 2);
    assert_eq!(
        lib(&dir, &["ls", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1,
        "nothing was added"
    );

    // A 10 MB tag and a 10,000-deep tag in a file: those tags are skipped, the bookmarks kept.
    let huge = "x".repeat(10 << 20);
    let deep = vec!["a"; 10_000].join("/");
    let file = dir.join("tags.html");
    std::fs::write(
        &file,
        format!("<DL><DT><A HREF=\"https://e.test/\" TAGS=\"{huge},ok\">E</A><DT><A HREF=\"https://f.test/\" TAGS=\"{deep}\">F</A></DL>"),
    )
    .unwrap();
    let run = lib(&dir, &["import", file.to_str().unwrap(), "--no-capture"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("longer than the limit of 256 bytes"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("imported 2 new links, 0 already saved, 2 skipped"),
        "{}",
        run.stderr
    );
    let e = lib(&dir, &["ls", "--json", "--domain", "e.test"]).json();
    assert_eq!(e[0]["tags"], serde_json::json!(["ok"]));
    assert_eq!(lib(&dir, &["fsck"]).code, 0);
}

#[test]
fn kill_9_during_a_bulk_add_with_captures_running_loses_nothing_acknowledged() {
    use std::io::BufRead as _;
    use std::process::Stdio;
    let server = FixtureServer::start();
    let dir = artifact_dir("library-kill9");
    let urls: Vec<String> = (0..1000)
        .map(|i| server.url(&format!("/slow/30/{i}")))
        .collect();
    let mut args: Vec<&str> = vec!["--data", dir.to_str().unwrap(), "add"];
    args.extend(urls.iter().map(String::as_str));
    args.extend(["--wait", "--allow-net", "127.0.0.0/8"]);
    let mut child = crate::support::command_for_test(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<(bool, String)>();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let t1 = tx.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = t1.send((true, line));
        }
    });
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send((false, line));
        }
    });
    // Every id printed is an acknowledged add. Kill once all are added and captures run.
    let mut acked: Vec<i64> = Vec::new();
    let mut saved = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while (acked.len() < 1000 || saved < 5) && std::time::Instant::now() < deadline {
        match rx.recv_timeout(std::time::Duration::from_secs(1)) {
            Ok((true, line)) => acked.push(line.trim().parse().unwrap()),
            Ok((false, line)) if line.contains("saved version") => saved += 1,
            _ => {}
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(
        acked.len(),
        1000,
        "all adds were acknowledged before the kill"
    );
    assert!(saved >= 5);

    let ls = lib(&dir, &["ls", "--json"]).json();
    let ids: std::collections::HashSet<i64> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_i64().unwrap())
        .collect();
    assert!(
        acked.iter().all(|id| ids.contains(id)),
        "every acknowledged link is present"
    );
    let count = |status: &str| {
        ls.as_array()
            .unwrap()
            .iter()
            .filter(|l| l["status"] == status)
            .count()
    };
    assert_eq!(
        count("capturing"),
        0,
        "an interrupted capture is queued again"
    );
    let ok_before = count("ok");
    assert!(ok_before >= 5);
    let fsck = lib(&dir, &["fsck"]);
    assert_eq!(fsck.code, 0, "{}{}", fsck.stdout_str(), fsck.stderr);
    // Interrupted captures resume.
    let work = lib(&dir, &["work", "--max-jobs", "3"]);
    assert_eq!(work.code, 0, "{}", work.stderr);
    let ok_after = lib(&dir, &["ls", "--json", "--status", "ok"])
        .json()
        .as_array()
        .unwrap()
        .len();
    assert_eq!(ok_after, ok_before + 3);
    // The search index has every link.
    let all = lib(&dir, &["search", "slow", "--limit", "5000", "--json"]).json();
    assert_eq!(all.as_array().unwrap().len(), 1000);
}

#[test]
fn a_full_disk_is_a_clear_error_and_leaves_the_library_consistent() {
    let server = FixtureServer::start();
    let dir = artifact_dir("library-full-disk");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    // In a private mount namespace: a 4 MB tmpfs as the data directory.
    let script = r#"
        set -u
        mount -t tmpfs -o size=4m tmpfs "$DATA" || { echo "MOUNT-FAILED"; exit 0; }
        L() { "$BIN" --data "$DATA" "$@"; }
        F() { "$BIN" --data "$DATA" "$@" --dns-server "$DNS" --allow-net 127.0.0.0/8; }
        F add "$SMALL" --wait >/dev/null 2>&1; echo "first=$?"
        L add "$BIG" >/dev/null 2>&1; echo "queued=$?"
        # Nearly full: the database works, the capture's 2 MB blob does not fit.
        dd if=/dev/zero of="$DATA/filler" bs=64k >/dev/null 2>&1
        truncate -s -512K "$DATA/filler"
        F work --once 2>"$OUT/work.err" >/dev/null; echo "full=$?"
        # Completely full: not even the database opens.
        dd if=/dev/zero of="$DATA/filler2" bs=4k >/dev/null 2>&1
        F work --once 2>"$OUT/work2.err" >/dev/null; echo "completely=$?"
        rm -f "$DATA/filler" "$DATA/filler2"
        L fsck >"$OUT/fsck.out" 2>&1; echo "fsck=$?"
        # The capture that could not be recorded was put back, due after RELEASE_DELAY.
        sleep 6
        F work --once >/dev/null 2>&1; echo "retry=$?"
        "$BIN" --data "$DATA" ls --json >"$OUT/ls.json"; echo "ls=$?"
    "#;
    let out = std::process::Command::new("unshare")
        .args(["--mount", "bash", "-c", script])
        .env("BIN", env!("CARGO_BIN_EXE_linksnap"))
        .env("LINKSNAP_ENGINE", "static")
        .env("DATA", &data)
        .env("OUT", &dir)
        .env("DNS", crate::support::stub_dns().to_string())
        .env("SMALL", server.url("/plain"))
        .env("BIG", server.url("/random/2000000"))
        .output()
        .expect("run unshare");
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !log.contains("MOUNT-FAILED"),
        "this test needs root to mount a tmpfs: {log}"
    );
    for line in [
        "first=0",
        "queued=0",
        // Exit code 6: the library could not be written (documented).
        "full=6",
        "completely=6",
        "fsck=0",
        "retry=0",
        "ls=0",
    ] {
        assert!(
            log.contains(line),
            "{line} missing from:\n{log}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let work_err = std::fs::read_to_string(dir.join("work.err")).unwrap();
    assert!(
        work_err.contains("linksnap: error: blob store:")
            && work_err.contains("No space left on device"),
        "{work_err}"
    );
    let work2_err = std::fs::read_to_string(dir.join("work2.err")).unwrap();
    assert!(
        work2_err.contains("(the disk is full: 0 bytes free)"),
        "{work2_err}"
    );
    let ls: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("ls.json")).unwrap()).unwrap();
    assert!(
        ls.as_array().unwrap().iter().all(|l| l["status"] == "ok"),
        "{ls:#}"
    );
}

#[test]
fn the_parameters_a_saved_url_loses_are_configurable() {
    let dir = artifact_dir("library-strip-params");
    let data = dir.to_str().unwrap();
    let run = crate::support::linksnap_with_env(
        &[
            "--data",
            data,
            "add",
            "https://a.test/p?ref=home&utm_source=x&id=1",
        ],
        &[("LINKSNAP_STRIP_PARAMS", "ref,mc_*")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        lib(&dir, &["add", "https://b.test/p?ref=home&utm_source=x"]).code,
        0
    );
    let ls = lib(&dir, &["ls", "--json"]).json();
    let urls: Vec<&str> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["url"].as_str().unwrap())
        .collect();
    assert!(
        urls.contains(&"https://a.test/p?utm_source=x&id=1"),
        "only `ref` stripped: {urls:?}"
    );
    assert!(
        urls.contains(&"https://b.test/p?ref=home"),
        "the defaults strip utm_*: {urls:?}"
    );
}

#[test]
fn renaming_a_chinese_tag_moves_its_nested_tags_too() {
    let dir = artifact_dir("library-tags-zh");
    assert_eq!(
        lib(&dir, &["add", "https://a.test/1", "--tag", "编程/语言"]).code,
        0
    );
    let run = lib(&dir, &["tags", "rename", "编程", "代码"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        lib(&dir, &["tags", "--json"]).json(),
        serde_json::json!([{"name": "代码/语言", "links": 1}])
    );
    assert_eq!(listed_ids(&dir, &["--tag", "代码"]), [1]);
}
