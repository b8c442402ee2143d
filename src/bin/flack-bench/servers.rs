//! The servers under test, each in its own process so its CPU and memory can be measured:
//! Flack (the `flack` binary next to this one, storing in SQLite, or in PostgreSQL when
//! `FLACK_BENCH_POSTGRES` says where: see [`postgres_server`]) and the bare broadcast
//! ceiling (this binary's `ceiling` command). A Flack can also be started as one instance of a
//! cluster ([`Storage::Cluster`]), logging to a file the run reads back.

use crate::procstat;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which server a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Flack itself.
    Flack,
    /// The bare broadcast server.
    Ceiling,
}

/// How a Flack server is configured for a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limits {
    /// Per-user and per-address limits lifted: the harness is one user posting for many.
    Lifted,
    /// Flack's defaults, as a fresh install runs (the abuse soak).
    Defaults,
}

/// Where a Flack server keeps its data.
#[derive(Clone, Debug)]
pub enum Storage {
    /// SQLite in the run's fresh folder.
    Sqlite,
    /// A fresh database of its own on this PostgreSQL server (`postgres://user@host:port`,
    /// no database), dropped with the server.
    Postgres(String),
    /// One instance of a cluster: the shared database (its whole URL), the shared Redis,
    /// the cluster's channel prefix, and what it logs (`RUST_LOG`). The database belongs to
    /// whoever made the cluster.
    Cluster {
        postgres_url: String,
        redis_url: String,
        prefix: String,
        log_filter: &'static str,
    },
}

/// A running server process; killed when dropped.
pub struct Server {
    pub kind: Kind,
    pub addr: SocketAddr,
    child: Child,
    data_dir: Option<PathBuf>,
    /// With the PostgreSQL store: the server's URL (no database) and the run's database,
    /// dropped when the server is.
    database: Option<(String, String)>,
    /// Cluster instances: the file their log goes to (inside `data_dir`).
    log: Option<PathBuf>,
}

/// Where Flack keeps its data in a run: SQLite in a fresh folder, unless
/// `FLACK_BENCH_POSTGRES` names a PostgreSQL server (`postgres://user@host:port`, no
/// database), in which case each server gets a fresh database there (the store creates it).
pub fn postgres_server() -> Option<String> {
    std::env::var("FLACK_BENCH_POSTGRES")
        .ok()
        .map(|url| url.trim_end_matches('/').to_owned())
        .filter(|url| !url.is_empty())
}

/// Drops a run's database, on a thread of its own (this may run inside the harness's
/// runtime, which must not be blocked on).
pub fn drop_database(server: &str, name: &str) {
    let url = format!("{server}/postgres");
    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    let dropped = std::thread::spawn(move || -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            client.batch_execute(&sql).await.map_err(|e| e.to_string())
        })
    })
    .join();
    if !matches!(dropped, Ok(Ok(()))) {
        eprintln!("  could not drop the benchmark database {name}: {dropped:?}");
    }
}

fn free_addr() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

fn sibling(name: &str) -> PathBuf {
    let me = std::env::current_exe().unwrap_or_default();
    me.with_file_name(name)
}

impl Server {
    /// Starts a server of `kind` on a free loopback port, limits lifted, and waits until it
    /// accepts.
    pub async fn start(kind: Kind) -> Result<Server, String> {
        Server::start_with(kind, Limits::Lifted).await
    }

    /// Starts a server of `kind` with `limits` (Flack only; the ceiling has none) on a free
    /// loopback port and waits until it accepts.
    pub async fn start_with(kind: Kind, limits: Limits) -> Result<Server, String> {
        let storage = match postgres_server() {
            Some(server) => Storage::Postgres(server),
            None => Storage::Sqlite,
        };
        Server::launch(kind, limits, storage).await
    }

    /// Starts a Flack storing in `storage`, limits lifted, on a free loopback port and waits
    /// until it accepts.
    pub async fn start_flack(storage: Storage) -> Result<Server, String> {
        Server::launch(Kind::Flack, Limits::Lifted, storage).await
    }

    async fn launch(kind: Kind, limits: Limits, storage: Storage) -> Result<Server, String> {
        let addr = free_addr().map_err(|e| e.to_string())?;
        let mut database = None;
        let mut log = None;
        let mut log_filter = "warn";
        let (mut command, data_dir) = match kind {
            Kind::Flack => {
                let data = std::env::temp_dir().join(format!(
                    "flack-bench-{}-{}",
                    std::process::id(),
                    addr.port()
                ));
                let _ = std::fs::remove_dir_all(&data);
                let bin = std::env::var_os("FLACK_BIN")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| sibling("flack"));
                let mut command = Command::new(bin);
                command
                    .args(["--server-addr", &addr.to_string()])
                    .args(["--data-dir", &data.to_string_lossy()]);
                match storage {
                    Storage::Postgres(server) => {
                        let name = format!("flack_bench_{}_{}", std::process::id(), addr.port());
                        command
                            .args(["--data-store", "postgres"])
                            .args(["--data-postgres-url", &format!("{server}/{name}")]);
                        database = Some((server, name));
                    }
                    Storage::Sqlite => {
                        command.args(["--data-store", "sqlite"]);
                    }
                    Storage::Cluster {
                        postgres_url,
                        redis_url,
                        prefix,
                        log_filter: filter,
                    } => {
                        log_filter = filter;
                        command
                            .env("FLACK_DATA_STORE", "postgres")
                            .env("FLACK_DATA_POSTGRES_URL", postgres_url)
                            .env("FLACK_CLUSTER_REDIS_URL", redis_url)
                            .env("FLACK_CLUSTER_PREFIX", prefix);
                        std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
                        log = Some(data.join("log"));
                    }
                }
                if limits == Limits::Lifted {
                    // The harness is one user posting for many: lift per-user and
                    // per-address limits, which protect against abuse, not load.
                    command
                        .args(["--limits-messages-per-second", "100000000"])
                        .args(["--limits-message-burst", "100000000"])
                        .args(["--limits-connections-per-ip", "1000000"])
                        .args(["--limits-max-connections-per-ip", "1000000"])
                        .args(["--limits-max-connections", "1000000"])
                        .args(["--limits-channels-per-minute", "1000"])
                        .args(["--limits-registrations-per-hour", "1000000"])
                        .args(["--limits-pages-per-minute", "1000000"])
                        // Pings still go out; a busy harness must not be mistaken for dead.
                        .args(["--limits-dead-after-secs", "600"]);
                }
                (command, Some(data))
            }
            Kind::Ceiling => {
                let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
                command.args(["ceiling", "--addr", &addr.to_string()]);
                (command, None)
            }
        };
        // Flack logs to its standard output.
        let (stdout, stderr) = match &log {
            Some(path) => {
                let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
                let copy = file.try_clone().map_err(|e| e.to_string())?;
                (Stdio::from(copy), Stdio::from(file))
            }
            None => (Stdio::null(), Stdio::inherit()),
        };
        let child = command
            .env("RUST_LOG", log_filter)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start the {kind:?} server: {e}"))?;
        let server = Server {
            kind,
            addr,
            child,
            data_dir,
            database,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if Instant::now() > deadline {
                return Err(format!("the {kind:?} server did not start"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server.settle(deadline).await;
        Ok(server)
    }

    /// Waits until the server stops using CPU after its start (Flack compresses its built
    /// assets then), so that start-up work is not counted in the first measurement.
    async fn settle(&self, deadline: Instant) {
        let mut before = self.sample().cpu_secs;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = self.sample().cpu_secs;
            if now == before {
                return;
            }
            before = now;
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The name of the database this server made for itself (PostgreSQL store), if any.
    pub fn database(&self) -> Option<String> {
        self.database.as_ref().map(|(_, name)| name.clone())
    }

    /// CPU time so far of the SQLite store's threads (its writer and checkpoints), in
    /// seconds; 0 for a server without them.
    pub fn store_cpu_secs(&self) -> f64 {
        procstat::threads_cpu_secs(self.child.id(), flack::chat::sqlite::THREAD_NAME_PREFIX)
    }

    /// The server's CPU time and memory now.
    pub fn sample(&self) -> procstat::Sample {
        procstat::sample(self.child.id()).unwrap_or_default()
    }

    /// Kills the process at once (SIGKILL, as a crash would), keeping its folder and log.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last `count` lines a cluster instance logged, and whether it still runs (for a
    /// failed measurement's report).
    pub fn log_tail(&mut self, count: usize) -> Vec<String> {
        let running = matches!(self.child.try_wait(), Ok(None));
        let mut lines = vec![format!(
            "(the process is {})",
            if running { "running" } else { "gone" }
        )];
        let Some(path) = &self.log else {
            return lines;
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        lines.extend(
            all[all.len().saturating_sub(count)..]
                .iter()
                .map(|l| without_colours(l)),
        );
        lines
    }

    /// Every line a cluster instance logged so far, without colour codes (nothing for the
    /// others).
    pub fn log_lines(&self) -> Vec<String> {
        let Some(path) = &self.log else {
            return Vec::new();
        };
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(without_colours)
            .collect()
    }

    /// The warnings and errors a cluster instance logged so far (nothing for the others,
    /// whose log goes to the harness's own stderr).
    pub fn logged_problems(&self) -> Vec<String> {
        self.log_lines()
            .into_iter()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect()
    }
}

/// A log line without its terminal colour codes (`ESC [ ... m`).
fn without_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_code = false;
    for c in line.chars() {
        match (in_code, c) {
            (false, '\u{1b}') => in_code = true,
            (false, c) => out.push(c),
            (true, 'm') => in_code = false,
            (true, _) => {}
        }
    }
    out
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some((server, name)) = &self.database {
            drop_database(server, name);
        }
    }
}
