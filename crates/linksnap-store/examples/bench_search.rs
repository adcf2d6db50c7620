//! Search latency over a large library. Used by `bench/library.sh`; see BENCHMARKS.md.
//!
//! `bench_search DATA_DIR CORPUS_DIR [DOCS]`: builds a library of DOCS links (default
//! 100,000) whose readable text is the 130 real articles of CORPUS_DIR/readability, each
//! document made distinct with its own words, then times `Library::search` (index and
//! database) for a mix of queries and prints p50, p90, p99 and max.

use std::path::Path;
use std::time::Instant;

use linksnap_store::import::ImportItem;
use linksnap_store::search::{SearchDoc, SearchIndex};
use linksnap_store::{Filter, Library, TagExpr};

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (data, corpus) = (Path::new(&args[1]), Path::new(&args[2]));
    let docs: usize = args
        .get(3)
        .map_or(100_000, |n| n.parse().unwrap_or(100_000));
    let mut texts = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(corpus.join("readability"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    names.sort();
    for dir in names {
        if let Ok(html) = std::fs::read_to_string(dir.join("expected.html")) {
            texts.push(strip_tags(&html));
        }
    }
    let words = [
        "archive", "snapshot", "reading", "research", "journal", "law", "rust", "network",
        "socket", "design",
    ];

    let started = Instant::now();
    let built = data.join("linksnap.db").exists();
    if !built {
        let library = Library::open(data).await?;
        let mut import = library.begin_import(false).await?;
        for chunk in (0..docs).collect::<Vec<_>>().chunks(1000) {
            let items = chunk
                .iter()
                .map(|i| ImportItem {
                    url: format!("https://site{}.test/article/{i}", i % 500),
                    title: Some(format!(
                        "Article {i} about {} and {}",
                        words[i % 10],
                        words[(i / 10) % 10]
                    )),
                    tags: vec![format!("topic/{}", words[i % 10])],
                    ..ImportItem::default()
                })
                .collect();
            import.add(items).await?;
        }
        import.commit().await?;
    }
    let imported = started.elapsed();
    if !built {
        // The readable text goes straight into the index, as captures would put it there.
        let index = SearchIndex::open(&data.join("index"))?;
        for i in 0..docs {
            let t = &texts[i % texts.len()];
            index.upsert(&SearchDoc {
                link_id: i as i64 + 1,
                title: format!(
                    "Article {i} about {} and {}",
                    words[i % 10],
                    words[(i / 10) % 10]
                ),
                url: format!("https://site{}.test/article/{i}", i % 500),
                note: String::new(),
                tags: vec![format!("topic/{}", words[i % 10])],
                text: format!("{t} uniqueword{i} variant{}", i % 97),
                tag_keys: vec![format!("topic/{}", words[i % 10])],
                host: format!("site{}.test", i % 500),
                created_at: 1_600_000_000_000 + i as i64,
                favourite: false,
                unread: true,
            })?;
        }
        index.commit(i64::MAX / 2)?;
    }
    let indexed = started.elapsed();
    let library = Library::open(data).await?;
    let queries: Vec<(&str, Filter)> = vec![
        ("browser", Filter::default()),
        ("mozilla firefox", Filter::default()),
        ("\"open source\"", Filter::default()),
        ("人工智能", Filter::default()),
        ("谷歌", Filter::default()),
        ("uniqueword77777", Filter::default()),
        ("variant42 snapshot", Filter::default()),
        ("the", Filter::default()),
        ("research OR journal", Filter::default()),
        ("running", Filter::default()),
        (
            "browser",
            Filter {
                tags: vec![TagExpr::parse("topic/rust")?],
                ..Filter::default()
            },
        ),
        (
            "browser",
            Filter {
                tags: vec![TagExpr::parse("topic/rust OR topic/law OR topic/design")?],
                ..Filter::default()
            },
        ),
        (
            "browser",
            Filter {
                tags: vec![TagExpr::parse("NOT topic/rust")?],
                ..Filter::default()
            },
        ),
        (
            "science",
            Filter {
                domain: Some("site7.test".into()),
                ..Filter::default()
            },
        ),
        (
            "the",
            Filter {
                tags: vec![TagExpr::parse("topic/rust")?],
                ..Filter::default()
            },
        ),
        (
            "article",
            Filter {
                domain: Some("site7.test".into()),
                ..Filter::default()
            },
        ),
    ];
    for (q, f) in &queries {
        library.search(q, f, 20).await?;
    }
    let mut lat = Vec::new();
    let mut per_query = Vec::new();
    for (q, f) in &queries {
        let mut mine = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let hits = library.search(q, f, 20).await?;
            let d = t.elapsed().as_secs_f64() * 1000.0;
            std::hint::black_box(hits);
            mine.push(d);
            lat.push(d);
        }
        mine.sort_by(f64::total_cmp);
        let mut one = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            std::hint::black_box(library.search(q, f, 1).await?);
            one.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        one.sort_by(f64::total_cmp);
        per_query.push((
            q.to_string(),
            library.search(q, f, 20).await?.len(),
            f.tags
                .iter()
                .map(|t| format!("tag {t}"))
                .chain(f.domain.iter().map(|d| format!("domain {d}")))
                .collect::<Vec<_>>()
                .join(", "),
            mine[mine.len() / 2],
            one[2],
        ));
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "documents: {docs}; import {:.1} s; indexing text {:.1} s",
        imported.as_secs_f64(),
        (indexed - imported).as_secs_f64()
    );
    println!(
        "searches: {} ({} queries × 20, after a warm-up), limit 20",
        lat.len(),
        queries.len()
    );
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        lat[lat.len() - 1]
    );
    for (q, hits, filters, median, one) in per_query {
        println!(
            "  {median:7.2} ms median ({one:6.2} ms with limit 1)  {hits:>2} hits  {q}{}",
            if filters.is_empty() {
                String::new()
            } else {
                format!("  + {filters}")
            }
        );
    }
    Ok(())
}
