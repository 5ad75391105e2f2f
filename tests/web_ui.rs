//! The live page in a real browser: the wordcount example runs with `--web` (rate-limited, so
//! it is still running when the browser looks), headless Chromium (Debian's
//! `/usr/bin/chromium`, driven by Playwright's `playwright-core` from npm) loads the page, and
//! `tests/browser/web_ui.mjs` checks that the graph shows the job's operators, that the
//! throughput number changes, and that checkpoints appear; it saves a screenshot under
//! `target/tmp/web-ui.png`. Then the job is stopped gracefully and must exit cleanly.
//!
//! Chromium and the npm package are installed here when missing (`apt-get install chromium`
//! as root, `npm ci`); `.ci/run` installs them up front. Only when that is impossible is the
//! test skipped, with a message saying so.

#[path = "support/example_bin.rs"]
mod example_bin;

use example_bin::example_bin;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
/// The longest wait for the example to print its web address; only marks a failure.
const TIMEOUT: Duration = Duration::from_secs(120);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn succeeds(command: &mut Command) -> bool {
    command.status().is_ok_and(|s| s.success())
}

/// Chromium is there, or installed now (root with apt-get); `Err` says why it cannot be.
fn ensure_chromium() -> Result<(), String> {
    if Path::new(CHROMIUM).exists() {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !root {
        return Err(format!(
            "{CHROMIUM} is missing and this is not root: `apt-get install chromium` as root"
        ));
    }
    eprintln!("web_ui: {CHROMIUM} is missing: apt-get install -y chromium ...");
    let install = || {
        succeeds(
            Command::new("apt-get")
                .args(["install", "-y", "chromium"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    };
    if !install() {
        // A fresh machine may have no package lists yet.
        succeeds(Command::new("apt-get").arg("update"));
        install();
    }
    if Path::new(CHROMIUM).exists() {
        Ok(())
    } else {
        Err(format!(
            "apt-get install chromium did not provide {CHROMIUM}"
        ))
    }
}

/// `playwright-core` is in `tests/browser/node_modules`, or installed now by `npm ci`.
fn ensure_playwright() -> Result<(), String> {
    let dir = browser_dir();
    if dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return Ok(());
    }
    eprintln!(
        "web_ui: installing playwright-core (npm ci in {}) ...",
        dir.display()
    );
    if succeeds(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir),
    ) {
        Ok(())
    } else {
        Err(format!(
            "`npm ci` in {} failed (is node/npm installed?)",
            dir.display()
        ))
    }
}

/// Kills the example if the test ends before it stopped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_input(path: &Path, lines: u64) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create input"));
    for i in 0..lines {
        writeln!(out, "w{} w{} w{} w{}", i % 97, i % 13, i % 1009, i % 7).expect("write input");
    }
    out.flush().expect("flush input");
}

#[test]
fn the_live_page_shows_the_running_job_in_chromium() {
    if let Err(why) = ensure_chromium().and_then(|()| ensure_playwright()) {
        eprintln!("\n!!!!!!!!!! web_ui: SKIPPED, the browser test did not run: {why} !!!!!!!!!!\n");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("input.txt");
    // At 2000 lines/s, 200 k lines keep the job running for 100 s: far longer than the
    // browser needs, and the test stops it as soon as the browser is done.
    write_input(&input, 200_000);
    let child = Command::new(example_bin("wordcount"))
        .arg("--input")
        .arg(&input)
        .arg("--checkpoint-dir")
        .arg(dir.path().join("checkpoints"))
        .args(["--sink", "discard", "--parallelism", "2"])
        .args(["--checkpoint-interval-ms", "300", "--max-rate", "2000"])
        .args(["--web", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wordcount");
    let mut running = Running(child);

    // The example names its address on stderr; the rest of stderr is drained alongside.
    let stderr = running.0.stderr.take().expect("stderr");
    let (url_tx, url_rx) = mpsc::channel();
    let stderr_lines = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("web view at ") {
                let _ = url_tx.send(url.to_owned());
            }
            lines.push(line);
        }
        lines
    });
    let url = url_rx
        .recv_timeout(TIMEOUT)
        .expect("wordcount printed its web address");

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-ui.png");
    let _ = std::fs::remove_file(&screenshot);
    let browser = Command::new("node")
        .arg(browser_dir().join("web_ui.mjs"))
        .arg(&url)
        .arg(&screenshot)
        .arg("read,tokenize,count,write")
        .current_dir(browser_dir())
        .output()
        .expect("run node");
    let report = String::from_utf8_lossy(&browser.stdout);
    eprintln!("{report}{}", String::from_utf8_lossy(&browser.stderr));
    assert!(browser.status.success(), "the browser check failed");
    assert!(
        report.contains("graph shows: read, tokenize, count, write"),
        "{report}"
    );
    assert!(report.contains("throughput changed"), "{report}");
    let png = std::fs::read(&screenshot).expect("the screenshot was saved");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");

    // Stop it gracefully: it must still be running (the page was live), then exit cleanly.
    assert!(
        running.0.try_wait().expect("poll wordcount").is_none(),
        "wordcount ended before the browser check was done"
    );
    let pid = running.0.id().to_string();
    assert!(
        succeeds(Command::new("kill").args(["-TERM", &pid])),
        "kill -TERM"
    );
    let mut stdout = running.0.stdout.take().expect("stdout");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut out).expect("read stdout");
    let status = running.0.wait().expect("wait for wordcount");
    let err = stderr_lines.join().expect("stderr reader").join("\n");
    assert!(status.success(), "wordcount: {status}\n{out}\n{err}");
    assert!(out.contains("stopped at checkpoint"), "{out}\n{err}");
}
