//! Socket inventory: every listening TCP socket and unconnected UDP socket of this
//! machine (sock_diag, or procfs where the kernel has no sock_diag for a protocol), with
//! its owner when visible. Owners of other users' sockets need
//! root; they are reported as not visible, never guessed.

use std::collections::HashMap;
use std::net::SocketAddr;

use lanreach_proto::addr::canonical;
use lanreach_proto::defaults::V6ONLY_PROBE_TIMEOUT;
use lanreach_proto::facts::{CheckedPort, SocketFact};
use lanreach_proto::vocab::Proto;
use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP};
use netlink_packet_sock_diag::inet::nlas::Nla;
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_sys::Socket;
use netlink_sys::protocols::NETLINK_SOCK_DIAG;

/// Longest command line kept (framework recognition needs only the start).
const CMDLINE_MAX: usize = 512;

/// The listening sockets of this machine.
#[derive(Debug, Clone, Default)]
pub(crate) struct Inventory {
    /// Every listening socket (`pid: None` where the owner is not visible).
    pub sockets: Vec<SocketFact>,
}

#[derive(Debug, Clone)]
struct Owner {
    pid: u32,
    program: String,
    cmdline: String,
}

/// Maps socket inodes to the processes holding them, as far as this user can see
/// (other users' fds are unreadable without root: their sockets get no owner).
fn owners() -> HashMap<u64, Owner> {
    let mut map = HashMap::new();
    let Ok(processes) = procfs::process::all_processes() else { return map };
    for process in processes.flatten() {
        let Ok(fds) = process.fd() else { continue };
        let mut owner: Option<Owner> = None;
        for fd in fds.flatten() {
            if let procfs::process::FDTarget::Socket(inode) = fd.target {
                let o = owner.get_or_insert_with(|| {
                    let program = process.stat().map(|s| s.comm).unwrap_or_default();
                    let mut cmdline = process.cmdline().map(|c| c.join(" ")).unwrap_or_default();
                    cmdline.truncate(CMDLINE_MAX);
                    Owner { pid: u32::try_from(process.pid).unwrap_or(0), program, cmdline }
                });
                map.entry(inode).or_insert_with(|| o.clone());
            }
        }
    }
    map
}

/// A bound socket: protocol, address, inode, and IPV6_V6ONLY where the kernel said.
type Found = (Proto, SocketAddr, u64, Option<bool>);

/// The sockets of one family and protocol in `states`, by sock_diag: only those are
/// walked (`/proc/net/tcp` walks the whole connection table, which with thousands of
/// probes' connections cost more than the rest of a round), and an IPv6 socket comes
/// with its IPV6_V6ONLY. `None` when the kernel does not answer (no sock_diag for that
/// protocol): the caller reads `/proc` instead.
fn diag(family: u8, protocol: u8, states: StateFlags, proto: Proto) -> Option<Vec<Found>> {
    let mut socket = Socket::new(NETLINK_SOCK_DIAG).ok()?;
    socket.bind_auto().ok()?;
    socket.connect(&netlink_sys::SocketAddr::new(0, 0)).ok()?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let socket_id = if family == AF_INET { SocketId::new_v4() } else { SocketId::new_v6() };
    let request = InetRequest { family, protocol, extensions: ExtensionFlags::empty(), states, socket_id };
    let mut packet = NetlinkMessage::new(header, SockDiagMessage::InetRequest(request).into());
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket.send(&buf, 0).ok()?;
    let mut found = Vec::new();
    let mut receive = vec![0u8; 64 * 1024];
    loop {
        let size = socket.recv(&mut &mut receive[..], 0).ok()?;
        let mut offset = 0;
        while offset < size {
            let message = NetlinkMessage::<SockDiagMessage>::deserialize(receive.get(offset..size)?).ok()?;
            match message.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                    let id = &r.header.socket_id;
                    let v6only = r.nlas.iter().find_map(|n| match n {
                        Nla::SkV6Only(v) => Some(*v),
                        _ => None,
                    });
                    let bind = canonical(SocketAddr::new(id.source_address, id.source_port));
                    found.push((proto, bind, u64::from(r.header.inode), v6only));
                }
                NetlinkPayload::Done(_) => return Some(found),
                NetlinkPayload::Error(_) => return None,
                _ => {}
            }
            let length = usize::try_from(message.header.length).unwrap_or(0);
            if length == 0 {
                break;
            }
            offset += length;
        }
    }
}

/// The table `/proc` gives for one family and protocol: listening TCP sockets, or UDP
/// sockets with no peer.
fn from_proc(family: u8, proto: Proto) -> Vec<Found> {
    let mut found = Vec::new();
    match proto {
        Proto::Tcp => {
            let table = if family == AF_INET { procfs::net::tcp() } else { procfs::net::tcp6() };
            for e in table.into_iter().flatten().filter(|e| e.state == procfs::net::TcpState::Listen) {
                found.push((Proto::Tcp, canonical(e.local_address), e.inode, None));
            }
        }
        Proto::Udp => {
            let table = if family == AF_INET { procfs::net::udp() } else { procfs::net::udp6() };
            for e in table.into_iter().flatten().filter(|e| e.remote_address.port() == 0) {
                found.push((Proto::Udp, canonical(e.local_address), e.inode, None));
            }
        }
    }
    found
}

/// Every listening socket of this machine's network namespace.
pub(crate) fn listening() -> Inventory {
    let mut found: Vec<Found> = Vec::new();
    for family in [AF_INET, AF_INET6] {
        for (proto, protocol, states) in [
            (Proto::Tcp, IPPROTO_TCP, StateFlags::LISTEN),
            // An unconnected UDP socket is in TCP_CLOSE; a connected one is established.
            (Proto::Udp, IPPROTO_UDP, StateFlags::CLOSE),
        ] {
            found.extend(diag(family, protocol, states, proto).unwrap_or_else(|| from_proc(family, proto)));
        }
    }
    let owners = owners();
    let mut sockets = Vec::new();
    for &(proto, bind, inode, said) in &found {
        let owner = owners.get(&inode);
        // A [::] socket beside a 0.0.0.0 socket on the same port must be IPv6-only.
        let v6only = (bind.is_ipv6() && bind.ip().is_unspecified()).then(|| {
            let beside_v4 = found.iter().any(|(p, b, _, _)| *p == proto && b.is_ipv4() && b.port() == bind.port());
            // Otherwise, without sock_diag, /proc does not say; see `refine_v6only`.
            said.or(beside_v4.then_some(true))
        });
        let v6only = v6only.flatten();
        sockets.push(SocketFact {
            proto,
            bind,
            v6only,
            pid: owner.map(|o| o.pid),
            program: owner.map(|o| o.program.clone()),
            cmdline: owner.map(|o| o.cmdline.clone()),
        });
    }
    sockets.sort_by_key(|s| (s.proto, s.bind.port(), s.bind.is_ipv6(), s.bind.ip()));
    sockets.dedup_by(|a, b| a.proto == b.proto && a.bind == b.bind);
    Inventory { sockets }
}

/// The system default for IPv6 sockets that do not choose: net.ipv6.bindv6only.
pub(crate) fn bindv6only_default() -> Option<bool> {
    std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only").ok().map(|v| v.trim() == "1")
}

/// Settles IPV6_V6ONLY of `[::]` TCP sockets that /proc left open (a kernel without
/// sock_diag for TCP; sock_diag says it exactly), by dialling the port
/// on 127.0.0.1 (nothing else listens there for IPv4, or the socket would be known):
/// accepted means dual-stack, refused means IPv6-only. Falls back to the system default.
pub(crate) async fn refine_v6only(sockets: &mut [SocketFact]) {
    for s in sockets.iter_mut() {
        if s.v6only.is_some() || !(s.bind.is_ipv6() && s.bind.ip().is_unspecified()) {
            continue;
        }
        let probe = SocketAddr::from(([127, 0, 0, 1], s.bind.port()));
        let answer = if s.proto == Proto::Tcp {
            tokio::time::timeout(V6ONLY_PROBE_TIMEOUT, tokio::net::TcpStream::connect(probe)).await.ok()
        } else {
            None
        };
        s.v6only = match answer {
            Some(Ok(_)) => Some(false),
            Some(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Some(true),
            _ => bindv6only_default(),
        };
    }
}

impl Inventory {
    /// The sockets on `port`.
    pub(crate) fn for_port(&self, port: CheckedPort) -> Vec<SocketFact> {
        self.sockets.iter().filter(|s| s.proto == port.proto && s.bind.port() == port.port).cloned().collect()
    }

    /// Every listening TCP port except `skip` (this agent's own) and those of any
    /// lanreach agent (another one's test listeners are not the user's services), for
    /// `--exposed`.
    pub(crate) fn tcp_ports(&self, skip: &[u16]) -> Vec<CheckedPort> {
        let mut ports: Vec<u16> = self
            .sockets
            .iter()
            .filter(|s| s.proto == Proto::Tcp && !skip.contains(&s.bind.port()) && !is_lanreach(s))
            .map(|s| s.bind.port())
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports.into_iter().map(|port| CheckedPort { port, proto: Proto::Tcp }).collect()
    }
}

/// Whether a lanreach agent owns `socket` (its test listeners), by the program's name or
/// the file name of its command's first word. A socket whose owner is not visible
/// (another user's agent, without root) cannot be told apart.
fn is_lanreach(socket: &SocketFact) -> bool {
    const AGENT: &str = "lanreach-agent";
    let first = socket.cmdline.as_deref().and_then(|c| c.split_whitespace().next()).unwrap_or("");
    socket.program.as_deref() == Some(AGENT) || first.rsplit('/').next() == Some(AGENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_our_own_listeners_with_their_owner() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = tcp.local_addr().expect("addr").port();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let uport = udp.local_addr().expect("addr").port();
        let inv = listening();
        let t = inv.for_port(CheckedPort { port, proto: Proto::Tcp });
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(t[0].bind, tcp.local_addr().expect("addr"));
        assert_eq!(t[0].pid, Some(std::process::id()), "we can always see our own sockets");
        let u = inv.for_port(CheckedPort { port: uport, proto: Proto::Udp });
        assert_eq!(u.len(), 1, "{u:?}");
        assert!(inv.tcp_ports(&[]).contains(&CheckedPort { port, proto: Proto::Tcp }));
        assert!(!inv.tcp_ports(&[port]).contains(&CheckedPort { port, proto: Proto::Tcp }));
    }

    /// sock_diag says IPV6_V6ONLY of a lone `[::]` socket, both ways, without dialling
    /// it; a connected UDP socket is no listener.
    #[test]
    fn the_kernel_says_whether_a_wildcard_ipv6_socket_is_ipv6_only() {
        let v6 = |only: bool| {
            let s = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None).expect("socket");
            s.set_only_v6(only).expect("v6only");
            s.bind(&SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)).into()).expect("bind");
            s.listen(8).expect("listen");
            let port = s.local_addr().expect("addr").as_socket().expect("inet").port();
            (s, port)
        };
        let ((_only, only), (_dual, dual)) = (v6(true), v6(false));
        let connected = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        connected.connect("127.0.0.1:9").expect("connect");
        let cport = connected.local_addr().expect("addr").port();
        let inv = listening();
        let v6only = |port| inv.for_port(CheckedPort { port, proto: Proto::Tcp }).first().and_then(|s| s.v6only);
        assert_eq!((v6only(only), v6only(dual)), (Some(true), Some(false)), "{:?}", inv.sockets);
        assert!(inv.for_port(CheckedPort { port: cport, proto: Proto::Udp }).is_empty());
    }

    #[test]
    fn another_agents_listeners_are_not_audited() {
        let sock = |port: u16, program: &str, cmdline: &str| SocketFact {
            proto: Proto::Tcp,
            bind: SocketAddr::from(([0, 0, 0, 0], port)),
            v6only: None,
            pid: Some(1),
            program: Some(program.into()),
            cmdline: Some(cmdline.into()),
        };
        let inv = Inventory {
            sockets: vec![
                sock(40001, "lanreach-agent", "/usr/local/bin/lanreach-agent --once"),
                sock(40002, "tokio-runtime-w", "/tmp/target/debug/lanreach-agent --check 3000"),
                sock(5432, "postgres", "postgres -D /var/lib/postgresql"),
            ],
        };
        assert_eq!(inv.tcp_ports(&[]), [CheckedPort { port: 5432, proto: Proto::Tcp }]);
    }

    #[test]
    fn a_wildcard_pair_marks_the_ipv6_socket_v6only() {
        let v4 = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
        let port = v4.local_addr().expect("addr").port();
        let s = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None).expect("socket");
        s.set_only_v6(true).expect("v6only");
        let addr: SocketAddr = format!("[::]:{port}").parse().expect("addr");
        if s.bind(&addr.into()).is_err() {
            return; // no IPv6 here
        }
        s.listen(1).expect("listen");
        let inv = listening();
        let six = inv.for_port(CheckedPort { port, proto: Proto::Tcp }).into_iter().find(|f| f.bind.is_ipv6());
        assert_eq!(six.expect("the :: socket").v6only, Some(true));
    }
}
