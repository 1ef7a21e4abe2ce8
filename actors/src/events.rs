//! Event streams of the public actors: `Subscribe(Recipient<E>)` and `events()`.
//!
//! Every public actor keeps a [`Subscribers`] list. Subscribers are actix recipients or
//! channel-backed [`EventStream`]s; closed ones are dropped on the next publish.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix::{Message, Recipient};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// Registers a recipient for an actor's events.
pub struct Subscribe<E: Message<Result = ()> + Send>(pub Recipient<E>);

impl<E: Message<Result = ()> + Send> Message for Subscribe<E> {
    type Result = ();
}

/// Registers a channel for an actor's events; see [`EventStream`].
pub struct SubscribeChannel<E>(pub UnboundedSender<E>);

impl<E: 'static> Message for SubscribeChannel<E> {
    type Result = ();
}

/// The events of one actor as a `Stream`.
#[derive(Debug)]
pub struct EventStream<E>(UnboundedReceiver<E>);

impl<E> EventStream<E> {
    /// A stream and the message that connects it to an actor.
    pub fn new() -> (Self, SubscribeChannel<E>) {
        let (tx, rx) = unbounded_channel();
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
    channels: Vec<UnboundedSender<E>>,
}

impl<E: Message<Result = ()> + Send> Default for Subscribers<E> {
    fn default() -> Self {
        Subscribers {
            recipients: Vec::new(),
            channels: Vec::new(),
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
    pub fn add_channel(&mut self, tx: UnboundedSender<E>) {
        self.channels.push(tx);
    }

    /// Whether anyone listens.
    pub fn is_empty(&self) -> bool {
        self.recipients.is_empty() && self.channels.is_empty()
    }

    /// Hands `event` to every live subscriber.
    pub fn publish(&mut self, event: E) {
        self.recipients.retain(|r| r.connected());
        self.channels.retain(|c| !c.is_closed());
        for r in &self.recipients {
            r.do_send(event.clone());
        }
        for c in &self.channels {
            let _ = c.send(event.clone());
        }
    }
}
