//! The lanreach core: wire messages, framing, pairing and identities — no sockets.
//!
//! Everything here is pure except [`channel`] and [`handshake`], which drive the
//! protocol over any `AsyncRead`/`AsyncWrite` pair (a QUIC stream in the binaries, an
//! in-memory pipe in tests) and never read the clock: callers put deadlines around them. The
//! `endpoint` feature adds what both binaries share around the core: identity files,
//! QUIC/TLS set-up, trust files and interface enumeration.

pub mod channel;
pub mod code;
pub mod codec;
pub mod diagnose;
pub mod handshake;
pub mod id;
pub mod iface;
pub mod knock;
pub mod link;
pub mod msg;
pub mod pairing;
pub mod plan;
pub mod report;
pub mod service;
pub mod sync;
pub mod target;

#[cfg(feature = "endpoint")]
pub mod endpoint;

pub use code::{CodeBook, CodeChange, PairingCode};
pub use id::KeyId;
pub use msg::Message;
