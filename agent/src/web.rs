//! The browser page's HTTP server: TCP on the control channel's port number, one static
//! page (`web/page.html`, compiled in) and a JSON API of two calls (`docs/browser-api.md`).
//!
//! Everything arriving here is from anybody on the LAN, so every step is bounded: the
//! connections at once (overall and per source), one request per connection, its head's
//! size and time, its body's size and time; and nothing but the page and the API is
//! served (no files, no listings). The API's token (the link's fragment, sent in a
//! header) is checked in constant time; wrong tokens from one source get it throttled;
//! a wrong, used or expired token is a bare 404. What the API does is in `browser`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use base64::Engine;
use lanreach_proto::addr::canonical;
use lanreach_proto::defaults::{
    BROWSER_TOKEN_LIFETIME, MAX_WEB_BODY, MAX_WEB_CONNECTIONS, MAX_WEB_CONNECTIONS_PER_SOURCE, MAX_WEB_HEAD,
    WEB_BODY_TIMEOUT, WEB_HEAD_TIMEOUT, WEB_THROTTLE, WEB_WRONG_TOKENS,
};
use lanreach_proto::sync::lock;
use rand::Rng;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The page, one document with one inline script and one inline style.
const PAGE: &str = include_str!("web/page.html");

/// The header that carries the token.
const TOKEN_HEADER: &str = "x-lanreach-token";

/// Sources remembered for throttling wrong tokens.
const MAX_THROTTLED_SOURCES: usize = 4096;

/// Binds the page's TCP listeners at the control channel's addresses (same port
/// numbers). An address whose port is taken is left out, with the reason.
pub(crate) fn bind(control: &[SocketAddr]) -> (Vec<TcpListener>, Vec<(SocketAddr, std::io::Error)>) {
    let mut bound = Vec::new();
    let mut failed = Vec::new();
    for addr in control {
        match listener(*addr) {
            Ok(l) => bound.push(l),
            Err(e) => failed.push((*addr, e)),
        }
    }
    (bound, failed)
}

/// The page's listener: the same socket as a test listener's (IPV6_V6ONLY, so `[::]`
/// leaves IPv4 to `0.0.0.0`).
fn listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::from_std(crate::listeners::tcp_socket(addr)?)
}

/// A fresh browser token: 26 Crockford base32 symbols, 130 bits from the OS.
pub(crate) fn new_token() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    (0..26).map(|_| char::from(ALPHABET[OsRng.gen_range(0..32)])).collect()
}

/// Whether two tokens are equal, in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why the live link changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkChange {
    /// A browser started a run with it.
    Used,
    /// It was not used for [`BROWSER_TOKEN_LIFETIME`].
    Expired,
}

/// The live token, and who presented wrong ones.
#[derive(Debug)]
pub(crate) struct Tokens {
    current: String,
    issued: Instant,
    /// Wrong tokens per address (the whole address: on IPv6 a /64 is often the LAN).
    wrong: HashMap<IpAddr, (u32, Instant)>,
}

/// What a token presented to `POST /api/plan` is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Presented {
    /// The live one: it is consumed, and this is its successor.
    Live { next: String },
    /// Anything else: a wrong, used or expired token.
    Other,
}

impl Tokens {
    pub(crate) fn new(now: Instant) -> Tokens {
        Tokens { current: new_token(), issued: now, wrong: HashMap::new() }
    }

    /// The live token.
    pub(crate) fn current(&self) -> &str {
        &self.current
    }

    /// Replaces the live token when it has lived [`BROWSER_TOKEN_LIFETIME`]: its
    /// successor, to be printed.
    pub(crate) fn expire(&mut self, now: Instant) -> Option<String> {
        if now.saturating_duration_since(self.issued) < BROWSER_TOKEN_LIFETIME {
            return None;
        }
        self.current = new_token();
        self.issued = now;
        Some(self.current.clone())
    }

    /// Whether `source` may present a token now.
    pub(crate) fn allowed(&mut self, source: IpAddr, now: Instant) -> bool {
        let source = source.to_canonical();
        match self.wrong.get(&source) {
            Some((count, since)) if *count >= WEB_WRONG_TOKENS => {
                if now.saturating_duration_since(*since) < WEB_THROTTLE {
                    return false;
                }
                self.wrong.remove(&source);
                true
            }
            _ => true,
        }
    }

    /// Whether `token` is the live one (nothing is spent).
    pub(crate) fn is_live(&self, token: &str, now: Instant) -> bool {
        same(token, &self.current) && now.saturating_duration_since(self.issued) < BROWSER_TOKEN_LIFETIME
    }

    /// Checks a token presented to start a run (the source is allowed).
    pub(crate) fn present(&mut self, token: &str, now: Instant) -> Presented {
        if same(token, &self.current) && now.saturating_duration_since(self.issued) < BROWSER_TOKEN_LIFETIME {
            self.current = new_token();
            self.issued = now;
            return Presented::Live { next: self.current.clone() };
        }
        Presented::Other
    }

    /// Counts a wrong token from `source`.
    pub(crate) fn wrong(&mut self, source: IpAddr, now: Instant) {
        let source = source.to_canonical();
        if !self.wrong.contains_key(&source)
            && self.wrong.len() >= MAX_THROTTLED_SOURCES
            && let Some(oldest) = self.wrong.iter().min_by_key(|(_, (_, t))| *t).map(|(s, _)| *s)
        {
            self.wrong.remove(&oldest);
        }
        let entry = self.wrong.entry(source).or_insert((0, now));
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
    }
}

/// One request, parsed and bounded.
#[derive(Debug)]
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    pub token: Option<String>,
    pub body: Vec<u8>,
    /// The connection's source.
    pub from: SocketAddr,
    /// The agent address it arrived at.
    pub local: SocketAddr,
}

/// A response: status, content type, body.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Extra headers (name, value).
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    /// A JSON answer.
    pub(crate) fn json(status: u16, value: &impl serde::Serialize) -> Response {
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        Response { status, content_type: "application/json", body, headers: Vec::new() }
    }

    /// An error with a sentence for a person.
    pub(crate) fn error(status: u16, sentence: &str) -> Response {
        Response::json(status, &serde_json::json!({ "error": sentence }))
    }

    /// A bare status, no body.
    pub(crate) fn bare(status: u16) -> Response {
        Response { status, content_type: "text/plain", body: Vec::new(), headers: Vec::new() }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// The page's Content-Security-Policy: its one script and one style by hash, requests
/// only to the agent's own addresses, nothing else.
fn csp(connect: &[IpAddr]) -> String {
    static HASHES: OnceLock<(String, String)> = OnceLock::new();
    let (script, style) = HASHES.get_or_init(|| (hash_of(PAGE, "script"), hash_of(PAGE, "style")));
    let mut sources = vec!["'self'".to_owned()];
    for ip in connect {
        match ip {
            IpAddr::V4(v4) => sources.push(format!("http://{v4}:*")),
            // CSP host sources cannot name an IPv6 literal: allow plain http then (the
            // page still only ever requests the URLs of the agent's plan).
            IpAddr::V6(_) => {
                if !sources.iter().any(|s| s == "http:") {
                    sources.push("http:".to_owned());
                }
            }
        }
    }
    format!(
        "default-src 'none'; script-src 'sha256-{script}'; style-src 'sha256-{style}'; connect-src {}; img-src data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        sources.join(" ")
    )
}

/// The base64 SHA-256 of the text of the page's one `<tag>` element.
fn hash_of(page: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let text = page
        .split_once(&open)
        .and_then(|(_, rest)| rest.split_once(&close))
        .map(|(inner, _)| inner)
        .unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
}

/// The page, with its headers.
pub(crate) fn page(connect: &[IpAddr]) -> Response {
    Response {
        status: 200,
        content_type: "text/html; charset=utf-8",
        body: PAGE.as_bytes().to_vec(),
        headers: vec![("Content-Security-Policy", csp(connect)), ("X-Frame-Options", "DENY".into())],
    }
}

/// Connections waiting for their request, oldest first: at most
/// [`MAX_WEB_CONNECTIONS`], and [`MAX_WEB_CONNECTIONS_PER_SOURCE`] per address (the
/// whole address: on IPv6 a /64 is often the whole LAN). When every place is taken, a
/// newcomer evicts the oldest waiting connection, so idle connections cannot keep the
/// phone out; once its request is read, a connection leaves the table.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    next_id: u64,
    waiting: std::collections::VecDeque<Waiting>,
}

#[derive(Debug)]
struct Waiting {
    id: u64,
    source: IpAddr,
    task: tokio::task::AbortHandle,
}

/// A connection's place while it waits for its request; leaves the table when dropped.
pub(crate) struct Place {
    table: Arc<Mutex<Connections>>,
    id: u64,
}

impl Drop for Place {
    fn drop(&mut self) {
        lock(&self.table).waiting.retain(|w| w.id != self.id);
    }
}

/// Makes room for a connection from `source`: `None` when that address already holds
/// its share; otherwise the oldest waiting connection is evicted when the table is full.
/// `spawn` starts the connection's task with its place.
pub(crate) fn admit<F>(table: &Arc<Mutex<Connections>>, source: IpAddr, spawn: F) -> bool
where
    F: FnOnce(Place) -> tokio::task::AbortHandle,
{
    let source = source.to_canonical();
    let mut t = lock(table);
    if t.waiting.iter().filter(|w| w.source == source).count() >= MAX_WEB_CONNECTIONS_PER_SOURCE {
        return false;
    }
    while t.waiting.len() >= MAX_WEB_CONNECTIONS {
        if let Some(oldest) = t.waiting.pop_front() {
            oldest.task.abort();
        }
    }
    let id = t.next_id;
    t.next_id += 1;
    let task = spawn(Place { table: table.clone(), id });
    t.waiting.push_back(Waiting { id, source, task });
    true
}

/// Why a request could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// Closed, or not HTTP at all: nothing to answer.
    Gone,
    /// Answer with this status and sentence.
    Answer(u16, &'static str),
}

/// Reads one request from `stream`: its head within [`WEB_HEAD_TIMEOUT`] and
/// [`MAX_WEB_HEAD`] bytes, its body (by `Content-Length` only) within
/// [`WEB_BODY_TIMEOUT`] and [`MAX_WEB_BODY`] bytes.
pub(crate) async fn read_request(
    stream: &mut TcpStream,
    from: SocketAddr,
    local: SocketAddr,
) -> Result<Request, ReadError> {
    let head_deadline = tokio::time::Instant::now() + WEB_HEAD_TIMEOUT;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let (method, path, token, length, head_len) = loop {
        let n = match tokio::time::timeout_at(head_deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Err(ReadError::Gone),
            Ok(Ok(n)) => n,
            Err(_) if buf.is_empty() => return Err(ReadError::Gone),
            Err(_) => return Err(ReadError::Answer(408, "the request took too long to arrive")),
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let method = req.method.unwrap_or_default().to_owned();
                let path = req.path.unwrap_or_default().to_owned();
                let header = |name: &str| {
                    req.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.to_vec())
                };
                let token = header(TOKEN_HEADER).and_then(|v| String::from_utf8(v).ok()).map(|t| t.trim().to_owned());
                if header("transfer-encoding").is_some() {
                    return Err(ReadError::Answer(411, "send the body with a Content-Length"));
                }
                let length = match header("content-length") {
                    None if method == "POST" => {
                        return Err(ReadError::Answer(411, "send the body with a Content-Length"));
                    }
                    None => 0,
                    Some(v) => {
                        let text = std::str::from_utf8(&v).unwrap_or_default().trim();
                        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                            return Err(ReadError::Answer(400, "the Content-Length is not a number"));
                        }
                        // Digits only: a number too large for memory is simply too large.
                        text.parse::<usize>().unwrap_or(usize::MAX)
                    }
                };
                break (method, path, token, length, head_len);
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_WEB_HEAD => continue,
            Ok(httparse::Status::Partial) => {
                return Err(ReadError::Answer(431, "the request's headers are too large"));
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(ReadError::Answer(431, "the request has too many headers"));
            }
            Err(_) if buf.starts_with(b"\x16\x03") => return Err(ReadError::Gone),
            Err(_) => return Err(ReadError::Answer(400, "that is not an HTTP request")),
        }
    };
    if length > MAX_WEB_BODY {
        return Err(ReadError::Answer(413, "the request's body is too large"));
    }
    let mut body = buf.split_off(head_len.min(buf.len()));
    if body.len() > length {
        return Err(ReadError::Answer(400, "more data than the Content-Length says"));
    }
    let body_deadline = tokio::time::Instant::now() + WEB_BODY_TIMEOUT;
    while body.len() < length {
        let want = (length - body.len()).min(chunk.len());
        match tokio::time::timeout_at(body_deadline, stream.read(&mut chunk[..want])).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Err(ReadError::Gone),
            Ok(Ok(n)) => body.extend_from_slice(&chunk[..n]),
            Err(_) => return Err(ReadError::Answer(408, "the request's body took too long to arrive")),
        }
    }
    Ok(Request { method, path, token, body, from: canonical(from), local: canonical(local) })
}

/// Writes `response` and closes the connection. After an `early` answer (the request was
/// not read to its end), the rest of what the client sends is read and dropped for a
/// moment, so that closing does not reset the connection before the client read the
/// answer.
pub(crate) async fn write_response(stream: &mut TcpStream, response: Response, early: bool) {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
         X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&response.body).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(WEB_BODY_TIMEOUT, write).await;
    if early {
        let mut sink = [0u8; 4096];
        let mut left = LINGER_BYTES;
        let drain = async {
            while left > 0 {
                match stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    }
}

/// How long, and how many bytes, an early answer's connection is drained before closing.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);
/// See [`LINGER`].
const LINGER_BYTES: usize = 4 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_token_starts_one_run_and_a_wrong_one_five_times_throttles_its_source() {
        let t0 = Instant::now();
        let mut tokens = Tokens::new(t0);
        let live = tokens.current().to_owned();
        assert_eq!(live.len(), 26);
        let Presented::Live { next } = tokens.present(&live, t0) else { panic!("the live token starts a run") };
        assert_ne!(next, live);
        assert_eq!(tokens.present(&live, t0), Presented::Other, "single use");
        let source: IpAddr = "2001:db8::66".parse().expect("ip");
        for _ in 0..WEB_WRONG_TOKENS {
            assert!(tokens.allowed(source, t0));
            tokens.wrong(source, t0);
        }
        assert!(!tokens.allowed(source, t0 + Duration::from_secs(1)), "throttled");
        assert!(tokens.allowed("2001:db8::67".parse().expect("ip"), t0), "others are not, even in its /64");
        assert!(tokens.allowed(source, t0 + WEB_THROTTLE), "for a while");
    }

    #[test]
    fn an_unused_token_expires_and_is_replaced() {
        let t0 = Instant::now();
        let mut tokens = Tokens::new(t0);
        let first = tokens.current().to_owned();
        assert_eq!(tokens.expire(t0 + Duration::from_secs(60)), None);
        let later = t0 + BROWSER_TOKEN_LIFETIME;
        assert_eq!(tokens.present(&first, later), Presented::Other, "expired");
        let next = tokens.expire(later).expect("replaced");
        assert_ne!(next, first);
    }

    #[test]
    fn the_page_has_one_script_and_one_style_and_the_policy_names_their_hashes() {
        assert_eq!(PAGE.matches("<script>").count(), 1, "exactly one inline script");
        assert_eq!(PAGE.matches("<style>").count(), 1, "exactly one inline style");
        assert!(!PAGE.contains("<script src") && !PAGE.contains("onclick=") && !PAGE.contains("innerHTML"));
        assert!(PAGE.len() < 30 * 1024, "the page is {} bytes", PAGE.len());
        let policy = csp(&["198.51.100.1".parse().expect("ip")]);
        assert!(policy.contains(&format!("'sha256-{}'", hash_of(PAGE, "script"))), "{policy}");
        assert!(policy.contains("connect-src 'self' http://198.51.100.1:*;"), "{policy}");
        assert!(policy.starts_with("default-src 'none';"));
    }

    #[tokio::test]
    async fn a_full_table_evicts_the_oldest_waiting_and_one_address_gets_its_share_only() {
        let table = Arc::new(Mutex::new(Connections::default()));
        let mut places = Vec::new();
        let mut tasks = Vec::new();
        let mut add = |source: &str, places: &mut Vec<Place>| {
            admit(&table, source.parse().expect("ip"), |place| {
                places.push(place);
                let task = tokio::spawn(std::future::pending::<()>());
                let handle = task.abort_handle();
                tasks.push(task);
                handle
            })
        };
        for _ in 0..MAX_WEB_CONNECTIONS_PER_SOURCE {
            assert!(add("2001:db8::66", &mut places));
        }
        assert!(!add("2001:db8::66", &mut places), "one address holds its share at most");
        assert!(add("2001:db8::67", &mut places), "its /64 neighbour is another address");
        let mut n = 0;
        while lock(&table).waiting.len() < MAX_WEB_CONNECTIONS {
            assert!(add(&format!("198.51.100.{}", n % 200 + 1), &mut places));
            n += 1;
        }
        assert!(add("198.51.100.250", &mut places), "a newcomer always gets in");
        tokio::task::yield_now().await;
        assert!(tasks[0].is_finished(), "the oldest waiting connection was evicted");
        places.clear();
        assert!(lock(&table).waiting.is_empty(), "places come back when requests are read");
    }
}
