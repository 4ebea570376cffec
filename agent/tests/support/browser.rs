//! A real headless Chromium driven over the DevTools protocol, in real time.
//!
//! `--virtual-time-budget` stalls while a fetch is pending (see `shared/BROWSER.md`), so
//! pages that wait on the network are driven live instead: `--remote-debugging-pipe`
//! speaks the protocol as NUL-terminated JSON, commands on Chromium's fd 3 and replies and
//! events on its fd 4. Without `unsafe` there is no `dup2` before `exec`, so a shell maps
//! our stdin/stdout pipes onto those descriptors and then `exec`s Chromium: the child's PID
//! is Chromium's own (`ip netns exec` execs too), and killing it by that PID is exact.
//!
//! One page per [`Browser`]. Every reply is awaited with a deadline; nothing here hangs.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

/// How long one protocol command may take to be answered; launching Chromium cold takes
/// about a second, so this only trips when something is really stuck.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// How long [`Browser`]'s drop waits for `Browser.close` before killing the process.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// How often [`Browser::wait_for`] evaluates its condition.
const POLL: Duration = Duration::from_millis(100);

/// Moves stdin to fd 3 and stdout to fd 4, then becomes Chromium (`"$@"`). Chromium's own
/// stdout goes to stderr so that nothing but protocol messages reaches fd 4's reader.
const PIPE_FDS: &str = r#"exec "$@" 3<&0 4>&1 0</dev/null 1>&2"#;

/// Headless in real time, nothing that talks to the internet, no sandbox (tests run as
/// root). `--disable-dev-shm-usage` because Debian's wrapper fails to decide it for itself
/// when `findmnt` prints more than one line for /dev/shm.
const FLAGS: &str = "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
    --no-default-browser-check --disable-background-networking --disable-component-update --disable-extensions \
    --disable-sync --mute-audio --remote-debugging-pipe";

/// What [`Browser::wait_for`] shows of the page when it gives up.
const BODY_TEXT: &str = "document.body ? document.body.innerText.slice(0, 2000) : ''";

/// Whether Chromium and `tools` are on `PATH`; prints a loud skip when not, or panics
/// when `LANREACH_REQUIRE_BROWSER=1` (CI) says that a browser test that cannot run fails.
pub fn available_with(test: &str, tools: &[&str]) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<&str> = std::iter::once("chromium")
        .chain(tools.iter().copied())
        .filter(|tool| !std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("{} not installed (scripts/install-test-deps.sh installs it)", missing.join(", "));
    if std::env::var("LANREACH_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!("{test}: {why}");
    }
    eprintln!("\n*** SKIPPED {test}: {why} ***\n");
    false
}

/// Whether Chromium is installed; see [`available_with`].
pub fn chromium_available(test: &str) -> bool {
    available_with(test, &[])
}

/// Events kept from Chromium's pipe.
#[derive(Default)]
struct Seen {
    /// Console calls and uncaught exceptions of the page, as text.
    console: Vec<String>,
    /// `(loaderId, name)` of the page's lifecycle events (`DOMContentLoaded`, `load`, …).
    lifecycle: Vec<(String, String)>,
}

/// A headless Chromium with at most one page, closed and killed on drop.
pub struct Browser {
    child: Child,
    /// Chromium's fd 3; `None` once drop closed it.
    commands: Option<ChildStdin>,
    /// Replies (messages with an `id`), in arrival order.
    replies: Receiver<Value>,
    /// The events worth keeping, recorded by the reader thread.
    seen: Arc<Mutex<Seen>>,
    next_id: u64,
    /// The flattened session of the page, once [`Browser::open_page`] attached to it.
    session: Option<String>,
    log: PathBuf,
    /// Holds the profile and the log; removed after the process is gone.
    _dir: TempDir,
}

impl Browser {
    /// Starts Chromium, inside network namespace `netns` when given, and waits until it
    /// answers on its pipe. Panics with Chromium's stderr when it does not.
    pub fn launch(netns: Option<&str>) -> Browser {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory for chromium: {e}"));
        let log = dir.path().join("chromium.log");
        let stderr = File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let mut command = Command::new(if netns.is_some() { "ip" } else { "sh" });
        if let Some(ns) = netns {
            command.args(["netns", "exec", ns, "sh"]);
        }
        command
            .args(["-c", PIPE_FDS, "sh", "chromium"])
            .args(FLAGS.split_whitespace())
            .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = command.spawn().unwrap_or_else(|e| panic!("starting chromium (netns {netns:?}): {e}"));
        let (commands, out) = (child.stdin.take(), child.stdout.take());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (tx, replies) = mpsc::channel();
        if let Some(out) = out {
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || read_messages(out, &tx, &seen));
        }
        let mut browser = Browser { child, commands, replies, seen, next_id: 0, session: None, log, _dir: dir };
        if let Err(e) = browser.call(false, "Browser.getVersion", json!({})) {
            panic!("chromium refused Browser.getVersion: {e}\n{}", browser.log());
        }
        browser
    }

    /// Opens a new page at `url` with a `width`×`height` CSS-pixel viewport, as a phone
    /// (device scale 2, touch, `<meta viewport>` honoured) when `mobile`. Returns once the
    /// document is parsed (`DOMContentLoaded`: its title and synchronous scripts are there,
    /// images may still load); use [`Browser::wait_for`] for what the page does next.
    pub fn open_page(&mut self, url: &str, width: u32, height: u32, mobile: bool) {
        let target = self.must(false, "Target.createTarget", json!({ "url": "about:blank" }));
        let attached =
            self.must(false, "Target.attachToTarget", json!({ "targetId": target["targetId"], "flatten": true }));
        let session = attached["sessionId"].as_str().unwrap_or_else(|| panic!("no sessionId in {attached}"));
        self.session = Some(session.to_owned());
        let scale = if mobile { 2 } else { 1 };
        let metrics = json!({ "width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile });
        self.must(true, "Emulation.setDeviceMetricsOverride", metrics);
        if mobile {
            self.must(true, "Emulation.setTouchEmulationEnabled", json!({ "enabled": true, "maxTouchPoints": 5 }));
        }
        self.must(true, "Page.enable", json!({}));
        self.must(true, "Page.setLifecycleEventsEnabled", json!({ "enabled": true }));
        self.must(true, "Runtime.enable", json!({}));
        // Network errors and policy violations (CSP, Local Network Access) arrive here.
        self.must(true, "Log.enable", json!({}));
        let navigated = self.must(true, "Page.navigate", json!({ "url": url }));
        if let Some(error) = navigated["errorText"].as_str() {
            panic!("navigating to {url} failed: {error}");
        }
        // Page.navigate answers at commit, when the new document may still be empty.
        let Some(loader) = navigated["loaderId"].as_str() else { return }; // same-document
        let deadline = Instant::now() + CALL_TIMEOUT;
        while !self.lock().lifecycle.iter().any(|(l, name)| l == loader && name == "DOMContentLoaded") {
            assert!(Instant::now() < deadline, "{url}: no DOMContentLoaded within {CALL_TIMEOUT:?}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The value of `expression` in the page (promises awaited). Panics when it throws.
    pub fn eval(&mut self, expression: &str) -> Value {
        self.try_eval(expression).unwrap_or_else(|e| panic!("evaluating `{expression}`: {e}"))
    }

    /// Evaluates `expression` every 100 ms until its value is truthy and returns that
    /// value. Errors while polling (the page still loading) count as falsy. Panics after
    /// `limit` with the last outcome, the page's text and its console.
    pub fn wait_for(&mut self, expression: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let last = match self.try_eval(expression) {
                Ok(value) if truthy(&value) => return value,
                Ok(value) => format!("last value {value}"),
                Err(e) => format!("last error: {e}"),
            };
            if Instant::now() >= deadline {
                let text = self.try_eval(BODY_TEXT).unwrap_or_else(|e| Value::String(format!("({e})")));
                panic!(
                    "`{expression}` not truthy after {limit:?} ({last})\npage text: {}\nconsole:\n{}",
                    text.as_str().unwrap_or_default(),
                    self.console().join("\n"),
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Writes a PNG of the page's viewport to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let shot = self.must(true, "Page.captureScreenshot", json!({ "format": "png" }));
        let data = shot["data"].as_str().unwrap_or_else(|| panic!("no screenshot data in {shot}"));
        std::fs::write(path, decode_base64(data)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// The page's console calls (`log: text`) and uncaught exceptions seen so far.
    pub fn console(&self) -> Vec<String> {
        self.lock().console.clone()
    }

    /// Chromium's stderr so far, without its harmless D-Bus complaints, for diagnostics.
    pub fn log(&self) -> String {
        let bytes = std::fs::read(&self.log).unwrap_or_default();
        String::from_utf8_lossy(&bytes).lines().filter(|l| !l.contains(":ERROR:dbus/")).collect::<Vec<_>>().join("\n")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn try_eval(&mut self, expression: &str) -> Result<Value, String> {
        let params = json!({ "expression": expression, "returnByValue": true, "awaitPromise": true });
        let reply = self.call(true, "Runtime.evaluate", params)?;
        if let Some(details) = reply.get("exceptionDetails") {
            return Err(exception_text(details));
        }
        Ok(reply["result"].get("value").cloned().unwrap_or(Value::Null))
    }

    /// [`Browser::call`], panicking on a protocol error.
    fn must(&mut self, in_page: bool, method: &str, params: Value) -> Value {
        self.call(in_page, method, params).unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// Sends one command (to the page's session when `in_page`) and waits for its reply:
    /// `Err` with the protocol's error, a panic when Chromium is gone or silent.
    fn call(&mut self, in_page: bool, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if in_page {
            let session = self.session.clone().unwrap_or_else(|| panic!("{method} before open_page"));
            message["sessionId"] = Value::String(session);
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        let sent = self.commands.as_mut().map_or(Ok(()), |pipe| pipe.write_all(&bytes).and_then(|()| pipe.flush()));
        if let Err(e) = sent {
            panic!("writing {method} to chromium: {e}\n{}", self.log());
        }
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            match self.replies.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(reply) if reply["id"] == id => {
                    return match reply.get("error") {
                        Some(error) => Err(error["message"].as_str().unwrap_or("unknown error").to_owned()),
                        None => Ok(reply["result"].clone()),
                    };
                }
                Ok(_) => {} // a reply to nothing we are waiting for
                Err(RecvTimeoutError::Timeout) => {
                    panic!("chromium did not answer {method} within {CALL_TIMEOUT:?}\n{}", self.log())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("chromium closed its DevTools pipe during {method}\n{}", self.log())
                }
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(mut pipe) = self.commands.take() {
            let close = json!({ "id": 0, "method": "Browser.close" }).to_string();
            let _ = pipe.write_all(close.as_bytes()).and_then(|()| pipe.write_all(b"\0"));
        } // closing fd 3 tells Chromium to quit as well
        let deadline = Instant::now() + CLOSE_GRACE;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Reads NUL-terminated messages from Chromium's fd 4 until it closes: replies go to
/// `replies`, console output, crashes and lifecycle events to `seen`, other events are
/// dropped.
fn read_messages(out: ChildStdout, replies: &Sender<Value>, seen: &Mutex<Seen>) {
    let mut reader = BufReader::new(out);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(0, &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if buf.last() == Some(&0) {
            buf.pop();
        }
        let Ok(message) = serde_json::from_slice::<Value>(&buf) else { continue };
        if message.get("id").is_some() {
            if replies.send(message).is_err() {
                return;
            }
            continue;
        }
        let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
        if message["method"] == "Page.lifecycleEvent" {
            let text = |key: &str| message["params"][key].as_str().unwrap_or_default().to_owned();
            seen.lifecycle.push((text("loaderId"), text("name")));
        } else if let Some(line) = console_line(&message) {
            seen.console.push(line);
        }
    }
}

/// An event as a console line, for the events worth keeping.
fn console_line(event: &Value) -> Option<String> {
    let params = &event["params"];
    match event["method"].as_str()? {
        "Runtime.consoleAPICalled" => {
            let args: Vec<String> = params["args"]
                .as_array()?
                .iter()
                .map(|arg| match arg.get("value") {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => arg["description"].as_str().or(arg["type"].as_str()).unwrap_or("?").to_owned(),
                })
                .collect();
            Some(format!("{}: {}", params["type"].as_str().unwrap_or("log"), args.join(" ")))
        }
        "Runtime.exceptionThrown" => Some(format!("exception: {}", exception_text(&params["exceptionDetails"]))),
        "Inspector.targetCrashed" => Some("the page crashed".to_owned()),
        "Log.entryAdded" => {
            let entry = &params["entry"];
            Some(format!("{}: {}", entry["level"].as_str().unwrap_or("log"), entry["text"].as_str().unwrap_or("?")))
        }
        _ => None,
    }
}

/// The readable part of a protocol `ExceptionDetails`.
fn exception_text(details: &Value) -> String {
    details["exception"]["description"].as_str().or(details["text"].as_str()).unwrap_or("exception").to_owned()
}

/// JavaScript truthiness of a value returned by value (`NaN` and `undefined` arrive as null).
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Standard base64 (the protocol's encoding of binary data) to bytes; the agent's tests
/// have no base64 crate.
fn decode_base64(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().take_while(|&c| c != b'=') {
        let sextet = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("byte {c:#04x} in base64 data"),
        };
        acc = (acc << 6 | u32::from(sextet)) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
