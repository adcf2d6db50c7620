//! Request bodies, before any route reads one (the limits and budget here; the middleware
//! that applies them is `middleware::body_limit`): a small limit (`form_limit`) on every route
//! that does not take a file, the large one (`body_limit`) only on the upload routes, and a
//! budget of body bytes held at once across all connections (`body_budget`), so that many
//! large bodies queue instead of stacking up in memory. A body that declares more than its
//! route allows is refused with 413 before a byte of it is read; one that sends more than
//! it declared, or declares nothing, is cut off at the limit (413 from the extractor).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

/// Routes whose bodies are files: imports, and the CLI's standard input.
pub const UPLOAD_ROUTES: &[&str] = &["/api/v1/import", "/io/import", "/_cli/v1/run"];

/// The limits and the shared budget (permits are KiB).
#[derive(Debug)]
pub struct Bodies {
    pub form_limit: usize,
    pub upload_limit: usize,
    budget_kib: u32,
    budget: Arc<Semaphore>,
    wait: Duration,
}

impl Bodies {
    #[must_use]
    pub fn new(config: &crate::config::ServerConfig) -> Self {
        let budget_kib = u32::try_from(config.body_budget.div_ceil(1024)).unwrap_or(u32::MAX);
        Self {
            form_limit: config.form_limit,
            upload_limit: config.body_limit,
            budget_kib,
            budget: Arc::new(Semaphore::new(budget_kib as usize)),
            wait: config.body_budget_wait,
        }
    }

    /// The limit of the route at `path`.
    #[must_use]
    pub fn limit_of(&self, path: &str) -> usize {
        if UPLOAD_ROUTES.contains(&path) {
            self.upload_limit
        } else {
            self.form_limit
        }
    }

    /// Room for a body of `length` bytes in the budget, waited for at most `body_budget_wait`
    /// (`None` then); held until the permit is dropped.
    pub async fn reserve(&self, length: u64) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let kib = u32::try_from(length.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.budget_kib);
        match tokio::time::timeout(self.wait, self.budget.clone().acquire_many_owned(kib)).await {
            Ok(Ok(p)) => Some(p),
            _ => {
                tracing::warn!(
                    kib,
                    "a request body waited too long for the body budget (body_budget)"
                );
                None
            }
        }
    }

    /// KiB of the budget held now (for the tests and `/metrics`).
    #[must_use]
    pub fn held_kib(&self) -> u32 {
        self.budget_kib
            .saturating_sub(u32::try_from(self.budget.available_permits()).unwrap_or(u32::MAX))
    }
}
