//! The durable capture queue and the worker that drains it.

use std::time::Duration;

use linksnap_capture::{CaptureEngine, CaptureError};
use sqlx::Row as _;

use crate::library::{Library, LinkId, LinkStatus, StoreError, now_ms};

/// Attempts before a transient failure becomes final.
pub const MAX_ATTEMPTS: i64 = 3;
/// Wait before the second attempt; each later one waits four times longer.
pub const FIRST_RETRY_DELAY: Duration = Duration::from_secs(30);
/// A capture that could not be recorded (disk full, database locked) is tried again after
/// this long. It does not count as an attempt: the page was fine.
pub const RELEASE_DELAY: Duration = Duration::from_secs(5);
/// How far past its own deadline (`Limits::timeout`) a capture may run before the queue
/// gives up on it and counts it as timed out.
pub const CAPTURE_DEADLINE_GRACE: Duration = Duration::from_secs(30);

/// A job abandoned this many times (its capture killed the process, or never ended) is
/// failed instead of queued again: one page must not take the server down at every start.
pub const MAX_ABANDONED: i64 = 2;

/// Fails the queued jobs abandoned [`MAX_ABANDONED`] times, and their links, saying why.
async fn fail_poison_pills(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
) -> Result<(), StoreError> {
    let reason = format!(
        "the capture crashed or hung {MAX_ABANDONED} times (the page may be built to do that); not tried again: `recapture` to try once more"
    );
    let links: Vec<i64> = sqlx::query_scalar(
        "UPDATE jobs SET state = 'failed', last_error = ? \
         WHERE state = 'queued' AND abandoned >= ? RETURNING link_id",
    )
    .bind(&reason)
    .bind(MAX_ABANDONED)
    .fetch_all(&mut **tx)
    .await?;
    for link in &links {
        tracing::warn!(link, "{reason}");
        sqlx::query("UPDATE links SET status = 'failed', failure = ?, updated_at = ? WHERE id = ?")
            .bind(&reason)
            .bind(now_ms())
            .bind(link)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

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
            | CaptureError::Engine(_)
    )
}

impl Library {
    /// Queues a capture of `link` to run now.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn enqueue(&self, link: LinkId) -> Result<i64, StoreError> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
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

    /// Jobs left running go back to the queue, and their links back to `queued`; returns
    /// how many jobs. Called on open, where they were `abandoned` by a process that died
    /// (`abandoned` true: counted, and a job abandoned [`MAX_ABANDONED`] times fails
    /// instead, see [`fail_poison_pills`]), and by a server whose shutdown could not wait
    /// for its captures (not counted). Either way this process holds the writer lock, so
    /// nothing else is capturing.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn return_running_jobs(&self, abandoned: bool) -> Result<u64, StoreError> {
        self.requeue_running(i64::MAX, abandoned).await
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
        .fetch_optional(self.writer())
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

    /// Captures the job's link and records the result: the version and the job's end in
    /// one transaction, so a crash can neither lose the version nor capture it twice.
    ///
    /// A capture whose result cannot be recorded (the disk is full, the database stayed
    /// locked) is not stranded: its job goes back to the queue, due after a back-off, and
    /// its link back to `queued`; the blobs it wrote are reused by the next try or collected
    /// by `gc`. Should even that fail, the job is `running` with nobody running it, and
    /// [`Library::return_stale_jobs`] (every worker loop, every open) returns it.
    ///
    /// # Errors
    /// [`StoreError`] when recording fails; capture failures are an [`Outcome`].
    pub async fn run_job(
        &self,
        capturer: &dyn CaptureEngine,
        job: Job,
    ) -> Result<Outcome, StoreError> {
        let link = match self.get(job.link).await {
            Ok(l) => l,
            Err(StoreError::NoLink(_)) => {
                self.finish_job(job.id, "done", None, None).await?;
                return Ok(Outcome::Failed("the link was removed".to_owned()));
            }
            Err(e) => {
                self.release_job(job, &e).await;
                return Err(e);
            }
        };
        if let Err(e) = self.set_status(job.link, LinkStatus::Capturing, None).await {
            self.release_job(job, &e).await;
            return Err(e);
        }
        // The capture keeps its own deadline; this bounds a capture that does not (a bug,
        // a stuck peer the deadline cannot see), so a worker is never lost to one page.
        let deadline = capturer.capture_options().limits.timeout + CAPTURE_DEADLINE_GRACE;
        let captured =
            match tokio::time::timeout(deadline, capturer.capture_page(link.url.as_str())).await {
                Ok(c) => c.map_err(|e| (is_transient(&e), e.to_string())),
                Err(_) => Err((
                    true,
                    format!(
                        "the capture of {} did not end within {} s",
                        link.url,
                        deadline.as_secs()
                    ),
                )),
            };
        match captured {
            Ok(capture) => match self
                .save_capture_of_job(job.link, &capture, Some(job.id))
                .await
            {
                Ok(version) => Ok(Outcome::Saved {
                    version,
                    http_status: capture.page.status,
                }),
                Err(e) => {
                    self.release_job(job, &e).await;
                    Err(e)
                }
            },
            Err((transient, reason)) => {
                let recorded = if transient && job.attempt < MAX_ATTEMPTS {
                    let delay = FIRST_RETRY_DELAY * 4u32.pow((job.attempt - 1) as u32);
                    let run_after = now_ms() + delay.as_millis() as i64;
                    self.end_job(
                        job,
                        "queued",
                        LinkStatus::Queued,
                        &reason,
                        Some(run_after),
                        false,
                    )
                    .await
                    .map(|()| Outcome::Retrying(reason))
                } else {
                    self.end_job(job, "failed", LinkStatus::Failed, &reason, None, false)
                        .await
                        .map(|()| Outcome::Failed(reason))
                };
                if let Err(e) = &recorded {
                    self.release_job(job, e).await;
                }
                recorded
            }
        }
    }

    /// A job's end and its link's status, in one transaction; with `refund` the attempt
    /// is not counted.
    async fn end_job(
        &self,
        job: Job,
        state: &str,
        status: LinkStatus,
        reason: &str,
        run_after: Option<i64>,
        refund: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE jobs SET state = ?, last_error = ?, run_after = coalesce(?, run_after), claimed_at = NULL, \
                     attempts = CASE WHEN ? THEN max(attempts - 1, 0) ELSE attempts END WHERE id = ?")
            .bind(state)
            .bind(reason)
            .bind(run_after)
            .bind(refund)
            .bind(job.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE links SET status = ?, failure = ?, updated_at = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(reason)
            .bind(now_ms())
            .bind(job.link.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Puts a job whose result could not be recorded back in the queue, due after
    /// [`RELEASE_DELAY`], its link back to `queued`, with the reason. Tries a few times (a
    /// lock may pass, space may be freed); a job it cannot put back stays `running` for
    /// [`Library::return_stale_jobs`].
    async fn release_job(&self, job: Job, why: &StoreError) {
        if let StoreError::NoLink(_) = why {
            // Removed while it was captured: nothing to record, nothing to retry.
            let _ = self.finish_job(job.id, "done", None, None).await;
            return;
        }
        let reason = format!("recording the capture failed: {why}");
        for pause_ms in [0u64, 200, 1000] {
            tokio::time::sleep(Duration::from_millis(pause_ms)).await;
            let run_after = now_ms() + RELEASE_DELAY.as_millis() as i64;
            match self
                .end_job(
                    job,
                    "queued",
                    LinkStatus::Queued,
                    &reason,
                    Some(run_after),
                    true,
                )
                .await
            {
                Ok(()) => {
                    tracing::warn!(link = %job.link, job = job.id, %reason, "capture not recorded; queued again");
                    return;
                }
                Err(e) => {
                    tracing::warn!(link = %job.link, job = job.id, error = %e, "could not queue a capture again yet");
                }
            }
        }
    }

    /// Jobs `running` for longer than `older_than` go back to the queue (and their links
    /// to `queued`), counted as abandoned: no capture of this process runs that long (see
    /// [`CAPTURE_DEADLINE_GRACE`]), so nobody is running them. Returns how many.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn return_stale_jobs(&self, older_than: Duration) -> Result<u64, StoreError> {
        let cutoff = now_ms() - older_than.as_millis() as i64;
        self.requeue_running(cutoff, true).await
    }

    /// Jobs `running` since before `cutoff` (Unix ms) back to `queued`, their links with
    /// them, each counted as abandoned when `abandoned`; then the poison pills failed. One
    /// transaction.
    async fn requeue_running(&self, cutoff: i64, abandoned: bool) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let jobs = sqlx::query(
            "UPDATE jobs SET state = 'queued', claimed_at = NULL, \
             abandoned = abandoned + CASE WHEN ? THEN 1 ELSE 0 END \
             WHERE state = 'running' AND coalesce(claimed_at, 0) < ?",
        )
        .bind(abandoned)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // A link is capturing only while a job of it runs.
        sqlx::query(
            "UPDATE links SET status = 'queued' WHERE status = 'capturing' AND NOT EXISTS \
             (SELECT 1 FROM jobs j WHERE j.link_id = links.id AND j.state = 'running')",
        )
        .execute(&mut *tx)
        .await?;
        fail_poison_pills(&mut tx).await?;
        tx.commit().await?;
        Ok(jobs)
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
            .execute(self.writer())
            .await?;
        Ok(())
    }
}
