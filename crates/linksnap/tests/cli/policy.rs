//! The address policy, end to end: refused pages, assets and redirects, and allow rules.

use crate::support::{FixtureServer, linksnap, linksnap_with_env, snap};

#[test]
fn a_loopback_page_is_refused_by_default_naming_address_and_rule() {
    let server = FixtureServer::start();
    let url = server.url("/plain");
    let run = linksnap(&["snap", &url]);
    assert_eq!(run.code, 4);
    assert_eq!(
        run.stderr.trim(),
        format!(
            "linksnap: error: refused {url}: 127.0.0.1: address 127.0.0.1 is refused by the rule loopback (127.0.0.0/8)"
        )
    );
    assert!(
        server.requests().is_empty(),
        "a refused page is never contacted"
    );
}

#[test]
fn private_and_metadata_literals_are_refused_without_a_connection() {
    for (url, rule) in [
        ("http://10.1.2.3/", "private (10.0.0.0/8)"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "cloud metadata (169.254.169.254/32)",
        ),
        ("http://[::ffff:192.168.1.1]/", "private (192.168.0.0/16)"),
        ("http://[fd00::1]/", "unique local (private) (fc00::/7)"),
        ("http://0.0.0.0:8080/", "unspecified (0.0.0.0/8)"),
    ] {
        let run = linksnap(&["snap", url, "--connect-timeout", "1"]);
        assert_eq!(run.code, 4, "{url}: {}", run.stderr);
        assert!(run.stderr.contains(rule), "{url}: {}", run.stderr);
    }
}

#[test]
fn allow_net_from_the_environment_opens_exactly_its_range() {
    let server = FixtureServer::start();
    let url = server.url("/plain");
    let run = linksnap_with_env(
        &["snap", &url],
        &[("LINKSNAP_ALLOW_NET", "10.0.0.0/8, 127.0.0.1/32")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = linksnap_with_env(&["snap", &url], &[("LINKSNAP_ALLOW_NET", "127.0.0.2/32")]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    let run = linksnap_with_env(
        &["snap", &url],
        &[("LINKSNAP_ALLOW_NET", "127.0.0.0/8,nonsense")],
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("LINKSNAP_ALLOW_NET: invalid network `nonsense`"),
        "{}",
        run.stderr
    );
    let run = linksnap(&["snap", &url, "--allow-net", "127.0.0.0/33"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("--allow-net: invalid network `127.0.0.0/33`"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_refused_asset_is_left_out_recorded_and_never_contacted() {
    let page_server = FixtureServer::start();
    let other = FixtureServer::start_on("127.0.0.2".parse().unwrap());
    let asset = other.url("/blob/100");
    let url = page_server.url(&format!("/page-with?img={asset}"));
    let run = linksnap(&[
        "snap",
        &url,
        "--allow-net",
        "127.0.0.1/32",
        "--format",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    let r = &report["resources"][0];
    assert_eq!(r["url"], asset);
    assert_eq!(r["outcome"], "refused");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("address 127.0.0.2 is refused by the rule loopback"),
        "{r}"
    );
    assert!(
        other.requests().is_empty(),
        "the refused server got {:?}",
        other.requests()
    );
    // The snapshot keeps no pointer the browser would follow.
    let html = linksnap(&["snap", &url, "--allow-net", "127.0.0.1/32"]).stdout_str();
    assert!(
        html.contains(&format!("data-linksnap-src=\"{asset}\"")),
        "{html}"
    );
    assert!(!html.contains(&format!(" src=\"{asset}\"")));
}

#[test]
fn every_redirect_hop_is_checked_against_the_policy() {
    let server = FixtureServer::start();
    let other = FixtureServer::start_on("127.0.0.3".parse().unwrap());
    let target = other.url("/plain");
    let url = server.url(&format!("/redirect-to?to={target}"));
    let run = linksnap(&["snap", &url, "--allow-net", "127.0.0.1/32"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("address 127.0.0.3 is refused by the rule loopback"),
        "{}",
        run.stderr
    );
    assert!(other.requests().is_empty());
    let run = linksnap(&[
        "snap",
        &url,
        "--allow-net",
        "127.0.0.1/32",
        "--allow-net",
        "127.0.0.3",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn names_are_resolved_by_us_and_the_checked_address_is_the_one_connected_to() {
    let server = FixtureServer::start();
    let port = server.addr.port();
    let url = format!("http://fixture.linksnap.test:{port}/plain");
    // The name exists nowhere but in our resolver: the connection can only have gone to
    // the address we resolved and checked.
    let run = linksnap(&[
        "snap",
        &url,
        "--resolve",
        "fixture.linksnap.test:127.0.0.1",
        "--allow-net",
        "127.0.0.1",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout_str().contains("plain page"));
    let run = linksnap(&["snap", &url, "--resolve", "fixture.linksnap.test:127.0.0.1"]);
    assert_eq!(run.code, 4);
    assert!(
        run.stderr
            .contains("fixture.linksnap.test: address 127.0.0.1 is refused by the rule loopback"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_unreachable_host_fails_once_not_once_per_asset() {
    let server = FixtureServer::start();
    // Nothing listens on port 9 of 127.0.0.5: connection refused.
    let imgs: Vec<String> = (0..6)
        .map(|i| format!("img=http://127.0.0.5:9/{i}.png"))
        .collect();
    let url = server.url(&format!("/page-with?{}", imgs.join("&")));
    let run = snap(&url, &["--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    let outcomes: Vec<&str> = report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "connect").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == "host-failed").count(),
        5,
        "{outcomes:?}"
    );
}

#[test]
fn ipv6_loopback_is_refused_by_default_and_allowed_by_rule() {
    let Ok(probe) = std::net::TcpListener::bind("[::1]:0") else {
        panic!("this machine has no IPv6 loopback; the test needs ::1");
    };
    drop(probe);
    let server = FixtureServer::start_on("::1".parse().unwrap());
    let url = server.url("/plain");
    let run = linksnap(&["snap", &url]);
    assert_eq!(run.code, 4);
    assert!(
        run.stderr
            .contains("address ::1 is refused by the rule loopback (::1/128)"),
        "{}",
        run.stderr
    );
    let run = linksnap(&["snap", &url, "--allow-net", "::1/128"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn an_unknown_name_and_a_closed_port_are_clear_one_line_errors() {
    // The stub DNS server every test run uses answers NXDOMAIN for every name.
    let run = linksnap(&["snap", "http://no-such-host.example/"]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr.trim(),
        "linksnap: error: http://no-such-host.example/: cannot connect: cannot resolve no-such-host.example: no such name (the DNS server has no address for it)"
    );
    let run = linksnap(&["snap", "http://127.0.0.1:1/", "--allow-net", "127.0.0.1"]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr.trim(),
        "linksnap: error: http://127.0.0.1:1/: cannot connect: tcp connect error: Connection refused (os error 111)"
    );
}
