//! RFC 8489 §6.2: client transactions, sans-IO.
//!
//! Over UDP a request is sent at 0, RTO, 3·RTO, 7·RTO ... (doubling), Rc times in all,
//! and the transaction times out Rm·RTO after the last send: with the defaults
//! (RTO 500 ms, Rc 7, Rm 16) that is sends at 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s and a
//! timeout at 39.5 s. Over TCP or TLS it is sent once and times out after 39.5 s.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::TransactionId;

/// Timer values of RFC 8489 §6.2.1 and §6.2.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransactionConfig {
    /// Initial retransmission timeout (500 ms).
    pub rto: Duration,
    /// Rc: how many times a request is sent over UDP (7).
    pub rc: u32,
    /// Rm: the last wait, in multiples of the initial RTO (16).
    pub rm: u32,
    /// Timeout of a transaction over a reliable transport (39.5 s).
    pub reliable_timeout: Duration,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            rto: Duration::from_millis(500),
            rc: 7,
            rm: 16,
            reliable_timeout: Duration::from_millis(39_500),
        }
    }
}

/// Where a client transaction stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionState {
    /// Waiting for a response; more sends may follow.
    Pending,
    /// A response arrived.
    Completed,
    /// No response before the final timeout (RFC 8489 §6.2.1).
    TimedOut,
}

/// One outstanding request.
#[derive(Debug, Clone)]
pub struct ClientTransaction {
    tid: TransactionId,
    request: Bytes,
    reliable: bool,
    config: TransactionConfig,
    started: Instant,
    sent: u32,
    rto: Duration,
    deadline: Instant,
    transmit_due: bool,
    state: TransactionState,
}

impl ClientTransaction {
    /// Starts a transaction for the encoded `request`. The first send is due at once.
    /// `reliable` is true over TCP and TLS.
    pub fn new(
        now: Instant,
        tid: TransactionId,
        request: Bytes,
        reliable: bool,
        config: TransactionConfig,
    ) -> Self {
        ClientTransaction {
            tid,
            request,
            reliable,
            config,
            started: now,
            sent: 0,
            rto: config.rto,
            deadline: now,
            transmit_due: true,
            state: TransactionState::Pending,
        }
    }

    /// The transaction id.
    pub fn transaction_id(&self) -> TransactionId {
        self.tid
    }

    /// The request bytes.
    pub fn request(&self) -> &Bytes {
        &self.request
    }

    /// The state.
    pub fn state(&self) -> TransactionState {
        self.state
    }

    /// How many times the request has been handed out for sending.
    pub fn sends(&self) -> u32 {
        self.sent
    }

    /// The request, when a send (first or retransmission) is due.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        if !self.transmit_due || self.state != TransactionState::Pending {
            return None;
        }
        self.transmit_due = false;
        self.sent += 1;
        self.deadline = if self.reliable {
            self.started + self.config.reliable_timeout
        } else if self.sent >= self.config.rc {
            now + self.config.rto * self.config.rm
        } else {
            let d = now + self.rto;
            self.rto *= 2;
            d
        };
        Some(self.request.clone())
    }

    /// The next instant `handle_timeout` must be called, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            TransactionState::Pending if !self.transmit_due => Some(self.deadline),
            _ => None,
        }
    }

    /// Advances the timers: schedules a retransmission, or times the transaction out.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state != TransactionState::Pending || self.transmit_due || now < self.deadline {
            return;
        }
        if self.reliable || self.sent >= self.config.rc {
            self.state = TransactionState::TimedOut;
        } else {
            self.transmit_due = true;
        }
    }

    /// A response with this transaction id arrived. Returns the round-trip time when
    /// it is unambiguous (the request was sent once: Karn's algorithm, RFC 6298 §3).
    pub fn complete(&mut self, now: Instant) -> Option<Duration> {
        if self.state != TransactionState::Pending {
            return None;
        }
        self.state = TransactionState::Completed;
        (self.sent == 1).then(|| now.saturating_duration_since(self.started))
    }
}

/// RFC 6298 §2: a smoothed RTO estimate, which RFC 8489 §6.2.1 lets a client cache per
/// server. Clamped to 100 ms ..= 3 s.
#[derive(Clone, Copy, Debug)]
pub struct RtoEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
}

impl Default for RtoEstimator {
    fn default() -> Self {
        RtoEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            rto: TransactionConfig::default().rto,
        }
    }
}

impl RtoEstimator {
    /// Folds in one RTT sample.
    pub fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
        let rto = self.srtt.unwrap_or_default() + (self.rttvar * 4).max(Duration::from_millis(10));
        self.rto = rto.clamp(Duration::from_millis(100), Duration::from_secs(3));
    }

    /// The current RTO.
    pub fn rto(&self) -> Duration {
        self.rto
    }

    /// The smoothed RTT, once sampled.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drive(reliable: bool) -> (Vec<Duration>, Duration) {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(
            t0,
            TransactionId([1; 12]),
            Bytes::from_static(b"req"),
            reliable,
            TransactionConfig::default(),
        );
        let mut sends = Vec::new();
        let mut now = t0;
        loop {
            while tx.poll_transmit(now).is_some() {
                sends.push(now - t0);
            }
            match tx.poll_timeout() {
                Some(t) => {
                    assert!(t >= now, "deadline in the past");
                    now = t;
                    tx.handle_timeout(now);
                }
                None => break,
            }
        }
        assert_eq!(tx.state(), TransactionState::TimedOut);
        (sends, now - t0)
    }

    #[test]
    fn udp_schedule_is_rfc8489() {
        let (sends, timeout) = drive(false);
        let ms: Vec<u128> = sends.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [0, 500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(timeout, Duration::from_millis(39_500));
    }

    #[test]
    fn tcp_sends_once_and_times_out_at_39_5_s() {
        let (sends, timeout) = drive(true);
        assert_eq!(sends, [Duration::ZERO]);
        assert_eq!(timeout, Duration::from_millis(39_500));
    }

    #[test]
    fn early_timeout_call_changes_nothing() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(
            t0,
            TransactionId([1; 12]),
            Bytes::new(),
            false,
            Default::default(),
        );
        assert!(tx.poll_transmit(t0).is_some());
        tx.handle_timeout(t0 + Duration::from_millis(499));
        assert!(tx.poll_transmit(t0 + Duration::from_millis(499)).is_none());
        tx.handle_timeout(t0 + Duration::from_millis(500));
        assert!(tx.poll_transmit(t0 + Duration::from_millis(500)).is_some());
    }

    #[test]
    fn response_completes_and_measures_rtt_only_without_retransmission() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(
            t0,
            TransactionId([1; 12]),
            Bytes::new(),
            false,
            Default::default(),
        );
        tx.poll_transmit(t0);
        assert_eq!(
            tx.complete(t0 + Duration::from_millis(30)),
            Some(Duration::from_millis(30))
        );
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(tx.complete(t0 + Duration::from_millis(40)), None);

        let mut tx = ClientTransaction::new(
            t0,
            TransactionId([2; 12]),
            Bytes::new(),
            false,
            Default::default(),
        );
        tx.poll_transmit(t0);
        tx.handle_timeout(t0 + Duration::from_millis(500));
        tx.poll_transmit(t0 + Duration::from_millis(500));
        assert_eq!(tx.complete(t0 + Duration::from_millis(600)), None);
        assert_eq!(tx.state(), TransactionState::Completed);
    }

    #[test]
    fn rto_estimator_follows_rfc6298() {
        let mut e = RtoEstimator::default();
        e.sample(Duration::from_millis(100));
        assert_eq!(e.srtt(), Some(Duration::from_millis(100)));
        assert_eq!(e.rto(), Duration::from_millis(300));
        for _ in 0..50 {
            e.sample(Duration::from_millis(1));
        }
        assert_eq!(e.rto(), Duration::from_millis(100));
    }
}
