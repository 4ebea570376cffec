//! The browser page's server as a hostile LAN meets it, on loopback: malformed,
//! oversized and unauthorised requests get the documented answers (never a panic), wrong
//! tokens are throttled without locking out a run in progress, and a good token starts
//! exactly one run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// An agent on 127.0.0.1 with its page on the same port number; killed by PID on drop.
struct Agent {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    addr: SocketAddr,
    _state: tempfile::TempDir,
}

impl Agent {
    fn start() -> Agent {
        let state = tempfile::tempdir().expect("dir");
        // A port free for both UDP and TCP a moment ago.
        let port = loop {
            let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
            let port = udp.local_addr().expect("addr").port();
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                break port;
            }
        };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut child = Command::new(env!("CARGO_BIN_EXE_lanreach-agent"))
            .arg("--state-dir")
            .arg(state.path())
            .args(["--control", &addr.to_string(), "--no-mdns", "--check", "3000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lanreach-agent");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut agent = Agent { child, lines, seen: Vec::new(), addr, _state: state };
        agent.wait_line("pairing code:");
        agent
    }

    fn wait_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?}:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// The token of the browser link printed last.
    fn token(&mut self) -> String {
        let line = self.wait_line("http://");
        line.split("t=").nth(1).and_then(|r| r.split('&').next()).expect("t=").to_owned()
    }

    /// Sends raw `bytes` and returns the whole answer (the server closes).
    fn raw(&self, bytes: &[u8]) -> String {
        let mut s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
        let _ = s.write_all(bytes);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    fn post(&self, path: &str, token: Option<&str>, body: &str) -> String {
        let header = token.map(|t| format!("X-Lanreach-Token: {t}\r\n")).unwrap_or_default();
        self.raw(
            format!(
                "POST {path} HTTP/1.1\r\nHost: {}\r\n{header}Content-Length: {}\r\n\r\n{body}",
                self.addr,
                body.len()
            )
            .as_bytes(),
        )
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status(answer: &str) -> u16 {
    answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[test]
fn malformed_and_oversized_requests_get_their_status_and_nothing_else_is_served() {
    let mut agent = Agent::start();
    let page = agent.raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status(&page), 200);
    assert!(page.contains("Content-Security-Policy: default-src 'none';"), "{page}");
    assert!(page.contains("<meta name=\"viewport\""), "a phone page");
    for (request, want) in [
        (b"GET /favicon.ico HTTP/1.1\r\n\r\n".to_vec(), 404),
        (b"GET /../../etc/passwd HTTP/1.1\r\n\r\n".to_vec(), 404),
        (b"PUT / HTTP/1.1\r\nContent-Length: 0\r\n\r\n".to_vec(), 405),
        (b"GET /api/plan HTTP/1.1\r\n\r\n".to_vec(), 405),
        (b"POST /api/plan HTTP/1.1\r\n\r\n".to_vec(), 411),
        (b"POST /api/plan HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), 411),
        (b"POST /api/plan HTTP/1.1\r\nContent-Length: +2\r\n\r\n{}".to_vec(), 400),
        (b"POST /api/plan HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n".to_vec(), 413),
        (b"\x00\x01binary garbage\r\n\r\n".to_vec(), 400),
        ([b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 9000], b"\r\n\r\n"].concat(), 431),
    ] {
        let answer = agent.raw(&request);
        assert_eq!(
            status(&answer),
            want,
            "{:?} → {answer}",
            String::from_utf8_lossy(&request[..request.len().min(60)])
        );
    }
    // HEAD gets no body.
    let head = agent.raw(b"HEAD / HTTP/1.1\r\n\r\n");
    assert_eq!(status(&head), 405);
    assert!(head.ends_with("\r\n\r\n"), "{head}");
    // A 300 KiB body is refused, and the client reads the refusal.
    let big = "x".repeat(300 * 1024);
    assert_eq!(status(&agent.post("/api/results", Some("WRONG"), &big)), 413);
    assert!(agent.alive(), "the agent survived");
}

#[test]
fn wrong_tokens_are_throttled_but_a_run_in_progress_still_posts_its_results() {
    let mut agent = Agent::start();
    let token = agent.token();
    // No token, five times: not counted (any web page could make a browser do this).
    for _ in 0..6 {
        assert_eq!(status(&agent.post("/api/plan", None, "{}")), 404);
    }
    // The good token starts one run; a fresh link is printed at once.
    let plan = agent.post("/api/plan", Some(&token), r#"{"ua":"Mozilla/5.0 (Linux; Android 14) Chrome/156.0 Mobile"}"#);
    assert_eq!(status(&plan), 200, "{plan}");
    let body = plan.split("\r\n\r\n").nth(1).expect("body");
    let plan: serde_json::Value = serde_json::from_str(body).expect("plan JSON");
    assert_eq!(plan["retry_ms"], 0);
    assert!(plan["probes"].as_array().is_some_and(|p| !p.is_empty()), "{plan}");
    // The token is spent.
    assert_eq!(status(&agent.post("/api/plan", Some(&token), "{}")), 404);
    // Five wrong tokens: this address is throttled…
    for _ in 0..5 {
        assert_eq!(status(&agent.post("/api/plan", Some("0000000000000000"), "{}")), 404);
    }
    // …but the run in progress is not cut short: refused results keep it, good ones end it.
    let run = plan["run"].as_str().unwrap();
    let bomb = "[".repeat(100_000);
    assert_eq!(status(&agent.post("/api/results", Some(&token), &bomb)), 400);
    let short = format!(r#"{{"run":"{run}","results":[],"udp":[]}}"#);
    let refused = agent.post("/api/results", Some(&token), &short);
    assert_eq!(status(&refused), 400, "{refused}");
    assert!(refused.contains("one entry per planned probe"), "{refused}");
    let results: Vec<String> = plan["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!(r#"{{"id":{},"class":"failed","ms":1,"attempts":1}}"#, p["id"]))
        .collect();
    let udp: Vec<String> =
        plan["udp"].as_array().unwrap().iter().map(|p| format!(r#"{{"id":{},"sent":false}}"#, p["id"])).collect();
    let good = format!(r#"{{"run":"{run}","results":[{}],"udp":[{}]}}"#, results.join(","), udp.join(","));
    let answer = agent.post("/api/results", Some(&token), &good);
    assert_eq!(status(&answer), 200, "{answer}");
    assert!(answer.contains("\"mode\":\"browser\""), "{answer}");
    // Asked again, the same answer (a browser may re-send a POST).
    assert_eq!(status(&agent.post("/api/results", Some(&token), &good)), 200);
    agent.wait_line("its page shows the answer");
    // The next link comes after that browser's report, and the throttle holds for it too.
    agent.wait_line("New browser link and QR code (the last browser link was used)");
    let fresh = agent.token();
    assert_ne!(fresh, token);
    assert_eq!(status(&agent.post("/api/plan", Some(&fresh), "{}")), 404, "throttled");
    assert!(agent.seen.iter().all(|l| !l.contains('\u{1b}')), "no escape sequences from the network");
    assert!(agent.alive());
}
