//! What both binaries need around the core: identity files, QUIC/TLS configuration,
//! trust files and the host's interfaces. Behind the `endpoint` feature, so that the
//! core itself stays free of IO.

pub mod discovery;
pub mod engine;
pub mod identity;
pub mod interfaces;
pub mod quic;
pub mod store;
pub mod term;

use std::path::PathBuf;

/// Where a role (`agent` or `peer`) keeps its identity and trust files by default:
/// `$XDG_CONFIG_HOME/lanreach/ROLE` (or the platform's config directory).
pub fn default_state_dir(role: &str) -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("lanreach").join(role))
}

/// This machine's host name, or `unknown` when it cannot be read.
pub fn host_name() -> String {
    hostname::get().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "unknown".to_owned())
}

/// Operating system and architecture, with the kernel release where known
/// (e.g. `linux 6.8.0-45-generic x86_64`).
pub fn os_description() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok();
    match release {
        Some(r) => format!("{} {} {}", std::env::consts::OS, r.trim(), std::env::consts::ARCH),
        None => format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
    }
}
