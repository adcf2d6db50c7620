//! Regression tests for the holes a security review confirmed: each fails on the code
//! before its fix.

use serde_json::json;

use crate::faults::{link_json, post_link};
use crate::serve::{Serve, http, token, wait_until};
use crate::support::{FixtureServer, artifact_dir, linksnap, linksnap_stdin, snap};

/// `linksnap user add NAME` on the data directory `d`, with a password on stdin.
pub(crate) fn add_user(d: &str, name: &str, admin: bool) {
    let mut args = vec!["--data", d, "user", "add", name, "--password-stdin"];
    if admin {
        args.push("--admin");
    }
    let run = linksnap_stdin(&args, b"long enough password\n");
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// `linksnap --as WHO add PAGE --wait` (loopback allowed): captured now.
fn capture_as(d: &str, who: &str, page: &str) {
    let run = linksnap(&[
        "--data",
        d,
        "--as",
        who,
        "add",
        page,
        "--wait",
        "--allow-net",
        "127.0.0.0/8",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

const SHAPES: [&str; 6] = ["div", "span", "table", "list", "svg", "mixed"];

#[test]
fn pages_nested_a_hundred_thousand_deep_are_saved_without_readable_text_and_crash_nothing() {
    let site = FixtureServer::start();
    // `snap`: exit 0 (it aborted with a stack overflow: exit 134), the snapshot written.
    for shape in SHAPES {
        let url = site.url(&format!("/deep/{shape}/100000"));
        let run = snap(&url, &["--format", "json"]);
        assert_eq!(run.code, 0, "{shape}: {}", run.stderr);
        let v = run.json();
        assert_eq!(v["text"]["title"], format!("Deep {shape}"), "{shape}: {v}");
        assert_eq!(v["text"]["text"], "", "{shape}: no readable text");
        let text = snap(&url, &["--format", "text"]);
        assert_eq!(text.code, 0, "{shape}: {}", text.stderr);
    }
    // `add --wait`, and a running server's workers, which stay up.
    let dir = artifact_dir("security-deep");
    let d = dir.to_str().unwrap();
    let run = linksnap(&[
        "--data",
        d,
        "add",
        &site.url("/deep/div/100000"),
        "--wait",
        "--allow-net",
        "127.0.0.0/8",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let tok = token(&dir, "deep");
    let s = Serve::start(&dir, &["--workers", "2"]);
    let mut ids = Vec::new();
    for shape in SHAPES {
        let a = post_link(
            &s,
            &tok,
            json!({"url": site.url(&format!("/deep/{shape}/100000?served"))}),
        );
        assert_eq!(a.status, 202);
        ids.push(a.json()["id"].as_i64().unwrap());
    }
    for id in ids {
        wait_until("the deep page captured", || {
            link_json(&s, &tok, id)["status"] == "ok"
        });
    }
    assert_eq!(http("GET", &s.url("/healthz"), None, None).status, 200);
    let (code, log) = s.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("nested too deeply"), "{log}");
}

#[test]
fn a_capture_that_dies_with_its_server_twice_is_failed_and_the_server_keeps_serving() {
    let site = FixtureServer::start();
    let dir = artifact_dir("security-poison");
    let tok = token(&dir, "poison");
    let flags = [
        "--workers",
        "1",
        "--timeout",
        "60",
        "--request-timeout",
        "60",
    ];
    // A page whose capture is under way when the process dies (as a page that crashed the
    // capture would leave it), twice.
    let mut id = None;
    for round in 0..2 {
        let s = Serve::start(&dir, &flags);
        let link = *id.get_or_insert_with(|| {
            post_link(&s, &tok, json!({"url": site.url("/slow/30000/poison")})).json()["id"]
                .as_i64()
                .unwrap()
        });
        wait_until("the capture under way", || {
            link_json(&s, &tok, link)["status"] == "capturing"
        });
        // SAFETY: signalling our own child.
        unsafe { libc::kill(s.pid(), libc::SIGKILL) };
        drop(s);
        let _ = round;
    }
    let s = Serve::start(&dir, &flags);
    let link = id.unwrap();
    let l = link_json(&s, &tok, link);
    assert_eq!(l["status"], "failed", "{l}");
    assert!(
        l["failure"]
            .as_str()
            .unwrap()
            .contains("crashed or hung 2 times"),
        "{l}"
    );
    // Not claimed again: the server serves and captures other links.
    let other = post_link(&s, &tok, json!({"url": site.url("/plain?after-poison")})).json()["id"]
        .as_i64()
        .unwrap();
    wait_until("another link captured", || {
        link_json(&s, &tok, other)["status"] == "ok"
    });
    let l = link_json(&s, &tok, link);
    assert_eq!(l["status"], "failed");
}

#[test]
fn a_new_user_never_inherits_a_removed_users_library_or_share_links() {
    let site = FixtureServer::start();
    let dir = artifact_dir("security-user-reuse");
    let d = dir.to_str().unwrap();
    add_user(d, "ann", true);
    add_user(d, "bob", false);
    capture_as(d, "bob", &site.url("/plain?bob-secret"));
    let run = linksnap(&["--data", d, "--as", "bob", "token", "create", "bob-token"]);
    let bob = run.stdout_str().trim().to_owned();
    let s = Serve::start(&dir, &["--workers", "0"]);
    let share = http("POST", &s.url("/api/v1/links/1/shares"), Some(&bob), None);
    assert_eq!(share.status, 201);
    let share_url = share.json()["url"].as_str().unwrap().to_owned();
    assert_eq!(http("GET", &s.url(&share_url), None, None).status, 200);
    drop(s);

    // Bob, the newest user, is removed; cy is added.
    let run = linksnap(&["--data", d, "user", "remove", "bob"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    add_user(d, "cy", false);
    let run = linksnap(&["--data", d, "--as", "cy", "ls", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json(), json!([]), "cy sees bob's links");
    let s = Serve::start(&dir, &["--workers", "0"]);
    let after = http("GET", &s.url(&share_url), None, None);
    assert_eq!(after.status, 404, "bob's share answers again");
    assert_eq!(
        http("GET", &s.url("/api/v1/links"), Some(&bob), None).status,
        401
    );
    // Bob's library was moved aside, not deleted and not adopted.
    let aside: Vec<String> = std::fs::read_dir(dir.join("users"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(aside.iter().any(|n| n.starts_with("removed-")), "{aside:?}");
}

#[test]
fn nothing_in_the_data_directory_is_open_to_other_accounts() {
    use std::os::unix::fs::PermissionsExt as _;
    let site = FixtureServer::start();
    let dir = artifact_dir("security-modes");
    let data = dir.join("data");
    let d = data.to_str().unwrap();
    let page = site.url("/page-with?modes");
    for (who, admin) in [("ann", true), ("bob", false)] {
        add_user(d, who, admin);
        capture_as(d, who, &page);
    }
    // Every directory 0700 and every file 0600, the users' libraries included.
    let mut stack = vec![data.clone()];
    let mut seen = 0;
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{}", p.display());
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", p.display());
        }
        seen += 1;
    }
    assert!(seen > 20, "{seen}");
    assert!(data.join("users").is_dir());
    // A directory opened up by hand is reported.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = linksnap(&["--data", d, "ls"]);
    assert_eq!(run.code, 0);
    assert!(
        run.stderr
            .contains("can be read by other accounts (mode 755)"),
        "{}",
        run.stderr
    );
}
