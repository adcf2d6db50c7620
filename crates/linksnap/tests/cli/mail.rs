//! Mail ingest against a real Dovecot (Debian's dovecot-pop3d), started per test on
//! loopback ports with its own configuration, password file, certificate and Maildir.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::serve::{Serve, wait_until};
use crate::support::{artifact_dir, linksnap, linksnap_with_env};

const USER: &str = "reader";
const PASSWORD: &str = "correct horse battery";
/// Dovecot will not serve mail as root: the Maildir belongs to `nobody`.
const MAIL_UID: u32 = 65534;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Dovecot serving POP3 (plain with STLS) and POP3S on loopback.
pub(crate) struct Dovecot {
    dir: PathBuf,
    child: Option<Child>,
    pub(crate) pop3: u16,
    pop3s: u16,
    delivered: usize,
}

impl Dovecot {
    pub(crate) fn start(dir: &Path) -> Self {
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "the Dovecot tests run as root (Dovecot drops to the Maildir's owner)"
        );
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .arg("-keyout")
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem"))
            .stderr(Stdio::null())
            .status()
            .expect("openssl (installed by scripts/test.sh)");
        assert!(ok.success());
        std::fs::write(dir.join("passwd"), format!("{USER}:{{PLAIN}}{PASSWORD}\n")).unwrap();
        let maildir = dir.join(format!("mail/{USER}/Maildir"));
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        chown_all(&dir.join("mail"));
        let mut d = Self {
            dir: dir.to_path_buf(),
            child: None,
            pop3: free_port(),
            pop3s: free_port(),
            delivered: 0,
        };
        d.launch();
        d
    }

    fn launch(&mut self) {
        let dir = self.dir.display();
        let run = self
            .dir
            .join(format!("run-{}", self.delivered + self.pop3 as usize));
        let _ = std::fs::remove_dir_all(&run);
        std::fs::create_dir_all(&run).unwrap();
        let conf = format!(
            "protocols = pop3\nlisten = 127.0.0.1\nbase_dir = {run}\nstate_dir = {dir}/state\n\
             log_path = {dir}/dovecot.log\nssl = yes\nssl_cert = <{dir}/cert.pem\nssl_key = <{dir}/key.pem\n\
             disable_plaintext_auth = no\nauth_mechanisms = plain\nmail_location = maildir:~/Maildir\n\
             first_valid_uid = 1\npop3_uidl_format = %08Xu%08Xv\n\
             passdb {{\n  driver = passwd-file\n  args = {dir}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid={MAIL_UID} gid={MAIL_UID} home={dir}/mail/%u\n}}\n\
             service pop3-login {{\n  inet_listener pop3 {{\n    address = 127.0.0.1\n    port = {}\n  }}\n\
             inet_listener pop3s {{\n    address = 127.0.0.1\n    port = {}\n    ssl = yes\n  }}\n}}\n",
            self.pop3,
            self.pop3s,
            run = run.display(),
        );
        std::fs::write(self.dir.join("dovecot.conf"), conf).unwrap();
        let child = Command::new("/usr/sbin/dovecot")
            .arg("-F")
            .arg("-c")
            .arg(self.dir.join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a kill takes the login and pop3 processes too.
            .process_group(0)
            .spawn()
            .expect("dovecot (installed by scripts/test.sh)");
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.pop3)).is_err()
            || TcpStream::connect(("127.0.0.1", self.pop3s)).is_err()
        {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "dovecot did not start: {}",
                std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL to Dovecot and every process it started.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    fn maildir(&self) -> PathBuf {
        self.dir.join(format!("mail/{USER}/Maildir"))
    }

    /// Delivers a message (LF line ends become CRLF, as POP3 will count them).
    pub(crate) fn deliver(&mut self, message: &[u8]) {
        self.delivered += 1;
        let mut crlf = Vec::with_capacity(message.len() + 64);
        for &b in message {
            if b == b'\n' && crlf.last() != Some(&b'\r') {
                crlf.push(b'\r');
            }
            crlf.push(b);
        }
        let name = format!(
            "{}.M{}P{}.test",
            1_700_000_000 + self.delivered,
            self.delivered,
            std::process::id()
        );
        let tmp = self.maildir().join("tmp").join(&name);
        std::fs::write(&tmp, crlf).unwrap();
        std::os::unix::fs::chown(&tmp, Some(MAIL_UID), Some(MAIL_UID)).unwrap();
        std::fs::rename(&tmp, self.maildir().join("new").join(&name)).unwrap();
    }

    /// Messages still in the mailbox.
    pub(crate) fn count(&self) -> usize {
        ["new", "cur"]
            .iter()
            .map(|d| std::fs::read_dir(self.maildir().join(d)).unwrap().count())
            .sum()
    }

    fn password_file(&self) -> PathBuf {
        let p = self.dir.join("password");
        std::fs::write(&p, format!("{PASSWORD}\n")).unwrap();
        p
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.kill();
        let log = std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default();
        let _ = std::fs::write(
            artifact_dir("mail").join(format!("dovecot-{}.log", self.pop3)),
            log,
        );
    }
}

fn chown_all(path: &Path) {
    std::os::unix::fs::chown(path, Some(MAIL_UID), Some(MAIL_UID)).unwrap();
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            chown_all(&e.unwrap().path());
        }
    }
}

pub(crate) fn fresh(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("linksnap-mail-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `mail poll --once --json` against Dovecot's plain port (loopback: no TLS allowed).
pub(crate) fn poll_plain(
    data: &Path,
    dovecot: &Dovecot,
    port: u16,
    extra: &[&str],
) -> (i32, Vec<Value>, String) {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let run = poll_once(data, port, &dovecot.password_file(), &args);
    let reports = run
        .stdout_str()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (run.code, reports, run.stderr)
}

/// `mail poll --once` of Dovecot's plain port with the password in `password_file`.
fn poll_once(data: &Path, port: u16, password_file: &Path, extra: &[&str]) -> crate::support::Run {
    let port = port.to_string();
    let mut args = vec![
        "--data",
        data.to_str().unwrap(),
        "mail",
        "poll",
        "--once",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--tls",
        "none",
        "--user",
        USER,
        "--password-file",
        password_file.to_str().unwrap(),
    ];
    // Anyone's mail, unless the test says whose.
    if !extra.contains(&"--allow-sender") {
        args.extend_from_slice(&["--allow-sender", "*"]);
    }
    args.extend_from_slice(extra);
    linksnap(&args)
}

/// Every link in the library: (url, tags).
pub(crate) fn links(data: &Path) -> Vec<(String, Vec<String>)> {
    let run = linksnap(&["--data", data.to_str().unwrap(), "ls", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut v: Vec<(String, Vec<String>)> = run
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["url"].as_str().unwrap().to_owned(),
                l["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect();
    v.sort();
    v
}

fn rfc2047_gbk(text: &str) -> String {
    use base64::Engine as _;
    let (gbk, _, _) = encoding_rs::GBK.encode(text);
    format!(
        "=?GBK?B?{}?=",
        base64::engine::general_purpose::STANDARD.encode(&gbk)
    )
}

const MULTIPART: &str = "From: Ann <ann@example.test>\nTo: reader@box.test\nSubject: Reading #rust #lang/go\n\
MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=b\n\n\
--b\nContent-Type: text/plain; charset=utf-8\n\nTwo for you: https://one.test/a and https://two.test/b.\n\
--b\nContent-Type: text/html; charset=utf-8\n\n<p><a href=\"https://one.test/a\">one</a>, \
<a href=\"https://three.test/c?x=1&amp;y=2\">three</a></p>\n--b--\n";

#[test]
fn links_from_text_and_html_parts_are_saved_once_and_messages_without_links_stay() {
    let root = fresh("plain");
    let mut dovecot = Dovecot::start(&root.join("dovecot"));
    let data = root.join("data");
    dovecot.deliver(MULTIPART.as_bytes());
    let gbk = format!(
        "From: li@example.test\nSubject: {}\nContent-Type: text/plain; charset=utf-8\n\n看 https://four.test/文章\n",
        rfc2047_gbk("好文 #中文")
    );
    dovecot.deliver(gbk.as_bytes());
    dovecot.deliver(
        b"From: x@example.test\nSubject: just words\n\nno link here, mailto:a@b.test only\n",
    );
    dovecot.deliver(b"\xff\xfe\x00binary junk with no header at all\n");

    let (code, reports, stderr) = poll_plain(&data, &dovecot, dovecot.pop3, &[]);
    assert_eq!(code, 0, "{stderr}");
    let r = &reports[0];
    assert_eq!(
        (
            &r["messages"],
            &r["ingested"],
            &r["kept"],
            &r["links_added"],
            &r["deleted"]
        ),
        (&4.into(), &2.into(), &2.into(), &4.into(), &2.into()),
        "{r}"
    );
    assert_eq!(
        links(&data),
        [
            (
                "https://four.test/%E6%96%87%E7%AB%A0".to_owned(),
                vec!["mail".to_owned(), "中文".to_owned()]
            ),
            (
                "https://one.test/a".to_owned(),
                vec!["lang/go".into(), "mail".into(), "rust".into()]
            ),
            (
                "https://three.test/c?x=1&y=2".to_owned(),
                vec!["lang/go".into(), "mail".into(), "rust".into()]
            ),
            (
                "https://two.test/b".to_owned(),
                vec!["lang/go".into(), "mail".into(), "rust".into()]
            ),
        ]
    );
    // The two without links are still in the mailbox; the two ingested are gone.
    assert_eq!(dovecot.count(), 2);

    // A second poll adds nothing and reads nothing again.
    let (code, reports, _) = poll_plain(&data, &dovecot, dovecot.pop3, &[]);
    assert_eq!(code, 0);
    let r = &reports[0];
    assert_eq!(
        (&r["messages"], &r["known"], &r["ingested"], &r["kept"]),
        (&2.into(), &2.into(), &0.into(), &0.into()),
        "{r}"
    );
    assert_eq!(links(&data).len(), 4);
    assert_eq!(dovecot.count(), 2);

    let status = linksnap(&["--data", data.to_str().unwrap(), "mail", "status", "--json"]).json();
    let s = &status[0];
    assert_eq!(s["mailbox"], "reader@127.0.0.1");
    assert_eq!(
        (
            &s["polls"],
            &s["messages_ingested"],
            &s["messages_kept"],
            &s["links_added"]
        ),
        (&2.into(), &2.into(), &2.into(), &4.into())
    );
    let reasons: Vec<&str> = s["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.contains(&"no http or https link"), "{reasons:?}");
    assert!(reasons.contains(&"not a mail message"), "{reasons:?}");
    // The links are queued for capture.
    let ls = linksnap(&["--data", data.to_str().unwrap(), "ls", "--json"]).json();
    assert!(
        ls.as_array()
            .unwrap()
            .iter()
            .all(|l| l["status"] == "queued")
    );
}

#[test]
fn the_message_size_limit_holds_at_its_boundary_and_big_messages_stay() {
    let root = fresh("size");
    let mut dovecot = Dovecot::start(&root.join("dovecot"));
    let mut msg = b"From: a@example.test\nSubject: big\n\nhttps://big.test/\n".to_vec();
    msg.resize(msg.len() + 3000, b'x');
    msg.push(b'\n');
    dovecot.deliver(&msg);
    let size = std::fs::read_dir(dovecot.maildir().join("new"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .metadata()
        .unwrap()
        .len();
    let (under, at) = ((size - 1).to_string(), size.to_string());

    let small = root.join("small");
    let (code, reports, stderr) = poll_plain(
        &small,
        &dovecot,
        dovecot.pop3,
        &["--max-message-size", &under],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        (&reports[0]["kept"], &reports[0]["ingested"]),
        (&1.into(), &0.into())
    );
    assert!(links(&small).is_empty());
    assert_eq!(
        dovecot.count(),
        1,
        "a message too large stays in the mailbox"
    );
    let status = linksnap(&[
        "--data",
        small.to_str().unwrap(),
        "mail",
        "status",
        "--json",
    ])
    .json();
    let reason = status[0]["kept"][0]["reason"].as_str().unwrap().to_owned();
    assert_eq!(
        reason,
        format!("too large: {size} bytes, the limit is {under}")
    );
    // Not tried again.
    let (_, reports, _) = poll_plain(
        &small,
        &dovecot,
        dovecot.pop3,
        &["--max-message-size", &under],
    );
    assert_eq!(
        (&reports[0]["known"], &reports[0]["kept"]),
        (&1.into(), &0.into())
    );

    let exact = root.join("exact");
    let (code, reports, stderr) = poll_plain(
        &exact,
        &dovecot,
        dovecot.pop3,
        &["--max-message-size", &at, "--keep"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(&reports[0]["ingested"], &Value::from(1));
    assert_eq!(links(&exact)[0].0, "https://big.test/");
    assert_eq!(dovecot.count(), 1, "--keep leaves it");
}

#[test]
fn a_wrong_password_is_a_clear_error_and_deletes_nothing() {
    let root = fresh("auth");
    let mut dovecot = Dovecot::start(&root.join("dovecot"));
    dovecot.deliver(MULTIPART.as_bytes());
    let data = root.join("data");
    let bad = root.join("bad-password");
    std::fs::write(&bad, "not the password\n").unwrap();
    let run = poll_once(&data, dovecot.pop3, &bad, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("sign-in refused for reader"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("not the password"), "{}", run.stderr);
    assert_eq!(dovecot.count(), 1);
    assert!(links(&data).is_empty());
    let status = linksnap(&["--data", data.to_str().unwrap(), "mail", "status", "--json"]).json();
    assert_eq!(status[0]["errors"], 1);
    assert!(
        status[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("sign-in refused")
    );

    // Plain text to a host that is not loopback is refused before any connection.
    let run = linksnap(&[
        "--data",
        data.to_str().unwrap(),
        "mail",
        "poll",
        "--once",
        "--host",
        "192.0.2.1",
        "--tls",
        "none",
        "--user",
        USER,
        "--password-file",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("in the clear"), "{}", run.stderr);
}

#[test]
fn stls_and_implicit_tls_with_a_self_signed_certificate_trusted_through_the_config() {
    let root = fresh("tls");
    let mut dovecot = Dovecot::start(&root.join("dovecot"));
    dovecot.deliver(MULTIPART.as_bytes());
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(root.join("dovecot/cert.pem"), data.join("server.pem")).unwrap();
    let config = |ca: bool| {
        let ca = if ca { "ca_file = \"server.pem\"\n" } else { "" };
        format!(
            "[[mail]]\nname = \"stls\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\nuser = \"{USER}\"\npassword_env = \"MAIL_PW\"\ndelete = false\nallowed_senders = [\"*\"]\n{ca}\
             [[mail]]\nname = \"pop3s\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"implicit\"\nuser = \"{USER}\"\npassword_env = \"MAIL_PW\"\ntags = [\"inbox\"]\nallowed_senders = [\"*\"]\n{ca}",
            dovecot.pop3, dovecot.pop3s
        )
    };
    let env = [("MAIL_PW", PASSWORD)];
    // Without the certificate: refused, with a hint, nothing read.
    std::fs::write(data.join("config.toml"), config(false)).unwrap();
    let run = linksnap_with_env(
        &["--data", data.to_str().unwrap(), "mail", "poll", "--once"],
        &env,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("certificate") && run.stderr.contains("ca_file"),
        "{}",
        run.stderr
    );
    assert!(links(&data).is_empty());

    std::fs::write(data.join("config.toml"), config(true)).unwrap();
    let run = linksnap_with_env(
        &[
            "--data",
            data.to_str().unwrap(),
            "mail",
            "poll",
            "--once",
            "--json",
        ],
        &env,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let reports: Vec<Value> = run
        .stdout_str()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // STLS first (keeps the message), then POP3S reads it again as its own mailbox.
    assert_eq!(
        (
            &reports[0]["mailbox"],
            &reports[0]["ingested"],
            &reports[0]["deleted"]
        ),
        (&"stls".into(), &1.into(), &0.into())
    );
    assert_eq!(
        (
            &reports[1]["mailbox"],
            &reports[1]["ingested"],
            &reports[1]["links_added"],
            &reports[1]["deleted"]
        ),
        (&"pop3s".into(), &1.into(), &0.into(), &1.into())
    );
    let all = links(&data);
    assert_eq!(all.len(), 3);
    assert!(
        all.iter()
            .all(|(_, t)| t.contains(&"inbox".to_owned()) && t.contains(&"mail".to_owned())),
        "{all:?}"
    );
    let log = std::fs::read_to_string(root.join("dovecot/dovecot.log")).unwrap();
    assert!(log.contains("TLS") || log.contains("secured"), "{log}");
    assert_eq!(dovecot.count(), 0);
}

/// Relays one POP3 session to Dovecot and kills Dovecot once `RETR 2` is being answered.
fn killing_proxy(upstream: u16, dovecot_pgid: i32) -> (u16, std::thread::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        // Never waits forever: a poll that does not come ends the test.
        listener.set_nonblocking(true).unwrap();
        let started = Instant::now();
        let mut client = loop {
            match listener.accept() {
                Ok((c, _)) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        started.elapsed() < Duration::from_secs(30),
                        "the poll never came"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("{e}"),
            }
        };
        client.set_nonblocking(false).unwrap();
        let mut server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
        let retr2 = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (mut c2, mut s2, seen) = (
            client.try_clone().unwrap(),
            server.try_clone().unwrap(),
            retr2.clone(),
        );
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut said = Vec::new();
            while let Ok(n) = c2.read(&mut buf) {
                if n == 0 {
                    break;
                }
                said.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&said).contains("RETR 2\r\n") {
                    seen.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                if s2.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        let mut relayed_after = 0usize;
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match server.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if retr2.load(std::sync::atomic::Ordering::SeqCst) {
                relayed_after += n;
                if relayed_after > 64 * 1024 {
                    // Mid-RETR: Dovecot dies, and the connection with it.
                    unsafe { libc::kill(-dovecot_pgid, libc::SIGKILL) };
                    let _ = client.write_all(&buf[..n]);
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    break;
                }
            }
            if client.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        relayed_after
    });
    (port, handle)
}

#[test]
fn dovecot_killed_mid_retr_deletes_nothing_and_the_next_poll_adds_no_duplicates() {
    let root = fresh("kill");
    let mut dovecot = Dovecot::start(&root.join("dovecot"));
    dovecot.deliver(b"From: a@example.test\nSubject: first\n\nhttps://first.test/\n");
    let mut big = b"From: a@example.test\nSubject: second #big\n\nhttps://second.test/\n".to_vec();
    for i in 0..20_000 {
        big.extend_from_slice(format!("filler line {i} of a long message\n").as_bytes());
    }
    dovecot.deliver(&big);
    dovecot.deliver(b"From: a@example.test\nSubject: third\n\nhttps://third.test/\n");
    let data = root.join("data");

    let pgid = dovecot.child.as_ref().unwrap().id() as i32;
    let (port, proxy) = killing_proxy(dovecot.pop3, pgid);
    let (code, _, stderr) = poll_plain(&data, &dovecot, port, &[]);
    assert!(proxy.join().unwrap() > 64 * 1024, "the kill came mid-RETR");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("closed"), "{stderr}");
    // The first message's links were saved before the kill; nothing was deleted.
    assert_eq!(
        links(&data),
        [("https://first.test/".to_owned(), vec!["mail".to_owned()])]
    );
    assert_eq!(dovecot.count(), 3);

    dovecot.restart();
    let (code, reports, stderr) = poll_plain(&data, &dovecot, dovecot.pop3, &[]);
    assert_eq!(code, 0, "{stderr}");
    let r = &reports[0];
    // The first is known (only deleted now), the other two are ingested once.
    assert_eq!(
        (
            &r["messages"],
            &r["known"],
            &r["ingested"],
            &r["links_added"],
            &r["links_existing"],
            &r["deleted"]
        ),
        (
            &3.into(),
            &1.into(),
            &2.into(),
            &2.into(),
            &0.into(),
            &3.into()
        ),
        "{r}"
    );
    let urls: Vec<String> = links(&data).into_iter().map(|(u, _)| u).collect();
    assert_eq!(
        urls,
        [
            "https://first.test/",
            "https://second.test/",
            "https://third.test/"
        ]
    );
    assert_eq!(dovecot.count(), 0);
    let status = linksnap(&["--data", data.to_str().unwrap(), "mail", "status", "--json"]).json();
    assert_eq!(
        (
            &status[0]["messages_ingested"],
            &status[0]["links_added"],
            &status[0]["errors"]
        ),
        (&3.into(), &3.into(), &1.into())
    );
}

#[test]
fn serve_polls_its_mailboxes_and_shows_their_status() {
    let root = fresh("serve");
    let mut dovecot = Dovecot::start(&root.join("dovecot"));
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("config.toml"),
        format!(
            "[[mail]]\nname = \"inbox\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nuser = \"{USER}\"\npassword_env = \"MAIL_PW\"\npoll_interval = \"300ms\"\nowner = \"bob\"\nallowed_senders = [\"*\"]\n",
            dovecot.pop3
        ),
    )
    .unwrap();
    // The owner must exist.
    let s = linksnap_with_env(
        &[
            "--data",
            data.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ],
        &[("MAIL_PW", PASSWORD)],
    );
    assert_eq!(s.code, 2, "{}", s.stderr);
    assert!(
        s.stderr.contains("owner `bob` is not a user"),
        "{}",
        s.stderr
    );
    // Ann, the first user, owns the data directory's library; the mail is for bob.
    for name in ["ann", "bob"] {
        let run = crate::support::linksnap_stdin(
            &[
                "--data",
                data.to_str().unwrap(),
                "user",
                "add",
                name,
                "--password-stdin",
            ],
            b"a long password\n",
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
    }

    let server = Serve::start_with(&data, &["--workers", "0"], &[("MAIL_PW", PASSWORD)]);
    dovecot
        .deliver(b"From: a@example.test\nSubject: while serving #live\n\nhttps://live.test/page\n");
    wait_until("the mailed link in bob's library", || {
        let run = linksnap(&[
            "--data",
            data.to_str().unwrap(),
            "--as",
            "bob",
            "ls",
            "--json",
        ]);
        run.code == 0 && run.stdout_str().contains("https://live.test/page")
    });
    wait_until("the message deleted", || dovecot.count() == 0);
    let theirs = linksnap(&["--data", data.to_str().unwrap(), "ls", "--json"]);
    assert!(
        !theirs.stdout_str().contains("live.test"),
        "not in ann's library"
    );
    // Status through the server (bob's), and on the settings page (the private socket is
    // the server's own user, who sees every mailbox).
    let status = linksnap(&[
        "--data",
        data.to_str().unwrap(),
        "--as",
        "bob",
        "mail",
        "status",
        "--json",
    ])
    .json();
    assert_eq!(
        (&status[0]["mailbox"], &status[0]["links_added"]),
        (&"inbox".into(), &1.into())
    );
    // Without --as, the operator sees every library's mailboxes.
    let all = linksnap(&["--data", data.to_str().unwrap(), "mail", "status", "--json"]).json();
    assert_eq!(all[0]["mailbox"], "inbox", "{all}");
    let mut sock = std::os::unix::net::UnixStream::connect(data.join("linksnap.sock")).unwrap();
    sock.write_all(b"GET /settings HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut page = String::new();
    sock.read_to_string(&mut page).unwrap();
    assert!(page.contains("data-mailbox=\"inbox\""), "{page}");
    assert!(page.contains("<dd class=\"links-added\">1</dd>"), "{page}");
    let (code, _) = server.stop();
    assert_eq!(code, 0);
}
