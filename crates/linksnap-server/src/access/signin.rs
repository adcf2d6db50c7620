//! Sign-in back-off per account, beside the per-address limit: after
//! [`FREE_ATTEMPTS`] failures in a row, an account's next attempt must wait 1 s, then 2 s,
//! 4 s… up to `login_backoff_max`; an attempt that comes sooner is refused (429) without
//! its password being checked, so guessing from many addresses gains nothing. A success
//! resets the account. In memory (a restart forgets it), bounded in size.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures an account may have before it is held back.
pub const FREE_ATTEMPTS: u32 = 5;
/// Accounts remembered at most; past it, those no longer held back are forgotten.
const MAX_ACCOUNTS: usize = 100_000;

/// Failures per account name (lower-cased).
#[derive(Debug)]
pub struct Backoff {
    max: Duration,
    accounts: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Backoff {
    /// `max`: the longest wait (zero: no per-account back-off).
    #[must_use]
    pub fn new(max: Duration) -> Self {
        Self {
            max,
            accounts: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, Instant)>> {
        self.accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err(wait)` while `name` is held back.
    ///
    /// # Errors
    /// How long until its next attempt is taken.
    pub fn check(&self, name: &str, now: Instant) -> Result<(), Duration> {
        if self.max.is_zero() {
            return Ok(());
        }
        match self.lock().get(&name.trim().to_lowercase()) {
            Some((_, until)) if *until > now => Err(*until - now),
            _ => Ok(()),
        }
    }

    /// Records a failed attempt for `name`.
    pub fn failed(&self, name: &str, now: Instant) {
        if self.max.is_zero() {
            return;
        }
        let mut map = self.lock();
        if map.len() >= MAX_ACCOUNTS {
            map.retain(|_, (_, until)| *until > now);
        }
        let entry = map.entry(name.trim().to_lowercase()).or_insert((0, now));
        entry.0 += 1;
        if entry.0 > FREE_ATTEMPTS - 1 {
            let doublings = (entry.0 - FREE_ATTEMPTS).min(30);
            let wait = Duration::from_secs(1u64 << doublings).min(self.max);
            entry.1 = now + wait;
        }
    }

    /// A successful sign-in: the account starts over.
    pub fn succeeded(&self, name: &str) {
        self.lock().remove(&name.trim().to_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_held_back_after_its_free_attempts_doubling_up_to_the_cap() {
        let b = Backoff::new(Duration::from_secs(8));
        let t = Instant::now();
        for _ in 0..FREE_ATTEMPTS - 1 {
            b.failed("Ann", t);
            assert!(b.check("ann", t).is_ok());
        }
        b.failed("ann", t);
        assert_eq!(b.check("ANN", t), Err(Duration::from_secs(1)));
        assert!(b.check("ann", t + Duration::from_secs(1)).is_ok());
        assert!(
            b.check("bob", t).is_ok(),
            "other accounts are not held back"
        );
        let later = t + Duration::from_secs(1);
        b.failed("ann", later);
        assert_eq!(b.check("ann", later), Err(Duration::from_secs(2)));
        for _ in 0..10 {
            b.failed("ann", later);
        }
        assert_eq!(b.check("ann", later), Err(Duration::from_secs(8)), "capped");
        b.succeeded("ann");
        assert!(b.check("ann", later).is_ok());
        let off = Backoff::new(Duration::ZERO);
        for _ in 0..20 {
            off.failed("ann", t);
        }
        assert!(off.check("ann", t).is_ok());
    }
}
