//! The web view of a running job, off by default (`JobConfig::with_web`): a live page at `/`,
//! a JSON API under `/api/`, and Prometheus metrics at `/metrics`.
//!
//! The server is `tiny_http`: small and synchronous, so the engine needs no async runtime for
//! a handful of requests per second. One thread answers requests one at a time; every answer
//! is a read of the tasks' relaxed counters and the checkpoint log, so no request ever slows
//! the data path. The server lives as long as the job's handle: it binds when the job
//! launches (a failure to bind fails the launch, naming the address) and stops when the
//! handle is dropped.

pub(crate) mod json;
pub(crate) mod prometheus;
pub(crate) mod view;

use crate::contract::stats::StatsLog;
use crate::error::JobError;
use crate::metrics::JobMetrics;
use crate::shared::Shared;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};
use view::{JobState, JobView};

/// The live page: HTML, CSS and JavaScript in one file, in the binary (no CDN).
const PAGE: &str = include_str!("page.html");

/// What the server reads to answer.
pub(crate) struct WebState {
    pub view: JobView,
    pub metrics: JobMetrics,
    pub stats: StatsLog,
    pub shared: Arc<Shared>,
    pub started: Instant,
}

/// A bound listener, not yet answering: binding comes first so that a bad address fails the
/// launch before any task starts.
pub(crate) struct BoundServer {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
}

/// The running server; dropping it stops and joins its thread and frees its address.
pub(crate) struct WebServer {
    /// `None` only while dropping.
    server: Option<Arc<tiny_http::Server>>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl BoundServer {
    /// Binds `addr` (port 0: any free port; [`WebServer::addr`] tells which).
    ///
    /// # Errors
    /// [`JobError::Web`] naming the address, when it cannot be bound.
    pub(crate) fn bind(addr: &str) -> Result<BoundServer, JobError> {
        let error = |source| JobError::Web {
            addr: addr.to_owned(),
            source,
        };
        let server = tiny_http::Server::http(addr).map_err(error)?;
        let addr = match server.server_addr() {
            tiny_http::ListenAddr::IP(addr) => addr,
            #[allow(unreachable_patterns)]
            _ => return Err(error("not an IP address".into())),
        };
        Ok(BoundServer {
            server: Arc::new(server),
            addr,
        })
    }

    /// Starts answering requests about the job described by `state`.
    ///
    /// # Errors
    /// [`JobError::Spawn`] when the server's thread cannot start.
    pub(crate) fn serve(self, state: WebState) -> Result<WebServer, JobError> {
        let server = self.server.clone();
        let thread = std::thread::Builder::new()
            .name("snapflow-web".into())
            .spawn(move || {
                // Ends when `unblock` is called, as the handle drops.
                for request in server.incoming_requests() {
                    respond(&state, request);
                }
            })
            .map_err(JobError::Spawn)?;
        tracing::info!(addr = %self.addr, "web view listening");
        Ok(WebServer {
            server: Some(self.server),
            addr: self.addr,
            thread: Some(thread),
        })
    }
}

impl WebServer {
    /// The address the server listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// The longest a dropped server waits for its listener to close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

impl Drop for WebServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.unblock();
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
            // The last reference: tiny_http's own accept thread closes the listener just
            // after this. Wait until it has (bounded), so that the address is free once the
            // job's handle is gone: a restarted attempt binds it again at once.
            drop(server);
            let since = Instant::now();
            while TcpStream::connect_timeout(&self.addr, CLOSE_TIMEOUT).is_ok()
                && since.elapsed() < CLOSE_TIMEOUT
            {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// A response: status, content type, body.
pub(crate) struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// Answers one request. A client that went away is no error of the job's.
fn respond(state: &WebState, request: tiny_http::Request) {
    let answer = if *request.method() == tiny_http::Method::Get {
        route(state, request.url())
    } else {
        Answer {
            status: 405,
            content_type: "text/plain; charset=utf-8",
            body: "only GET is supported\n".into(),
        }
    };
    let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], answer.content_type)
        .expect("a constant, valid header");
    let no_cache = tiny_http::Header::from_bytes(&b"Cache-Control"[..], &b"no-store"[..])
        .expect("a constant, valid header");
    let response = tiny_http::Response::from_string(answer.body)
        .with_status_code(answer.status)
        .with_header(header)
        .with_header(no_cache);
    if let Err(e) = request.respond(response) {
        tracing::debug!(error = %e, "web client went away");
    }
}

/// What a GET of `url` answers.
pub(crate) fn route(state: &WebState, url: &str) -> Answer {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let json = |value: serde_json::Value| Answer {
        status: 200,
        content_type: "application/json",
        body: value.to_string(),
    };
    let job_state = || JobState::of(&state.shared, &state.stats);
    match path {
        "/" | "/index.html" => Answer {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: PAGE.to_owned(),
        },
        "/api/job" => json(json::job(&state.view, job_state(), SystemTime::now())),
        "/api/metrics" => json(json::metrics(
            &state.metrics.snapshot(),
            state.started.elapsed(),
        )),
        "/api/checkpoints" => json(json::checkpoints(
            &state.stats.all(),
            &state.stats.all_aborted(),
        )),
        "/metrics" => Answer {
            status: 200,
            content_type: prometheus::CONTENT_TYPE,
            body: prometheus::render(
                &state.view.name,
                job_state(),
                state.started.elapsed(),
                &state.metrics.snapshot(),
                state.stats.last().as_ref(),
                state.stats.completed_count(),
                state.stats.aborted_count(),
            ),
        },
        _ => Answer {
            status: 404,
            content_type: "text/plain; charset=utf-8",
            body: format!(
                "no such page: {path} (try /, /api/job, /api/metrics, /api/checkpoints, /metrics)\n"
            ),
        },
    }
}
