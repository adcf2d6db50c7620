//! Who may add links by mail, on the real Dovecot: nobody until senders are configured;
//! a forged `From:` is not enough when the receiving server's verdict is required; a
//! secret in the address; links per message and per poll capped at their boundaries.

use serde_json::Value;

use crate::mail::{Dovecot, fresh, links, poll_plain};
use crate::support::linksnap;

/// The kept messages' reasons, from `mail status`.
fn kept_reasons(data: &std::path::Path) -> Vec<String> {
    let status = linksnap(&["--data", data.to_str().unwrap(), "mail", "status", "--json"]).json();
    status[0]["kept"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|k| k["reason"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn message(from: &str, auth: &str, to: &str, subject: &str, links: &[String]) -> Vec<u8> {
    let auth = if auth.is_empty() {
        String::new()
    } else {
        format!("Authentication-Results: {auth}\n")
    };
    format!(
        "{auth}From: {from}\nTo: {to}\nSubject: {subject}\nContent-Type: text/plain\n\n{}\n",
        links.join("\n")
    )
    .into_bytes()
}

fn urls(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("https://{tag}.test/{i}")).collect()
}

fn counts(r: &Value) -> (u64, u64, u64) {
    (
        r["ingested"].as_u64().unwrap(),
        r["kept"].as_u64().unwrap(),
        r["links_added"].as_u64().unwrap(),
    )
}

#[test]
fn nobody_adds_links_until_senders_are_set_and_a_forged_from_is_not_enough() {
    let root = fresh("trust");
    let mut dovecot = Dovecot::start(&root.join("dovecot"));
    let data = root.join("data");
    let genuine = "mx.home.test; spf=pass smtp.mailfrom=ann@example.test; dkim=pass header.d=example.test header.s=s1; dmarc=pass header.from=example.test";
    let forged_fail = "mx.home.test; spf=fail smtp.mailfrom=ann@example.test; dkim=none; dmarc=fail header.from=example.test";
    // Written by the sender under another server's id: not the receiving server's word.
    let forged_other_id = genuine.replace("mx.home.test", "mx.forger.test");
    dovecot.deliver(&message(
        "ann@example.test",
        genuine,
        "me@home.test",
        "a",
        &urls("genuine", 1),
    ));
    dovecot.deliver(&message(
        "ann@example.test",
        forged_fail,
        "me@home.test",
        "b",
        &urls("failed", 1),
    ));
    dovecot.deliver(&message(
        "ann@example.test",
        &forged_other_id,
        "me@home.test",
        "c",
        &urls("otherid", 1),
    ));
    dovecot.deliver(&message(
        "eve@attacker.test",
        "",
        "me@home.test",
        "d",
        &urls("eve", 1),
    ));

    // No senders configured: nothing is taken (it used to take everyone's).
    let (code, reports, stderr) = poll_plain(
        &data,
        &dovecot,
        dovecot.pop3,
        &["--allow-sender", "", "--keep"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(counts(&reports[0]), (0, 4, 0), "{}", reports[0]);
    assert!(links(&data).is_empty());
    assert!(
        kept_reasons(&data)
            .iter()
            .all(|r| r.contains("no sender is allowed yet")),
        "{:?}",
        kept_reasons(&data)
    );

    // Senders of example.test, as proved by mx.home.test's verdict: only the genuine one.
    let data = root.join("data2");
    let (code, reports, stderr) = poll_plain(
        &data,
        &dovecot,
        dovecot.pop3,
        &[
            "--allow-sender",
            "@example.test",
            "--authserv-id",
            "mx.home.test",
            "--keep",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(counts(&reports[0]), (1, 3, 1), "{}", reports[0]);
    let saved: Vec<String> = links(&data).into_iter().map(|(u, _)| u).collect();
    assert_eq!(saved, ["https://genuine.test/0"]);
    let reasons = kept_reasons(&data);
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.contains("not authenticated by the receiving server"))
            .count(),
        2,
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("sender eve@attacker.test is not allowed"))
    );

    // From: alone (no verdict asked for) takes the forged ones too: what the README warns.
    let data = root.join("data3");
    let (_, reports, _) = poll_plain(
        &data,
        &dovecot,
        dovecot.pop3,
        &["--allow-sender", "@example.test", "--keep"],
    );
    assert_eq!(counts(&reports[0]), (3, 1, 3), "{}", reports[0]);
}

#[test]
fn a_secret_address_and_link_caps_per_message_and_per_poll() {
    let root = fresh("secret");
    let mut dovecot = Dovecot::start(&root.join("dovecot"));
    let secret = root.join("secret");
    std::fs::write(&secret, "Kq7Zp2Lm9X\n").unwrap();
    let s = secret.to_str().unwrap();
    dovecot.deliver(&message(
        "ann@example.test",
        "",
        "links+kq7zp2lm9x@home.test",
        "a",
        &urls("secret", 1),
    ));
    dovecot.deliver(&message(
        "ann@example.test",
        "",
        "links@home.test",
        "b",
        &urls("nosecret", 1),
    ));
    dovecot.deliver(&message(
        "ann@example.test",
        "",
        "links+wrong0000@home.test",
        "c",
        &urls("wrong", 1),
    ));
    let data = root.join("data");
    let (code, reports, stderr) = poll_plain(&data, &dovecot, dovecot.pop3, &["--secret-file", s]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(counts(&reports[0]), (1, 2, 1), "{}", reports[0]);
    assert_eq!(links(&data)[0].0, "https://secret.test/0");
    assert_eq!(
        kept_reasons(&data)
            .iter()
            .filter(|r| r.contains("secret is not in the address or subject"))
            .count(),
        2
    );

    // Links per message, at the boundary: 4 pass a limit of 4, 5 do not.
    let root = fresh("caps");
    let mut dovecot = Dovecot::start(&root.join("dovecot"));
    dovecot.deliver(&message(
        "ann@example.test",
        "",
        "me@home.test",
        "four",
        &urls("four", 4),
    ));
    dovecot.deliver(&message(
        "ann@example.test",
        "",
        "me@home.test",
        "five",
        &urls("five", 5),
    ));
    let data = root.join("data");
    let (_, reports, _) = poll_plain(
        &data,
        &dovecot,
        dovecot.pop3,
        &["--max-links-per-message", "4"],
    );
    assert_eq!(counts(&reports[0]), (1, 1, 4), "{}", reports[0]);
    assert!(
        kept_reasons(&data)
            .iter()
            .any(|r| r == "5 links, more than the limit of 4 (max_links_per_message)")
    );

    // Links per poll: three messages of 2 links with a budget of 4: two now, one later.
    let root = fresh("per-poll");
    let mut dovecot = Dovecot::start(&root.join("dovecot"));
    for tag in ["p1", "p2", "p3"] {
        dovecot.deliver(&message(
            "ann@example.test",
            "",
            "me@home.test",
            tag,
            &urls(tag, 2),
        ));
    }
    let data = root.join("data");
    let cap = ["--max-links-per-poll", "4"];
    let (_, reports, _) = poll_plain(&data, &dovecot, dovecot.pop3, &cap);
    assert_eq!(counts(&reports[0]), (2, 0, 4), "{}", reports[0]);
    assert_eq!(reports[0]["deferred"], 1);
    assert_eq!(dovecot.count(), 1, "the third waits in the mailbox");
    let (_, reports, _) = poll_plain(&data, &dovecot, dovecot.pop3, &cap);
    assert_eq!(counts(&reports[0]), (1, 0, 2), "{}", reports[0]);
    assert_eq!(links(&data).len(), 6);
}
