//! lanreach-peer: the outside view. It finds and pairs with an agent over the
//! authenticated QUIC control channel, probes the agent's machine from this device, and
//! prints the agent's report.
//!
//! # Map
//!
//! | module | what lives there |
//! |---|---|
//! | `app` | `main`: flags → [`Config`] → the command → an exit code; candidates from an address, a link or mDNS |
//! | [`cli`] | the command line, validated once into a [`Config`] |
//! | [`connect`] | one session: the agent's addresses resolved (mDNS for `NAME.local`), QUIC raced to them under a deadline, key pins, handshake, Hello, round trip, the probe run, the report |
//! | [`race`] | happy eyeballs: handshakes to every address, staggered; the first with the right key wins, the others are closed unused |
//! | [`known`] | the known-agents file (pinned agent keys) |
//! | `nopath` | when nothing answers: this device's own facts (addresses, the route's interface, ICMP errors on a side probe, the agent's page, the neighbour table), from which `lanreach_proto::nopath` names the cause |
//! | `render` | everything the peer prints (session header, progress, errors, discovery results) |
//!
//! The protocol, the plan checks, the probe engine and the report are in
//! `lanreach-proto`; this crate owns the connection, the terminal and the exit code.

mod app;
pub mod cli;
pub mod connect;
pub mod known;
mod nopath;
pub mod race;
mod render;
pub use lanreach_proto::target;

pub use app::{EXIT_ERROR, EXIT_STOPPED, EXIT_UNREACHABLE, main};
pub use cli::{Cli, Config};
pub use connect::{Completed, PeerError};
