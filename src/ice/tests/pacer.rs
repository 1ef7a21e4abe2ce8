//! The pacer alone (RFC 8445 §6.1.4.2): one Ta slot at a time, served round-robin
//! across the checklists.

use std::time::Duration;

use crate::ice::*;

#[test]
fn pacer_round_robin_across_checklists() {
    let t0 = std::time::Instant::now();
    let mut pacer = Pacer::new(Duration::from_millis(2));
    assert_eq!(pacer.ta(), MIN_TA);
    let mut served = Vec::new();
    let mut now = t0;
    for _ in 0..6 {
        served.push(pacer.take_slot(now, 3, |_| true).unwrap());
        assert_eq!(pacer.take_slot(now, 3, |_| true), None);
        now = pacer.next_slot().unwrap();
    }
    assert_eq!(served, [0, 1, 2, 0, 1, 2]);
    assert_eq!(now - t0, 6 * MIN_TA);
    assert_eq!(pacer.take_slot(now, 3, |i| i == 2), Some(2));
}
