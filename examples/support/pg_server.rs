#![allow(dead_code)] // Shared by the examples and the PostgreSQL tests.
#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! A private PostgreSQL server for tests and examples: its own data directory in a temporary
//! directory, its own port on 127.0.0.1, its own Unix socket directory, so that it shares
//! nothing with a system cluster or with another test's server.
//!
//! The server binaries are Debian's (`/usr/lib/postgresql/<version>/bin`, the newest version
//! present); where there are none, `scripts/postgres.sh install` installs them (as root).
//! PostgreSQL refuses to run as root, so as root every server command runs as the `postgres`
//! OS user (`runuser`), which owns the temporary directory.
//!
//! Durability is kept real (`fsync = on`): a test may stop the server, or kill it with an
//! immediate shutdown (no checkpoint, recovery from the WAL at the next start), and start it
//! again on the same data directory and port. Dropping a [`PgServer`], also while a test
//! panics, stops it at once and removes its directory.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// The database that [`PgServer::start`] creates and [`PgServer::url`] names.
pub const DATABASE: &str = "snapflow";

/// The superuser that `initdb` creates (trust authentication: no password).
pub const SUPERUSER: &str = "postgres";

/// Where Debian installs the server binaries, one directory per major version.
const INSTALL_ROOT: &str = "/usr/lib/postgresql";

/// The OS user that runs the server when this process is root.
const OS_USER: &str = "postgres";

/// How long `pg_ctl` waits for the server to start or stop.
const PG_CTL_TIMEOUT: Duration = Duration::from_secs(60);

/// How many lines of the server log an error quotes.
const LOG_TAIL_LINES: usize = 40;

/// How many ports to try when another process takes the free port first.
const PORT_ATTEMPTS: usize = 3;

/// A PostgreSQL server of its own on 127.0.0.1, with a database [`DATABASE`]. Dropping it
/// stops the server (immediate shutdown) and removes its data directory.
pub struct PgServer {
    /// `/usr/lib/postgresql/<version>/bin`.
    bin: PathBuf,
    /// Runs the server commands as [`OS_USER`] (this process is root).
    as_os_user: bool,
    port: u16,
    /// Holds `data/` (the cluster), `server.log` and the Unix socket; removed on drop, after
    /// the server has stopped (fields drop after `Drop::drop`).
    dir: tempfile::TempDir,
}

impl PgServer {
    /// Creates a cluster in a fresh temporary directory (`initdb`), configures it to listen on
    /// 127.0.0.1 at a free port with `max_prepared_transactions = 64`, starts it and creates
    /// the database [`DATABASE`].
    ///
    /// # Errors
    ///
    /// When the binaries are missing and cannot be installed (not root, or `apt-get` fails),
    /// or when `initdb`, `pg_ctl start` or `createdb` fails; the error quotes the command's
    /// output and the tail of the server log.
    pub fn start() -> Result<PgServer> {
        let bin = bin_dir()?;
        let as_os_user = running_as_root()?;
        let dir = tempfile::Builder::new()
            .prefix("snapflow-pg-")
            .tempdir()
            .context("creating a temporary directory for a PostgreSQL server")?;
        if as_os_user {
            let status = Command::new("chown")
                .arg(format!("{OS_USER}:"))
                .arg(dir.path())
                .status()
                .context("running chown")?;
            if !status.success() {
                bail!(
                    "chown {OS_USER}: {} failed ({status}); does the OS user {OS_USER} exist?",
                    dir.path().display()
                );
            }
        }
        let mut server = PgServer {
            bin,
            as_os_user,
            port: 0,
            dir,
        };
        let data = server.data_dir();
        server.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                SUPERUSER.as_ref(),
                "--auth=trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
            ],
        )?;
        server.append_config(&format!(
            "\n# snapflow's private test server\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             max_prepared_transactions = 64\n\
             max_connections = 100\n\
             fsync = on\n\
             synchronous_commit = on\n\
             full_page_writes = on\n",
            quote_config(&server.dir.path().to_string_lossy())
        ))?;
        // A free port is free only until someone binds it: when another process takes it
        // between here and the server's bind, try another one.
        for attempt in 1..=PORT_ATTEMPTS {
            server.port = free_port()?;
            server.append_config(&format!("port = {}\n", server.port))?;
            match server.start_again() {
                Ok(()) => break,
                Err(e) if attempt < PORT_ATTEMPTS && server.log_tail().contains("in use") => {
                    eprintln!("pg_server: port {} was taken ({e:#}); another", server.port);
                }
                Err(e) => return Err(e),
            }
        }
        let port = server.port.to_string();
        server.run(
            "createdb",
            &[
                "-h".as_ref(),
                "127.0.0.1".as_ref(),
                "-p".as_ref(),
                port.as_ref(),
                "-U".as_ref(),
                SUPERUSER.as_ref(),
                DATABASE.as_ref(),
            ],
        )?;
        Ok(server)
    }

    /// `postgres://postgres@127.0.0.1:PORT/snapflow`, for `postgres::Client::connect`.
    pub fn url(&self) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// The TCP port on 127.0.0.1; the same for the server's whole life, across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's log file (what the postmaster writes to stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Whether a postmaster owns the data directory (its `postmaster.pid` exists).
    pub fn is_running(&self) -> bool {
        self.data_dir().join("postmaster.pid").exists()
    }

    /// Stops the server with a fast shutdown (connections are closed, open transactions roll
    /// back, prepared ones stay) and waits until it has exited. Connections fail until
    /// [`start_again`](Self::start_again).
    ///
    /// # Errors
    ///
    /// When `pg_ctl stop` fails, for instance because the server is not running.
    pub fn stop(&mut self) -> Result<()> {
        self.pg_ctl_stop("fast")
    }

    /// Stops the server with an immediate shutdown, as if it crashed: no shutdown checkpoint,
    /// the next start recovers from the WAL. Waits until it has exited.
    ///
    /// # Errors
    ///
    /// When `pg_ctl stop` fails, for instance because the server is not running.
    pub fn kill(&mut self) -> Result<()> {
        self.pg_ctl_stop("immediate")
    }

    /// Starts the stopped server again on the same data directory and port, and waits until
    /// it accepts connections (`pg_ctl -w`).
    ///
    /// # Errors
    ///
    /// When `pg_ctl start` fails (the server is running already, the port is taken, ...);
    /// the error quotes the server log.
    pub fn start_again(&mut self) -> Result<()> {
        let data = self.data_dir();
        let log = self.log_path();
        let timeout = PG_CTL_TIMEOUT.as_secs().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                timeout.as_ref(),
                "start".as_ref(),
            ],
        )
        .map(drop)
    }

    /// [`stop`](Self::stop) then [`start_again`](Self::start_again).
    ///
    /// # Errors
    ///
    /// As theirs.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.start_again()
    }

    /// The last lines of the server log, or a note saying why there are none.
    pub fn log_tail(&self) -> String {
        match std::fs::read_to_string(self.log_path()) {
            Ok(log) => {
                let lines: Vec<&str> = log.lines().collect();
                lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
            }
            Err(e) => format!("(no server log at {}: {e})", self.log_path().display()),
        }
    }

    fn pg_ctl_stop(&mut self, mode: &str) -> Result<()> {
        let data = self.data_dir();
        let timeout = PG_CTL_TIMEOUT.as_secs().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                mode.as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                timeout.as_ref(),
                "stop".as_ref(),
            ],
        )
        .map(drop)
    }

    /// Appends settings to `postgresql.conf` (a later line overrides an earlier one).
    fn append_config(&self, text: &str) -> Result<()> {
        let path = self.data_dir().join("postgresql.conf");
        OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .with_context(|| format!("appending to {}", path.display()))
    }

    /// Runs `program` from the server's `bin` directory (as [`OS_USER`] when root) in the
    /// server's directory, and returns its stdout; a failure quotes its output and the log.
    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<String> {
        let path = self.bin.join(program);
        let mut command = if self.as_os_user {
            let mut c = Command::new("runuser");
            c.args(["-u", OS_USER, "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        command
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        let shown = format!(
            "{} {}",
            path.display(),
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let output = command
            .output()
            .with_context(|| format!("running {shown}"))?;
        if !output.status.success() {
            bail!(
                "{shown} failed ({})\n--- its output:\n{}{}\n--- server log {}:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                self.log_path().display(),
                self.log_tail()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Last resort when `pg_ctl stop` fails in `drop`: SIGKILL the postmaster named in
    /// `postmaster.pid` (its backends exit when they notice it is gone).
    fn kill_postmaster(&self) {
        let pid_file = self.data_dir().join("postmaster.pid");
        let Ok(text) = std::fs::read_to_string(&pid_file) else {
            return;
        };
        if let Some(pid) = text.lines().next().filter(|p| p.parse::<u32>().is_ok()) {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
}

impl Drop for PgServer {
    /// Stops the server at once (immediate shutdown) if it is running; the temporary
    /// directory is removed afterwards. Runs during a panic's unwinding too.
    fn drop(&mut self) {
        if self.is_running() {
            if let Err(e) = self.kill() {
                eprintln!(
                    "pg_server: stopping the server on port {}: {e:#}",
                    self.port
                );
                self.kill_postmaster();
            }
        }
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` that holds a `postgres` binary; installs
/// the binaries with `scripts/postgres.sh install` when there is none.
fn bin_dir() -> Result<PathBuf> {
    if let Some(bin) = newest_bin_dir() {
        return Ok(bin);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres.sh");
    eprintln!(
        "pg_server: no PostgreSQL server under {INSTALL_ROOT}; running {} install",
        script.display()
    );
    let status = Command::new("bash")
        .arg(&script)
        .arg("install")
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("running bash {} install", script.display()))?;
    match newest_bin_dir() {
        Some(bin) => Ok(bin),
        None => bail!(
            "no PostgreSQL server binaries under {INSTALL_ROOT}/*/bin and `bash {} install` \
             did not install them ({status}); install Debian's `postgresql` package as root",
            script.display()
        ),
    }
}

fn newest_bin_dir() -> Option<PathBuf> {
    std::fs::read_dir(INSTALL_ROOT)
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin)
}

/// Whether this process runs as root: `/proc/self` belongs to the process's effective user.
fn running_as_root() -> Result<bool> {
    let meta = std::fs::metadata("/proc/self").context("reading /proc/self (Linux only)")?;
    Ok(meta.uid() == 0)
}

/// A port on 127.0.0.1 that was free a moment ago (the OS's pick for port 0).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// `text` inside a single-quoted `postgresql.conf` value.
fn quote_config(text: &str) -> String {
    text.replace('\'', "''")
}
