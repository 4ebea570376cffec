//! The test browser itself: a real headless Chromium, driven in real time over its
//! DevTools pipe, loads a phone-size page from a loopback HTTP server and sees the page's
//! own network work finish. Skips loudly without chromium or python3.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::browser::{Browser, available_with};

/// A phone's viewport in CSS pixels (an iPhone 12–15).
const PHONE: (u32, u32) = (390, 844);

/// The page: once a fetch to a closed loopback port has failed, and a real-time timer
/// after that has fired, it records the error's name on `<body data-probe>`.
const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>driver check</title>
<style>body { font: 16px sans-serif; margin: 16px; } p { overflow-wrap: anywhere; }</style>
</head><body>
<h1>Browser driver</h1>
<p id="status">probing a closed port…</p>
<script>
(async () => {
  const started = performance.now();
  let outcome = "answered";
  try {
    await fetch("http://127.0.0.1:CLOSED_PORT/", { mode: "no-cors" });
  } catch (e) {
    outcome = e.name;
  }
  await new Promise(resolve => setTimeout(resolve, 300));
  const ms = Math.round(performance.now() - started);
  document.getElementById("status").textContent = `closed port: ${outcome} (${ms} ms)`;
  console.log("probe", outcome, ms);
  document.body.dataset.probe = outcome;
})();
</script>
</body></html>
"#;

/// `python3 -m http.server` on 127.0.0.1 and a port the kernel picked, killed on drop.
struct HttpServer {
    child: Child,
    port: u16,
}

impl HttpServer {
    /// Serves `dir`; returns once the server said which port it listens on.
    fn start(dir: &Path) -> HttpServer {
        let mut child = Command::new("python3")
            .args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 -m http.server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        let port = line.split_whitespace().skip_while(|w| *w != "port").nth(1).and_then(|p| p.parse().ok());
        let mut server = HttpServer { child, port: 0 };
        server.port = port.unwrap_or_else(|| panic!("http.server did not announce its port: {line:?}"));
        server
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_phone_page_finishes_its_network_probe_in_real_time() {
    let test = "a_phone_page_finishes_its_network_probe_in_real_time";
    if !available_with(test, &["python3"]) {
        return;
    }
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("index.html"), PAGE.replace("CLOSED_PORT", &closed_port.to_string())).unwrap();
    let server = HttpServer::start(site.path());

    let started = Instant::now();
    let mut browser = Browser::launch(None);
    let launched = started.elapsed();
    browser.open_page(&format!("http://127.0.0.1:{}/index.html", server.port), PHONE.0, PHONE.1, true);
    let opened = started.elapsed();
    let title = browser.eval("document.title");
    let first_eval = started.elapsed();
    let probe = browser.wait_for("document.body && document.body.dataset.probe", Duration::from_secs(15));
    let probed = started.elapsed();
    eprintln!(
        "chromium: launched {launched:?}, page opened {opened:?}, first eval {first_eval:?} ({title}), \
         probe done {probed:?}"
    );

    assert_eq!(title, "driver check", "open_page returns with the document parsed");
    assert_eq!(probe, "TypeError", "a closed port fails fast; console: {:?}", browser.console());
    assert!(
        browser.console().iter().any(|line| line.starts_with("log: probe TypeError")),
        "console: {:?}",
        browser.console()
    );
    let scroll_width = browser.eval("document.documentElement.scrollWidth");
    assert!(scroll_width.as_u64().is_some_and(|w| w <= u64::from(PHONE.0)), "page scrolls sideways: {scroll_width}");

    let shot = tempfile::Builder::new().suffix(".png").tempfile().unwrap();
    browser.screenshot(shot.path());
    let png = std::fs::read(shot.path()).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG: {:?}", &png[..png.len().min(16)]);
    // IHDR: width and height in device pixels, twice the CSS viewport on a phone.
    let size = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!((size(16), size(20)), (2 * PHONE.0, 2 * PHONE.1), "screenshot size");
    drop(browser);
    drop(server);
}
