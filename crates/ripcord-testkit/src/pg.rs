//! The throwaway PostgreSQL server (modelled on eugene's `tempserver`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

const DIR_PREFIX: &str = "ripcord-testpg-";
const INSTALL_HINT: &str = "ripcord's tests need the PostgreSQL server binaries (initdb, pg_ctl, postgres). \
Install them, e.g. `apt-get install postgresql` (Debian/Ubuntu) or `brew install postgresql@15` (macOS), \
or put their directory on PATH.";

/// A running server owned by this test process.
pub struct PgServer {
    port: u16,
    next_db: AtomicUsize,
    ca_cert: PathBuf,
}

/// A fresh database on the test server.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    /// Its name.
    pub name: String,
    /// `postgres://postgres@127.0.0.1:PORT/NAME`.
    pub url: String,
}

impl TestDatabase {
    /// A new connection to this database.
    pub fn connect(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to test database {}: {e}", self.name))
    }
}

/// The server of this test process, started on first use.
///
/// Panics with installation instructions when no PostgreSQL binaries are found: a
/// missing server is a failure, never a skipped test.
pub fn pg() -> &'static PgServer {
    static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();
    match SERVER.get_or_init(PgServer::start) {
        Ok(server) => server,
        Err(message) => panic!("{message}"),
    }
}

/// A server with `wal_level = logical`, for capture in logical mode (its own data
/// directory and port; started on first use).
pub fn pg_logical() -> &'static PgServer {
    static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();
    match SERVER
        .get_or_init(|| PgServer::start_with("-c wal_level=logical -c max_replication_slots=200"))
    {
        Ok(server) => server,
        Err(message) => panic!("{message}"),
    }
}

/// Four more servers, each with its own data directory and port and
/// `max_prepared_transactions` set: the fleet of rollout tests (started on first use,
/// in parallel, stopped with the test process).
pub fn pg_fleet() -> &'static [PgServer] {
    static FLEET: OnceLock<Result<Vec<PgServer>, String>> = OnceLock::new();
    let started = FLEET.get_or_init(|| {
        let handles: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| PgServer::start_with("")))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a fleet server panicked while starting".into()))
            })
            .collect()
    });
    match started {
        Ok(servers) => servers,
        Err(message) => panic!("{message}"),
    }
}

/// A server with `max_prepared_transactions = 0`, which cannot take part in two-phase
/// commit (started on first use).
pub fn pg_without_prepared_transactions() -> &'static PgServer {
    static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();
    match SERVER.get_or_init(|| PgServer::start_with("-c max_prepared_transactions=0")) {
        Ok(server) => server,
        Err(message) => panic!("{message}"),
    }
}

impl PgServer {
    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// A connection to the `postgres` maintenance database.
    pub fn admin(&self) -> postgres::Client {
        postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to the test server: {e}"))
    }

    /// The self-signed certificate the server presents for TLS (CN and SAN `127.0.0.1`,
    /// `localhost`), to use as `sslrootcert`.
    pub fn ca_cert(&self) -> &Path {
        &self.ca_cert
    }

    /// Create a fresh, empty database for one test.
    pub fn create_database(&self) -> TestDatabase {
        let n = self.next_db.fetch_add(1, Ordering::SeqCst);
        let name = format!("t{}_{n}", std::process::id());
        self.admin()
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        TestDatabase {
            url: self.url(&name),
            name,
        }
    }

    fn start() -> Result<PgServer, String> {
        PgServer::start_with("")
    }

    /// Start a server with `extra` options appended to the usual ones (a later `-c`
    /// wins).
    fn start_with(extra: &str) -> Result<PgServer, String> {
        let bin = find_bindir().ok_or_else(|| INSTALL_HINT.to_string())?;
        let runner = Runner::detect()?;
        remove_stale_servers(&bin, &runner);

        let dir =
            std::env::temp_dir().join(format!("{DIR_PREFIX}{}-{}", std::process::id(), nanos()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        runner.give(&dir)?;
        let data = dir.join("data");
        runner.run(
            &dir,
            Command::new(bin.join("initdb"))
                .args(["-D"])
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-N",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ]),
            "initdb",
        )?;

        let ca_cert = write_certificate(&dir, &runner)?;
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_prepared_transactions=20 \
                 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
                 -c ssl=on -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key {extra}",
                dir.display(),
                dir = dir.display()
            );
            let started = runner.run(
                &dir,
                Command::new(bin.join("pg_ctl"))
                    .arg("-D")
                    .arg(&data)
                    .arg("-l")
                    .arg(dir.join("log"))
                    .args(["-w", "-t", "60", "-o", &options, "start"]),
                "pg_ctl start",
            );
            match started {
                Ok(()) => {
                    spawn_watchdog(&bin, &runner, &dir)?;
                    return Ok(PgServer {
                        port,
                        next_db: AtomicUsize::new(0),
                        ca_cert,
                    });
                }
                Err(e) => {
                    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
                    last_error = format!("{e}\n{log}");
                }
            }
        }
        Err(format!(
            "the test PostgreSQL server did not start: {last_error}"
        ))
    }
}

/// A self-signed server certificate, so tests can exercise TLS (the server also accepts
/// plain connections). Returns the certificate's path.
fn write_certificate(dir: &Path, runner: &Runner) -> Result<PathBuf, String> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .map_err(|e| format!("cannot make a test certificate: {e}"))?;
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    std::fs::write(&cert, certified.cert.pem())
        .map_err(|e| format!("cannot write {}: {e}", cert.display()))?;
    std::fs::write(&key, certified.key_pair.serialize_pem())
        .map_err(|e| format!("cannot write {}: {e}", key.display()))?;
    // PostgreSQL refuses a key readable by others.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod {}: {e}", key.display()))?;
    runner.give(&cert)?;
    runner.give(&key)?;
    Ok(cert)
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// The directory of the PostgreSQL binaries the test server runs from (`psql` is
/// there too), for tests that drive other tools needing a client on PATH.
pub fn pg_bindir() -> Option<PathBuf> {
    find_bindir()
}

/// `pg_config --bindir`, then `/usr/lib/postgresql/*/bin` (newest), then PATH.
fn find_bindir() -> Option<PathBuf> {
    let has_initdb = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_initdb(&dir) {
            return Some(dir);
        }
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                Some((version, e.path().join("bin")))
            })
            .filter(|(_, bin)| has_initdb(bin))
            .collect();
        versions.sort();
        if let Some((_, bin)) = versions.pop() {
            return Some(bin);
        }
    }
    std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).find(|dir| has_initdb(dir)))
}

/// Runs the server's commands, as an unprivileged user when we are root.
struct Runner {
    /// `Some((user, uid, gid))` when running as root.
    as_user: Option<(String, u32, u32)>,
}

impl Runner {
    fn detect() -> Result<Runner, String> {
        let uid = command_output(Command::new("id").arg("-u")).unwrap_or_default();
        if uid.trim() != "0" {
            return Ok(Runner { as_user: None });
        }
        for user in ["postgres", "nobody"] {
            let uid = command_output(Command::new("id").args(["-u", user]));
            let gid = command_output(Command::new("id").args(["-g", user]));
            if let (Some(uid), Some(gid)) = (uid, gid)
                && let (Ok(uid), Ok(gid)) = (uid.trim().parse(), gid.trim().parse())
            {
                return Ok(Runner {
                    as_user: Some((user.to_string(), uid, gid)),
                });
            }
        }
        Err("running as root, and neither a `postgres` nor a `nobody` user exists to run PostgreSQL as \
             (initdb refuses root): create one, e.g. `useradd --system postgres`"
            .into())
    }

    fn give(&self, dir: &Path) -> Result<(), String> {
        if let Some((user, uid, gid)) = &self.as_user {
            std::os::unix::fs::chown(dir, Some(*uid), Some(*gid))
                .map_err(|e| format!("cannot hand {} to {user}: {e}", dir.display()))?;
        }
        Ok(())
    }

    fn wrap(&self, command: &Command) -> Command {
        match &self.as_user {
            None => {
                let mut c = Command::new(command.get_program());
                c.args(command.get_args());
                c
            }
            Some((user, _, _)) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"])
                    .arg(command.get_program())
                    .args(command.get_args());
                c
            }
        }
    }

    fn run(&self, cwd: &Path, command: &mut Command, what: &str) -> Result<(), String> {
        let out = self
            .wrap(command)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {what}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{what} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn shell_prefix(&self) -> String {
        match &self.as_user {
            None => String::new(),
            Some((user, _, _)) => format!("runuser -u {user} -- "),
        }
    }
}

fn command_output(command: &mut Command) -> Option<String> {
    let out = command.stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

/// A detached shell that waits for this process to end, then stops the server and
/// removes its directory, whether the tests finished, panicked or were killed.
fn spawn_watchdog(bin: &Path, runner: &Runner, dir: &Path) -> Result<(), String> {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
         cd /; {prefix}'{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        prefix = runner.shell_prefix(),
        pg_ctl = bin.join("pg_ctl").display(),
        data = dir.join("data").display(),
        dir = dir.display(),
    );
    let mut command = if Path::new("/usr/bin/setsid").exists() || Path::new("/bin/setsid").exists()
    {
        let mut c = Command::new("setsid");
        c.args(["sh", "-c", &script]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", &script]);
        c
    };
    command
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(|_| ())
        .map_err(|e| format!("cannot start the server's watchdog: {e}"))
}

/// Stop and remove servers whose test process no longer runs (a killed earlier run).
fn remove_stale_servers(bin: &Path, runner: &Runner) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(DIR_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = entry.path();
        let _ = runner.run(
            Path::new("/"),
            Command::new(bin.join("pg_ctl"))
                .arg("-D")
                .arg(dir.join("data"))
                .args(["-m", "immediate", "stop"]),
            "pg_ctl stop",
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_test_gets_its_own_working_database() {
        let a = pg().create_database();
        let b = pg().create_database();
        assert_ne!(a.name, b.name);
        let mut client = a.connect();
        client
            .batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
            .unwrap();
        let n: i64 = client
            .query_one("SELECT count(*) FROM t", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 1);
        let exists: bool = b
            .connect()
            .query_one("SELECT to_regclass('t') IS NOT NULL", &[])
            .unwrap()
            .get(0);
        assert!(!exists, "databases must not share tables");
    }

    #[test]
    fn the_server_speaks_tls_with_its_certificate() {
        let cert = std::fs::read_to_string(pg().ca_cert()).unwrap();
        assert!(cert.contains("BEGIN CERTIFICATE"));
        let value: String = pg().admin().query_one("SHOW ssl", &[]).unwrap().get(0);
        assert_eq!(value, "on");
    }

    #[test]
    fn the_server_allows_prepared_transactions() {
        let value: String = pg()
            .admin()
            .query_one("SHOW max_prepared_transactions", &[])
            .unwrap()
            .get(0);
        assert!(value.parse::<u32>().unwrap() > 0);
    }
}
