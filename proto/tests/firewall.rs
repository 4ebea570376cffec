//! The firewall evaluator over recorded configurations: `tests/firewall/*.json` are
//! `nft -j list ruleset` printed by nft 1.0.6 after loading the `.nft` file of the same
//! name into a fresh network namespace (`ip netns exec NS nft -f X.nft && ip netns exec
//! NS nft -j list ruleset`); `iptables_nft.*` the same for rules added with iptables-nft;
//! the ufw and firewalld files are those tools' outputs (they change machine-wide state,
//! so they are parsed from recordings, never run in tests).
//!
//! Each case is a packet from another host to one of the user's ports, and what the
//! rules do with it: accepted, dropped or rejected by the named rule, or not evaluated
//! with the construct that stopped it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::net::IpAddr;
use std::path::Path;

use lanreach_proto::firewall::{
    Decision, Firewall, IptablesVariant, Packet, PacketSource, Reject, RulesFrom, Ruleset, Sources, evaluate,
    firewalld, iptables, nft, ufw,
};
use lanreach_proto::vocab::Proto;

fn recorded(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/firewall").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn nft(name: &str) -> Ruleset {
    nft::parse(&recorded(name)).expect("recorded ruleset parses")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// A packet to `daddr:port` arriving on `iif` from `source` (an address, or `a/len`
/// for any host of a network).
fn packet(proto: Proto, daddr: &str, port: u16, iif: &str, source: &str) -> Packet {
    let source = match source.split_once('/') {
        Some((a, l)) => PacketSource::Network(ip(a), l.parse().expect("len")),
        None => PacketSource::Host(ip(source)),
    };
    Packet { proto, dport: port, daddr: ip(daddr), iif: Some(iif.into()), source }
}

fn tcp(port: u16, iif: &str, source: &str) -> Packet {
    packet(Proto::Tcp, "198.51.100.1", port, iif, source)
}

fn udp(port: u16, iif: &str, source: &str) -> Packet {
    packet(Proto::Udp, "198.51.100.1", port, iif, source)
}

fn tcp6(port: u16, iif: &str, source: &str) -> Packet {
    packet(Proto::Tcp, "2001:db8:1::1", port, iif, source)
}

/// `accepted`, `dropped by TEXT`, `rejected by TEXT`, or `not evaluated: WHY`.
fn says(d: &Decision) -> String {
    match d {
        Decision::Accepted(Some(r)) => format!("accepted by {}", r.text),
        Decision::Accepted(None) => "accepted".into(),
        Decision::Dropped(r) => format!("dropped by {}", r.text),
        Decision::Rejected(r, _) => format!("rejected by {}", r.text),
        Decision::Undecided(why) => format!("not evaluated: {why}"),
    }
}

/// Checks every `(packet, expected)` of a table; `expected` may end in `…` to match a
/// prefix.
fn table(rules: &Ruleset, cases: &[(Packet, &str)]) {
    let mut wrong = Vec::new();
    for (p, want) in cases {
        let got = says(&evaluate(rules, p));
        let ok = match want.strip_suffix('…') {
            Some(prefix) => got.starts_with(prefix),
            None => got == *want,
        };
        if !ok {
            wrong.push(format!("{p:?}\n   want {want}\n    got {got}"));
        }
    }
    assert!(wrong.is_empty(), "{} of {} cases wrong:\n{}", wrong.len(), cases.len(), wrong.join("\n"));
}

const LAN: &str = "198.51.100.0/24";

#[test]
fn the_issue_rule_drops_the_lan_interface_only() {
    let rules = nft("issue_drop.json");
    table(
        &rules,
        &[
            (tcp(8000, "eth0", LAN), "dropped by iifname \"eth0\" tcp dport 8000 drop"),
            (tcp6(8000, "eth0", "2001:db8:1::/64"), "dropped by iifname \"eth0\" tcp dport 8000 drop"),
            (tcp(8000, "wlan0", LAN), "accepted"),
            (tcp(8000, "lo", "198.51.100.1"), "accepted"),
            (udp(8000, "eth0", LAN), "accepted"),
            (tcp(8001, "eth0", LAN), "accepted"),
        ],
    );
    let Decision::Dropped(rule) = evaluate(&rules, &tcp(8000, "eth0", LAN)) else { panic!("dropped") };
    assert_eq!(
        (rule.from, rule.table.as_str(), rule.chain.as_str(), rule.handle),
        (RulesFrom::Nftables, "inet lanreach_test", "input", Some(2))
    );
}

#[test]
fn policies_and_anonymous_sets() {
    table(
        &nft("policy_drop.json"),
        &[
            (tcp(8000, "eth0", LAN), "accepted by tcp dport { 22, 8000 } accept"),
            (tcp(22, "eth0", "203.0.113.9"), "accepted by tcp dport { 22, 8000 } accept"),
            (tcp(9000, "eth0", LAN), "dropped by policy drop"),
            // mDNS is let in for its multicast address only, not for this machine's own.
            (udp(5353, "eth0", LAN), "dropped by policy drop"),
            (tcp(9000, "lo", "127.0.0.1"), "accepted by iif \"lo\" accept"),
        ],
    );
}

#[test]
fn jumps_gotos_returns_and_named_sets() {
    table(
        &nft("jumps_sets.json"),
        &[
            (tcp(8005, "eth0", LAN), "accepted by tcp dport @web accept"),
            (tcp(443, "eth0", "198.51.100.7"), "accepted by tcp dport @web accept"),
            // Not from the LAN set: back to input, where only SSH is let in.
            (tcp(8005, "eth0", "203.0.113.9"), "dropped by policy drop"),
            (tcp(22, "eth0", "203.0.113.9"), "accepted by tcp dport 22 accept"),
            (udp(5003, "eth0", LAN), "accepted by accept"),
            // udp_rules returns, from_lan ends, input goes on: no rule for UDP 5005.
            (udp(5005, "eth0", LAN), "dropped by policy drop"),
            (tcp(9000, "wg0", "203.0.113.9"), "accepted by tcp dport 9000 accept"),
            // A goto does not come back: from_vpn's return ends input, whose policy drops,
            // although input lets SSH in after the goto.
            (tcp(22, "wg0", "203.0.113.9"), "dropped by policy drop"),
            // `ip saddr` never matches an IPv6 packet, `!=` or not.
            (tcp6(3000, "eth0", "2001:db8:1::7"), "accepted by tcp dport 3000 ip6 saddr 2001:db8:1::/64 accept"),
            (tcp6(3000, "eth0", "2001:db8:9::7"), "dropped by policy drop"),
        ],
    );
}

#[test]
fn hooks_and_priorities_in_order() {
    table(
        &nft("priorities.json"),
        &[
            // An accept in one base chain does not stop a later base chain from dropping.
            (tcp(8000, "eth0", LAN), "dropped by ip daddr 198.51.100.1 tcp dport 8000 drop"),
            (tcp6(8000, "eth0", "2001:db8:1::/64"), "accepted by tcp dport 8000 accept"),
            (tcp6(8001, "eth0", "2001:db8:1::/64"), "dropped by tcp dport 8001 drop"),
            (tcp(8001, "eth0", LAN), "accepted"),
            // nft 1.0.6's JSON does not say which device an ingress chain is attached to.
            (
                udp(8002, "eth0", LAN),
                "not evaluated: it depends on which device netdev chain edge ingress is attached to…",
            ),
        ],
    );
    // Where it says (newer nft), the chain sees that device only.
    let mut rules = nft("priorities.json");
    for c in &mut rules.chains {
        if let Some(b) = c.base.as_mut().filter(|b| b.hook == lanreach_proto::firewall::Hook::Ingress) {
            b.devices = Some(vec!["eth0".into()]);
        }
    }
    table(&rules, &[(udp(8002, "eth0", LAN), "dropped by udp dport 8002 drop"), (udp(8002, "wlan0", LAN), "accepted")]);
    let Decision::Dropped(rule) = evaluate(&rules, &udp(8002, "eth0", LAN)) else { panic!() };
    assert_eq!((rule.table.as_str(), rule.chain.as_str()), ("netdev edge", "ingress"));
}

#[test]
fn rejects_verdict_maps_and_interface_mismatches() {
    let rules = nft("reject.json");
    table(
        &rules,
        &[
            (tcp(7000, "eth0", LAN), "rejected by tcp dport 7000 reject with tcp reset"),
            (udp(7001, "eth0", LAN), "rejected by udp dport 7001 reject with icmpx admin-prohibited"),
            (tcp(7002, "eth0", LAN), "rejected by tcp dport 7002 counter reject with icmpx port-unreachable"),
            (tcp(8000, "eth0", LAN), "accepted"),
            (tcp(8000, "wlan0", LAN), "dropped by iifname \"wlan0\" tcp dport 8000 drop"),
            (tcp(7003, "eth0", LAN), "dropped by tcp dport vmap { 7003 : drop, 7004 : accept, 7005 : jump deny }"),
            (tcp(7004, "eth0", LAN), "accepted by tcp dport vmap { 7003 : drop, 7004 : accept, 7005 : jump deny }"),
            (tcp(7005, "eth0", LAN), "rejected by reject with icmpx port-unreachable"),
        ],
    );
    let kinds: Vec<Reject> = [tcp(7000, "eth0", LAN), udp(7001, "eth0", LAN)]
        .iter()
        .map(|p| match evaluate(&rules, p) {
            Decision::Rejected(_, how) => how,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, [Reject::TcpReset, Reject::Icmp("admin-prohibited".into())]);
}

#[test]
fn what_cannot_be_decided_is_said_never_guessed() {
    table(
        &nft("unsupported.json"),
        &[
            // A rate limit accepts some packets and not others.
            (tcp(8000, "eth0", LAN), "not evaluated: it depends on `limit rate 10/second`"),
            // Half of the network is let in: which half the other device is in decides.
            (tcp(8001, "eth0", LAN), "not evaluated: it depends on the other host's address"),
            (tcp(8001, "eth0", "198.51.100.2"), "accepted by tcp dport 8001 ip saddr 198.51.100.0/25 accept"),
            (tcp(8001, "eth0", "198.51.100.200"), "dropped by policy drop"),
            (tcp(8002, "eth0", "198.51.100.2"), "not evaluated: it depends on `tcp sport`"),
            // Random loss in a second table.
            (tcp(8003, "eth0", LAN), "not evaluated: it depends on `numgen random mod 100 < 5`"),
            // Constructs that cannot touch this packet do not stop an answer.
            (tcp(8004, "eth0", LAN), "dropped by policy drop"),
        ],
    );
}

#[test]
fn firewalds_nftables_table_is_walked_natively() {
    table(
        &nft("firewalld.json"),
        &[
            (tcp(22, "eth0", "198.51.100.2"), "accepted by tcp dport 22 ct state { new, untracked } accept"),
            (tcp(8080, "eth0", LAN), "accepted by tcp dport 8080 ct state { new, untracked } accept"),
            (tcp(8000, "eth0", LAN), "rejected by reject with icmpx admin-prohibited"),
            (tcp(22, "eth0", "203.0.113.7"), "dropped by ip saddr 203.0.113.7 drop"),
            // The reverse-path filter passes a host of the LAN.
            (tcp6(8080, "eth0", "2001:db8:1::/64"), "accepted by tcp dport 8080 ct state { new, untracked } accept"),
        ],
    );
}

/// iptables-nft's rules reach the nftables JSON with their matches hidden (`xt`); its own
/// `iptables-save` shows them, and replaces them.
#[test]
fn iptables_nft_rules_are_read_from_iptables_save() {
    let json_only = nft("iptables_nft.json");
    let hidden = says(&evaluate(&json_only, &tcp(8005, "wlan0", "198.51.100.2")));
    assert!(hidden.starts_with("not evaluated") && hidden.contains("xt match multiport"), "{hidden}");
    let combined = Sources {
        nft: Some(Ok(json_only)),
        iptables: Some((iptables::parse(&recorded("iptables_nft.save"), true), IptablesVariant::Nftables)),
        ..Sources::default()
    }
    .combine();
    let Firewall::Rules(rules) = combined else { panic!("rules") };
    table(
        &rules,
        &[
            (tcp(8000, "eth0", LAN), "dropped by -A INPUT -i eth0 -p tcp -m tcp --dport 8000 -j DROP"),
            (
                tcp(8005, "wlan0", "198.51.100.2"),
                "accepted by -A INPUT -s 198.51.100.0/24 -p tcp -m multiport --dports 80,443,8000:8010 -m conntrack --ctstate NEW -m comment --comment \"web ports\" -j ACCEPT",
            ),
            (
                udp(7001, "eth0", LAN),
                "rejected by -A INPUT -p udp -m udp --dport 7001 -j REJECT --reject-with icmp-admin-prohibited",
            ),
            (tcp(9000, "eth0", LAN), "dropped by -P INPUT DROP"),
        ],
    );
    let Decision::Dropped(rule) = evaluate(&rules, &tcp(8000, "eth0", LAN)) else { panic!() };
    assert_eq!(
        (rule.from, rule.table.as_str(), rule.chain.as_str(), rule.handle),
        (RulesFrom::Iptables, "ip filter", "INPUT", Some(3))
    );
}

#[test]
fn legacy_iptables_save_tables_chains_and_wildcards() {
    let rules = iptables::parse(&recorded("iptables_legacy.save"), true).expect("parses");
    table(
        &rules,
        &[
            (
                tcp(8005, "eth0", "198.51.100.2"),
                "accepted by -A LAN -p tcp -m multiport --dports 3000,8000:8010 -m comment --comment \"dev servers\" -j ACCEPT",
            ),
            (
                tcp(8005, "eth1", "198.51.100.2"),
                "accepted by -A LAN -p tcp -m multiport --dports 3000,8000:8010 -m comment --comment \"dev servers\" -j ACCEPT",
            ),
            (tcp(8005, "wlan0", "198.51.100.2"), "rejected by -A INPUT -p tcp -j REJECT --reject-with tcp-reset"),
            (tcp(8005, "eth0", "203.0.113.9"), "rejected by -A INPUT -p tcp -j REJECT --reject-with tcp-reset"),
            (tcp(22, "wlan0", "203.0.113.9"), "accepted by -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"),
            (udp(6000, "eth0", LAN), "dropped by -A PREROUTING -p udp -m udp --dport 6000 -j DROP"),
            // The other host's source port decides.
            (udp(5000, "eth0", "198.51.100.2"), "not evaluated: it depends on `--sport 53`"),
            // Docker's DNAT sends the packet to a container: not this path.
            (
                tcp(8080, "wlan0", "203.0.113.9"),
                "not evaluated: rule `-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80`: it is redirected elsewhere…",
            ),
        ],
    );
}

fn ufw_rules(apps: &[(&str, &str)]) -> Ruleset {
    let apps: Vec<(String, String)> = apps.iter().map(|(n, f)| ((*n).to_owned(), recorded(f))).collect();
    ufw::parse(&recorded("ufw_status_verbose.txt"), &apps).expect("parses")
}

#[test]
fn ufw_status_rules_in_order_then_its_default() {
    let status = recorded("ufw_status_verbose.txt");
    assert_eq!(ufw::profiles(&status), ["OpenSSH", "Samba"]);
    let rules = ufw_rules(&[("OpenSSH", "ufw_app_info_openssh.txt"), ("Samba", "ufw_app_info_openssh.txt")]);
    table(
        &rules,
        &[
            (tcp(22, "eth0", LAN), "accepted by 22/tcp                     ALLOW IN    Anywhere"),
            (tcp(8000, "eth0", LAN), "dropped by 8000                       DENY IN     Anywhere"),
            (udp(8000, "eth0", LAN), "dropped by 8000                       DENY IN     Anywhere"),
            (tcp6(8000, "eth0", "2001:db8:1::/64"), "accepted by 8000 (v6)                  ALLOW IN    Anywhere (v6)"),
            (tcp(3000, "eth0", "198.51.100.2"), "accepted by 3000/tcp on eth0           ALLOW IN    198.51.100.0/24"),
            (tcp(3000, "eth0", "203.0.113.5"), "dropped by Default: deny (incoming)"),
            (tcp(3000, "wlan0", "198.51.100.2"), "dropped by Default: deny (incoming)"),
            (udp(5005, "eth0", LAN), "rejected by 5000:5010/udp              REJECT IN   Anywhere"),
            (tcp(4000, "wg0", "203.0.113.5"), "accepted by Anywhere on wg0            ALLOW IN    Anywhere"),
            (
                tcp(9000, "eth0", LAN),
                "accepted by 198.51.100.1 9000/tcp      ALLOW IN    Anywhere                   # api",
            ),
            (tcp6(9000, "eth0", "2001:db8:1::/64"), "dropped by Default: deny (incoming)"),
        ],
    );
    let Decision::Dropped(rule) = evaluate(&rules, &tcp(8000, "eth0", LAN)) else { panic!() };
    assert_eq!((rule.from, rule.handle), (RulesFrom::Ufw, Some(2)), "the number `ufw status numbered` shows");
    // Without `ufw app info`, a profile's ports are unknown: said, not guessed.
    let unresolved = ufw_rules(&[("OpenSSH", "ufw_app_info_openssh.txt")]);
    table(&unresolved, &[(tcp(4000, "eth0", LAN), "not evaluated: it depends on `application profile `Samba`…")]);
    assert_eq!(ufw::parse(&recorded("ufw_status_inactive.txt"), &[]).expect("parses"), Ruleset::default());
    assert!(ufw::parse("Usage: ufw COMMAND", &[]).is_err());
}

fn firewalld_rules() -> Ruleset {
    let services: Vec<(String, String)> = ["ssh", "mdns", "dhcpv6-client", "http"]
        .iter()
        .map(|s| ((*s).to_owned(), recorded(&format!("firewalld_info_service_{s}.txt"))))
        .collect();
    firewalld::parse("public\n", &recorded("firewalld_list_all_zones.txt"), &services).expect("parses")
}

#[test]
fn firewalld_zones_services_ports_rich_rules_and_targets() {
    table(
        &firewalld_rules(),
        &[
            (tcp(22, "eth0", "198.51.100.2"), "accepted by service ssh (22/tcp)"),
            (tcp(8080, "eth0", "198.51.100.2"), "accepted by port 8080/tcp"),
            (udp(9005, "eth0", "198.51.100.2"), "accepted by port 9000-9010/udp"),
            (
                tcp(3000, "eth0", "198.51.100.2"),
                "accepted by rule family=\"ipv4\" source address=\"198.51.100.0/24\" port port=\"3000\" protocol=\"tcp\" accept",
            ),
            (tcp(3000, "eth0", "203.0.113.9"), "rejected by target default"),
            (tcp(8000, "eth0", "198.51.100.2"), "rejected by target default"),
            // Deny rich rules come before what the zone allows.
            (tcp(22, "eth0", "203.0.113.7"), "dropped by rule family=\"ipv4\" source address=\"203.0.113.7\" drop"),
            // mDNS is allowed to its multicast address only.
            (udp(5353, "eth0", "198.51.100.2"), "rejected by target default"),
            // A source bound to the trusted zone goes there, whatever its interface.
            (tcp(8000, "eth0", "198.51.100.200"), "accepted by target ACCEPT"),
            // Any host of the LAN: in the trusted half or not, the other device decides.
            (tcp(8000, "eth0", LAN), "not evaluated: it depends on the other host's address"),
            // An interface of no zone goes to the default zone.
            (tcp(22, "wlan0", "203.0.113.9"), "accepted by service ssh (22/tcp)"),
            // A rate-limited log does not limit the accept; a limit on the accept does.
            (
                tcp(80, "eth0", "198.51.100.2"),
                "accepted by rule service name=\"http\" log prefix=\"http \" level=\"info\" limit value=\"3/m\" accept (80/tcp)",
            ),
            (tcp(4000, "eth0", "198.51.100.2"), "not evaluated: it depends on `limit value=\"10/m\"`"),
        ],
    );
    assert!(firewalld::parse("home", &recorded("firewalld_list_all_zones.txt"), &[]).is_err(), "unknown default zone");
}

#[test]
fn front_ends_replace_their_translations_and_unreadable_sources_stop_an_accept() {
    // ufw's chains in the nftables ruleset (through iptables-nft) give way to ufw's view.
    let mut with_ufw_chains = nft("iptables_nft.json");
    for c in &mut with_ufw_chains.chains {
        if c.table == "filter" {
            c.name = format!("ufw-{}", c.name);
        }
    }
    let Firewall::Rules(rules) = Sources {
        nft: Some(Ok(with_ufw_chains)),
        ufw: Some(ufw::parse(&recorded("ufw_status_verbose.txt"), &[])),
        ..Sources::default()
    }
    .combine() else {
        panic!("rules")
    };
    assert!(rules.chains.iter().all(|c| !c.name.starts_with("ufw-")), "ufw's translation is left out");
    table(&rules, &[(tcp(8000, "eth0", LAN), "dropped by 8000                       DENY IN     Anywhere")]);

    // firewalld's own table gives way to its zones.
    let Firewall::Rules(rules) =
        Sources { nft: Some(Ok(nft("firewalld.json"))), firewalld: Some(Ok(firewalld_rules())), ..Sources::default() }
            .combine()
    else {
        panic!("rules")
    };
    assert!(
        rules.chains.iter().all(|c| c.from == RulesFrom::Firewalld),
        "{:?}",
        rules.chains.iter().map(|c| &c.name).collect::<Vec<_>>()
    );

    // A source that exists but cannot be read: a drop elsewhere stands, an accept does not.
    let Firewall::Rules(rules) = Sources {
        nft: Some(Ok(nft("issue_drop.json"))),
        iptables_legacy: Some(Err("iptables-legacy-save: Permission denied (you must be root)".into())),
        ..Sources::default()
    }
    .combine() else {
        panic!("rules")
    };
    table(
        &rules,
        &[
            (tcp(8000, "eth0", LAN), "dropped by iifname \"eth0\" tcp dport 8000 drop"),
            (
                tcp(8001, "eth0", LAN),
                "not evaluated: it depends on `iptables-legacy-save: Permission denied (you must be root)`",
            ),
        ],
    );

    // iptables-nft failing on a table nft made natively: the nftables view of it stands.
    let Firewall::Rules(rules) = Sources {
        nft: Some(Ok(nft("issue_drop.json"))),
        iptables: Some((
            Err("iptables-save: table `filter' is incompatible, use 'nft' tool.".into()),
            IptablesVariant::Nftables,
        )),
        ..Sources::default()
    }
    .combine() else {
        panic!("rules")
    };
    table(&rules, &[(tcp(8001, "eth0", LAN), "accepted")]);

    // Nothing readable: said plainly.
    let unreadable = Sources { nft: Some(Err("nft: Operation not permitted".into())), ..Sources::default() }.combine();
    assert_eq!(unreadable, Firewall::Unreadable("nft: Operation not permitted".into()));
    assert!(
        matches!(Sources::default().combine(), Firewall::Unreadable(why) if why.contains("neither nft nor iptables-save"))
    );
}
