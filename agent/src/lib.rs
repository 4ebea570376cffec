//! lanreach-agent: the host side. It holds this machine's identity, opens the test
//! listeners, serves peers on the authenticated QUIC control channel, gathers the inside
//! facts and keeps the list of trusted peers.
//!
//! # Map
//!
//! | module | what lives there |
//! |---|---|
//! | `app` | `main`: flags → [`Config`] → the command → an exit code; `serve` wires the rest together |
//! | [`cli`] | the command line, validated once into a [`Config`] |
//! | [`control`] | the QUIC endpoint: accepting connections, the handshake and one peer's session under deadlines |
//! | `gate` | admission at the door: a place per connection in the unauthenticated pool or the pool of sessions |
//! | `web` | the browser page's HTTP server: limits, parsing, the page and its Content-Security-Policy, the link's token |
//! | `browser` | the browser peer: the page's plan and results, joined into a `browser` report |
//! | [`listeners`] | the test listeners (TCP and UDP on every bind address that matters) and the knock they answer |
//! | `inside` | the agent's inside view of a run: plan targets, the plan, the inside facts about `--check` ports |
//! | `sockets` | the socket inventory from /proc (which program listens where) |
//! | `firewall` | the firewall's configuration read from `nft`, `iptables-save`, ufw and firewalld (evaluated in `lanreach_proto::firewall`) |
//! | `conntrack` | the connection-tracking table, read while the peer probes: which UDP datagrams passed the firewall |
//! | `docker` | Docker's publications and the sockets inside containers (Engine API), only where the engine shares the agent's network namespace |
//! | `local` | `--local`: the single-machine self-check |
//! | [`trust`] | the trusted-peers file |
//! | `render` | everything the agent prints (banner, pairing code with its link, events, errors, peer lists) |
//! | `qr` | the pairing link as a QR code on a terminal (explicit colours, or light on dark) |
//! | `screen` | when it prints it: failures from outside rate-limited, the current pairing code last |
//! | `gate` | admission before authentication: the unauthenticated pool, per-source shares, QUIC Retry under load |
//!
//! The protocol, the rules and the report are in `lanreach-proto`; this crate owns
//! sockets, tasks, timers and the terminal.

mod app;
mod browser;
pub mod cli;
mod conntrack;
pub mod control;
mod docker;
mod firewall;
mod gate;
mod inside;
pub mod listeners;
mod local;
mod qr;
mod render;
mod screen;
mod sockets;
pub mod trust;
mod web;

pub use app::{EXIT_ERROR, EXIT_UNREACHABLE, main, run};
pub use cli::{Cli, Config};
pub use control::{Agent, AgentError, Event};
