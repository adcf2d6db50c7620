//! Read caches for the busiest read routes (the list of links, search, the list page).
//!
//! An entry remembers the library's generation read *before* the reads that produced it
//! (see `Library::generation`: it moves after every landed commit and every search-index
//! reload). It answers only while the library is still at that generation, so a write is
//! visible to the next request, whoever made it, and nothing has to be invalidated by
//! hand. Entries are weighed in bytes; the whole cache is bounded by `--read-cache`, and
//! an entry heavier than that is never kept.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use linksnap_store::Library;

/// What a response says about the cache (`x-linksnap-cache`).
pub const CACHE_HEADER: &str = "x-linksnap-cache";

/// Whether a value came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Hit,
    Miss,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
        }
    }
}

/// What the caches hold.
#[derive(Clone)]
pub enum Cached {
    /// A JSON body (`GET /api/v1/links`, `GET /api/v1/search`).
    Json(bytes::Bytes),
    /// Data a page shows of the library (the list page's: rendered per request, since the
    /// page also carries the viewer's name, language and CSRF token). Its type is the
    /// page's own (see the page's `Cacheable` impl); the cache only keeps it.
    Page(Arc<dyn std::any::Any + Send + Sync>),
}

impl std::fmt::Debug for Cached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Json(b) => f.debug_tuple("Json").field(&b.len()).finish(),
            Self::Page(_) => f.write_str("Page"),
        }
    }
}

/// A kind of value the cache holds.
pub trait Cacheable: Clone + Sized {
    fn wrap(self) -> Cached;
    fn unwrap(c: Cached) -> Option<Self>;
    /// What it costs, roughly, in bytes.
    fn weight(&self) -> usize;
}

impl Cacheable for bytes::Bytes {
    fn wrap(self) -> Cached {
        Cached::Json(self)
    }
    fn unwrap(c: Cached) -> Option<Self> {
        match c {
            Cached::Json(b) => Some(b),
            Cached::Page(_) => None,
        }
    }
    fn weight(&self) -> usize {
        self.len()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    library: u64,
    route: &'static str,
    /// The raw query string: two spellings of one query are two entries, which costs
    /// memory, never correctness.
    query: Box<str>,
}

#[derive(Debug, Clone)]
struct Entry {
    generation: u64,
    weight: usize,
    value: Cached,
}

/// A request's place in the line of those computing one key; leaves the line when dropped
/// (also when the request is, mid-way).
struct Turn<'a> {
    cache: &'a ReadCache,
    key: Key,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut computing = self.cache.computing();
        // The map's and ours: nobody else is in line.
        if Arc::strong_count(&self.lock) == 2 {
            computing.remove(&self.key);
        }
    }
}

/// Values per library, route and query string.
pub struct ReadCache {
    /// `None`: caching is off (`--read-cache 0`).
    entries: Option<moka::sync::Cache<Key, Entry>>,
    capacity: u64,
    /// One computation per key at a time: requests that miss together wait for the first
    /// one's answer instead of all asking the database (after a write, every reader of a
    /// busy page misses at once).
    computing: std::sync::Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ReadCache {
    /// A cache of at most `capacity` bytes (0: off).
    pub fn new(capacity: u64) -> Self {
        Self {
            entries: (capacity > 0).then(|| {
                moka::sync::Cache::builder()
                    .max_capacity(capacity)
                    .weigher(|_: &Key, e: &Entry| u32::try_from(e.weight).unwrap_or(u32::MAX))
                    // Least recently used goes first; no admission filter, so the answer
                    // after a change is kept even when the cache is full of older ones.
                    .eviction_policy(moka::policy::EvictionPolicy::lru())
                    .build()
            }),
            capacity,
            computing: std::sync::Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The value for `library`, `route` and `query`: remembered, when the library has not
    /// changed since it was computed; else computed by `compute` (and remembered if it
    /// fits: an entry weighs its value and its key's query string).
    ///
    /// # Errors
    /// `compute`'s.
    pub async fn get_or_compute<V, E, F, Fut>(
        &self,
        library: &Library,
        route: &'static str,
        query: &str,
        compute: F,
    ) -> Result<(V, Outcome), E>
    where
        V: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        // Before any read: a commit landing from here on moves it past what is remembered.
        let generation = library.generation();
        let key = Key {
            library: library.id(),
            route,
            query: query.into(),
        };
        if let Some(v) = self.lookup(&key, generation) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok((v, Outcome::Hit));
        }
        let Some(entries) = &self.entries else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return Ok((compute().await?, Outcome::Miss));
        };
        let turn = Turn {
            lock: self.computing().entry(key.clone()).or_default().clone(),
            cache: self,
            key,
        };
        let _mine = turn.lock.lock().await;
        // Computed by the request this one waited for?
        if let Some(v) = self.lookup(&turn.key, generation) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok((v, Outcome::Hit));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let value = compute().await?;
        let weight = value.weight() + turn.key.query.len();
        if weight as u64 <= self.capacity {
            entries.insert(
                turn.key.clone(),
                Entry {
                    generation,
                    weight,
                    value: value.clone().wrap(),
                },
            );
        }
        Ok((value, Outcome::Miss))
    }

    fn computing(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<tokio::sync::Mutex<()>>>> {
        self.computing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lookup<V: Cacheable>(&self, key: &Key, generation: u64) -> Option<V> {
        let e = self.entries.as_ref()?.get(key)?;
        if e.generation == generation {
            V::unwrap(e.value)
        } else {
            None
        }
    }

    /// Answers from the cache and computations, so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

    async fn library(name: &str) -> (Arc<Library>, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("linksnap-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Arc::new(Library::open(&dir).await.unwrap()), dir)
    }

    fn body(n: usize) -> bytes::Bytes {
        bytes::Bytes::from(vec![b'x'; n])
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_that_miss_together_compute_once_and_a_commit_ends_the_answer() {
        let (lib, dir) = library("together").await;
        let cache = Arc::new(ReadCache::new(1 << 20));
        let computed = Arc::new(AtomicUsize::new(0));
        let ask = || {
            let (lib, cache, computed) = (lib.clone(), cache.clone(), computed.clone());
            async move {
                cache
                    .get_or_compute(&lib, "t", "q=1", || async {
                        computed.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok::<_, ()>(body(10))
                    })
                    .await
                    .unwrap()
                    .1
            }
        };
        let answers = futures_util::future::join_all((0..10).map(|_| tokio::spawn(ask()))).await;
        let misses = answers
            .into_iter()
            .filter(|a| *a.as_ref().unwrap() == Outcome::Miss)
            .count();
        assert_eq!((computed.load(Ordering::SeqCst), misses), (1, 1));
        assert_eq!(ask().await, Outcome::Hit);
        assert!(cache.computing().is_empty(), "nobody is left in line");

        // A commit (of anything) ends the remembered answer.
        lib.add(
            &linksnap_store::NormalizedUrl::parse("https://example.org/", lib.url_rules()).unwrap(),
            &[],
            None,
        )
        .await
        .unwrap();
        assert_eq!(ask().await, Outcome::Miss);
        assert_eq!(ask().await, Outcome::Hit);
        assert_eq!(computed.load(Ordering::SeqCst), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn an_answer_is_kept_only_when_it_fits_and_errors_never() {
        let (lib, dir) = library("fits").await;
        async fn outcome_of(lib: &Library, cache: &ReadCache, n: usize) -> Outcome {
            cache
                .get_or_compute(lib, "t", "q", || async { Ok::<_, ()>(body(n)) })
                .await
                .unwrap()
                .1
        }
        let outcome = |cache, n| outcome_of(&lib, cache, n);
        // An entry weighs its body and its query string ("q": 1 byte).
        let fits = ReadCache::new(100);
        assert_eq!(outcome(&fits, 99).await, Outcome::Miss);
        assert_eq!(outcome(&fits, 99).await, Outcome::Hit);
        let over = ReadCache::new(99);
        assert_eq!(outcome(&over, 99).await, Outcome::Miss);
        assert_eq!(outcome(&over, 99).await, Outcome::Miss);
        let off = ReadCache::new(0);
        assert_eq!(outcome(&off, 1).await, Outcome::Miss);
        assert_eq!(outcome(&off, 1).await, Outcome::Miss);

        let failing = ReadCache::new(100);
        let err: Result<(bytes::Bytes, Outcome), &str> = failing
            .get_or_compute(&lib, "t", "q", || async { Err("no") })
            .await;
        assert!(err.is_err());
        assert_eq!(outcome(&failing, 1).await, Outcome::Miss);
        assert_eq!(failing.counts(), (0, 2));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
