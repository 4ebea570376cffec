//! Program recognition and fix texts: what is wrong, in words, and the fix in the terms
//! of the program that was found (Vite, Flask, PHP, Hugo, Docker…) and of the bind that
//! was found, the firewall's commands and WSL2's own explanation. One fix per situation:
//! a server that must serve IPv4 and IPv6 clients is told the bind that serves both.

use std::net::IpAddr;

use crate::facts::{DockerPublish, SocketFact};
use crate::firewall::{FirewallCheck, FirewallOutcome, RuleRef, RulesFrom};
use crate::payload;
use crate::report::{Finding, FindingCode, Mode, ServiceProbeReport, Severity, Verdict};
use crate::verdict::{Blind, ServiceFacts, kept_out, missed_probes, reached};
use crate::vocab::{Outcome, Proto};

/// A program recognised from its name and command line, for fixes in its own terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// Vite dev server (and what runs on it: SvelteKit, Remix's Vite mode…).
    Vite,
    /// Next.js.
    NextJs,
    /// webpack-dev-server.
    WebpackDevServer,
    /// Create React App.
    CreateReactApp,
    /// Angular's `ng serve`.
    Angular,
    /// Vue CLI's `vue-cli-service serve`.
    VueCli,
    /// Astro's dev server.
    Astro,
    /// Nuxt (`nuxi dev`).
    Nuxt,
    /// Remix's app server (`remix-serve`, `remix dev`).
    Remix,
    /// Expo / React Native's Metro bundler.
    Expo,
    /// `npx serve`.
    Serve,
    /// `http-server` (npm).
    HttpServer,
    /// Any other Node.js program (`http.createServer`, Express…).
    Node,
    /// `python -m http.server`.
    PythonHttpServer,
    /// Flask.
    Flask,
    /// Django's runserver.
    Django,
    /// Uvicorn (FastAPI…).
    Uvicorn,
    /// Gunicorn.
    Gunicorn,
    /// Jupyter Notebook / JupyterLab.
    Jupyter,
    /// Ruby on Rails.
    Rails,
    /// Puma on its own.
    Puma,
    /// Jekyll.
    Jekyll,
    /// Hugo.
    Hugo,
    /// PHP's built-in server (`php -S`).
    PhpBuiltin,
    /// Laravel's `php artisan serve`.
    Laravel,
    /// Spring Boot.
    SpringBoot,
    /// ASP.NET Core's Kestrel (`dotnet run`).
    Kestrel,
    /// A Go program (`go run`, a binary built by `go build`).
    Go,
    /// Flutter's web server (`flutter run -d web-server`).
    FlutterWeb,
    /// Docker's userland proxy.
    DockerProxy,
    /// Anything else.
    Other,
}

/// Recognises a program from its name (the kernel's `comm`, at most 15 characters) and
/// its command line.
pub fn recognise(program: Option<&str>, cmdline: Option<&str>) -> Program {
    let name = program.unwrap_or("").to_ascii_lowercase();
    let raw = cmdline.unwrap_or("");
    let cmd = raw.to_ascii_lowercase();
    let has = |s: &str| cmd.contains(s);
    // The file names of the first two words: `node /x/.bin/serve`, `/usr/bin/php8.2 -S`.
    let words: Vec<&str> = cmd.split_whitespace().take(2).map(|w| w.rsplit('/').next().unwrap_or(w)).collect();
    let runs = |exe: &str| name == exe || words.contains(&exe);
    let php = name.starts_with("php") || words.first().is_some_and(|w| w.starts_with("php"));
    if name == "docker-proxy" || has("docker-proxy") {
        Program::DockerProxy
    } else if has("expo start")
        || has("@expo/cli")
        || has(".bin/expo")
        || has("metro")
        || (has("react-native") && has(" start"))
    {
        Program::Expo
    } else if has("ng serve") || has("@angular/cli") {
        Program::Angular
    } else if has("vue-cli-service") {
        Program::VueCli
    } else if has(".bin/astro") || has("astro dev") || has("astro preview") {
        Program::Astro
    } else if has("nuxi") || has(".bin/nuxt") || has("nuxt dev") {
        Program::Nuxt
    } else if has("vite") || has("svelte-kit") {
        Program::Vite
    } else if has("next dev") || has("next-server") || has("next start") || has("/next ") {
        Program::NextJs
    } else if has("remix-serve") || has("remix dev") || has(".bin/remix") {
        Program::Remix
    } else if has("webpack") {
        Program::WebpackDevServer
    } else if has("react-scripts") {
        Program::CreateReactApp
    } else if has("http-server") {
        Program::HttpServer
    } else if runs("serve") || has(".bin/serve") || has("/serve/build/main.js") {
        Program::Serve
    } else if has("flutter_tools") || has("flutter run") {
        Program::FlutterWeb
    } else if name.starts_with("node") || has("node ") {
        Program::Node
    } else if has("http.server") {
        Program::PythonHttpServer
    } else if has("jupyter") {
        Program::Jupyter
    } else if has("flask") {
        Program::Flask
    } else if has("manage.py") || has("django") {
        Program::Django
    } else if has("uvicorn") {
        Program::Uvicorn
    } else if has("gunicorn") {
        Program::Gunicorn
    } else if php && (has("artisan") || has("laravel")) {
        Program::Laravel
    } else if php && raw.contains(" -S") {
        Program::PhpBuiltin
    } else if has("rails") {
        Program::Rails
    } else if has("puma") {
        Program::Puma
    } else if has("jekyll") {
        Program::Jekyll
    } else if runs("hugo") {
        Program::Hugo
    } else if has("springframework.boot") || has("spring-boot") || has("bootrun") {
        Program::SpringBoot
    } else if runs("dotnet") || has("aspnetcore") {
        Program::Kestrel
    } else if has("/go-build") {
        Program::Go
    } else {
        Program::Other
    }
}

/// What a fix is written for besides the port's own facts: where the peer reaches this
/// machine, and where the agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FixContext {
    /// The address the peer dialled (none in `--local` mode).
    pub dialled: Option<IpAddr>,
    /// The peer reaches this machine over IPv4 (the test listeners' path picture).
    pub v4: bool,
    /// The peer reaches this machine over IPv6.
    pub v6: bool,
    /// The agent runs inside WSL2.
    pub wsl2: bool,
    /// Where the peer's control connection came from, and whether that address is on one
    /// of this machine's networks (by their prefixes): what names the cause when the
    /// control channel works but the test listeners are blocked. None in `--local` mode.
    pub peer_network: Option<(IpAddr, bool)>,
}

/// The bind a fix asks for: every IPv4 address, or (when IPv6 clients must be served too)
/// `::`, which the runtimes named here open dual-stack, serving IPv4 as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Every {
    v6: bool,
}

impl Every {
    /// The host to listen on: `::` or `0.0.0.0`.
    fn host(self) -> &'static str {
        if self.v6 { "::" } else { "0.0.0.0" }
    }

    /// `[::]:PORT` or `0.0.0.0:PORT`.
    fn host_port(self, port: u16) -> String {
        if self.v6 { format!("[::]:{port}") } else { format!("0.0.0.0:{port}") }
    }

    /// In words.
    fn words(self) -> &'static str {
        if self.v6 { "every IPv4 and IPv6 address" } else { "every IPv4 address" }
    }
}

/// The address a browser on the other device opens, for fixes that need it in a URL.
fn url_host(dialled: Option<IpAddr>) -> String {
    match dialled {
        Some(IpAddr::V6(v6)) => format!("[{v6}]"),
        Some(ip) => ip.to_string(),
        None => "THIS-MACHINE'S-ADDRESS".into(),
    }
}

/// The fix that makes `program` listen on every address the peer needs, in its own
/// terms, instead of `found` (the binds seen, e.g. `[::1]:8080`).
fn bind_fix(program: Program, port: u16, found: &[SocketFact], cx: &FixContext) -> String {
    let binds: Vec<String> = found.iter().map(|l| l.bind.to_string()).collect();
    let instead = if binds.is_empty() { String::new() } else { format!(" instead of {}", binds.join(", ")) };
    // IPv6 clients count when the peer reaches this machine over IPv6, or the server
    // already serves IPv6 (a fix must not take that away).
    let any = Every { v6: cx.v6 || found.iter().any(|l| l.bind.is_ipv6() && !l.bind.ip().is_loopback()) };
    let (h, hp, words) = (any.host(), any.host_port(port), any.words());
    match program {
        Program::Vite => {
            "start Vite with `vite --host` (or `npm run dev -- --host`), or set `server.host: true` in vite.config: \
             it then listens on every address"
                .into()
        }
        Program::NextJs => format!("start Next.js with `next dev -H {h} -p {port}` ({words})"),
        Program::WebpackDevServer => {
            format!("run webpack-dev-server with `--host {h}` (or `devServer.host: '{h}'`) to listen on {words}")
        }
        Program::CreateReactApp => format!("start it with `HOST={h} npm start` ({words})"),
        Program::Angular => format!("start it with `ng serve --host {h} --port {port}` ({words})"),
        Program::VueCli => {
            format!("start it with `vue-cli-service serve --host {h} --port {port}` (or `devServer.host: '{h}'` in vue.config.js)")
        }
        Program::Astro => {
            "start Astro with `astro dev --host` (or `server: { host: true }` in astro.config): it then listens on \
             every address"
                .into()
        }
        Program::Nuxt => format!("start Nuxt with `nuxi dev --host {h} --port {port}` ({words})"),
        Program::Remix => format!("start the app server with `HOST={h} remix-serve build/index.js` ({words}); with Remix on Vite, `remix vite:dev --host`"),
        Program::Expo => "start it with `npx expo start --lan` (Metro then serves the other devices of this network; `--tunnel` when they are on another network)".into(),
        Program::Serve => format!("run `serve -l {port}`: a bare port listens on every address (`-l tcp://localhost:{port}` limits it to this machine)"),
        Program::HttpServer => format!("run `http-server -a {h} -p {port}` ({words})"),
        Program::Node => format!(
            "in the code that starts the server, call `.listen({port})` with no host (e.g. `server.listen({port})`): \
             Node then listens on every IPv4 and IPv6 address{instead}"
        ),
        Program::PythonHttpServer => format!("run `python3 -m http.server {port} --bind {h}` ({words})"),
        Program::Flask => format!("run `flask run --host={h} --port={port}` (or `app.run(host='{h}')`) to listen on {words}"),
        Program::Django => format!(
            "run `python manage.py runserver {hp}` ({words}) and add this machine's address to ALLOWED_HOSTS"
        ),
        Program::Uvicorn => format!("run uvicorn with `--host {h} --port {port}` ({words})"),
        Program::Gunicorn => format!("run gunicorn with `--bind {hp}` ({words})"),
        Program::Jupyter => {
            let ip = if any.v6 { "'*'" } else { "0.0.0.0" };
            format!("start it with `jupyter lab --ip={ip} --port={port}` (or `jupyter notebook --ip={ip}`) to listen on {words}")
        }
        Program::Rails => format!("run `rails server -b {h} -p {port}` ({words})"),
        // Puma renames its process (`puma 6.4 (tcp://localhost:3000) [app]`), so a Rails
        // app under Puma looks like Puma alone.
        Program::Puma => format!("run `rails server -b {h} -p {port}` (Rails) or puma with `-b tcp://{hp}` ({words})"),
        // WEBrick opens `::` IPv6-only: Jekyll serves one family at a time.
        Program::Jekyll => format!(
            "run `jekyll serve --host 0.0.0.0 --port {port}` (every IPv4 address: open it by this machine's IPv4 address; Jekyll serves one address family at a time)"
        ),
        Program::Hugo => format!(
            "run `hugo server --bind {h} --port {port} --baseURL http://{}:{port}/` (links then use the address other devices open)",
            url_host(cx.dialled)
        ),
        Program::PhpBuiltin => format!(
            "restart PHP's built-in server as `php -S {hp}` with the rest of its arguments ({words}; `-S localhost:{port}` serves this machine only)"
        ),
        Program::Laravel => format!("run `php artisan serve --host={h} --port={port}` ({words})"),
        Program::SpringBoot => format!(
            "set `server.address={h}` (e.g. `java -jar app.jar --server.address={h}`), or leave `server.address` out: Spring Boot then listens on every address"
        ),
        Program::Kestrel => {
            let url = if any.v6 { format!("http://[::]:{port}") } else { format!("http://0.0.0.0:{port}") };
            format!("run `dotnet run --urls {url}` (or set ASPNETCORE_URLS={url}) to listen on {words}")
        }
        Program::Go => format!(
            "in the Go code, listen on \":{port}\" with no host (e.g. `http.ListenAndServe(\":{port}\", handler)`): Go then listens on every IPv4 and IPv6 address{instead}"
        ),
        Program::FlutterWeb => format!(
            "run `flutter run -d web-server --web-hostname {h} --web-port {port}` ({words})"
        ),
        Program::DockerProxy | Program::Other => {
            let v6only = found.iter().any(|l| l.bind.is_ipv6() && l.bind.ip().is_unspecified() && l.v6only == Some(true));
            if v6only && cx.v4 {
                format!("clear IPV6_V6ONLY on the server's [::]:{port} socket (it then accepts IPv4 too), or let it listen on 0.0.0.0:{port} as well")
            } else if any.v6 {
                format!("make the server listen on [::]:{port} with IPV6_V6ONLY off (every IPv4 and IPv6 address){instead}")
            } else {
                format!("make the server listen on 0.0.0.0:{port} (every IPv4 address){instead}")
            }
        }
    }
}

fn host_check_fix(program: Program) -> String {
    match program {
        Program::Vite => {
            "add the host to `server.allowedHosts` in vite.config (Vite rejects unknown Host headers with 403)".into()
        }
        Program::WebpackDevServer | Program::CreateReactApp => {
            "set `devServer.allowedHosts: 'all'` (or DANGEROUSLY_DISABLE_HOST_CHECK=true for Create React App)".into()
        }
        Program::Django => {
            "add this machine's address (or '*' while developing) to ALLOWED_HOSTS in settings.py".into()
        }
        Program::NextJs => {
            "allow the origin in next.config (`allowedDevOrigins`) or open the app by its expected host name".into()
        }
        _ => "allow this machine's address or name in the server's allowed hosts / origins setting".into(),
    }
}

/// The fix for a firewall that drops or rejects `proto`: the commands of nftables, ufw
/// and firewalld for `port`, or, when no one port is known (the test listeners' finding),
/// for an example port with a word about filters on the path.
pub fn firewall_fix(proto: Proto, port: Option<u16>) -> String {
    let commands = |n: u16| {
        format!(
            "`sudo nft add rule inet filter input {proto} dport {n} accept`, `sudo ufw allow {n}/{proto}` or \
             `sudo firewall-cmd --add-port={n}/{proto} --permanent && sudo firewall-cmd --reload`"
        )
    };
    match port {
        Some(n) => format!("open the port in this machine's firewall: {}", commands(n)),
        None => format!(
            "allow the ports you need on this machine, e.g. {}; if this machine's firewall is open, look at the \
             path (router or Wi-Fi access point filters)",
            commands(3000)
        ),
    }
}

/// A rule read from the firewall's configuration, named as its user knows it:
/// ``nftables rule `iifname "eth0" tcp dport 8000 drop` (table inet filter, chain input)``.
pub fn rule_words(r: &RuleRef) -> String {
    let (_, table) = r.family_and_table();
    match (r.from, r.is_policy()) {
        (RulesFrom::Nftables, false) => format!("nftables rule `{}` (table {}, chain {})", r.text, r.table, r.chain),
        (RulesFrom::Nftables, true) => format!("the `{}` of nftables chain {} (table {})", r.text, r.chain, r.table),
        (RulesFrom::Iptables, false) => format!("iptables rule `{}` (table {table})", r.text),
        (RulesFrom::Iptables, true) => format!("iptables policy `{}` (table {table})", r.text),
        (RulesFrom::Ufw, false) => {
            let text = r.text.split_whitespace().collect::<Vec<_>>().join(" ");
            match r.handle {
                Some(n) => format!("ufw rule {n} `{text}`"),
                None => format!("ufw rule `{text}`"),
            }
        }
        (RulesFrom::Ufw, true) => format!("ufw's `{}`", r.text),
        (RulesFrom::Firewalld, _) => format!("firewalld {}: `{}`", r.chain, r.text),
    }
}

/// The fix for one rule that keeps other hosts out of `port`: let the port in before it
/// (or remove it), in the terms of the configuration it was read from.
pub fn rule_fix(r: &RuleRef, proto: Proto, port: u16) -> String {
    let (family, table) = r.family_and_table();
    let ufw_allow = || format!("`sudo ufw allow {port}/{proto}`");
    match r.from {
        // Front ends rewrite their own chains: the fix goes through them.
        RulesFrom::Nftables if r.chain.starts_with("ufw") => format!("let the port in with ufw: {}", ufw_allow()),
        RulesFrom::Nftables if table == "firewalld" => format!(
            "let the port in with firewalld: `sudo firewall-cmd --add-port={port}/{proto} && sudo firewall-cmd --runtime-to-permanent`"
        ),
        RulesFrom::Nftables => match r.handle {
            Some(h) => format!(
                "let the port in before that rule: `sudo nft insert rule {family} {table} {chain} position {h} {proto} dport {port} accept`, \
                 or delete the rule: `sudo nft delete rule {family} {table} {chain} handle {h}` (and change /etc/nftables.conf to match, or it comes back at the next boot)",
                chain = r.chain
            ),
            None => format!(
                "let the port in: `sudo nft add rule {family} {table} {chain} {proto} dport {port} accept` (and add it to /etc/nftables.conf, or it is gone at the next boot)",
                chain = r.chain
            ),
        },
        RulesFrom::Iptables => {
            let cmd = if family == "ip6" { "ip6tables" } else { "iptables" };
            let t = if table == "filter" { String::new() } else { format!(" -t {table}") };
            let chain = &r.chain;
            match r.handle {
                Some(n) => format!(
                    "let the port in before that rule: `sudo {cmd}{t} -I {chain} {n} -p {proto} --dport {port} -j ACCEPT`, or delete it: `sudo {cmd}{t} -D {chain} {n}` (then save the rules the way this machine loads them, e.g. `netfilter-persistent save`)"
                ),
                None => format!(
                    "let the port in: `sudo {cmd}{t} -A {chain} -p {proto} --dport {port} -j ACCEPT` (then save the rules the way this machine loads them, e.g. `netfilter-persistent save`)"
                ),
            }
        }
        RulesFrom::Ufw => match r.handle {
            Some(n) => format!(
                "let the port in before that rule: `sudo ufw insert {n} allow {port}/{proto}`, or delete it: `sudo ufw delete {n}`"
            ),
            None => format!("let the port in: {}", ufw_allow()),
        },
        RulesFrom::Firewalld => {
            let zone = r.chain.strip_prefix("zone ").unwrap_or(&r.chain);
            if r.text.starts_with("rule ") {
                format!(
                    "remove that rich rule: `sudo firewall-cmd --zone={zone} --remove-rich-rule='{}' && sudo firewall-cmd --runtime-to-permanent`",
                    r.text
                )
            } else {
                format!(
                    "let the port in: `sudo firewall-cmd --zone={zone} --add-port={port}/{proto} && sudo firewall-cmd --runtime-to-permanent`"
                )
            }
        }
    }
}

/// The distinct rules of `checks`, each once, in order.
fn distinct_rules<'a>(checks: &[&'a FirewallCheck]) -> Vec<&'a RuleRef> {
    let mut out: Vec<&RuleRef> = Vec::new();
    for r in checks.iter().filter_map(|c| c.rule.as_ref()) {
        if !out.contains(&r) {
            out.push(r);
        }
    }
    out
}

/// "drops TCP to port 8000 from other hosts arriving on eth0 (at 198.51.100.1,
/// 2001:db8:1::1): nftables rule `…` (table …, chain …)", for the checks that keep
/// other hosts out; the fix for each rule.
pub fn kept_out_words(checks: &[&FirewallCheck], proto: Proto, port: u16) -> (String, String) {
    let verb = if checks.iter().any(|c| c.outcome == FirewallOutcome::Dropped) { "drops" } else { "rejects" };
    let mut ifaces: Vec<&str> = Vec::new();
    for i in checks.iter().filter_map(|c| c.interface.as_deref()) {
        if !ifaces.contains(&i) {
            ifaces.push(i);
        }
    }
    let on = if ifaces.is_empty() { String::new() } else { format!(" arriving on {}", ifaces.join(", ")) };
    let at: Vec<String> = checks.iter().map(|c| c.target.ip().to_string()).collect();
    let rules = distinct_rules(checks);
    let named: Vec<String> = rules.iter().map(|r| rule_words(r)).collect();
    let fixes: Vec<String> = rules.iter().map(|r| rule_fix(r, proto, port)).collect();
    let upper = proto.to_string().to_uppercase();
    (
        format!("{verb} {upper} to port {port} from other hosts{on} (at {}): {}", at.join(", "), named.join("; ")),
        fixes.join("; "),
    )
}

/// The checks that keep other hosts out where the port did not answer them (with a
/// peer), or anywhere (`--local`, whose own probes never meet interface rules).
pub fn keeping_out<'a>(
    mode: Mode,
    checks: &'a [FirewallCheck],
    probes: &[ServiceProbeReport],
) -> Vec<&'a FirewallCheck> {
    checks
        .iter()
        .filter(|c| c.blocks())
        .filter(|c| {
            mode == Mode::Local || !probes.iter().any(|p| p.target.ip() == c.target.ip() && p.outcome == Outcome::Open)
        })
        .collect()
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// What a probe that was not answered met, in words.
fn met(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Refused => "refused",
        Outcome::Timeout => "silent (timed out)",
        Outcome::Unreachable => "unreachable",
        Outcome::Reset => "reset",
        Outcome::EmptyReply => "closed without an answer",
        Outcome::Foreign => "answered by something else",
        Outcome::NotProbed => "not probed",
        Outcome::Failed => "failed at once in the browser",
        Outcome::Open => "open",
    }
}

/// `2001:db8::10 (IPv6)`, with `, the address you dialled` for the dialled one.
fn at(ip: IpAddr, dialled: Option<IpAddr>) -> String {
    let you = if dialled == Some(ip) { ", the address you dialled" } else { "" };
    format!("{ip} ({}){you}", family(ip))
}

/// Probes in report order with the dialled address first.
fn dialled_first(mut probes: Vec<&ServiceProbeReport>, dialled: Option<IpAddr>) -> Vec<&ServiceProbeReport> {
    probes.sort_by_key(|p| Some(p.target.ip()) != dialled);
    probes
}

/// The `unconfirmed` finding: what the peer sent and why nothing shows whether it
/// arrived, and how to find out.
fn unconfirmed(f: &ServiceFacts<'_>, who: &str, binds: &str) -> (String, String) {
    let (port, n) = (f.port, f.port.port);
    if f.port.proto == Proto::Tcp {
        return (
            format!(
                "Port {port}: {who} listens on {binds}, and the network passes traffic to this machine, but connections to the port met silence, and the run ended before they could be tried again after the ICMP rate-limit window: a firewall drops them, or rejects them with errors this machine held back."
            ),
            format!("check fewer ports at once (`--check {n}`) so that every silence can be tried again"),
        );
    }
    let sent: Vec<&str> = payload::for_port(n).iter().map(|p| p.name()).collect();
    let why = match &f.blind {
        Some(Blind::Unreadable(why)) => format!(
            "the agent cannot read this machine's connection-tracking table ({why}), which would show whether they passed its firewall"
        ),
        Some(Blind::NotTracking) => "connection tracking is off on this machine (no firewall rule uses it), so nothing shows whether they passed its firewall".into(),
        Some(Blind::NoReference) | None => "nothing on this machine shows whether they arrived".into(),
    };
    let message = format!(
        "Port {port}: {who} listens on {binds}, and UDP reaches this machine, but the server answered none of the peer's datagrams ({}), and {why}. Many UDP services answer only their own protocol: reachable is not confirmed.",
        sent.join(", ")
    );
    let client = format!(
        "ask the service from the other device with its own client; if that gets no answer either, {}",
        firewall_fix(Proto::Udp, Some(n))
    );
    let fix = match &f.blind {
        Some(Blind::Unreadable(_)) => format!(
            "run the agent as root (`sudo lanreach-agent …`) so that it can see whether the datagrams arrive, or {client}"
        ),
        _ => client,
    };
    (message, fix)
}

/// The `partial` finding: where the port answers and where not, and the fix for why not.
fn partial(f: &ServiceFacts<'_>, who: &str, program: Program, cx: &FixContext) -> (String, String) {
    let port = f.port;
    let missed = dialled_first(missed_probes(f), cx.dialled);
    let open: Vec<&ServiceProbeReport> = f.probes.iter().filter(|p| reached(f, p) && !missed.contains(p)).collect();
    let open = dialled_first(open, cx.dialled);
    let answered: Vec<String> = open.iter().map(|p| at(p.target.ip(), cx.dialled)).collect();
    // The firewall's configuration names the rule where it keeps other hosts out.
    let keeping = keeping_out(f.mode, f.firewall, f.probes);
    let rule_at = |ip: IpAddr| keeping.iter().find(|c| c.target.ip() == ip).and_then(|c| c.rule.as_ref());
    let not: Vec<String> = missed
        .iter()
        .map(|p| {
            let ip = p.target.ip();
            let seen = match kept_out(f, ip) {
                Some(_) => "kept out by this machine's firewall".to_owned(),
                None => met(p.outcome).to_owned(),
            };
            let rule = rule_at(ip).map(|r| format!(" ({})", rule_words(r))).unwrap_or_default();
            format!("{seen} at {}{rule}", at(ip, cx.dialled))
        })
        .collect();
    let binds: Vec<String> = f.listeners.iter().map(|l| l.bind.to_string()).collect();
    // Where a socket accepts the address yet the port did not answer, a firewall is in
    // the way; elsewhere the bind leaves the address out.
    let listening_there = missed.iter().all(|p| f.listeners.iter().any(|l| l.accepts(p.target.ip())));
    let why = if f.listeners.is_empty() {
        String::new()
    } else if listening_there {
        format!(": {who} listens on {}, so a firewall rule stops the rest", binds.join(", "))
    } else {
        let scope: Vec<String> = f.listeners.iter().map(|l| format!("{} ({})", l.bind, scope_words(l))).collect();
        format!(": {who} listens on {}", scope.join(", "))
    };
    let answered = answered.join(", ");
    let but = if answered.ends_with("dialled") { ", but" } else { " but" };
    let reach = if f.mode == Mode::Local { "answers this machine at" } else { "reachable at" };
    let message = format!(
        "Port {port}: {reach} {answered}{but} {}{why}. A device that uses {} cannot connect.",
        not.join(", "),
        if missed.len() == 1 { "that address" } else { "those addresses" }
    );
    let rules = distinct_rules(&keeping);
    let fix = if listening_there && !rules.is_empty() {
        rules.iter().map(|r| rule_fix(r, port.proto, port.port)).collect::<Vec<_>>().join("; ")
    } else if listening_there && !f.listeners.is_empty() {
        firewall_fix(port.proto, Some(port.port))
    } else {
        bind_fix(
            program,
            port.port,
            f.listeners,
            &FixContext { v4: true, v6: cx.v6 || missed.iter().any(|p| p.target.is_ipv6()), ..*cx },
        )
    };
    (message, fix)
}

/// What a socket's bind accepts, in words.
fn scope_words(l: &SocketFact) -> &'static str {
    let ip = l.bind.ip();
    if ip.is_loopback() {
        "this machine only"
    } else if ip.is_unspecified() && ip.is_ipv4() {
        "IPv4 only"
    } else if ip.is_unspecified() {
        match l.v6only {
            Some(true) => "IPv6 only",
            Some(false) => "IPv4 and IPv6",
            None => "IPv6, IPv4 unknown",
        }
    } else {
        "that address only"
    }
}

/// `-p` / `ports:` notation for publishing container port `inner` on host port `host`.
fn publish_spec(host: u16, inner: u16, proto: Proto) -> String {
    match proto {
        Proto::Tcp => format!("{host}:{inner}"),
        Proto::Udp => format!("{host}:{inner}/udp"),
    }
}

/// What this report's outside probes of a published port met, in words. Docker's two
/// paths fail differently when the app inside listens on its loopback: its NAT rules
/// (connections from other devices) forward to the container's own address and are
/// refused; its userland proxy (connections from this machine) accepts, then closes.
fn docker_path_seen(probes: &[ServiceProbeReport]) -> String {
    const SEEN: &[(Outcome, &str)] = &[
        (
            Outcome::Refused,
            "refused: Docker's NAT rules forward it to the container's own address, where nothing listens",
        ),
        (Outcome::EmptyReply, "accepted by Docker's userland proxy (docker-proxy), then closed without an answer"),
        (Outcome::Reset, "accepted, then reset by the proxy in front of the container"),
        (Outcome::Unreachable, "rejected with \"host unreachable\""),
        (Outcome::Timeout, "not answered at all (a firewall may drop it as well)"),
    ];
    let mut parts = Vec::new();
    for (outcome, words) in SEEN {
        let at: Vec<String> = probes.iter().filter(|p| p.outcome == *outcome).map(|p| p.target.to_string()).collect();
        match at.as_slice() {
            [] => {}
            [one] => parts.push(format!("the connection to {one} was {words}")),
            many => parts.push(format!("connections to {} were {words}", many.join(", "))),
        }
    }
    if parts.is_empty() { "connections from other devices cannot reach it".into() } else { parts.join("; ") }
}

/// The finding for a container whose app listens on its own loopback behind a
/// publication: where it listens, and what this report's probes met on the way.
fn container_loopback(f: &ServiceFacts<'_>, c: Option<&DockerPublish>) -> (String, String) {
    let port = f.port;
    let inner = c.map(|c| c.container_port).unwrap_or(port.port);
    let (name, published) = match c {
        Some(c) => (format!("{} ({})", c.container, c.image), format!(" on {}:{}", c.host_ip, c.host_port)),
        None => ("the container".to_owned(), String::new()),
    };
    let message = format!(
        "Port {port}: Docker publishes it{published}, but the app inside container {name} listens on \
         127.0.0.1:{inner}, the container's own loopback, which Docker's forwarding cannot reach; {}.",
        docker_path_seen(f.probes)
    );
    let fix = format!(
        "make the app in the container listen on 0.0.0.0:{inner} (every address of the container) instead of \
         127.0.0.1, then restart it"
    );
    (message, fix)
}

/// The finding for a port that nothing here listens on while a container does, in its
/// own network namespace, without a publication on the port.
fn container_not_published(f: &ServiceFacts<'_>) -> (String, String) {
    let port = f.port;
    let n = port.port;
    let mut containers = f.unpublished.iter().filter(|c| c.proto == port.proto);
    let Some(c) = containers.next() else {
        return (format!("Port {port}: nothing listens on it on this machine."), String::new());
    };
    let others = match containers.count() {
        0 => String::new(),
        1 => " (and one more container)".to_owned(),
        more => format!(" (and {more} more containers)"),
    };
    let binds: Vec<String> = c.listeners.iter().map(ToString::to_string).collect();
    let loopback_only = !c.listeners.is_empty() && c.listeners.iter().all(|a| a.ip().is_loopback());
    let published = if c.published_as.is_empty() {
        "Docker does not publish it, so no other device can reach it".to_owned()
    } else {
        let ports: Vec<String> = c.published_as.iter().map(ToString::to_string).collect();
        format!("Docker publishes it on host port {} instead, not on {n}", ports.join(", "))
    };
    let mut message = format!(
        "Port {port}: nothing on this machine listens on it, but container {} ({}){others} does, inside its own \
         network namespace ({}); {published}.",
        c.container,
        c.image,
        binds.join(", ")
    );
    let spec = publish_spec(n, n, port.proto);
    let mut fix = match &c.compose_service {
        Some(service) => format!(
            "publish it: add `ports: [\"{spec}\"]` to service `{service}` in the compose file, then run \
             `docker compose up -d` (which recreates the container)"
        ),
        None => format!(
            "publish it: start the container with `docker run -p {spec} …` (a running container cannot gain a \
             published port: remove it and run it again)"
        ),
    };
    if let Some(first) = c.published_as.first() {
        fix = format!("use port {first}, or {fix}");
    }
    if loopback_only {
        message.push_str(" The app there listens on the container's loopback only, which no publication reaches.");
        fix.push_str(&format!("; and make the app listen on 0.0.0.0:{n} inside the container"));
    }
    (message, fix)
}

/// The finding for a port's verdict: what is wrong, in words, and the fix for what
/// was found. With `cx.wsl2`, WSL2's own explanation where the cause may be its NAT.
pub fn finding(f: &ServiceFacts<'_>, verdict: Verdict, cx: &FixContext) -> Finding {
    let (port, listeners, docker) = (f.port, f.listeners, f.docker);
    let who = listeners.iter().find_map(|l| {
        l.program.as_deref().map(|p| match l.pid {
            Some(pid) => format!("{p} (pid {pid})"),
            None => p.to_owned(),
        })
    });
    let who = who.unwrap_or_else(|| {
        if listeners.iter().any(|l| l.pid.is_none()) {
            "a program whose owner is not visible without root".to_owned()
        } else {
            "the server".to_owned()
        }
    });
    let program = listeners
        .iter()
        .map(|l| recognise(l.program.as_deref(), l.cmdline.as_deref()))
        .find(|p| *p != Program::Other)
        .unwrap_or(Program::Other);
    let binds: Vec<String> = listeners.iter().map(|l| l.bind.to_string()).collect();
    let binds = binds.join(", ");
    let n = port.port;
    let container = docker.first();
    // Who probed: the self-check is this machine, never "the peer".
    let prober = match f.mode {
        Mode::Peer => "the peer",
        Mode::Browser => "the browser",
        Mode::Local => "this machine",
    };
    let (severity, message, fix) = match verdict {
        Verdict::Reachable => {
            (Severity::Info, format!("Port {port} is reachable from the peer ({who} on {binds})."), String::new())
        }
        Verdict::ReachableLocally => (
            Severity::Info,
            format!(
                "Port {port} answers this machine at its own addresses ({who} on {binds}); other devices were not tested."
            ),
            String::new(),
        ),
        Verdict::Partial => {
            let (message, fix) = partial(f, &who, program, cx);
            (Severity::Error, message, fix)
        }
        Verdict::LoopbackOnly => (
            Severity::Error,
            format!("Port {port}: {who} listens on {binds} only, which accepts connections from this machine alone."),
            bind_fix(program, n, listeners, cx),
        ),
        Verdict::InterfaceOnly => (
            Severity::Error,
            format!(
                "Port {port}: {who} listens only on {binds}, an address {prober} did not reach (another network interface or a VPN)."
            ),
            bind_fix(program, n, listeners, cx),
        ),
        Verdict::Ipv4Only => (
            Severity::Error,
            format!("Port {port}: {who} listens on IPv4 only ({binds}), but {prober} reaches this machine over IPv6."),
            bind_fix(program, n, listeners, &FixContext { v6: true, ..*cx }),
        ),
        Verdict::Ipv6Only => (
            Severity::Error,
            format!("Port {port}: {who} listens on IPv6 only ({binds}), but {prober} reaches this machine over IPv4."),
            bind_fix(program, n, listeners, &FixContext { v4: true, ..*cx }),
        ),
        Verdict::FirewallDrop | Verdict::FirewallReject if !keeping_out(f.mode, f.firewall, f.probes).is_empty() => {
            // The firewall's configuration names the rule.
            let keeping = keeping_out(f.mode, f.firewall, f.probes);
            let (what, fix) = kept_out_words(&keeping, port.proto, n);
            let seen = match (f.mode, verdict) {
                (Mode::Local, _) => ", but",
                (_, Verdict::FirewallDrop) => {
                    ", and the network passes traffic to this machine, but connections to the port time out:"
                }
                (Mode::Peer, _) => ", yet connections from the peer are refused or rejected:",
                (Mode::Browser, _) => ", yet the browser's requests fail at once:",
            };
            (
                Severity::Error,
                format!("Port {port}: {who} listens on {binds}{seen} this machine's firewall {what}."),
                fix,
            )
        }

        Verdict::FirewallDrop if f.probes.iter().any(|p| p.delivered == Some(false)) => (
            Severity::Error,
            format!(
                "Port {port}: {who} listens on {binds}, and UDP reaches this machine, but the peer's datagrams to the port never passed this machine's firewall: its connection-tracking table holds the peer's other UDP, not these. A firewall rule drops them."
            ),
            firewall_fix(port.proto, Some(port.port)),
        ),
        Verdict::FirewallDrop => (
            Severity::Error,
            format!(
                "Port {port}: {who} listens on {binds}, and the network passes traffic to this machine, but connections to the port time out, also when tried again after the ICMP rate-limit window: a firewall rule drops it."
            ),
            firewall_fix(port.proto, Some(port.port)),
        ),
        Verdict::Unconfirmed => {
            let (message, fix) = unconfirmed(f, &who, &binds);
            (Severity::Warning, message, fix)
        }
        Verdict::FirewallReject => (
            Severity::Error,
            format!(
                "Port {port}: {who} listens on {binds}, yet connections from {prober} are refused or rejected: a firewall rule answers in its place."
            ),
            firewall_fix(port.proto, Some(port.port)),
        ),
        Verdict::NotListening => (
            Severity::Error,
            format!("Port {port}: nothing listens on it on this machine."),
            format!("start the server, and check the port it prints (is it really {n}?)"),
        ),
        Verdict::ProxyNoBackend => (
            Severity::Error,
            match container {
                Some(c) => format!(
                    "Port {port}: Docker forwards it to container {} port {}, where nothing listens: the app is down, or listens on another port.",
                    c.container, c.container_port
                ),
                None => format!(
                    "Port {port}: a proxy ({who}) accepts connections and closes them without an answer: whatever it forwards to is down, or bound to its own loopback."
                ),
            },
            match container {
                Some(c) => format!(
                    "make the app in container {} listen on 0.0.0.0:{} (not 127.0.0.1), then restart it",
                    c.container, c.container_port
                ),
                None => "start the backend the proxy forwards to, and make it listen on an address the proxy can reach"
                    .into(),
            },
        ),
        Verdict::ContainerLoopback => {
            let (message, mut fix) = container_loopback(f, container);
            if !matches!(program, Program::DockerProxy | Program::Other) {
                let inner = container.map(|c| c.container_port).unwrap_or(n);
                fix.push_str(&format!("; {}", bind_fix(program, inner, &[], &FixContext { v6: false, ..*cx })));
            }
            (Severity::Error, message, fix)
        }
        Verdict::PublishedLoopback => {
            let c =
                container.map(|c| format!("{} ({})", c.container, c.image)).unwrap_or_else(|| "the container".into());
            let inner = container.map(|c| c.container_port).unwrap_or(n);
            let loopback = match container.map(|c| c.host_ip) {
                Some(ip @ std::net::IpAddr::V6(_)) => format!("[{ip}]"),
                Some(ip) => ip.to_string(),
                None => "127.0.0.1".into(),
            };
            let spec = publish_spec(n, inner, port.proto);
            (
                Severity::Error,
                format!(
                    "Port {port}: container {c} is published on {loopback} only (`-p {loopback}:{spec}`), so only this machine can reach it."
                ),
                format!("publish it on every address: `docker run -p {spec} …` (or `ports: [\"{spec}\"]` in compose)"),
            )
        }
        Verdict::ContainerNotPublished => {
            let (message, fix) = container_not_published(f);
            (Severity::Error, message, fix)
        }
        Verdict::HttpHostCheck => (
            Severity::Error,
            format!(
                "Port {port}: the connection works, but {who} rejects the request's Host/Origin (HTTP 400/403/421): it only answers requests for localhost."
            ),
            host_check_fix(program),
        ),
        Verdict::BrowserUntestable => {
            use crate::browser::{Untestable, untestable};
            let why = match untestable(port).unwrap_or(Untestable::NotHttp) {
                Untestable::Udp => "a web page cannot send UDP to a port (only to lanreach's own UDP test listeners, over WebRTC), so the browser could not test it".to_owned(),
                Untestable::BadPort => "browsers refuse to connect to this port (the Fetch standard blocks it, without sending a packet), so the browser could not test it".to_owned(),
                Untestable::NotHttp => "the browser's requests failed at once, and this machine's own HTTP request gets no HTTP answer either: the service does not speak HTTP, and a browser can test only HTTP (a firewall's rejection would look the same to it)".to_owned(),
            };
            let listening =
                if listeners.is_empty() { String::new() } else { format!("{who} listens on {binds}, but ") };
            (
                Severity::Warning,
                format!("Port {port}: {listening}{why}."),
                "test this port with `lanreach-peer` on another computer (or in Termux on the phone): it tests any TCP or UDP port".into(),
            )
        }
        Verdict::NetworkBlocked => {
            let upper = port.proto.to_string().to_uppercase();
            let head =
                format!("Port {port}: not even lanreach's own test listeners are reachable from {prober} over {upper}");
            // The control channel got through, so the devices can reach each other: the
            // two sides' addresses say where the rest is stopped (as `nopath` names it).
            match cx.peer_network {
                Some((ip, true)) => (
                    Severity::Error,
                    format!("{head}, although {prober} reached the control channel from {ip}, on this machine's own network: nothing between the devices stops traffic, so this machine's firewall lets the control channel in and nothing else."),
                    format!("allow the port in this machine's firewall (ufw allow {}/{}; firewall-cmd --add-port={}/{}), or check the firewall's default policy for incoming connections", port.port, port.proto, port.port, port.proto),
                ),
                Some((ip, false)) => (
                    Severity::Error,
                    format!("{head}, although {prober} reached the control channel, from {ip}: another network than this machine's, so a router joins them and passes the control channel only (its firewall or this machine's stops the rest)."),
                    "put both devices on the same network (the same Wi-Fi, not a guest network), or open the port on the router between the networks and in this machine's firewall".into(),
                ),
                None => (
                    Severity::Error,
                    format!("{head}: the network path or a firewall blocks everything, whatever the server does."),
                    "check Wi-Fi client isolation (guest networks), the host firewall's default policy, and that both devices are on the same network".into(),
                ),
            }
        }
    };
    let fix = if cx.wsl2 && !matches!(verdict, Verdict::Reachable | Verdict::ReachableLocally) {
        format!(
            "{fix}. This agent runs inside WSL2, which sits behind Windows' NAT: other devices reach Windows, not WSL. \
             Use WSL's mirrored networking (`networkingMode=mirrored` in %UserProfile%\\.wslconfig) or forward the port: \
             `netsh interface portproxy add v4tov4 listenport={n} connectport={n} connectaddress=<WSL address>` and allow it in Windows Firewall"
        )
    } else {
        fix
    };
    Finding { code: FindingCode::of_verdict(verdict), severity, message, fix }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{CheckedPort, UnpublishedContainer};
    use crate::report::ProbeReport;

    const P: CheckedPort = CheckedPort { port: 3000, proto: Proto::Tcp };
    const BOTH: FixContext = FixContext { dialled: None, v4: true, v6: true, wsl2: false, peer_network: None };
    const V4: FixContext = FixContext { dialled: None, v4: true, v6: false, wsl2: false, peer_network: None };

    fn facts(listeners: &[SocketFact]) -> ServiceFacts<'_> {
        ServiceFacts {
            mode: crate::report::Mode::Peer,
            port: P,
            listeners,
            docker: &[],
            unpublished: &[],
            probes: &[],
            path: &[],
            local_http_status: None,
            firewall: &[],
            blind: None,
        }
    }

    fn probe(target: &str, outcome: Outcome) -> ServiceProbeReport {
        ServiceProbeReport {
            target: target.parse().expect("target"),
            outcome,
            rtt_ms: None,
            http_status: None,
            errno: None,
            attempts: 1,
            proven: false,
            delivered: None,
        }
    }

    use crate::facts::test_socket as sock;

    fn find(verdict: Verdict, listeners: &[SocketFact], cx: &FixContext) -> Finding {
        let f = ServiceFacts { listeners, ..facts(&[]) };
        finding(&f, verdict, cx)
    }

    #[test]
    fn fixes_speak_the_programs_language() {
        let vite = sock("127.0.0.1:5173", "node", "node /app/node_modules/.bin/vite");
        let f = find(Verdict::LoopbackOnly, &[vite], &BOTH);
        assert_eq!(f.code, "loopback_only");
        assert!(f.fix.contains("--host") && f.message.contains("node (pid 42)"), "{f:?}");
        let flask = sock("127.0.0.1:5000", "python3", "python3 -m flask run");
        assert!(find(Verdict::LoopbackOnly, &[flask], &V4).fix.contains("flask run --host=0.0.0.0"));
        let django = sock("0.0.0.0:8000", "python3", "python manage.py runserver");
        assert!(find(Verdict::HttpHostCheck, &[django], &BOTH).fix.contains("ALLOWED_HOSTS"));
        let fw = find(Verdict::FirewallDrop, &[], &BOTH);
        assert!(
            fw.fix.contains("dport 3000") && fw.fix.contains("ufw allow 3000/tcp") && fw.fix.contains("firewall-cmd")
        );
        let wsl = find(Verdict::LoopbackOnly, &[], &FixContext { wsl2: true, ..BOTH });
        assert!(wsl.fix.contains("WSL2") && wsl.fix.contains("portproxy"));
    }

    /// One fix per situation, in the terms of the bind found: no "127.0.0.1" for a
    /// server on [::1], no second generic sentence after the specific one, and the bind
    /// that serves both families when the peer reaches this machine over both.
    #[test]
    fn one_fix_in_the_terms_of_the_bind_found() {
        let socat = sock("[::1]:8080", "socat", "socat TCP6-LISTEN:8080,bind=[::1] EXEC:cat");
        let f = find(Verdict::LoopbackOnly, &[socat], &BOTH);
        assert_eq!(
            f.fix,
            "make the server listen on [::]:3000 with IPV6_V6ONLY off (every IPv4 and IPv6 address) instead of [::1]:8080"
        );
        let other = sock("203.0.113.1:7002", "python3", "python3 -m http.server 7002 --bind 203.0.113.1");
        let f = find(Verdict::InterfaceOnly, std::slice::from_ref(&other), &BOTH);
        assert_eq!(f.fix, "run `python3 -m http.server 3000 --bind ::` (every IPv4 and IPv6 address)");
        let f = find(Verdict::InterfaceOnly, &[other], &V4);
        assert_eq!(f.fix, "run `python3 -m http.server 3000 --bind 0.0.0.0` (every IPv4 address)");
        let generic = sock("203.0.113.1:7002", "myserver", "./myserver");
        let f = find(Verdict::InterfaceOnly, &[generic], &V4);
        assert_eq!(f.fix, "make the server listen on 0.0.0.0:3000 (every IPv4 address) instead of 203.0.113.1:7002");
        assert!(!f.fix.contains("127.0.0.1/localhost") && f.fix.matches("listen").count() == 1, "{f:?}");
        // A v6-only :: socket reached over IPv4: clear the option, in its own words.
        let v6only = sock("[::]:3000", "myserver", "./myserver");
        let f = find(Verdict::Ipv6Only, &[v6only], &V4);
        assert!(f.fix.starts_with("clear IPV6_V6ONLY on the server's [::]:3000 socket"), "{}", f.fix);
    }

    #[test]
    fn container_loopback_says_what_the_probes_met() {
        let publish = DockerPublish {
            container: "web".into(),
            image: "app:1".into(),
            host_ip: "0.0.0.0".parse().expect("ip"),
            host_port: 3000,
            container_port: 8080,
            proto: Proto::Tcp,
            inner_listeners: Some(vec!["127.0.0.1:8080".parse().expect("addr")]),
        };
        let docker = [publish];
        // From another device: Docker's NAT rules, refused.
        let lan = [probe("198.51.100.1:3000", Outcome::Refused)];
        let f =
            finding(&ServiceFacts { docker: &docker, probes: &lan, ..facts(&[]) }, Verdict::ContainerLoopback, &BOTH);
        assert!(f.message.contains("198.51.100.1:3000 was refused") && !f.message.contains("accepted"), "{f:?}");
        assert!(f.message.contains("web (app:1)") && f.message.contains("127.0.0.1:8080"), "{f:?}");
        assert!(f.message.contains("Docker publishes it on 0.0.0.0:3000"), "{f:?}");
        assert!(f.fix.contains("0.0.0.0:8080") && !f.fix.contains("127.0.0.1/localhost"), "{f:?}");
        // From this machine: docker-proxy accepts, then closes.
        let local = [probe("127.0.0.1:3000", Outcome::EmptyReply)];
        let f =
            finding(&ServiceFacts { docker: &docker, probes: &local, ..facts(&[]) }, Verdict::ContainerLoopback, &BOTH);
        assert!(f.message.contains("accepted by Docker's userland proxy") && !f.message.contains("refused"), "{f:?}");
    }

    #[test]
    fn an_unpublished_container_gets_the_publish_fix() {
        let web = |compose: Option<&str>, bind: &str, published_as: Vec<u16>| UnpublishedContainer {
            container: "web".into(),
            image: "app:1".into(),
            proto: Proto::Tcp,
            listeners: vec![bind.parse().expect("addr")],
            compose_service: compose.map(Into::into),
            published_as,
        };
        let f = |c: &[UnpublishedContainer]| {
            finding(&ServiceFacts { unpublished: c, ..facts(&[]) }, Verdict::ContainerNotPublished, &BOTH)
        };
        let plain = f(&[web(None, "0.0.0.0:3000", vec![])]);
        assert_eq!(plain.code, "container_not_published");
        assert!(plain.message.contains("container web (app:1)") && plain.message.contains("0.0.0.0:3000"), "{plain:?}");
        assert!(plain.fix.contains("`docker run -p 3000:3000 …`"), "{plain:?}");
        let compose = f(&[web(Some("api"), "0.0.0.0:3000", vec![])]);
        assert!(compose.fix.contains("`ports: [\"3000:3000\"]` to service `api`"), "{compose:?}");
        let inside_lo = f(&[web(None, "127.0.0.1:3000", vec![])]);
        assert!(
            inside_lo.fix.contains("docker run -p 3000:3000") && inside_lo.fix.contains("0.0.0.0:3000"),
            "{inside_lo:?}"
        );
        let elsewhere = f(&[web(None, "0.0.0.0:3000", vec![8080])]);
        assert!(
            elsewhere.message.contains("host port 8080") && elsewhere.fix.starts_with("use port 8080"),
            "{elsewhere:?}"
        );
        let udp = CheckedPort { port: 5353, proto: Proto::Udp };
        let dns = [UnpublishedContainer { proto: Proto::Udp, ..web(None, "0.0.0.0:5353", vec![]) }];
        let f = finding(
            &ServiceFacts { port: udp, unpublished: &dns, ..facts(&[]) },
            Verdict::ContainerNotPublished,
            &BOTH,
        );
        assert!(f.fix.contains("-p 5353:5353/udp"), "{f:?}");
    }

    /// Recorded process names and command lines of the dev servers people run, and the
    /// flag each fix names.
    #[test]
    fn recognises_dev_servers_from_recorded_command_lines() {
        use Program::*;
        let table: &[(&str, &str, Program, &str)] = &[
            ("node", "node /app/node_modules/.bin/vite", Vite, "vite --host"),
            ("node", "node /app/node_modules/.bin/vite dev", Vite, "--host"), // SvelteKit
            ("node", "node /app/node_modules/.bin/remix vite:dev", Vite, "--host"),
            ("node", "node /x/node_modules/.bin/next dev", NextJs, "next dev -H :: -p 3000"),
            ("next-server (v1", "next-server (v14.2.3)", NextJs, "next dev -H ::"),
            ("node", "node /x/node_modules/.bin/webpack serve", WebpackDevServer, "--host ::"),
            ("node", "node /x/node_modules/react-scripts/scripts/start.js", CreateReactApp, "HOST=:: npm start"),
            ("ng serve", "ng serve", Angular, "ng serve --host :: --port 3000"),
            ("node", "node /app/node_modules/.bin/ng serve --port 4200", Angular, "ng serve --host ::"),
            ("node", "node /app/node_modules/.bin/vue-cli-service serve", VueCli, "vue-cli-service serve --host ::"),
            ("node", "node /app/node_modules/.bin/astro dev", Astro, "astro dev --host"),
            ("node", "node /app/node_modules/.bin/nuxi dev", Nuxt, "nuxi dev --host ::"),
            ("node", "node /app/node_modules/.bin/remix-serve build/index.js", Remix, "HOST=:: remix-serve"),
            ("node", "node /app/node_modules/.bin/expo start", Expo, "expo start --lan"),
            ("node", "node /app/node_modules/react-native/cli.js start", Expo, "--lan"),
            ("node", "node /app/node_modules/.bin/react-native start", Expo, "--lan"),
            (
                "node",
                "node /root/.npm/_npx/2f5/node_modules/.bin/serve -l tcp://localhost:3000",
                Serve,
                "serve -l 3000",
            ),
            ("node", "node /usr/local/bin/http-server -a 127.0.0.1 -p 8080", HttpServer, "http-server -a :: -p 3000"),
            ("node", "node server.js", Node, "`.listen(3000)` with no host"),
            ("python3", "python3 -m http.server 8000 --bind 127.0.0.1", PythonHttpServer, "--bind ::"),
            ("flask", "/usr/bin/python3 /usr/local/bin/flask run", Flask, "flask run --host=:: --port=3000"),
            ("python", "python manage.py runserver", Django, "runserver [::]:3000"),
            ("uvicorn", "/usr/bin/python3 /usr/local/bin/uvicorn main:app", Uvicorn, "--host :: --port 3000"),
            ("gunicorn", "/usr/bin/python3 /usr/local/bin/gunicorn app:app", Gunicorn, "--bind [::]:3000"),
            ("jupyter-lab", "/usr/bin/python3 /usr/bin/jupyter-lab", Jupyter, "jupyter lab --ip='*' --port=3000"),
            ("python3", "/usr/bin/python3 /usr/bin/jupyter-notebook --no-browser", Jupyter, "--ip='*'"),
            ("ruby", "puma 6.4.2 (tcp://localhost:3000) [app]", Puma, "rails server -b :: -p 3000"),
            ("ruby", "ruby bin/rails server", Rails, "rails server -b :: -p 3000"),
            ("puma", "puma 6.4.2 (tcp://127.0.0.1:9292) [site]", Puma, "-b tcp://[::]:3000"),
            ("jekyll", "ruby /usr/bin/jekyll serve", Jekyll, "jekyll serve --host 0.0.0.0"),
            ("hugo", "hugo server", Hugo, "hugo server --bind :: --port 3000"),
            ("php8.2", "php -S localhost:8080", PhpBuiltin, "php -S [::]:3000"),
            ("php", "/usr/bin/php8.2 -S 127.0.0.1:8000 -t public", PhpBuiltin, "php -S [::]:3000"),
            (
                "php8.2",
                "/usr/bin/php8.2 -S 127.0.0.1:8000 /app/vendor/laravel/framework/src/Illuminate/Foundation/Console/../resources/server.php",
                Laravel,
                "php artisan serve --host=::",
            ),
            ("php-fpm8.2", "php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)", Other, ""),
            (
                "java",
                "java -jar target/demo-0.0.1-SNAPSHOT.jar org.springframework.boot.loader.JarLauncher",
                SpringBoot,
                "server.address=::",
            ),
            (
                "java",
                "/usr/lib/jvm/java-17/bin/java -cp /app/build/classes:/root/.gradle/spring-boot-3.2.0.jar com.example.App",
                SpringBoot,
                "server.address",
            ),
            ("dotnet", "dotnet run --urls http://localhost:5000", Kestrel, "dotnet run --urls http://[::]:3000"),
            ("dotnet", "/usr/share/dotnet/dotnet bin/Debug/net8.0/App.dll", Kestrel, "ASPNETCORE_URLS"),
            ("main", "/tmp/go-build1234567/b001/exe/main", Go, "listen on \":3000\" with no host"),
            (
                "dart",
                "/opt/flutter/bin/cache/dart-sdk/bin/dart /opt/flutter/bin/cache/flutter_tools.snapshot run -d web-server",
                FlutterWeb,
                "--web-hostname :: --web-port 3000",
            ),
            ("docker-proxy", "/usr/bin/docker-proxy -proto tcp -host-ip 0.0.0.0", DockerProxy, ""),
            ("nginx", "nginx: master process /usr/sbin/nginx", Other, "[::]:3000"),
        ];
        for (name, cmdline, program, flag) in table {
            assert_eq!(recognise(Some(name), Some(cmdline)), *program, "{name}: {cmdline}");
            let f = find(Verdict::LoopbackOnly, &[sock("127.0.0.1:3000", name, cmdline)], &BOTH);
            assert!(f.fix.contains(flag), "{cmdline}: {:?} lacks {flag:?}", f.fix);
            // Express's `app` is one way to start a Node server among others.
            assert!(!f.fix.contains("app.listen"), "{cmdline}: {}", f.fix);
        }
        assert_eq!(recognise(None, None), Program::Other);
    }

    #[test]
    fn partly_reachable_says_where_and_why() {
        let path: Vec<ProbeReport> = [("0.0.0.0:40000", "198.51.100.10:40000"), ("[::]:40001", "[2001:db8::10]:40001")]
            .iter()
            .map(|(b, t)| ProbeReport {
                proto: Proto::Tcp,
                bind: b.parse().expect("bind"),
                target: t.parse().expect("target"),
                outcome: Outcome::Open,
                rtt_ms: Some(0.3),
                errno: None,
                attempts: 1,
                proven: false,
                seen_by_listener: true,
            })
            .collect();
        let probe = |t: &str, outcome| ServiceProbeReport {
            target: t.parse().expect("target"),
            outcome,
            rtt_ms: None,
            http_status: None,
            errno: None,
            attempts: 1,
            proven: false,
            delivered: None,
        };
        let probes = [probe("198.51.100.10:3000", Outcome::Refused), probe("[2001:db8::10]:3000", Outcome::Open)];
        let listeners = [sock("[::]:3000", "python3", "python3 server.py")];
        let f = ServiceFacts { listeners: &listeners, probes: &probes, path: &path, ..facts(&[]) };
        let cx = FixContext { dialled: Some("198.51.100.10".parse().expect("ip")), ..BOTH };
        let found = finding(&f, Verdict::Partial, &cx);
        assert_eq!(found.severity, Severity::Error);
        assert!(
            found.message.contains(
                "reachable at 2001:db8::10 (IPv6) but refused at 198.51.100.10 (IPv4), the address you dialled"
            ),
            "{}",
            found.message
        );
        assert!(found.message.contains("[::]:3000 (IPv6 only)"), "{}", found.message);
        assert!(found.fix.starts_with("clear IPV6_V6ONLY"), "{}", found.fix);
        // Listening at the silent address: a firewall, not the bind.
        let dual = [SocketFact { v6only: Some(false), ..listeners[0].clone() }];
        let probes = [probe("198.51.100.10:3000", Outcome::Open), probe("[2001:db8::10]:3000", Outcome::Timeout)];
        let f = ServiceFacts { listeners: &dual, probes: &probes, ..f };
        let found = finding(&f, Verdict::Partial, &cx);
        assert!(found.message.contains("silent (timed out) at 2001:db8::10 (IPv6)"), "{}", found.message);
        assert!(found.fix.contains("ufw allow 3000/tcp"), "{}", found.fix);
    }

    /// Issue 10 items 3 and 5: an unconfirmed port is a warning that says why nothing
    /// tells, with the way to find out: root for the connection-tracking table, the
    /// service's own client, fewer ports for a TCP silence the run cut short.
    #[test]
    fn unconfirmed_says_why_and_how_to_find_out() {
        const U: CheckedPort = CheckedPort { port: 5060, proto: Proto::Udp };
        let server = [SocketFact { proto: Proto::Udp, ..sock("[::]:5060", "asterisk", "asterisk -f") }];
        let udp = |blind| {
            finding(&ServiceFacts { port: U, listeners: &server, blind, ..facts(&[]) }, Verdict::Unconfirmed, &BOTH)
        };
        let f = udp(Some(Blind::Unreadable("reading it needs root".into())));
        assert_eq!((f.code.as_str(), f.severity), ("unconfirmed", Severity::Warning));
        assert!(
            f.message.contains("cannot read this machine's connection-tracking table (reading it needs root)"),
            "{f:?}"
        );
        assert!(f.message.contains("empty datagram, DNS query"), "{f:?}");
        assert!(f.fix.starts_with("run the agent as root (`sudo lanreach-agent …`)"), "{f:?}");
        assert!(f.fix.contains("sudo ufw allow 5060/udp"), "{f:?}");
        let f = udp(Some(Blind::NotTracking));
        assert!(f.message.contains("connection tracking is off"), "{f:?}");
        assert!(f.fix.starts_with("ask the service from the other device with its own client"), "{f:?}");
        let tcp = [sock("0.0.0.0:3000", "node", "node server.js")];
        let f = find(Verdict::Unconfirmed, &tcp, &BOTH);
        assert!(f.message.contains("the run ended before"), "{f:?}");
        assert_eq!(f.fix, "check fewer ports at once (`--check 3000`) so that every silence can be tried again");
    }
}
