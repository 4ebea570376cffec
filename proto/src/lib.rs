//! The lanreach core: the wire protocol, pairing, probe plans, the probe-run rules, the
//! report and the diagnosis rules — no sockets, no clock.
//!
//! # Map
//!
//! The modules form one direction: each imports only from modules listed above it.
//!
//! | layer | module | what lives there |
//! |---|---|---|
//! | constants | [`defaults`] | protocol version, ALPN, port, close codes, every deadline and how they relate |
//! | vocabulary | [`vocab`] | `Proto`, `Outcome`, listener specs, planned probes, raw results, listener hits |
//! | | [`addr`] | canonical addresses, interface kinds (LAN, VPN, container bridge…) |
//! | | [`text`], [`sync`] | network text made safe for a terminal, an error printed with its causes, text measured and word-wrapped to a width; a lock that survives a poisoned mutex |
//! | admission | [`admission`] | the agent before authentication: the unauthenticated pool (per-source shares, making room, Retry) and the pool of sessions |
//! | identities | [`id`], [`code`], [`pairing`], [`knock`] | key IDs, pairing codes, SPAKE2 + key confirmation, the listener knock MAC |
//! | addressing | [`target`], [`link`], [`nopath`] | `HOST[:PORT]` and `lanreach://` pairing links; when the devices cannot reach each other, the cause named from the peer's own facts |
//! | plan | [`plan`] | building a probe plan (agent) and refusing a hostile one (peer) |
//! | | [`payload`] | what a UDP probe of a user's port sends: requests common services answer, chosen by the port |
//! //! | | [`icmp`] | the agent's ICMP counters: whether its host sent or suppressed an ICMP error while a peer probed |
//! | run rules | [`run`] | the probe run as a state machine: knock first, the user's ports first, one retry after silence (a quiet re-probe after the ICMP rate-limit window where reject-versus-drop matters), UDP spacing, bounded concurrency, the run deadline |
//! | wire | [`msg`], [`codec`], [`channel`] | the message enum and type numbers, frames, a framed stream |
//! | conversation | [`handshake`], [`conversation`] | version check and authentication; then Hello, plan, pings, results, report |
//! | firewall | [`firewall`] | the host firewall's rules read from nftables JSON, `iptables-save`, ufw and firewalld as one model, and the input path of a packet from another host walked through it |
//! | report types | [`facts`], [`report`] | inside facts and `--check` parsing; the `lanreach.report/1` schema |
//! | browser | [`browser`] | the browser peer: what a page can test, its plan (URLs, WebRTC answers), its observations turned into probe results, what the page shows |
//! | rules | [`verdict`], [`fixes`], [`diagnose`] | a port's verdict; program-specific fix texts; matrix findings |
//! | assembly | [`assemble`] | plan + results + listener hits + inside facts → report |
//! | rendering | [`render`], [`watch`] | the report on a terminal of a given width: tables where they fit, lists (verdict, cause and fix first) where not; what changed between two reports (watch mode) |
//!
//! [`channel`], [`handshake`] and [`conversation`] drive the protocol over any
//! `AsyncRead`/`AsyncWrite` pair (a QUIC stream in the binaries, an in-memory pipe in
//! tests) and never read the clock: callers put deadlines around them.
//!
//! The `endpoint` feature adds what both binaries share around the core
//! ([`endpoint`]): identity files, QUIC/TLS set-up, trust files, interface enumeration,
//! mDNS discovery and the probe engine, which drives [`run`] over real sockets.

pub mod addr;
pub mod admission;
pub mod assemble;
pub mod browser;
pub mod channel;
pub mod code;
pub mod codec;
pub mod conversation;
pub mod defaults;
pub mod diagnose;
pub mod facts;
pub mod firewall;
pub mod fixes;
pub mod handshake;
pub mod icmp;
pub mod id;
pub mod knock;
pub mod link;
pub mod msg;
pub mod nopath;
pub mod pairing;
pub mod payload;
pub mod plan;
pub mod render;
pub mod report;
pub mod run;
pub mod sync;
pub mod target;
pub mod text;
pub mod verdict;
pub mod vocab;
pub mod watch;

#[cfg(feature = "endpoint")]
pub mod endpoint;

pub use code::{CodeBook, CodeChange, PairingCode};
pub use id::KeyId;
pub use msg::Message;
