//! What a UDP probe of one of the user's ports sends: requests that make common services
//! answer, chosen by the port number and tried in turn.
//!
//! A UDP server answers only what it understands, and its silence proves nothing: the
//! datagram may have been dropped on the way or ignored on arrival. So one attempt sends,
//! one after the other, [`UDP_PAYLOAD_GAP`](crate::defaults::UDP_PAYLOAD_GAP) apart, until something answers or an error
//! comes back: the request of the service the port number names (DNS on 53, mDNS on 5353,
//! NTP on 123, SSDP on 1900, STUN on 3478/3479/5349/19302, QUIC on 443/784/853/4433/8443
//! and lanreach's own control port), then the empty datagram (echo servers and many
//! custom protocols), then the other common requests in a fixed order. Each is a plain,
//! harmless question (the root's name servers, the time, a STUN binding, a QUIC version
//! the server cannot speak), at most [`MAX_UDP_PAYLOADS`] datagrams per attempt. A closed
//! port answers the first with ICMP port-unreachable, which ends the attempt: the rest
//! go only to ports where something listens or a firewall drops.
//!
//! The peer derives the list from the port alone: the plan carries no payloads, so an
//! agent cannot make a peer send arbitrary bytes.

use crate::defaults::{DEFAULT_CONTROL_PORT, MAX_UDP_PAYLOADS};

/// A request a UDP service may answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Payload {
    /// The empty datagram: echo servers answer it, and so do many custom protocols.
    Empty,
    /// A DNS query for the root's name servers (recursion desired): a resolver or an
    /// authoritative server answers it, if only with REFUSED.
    Dns,
    /// An mDNS question for `_services._dns-sd._udp.local`, from a port other than 5353
    /// (a legacy unicast query, which responders answer by unicast).
    Mdns,
    /// An NTP version 4 client request.
    Ntp,
    /// An SSDP `M-SEARCH` for every device (UPnP), sent by unicast.
    Ssdp,
    /// A STUN binding request (RFC 8489), as WebRTC and VoIP servers answer.
    Stun,
    /// A QUIC long-header packet of a reserved version (`0x1a2a3a4a`), padded to 1200
    /// bytes: a QUIC server answers it with Version Negotiation (RFC 9000 §6).
    QuicVersionNegotiation,
}

/// The requests tried after the port's own and the empty datagram, in order.
const OTHERS: [Payload; 5] =
    [Payload::Dns, Payload::Stun, Payload::QuicVersionNegotiation, Payload::Ntp, Payload::Ssdp];

/// The DNS and mDNS query ID ("LR").
const QUERY_ID: [u8; 2] = *b"LR";

impl Payload {
    /// The request the service usually found on `port` answers, if the port names one.
    pub fn of_port(port: u16) -> Option<Payload> {
        Some(match port {
            53 => Payload::Dns,
            5353 => Payload::Mdns,
            123 => Payload::Ntp,
            1900 => Payload::Ssdp,
            3478 | 3479 | 5349 | 19302 => Payload::Stun,
            443 | 784 | 853 | 4433 | 8443 | DEFAULT_CONTROL_PORT => Payload::QuicVersionNegotiation,
            _ => return None,
        })
    }

    /// A short name for messages: `DNS query`, `empty datagram`…
    pub fn name(self) -> &'static str {
        match self {
            Payload::Empty => "empty datagram",
            Payload::Dns => "DNS query",
            Payload::Mdns => "mDNS query",
            Payload::Ntp => "NTP request",
            Payload::Ssdp => "SSDP M-SEARCH",
            Payload::Stun => "STUN binding request",
            Payload::QuicVersionNegotiation => "QUIC Initial of an unknown version",
        }
    }

    /// The datagram.
    pub fn bytes(self) -> Vec<u8> {
        match self {
            Payload::Empty => Vec::new(),
            Payload::Dns => dns_query(&[], 2, 1, true),
            // PTR, class IN with the "unicast response" bit.
            Payload::Mdns => dns_query(&["_services", "_dns-sd", "_udp", "local"], 12, 0x8001, false),
            Payload::Ntp => {
                let mut d = vec![0u8; 48];
                // LI 0, version 4, mode 3 (client).
                d[0] = 0x23;
                // A transmit timestamp, which some servers require to answer.
                d[40..48].copy_from_slice(b"lanreach");
                d
            }
            Payload::Ssdp => b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n".to_vec(),
            Payload::Stun => {
                // Binding request, no attributes, the magic cookie, a transaction ID.
                let mut d = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
                d.extend_from_slice(b"lanreach-req");
                d
            }
            Payload::QuicVersionNegotiation => {
                // Long header (form and fixed bits), a version no server speaks, 8-byte
                // connection IDs; a server only reads this far (RFC 8999) and answers a
                // datagram of at least 1200 bytes with the versions it does speak.
                let mut d = vec![0xc0, 0x1a, 0x2a, 0x3a, 0x4a, 8];
                d.extend_from_slice(b"lanreach");
                d.push(8);
                d.extend_from_slice(b"lr-probe");
                d.resize(1200, 0);
                d
            }
        }
    }
}

/// A DNS query for `labels` (the root when empty) of `qtype` and `qclass`.
fn dns_query(labels: &[&str], qtype: u16, qclass: u16, recursion: bool) -> Vec<u8> {
    let mut d = QUERY_ID.to_vec();
    d.extend_from_slice(&[u8::from(recursion), 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
    for label in labels {
        // Our own fixed labels, all shorter than 64 bytes.
        d.push(u8::try_from(label.len()).unwrap_or(63));
        d.extend_from_slice(label.as_bytes());
    }
    d.push(0);
    d.extend_from_slice(&qtype.to_be_bytes());
    d.extend_from_slice(&qclass.to_be_bytes());
    d
}

/// The requests one attempt at `port` sends, in order: the port's own, the empty
/// datagram, then the others; never more than [`MAX_UDP_PAYLOADS`].
pub fn for_port(port: u16) -> Vec<Payload> {
    let mut out: Vec<Payload> = Payload::of_port(port).into_iter().collect();
    for p in std::iter::once(Payload::Empty).chain(OTHERS) {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out.truncate(MAX_UDP_PAYLOADS);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_chooses_the_first_request_and_the_rest_follow() {
        assert_eq!(
            for_port(5060),
            [Payload::Empty, Payload::Dns, Payload::Stun, Payload::QuicVersionNegotiation, Payload::Ntp, Payload::Ssdp]
        );
        assert_eq!(for_port(53)[..2], [Payload::Dns, Payload::Empty]);
        assert_eq!(for_port(53).len(), 6, "DNS is not sent twice");
        assert_eq!(for_port(5353)[0], Payload::Mdns);
        assert_eq!(for_port(123)[0], Payload::Ntp);
        assert_eq!(for_port(1900)[0], Payload::Ssdp);
        assert_eq!(for_port(3478)[0], Payload::Stun);
        assert_eq!(for_port(443)[0], Payload::QuicVersionNegotiation);
        assert_eq!(for_port(DEFAULT_CONTROL_PORT)[0], Payload::QuicVersionNegotiation);
        for port in [1, 53, 123, 443, 1900, 3478, 5353, 65535] {
            assert!(for_port(port).len() <= MAX_UDP_PAYLOADS, "{port}");
        }
    }

    /// Fixed bytes: what goes on the wire is reviewed here.
    #[test]
    fn requests_are_well_formed() {
        assert!(Payload::Empty.bytes().is_empty());
        assert_eq!(Payload::Dns.bytes(), b"LR\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x01");
        let mdns = Payload::Mdns.bytes();
        assert_eq!(&mdns[12..], b"\x09_services\x07_dns-sd\x04_udp\x05local\x00\x00\x0c\x80\x01");
        let ntp = Payload::Ntp.bytes();
        assert_eq!((ntp.len(), ntp[0]), (48, 0x23));
        let stun = Payload::Stun.bytes();
        assert_eq!((stun.len(), &stun[..8]), (20, &[0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42][..]));
        let quic = Payload::QuicVersionNegotiation.bytes();
        assert_eq!((quic.len(), &quic[..6]), (1200, &[0xc0, 0x1a, 0x2a, 0x3a, 0x4a, 8][..]));
        assert!(Payload::Ssdp.bytes().starts_with(b"M-SEARCH * HTTP/1.1\r\n"));
    }
}
