//! Pages in legacy encodings come out as correct UTF-8, with the meta charset rewritten.

use crate::support::{FixtureServer, snap};

#[test]
fn legacy_encodings_are_decoded_and_written_as_utf8() {
    let server = FixtureServer::start();
    for (name, encoding, source, text) in [
        (
            "gbk-meta",
            "GBK",
            "meta",
            "简体中文网页，编码测试：北京欢迎你。",
        ),
        (
            "big5-header",
            "Big5",
            "http-header",
            "繁體中文網頁，編碼測試：臺北歡迎你。",
        ),
        (
            "sjis-meta",
            "Shift_JIS",
            "meta",
            "日本語のウェブページ、文字コードのテストです。",
        ),
        (
            "eucjp-header",
            "EUC-JP",
            "http-header",
            "日本語のウェブページ、EUC-JPのテストです。",
        ),
        (
            "euckr-meta",
            "EUC-KR",
            "meta",
            "한국어 웹 페이지, 인코딩 시험입니다.",
        ),
        (
            "cp1251-undeclared",
            "windows-1251",
            "detected",
            "Съешь же ещё этих мягких французских булок",
        ),
    ] {
        let url = server.url(&format!("/encoded/{name}"));
        let run = snap(&url, &[]);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        let html =
            String::from_utf8(run.stdout.clone()).unwrap_or_else(|_| panic!("{name}: not UTF-8"));
        assert!(html.contains(text), "{name}: {html}");
        assert!(html.contains("<meta charset=\"utf-8\">"), "{name}");
        assert_eq!(
            html.matches("charset=").count(),
            1,
            "{name}: the old label is gone: {html}"
        );
        let json = snap(&url, &["--format", "json"]).json();
        assert_eq!(json["encoding"]["name"], encoding, "{name}");
        assert_eq!(json["encoding"]["source"], source, "{name}");
    }
}

#[test]
fn a_page_whose_meta_lies_is_read_as_the_utf8_it_is() {
    // readability's `qq` page says gb2312 in its meta; its bytes are UTF-8.
    let server = FixtureServer::start();
    let url = server.url("/corpus/readability/qq/source.html");
    let json = snap(&url, &["--format", "json"]).json();
    assert_eq!(json["encoding"]["name"], "UTF-8");
    assert_eq!(json["encoding"]["source"], "utf-8-content");
    let html = snap(&url, &[]).stdout_str();
    assert!(html.contains("<meta charset=\"utf-8\">"));
    assert!(
        !html.to_ascii_lowercase().contains("gb2312"),
        "the lying label is gone"
    );
    let expected = std::fs::read_to_string(
        crate::support::corpus_dir().join("readability/qq/expected-metadata.json"),
    )
    .unwrap();
    let title = serde_json::from_str::<serde_json::Value>(&expected).unwrap()["title"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(html.contains(&title), "title {title:?} intact");
}

#[test]
fn monolith_unusual_encodings_come_out_right() {
    let server = FixtureServer::start();
    let gb = snap(
        &server.url("/corpus/monolith-fixtures/unusual_encodings/gb2312.html"),
        &[],
    )
    .stdout_str();
    assert!(
        gb.contains("近七成人减少线下需求　银行数字化转型提速"),
        "{gb}"
    );
    let latin = snap(
        &server.url("/corpus/monolith-fixtures/unusual_encodings/iso-8859-1.html"),
        &["--format", "json"],
    )
    .json();
    assert_eq!(
        latin["encoding"]["name"], "windows-1252",
        "ISO-8859-1 is windows-1252 on the web"
    );
}
