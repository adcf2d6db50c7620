//! The durable capture queue and the worker that drains it.

use std::time::Duration;

use linksnap_capture::{CaptureError, Capturer};
use sqlx::Row as _;

use crate::library::{Library, LinkId, LinkStatus, StoreError, now_ms};

/// Attempts before a transient failure becomes final.
pub const MAX_ATTEMPTS: i64 = 3;
/// Wait before the second attempt; each later one waits four times longer.
pub const FIRST_RETRY_DELAY: Duration = Duration::from_secs(30);

/// A claimed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub link: LinkId,
    /// 1 on the first try.
    pub attempt: i64,
}

/// A job as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    pub id: i64,
    pub link: LinkId,
    /// queued, running, done or failed.
    pub state: String,
    pub attempts: i64,
    /// Unix ms: not run before this.
    pub run_after: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
}

fn job_info(r: &sqlx::sqlite::SqliteRow) -> JobInfo {
    JobInfo {
        id: r.get("id"),
        link: LinkId(r.get("link_id")),
        state: r.get("state"),
        attempts: r.get("attempts"),
        run_after: r.get("run_after"),
        last_error: r.get("last_error"),
        created_at: r.get("created_at"),
    }
}

/// What running one job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Saved as this version.
    Saved { version: i64, http_status: u16 },
    /// Failed; will be retried after a back-off.
    Retrying(String),
    /// Failed for good.
    Failed(String),
}

/// Whether trying again later could succeed.
fn is_transient(e: &CaptureError) -> bool {
    matches!(
        e,
        CaptureError::TimedOut { .. }
            | CaptureError::Network { .. }
            | CaptureError::EmptyBody { .. }
            | CaptureError::Client(_)
    )
}

impl Library {
    /// Queues a capture of `link` to run now.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn enqueue(&self, link: LinkId) -> Result<i64, StoreError> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE links SET status = 'queued', failure = NULL, updated_at = ? WHERE id = ?",
        )
        .bind(now)
        .bind(link.0)
        .execute(&mut *tx)
        .await?;
        let id = sqlx::query_scalar(
            "INSERT INTO jobs (link_id, run_after, created_at) VALUES (?, ?, ?) RETURNING id",
        )
        .bind(link.0)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Jobs left running go back to the queue, and links left `capturing` back to
    /// `queued`, in one transaction; returns how many jobs. Called on open (a process that
    /// died left them) and by a server whose shutdown could not wait for its captures;
    /// either way this process holds the writer lock, so nothing else is capturing.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn return_running_jobs(&self) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let jobs = sqlx::query(
            "UPDATE jobs SET state = 'queued', claimed_at = NULL WHERE state = 'running'",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("UPDATE links SET status = 'queued' WHERE status = 'capturing'")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(jobs)
    }

    /// Claims the next job that is due (or exactly job `only`), atomically.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn claim(&self, only: Option<i64>) -> Result<Option<Job>, StoreError> {
        let now = now_ms();
        let row = sqlx::query(
            "UPDATE jobs SET state = 'running', claimed_at = ?, attempts = attempts + 1 \
             WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND (? IS NULL AND run_after <= ? OR id = ?) \
                         ORDER BY run_after, id LIMIT 1) \
             RETURNING id, link_id, attempts",
        )
        .bind(now)
        .bind(only)
        .bind(now)
        .bind(only)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| Job {
            id: r.get("id"),
            link: LinkId(r.get("link_id")),
            attempt: r.get("attempts"),
        }))
    }

    /// Jobs not finished (queued or running), plus the most recent finished ones, newest
    /// first; at most `limit`.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn jobs(&self, limit: usize) -> Result<Vec<JobInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, link_id, state, attempts, run_after, last_error, created_at FROM jobs \
             ORDER BY state IN ('queued', 'running') DESC, id DESC LIMIT ?",
        )
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(job_info).collect())
    }

    /// One job.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn job(&self, id: i64) -> Result<Option<JobInfo>, StoreError> {
        let row = sqlx::query(
            "SELECT id, link_id, state, attempts, run_after, last_error, created_at FROM jobs WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(job_info))
    }

    /// How many jobs are queued, due now or later.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn queued_jobs(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'queued'")
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// Captures the job's link and records the result.
    ///
    /// # Errors
    /// [`StoreError`] when recording fails; capture failures are an [`Outcome`].
    pub async fn run_job(&self, capturer: &Capturer, job: Job) -> Result<Outcome, StoreError> {
        let link = match self.get(job.link).await {
            Ok(l) => l,
            Err(StoreError::NoLink(_)) => {
                self.finish_job(job.id, "done", None, None).await?;
                return Ok(Outcome::Failed("the link was removed".to_owned()));
            }
            Err(e) => return Err(e),
        };
        self.set_status(job.link, LinkStatus::Capturing, None)
            .await?;
        match capturer.capture(link.url.as_str()).await {
            Ok(capture) => {
                let version = self.save_capture(job.link, &capture).await?;
                self.finish_job(job.id, "done", None, None).await?;
                Ok(Outcome::Saved {
                    version,
                    http_status: capture.page.status,
                })
            }
            Err(e) => {
                let reason = e.to_string();
                if is_transient(&e) && job.attempt < MAX_ATTEMPTS {
                    let delay = FIRST_RETRY_DELAY * 4u32.pow((job.attempt - 1) as u32);
                    let run_after = now_ms() + delay.as_millis() as i64;
                    self.finish_job(job.id, "queued", Some(&reason), Some(run_after))
                        .await?;
                    self.set_status(job.link, LinkStatus::Queued, Some(&reason))
                        .await?;
                    Ok(Outcome::Retrying(reason))
                } else {
                    self.finish_job(job.id, "failed", Some(&reason), None)
                        .await?;
                    self.set_status(job.link, LinkStatus::Failed, Some(&reason))
                        .await?;
                    Ok(Outcome::Failed(reason))
                }
            }
        }
    }

    async fn finish_job(
        &self,
        id: i64,
        state: &str,
        error: Option<&str>,
        run_after: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE jobs SET state = ?, last_error = ?, run_after = coalesce(?, run_after), claimed_at = NULL WHERE id = ?")
            .bind(state)
            .bind(error)
            .bind(run_after)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
