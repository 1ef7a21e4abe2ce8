//! Allocation quotas shared by every Arbiter of a server (control plane only: taken once
//! per Allocate, given back once per allocation).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// Allocations per user and in all, counted across threads.
#[derive(Debug, Default)]
pub(crate) struct Quotas {
    user_quota: u32,
    total_quota: u32,
    total: AtomicU32,
    per_user: Mutex<HashMap<String, u32>>,
}

impl Quotas {
    /// Limits of `user_quota` per user and `total_quota` in all; 0 is no limit.
    pub(crate) fn new(user_quota: u32, total_quota: u32) -> Self {
        Quotas {
            user_quota,
            total_quota,
            ..Quotas::default()
        }
    }

    /// Takes one allocation for `user`; false when a quota is reached (486).
    pub(crate) fn acquire(&self, user: &str) -> bool {
        let mut per_user = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        let n = per_user.get(user).copied().unwrap_or(0);
        let total = self.total.load(Ordering::Relaxed);
        if (self.user_quota > 0 && n >= self.user_quota)
            || (self.total_quota > 0 && total >= self.total_quota)
        {
            return false;
        }
        per_user.insert(user.to_owned(), n + 1);
        self.total.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Gives back one allocation of `user`.
    pub(crate) fn release(&self, user: &str) {
        let mut per_user = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_user.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                per_user.remove(user);
            }
            self.total.fetch_sub(1, Ordering::Relaxed);
        }
    }

    #[cfg(test)]
    fn total(&self) -> u32 {
        self.total.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_count_per_user_and_in_all_and_are_given_back() {
        let q = Quotas::new(1, 2);
        assert!(q.acquire("bob"));
        assert!(!q.acquire("bob"), "user quota");
        assert!(q.acquire("alice"));
        assert!(!q.acquire("carol"), "total quota");
        q.release("bob");
        assert_eq!(q.total(), 1);
        assert!(q.acquire("carol"));
        q.release("nobody");
        assert_eq!(q.total(), 2);
        let unlimited = Quotas::new(0, 0);
        assert!((0..100).all(|_| unlimited.acquire("bob")));
    }
}
