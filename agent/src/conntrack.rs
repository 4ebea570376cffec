//! The connection-tracking table of the agent's network namespace
//! (`/proc/net/nf_conntrack`), read while the peer probes: which UDP datagrams passed
//! this machine's firewall (see [`Conntrack`] for why the table tells that).
//!
//! The table is read every [`CONNTRACK_POLL`] from the plan to the results, so that an
//! entry made early in a long run is seen before it expires (unanswered UDP entries live
//! `nf_conntrack_udp_timeout`, 30 s by default). Only UDP entries to the ports that
//! matter are kept: the checked UDP ports, and the UDP test listeners' (whose entries
//! show whether the table tracks at all). Reading it needs root.

use std::collections::HashSet;
use std::io::BufRead;
use std::net::{IpAddr, SocketAddr};

use lanreach_proto::defaults::CONNTRACK_POLL;
use lanreach_proto::facts::{Conntrack, UdpFlow};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The table of this network namespace.
const TABLE: &str = "/proc/net/nf_conntrack";

/// Most flows kept from one run: a busy host's other UDP to the same ports cannot make
/// the agent hold more.
const MAX_FLOWS: usize = 4096;

/// A watch on the table for one run; [`Watch::finish`] ends it.
pub(crate) struct Watch {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Conntrack>>,
}

/// Starts watching the table for UDP flows to `ports`; with no ports, watches nothing.
pub(crate) fn watch(ports: Vec<u16>) -> Watch {
    if ports.is_empty() {
        return Watch { stop: None, task: None };
    }
    let (stop, mut stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut flows: HashSet<UdpFlow> = HashSet::new();
        loop {
            let ports_now = ports.clone();
            match tokio::task::spawn_blocking(move || read_table(&ports_now)).await {
                Ok(Ok(seen)) => flows.extend(seen.into_iter().take(MAX_FLOWS.saturating_sub(flows.len()))),
                Ok(Err(why)) => return Conntrack::Unreadable(why),
                Err(_) => return Conntrack::Unreadable("the reading task failed".into()),
            }
            if tokio::time::timeout(CONNTRACK_POLL, &mut stopped).await.is_ok() {
                // The results are in: read once more, for the last probes' datagrams.
                let last = tokio::task::spawn_blocking(move || read_table(&ports)).await;
                if let Ok(Ok(seen)) = last {
                    flows.extend(seen.into_iter().take(MAX_FLOWS.saturating_sub(flows.len())));
                }
                return Conntrack::Flows(flows.into_iter().collect());
            }
        }
    });
    Watch { stop: Some(stop), task: Some(task) }
}

impl Watch {
    /// Ends the watch: what the table showed.
    pub(crate) async fn finish(mut self) -> Conntrack {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap_or_else(|_| Conntrack::Unreadable("the reading task failed".into())),
            None => Conntrack::NotRead,
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The UDP flows to `ports` in the table now, or why it cannot be read.
fn read_table(ports: &[u16]) -> Result<Vec<UdpFlow>, String> {
    let file = std::fs::File::open(TABLE).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "this kernel has no /proc/net/nf_conntrack".to_owned(),
        std::io::ErrorKind::PermissionDenied => "reading it needs root".to_owned(),
        _ => format!("{TABLE}: {e}"),
    })?;
    let mut flows = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|e| format!("{TABLE}: {e}"))?;
        if let Some(flow) = parse_line(&line).filter(|f| ports.contains(&f.dst.port())) {
            flows.push(flow);
        }
    }
    Ok(flows)
}

/// The original direction of a UDP entry:
/// `ipv4 2 udp 17 29 src=A dst=B sport=P dport=Q [UNREPLIED] src=B dst=A …`.
fn parse_line(line: &str) -> Option<UdpFlow> {
    let mut fields = line.split_whitespace();
    let _family = fields.next()?;
    let _number = fields.next()?;
    if fields.next()? != "udp" {
        return None;
    }
    let (mut src, mut dst, mut sport, mut dport) = (None, None, None, None);
    for field in fields {
        let Some((key, value)) = field.split_once('=') else { continue };
        // The first of each key is the original direction; the reply repeats them.
        match key {
            "src" if src.is_none() => src = value.parse::<IpAddr>().ok(),
            "dst" if dst.is_none() => dst = value.parse::<IpAddr>().ok(),
            "sport" if sport.is_none() => sport = value.parse::<u16>().ok(),
            "dport" if dport.is_none() => dport = value.parse::<u16>().ok(),
            _ => {}
        }
    }
    Some(UdpFlow { src: SocketAddr::new(src?, sport?), dst: SocketAddr::new(dst?, dport?) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines recorded from `/proc/net/nf_conntrack` in a network namespace (kernel
    /// 6.18): an unanswered UDP flow of each family, an answered one, TCP and ICMP.
    const RECORDED: &str = "\
ipv4     2 udp      17 29 src=198.51.100.2 dst=198.51.100.1 sport=50225 dport=5061 [UNREPLIED] src=198.51.100.1 dst=198.51.100.2 sport=5061 dport=50225 mark=0 zone=0 use=2
ipv6     10 udp      17 29 src=2001:0db8:0001:0000:0000:0000:0000:0002 dst=2001:0db8:0001:0000:0000:0000:0000:0001 sport=38449 dport=5061 [UNREPLIED] src=2001:0db8:0001:0000:0000:0000:0000:0001 dst=2001:0db8:0001:0000:0000:0000:0000:0002 sport=5061 dport=38449 mark=0 zone=0 use=2
ipv4     2 udp      17 117 src=198.51.100.2 dst=198.51.100.1 sport=47801 dport=47800 src=198.51.100.1 dst=198.51.100.2 sport=47800 dport=47801 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 431999 ESTABLISHED src=198.51.100.2 dst=198.51.100.1 sport=41000 dport=3000 src=198.51.100.1 dst=198.51.100.2 sport=3000 dport=41000 [ASSURED] mark=0 zone=0 use=2
ipv4     2 icmp     1 29 src=198.51.100.2 dst=198.51.100.1 type=8 code=0 id=7 src=198.51.100.1 dst=198.51.100.2 type=0 code=0 id=7 mark=0 zone=0 use=2
";

    #[test]
    fn udp_entries_parse_in_their_original_direction() {
        let flows: Vec<UdpFlow> = RECORDED.lines().filter_map(parse_line).collect();
        let sa = |s: &str| -> SocketAddr { s.parse().expect("addr") };
        assert_eq!(
            flows,
            [
                UdpFlow { src: sa("198.51.100.2:50225"), dst: sa("198.51.100.1:5061") },
                UdpFlow { src: sa("[2001:db8:1::2]:38449"), dst: sa("[2001:db8:1::1]:5061") },
                UdpFlow { src: sa("198.51.100.2:47801"), dst: sa("198.51.100.1:47800") },
            ]
        );
        assert_eq!(parse_line("ipv4 2 udp 17 29 src=x dst=198.51.100.1 sport=1 dport=2"), None);
        assert_eq!(parse_line(""), None);
    }
}
