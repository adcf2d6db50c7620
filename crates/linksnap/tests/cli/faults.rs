//! Reliability under load and faults: many writers at once, kill -9 at random moments, a
//! full disk, a read-only directory, damaged blobs, a deleted search index, a capture that
//! hangs, a server stopped for 30 s. Every change the server acknowledged must be there
//! afterwards, nothing half-applied, nothing stranded, `fsck` clean; a fault is answered
//! as a fault (503/507 with `Retry-After`), never as a 500.
//!
//! Loopback only; every loop is bounded in count and time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::serve::{Serve, http, token, wait_until};
use crate::support::{FixtureServer, linksnap};

/// A small deterministic generator: the same seed gives the same operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What the server acknowledged with a 2xx (and what was only attempted), per client.
#[derive(Default)]
struct Acked {
    /// URL → link id, for adds answered 2xx.
    added: HashMap<String, i64>,
    /// Links whose removal was attempted (answered or not): they may be gone.
    delete_tried: HashSet<i64>,
    /// Links whose removal was acknowledged: they must be gone.
    deleted: HashSet<i64>,
    /// Link → the highest note number acknowledged (notes only grow).
    notes: HashMap<i64, u64>,
    /// Link → tags acknowledged on it.
    tags: HashMap<i64, HashSet<String>>,
    /// Marker tags of imports acknowledged, and of every import attempted.
    imports: Vec<String>,
    imports_tried: Vec<String>,
    /// Tag renames acknowledged (from, to), and attempted.
    renames: Vec<(String, String)>,
    renames_tried: Vec<(String, String)>,
    /// Shares acknowledged: (link, share id).
    shares: Vec<(i64, i64)>,
}

/// Latencies and statuses of a load run.
#[derive(Default)]
struct Stats {
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, usize>,
    /// Requests that got no answer (the server was killed, or stopped).
    unanswered: usize,
    elapsed: Duration,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.latencies.extend(other.latencies);
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        self.unanswered += other.unanswered;
    }

    fn server_errors(&self) -> usize {
        self.statuses
            .iter()
            .filter(|(s, _)| **s >= 500)
            .map(|(_, n)| n)
            .sum()
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        if l.is_empty() {
            return Duration::ZERO;
        }
        l[((l.len() - 1) as f64 * p).round() as usize]
    }

    fn report(&self, what: &str) -> String {
        let n = self.latencies.len();
        format!(
            "{what}: {n} requests answered in {:.1} s ({:.0} req/s), p50 {:.1} ms, p99 {:.1} ms, statuses {:?}, unanswered {}",
            self.elapsed.as_secs_f64(),
            n as f64 / self.elapsed.as_secs_f64().max(0.001),
            self.percentile(0.5).as_secs_f64() * 1000.0,
            self.percentile(0.99).as_secs_f64() * 1000.0,
            self.statuses,
            self.unanswered
        )
    }
}

/// One client of the load: its own links (so what it expects does not depend on the
/// others), every kind of write the API has, and searches.
struct Client {
    n: usize,
    base: String,
    token: String,
    site: String,
    data: PathBuf,
    http: reqwest::Client,
    rng: Rng,
    acked: Acked,
    stats: Stats,
    /// Links this client added and did not try to remove.
    live: Vec<i64>,
    /// A request got no answer (the server was killed): the client stops.
    cut_off: bool,
    /// Which load run this is: every URL, note and tag of the run carries it, so runs
    /// against the same library (the kill rounds) never touch each other's links.
    round: u64,
    /// The tag tree this client tags into now (`c{n}/g{generation}/…`); moves on at
    /// every rename attempt.
    generation: u64,
}

/// How a load run is shaped.
#[derive(Clone, Copy)]
struct Shape {
    clients: usize,
    ops: usize,
    /// Links per import file (one client in `importers_every` imports one, as its
    /// operation number `import_at`).
    import_links: usize,
    importers_every: usize,
    import_at: usize,
    /// Whether clients also run `linksnap tag` through the server (a bulk retag).
    cli: bool,
}

impl Client {
    async fn send(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        json_body: bool,
    ) -> Option<(u16, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(60));
        if let Some(b) = body {
            if json_body {
                req = req.header("content-type", "application/json");
            }
            req = req.body(b);
        }
        let start = Instant::now();
        match req.send().await {
            Ok(res) => {
                let status = res.status().as_u16();
                let bytes = res.bytes().await.ok()?;
                self.stats.latencies.push(start.elapsed());
                *self.stats.statuses.entry(status).or_default() += 1;
                Some((
                    status,
                    serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                ))
            }
            Err(_) => {
                self.stats.unanswered += 1;
                self.cut_off = true;
                None
            }
        }
    }

    async fn json(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Option<(u16, Value)> {
        self.send(method, path, Some(body.to_string().into_bytes()), true)
            .await
    }

    fn pick(&mut self) -> Option<i64> {
        if self.live.is_empty() {
            return None;
        }
        let i = self.rng.below(self.live.len() as u64) as usize;
        Some(self.live[i])
    }

    async fn step(&mut self, i: usize, shape: Shape) {
        use reqwest::Method;
        let c = self.n;
        if i == shape.import_at && c.is_multiple_of(shape.importers_every) && shape.import_links > 0
        {
            let marker = format!("import{c}x{}", self.rng.below(1 << 30));
            let file: String = (0..shape.import_links)
                .map(|k| format!("{}/plain?imp={marker}&k={k}\n", self.site))
                .collect();
            self.acked.imports_tried.push(marker.clone());
            let path = "/api/v1/import?format=urls".to_owned();
            if let Some((s, _)) = self
                .send(Method::POST, &path, Some(file.into_bytes()), false)
                .await
                && s == 200
            {
                // Tag them all, then: one retag over the whole import, through the API.
                self.acked.imports.push(marker);
            }
            return;
        }
        match self.rng.below(100) {
            0..30 => {
                let url = format!("{}/plain?r={}&c={c}&i={i}", self.site, self.round);
                let body = json!({"url": url, "tags": [format!("c{c}")]});
                if let Some((s, v)) = self.json(Method::POST, "/api/v1/links", body).await
                    && (200..300).contains(&s)
                {
                    let id = v["id"].as_i64().unwrap();
                    self.acked.added.insert(url, id);
                    self.live.push(id);
                }
            }
            30..42 => {
                let Some(id) = self.pick() else { return };
                let tag = format!(
                    "r{}c{c}/g{}/t{}",
                    self.round,
                    self.generation,
                    self.rng.below(5)
                );
                let body = json!({"add_tags": [tag]});
                if let Some((s, _)) = self
                    .json(Method::PATCH, &format!("/api/v1/links/{id}"), body)
                    .await
                    && (200..300).contains(&s)
                {
                    self.acked.tags.entry(id).or_default().insert(tag);
                }
            }
            42..56 => {
                let Some(id) = self.pick() else { return };
                let note = format!("note{}x{c}n{i} seq {i}", self.round);
                let body = json!({"note": note});
                if let Some((s, _)) = self
                    .json(Method::PATCH, &format!("/api/v1/links/{id}"), body)
                    .await
                    && (200..300).contains(&s)
                {
                    let e = self.acked.notes.entry(id).or_default();
                    *e = (*e).max(i as u64);
                }
            }
            56..62 => {
                let Some(id) = self.pick() else { return };
                self.live.retain(|l| *l != id);
                self.acked.delete_tried.insert(id);
                if let Some((s, _)) = self
                    .send(Method::DELETE, &format!("/api/v1/links/{id}"), None, false)
                    .await
                    && (200..300).contains(&s)
                {
                    self.acked.deleted.insert(id);
                }
            }
            62..68 => {
                // Rename this client's current tag tree (all its links at once) to a fresh
                // name; the old name is never used again, so afterwards no link may be
                // under it unless the rename did not happen at all.
                let from = format!("r{}c{c}/g{}", self.round, self.generation);
                let to = format!("r{}c{c}/r{i}", self.round);
                self.generation += 1;
                self.acked.renames_tried.push((from.clone(), to.clone()));
                let body = json!({"from": from, "to": to});
                if let Some((s, _)) = self.json(Method::POST, "/api/v1/tags/rename", body).await
                    && (200..300).contains(&s)
                {
                    self.acked.renames.push((from.clone(), to.clone()));
                    // The tags acknowledged under the old name now carry the new one.
                    for tags in self.acked.tags.values_mut() {
                        let moved: Vec<String> = tags
                            .iter()
                            .filter(|t| t.starts_with(&format!("{from}/")))
                            .cloned()
                            .collect();
                        for t in moved {
                            tags.remove(&t);
                            tags.insert(t.replacen(&from, &to, 1));
                        }
                    }
                }
            }
            68..74 => {
                let Some(id) = self.pick() else { return };
                if let Some((s, v)) = self
                    .send(
                        Method::POST,
                        &format!("/api/v1/links/{id}/shares"),
                        None,
                        false,
                    )
                    .await
                    && s == 201
                {
                    self.acked.shares.push((id, v["id"].as_i64().unwrap()));
                }
            }
            74..78 if shape.cli => {
                // A bulk retag through the CLI, which the server runs (its private socket).
                let ids: Vec<String> = self.live.iter().take(20).map(i64::to_string).collect();
                if ids.is_empty() {
                    return;
                }
                let tag = format!("r{}c{c}/bulk", self.round);
                let data = self.data.clone();
                let mut args = vec![
                    "--data".to_owned(),
                    data.display().to_string(),
                    "tag".to_owned(),
                ];
                args.extend(ids.iter().cloned());
                args.push(format!("+{tag}"));
                let start = Instant::now();
                let out = tokio::task::spawn_blocking(move || {
                    let a: Vec<&str> = args.iter().map(String::as_str).collect();
                    linksnap(&a)
                })
                .await
                .unwrap();
                self.stats.latencies.push(start.elapsed());
                // Exit 0, or 6 for a fault (never a plain failure).
                let status = match out.code {
                    0 => 200,
                    6 => 503,
                    _ => 599,
                };
                *self.stats.statuses.entry(status).or_default() += 1;
                if out.code == 0 {
                    for id in &ids {
                        let id: i64 = id.parse().unwrap();
                        self.acked.tags.entry(id).or_default().insert(tag.clone());
                    }
                } else if out.code != 6 && !out.stderr.contains("connect") {
                    eprintln!("cli tag failed ({}): {}", out.code, out.stderr);
                }
            }
            _ => {
                let q = format!("note{}x{c}n{}", self.round, self.rng.below(i as u64 + 1));
                self.send(Method::GET, &format!("/api/v1/search?q={q}"), None, false)
                    .await;
            }
        }
    }
}

/// Runs `shape` against the server at `base` (until `until`, if given: the clients stop
/// starting operations then). Returns what was acknowledged and the statistics.
fn run_load(
    base: &str,
    token: &str,
    site: &FixtureServer,
    data: &Path,
    shape: Shape,
    seed: u64,
    until: Option<Instant>,
) -> (Vec<Acked>, Stats) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    let results = rt.block_on(async {
        let mut tasks = Vec::new();
        for n in 0..shape.clients {
            let mut client = Client {
                n,
                base: base.to_owned(),
                token: token.to_owned(),
                site: site.url("").trim_end_matches('/').to_owned(),
                data: data.to_owned(),
                http: reqwest::Client::builder().no_proxy().build().unwrap(),
                rng: Rng(seed.wrapping_mul(31).wrapping_add(n as u64 * 7919 + 1)),
                acked: Acked::default(),
                stats: Stats::default(),
                live: Vec::new(),
                cut_off: false,
                round: seed,
                generation: 0,
            };
            tasks.push(tokio::spawn(async move {
                for i in 0..shape.ops {
                    if client.cut_off || until.is_some_and(|u| Instant::now() >= u) {
                        break;
                    }
                    client.step(i, shape).await;
                }
                (client.acked, client.stats)
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let mut stats = Stats::default();
    let mut acked = Vec::new();
    for (a, s) in results {
        acked.push(a);
        stats.merge(s);
    }
    stats.elapsed = start.elapsed();
    (acked, stats)
}

/// Every link of the library, by id (through the API, paging).
fn all_links(s: &Serve, token: &str) -> HashMap<i64, Value> {
    let mut out = HashMap::new();
    let mut offset = 0;
    loop {
        let a = http(
            "GET",
            &s.url(&format!("/api/v1/links?limit=1000&offset={offset}")),
            Some(token),
            None,
        );
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        let page = a.json();
        let items = page["links"]
            .as_array()
            .or(page.as_array())
            .unwrap()
            .clone();
        if items.is_empty() {
            return out;
        }
        offset += items.len();
        for l in items {
            out.insert(l["id"].as_i64().unwrap(), l);
        }
    }
}

/// Checks everything the clients were told was done is there, and nothing is
/// half-applied.
fn check_acknowledged(s: &Serve, token: &str, acked: &[Acked], import_links: usize) {
    let links = all_links(s, token);
    let by_url: HashMap<&str, &Value> = links
        .values()
        .map(|l| (l["url"].as_str().unwrap(), l))
        .collect();
    let tags_of = |l: &Value| -> HashSet<String> {
        l["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect()
    };
    for a in acked {
        // Links are found by URL: an id the client saw may since belong to another link
        // (SQLite hands out the highest id again once its row is gone).
        let url_of: HashMap<i64, &str> = a.added.iter().map(|(u, id)| (*id, u.as_str())).collect();
        let link = |id: &i64| by_url.get(url_of[id]).copied();
        for (url, id) in &a.added {
            if a.delete_tried.contains(id) {
                continue;
            }
            let l = by_url
                .get(url.as_str())
                .unwrap_or_else(|| panic!("acknowledged add of {url} (id {id}) is missing"));
            assert_eq!(l["id"].as_i64(), Some(*id), "{url}");
        }
        for id in &a.deleted {
            assert!(
                link(id).is_none(),
                "acknowledged removal of {id} ({}) undone",
                url_of[id]
            );
        }
        for (id, seq) in &a.notes {
            let Some(l) = link(id) else {
                assert!(a.delete_tried.contains(id), "link {id} vanished");
                continue;
            };
            let note = l["note"].as_str().unwrap();
            let got: u64 = note
                .rsplit(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("link {id}: note `{note}` lost (acked seq {seq})"));
            assert!(
                got >= *seq,
                "link {id}: note {got} older than acknowledged {seq}"
            );
        }
        for (id, want) in &a.tags {
            let Some(l) = link(id) else { continue };
            let have = tags_of(l);
            for t in want {
                // A later rename (acknowledged or cut off by a kill) may have moved it.
                let renamed = a.renames_tried.iter().any(|(from, to)| {
                    t.starts_with(&format!("{from}/")) || t.starts_with(&format!("{to}/"))
                });
                assert!(
                    have.contains(t) || renamed,
                    "link {id}: acknowledged tag {t} missing (has {have:?})"
                );
            }
        }
        // An import is all or nothing.
        for marker in &a.imports_tried {
            let n = links
                .values()
                .filter(|l| {
                    l["url"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("imp={marker}&"))
                })
                .count();
            assert!(
                n == 0 || n == import_links,
                "import {marker} half-applied: {n} of {import_links} links"
            );
            if a.imports.contains(marker) {
                assert_eq!(n, import_links, "acknowledged import {marker} is missing");
            }
        }
        // A rename moves every link at once: never some under each name.
        for (from, to) in &a.renames_tried {
            let under = |name: &str| {
                let prefix = format!("{name}/");
                links
                    .values()
                    .filter(|l| tags_of(l).iter().any(|t| t.starts_with(&prefix)))
                    .count()
            };
            let (old, new) = (under(from), under(to));
            assert!(
                old == 0 || new == 0,
                "rename {from} → {to} half-applied: {old} links under the old name, {new} under the new"
            );
        }
        for (link, share) in &a.shares {
            if a.delete_tried.contains(link) {
                continue;
            }
            let l = http(
                "GET",
                &s.url(&format!("/api/v1/links/{link}/shares")),
                Some(token),
                None,
            );
            assert_eq!(l.status, 200);
            assert!(
                l.json()
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x["id"].as_i64() == Some(*share)),
                "acknowledged share {share} of link {link} missing"
            );
        }
    }
}

/// Waits until no link is queued or capturing (the workers drained the queue).
fn wait_drained(s: &Serve, token: &str, limit: Duration) {
    let start = Instant::now();
    loop {
        let links = all_links(s, token);
        let busy: Vec<_> = links
            .values()
            .filter(|l| matches!(l["status"].as_str(), Some("queued" | "capturing")))
            .map(|l| (l["id"].clone(), l["status"].clone()))
            .collect();
        if busy.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{} links still queued or capturing after {limit:?}: {:?}\n{}",
            busy.len(),
            &busy[..busy.len().min(10)],
            s.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `linksnap fsck` (through the server when one runs): exit 0, and what it printed.
fn fsck_clean(dir: &Path) {
    let run = linksnap(&["--data", dir.to_str().unwrap(), "fsck"]);
    assert_eq!(run.code, 0, "fsck: {}{}", run.stdout_str(), run.stderr);
    assert!(
        run.stderr
            .contains("search index agrees with the database; 0 stranded links"),
        "{}",
        run.stderr
    );
}

/// `GET /api/v1/links/{id}` as JSON.
pub(crate) fn link_json(s: &Serve, tok: &str, id: i64) -> Value {
    http(
        "GET",
        &s.url(&format!("/api/v1/links/{id}")),
        Some(tok),
        None,
    )
    .json()
}

/// `POST /api/v1/links` with `body`.
pub(crate) fn post_link(s: &Serve, tok: &str, body: Value) -> crate::serve::Answer {
    http("POST", &s.url("/api/v1/links"), Some(tok), Some(body))
}

/// A fixture site, a fresh data directory `temp_dir(name)`, a server on it with `workers`
/// capture workers and no rate limit, and a token.
fn rig(name: &str, workers: &str) -> (FixtureServer, PathBuf, Serve, String) {
    let site = FixtureServer::start();
    let dir = temp_dir(name);
    let s = Serve::start(&dir, &["--workers", workers, "--rate-limit", "off"]);
    let tok = token(&dir, name);
    (site, dir, s, tok)
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("linksnap-faults-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn kill(pid: i32, sig: i32) {
    // SAFETY: signalling a child of this test.
    unsafe { libc::kill(pid, sig) };
}

#[test]
fn forty_adds_eight_at_a_time_while_capturing_all_succeed_and_none_is_stranded() {
    // The reproduction from the issue: 19 of 40 answered 500 and 6 links stayed
    // `capturing` for good.
    let (site, dir, s, tok) = rig("forty", "2");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    let answers: Vec<(u16, Duration)> = rt.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let sem = Arc::new(tokio::sync::Semaphore::new(8));
        let mut tasks = Vec::new();
        for i in 0..40 {
            let (client, sem, url, tok) = (
                client.clone(),
                sem.clone(),
                s.url("/api/v1/links"),
                tok.clone(),
            );
            let page = site.url(&format!("/page-with?i={i}"));
            tasks.push(tokio::spawn(async move {
                let _p = sem.acquire().await.unwrap();
                let sent = Instant::now();
                let status = client
                    .post(url)
                    .bearer_auth(tok)
                    .header("content-type", "application/json")
                    .body(json!({"url": page}).to_string())
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                (status, sent.elapsed())
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let mut stats = Stats {
        elapsed: start.elapsed(),
        ..Stats::default()
    };
    for (status, took) in &answers {
        stats.latencies.push(*took);
        *stats.statuses.entry(*status).or_default() += 1;
    }
    // The figure BENCHMARKS.md reports (bench/writes.sh); not asserted.
    eprintln!("{}", stats.report("40 adds, 8 at a time, while capturing"));
    assert_eq!(
        stats.statuses.get(&202),
        Some(&40),
        "{}\n{}",
        stats.report("adds"),
        s.log()
    );
    wait_drained(&s, &tok, Duration::from_secs(60));
    let links = all_links(&s, &tok);
    assert_eq!(links.len(), 40);
    assert!(
        links.values().all(|l| l["status"] == "ok"),
        "{:?}",
        links.values().map(|l| &l["status"]).collect::<Vec<_>>()
    );
    fsck_clean(&dir);
    assert!(!s.log().contains("database is locked"), "{}", s.log());
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sixteen_concurrent_writers_lose_nothing_and_never_see_a_server_error() {
    let (site, dir, s, tok) = rig("writers", "2");
    let shape = Shape {
        clients: 16,
        ops: 200,
        import_links: 500,
        importers_every: 16,
        import_at: 100,
        cli: true,
    };
    let (acked, stats) = run_load(&s.url(""), &tok, &site, &dir, shape, 17, None);
    // The figure BENCHMARKS.md reports (bench/writes.sh); not asserted.
    eprintln!("{}", stats.report("concurrent writers"));
    assert_eq!(
        stats.server_errors(),
        0,
        "{}\n{}",
        stats.report("load"),
        s.log()
    );
    assert_eq!(stats.unanswered, 0);
    wait_drained(&s, &tok, Duration::from_secs(180));
    check_acknowledged(&s, &tok, &acked, shape.import_links);
    let imported: usize = acked.iter().map(|a| a.imports.len()).sum();
    assert_eq!(imported, 1, "the import acknowledged");
    fsck_clean(&dir);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kill_9_at_twenty_random_moments_loses_nothing_acknowledged() {
    let site = FixtureServer::start();
    let dir = temp_dir("kill9");
    let tok = token(&dir, "load");
    let shape = Shape {
        clients: 8,
        ops: 400,
        import_links: 50,
        importers_every: 4,
        import_at: 3,
        cli: false,
    };
    let mut rng = Rng(0x5eed_0017);
    let mut all = Vec::new();
    let mut stats = Stats::default();
    for round in 0..20 {
        let s = Serve::start(&dir, &["--workers", "2", "--rate-limit", "off"]);
        let pid = s.pid();
        let delay = Duration::from_millis(300 + rng.below(1200));
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            kill(pid, libc::SIGKILL);
        });
        // The load runs until the kill cuts it off (and stops starting operations soon
        // after, so a round never outlives its server by long).
        let until = Instant::now() + delay + Duration::from_millis(500);
        let (acked, st) = run_load(&s.url(""), &tok, &site, &dir, shape, round, Some(until));
        killer.join().unwrap();
        all.extend(acked);
        stats.elapsed += st.elapsed;
        stats.merge(st);
        drop(s);
    }
    eprintln!("{}", stats.report("kill -9 rounds"));
    let count = |f: fn(&Acked) -> usize| all.iter().map(f).sum::<usize>();
    eprintln!(
        "imports acknowledged {} of {} tried; renames {} of {}; removals {} of {}",
        count(|a| a.imports.len()),
        count(|a| a.imports_tried.len()),
        count(|a| a.renames.len()),
        count(|a| a.renames_tried.len()),
        count(|a| a.deleted.len()),
        count(|a| a.delete_tried.len()),
    );
    assert!(stats.unanswered > 0, "the kills cut requests off");
    assert_eq!(stats.server_errors(), 0, "{}", stats.report("kill rounds"));
    let s = Serve::start(&dir, &["--workers", "2", "--rate-limit", "off"]);
    wait_drained(&s, &tok, Duration::from_secs(240));
    check_acknowledged(&s, &tok, &all, shape.import_links);
    // The index agrees with the database: every acknowledged note is found.
    for a in all.iter().take(4) {
        for (id, seq) in a.notes.iter().take(5) {
            if a.delete_tried.contains(id) {
                continue;
            }
            let _ = seq;
            let l = link_json(&s, &tok, *id);
            let word = l["note"]
                .as_str()
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_owned();
            let hits = http(
                "GET",
                &s.url(&format!("/api/v1/search?q={word}")),
                Some(&tok),
                None,
            )
            .json();
            assert!(
                hits.as_array()
                    .unwrap()
                    .iter()
                    .any(|h| h["id"].as_i64() == Some(*id)),
                "link {id} not found by its note word {word}"
            );
        }
    }
    fsck_clean(&dir);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Lifts the mount on `dir` (lazily) and checks it is gone.
fn mount_gone(dir: &str) {
    assert!(
        Command::new("umount")
            .args(["-l", dir])
            .status()
            .unwrap()
            .success(),
        "umount {dir}"
    );
}

/// A tmpfs of `size` mounted on a fresh directory (root), unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(name: &str, size: &str) -> Self {
        let d = temp_dir(name);
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&d)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs needs root (the tests run as root)");
        Self(d)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fills the filesystem holding `dir` with a file until writing fails.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write as _;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 << 10];
    while f.write_all(&chunk).is_ok() {}
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
    path
}

#[test]
fn a_full_disk_is_answered_507_reads_go_on_and_everything_resumes_when_space_is_freed() {
    let site = FixtureServer::start();
    let fs = Tmpfs::mount("diskfull", "48m");
    let dir = fs.0.join("data");
    let s = Serve::start(&dir, &["--workers", "1", "--rate-limit", "off"]);
    let tok = token(&dir, "disk");
    let before = post_link(&s, &tok, json!({"url": site.url("/page-with?before=1")}));
    assert_eq!(before.status, 202);
    wait_drained(&s, &tok, Duration::from_secs(30));

    let filler = fill(&fs.0);
    // Writes: a clear 507, never a 500, never half-saved.
    let mut refused = 0;
    for i in 0..20 {
        let a = http(
            "POST",
            &s.url("/api/v1/links"),
            Some(&tok),
            Some(
                json!({"url": site.url(&format!("/random/200000?full={i}")), "note": "x".repeat(4000)}),
            ),
        );
        assert!(
            a.status == 202 || a.status == 507,
            "{} {}\n{}",
            a.status,
            String::from_utf8_lossy(&a.body),
            s.log()
        );
        if a.status == 507 {
            refused += 1;
            assert_eq!(a.json()["code"], "disk_full");
            assert!(a.headers.contains_key("retry-after"));
        }
    }
    assert!(
        refused > 0,
        "no write was refused on a full disk\n{}",
        s.log()
    );
    // The CLI through the server: exit 6, the message says why.
    let cli = linksnap(&[
        "--data",
        dir.to_str().unwrap(),
        "add",
        &site.url("/plain?cli-full=1"),
    ]);
    assert!(
        cli.code == 6 || cli.code == 0,
        "{} {}",
        cli.code,
        cli.stderr
    );
    if cli.code == 6 {
        assert!(cli.stderr.contains("disk"), "{}", cli.stderr);
    }
    // Reads go on.
    let list = http("GET", &s.url("/api/v1/links"), Some(&tok), None);
    assert_eq!(list.status, 200);
    assert_eq!(http("GET", &s.url("/healthz"), None, None).status, 200);
    assert!(
        s.log().contains("disk holding the library is full"),
        "{}",
        s.log()
    );

    // Space back: everything works again, captures queued meanwhile complete.
    std::fs::remove_file(&filler).unwrap();
    let after = post_link(&s, &tok, json!({"url": site.url("/page-with?after=1")}));
    assert_eq!(
        after.status,
        202,
        "{}",
        String::from_utf8_lossy(&after.body)
    );
    // Captures that failed to be recorded are retried (RELEASE_DELAY) and land.
    wait_drained(&s, &tok, Duration::from_secs(90));
    let links = all_links(&s, &tok);
    assert!(links.values().all(|l| l["status"] == "ok"), "{links:?}");
    fsck_clean(&dir);
    drop(s);
    // And the library opens cleanly afterwards.
    let run = linksnap(&["--data", dir.to_str().unwrap(), "fsck"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn a_read_only_data_directory_is_a_clear_error_and_captures_wait_until_it_is_writable() {
    let site = FixtureServer::start();
    let dir = temp_dir("readonly");
    let d = dir.to_str().unwrap().to_owned();
    let tok = token(&dir, "ro");
    // Root ignores file modes: a read-only bind mount over the directory.
    let mount = |args: &[&str]| {
        assert!(
            Command::new("mount").args(args).status().unwrap().success(),
            "mount {args:?}"
        );
    };
    // Lazily: the server may hold files open through the read-only mount.
    let read_only = |on: bool| {
        if on {
            mount(&["--bind", &d, &d]);
            mount(&["-o", "remount,ro,bind", &d]);
        } else {
            mount_gone(&d);
        }
    };
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            if std::thread::panicking() {
                let _ = Command::new("umount").args(["-l", &self.0]).status();
            }
        }
    }
    let _unmount = Unmount(d.clone());
    // Nothing can start on a read-only directory: exit 6, and the message says why.
    read_only(true);
    let ls = linksnap(&["--data", &d, "ls"]);
    read_only(false);
    assert_eq!(ls.code, 6, "{}", ls.stderr);
    assert!(ls.stderr.contains("Read-only file system"), "{}", ls.stderr);

    // Made read-only under a running server: the database's open files still take
    // writes, but nothing new can be created there (a capture's blobs): the capture is
    // not recorded, its link waits in the queue, and lands once the directory is writable.
    let s = Serve::start(&dir, &["--workers", "1", "--rate-limit", "off"]);
    read_only(true);
    let add = post_link(&s, &tok, json!({"url": site.url("/page-with?ro=1")}));
    let id = add.json()["id"].as_i64();
    // Wait for the capture's own failure (the add's search-index write may report the
    // read-only directory first).
    let logged = {
        let start = Instant::now();
        while !s.log().contains("queued again") && start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
        }
        s.log().contains("Read-only file system")
    };
    let during = http("GET", &s.url("/api/v1/links"), Some(&tok), None);
    read_only(false);
    assert!(add.status == 202 || add.status == 503, "{}", add.status);
    assert!(logged, "{}", s.log());
    assert_eq!(during.status, 200);
    assert!(s.log().contains("queued again"), "{}", s.log());
    if let Some(id) = id {
        wait_drained(&s, &tok, Duration::from_secs(30));
        let l = link_json(&s, &tok, id);
        assert_eq!(l["status"], "ok", "{l}");
    }
    fsck_clean(&dir);
}

#[test]
fn damaged_and_deleted_blobs_are_reported_and_a_recapture_repairs_them() {
    let (site, dir, s, tok) = rig("blobs", "1");
    let mut ids = Vec::new();
    for i in 0..2 {
        let a = post_link(
            &s,
            &tok,
            json!({"url": site.url(&format!("/random/{}", 3000 + i))}),
        );
        ids.push(a.json()["id"].as_i64().unwrap());
    }
    wait_drained(&s, &tok, Duration::from_secs(30));
    // Behind the server's back: one page blob corrupted, one deleted.
    let page_blob = |id: i64| -> PathBuf {
        let db = dir.join("linksnap.db");
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "python3 -c \"import sqlite3;print(sqlite3.connect('file:{}?mode=ro',uri=True).execute('select page_blob from snapshots where link_id={id}').fetchone()[0])\"",
                db.display()
            ))
            .output()
            .unwrap();
        let h = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert_eq!(h.len(), 64, "{h}");
        dir.join("blobs")
            .join(&h[..2])
            .join(&h[2..4])
            .join(format!("{h}.zst"))
    };
    let (damaged, deleted) = (page_blob(ids[0]), page_blob(ids[1]));
    std::fs::write(&damaged, b"not what was stored").unwrap();
    std::fs::remove_file(&deleted).unwrap();
    // The snapshot view says so (no crash, no 200 with garbage).
    let view = http(
        "GET",
        &s.url(&format!("/snapshots/{}/1", ids[0])),
        Some(&tok),
        None,
    );
    assert!(view.status >= 400, "{}", view.status);
    let run = linksnap(&["--data", dir.to_str().unwrap(), "fsck"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let out = run.stdout_str();
    assert!(out.contains("damaged") && out.contains("missing"), "{out}");
    wait_until("the damaged blob logged", || {
        s.log().contains("moved aside")
    });
    // Recovery: a recapture stores the content whole again.
    for id in &ids {
        let r = http(
            "POST",
            &s.url(&format!("/api/v1/links/{id}/recapture")),
            Some(&tok),
            None,
        );
        assert!(r.status < 300, "{}", r.status);
    }
    wait_drained(&s, &tok, Duration::from_secs(30));
    fsck_clean(&dir);
    assert_eq!(
        http(
            "GET",
            &s.url(&format!("/snapshots/{}/1", ids[0])),
            Some(&tok),
            None
        )
        .status,
        200
    );
}

#[test]
fn a_search_index_deleted_while_running_is_rebuilt_without_a_restart() {
    let (site, dir, s, tok) = rig("index", "1");
    let add = |note: &str| {
        post_link(
            &s,
            &tok,
            json!({"url": site.url(&format!("/plain?n={note}")), "note": note}),
        )
    };
    assert_eq!(add("aardvark").status, 202);
    std::fs::remove_dir_all(dir.join("index")).unwrap();
    let log = s.log();
    let _ = &log;
    // The next changes fail to reach the index; they are still saved and acknowledged.
    assert_eq!(add("bandicoot").status, 202);
    assert_eq!(add("capybara").status, 202);
    let found = |w: &str| {
        http(
            "GET",
            &s.url(&format!("/api/v1/search?q={w}")),
            Some(&tok),
            None,
        )
        .json()
        .as_array()
        .map_or(0, Vec::len)
    };
    wait_until("the index rebuilt and searchable", || {
        found("aardvark") == 1 && found("bandicoot") == 1 && found("capybara") == 1
    });
    assert!(dir.join("index/meta.json").is_file());
    assert!(s.log().contains("search index"), "{}", s.log());
    wait_drained(&s, &tok, Duration::from_secs(30));
    fsck_clean(&dir);
}

#[test]
fn a_capture_that_hangs_past_its_deadline_fails_clearly_and_the_worker_goes_on() {
    let site = FixtureServer::start();
    let dir = temp_dir("hang");
    let s = Serve::start(
        &dir,
        &["--workers", "1", "--rate-limit", "off", "--timeout", "2"],
    );
    let tok = token(&dir, "hang");
    let hang = post_link(&s, &tok, json!({"url": site.url("/drip")})).json()["id"]
        .as_i64()
        .unwrap();
    let next = post_link(&s, &tok, json!({"url": site.url("/plain?after-hang=1")})).json()["id"]
        .as_i64()
        .unwrap();
    wait_until("the next link captured by the same worker", || {
        link_json(&s, &tok, next)["status"] == "ok"
    });
    let l = link_json(&s, &tok, hang);
    // Timed out: queued again with the reason (a transient failure is retried later).
    assert_eq!(l["status"], "queued", "{l}");
    assert!(l["failure"].as_str().unwrap().contains("time"), "{l}");
    fsck_clean(&dir);
}

#[test]
fn a_server_stopped_for_thirty_seconds_answers_every_waiting_client_when_continued() {
    let (site, dir, s, tok) = rig("sigstop", "1");
    // A connection open before the stop, idle through it, is still usable after.
    let pid = s.pid();
    kill(pid, libc::SIGSTOP);
    let stopped = Instant::now();
    let waiting: Vec<_> = (0..6)
        .map(|i| {
            let (url, tok, page) = (
                s.url("/api/v1/links"),
                tok.clone(),
                site.url(&format!("/plain?stopped={i}")),
            );
            std::thread::spawn(move || http("POST", &url, Some(&tok), Some(json!({"url": page}))))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(30));
    kill(pid, libc::SIGCONT);
    for w in waiting {
        let a = w.join().unwrap();
        assert_eq!(
            a.status,
            202,
            "{}\n{}",
            String::from_utf8_lossy(&a.body),
            s.log()
        );
    }
    assert!(stopped.elapsed() >= Duration::from_secs(30));
    wait_drained(&s, &tok, Duration::from_secs(30));
    assert_eq!(all_links(&s, &tok).len(), 6);
    fsck_clean(&dir);
}

#[test]
fn the_add_form_saves_the_good_lines_and_lists_the_bad_ones_with_their_text() {
    use crate::readcache::{csrf_field, request, sign_in};
    let site = FixtureServer::start();
    let dir = temp_dir("addform");
    let d = dir.to_str().unwrap();
    let run = crate::support::linksnap_stdin(
        &["--data", d, "user", "add", "ada", "--password-stdin"],
        b"correct horse",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let s = Serve::start(&dir, &["--workers", "0", "--rate-limit", "off"]);
    let cookie = format!("linksnap_session={}", sign_in(&s, "ada", "correct%20horse"));
    let list = request("GET", &s.url("/"), &[("cookie", &cookie)], None);
    let csrf = csrf_field(&String::from_utf8_lossy(&list.body));
    let long = format!("https://a.test/{}", "x".repeat(9000));
    let lines = [
        site.url("/plain?good=1"),
        "ht!tp://nope".to_owned(),
        site.url("/plain?good=2"),
        long.clone(),
    ]
    .join("\n");
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", &csrf)
        .append_pair("urls", &lines)
        .append_pair("tags", "batch")
        .finish();
    let a = request(
        "POST",
        &s.url("/links"),
        &[("cookie", &cookie)],
        Some(&body),
    );
    let html = String::from_utf8_lossy(&a.body).into_owned();
    assert_eq!(a.status, 422, "{html}");
    // The bad lines, with their reasons, next to the form, and back in it to fix.
    assert!(html.contains("id=\"add-problems\""), "{html}");
    assert!(
        html.contains("<span id=\"add-saved-count\">2</span>"),
        "{html}"
    );
    assert!(html.contains("ht!tp://nope</code> — invalid URL"), "{html}");
    assert!(
        html.contains("over the limit of 8192 bytes (max_url_bytes)"),
        "{html}"
    );
    let textarea = html.split("id=\"add-urls\"").nth(1).unwrap();
    let textarea = &textarea[..textarea.find("</textarea>").unwrap()];
    assert!(textarea.contains("ht!tp://nope") && textarea.contains(&long[..40]));
    assert!(
        !textarea.contains("good=1"),
        "saved lines are not asked again"
    );
    // The good lines were saved, with the tag.
    let tok = token(&dir, "form");
    let links = all_links(&s, &tok);
    let mut urls: Vec<&str> = links.values().map(|l| l["url"].as_str().unwrap()).collect();
    urls.sort_unstable();
    assert_eq!(urls, [site.url("/plain?good=1"), site.url("/plain?good=2")]);
    assert!(links.values().all(|l| l["tags"] == json!(["batch"])));

    // The same limits at the other ways in: the API (400/422 naming the problem), the CLI
    // (exit 2), an import (the line skipped with its reason).
    let api = post_link(&s, &tok, json!({"url": long}));
    assert_eq!(api.status, 422);
    assert!(
        api.json()["message"]
            .as_str()
            .unwrap()
            .contains("max_url_bytes")
    );
    let api = post_link(&s, &tok, json!({"url": "ht!tp://nope"}));
    assert_eq!(api.status, 422);
    let cli = linksnap(&["--data", d, "add", "ht!tp://nope"]);
    assert_eq!(cli.code, 2, "{}", cli.stderr);
    assert!(cli.stderr.contains("not a URL"), "{}", cli.stderr);
    let cli = linksnap(&["--data", d, "add", &long]);
    assert_eq!(cli.code, 2, "{}", cli.stderr);
    let imported = crate::support::linksnap_stdin(
        &[
            "--data",
            d,
            "import",
            "-",
            "--format",
            "urls",
            "--no-capture",
        ],
        format!("{long}\nhttps://a.test/fine\n").as_bytes(),
    );
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    let out = format!("{}{}", imported.stdout_str(), imported.stderr);
    assert!(out.contains("max_url_bytes"), "{out}");
    assert_eq!(all_links(&s, &tok).len(), 3);
}
