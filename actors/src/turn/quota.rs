//! Allocation quotas shared by every Arbiter of a server (control plane only: taken once
//! per Allocate, given back once per allocation). A relay port held for a
//! RESERVATION-TOKEN counts as an allocation of the user who reserved it until it is
//! redeemed (then it is the redeemer's) or expires: reservations cannot get around the
//! quotas to take the relay range or the file descriptors.
//!
//! A reload may change the limits ([`Quotas::set_limits`]): allocations held beyond a
//! lowered quota stay, and new ones are refused until enough have ended.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use floe::turn::server::RelayRefusal;

/// Allocations per user and in all, counted across threads.
#[derive(Debug, Default)]
pub(crate) struct Quotas {
    user_quota: AtomicU32,
    total_quota: AtomicU32,
    total: AtomicU32,
    per_user: Mutex<HashMap<String, u32>>,
}

impl Quotas {
    /// Limits of `user_quota` per user and `total_quota` in all; 0 is no limit.
    pub(crate) fn new(user_quota: u32, total_quota: u32) -> Self {
        Quotas {
            user_quota: AtomicU32::new(user_quota),
            total_quota: AtomicU32::new(total_quota),
            ..Quotas::default()
        }
    }

    /// New limits for the allocations taken from now on.
    pub(crate) fn set_limits(&self, user_quota: u32, total_quota: u32) {
        // Under the lock: an `acquire` sees both limits of one reload.
        let _per_user = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        self.user_quota.store(user_quota, Ordering::Relaxed);
        self.total_quota.store(total_quota, Ordering::Relaxed);
    }

    /// Takes `n` allocations for `user` (2: one and a reserved port), all or none.
    /// Refused with [`RelayRefusal::QuotaReached`] over the user's quota, and
    /// [`RelayRefusal::ServerFull`] over the total (both 486; the second may redirect).
    pub(crate) fn acquire(&self, user: &str, n: u32) -> Result<(), RelayRefusal> {
        let mut per_user = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        let held = per_user.get(user).copied().unwrap_or(0);
        let total = self.total.load(Ordering::Relaxed);
        let user_quota = self.user_quota.load(Ordering::Relaxed);
        let total_quota = self.total_quota.load(Ordering::Relaxed);
        if user_quota > 0 && held + n > user_quota {
            return Err(RelayRefusal::QuotaReached);
        }
        if total_quota > 0 && total + n > total_quota {
            return Err(RelayRefusal::ServerFull);
        }
        per_user.insert(user.to_owned(), held + n);
        self.total.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    /// Moves one allocation from `from` to `to` (a reservation redeemed by `to`); the
    /// total does not change. False, and nothing moved, when `to` is at its quota.
    pub(crate) fn transfer(&self, from: &str, to: &str) -> bool {
        if from == to {
            return true;
        }
        let mut per_user = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        let held = per_user.get(to).copied().unwrap_or(0);
        let user_quota = self.user_quota.load(Ordering::Relaxed);
        if user_quota > 0 && held >= user_quota {
            return false;
        }
        per_user.insert(to.to_owned(), held + 1);
        match per_user.get_mut(from) {
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                per_user.remove(from);
            }
            None => {}
        }
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
        assert!(q.acquire("bob", 1).is_ok());
        assert_eq!(
            q.acquire("bob", 1),
            Err(RelayRefusal::QuotaReached),
            "user quota"
        );
        assert!(q.acquire("alice", 1).is_ok());
        assert_eq!(
            q.acquire("carol", 1),
            Err(RelayRefusal::ServerFull),
            "total quota"
        );
        q.release("bob");
        assert_eq!(q.total(), 1);
        assert!(q.acquire("carol", 1).is_ok());
        q.release("nobody");
        assert_eq!(q.total(), 2);
        let unlimited = Quotas::new(0, 0);
        assert!((0..100).all(|_| unlimited.acquire("bob", 1).is_ok()));
    }

    #[test]
    fn a_reservation_takes_a_second_allocation_and_moves_to_its_redeemer() {
        let q = Quotas::new(2, 3);
        assert!(q.acquire("bob", 3).is_err(), "all or none");
        assert!(q.acquire("bob", 2).is_ok());
        assert!(q.acquire("bob", 1).is_err(), "the reserved port counts");
        assert!(q.acquire("alice", 2).is_err(), "against the total too");
        assert!(q.acquire("alice", 1).is_ok());
        assert!(
            q.transfer("bob", "alice"),
            "alice redeems bob's reservation"
        );
        assert_eq!(q.total(), 3);
        assert!(!q.transfer("bob", "alice"), "alice is at her quota");
        q.release("bob");
        assert_eq!(q.total(), 2);
        assert!(q.transfer("bob", "bob"));
    }

    #[test]
    fn lowered_limits_keep_what_is_held_and_refuse_new_allocations() {
        let q = Quotas::new(3, 0);
        assert!(q.acquire("bob", 1).is_ok() && q.acquire("bob", 1).is_ok());
        q.set_limits(1, 0);
        assert!(
            q.acquire("bob", 1).is_err(),
            "bob holds 2, more than the new quota"
        );
        q.release("bob");
        assert!(q.acquire("bob", 1).is_err(), "still at the quota");
        q.release("bob");
        assert!(q.acquire("bob", 1).is_ok());
        q.set_limits(0, 1);
        assert!(q.acquire("alice", 1).is_err(), "the new total quota");
        q.set_limits(0, 0);
        assert!(q.acquire("alice", 1).is_ok());
    }
}
