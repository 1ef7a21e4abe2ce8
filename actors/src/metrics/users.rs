//! Usage by user, under a bounded set of labels.
//!
//! The first `top_users` distinct users that **authenticate and get an allocation** each
//! get a label of their own (`user="alice"`), kept until the process exits; every later
//! user shares `user="other"`. Requests that fail authentication never create a label:
//! their USERNAME is chosen by whoever sent them, so a 401 counts under the user's label
//! if that user already has one, and under `other` if not. A username flood therefore adds
//! no series, and the per-user families hold at most `top_users + 1` label values each.
//! A user named `other` always counts as `other`.
//!
//! Labels are handed out on the control path (an allocation created, a 401), under a
//! mutex; counting afterwards goes through the [`UserAccount`] the allocation keeps,
//! without the lock.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Users with a label of their own when none is configured (`usage-top-users`).
pub const DEFAULT_TOP_USERS: u32 = 100;

/// The label every user without one of their own shares.
pub const OTHER_USER: &str = "other";

#[derive(Debug, Default)]
struct UserCounters {
    allocations_active: AtomicU64,
    allocations_created: AtomicU64,
    bytes_to_peer: AtomicU64,
    bytes_to_client: AtomicU64,
    unauthorized: AtomicU64,
}

/// The counters of one label, held by an allocation for its life.
#[derive(Debug, Clone)]
pub struct UserAccount(Arc<UserCounters>);

impl UserAccount {
    /// `to_peer` and `to_client` more payload bytes were relayed.
    pub fn relayed(&self, to_peer: u64, to_client: u64) {
        self.0.bytes_to_peer.fetch_add(to_peer, Ordering::Relaxed);
        self.0
            .bytes_to_client
            .fetch_add(to_client, Ordering::Relaxed);
    }

    /// The allocation that took this account ended. Never goes below zero.
    pub fn allocation_ended(&self) {
        let _ = self
            .0
            .allocations_active
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

/// What one label counted, at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserSnapshot {
    /// Allocations of the label's users that exist now.
    pub allocations_active: u64,
    /// Allocations they were given since start.
    pub allocations_created: u64,
    /// Payload bytes relayed from their clients to peers.
    pub bytes_to_peer: u64,
    /// Payload bytes relayed from peers to their clients.
    pub bytes_to_client: u64,
    /// 401 responses to requests that carried their USERNAME.
    pub unauthorized: u64,
}

impl UserCounters {
    fn snapshot(&self) -> UserSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        UserSnapshot {
            allocations_active: get(&self.allocations_active),
            allocations_created: get(&self.allocations_created),
            bytes_to_peer: get(&self.bytes_to_peer),
            bytes_to_client: get(&self.bytes_to_client),
            unauthorized: get(&self.unauthorized),
        }
    }
}

#[derive(Debug, Default)]
struct Labels {
    by_name: HashMap<String, Arc<UserCounters>>,
    other: Arc<UserCounters>,
}

/// The labels handed out so far and their counters.
#[derive(Debug)]
pub(super) struct UserTable {
    top_users: usize,
    labels: Mutex<Labels>,
}

impl Default for UserTable {
    fn default() -> Self {
        UserTable::new(DEFAULT_TOP_USERS)
    }
}

impl UserTable {
    pub(super) fn new(top_users: u32) -> Self {
        UserTable {
            top_users: top_users as usize,
            labels: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Labels> {
        // The counters stay consistent whatever a panicking holder was doing.
        self.labels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `username` authenticated and got an allocation: its label (new if there is room).
    pub(super) fn allocation_created(&self, username: &str) -> UserAccount {
        let mut labels = self.lock();
        let room = labels.by_name.len() < self.top_users && username != OTHER_USER;
        let counters = match labels.by_name.get(username) {
            Some(c) => c.clone(),
            None if room => {
                let c = Arc::new(UserCounters::default());
                labels.by_name.insert(username.to_owned(), c.clone());
                c
            }
            None => labels.other.clone(),
        };
        drop(labels);
        counters.allocations_created.fetch_add(1, Ordering::Relaxed);
        counters.allocations_active.fetch_add(1, Ordering::Relaxed);
        UserAccount(counters)
    }

    /// A 401 went to a request that carried `username`: counted under its label if it has
    /// one, else under `other`. Never creates a label.
    pub(super) fn unauthorized(&self, username: &str) {
        let labels = self.lock();
        let counters = labels.by_name.get(username).unwrap_or(&labels.other);
        counters.unauthorized.fetch_add(1, Ordering::Relaxed);
    }

    /// What `label` counted (`other` for the shared one), if it exists.
    pub(super) fn snapshot(&self, label: &str) -> Option<UserSnapshot> {
        let labels = self.lock();
        if label == OTHER_USER {
            return Some(labels.other.snapshot());
        }
        labels.by_name.get(label).map(|c| c.snapshot())
    }

    /// The per-user families, users in name order, then `other`.
    pub(super) fn render(&self, out: &mut String) {
        let rows: Vec<(String, UserSnapshot)> = {
            let labels = self.lock();
            let mut rows: Vec<_> = labels
                .by_name
                .iter()
                .map(|(name, c)| (label_value(name), c.snapshot()))
                .collect();
            rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            rows.push((OTHER_USER.to_owned(), labels.other.snapshot()));
            rows
        };
        let mut family =
            |name: &str, kind: &str, help: &str, get: &dyn Fn(&UserSnapshot) -> u64| {
                let _ = writeln!(out, "# HELP floe_{name} {help}");
                let _ = writeln!(out, "# TYPE floe_{name} {kind}");
                for (user, s) in &rows {
                    let _ = writeln!(out, "floe_{name}{{user=\"{user}\"}} {}", get(s));
                }
            };
        family(
            "user_allocations_active",
            "gauge",
            "TURN allocations that exist now, by user (the first --usage-top-users users, then other).",
            &|s| s.allocations_active,
        );
        family(
            "user_allocations_created_total",
            "counter",
            "TURN allocations created since start, by user.",
            &|s| s.allocations_created,
        );
        family(
            "user_unauthorized_total",
            "counter",
            "401 responses to requests that carried the user's name; names without a label count as other.",
            &|s| s.unauthorized,
        );
        let _ = writeln!(
            out,
            "# HELP floe_user_relayed_bytes_total Payload bytes relayed, by user and direction."
        );
        let _ = writeln!(out, "# TYPE floe_user_relayed_bytes_total counter");
        for (user, s) in &rows {
            for (direction, v) in [
                ("client_to_peer", s.bytes_to_peer),
                ("peer_to_client", s.bytes_to_client),
            ] {
                let _ = writeln!(
                    out,
                    "floe_user_relayed_bytes_total{{user=\"{user}\",direction=\"{direction}\"}} {v}"
                );
            }
        }
    }
}

/// `name` as a Prometheus label value: backslash, double quote and line feed escaped.
fn label_value(name: &str) -> String {
    let mut v = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '\\' => v.push_str("\\\\"),
            '"' => v.push_str("\\\""),
            '\n' => v.push_str("\\n"),
            c => v.push(c),
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_users_get_labels_and_the_rest_fold_into_other() {
        let t = UserTable::new(2);
        let alice = t.allocation_created("alice");
        let bob = t.allocation_created("bob");
        let carol = t.allocation_created("carol");
        let other = t.allocation_created(OTHER_USER);
        let alice2 = t.allocation_created("alice");
        alice.relayed(100, 50);
        alice2.relayed(1, 0);
        carol.relayed(7, 8);
        bob.allocation_ended();
        bob.allocation_ended(); // one too many: stays at zero
        other.allocation_ended();
        let a = t.snapshot("alice").unwrap();
        assert_eq!((a.allocations_active, a.allocations_created), (2, 2));
        assert_eq!((a.bytes_to_peer, a.bytes_to_client), (101, 50));
        assert_eq!(t.snapshot("bob").unwrap().allocations_active, 0);
        assert_eq!(t.snapshot("carol"), None);
        let o = t.snapshot(OTHER_USER).unwrap();
        assert_eq!((o.allocations_active, o.allocations_created), (1, 2));
        assert_eq!((o.bytes_to_peer, o.bytes_to_client), (7, 8));
    }

    #[test]
    fn failed_requests_never_create_labels() {
        let t = UserTable::new(100);
        t.allocation_created("alice");
        t.unauthorized("alice");
        for i in 0..1000 {
            t.unauthorized(&format!("mallory{i}"));
        }
        assert_eq!(t.snapshot("alice").unwrap().unauthorized, 1);
        assert_eq!(t.snapshot(OTHER_USER).unwrap().unauthorized, 1000);
        assert_eq!(t.snapshot("mallory0"), None);
        let mut text = String::new();
        t.render(&mut text);
        // Two users (alice, other) in each of five series per user.
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 2 * 5);
        assert!(!text.contains("mallory"));
    }

    #[test]
    fn label_values_are_escaped() {
        let t = UserTable::new(1);
        t.allocation_created("1764943800:a\"b\\c\nd");
        let mut text = String::new();
        t.render(&mut text);
        assert!(
            text.contains(r#"floe_user_allocations_active{user="1764943800:a\"b\\c\nd"} 1"#),
            "{text}"
        );
    }
}
