//! Event streams of the public actors: `Subscribe(Recipient<E>)` and `events()`.
//!
//! Every public actor keeps a [`Subscribers`] list. Subscribers are actix recipients or
//! channel-backed [`EventStream`]s; closed ones are dropped on the next publish.
//!
//! Events can be caused by packets from the network (an `AuthFailed` per 401, `Data` per
//! datagram), so every subscriber is bounded: an [`EventStream`] holds at most
//! [`EVENT_QUEUE`] events, and a recipient actor at most its mailbox capacity (actix's
//! default is 16; raise it with `Context::set_mailbox_capacity`). A subscriber that does
//! not keep up loses the newest events, as a full socket buffer loses datagrams, and
//! [`Subscribers::dropped`] counts them. Memory stays flat under a flood.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix::dev::SendError;
use actix::{Message, Recipient};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::{channel, Receiver, Sender};

/// Events an [`EventStream`] holds for a reader that does not keep up.
pub const EVENT_QUEUE: usize = 1024;

/// Registers a recipient for an actor's events.
pub struct Subscribe<E: Message<Result = ()> + Send>(pub Recipient<E>);

impl<E: Message<Result = ()> + Send> Message for Subscribe<E> {
    type Result = ();
}

/// Registers a channel for an actor's events; see [`EventStream`].
pub struct SubscribeChannel<E>(pub(crate) Sender<E>);

impl<E: 'static> Message for SubscribeChannel<E> {
    type Result = ();
}

/// The events of one actor as a `Stream`, holding at most [`EVENT_QUEUE`] unread.
#[derive(Debug)]
pub struct EventStream<E>(Receiver<E>);

impl<E> EventStream<E> {
    /// A stream and the message that connects it to an actor.
    pub fn new() -> (Self, SubscribeChannel<E>) {
        Self::with_capacity(EVENT_QUEUE)
    }

    /// As [`new`](Self::new), holding at most `capacity` unread events (at least 1).
    pub fn with_capacity(capacity: usize) -> (Self, SubscribeChannel<E>) {
        let (tx, rx) = channel(capacity.max(1));
        (EventStream(rx), SubscribeChannel(tx))
    }

    /// The next event, or `None` once the actor is gone.
    pub async fn recv(&mut self) -> Option<E> {
        self.0.recv().await
    }
}

impl<E> futures_core::Stream for EventStream<E> {
    type Item = E;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<E>> {
        self.0.poll_recv(cx)
    }
}

/// The subscribers of one actor.
pub struct Subscribers<E: Message<Result = ()> + Send> {
    recipients: Vec<Recipient<E>>,
    channels: Vec<Sender<E>>,
    dropped: u64,
}

impl<E: Message<Result = ()> + Send> Default for Subscribers<E> {
    fn default() -> Self {
        Subscribers {
            recipients: Vec::new(),
            channels: Vec::new(),
            dropped: 0,
        }
    }
}

impl<E> Subscribers<E>
where
    E: Message<Result = ()> + Send + Clone + 'static,
{
    /// Adds a recipient.
    pub fn add(&mut self, r: Recipient<E>) {
        self.recipients.push(r);
    }

    /// Adds a channel.
    pub(crate) fn add_channel(&mut self, tx: Sender<E>) {
        self.channels.push(tx);
    }

    /// Whether anyone listens.
    pub fn is_empty(&self) -> bool {
        self.recipients.is_empty() && self.channels.is_empty()
    }

    /// Events not delivered because a subscriber was full, since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Hands `event` to every live subscriber that has room; returns how many had none.
    pub fn publish(&mut self, event: E) -> u64 {
        let mut dropped = 0;
        self.recipients.retain(|r| match r.try_send(event.clone()) {
            Ok(()) => true,
            Err(SendError::Full(_)) => {
                dropped += 1;
                true
            }
            Err(SendError::Closed(_)) => false,
        });
        self.channels.retain(|c| match c.try_send(event.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                dropped += 1;
                true
            }
            Err(TrySendError::Closed(_)) => false,
        });
        self.dropped += dropped;
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Message)]
    #[rtype(result = "()")]
    struct Ev(u32);

    #[actix_rt::test]
    async fn a_stream_that_is_not_read_holds_its_capacity_and_counts_the_rest() {
        let mut subs = Subscribers::<Ev>::default();
        let (mut stream, SubscribeChannel(tx)) = EventStream::with_capacity(4);
        subs.add_channel(tx);
        for i in 0..10 {
            subs.publish(Ev(i));
        }
        assert_eq!(subs.dropped(), 6);
        for i in 0..4 {
            assert_eq!(stream.recv().await, Some(Ev(i)));
        }
        subs.publish(Ev(99));
        assert_eq!(stream.recv().await, Some(Ev(99)));
        assert_eq!(subs.dropped(), 6);
    }

    #[actix_rt::test]
    async fn a_closed_stream_is_forgotten() {
        let mut subs = Subscribers::<Ev>::default();
        let (stream, SubscribeChannel(tx)) = EventStream::new();
        subs.add_channel(tx);
        drop(stream);
        assert_eq!(subs.publish(Ev(1)), 0);
        assert!(subs.is_empty());
    }
}
