//! The servers under test, each in its own process so its CPU and memory can be measured:
//! Flack (the `flack` binary next to this one, with SQLite storage on) and the bare
//! broadcast ceiling (this binary's `ceiling` command).

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

/// A running server process; killed when dropped.
pub struct Server {
    pub kind: Kind,
    pub addr: SocketAddr,
    child: Child,
    data_dir: Option<PathBuf>,
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
        let addr = free_addr().map_err(|e| e.to_string())?;
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
                    .args(["--data-dir", &data.to_string_lossy()])
                    .args(["--data-store", "sqlite"]);
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
        let child = command
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the {kind:?} server: {e}"))?;
        let server = Server {
            kind,
            addr,
            child,
            data_dir,
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

    /// The server's CPU time and memory now.
    pub fn sample(&self) -> procstat::Sample {
        procstat::sample(self.child.id()).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
