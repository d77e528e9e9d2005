//! Throw-away PostgreSQL and Redis servers on free loopback ports, one per test that
//! needs them, stopped (and their files removed) when dropped: real servers, never
//! mocks. `scripts/test.sh` installs them and says where they are
//! (`GENESYS_TEST_PG_BIN`, `GENESYS_TEST_REDIS_SERVER`); a test can also stop and start
//! one to play an outage.
//!
//! PostgreSQL refuses to run as root: as root, the cluster is made and run by the
//! `postgres` system user, in a directory that user owns.

use super::harness::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `program`, to be run as `postgres` when this process is root.
fn pg_command(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Runs `program args` (see [`pg_command`]); panics with its output when it fails.
fn run_pg(program: &Path, args: &[&str]) {
    let out = pg_command(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A PostgreSQL cluster of its own: user `archiver`, trust authentication on loopback.
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    /// `postgres://archiver@127.0.0.1:PORT/postgres`
    pub url: String,
}

impl Postgres {
    pub fn start(tag: &str) -> Self {
        let bin = PathBuf::from(std::env::var("GENESYS_TEST_PG_BIN").unwrap_or_else(|_| {
            panic!("GENESYS_TEST_PG_BIN is not set: run `bash scripts/test.sh`, which finds or installs PostgreSQL")
        }));
        let dir = std::env::temp_dir().join(format!("ga-pg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            let chown = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(chown.success(), "chown {}", dir.display());
        }
        let data = dir.join("data");
        run_pg(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "archiver",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let port = free_port();
        let pg = Self {
            port,
            url: format!("postgres://archiver@127.0.0.1:{port}/postgres"),
            bin,
            dir,
        };
        pg.resume();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Starts the server again (after [`Postgres::stop`]) and waits until it listens.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        run_pg(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-o",
                &options,
                "-l",
                self.dir.join("log").to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        wait_for_port(self.port, "PostgreSQL");
    }

    /// Stops the server at once (connections cut, as in a crash of the database host).
    pub fn stop(&self) {
        run_pg(
            &self.bin.join("pg_ctl"),
            &["-D", self.data().to_str().unwrap(), "-m", "immediate", "-w", "stop"],
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = pg_command(&self.bin.join("pg_ctl"))
            .args(["-D", self.data().to_str().unwrap(), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis server of its own, nothing persisted.
pub struct Redis {
    program: String,
    child: Option<Child>,
    pub port: u16,
    /// `redis://127.0.0.1:PORT/`
    pub url: String,
}

impl Redis {
    pub fn start() -> Self {
        let program = std::env::var("GENESYS_TEST_REDIS_SERVER").unwrap_or_else(|_| {
            panic!("GENESYS_TEST_REDIS_SERVER is not set: run `bash scripts/test.sh`, which installs redis-server")
        });
        let port = free_port();
        let mut redis = Self {
            program,
            child: None,
            port,
            url: format!("redis://127.0.0.1:{port}/"),
        };
        redis.resume();
        redis
    }

    /// Starts the server again (after [`Redis::stop`]): empty, as a restarted cache is.
    pub fn resume(&mut self) {
        let child = Command::new(&self.program)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", self.program));
        self.child = Some(child);
        wait_for_port(self.port, "Redis");
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A throw-away server (or library) a test needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Server {
    Moto,
    Postgres,
    Redis,
    Faketime,
    /// The `prometheus` server, with `promtool` beside it (Debian's `prometheus`).
    Prometheus,
}

impl Server {
    /// The variable `scripts/test.sh` sets to where it found or installed it.
    fn variable(self) -> &'static str {
        match self {
            Server::Moto => "MOTO_SERVER",
            Server::Postgres => "GENESYS_TEST_PG_BIN",
            Server::Redis => "GENESYS_TEST_REDIS_SERVER",
            Server::Faketime => "GENESYS_TEST_FAKETIME_LIB",
            Server::Prometheus => "GENESYS_TEST_PROMETHEUS",
        }
    }

    fn found(self) -> bool {
        std::env::var_os(self.variable()).is_some_and(|path| std::path::Path::new(&path).exists())
    }
}

/// Whether a test needing `servers` must stop here: one of them is missing. A plain
/// `cargo test` then skips the test with one line saying how to run it; under
/// `scripts/test.sh` (`GENESYS_TEST_REQUIRE_SERVERS=1`, and so in CI) a missing server
/// fails the test instead: nothing there may skip.
pub fn missing(servers: &[Server]) -> bool {
    let absent: Vec<&str> = servers.iter().filter(|s| !s.found()).map(|s| s.variable()).collect();
    if absent.is_empty() {
        return false;
    }
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    if std::env::var_os("GENESYS_TEST_REQUIRE_SERVERS").is_some() {
        panic!(
            "{test}: {} not set or not found; scripts/test.sh provides them",
            absent.join(", ")
        );
    }
    // Straight to stderr: the test harness captures `eprintln!` of passing tests, and
    // this line is for the person who ran `cargo test`.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "skipped {test}: needs {} (run `bash scripts/test.sh`, which installs the test servers)",
        absent.join(", ")
    );
    true
}

/// A Prometheus server of its own on a free loopback port, scraping one target every
/// second and evaluating a rules file every second; its data removed when dropped.
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Prometheus {
    /// The `prometheus` binary `scripts/test.sh` found or installed.
    pub fn binary() -> PathBuf {
        PathBuf::from(std::env::var_os("GENESYS_TEST_PROMETHEUS").expect("GENESYS_TEST_PROMETHEUS"))
    }

    /// `promtool`, installed beside it by the same package.
    pub fn promtool() -> PathBuf {
        Self::binary().with_file_name("promtool")
    }

    /// Scrapes `target` (`HOST:PORT`) as job `job`, with `rules` loaded.
    pub fn start(job: &str, target: &str, rules: &Path) -> Self {
        let dir = std::env::temp_dir().join(format!("ga-prometheus-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {rules}\n\
                 scrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n",
                rules = rules.display()
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(Self::binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", Self::binary().display()));
        wait_for_port(port, "prometheus");
        Self {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
