//! The browser peer on the agent's side: the page's two API calls. `POST /api/plan`
//! spends the live token (a new link is printed at once), plans like a peer's session
//! and registers the run with the test listeners; `POST /api/results` joins the page's
//! observations with what the listeners saw and the inside facts into a `browser`
//! report, prints it like a peer's and answers the page with the verdicts.
//!
//! The HTTP side (limits, parsing, the page itself) is `web`; the rules (what a browser
//! can test, how its classes become outcomes) are `lanreach_proto::browser`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use lanreach_proto::assemble::{ReportParts, assemble};
use lanreach_proto::browser::{Answer, BrowserRun, PlanRequest, WebAgent, WebResults, browser_name, items};
use lanreach_proto::defaults::{BROWSER_RUN_DEADLINE, LOCAL_HTTP_TIMEOUT, MAX_BROWSER_RUNS, SCREEN_TICK};
use lanreach_proto::endpoint::engine;
use lanreach_proto::endpoint::interfaces::{self, InterfaceAddress};
use lanreach_proto::facts::{CheckedPort, Conntrack, PortSource};
use lanreach_proto::render::{Paint, render_text};
use lanreach_proto::report::{Mode, PeerInfo, Report};
use lanreach_proto::sync::lock;
use lanreach_proto::vocab::{Outcome, ProbeResults, Proto};
use rand::RngCore;
use rand::rngs::OsRng;
use tokio::net::TcpListener;

use crate::control::{Event, Shared};
use crate::inside;
use crate::web::{self, Connections, LinkChange, Presented, ReadError, Request, Response, Tokens};

/// Most bytes of `POST /api/plan`'s body.
const MAX_PLAN_REQUEST: usize = 1024;

/// Width of the report text the page shows under "Details".
const DETAILS_WIDTH: usize = 60;

/// The browser page's state: the live token, the runs in progress, the connections.
pub(crate) struct BrowserState {
    tokens: Mutex<Tokens>,
    runs: Mutex<HashMap<String, LiveRun>>,
    /// Answers of finished runs, kept a while by token: a page (or the browser itself,
    /// which re-sends a POST once when a reused connection closes) may ask again.
    done: Mutex<HashMap<String, (Instant, Vec<u8>)>>,
    /// Tokens whose results are being judged now (a second post is told to wait).
    judging: Mutex<std::collections::HashSet<String>>,
    connections: Arc<Mutex<Connections>>,
}

impl BrowserState {
    pub(crate) fn new() -> BrowserState {
        BrowserState {
            tokens: Mutex::new(Tokens::new(Instant::now())),
            runs: Mutex::new(HashMap::new()),
            done: Mutex::new(HashMap::new()),
            judging: Mutex::new(std::collections::HashSet::new()),
            connections: Arc::new(Mutex::new(Connections::default())),
        }
    }

    /// The live token (what the printed browser link carries).
    pub(crate) fn token(&self) -> String {
        lock(&self.tokens).current().to_owned()
    }
}

/// A run between its plan and its results.
struct LiveRun {
    run: BrowserRun,
    started: Instant,
    from: SocketAddr,
    local: IpAddr,
    name: String,
    ports: Vec<(CheckedPort, PortSource)>,
    interfaces: Vec<InterfaceAddress>,
}

/// Serves the page on `listener` until the task is dropped.
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let (mut stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("browser page: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(local) = stream.local_addr() else { continue };
        let table = shared.browser.connections.clone();
        let shared = shared.clone();
        // Refused (its address holds its share): the stream is dropped, closed at once.
        web::admit(&table, from.ip(), move |place| {
            tokio::spawn(async move {
                let read = web::read_request(&mut stream, from, local).await;
                // The request is in: the connection no longer waits (nor can be evicted).
                drop(place);
                let (response, early) = match read {
                    Ok(request) => (route(&shared, request).await, false),
                    Err(ReadError::Answer(status, sentence)) => (Response::error(status, sentence), true),
                    Err(ReadError::Gone) => return,
                };
                web::write_response(&mut stream, response, early).await;
            })
            .abort_handle()
        });
    }
}

/// Replaces the browser link when it expires, and forgets runs whose page went away.
pub(crate) async fn keep(shared: Arc<Shared>) {
    let mut ticks = tokio::time::interval(SCREEN_TICK);
    loop {
        ticks.tick().await;
        let now = Instant::now();
        if let Some(token) = lock(&shared.browser.tokens).expire(now) {
            shared.emit(Event::BrowserLink { token, change: LinkChange::Expired });
        }
        sweep(&shared, now);
    }
}

/// Forgets runs past their deadline, and says so.
fn sweep(shared: &Shared, now: Instant) {
    let expired: Vec<LiveRun> = {
        let mut runs = lock(&shared.browser.runs);
        let late: Vec<String> = runs
            .iter()
            .filter(|(_, r)| now.saturating_duration_since(r.started) >= BROWSER_RUN_DEADLINE)
            .map(|(t, _)| t.clone())
            .collect();
        late.iter().filter_map(|t| runs.remove(t)).collect()
    };
    lock(&shared.browser.done).retain(|_, (at, _)| now.saturating_duration_since(*at) < BROWSER_RUN_DEADLINE);
    for run in expired {
        shared.listeners.finish(&run.run.plan.session);
        let secs = BROWSER_RUN_DEADLINE.as_secs();
        let error = format!("its page sent no results within {secs} s");
        shared.emit(Event::BrowserFailed { from: run.from, error, ended: true });
    }
}

async fn route(shared: &Arc<Shared>, request: Request) -> Response {
    let path = request.path.split(['?', '#']).next().unwrap_or_default().to_owned();
    match (request.method.as_str(), path.as_str()) {
        ("GET", "/") => web::page(&page_addresses(request.local.ip())),
        // No body in an answer to HEAD.
        ("HEAD", "/" | "/api/plan" | "/api/results") => {
            let mut r = Response::bare(405);
            r.headers.push(("Allow", if path == "/" { "GET" } else { "POST" }.to_owned()));
            r
        }
        ("POST", "/api/plan") => plan(shared, request).await,
        ("POST", "/api/results") => results(shared, request).await,
        (_, "/") => allow("GET"),
        (_, "/api/plan" | "/api/results") => allow("POST"),
        _ => Response::bare(404),
    }
}

fn allow(method: &'static str) -> Response {
    let mut r = Response::error(405, "method not allowed");
    r.headers.push(("Allow", method.to_owned()));
    r
}

/// The addresses the page may send requests to: what a run of it targets.
fn page_addresses(local: IpAddr) -> Vec<IpAddr> {
    inside::browser_targets(&interfaces::list().unwrap_or_default(), local)
}

/// The token a request presents, unless its source is throttled or it presents none
/// (a bare 404 either way; a missing token is not counted: any web page can make a
/// browser post without one).
fn presented(shared: &Shared, request: &Request, now: Instant) -> Option<String> {
    if !lock(&shared.browser.tokens).allowed(request.from.ip(), now) {
        return None;
    }
    request.token.clone().filter(|t| !t.is_empty() && t.len() <= 64)
}

async fn plan(shared: &Arc<Shared>, request: Request) -> Response {
    let now = Instant::now();
    sweep(shared, now);
    let Some(token) = presented(shared, &request, now) else { return Response::bare(404) };
    {
        let mut tokens = lock(&shared.browser.tokens);
        if !tokens.is_live(&token, now) {
            tokens.wrong(request.from.ip(), now);
            return Response::bare(404);
        }
    }
    // The token is right: what follows tells a guesser nothing.
    if request.body.len() > MAX_PLAN_REQUEST {
        return Response::error(413, "the request is too large");
    }
    let asked: PlanRequest = if request.body.iter().all(u8::is_ascii_whitespace) {
        PlanRequest::default()
    } else {
        match serde_json::from_slice(&request.body) {
            Ok(asked) => asked,
            Err(_) => return Response::error(400, "the request is not the JSON the page sends"),
        }
    };
    if lock(&shared.browser.runs).len() >= MAX_BROWSER_RUNS {
        return Response::error(429, "the agent is busy with other browsers; try again in a minute");
    }
    let next = match lock(&shared.browser.tokens).present(&token, now) {
        Presented::Live { next } => next,
        // Another request spent it a moment ago.
        Presented::Other => return Response::bare(404),
    };
    shared.emit(Event::BrowserLink { token: next, change: LinkChange::Used });
    let name = browser_name(asked.ua.as_deref());
    let local = request.local.ip();
    let interfaces = interfaces::list().unwrap_or_default();
    let targets = inside::browser_targets(&interfaces, local);
    let ports = shared.checks.ports_to_probe(&shared.own_ports()).await;
    let probe_plan = inside::new_plan(shared.listeners.specs(), &targets, local.is_loopback(), &ports);
    let mut run_id = [0u8; 16];
    OsRng.fill_bytes(&mut run_id);
    let pwd = web::new_token();
    let agent = WebAgent { name: shared.name.clone(), id: shared.identity.id.short() };
    let run = BrowserRun::new(probe_plan, local, agent, run_id, &pwd);
    if !shared.listeners.register_from(run.plan.session, run.plan.key, Some(request.from.ip())) {
        return Response::error(429, "the agent is busy with other peers; try again in a minute");
    }
    let answer = Response::json(200, &run.web);
    lock(&shared.browser.runs)
        .insert(token, LiveRun { run, started: now, from: request.from, local, name: name.clone(), ports, interfaces });
    shared.emit(Event::BrowserStarted { from: request.from, name });
    answer
}

async fn results(shared: &Arc<Shared>, request: Request) -> Response {
    let now = Instant::now();
    sweep(shared, now);
    // The token of a run in progress or just answered works even from a throttled
    // address: another device on the LAN must not be able to cut a run short.
    let Some(token) = request.token.clone().filter(|t| !t.is_empty() && t.len() <= 64) else {
        return Response::bare(404);
    };
    if let Some((_, body)) = lock(&shared.browser.done).get(&token) {
        return Response { status: 200, content_type: "application/json", body: body.clone(), headers: Vec::new() };
    }
    if lock(&shared.browser.judging).contains(&token) {
        return Response::error(503, "the agent is still judging these results; ask again in a moment");
    }
    let known = lock(&shared.browser.runs).contains_key(&token);
    if !known {
        let mut tokens = lock(&shared.browser.tokens);
        if tokens.allowed(request.from.ip(), now) {
            tokens.wrong(request.from.ip(), now);
        }
        return Response::bare(404);
    }
    let Ok(page) = serde_json::from_slice::<WebResults>(&request.body) else {
        return Response::error(400, "the results are not the JSON the page sends");
    };
    // Checked while the run is kept: a page may correct a refused post before its deadline.
    let live = {
        let mut runs = lock(&shared.browser.runs);
        let Some(live) = runs.get(&token) else { return Response::bare(404) };
        if let Err(e) = live.run.results(&page, &[]) {
            let error = format!("its page sent results the agent refused (it may send them again): {e}");
            shared.emit(Event::BrowserFailed { from: live.from, error, ended: false });
            return Response::error(400, &format!("The agent refused the results: {e}."));
        }
        match runs.remove(&token) {
            Some(live) => live,
            None => return Response::bare(404),
        }
    };
    lock(&shared.browser.judging).insert(token.clone());
    let hits = shared.listeners.finish(&live.run.plan.session);
    let answer = match live.run.results(&page, &hits) {
        Ok(mut results) => {
            request_statuses(&live.run.plan, &mut results).await;
            let report = report(shared, &live, &results, &hits).await;
            shared.emit(Event::PeerReport { from: live.from, report: Box::new(report.clone()) });
            shared.emit(Event::BrowserFinished { from: live.from, name: live.name.clone() });
            let details = render_text(&report, Paint::new(false), DETAILS_WIDTH);
            Response::json(200, &Answer { items: items(&report), details, report })
        }
        Err(e) => Response::error(400, &format!("The agent refused the results: {e}.")),
    };
    lock(&shared.browser.judging).remove(&token);
    let mut done = lock(&shared.browser.done);
    if answer.status == 200 && done.len() < 2 * MAX_BROWSER_RUNS {
        done.insert(token, (Instant::now(), answer.body.clone()));
    }
    answer
}

/// A page cannot read the status of a `no-cors` answer: the agent sends the same
/// request itself (with the `Host` the browser sent) to each port that answered.
async fn request_statuses(plan: &lanreach_proto::plan::ProbePlan, results: &mut ProbeResults) {
    let mut asks = tokio::task::JoinSet::new();
    for (i, r) in results.services.iter().enumerate() {
        let Some(p) = plan.services.iter().find(|p| p.id == r.id) else { continue };
        if r.outcome != Outcome::Open || p.proto != Proto::Tcp {
            continue;
        }
        let target = p.target;
        let host = match target.ip() {
            IpAddr::V6(v6) => format!("[{v6}]:{}", target.port()),
            ip => format!("{ip}:{}", target.port()),
        };
        asks.spawn(async move { (i, engine::http_status_for_host(target, &host, LOCAL_HTTP_TIMEOUT).await) });
    }
    while let Some(done) = asks.join_next().await {
        if let Ok((i, status)) = done
            && let Some(r) = results.services.get_mut(i)
        {
            r.http_status = status;
        }
    }
}

async fn report(
    shared: &Shared,
    live: &LiveRun,
    results: &ProbeResults,
    hits: &[lanreach_proto::vocab::ListenerHit],
) -> Report {
    let plan = &live.run.plan;
    let mut docker = None;
    let services = inside::service_inputs(&live.ports, plan, results, &mut docker, true, true).await;
    let firewall = inside::firewall(&live.ports, &mut None, true).await;
    let agent = inside::agent_info(&shared.name, shared.identity.id, &live.interfaces);
    let peer = PeerInfo {
        name: live.name.clone(),
        id: String::new(),
        seen_from: Some(live.from),
        dialled: Some(live.local),
        arrival_interface: inside::interface_of(live.local, &live.interfaces),
        addresses: Vec::new(),
        probe_sources: Vec::new(),
    };
    assemble(ReportParts {
        mode: Mode::Browser,
        agent,
        peer,
        listeners: shared.listeners.specs(),
        plan,
        results,
        hits,
        services: &services,
        conntrack: &Conntrack::NotRead,
        wsl2: inside::wsl2(),
        firewall: &firewall,
    })
}
