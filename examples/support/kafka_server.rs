#![allow(dead_code)] // Shared by the examples and the Kafka tests.
#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! A private Apache Kafka broker for tests and examples: one KRaft process that is broker and
//! controller at once, listening on free ports of 127.0.0.1, with its data directory in a
//! temporary directory, so that it shares nothing with another test's broker.
//!
//! The broker is Apache Kafka itself (`kafka_2.13`, the jars that `scripts/kafka.sh install`
//! fetches with Maven; fetched here too when missing), run as
//! `java -cp 'JARS/*' kafka.Kafka server.properties` after `kafka.tools.StorageTool format`.
//! Its settings let a single broker run transactions (replication factor 1 for the internal
//! topics) and refuse to create topics on first use, so that a misspelt topic is an error.
//!
//! The broker's output comes through a pipe: a thread copies it into the broker log and tells
//! [`KafkaServer::start`] when the broker's start line passes (or the broker exits), so that
//! starting waits on that event, not on a poll of the log.
//!
//! Java runs under a small shell wrapper that holds the read end of a pipe from this process:
//! when this process exits, however it exits (also a panic in a test, or a `static` broker that
//! is never dropped), the pipe closes and the wrapper kills the broker and removes its
//! directory. [`KafkaServer::kill`] and [`KafkaServer::start_again`] crash and restart it on
//! the same data directory and ports.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// The Kafka version `scripts/kafka.sh` fetches (keep in step with it and its pom).
pub const KAFKA_VERSION: &str = "4.1.1";

/// How long a broker may take to start before [`KafkaServer::start`] gives up.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// What the broker logs once it serves clients.
const STARTED_LINE: &str = "Kafka Server started";

/// How many lines of the broker log an error quotes.
const LOG_TAIL_LINES: usize = 40;

/// A KRaft cluster id (16 bytes, base64url): each broker has its own data directory, so one
/// fixed id is enough.
const CLUSTER_ID: &str = "MkU3OEVBNTcwNTJENDM2Qk";

/// Runs the broker with its output on the wrapper's stdout, and kills it once the wrapper's
/// stdin closes; then removes the broker's directory unless the line `keep` came first (a
/// crash that [`KafkaServer::start_again`] follows). The wrapper lets go of its stdout at once,
/// so that the pipe ends exactly when the broker does.
const WRAPPER: &str = r#"
java "$@" </dev/null 2>&1 &
pid=$!
exec >/dev/null
read -r command || command=
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
if [ "$command" != keep ]; then rm -rf "$SNAPFLOW_KAFKA_DIR"; fi
"#;

/// A running (or stopped) private Kafka broker.
pub struct KafkaServer {
    jars: PathBuf,
    dir: PathBuf,
    port: u16,
    running: Option<Running>,
}

/// The wrapper process of a started broker.
struct Running {
    wrapper: Child,
    /// Closing it makes the wrapper kill the broker.
    stdin: ChildStdin,
}

impl KafkaServer {
    /// Formats a fresh data directory and starts a broker on free ports of 127.0.0.1; returns
    /// once it serves clients.
    ///
    /// # Errors
    ///
    /// When the jars are missing and `scripts/kafka.sh install` cannot fetch them, or when the
    /// broker does not start; the error quotes the tail of its log.
    pub fn start() -> Result<KafkaServer> {
        let jars = jars_dir()?;
        let dir = std::env::temp_dir().join(format!(
            "snapflow-kafka-{}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let (port, controller_port) = free_ports()?;
        let properties = server_properties(&dir, port, controller_port);
        std::fs::write(dir.join("server.properties"), properties)
            .with_context(|| format!("writing {}/server.properties", dir.display()))?;
        let mut server = KafkaServer {
            jars,
            dir,
            port,
            running: None,
        };
        server.format()?;
        server.start_again()?;
        Ok(server)
    }

    /// `127.0.0.1:PORT`, the bootstrap servers for a client.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// Kills the broker at once (SIGKILL, as in a crash) and waits until it has exited.
    /// Clients fail until [`start_again`](Self::start_again).
    ///
    /// # Errors
    ///
    /// When the broker is not running.
    pub fn kill(&mut self) -> Result<()> {
        let Some(running) = self.running.take() else {
            bail!("the Kafka broker on port {} is not running", self.port);
        };
        let Running {
            mut wrapper,
            mut stdin,
            ..
        } = running;
        // Keep the directory: the broker starts again on it.
        stdin
            .write_all(b"keep\n")
            .context("telling the Kafka broker's wrapper to keep its directory")?;
        drop(stdin);
        wrapper
            .wait()
            .context("waiting for the Kafka broker to exit")?;
        Ok(())
    }

    /// Starts the stopped broker again on the same data directory and ports, and returns once
    /// it serves clients.
    ///
    /// # Errors
    ///
    /// When the broker is running already or does not start; the error quotes its log.
    pub fn start_again(&mut self) -> Result<()> {
        if self.running.is_some() {
            bail!("the Kafka broker on port {} is running already", self.port);
        }
        let mut wrapper = Command::new("sh")
            .arg("-c")
            .arg(WRAPPER)
            .arg("kafka-broker")
            .args(["-Xms128m", "-Xmx768m", "-XX:+UseSerialGC", "-cp"])
            .arg(self.jars.join("*"))
            .arg("kafka.Kafka")
            .arg(self.dir.join("server.properties"))
            .env("SNAPFLOW_KAFKA_DIR", &self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting `sh` to run the Kafka broker")?;
        let stdin = wrapper.stdin.take().expect("stdin is piped");
        let output = wrapper.stdout.take().expect("stdout is piped");
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .with_context(|| format!("opening {}", self.log_path().display()))?;
        let started = follow_output(output, log);
        self.running = Some(Running { wrapper, stdin });
        match started.recv_timeout(START_TIMEOUT) {
            Ok(()) => Ok(()),
            Err(RecvTimeoutError::Disconnected) => bail!(
                "the Kafka broker exited while starting; its log ends:\n{}",
                self.log_tail()
            ),
            Err(RecvTimeoutError::Timeout) => bail!(
                "the Kafka broker did not start within {START_TIMEOUT:?}; its log ends:\n{}",
                self.log_tail()
            ),
        }
    }

    /// `kafka.tools.StorageTool format` on the data directory.
    fn format(&self) -> Result<()> {
        let output = Command::new("java")
            .args(["-Xmx256m", "-cp"])
            .arg(self.jars.join("*"))
            .args(["kafka.tools.StorageTool", "format", "-t", CLUSTER_ID, "-c"])
            .arg(self.dir.join("server.properties"))
            .stdin(Stdio::null())
            .output()
            .context("running `java` (Java 17 or newer is needed for the Kafka broker)")?;
        if !output.status.success() {
            bail!(
                "formatting the Kafka data directory failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// The last lines of the broker log, or a note saying why there are none.
    pub fn log_tail(&self) -> String {
        match std::fs::read_to_string(self.log_path()) {
            Ok(log) => {
                let lines: Vec<&str> = log.lines().collect();
                lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
            }
            Err(e) => format!("(no log at {}: {e})", self.log_path().display()),
        }
    }
}

impl Drop for KafkaServer {
    /// Kills the broker and removes its directory; runs during a panic's unwinding too.
    fn drop(&mut self) {
        if let Some(Running {
            mut wrapper, stdin, ..
        }) = self.running.take()
        {
            drop(stdin);
            let _ = wrapper.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The broker's settings: one KRaft node, transactions with replication factor 1, no topic
/// created on first use.
fn server_properties(dir: &Path, port: u16, controller_port: u16) -> String {
    format!(
        "process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
",
        data = dir.join("data").display()
    )
}

/// `$SNAPFLOW_KAFKA_HOME/jars` (by default `~/.cache/snapflow/kafka-VERSION/jars`), fetched
/// with `scripts/kafka.sh install` when it is not complete.
fn jars_dir() -> Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh");
    let home = match std::env::var_os("SNAPFLOW_KAFKA_HOME") {
        Some(home) => PathBuf::from(home),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".cache/snapflow")
            .join(format!("kafka-{KAFKA_VERSION}")),
    };
    if !home.join("complete").is_file() {
        eprintln!(
            "kafka_server: no Kafka jars in {}; running {} install",
            home.display(),
            script.display()
        );
        let status = Command::new("bash")
            .arg(&script)
            .arg("install")
            .stdin(Stdio::null())
            .status()
            .with_context(|| format!("running bash {} install", script.display()))?;
        if !status.success() || !home.join("complete").is_file() {
            bail!(
                "no Kafka jars in {} and `bash {} install` did not fetch them ({status})",
                home.display(),
                script.display()
            );
        }
    }
    Ok(home.join("jars"))
}

/// Two different ports on 127.0.0.1 that were free a moment ago (the OS's picks for port 0,
/// both bound at once so that the OS cannot hand out the same one twice).
fn free_ports() -> Result<(u16, u16)> {
    let first = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    let second = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok((first.local_addr()?.port(), second.local_addr()?.port()))
}

/// Copies the broker's output into `log` on a thread of its own, line by line, until the
/// broker exits (the pipe ends). The receiver gets one message when the start line passes;
/// it is disconnected without one when the broker exits before that.
fn follow_output(output: ChildStdout, mut log: File) -> Receiver<()> {
    let (started, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut started = Some(started);
        let mut reader = BufReader::new(output);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            // The log is for people reading it after a failed test: a failed write loses a
            // line of it, nothing else.
            let _ = log.write_all(&line);
            if started.is_some() && String::from_utf8_lossy(&line).contains(STARTED_LINE) {
                if let Some(started) = started.take() {
                    let _ = started.send(());
                }
            }
        }
    });
    receiver
}

/// A number that differs between calls in one process.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Appends `text` to the broker log (a marker for people reading it after a failed test).
pub fn note(server: &KafkaServer, text: &str) {
    if let Ok(mut log) = File::options().append(true).open(server.log_path()) {
        let _ = writeln!(log, "=== snapflow: {text}");
    }
}
