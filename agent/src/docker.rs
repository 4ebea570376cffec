//! Docker's view of published ports: the Engine API on its unix socket when it answers
//! (containers, their port bindings, and the sockets listening inside each container's
//! network namespace, published or not), otherwise the docker-proxy processes' command
//! lines.
//!
//! The API is machine-wide, but its facts are about the engine's network namespace: an
//! agent in another one (a namespace, a devcontainer that mounts the host's docker.sock)
//! leaves them out, but for publications whose forwarder listens in its own namespace.
//!
//! The API call is one HTTP/1.0 GET over the unix socket, written here: the whole
//! exchange is a request line and a JSON body, which does not justify a client crate
//! with its own HTTP stack (bollard pulls in hyper, tower and ~80 crates).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use lanreach_proto::addr::canonical;
use lanreach_proto::defaults::DOCKER_API_TIMEOUT as API_TIMEOUT;
use lanreach_proto::endpoint::interfaces;
use lanreach_proto::facts::{CheckedPort, DockerPublish, UnpublishedContainer};
use lanreach_proto::text::{error_chain, printable};
use lanreach_proto::vocab::Proto;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::sockets::Inventory;

/// Largest API response read.
const MAX_RESPONSE: usize = 8 * 1024 * 1024;

/// Docker's facts about this agent's network namespace: the publications that reach
/// it, and the containers listening in network namespaces of their own.
#[derive(Debug, Clone, Default)]
pub(crate) struct DockerView {
    /// Every publication.
    pub publishes: Vec<DockerPublish>,
    /// Running containers with network namespaces of their own (empty unless the engine
    /// runs in the agent's namespace).
    containers: Vec<Running>,
}

/// A running container in a network namespace of its own.
#[derive(Debug, Clone)]
struct Running {
    name: String,
    image: String,
    compose_service: Option<String>,
    /// The sockets listening in its namespace.
    listening: Vec<(Proto, SocketAddr)>,
    /// Its publications: container port, protocol, host port.
    published: Vec<(u16, Proto, u16)>,
}

impl DockerView {
    /// The publications of `port`.
    pub(crate) fn for_port(&self, port: CheckedPort) -> Vec<DockerPublish> {
        self.publishes.iter().filter(|d| d.host_port == port.port && d.proto == port.proto).cloned().collect()
    }

    /// The containers with a socket on `port` in their own namespace and no publication
    /// on that host port.
    pub(crate) fn unpublished_for_port(&self, port: CheckedPort) -> Vec<UnpublishedContainer> {
        let mut out = Vec::new();
        for c in &self.containers {
            let listeners: Vec<SocketAddr> = c
                .listening
                .iter()
                .filter(|(proto, a)| *proto == port.proto && a.port() == port.port)
                .map(|(_, a)| *a)
                .collect();
            let published_here = c.published.iter().any(|(_, proto, host)| *proto == port.proto && *host == port.port);
            if listeners.is_empty() || published_here {
                continue;
            }
            let mut published_as: Vec<u16> = c
                .published
                .iter()
                .filter(|(inner, proto, _)| *inner == port.port && *proto == port.proto)
                .map(|(_, _, host)| *host)
                .collect();
            published_as.sort_unstable();
            published_as.dedup();
            out.push(UnpublishedContainer {
                container: c.name.clone(),
                image: c.image.clone(),
                proto: port.proto,
                listeners,
                compose_service: c.compose_service.clone(),
                published_as,
            });
        }
        out
    }
}

/// The Engine API socket: `DOCKER_HOST=unix://…` or the default path.
pub(crate) fn socket_path() -> PathBuf {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if host.starts_with("unix://") => PathBuf::from(&host["unix://".len()..]),
        _ => PathBuf::from("/var/run/docker.sock"),
    }
}

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// Connecting, writing or reading failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// No answer in time.
    #[error("no answer within {API_TIMEOUT:?}")]
    Timeout,
    /// An answer whose status is not 200 (the status line, as received).
    #[error("unexpected answer {0:?}")]
    Status(String),
    /// An answer that is not HTTP/1.x as we read it.
    #[error("malformed HTTP answer ({0})")]
    Http(HttpProblem),
    /// The body is not the JSON expected.
    #[error("unexpected JSON")]
    Json(#[from] serde_json::Error),
}

/// What is wrong with an HTTP answer; part of [`ApiError::Http`]'s message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HttpProblem {
    /// No blank line after the header.
    NoHeaderEnd,
    /// A chunk size line without its end or not in hex.
    BadChunkSize,
    /// A chunk shorter than its size.
    ShortChunk,
}

impl std::fmt::Display for HttpProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HttpProblem::NoHeaderEnd => "no header end",
            HttpProblem::BadChunkSize => "bad chunk size",
            HttpProblem::ShortChunk => "short chunk",
        })
    }
}

/// `GET path` on the Engine API; returns the body of a 200 answer.
pub(crate) async fn get(socket: &std::path::Path, path: &str) -> Result<Vec<u8>, ApiError> {
    tokio::time::timeout(API_TIMEOUT, async {
        let mut stream = tokio::net::UnixStream::connect(socket).await?;
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").as_bytes()).await?;
        let mut response = Vec::new();
        (&mut stream).take(MAX_RESPONSE as u64).read_to_end(&mut response).await?;
        parse_response(&response)
    })
    .await
    .map_err(|_| ApiError::Timeout)?
}

/// Splits an HTTP/1.x response into status and body, undoing chunked encoding.
fn parse_response(response: &[u8]) -> Result<Vec<u8>, ApiError> {
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").ok_or(ApiError::Http(HttpProblem::NoHeaderEnd))?;
    let head = String::from_utf8_lossy(&response[..split]);
    let body = &response[split + 4..];
    let status = head.lines().next().unwrap_or_default();
    if !status.starts_with("HTTP/1.") || status.get(9..12) != Some("200") {
        return Err(ApiError::Status(printable(status, 80)));
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return Ok(body.to_vec());
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").ok_or(ApiError::Http(HttpProblem::BadChunkSize))?;
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| ApiError::Http(HttpProblem::BadChunkSize))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest.get(..size).ok_or(ApiError::Http(HttpProblem::ShortChunk))?;
        out.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or(ApiError::Http(HttpProblem::ShortChunk))?;
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Container {
    id: String,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    image: String,
    #[serde(default)]
    ports: Vec<Port>,
    #[serde(default)]
    labels: HashMap<String, String>,
    #[serde(default)]
    host_config: HostConfig,
    #[serde(default)]
    network_settings: NetworkSettings,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Port {
    #[serde(rename = "IP")]
    ip: Option<String>,
    private_port: u16,
    public_port: Option<u16>,
    #[serde(rename = "Type")]
    kind: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HostConfig {
    #[serde(default)]
    network_mode: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NetworkSettings {
    #[serde(default)]
    networks: HashMap<String, Network>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Network {
    #[serde(default)]
    gateway: String,
    #[serde(default, rename = "IPv6Gateway")]
    ipv6_gateway: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    state: State,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct State {
    pid: u32,
}

impl Container {
    fn name(&self) -> String {
        self.names
            .first()
            .map(|n| n.trim_start_matches('/').to_owned())
            .unwrap_or_else(|| self.id.chars().take(12).collect())
    }

    /// Its publications, without the inner listeners (Docker lists the 0.0.0.0 and ::
    /// bindings of one port separately: one is kept).
    fn publications(&self) -> Vec<DockerPublish> {
        let mut out: Vec<DockerPublish> = Vec::new();
        for p in &self.ports {
            let Some(host_port) = p.public_port else { continue };
            let proto = if p.kind == "udp" { Proto::Udp } else { Proto::Tcp };
            let host_ip: IpAddr = p.ip.as_deref().and_then(|ip| ip.parse().ok()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
            if out.iter().any(|d| {
                d.host_port == host_port && d.proto == proto && d.host_ip.is_unspecified() && host_ip.is_unspecified()
            }) {
                continue;
            }
            out.push(DockerPublish {
                container: self.name(),
                image: self.image.clone(),
                host_ip,
                host_port,
                container_port: p.private_port,
                proto,
                inner_listeners: None,
            });
        }
        out
    }

    /// The gateways of its networks: addresses of the engine's bridges.
    fn gateways(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.network_settings
            .networks
            .values()
            .flat_map(|n| [n.gateway.as_str(), n.ipv6_gateway.as_str()])
            .filter_map(|g| g.parse().ok())
    }
}

/// Sockets listening inside the network namespace of process `pid`: TCP in LISTEN, UDP
/// unconnected.
fn listening_in(pid: u32) -> Option<Vec<(Proto, SocketAddr)>> {
    let process = procfs::process::Process::new(i32::try_from(pid).ok()?).ok()?;
    let mut out = Vec::new();
    for table in [process.tcp(), process.tcp6()] {
        for e in table.ok()? {
            if e.state == procfs::net::TcpState::Listen {
                out.push((Proto::Tcp, canonical(e.local_address)));
            }
        }
    }
    for table in [process.udp(), process.udp6()] {
        for e in table.ok()? {
            if e.remote_address.port() == 0 {
                out.push((Proto::Udp, canonical(e.local_address)));
            }
        }
    }
    Some(out)
}

/// Where Docker's engine runs, seen from this agent. Its facts (publications, the
/// containers' own sockets) are about the engine's network namespace: they apply to
/// this agent's ports only when that namespace is the agent's (DESIGN §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EngineNamespace {
    /// The agent's own.
    Ours,
    /// Another one (the agent runs in a namespace or a devcontainer of its own).
    Other,
    /// Nothing tells.
    Unknown,
}

/// Decides where the engine runs: the namespace inodes when both are readable (the
/// engine's needs root, or the same user, and the same PID namespace); otherwise
/// whether a gateway of a container network (an address of the engine's bridges) is an
/// address of this namespace.
fn engine_namespace(own: Option<u64>, engine: Option<u64>, gateways: &[IpAddr], local: &[IpAddr]) -> EngineNamespace {
    if let (Some(own), Some(engine)) = (own, engine) {
        return if own == engine { EngineNamespace::Ours } else { EngineNamespace::Other };
    }
    if gateways.is_empty() {
        EngineNamespace::Unknown
    } else if gateways.iter().any(|g| local.contains(g)) {
        EngineNamespace::Ours
    } else {
        EngineNamespace::Other
    }
}

/// The network namespace inode behind `/proc/…/ns/net` (`net:[4026531833]`).
fn netns_inode(path: &str) -> Option<u64> {
    let link = std::fs::read_link(path).ok()?;
    link.to_str()?.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// The PID of the process serving the API socket (the engine), when it is visible from
/// this PID namespace.
async fn engine_pid(socket: &std::path::Path) -> Option<u32> {
    let stream = tokio::time::timeout(API_TIMEOUT, tokio::net::UnixStream::connect(socket)).await.ok()?.ok()?;
    let pid = stream.peer_cred().ok()?.pid()?;
    u32::try_from(pid).ok().filter(|p| *p != 0)
}

/// Where the engine behind `socket` runs (see [`engine_namespace`]).
async fn locate_engine(socket: &std::path::Path, containers: &[Container]) -> EngineNamespace {
    let own = netns_inode("/proc/self/ns/net");
    let engine = engine_pid(socket).await.and_then(|pid| netns_inode(&format!("/proc/{pid}/ns/net")));
    let gateways: Vec<IpAddr> = containers.iter().flat_map(Container::gateways).collect();
    let local: Vec<IpAddr> = if own.is_some() && engine.is_some() {
        Vec::new()
    } else {
        interfaces::list().unwrap_or_default().into_iter().map(|i| i.ip).collect()
    };
    engine_namespace(own, engine, &gateways, &local)
}

/// Whether one of Docker's forwarders (docker-proxy, or rootless Docker's rootlesskit)
/// listens on `publish`'s host port in this namespace: the publication then reaches
/// this namespace whatever namespace the engine runs in.
fn forwarded_here(publish: &DockerPublish, inventory: &Inventory) -> bool {
    inventory.sockets.iter().any(|s| {
        s.proto == publish.proto
            && s.bind.port() == publish.host_port
            && [s.program.as_deref(), s.cmdline.as_deref()]
                .into_iter()
                .flatten()
                .any(|n| n.contains("docker-proxy") || n.contains("rootlesskit"))
    })
}

async fn from_api(socket: &std::path::Path, inventory: &Inventory) -> Result<DockerView, ApiError> {
    let containers: Vec<Container> = serde_json::from_slice(&get(socket, "/containers/json").await?)?;
    let engine = locate_engine(socket, &containers).await;
    if engine != EngineNamespace::Ours && !containers.is_empty() {
        let why = if engine == EngineNamespace::Other {
            "Docker's engine runs in another network namespace than this agent"
        } else {
            "nothing shows that Docker's engine runs in this agent's network namespace"
        };
        tracing::info!(
            "{why}: its containers and publications are left out of the verdicts, but for publications whose \
             docker-proxy listens here"
        );
    }
    let mut view = DockerView { publishes: Vec::new(), containers: Vec::new() };
    for c in &containers {
        let mut publishes = c.publications();
        if engine != EngineNamespace::Ours {
            publishes.retain(|p| forwarded_here(p, inventory));
            if publishes.is_empty() {
                continue;
            }
        }
        let own_namespace = engine == EngineNamespace::Ours && c.host_config.network_mode != "host";
        if publishes.is_empty() && !own_namespace {
            continue;
        }
        // The sockets inside: for the publications' inner listeners, and for the ports the
        // container listens on without a publication.
        let pid = match get(socket, &format!("/containers/{}/json", c.id)).await {
            Ok(body) => serde_json::from_slice::<Inspect>(&body).ok().map(|i| i.state.pid),
            Err(_) => None,
        };
        let listening = pid.filter(|p| *p != 0).and_then(listening_in);
        for p in &mut publishes {
            p.inner_listeners =
                listening.as_ref().map(|l| l.iter().filter(|(proto, _)| *proto == p.proto).map(|(_, a)| *a).collect());
        }
        if own_namespace && let Some(listening) = listening {
            view.containers.push(Running {
                name: c.name(),
                image: c.image.clone(),
                compose_service: c.labels.get("com.docker.compose.service").cloned(),
                listening,
                published: c
                    .ports
                    .iter()
                    .filter_map(|p| {
                        let proto = if p.kind == "udp" { Proto::Udp } else { Proto::Tcp };
                        p.public_port.map(|host| (p.private_port, proto, host))
                    })
                    .collect(),
            });
        }
        view.publishes.extend(publishes);
    }
    Ok(view)
}

/// Reads docker-proxy command lines (`-host-ip X -host-port N -container-ip Y
/// -container-port M -proto tcp`).
fn from_proxies(inventory: &Inventory) -> Vec<DockerPublish> {
    let mut out = Vec::new();
    for s in &inventory.sockets {
        let Some(cmd) = s.cmdline.as_deref().filter(|c| c.contains("docker-proxy")) else { continue };
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let arg = |name: &str| words.iter().position(|w| *w == name).and_then(|i| words.get(i + 1)).copied();
        let (Some(host_port), Some(container_port)) =
            (arg("-host-port").and_then(|p| p.parse().ok()), arg("-container-port").and_then(|p| p.parse().ok()))
        else {
            continue;
        };
        let proto = if arg("-proto") == Some("udp") { Proto::Udp } else { Proto::Tcp };
        let host_ip = arg("-host-ip").and_then(|ip| ip.parse().ok()).unwrap_or(s.bind.ip());
        let target = arg("-container-ip").unwrap_or("?");
        let publish = DockerPublish {
            container: format!("unknown (docker-proxy to {target}:{container_port})"),
            image: String::new(),
            host_ip,
            host_port,
            container_port,
            proto,
            inner_listeners: None,
        };
        if !out.contains(&publish) {
            out.push(publish);
        }
    }
    out
}

/// What Docker publishes on this host, from the best source available: the Engine API,
/// else docker-proxy command lines (which know no container names, images or inner
/// listeners). An API that exists but cannot be used is worth a warning: the verdicts
/// for published ports are then less precise.
pub(crate) async fn inspect(inventory: &Inventory) -> DockerView {
    let socket = socket_path();
    if socket.exists() {
        match from_api(&socket, inventory).await {
            Ok(view) => return view,
            Err(e) => {
                let hint = match &e {
                    ApiError::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
                        " (run the agent as root, or add this user to the docker group)"
                    }
                    _ => "",
                };
                // Said once per run: a long-running agent asks Docker for every session.
                static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
                if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::warn!(
                        "the Docker API at {} cannot be used: {}{hint}; container facts come from docker-proxy \
                         command lines only",
                        socket.display(),
                        error_chain(&e)
                    );
                }
            }
        }
    }
    DockerView { publishes: from_proxies(inventory), containers: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanreach_proto::facts::SocketFact;

    #[test]
    fn responses_plain_and_chunked() {
        assert_eq!(parse_response(b"HTTP/1.0 200 OK\r\nContent-Type: x\r\n\r\n[1]").expect("ok"), b"[1]");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n[1,\r\n2\r\n2]\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).expect("ok"), b"[1,2]");
        assert!(parse_response(b"HTTP/1.0 404 Not Found\r\n\r\n").is_err());
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn container_json_parses() {
        let json = br#"[{"Id":"abc","Names":["/web"],"Image":"app:1","Ports":[
            {"IP":"127.0.0.1","PrivatePort":3000,"PublicPort":3000,"Type":"tcp"},
            {"IP":"0.0.0.0","PrivatePort":8080,"PublicPort":8080,"Type":"tcp"},
            {"IP":"::","PrivatePort":8080,"PublicPort":8080,"Type":"tcp"},
            {"PrivatePort":9000,"Type":"tcp"}],
            "Labels":{"com.docker.compose.service":"web"},
            "HostConfig":{"NetworkMode":"default"},
            "NetworkSettings":{"Networks":{"bridge":{"Gateway":"172.17.0.1","IPv6Gateway":""}}}},
            {"Id":"def","Names":["/old"],"Image":"x"}]"#;
        let c: Vec<Container> = serde_json::from_slice(json).expect("parses");
        assert_eq!(c[0].ports.len(), 4);
        assert_eq!(c[0].ports[0].ip.as_deref(), Some("127.0.0.1"));
        let p = c[0].publications();
        assert_eq!(p.len(), 2, "one publication per port, the 0.0.0.0 and :: bindings merged: {p:?}");
        assert_eq!(c[0].gateways().collect::<Vec<_>>(), [IpAddr::from([172, 17, 0, 1])]);
        assert_eq!(c[0].labels.get("com.docker.compose.service").map(String::as_str), Some("web"));
        // An engine that leaves fields out still parses.
        assert!(c[1].publications().is_empty() && c[1].gateways().next().is_none());
    }

    #[test]
    fn docker_facts_apply_only_in_the_engines_namespace() {
        use EngineNamespace::*;
        let ip = |s: &str| -> IpAddr { s.parse().expect("ip") };
        let gw = [ip("172.17.0.1")];
        // Namespace inodes decide when both are readable.
        assert_eq!(engine_namespace(Some(1), Some(1), &[], &[]), Ours);
        assert_eq!(engine_namespace(Some(2), Some(1), &gw, &gw), Other);
        // Otherwise (not root, another PID namespace): is a bridge's gateway here?
        assert_eq!(engine_namespace(Some(2), None, &gw, &[ip("127.0.0.1"), ip("172.17.0.1")]), Ours);
        let devcontainer = [ip("127.0.0.1"), ip("172.17.0.2")];
        assert_eq!(engine_namespace(Some(2), None, &gw, &devcontainer), Other);
        assert_eq!(engine_namespace(None, None, &[], &devcontainer), Unknown);
    }

    #[test]
    fn a_forwarder_listening_here_keeps_a_publication() {
        let publish = DockerPublish {
            container: "web".into(),
            image: "app:1".into(),
            host_ip: "0.0.0.0".parse().expect("ip"),
            host_port: 3000,
            container_port: 3000,
            proto: Proto::Tcp,
            inner_listeners: None,
        };
        let socket = |program: &str| SocketFact {
            proto: Proto::Tcp,
            bind: "0.0.0.0:3000".parse().expect("addr"),
            v6only: None,
            pid: Some(9),
            program: Some(program.into()),
            cmdline: Some(program.into()),
        };
        let inv = |s: Vec<SocketFact>| Inventory { sockets: s };
        assert!(forwarded_here(&publish, &inv(vec![socket("docker-proxy")])));
        assert!(forwarded_here(&publish, &inv(vec![socket("rootlesskit")])));
        assert!(!forwarded_here(&publish, &inv(vec![socket("node")])));
        assert!(!forwarded_here(&publish, &inv(vec![])));
    }

    #[test]
    fn unpublished_ports_of_running_containers() {
        let c = Running {
            name: "web".into(),
            image: "app:1".into(),
            compose_service: Some("web".into()),
            listening: vec![
                (Proto::Tcp, "0.0.0.0:3000".parse().expect("addr")),
                (Proto::Tcp, "127.0.0.1:9000".parse().expect("addr")),
                (Proto::Udp, "0.0.0.0:5353".parse().expect("addr")),
            ],
            published: vec![(9000, Proto::Tcp, 8080)],
        };
        let view = DockerView { publishes: Vec::new(), containers: vec![c] };
        let port = |port, proto| CheckedPort { port, proto };
        let u = view.unpublished_for_port(port(3000, Proto::Tcp));
        assert_eq!(u.len(), 1);
        assert_eq!((u[0].container.as_str(), u[0].compose_service.as_deref()), ("web", Some("web")));
        assert!(u[0].published_as.is_empty());
        assert!(view.unpublished_for_port(port(3000, Proto::Udp)).is_empty());
        assert_eq!(view.unpublished_for_port(port(5353, Proto::Udp)).len(), 1);
        // Published, but on another host port.
        assert_eq!(view.unpublished_for_port(port(9000, Proto::Tcp))[0].published_as, [8080]);
        // Published on the checked port: a publication, not an unpublished container.
        assert!(view.unpublished_for_port(port(8080, Proto::Tcp)).is_empty());
    }

    #[test]
    fn our_own_namespace_has_an_inode() {
        assert!(netns_inode("/proc/self/ns/net").is_some());
        let here = listening_in(std::process::id());
        assert!(here.is_some(), "our own socket tables are readable");
    }

    #[test]
    fn docker_proxy_command_lines() {
        let inv = Inventory {
            sockets: vec![SocketFact {
                proto: Proto::Tcp,
                bind: "0.0.0.0:3000".parse().expect("addr"),
                v6only: None,
                pid: Some(9),
                program: Some("docker-proxy".into()),
                cmdline: Some("/usr/bin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 3000 -container-ip 172.17.0.2 -container-port 8080".into()),
            }],
        };
        let p = from_proxies(&inv);
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].host_port, p[0].container_port), (3000, 8080));
        assert!(p[0].container.contains("172.17.0.2:8080"));
    }
}
