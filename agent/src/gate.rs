//! The door of the control channel: the admission rules of `lanreach_proto::admission`
//! applied to quinn's incoming connections. Each admitted connection holds a [`Pass`]:
//! its place in the unauthenticated pool (which a newcomer may take, waking
//! [`Pass::evicted`]) and then in the pool of sessions. Dropping the pass frees the place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use lanreach_proto::addr::Source;
use lanreach_proto::admission::{Admission, Decision, NoSession, Refusal, Ticket};
use lanreach_proto::sync::lock;
use tokio::sync::Notify;
use tokio::time::Instant;

/// What to do with an incoming connection.
pub(crate) enum Entry {
    /// Serve it.
    Pass(Pass),
    /// Answer with a QUIC Retry.
    Retry,
    /// Refuse it.
    Refuse(Refusal),
}

/// The agent's admission state, shared by every control endpoint.
#[derive(Default)]
pub(crate) struct Gate {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    rules: Admission,
    /// How to tell each unauthenticated connection that it lost its place.
    evict: HashMap<Ticket, Arc<Notify>>,
}

impl Gate {
    /// Decides about a connection from `source` (`validated`: it came back with a Retry
    /// token), and tells the connection whose place it takes.
    pub(crate) fn arrive(self: &Arc<Self>, source: Source, validated: bool) -> Entry {
        let now = Instant::now().into_std();
        let mut inner = lock(&self.inner);
        match inner.rules.arrive(source, validated, now) {
            Decision::Admit { ticket, evict } => {
                if let Some(notify) = evict.and_then(|old| inner.evict.remove(&old)) {
                    notify.notify_one();
                }
                let evicted = Arc::new(Notify::new());
                inner.evict.insert(ticket, evicted.clone());
                Entry::Pass(Pass { gate: self.clone(), ticket, evicted })
            }
            Decision::Retry => Entry::Retry,
            Decision::Refuse(why) => Entry::Refuse(why),
        }
    }
}

/// One connection's place.
pub(crate) struct Pass {
    gate: Arc<Gate>,
    ticket: Ticket,
    evicted: Arc<Notify>,
}

impl Pass {
    /// Completes when a newcomer has taken this connection's place (never once it is a
    /// session).
    pub(crate) async fn evicted(&self) {
        self.evicted.notified().await;
    }

    /// The connection authenticated: it moves to the pool of sessions.
    pub(crate) fn authenticated(&self) -> Result<(), NoSession> {
        let mut inner = lock(&self.gate.inner);
        inner.evict.remove(&self.ticket);
        inner.rules.authenticated(self.ticket)
    }

    /// Whether the connection is an authenticated session.
    pub(crate) fn is_session(&self) -> bool {
        lock(&self.gate.inner).rules.is_session(self.ticket)
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        let mut inner = lock(&self.gate.inner);
        inner.evict.remove(&self.ticket);
        inner.rules.leave(self.ticket);
    }
}
