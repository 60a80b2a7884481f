//! A throwaway PostgreSQL server: `initdb` into a fresh directory, `postgres` on a free port of
//! 127.0.0.1 with durability turned off, and a `connector` database. Dropping the value stops
//! the server (immediate shutdown) and removes the directory, also when a test panics.
//!
//! Std only: the benchmark includes this file by path.
//!
//! Each instance lives in `<temp dir>/connector-pg/<name>-<pid>-<n>/` (the cluster in `data/`,
//! the server's output in `postgres.log`, its Unix socket next to them). The temp dir rather
//! than `target/`: when running as root the server runs as the `postgres` user, which must be
//! able to reach the directory, and a Unix socket path is limited to about 100 bytes.
//! Directories left by processes that no longer exist are removed by the next start.
//!
//! A small `sh` watchdog per instance waits on a pipe from this process and shuts the server
//! down when the pipe closes, so a server does not outlive a process killed without unwinding.

#![allow(dead_code)]

use std::fs::{self, File};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub const NOT_INSTALLED: &str =
    "PostgreSQL is not installed: apt-get install postgresql (the .ci/run script does this)";
/// The database every instance creates; `url()` points at it.
pub const DATABASE: &str = "connector";
const SUPERUSER: &str = "postgres";
/// The system user the server runs as when this process runs as root.
const SYSTEM_USER: &str = "postgres";
/// The port of a distribution's own cluster; never handed out.
const DEFAULT_PORT: u16 = 5432;
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);
/// How many ports are tried when the chosen one turns out to be taken.
const PORT_ATTEMPTS: usize = 5;
const LOG_TAIL_LINES: usize = 40;

/// Ports handed out by this process, so that parallel starts never pick the same one.
static PORTS: Mutex<Vec<u16>> = Mutex::new(Vec::new());
static INSTANCES: AtomicUsize = AtomicUsize::new(0);

pub struct Postgres {
    tools: Tools,
    dir: PathBuf,
    port: u16,
    server: Option<Child>,
    watchdog: Option<Child>,
}

impl Postgres {
    /// Starts a fresh server and creates the `connector` database; `name` labels the directory.
    pub fn start(name: &str) -> Result<Postgres, String> {
        let tools = Tools::find()?;
        let base = std::env::temp_dir().join("connector-pg");
        fs::create_dir_all(&base).map_err(|e| format!("cannot create {}: {e}", base.display()))?;
        // Like /tmp: the `postgres` user must pass through, and other users may add their own.
        let _ = fs::set_permissions(&base, fs::Permissions::from_mode(0o1777));
        remove_stale(&base);

        let seq = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("{}-{}-{seq}", label(name), std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        // From here on, Drop cleans up whatever was created.
        let mut postgres = Postgres {
            tools,
            dir,
            port: 0,
            server: None,
            watchdog: None,
        };
        postgres.init()?;
        postgres.launch()?;
        postgres
            .run_psql("postgres", &format!("CREATE DATABASE {DATABASE}"))
            .map_err(|e| format!("cannot create database {DATABASE}: {e}"))?;
        Ok(postgres)
    }

    /// `postgres://postgres@127.0.0.1:<port>/connector`
    pub fn url(&self) -> String {
        self.url_of(DATABASE)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The instance's directory, removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Everything the server has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Creates another database on this server and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, String> {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(format!(
                "database name {name:?}: use 1 to 63 ASCII letters, digits or underscores"
            ));
        }
        self.run_psql("postgres", &format!("CREATE DATABASE \"{name}\""))
            .map_err(|e| format!("cannot create database {name}: {e}"))?;
        Ok(self.url_of(name))
    }

    /// Runs `sql` in the `connector` database with `psql -At` and returns what it printed,
    /// without the final newline: one line per row, columns separated by `|`. Several
    /// statements separated by `;` run as one transaction and only the last one's rows print.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        self.run_psql(DATABASE, sql)
    }

    fn url_of(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    fn init(&mut self) -> Result<(), String> {
        if self.tools.switch.is_some() {
            let output = Command::new("chown")
                .arg(format!("{SYSTEM_USER}:"))
                .arg(&self.dir)
                .output();
            check("chown", output)?;
        }
        let output = self
            .tools
            .command("initdb", &self.dir)
            .arg("-D")
            .arg(self.data())
            .args(["-A", "trust", "-U", SUPERUSER, "--no-sync", "-E", "UTF8"])
            .arg("--no-locale")
            .output();
        check("initdb", output)
    }

    /// Starts the server on a free port, trying another one when it turns out to be taken.
    fn launch(&mut self) -> Result<(), String> {
        for _ in 0..PORT_ATTEMPTS {
            self.port = free_port()?;
            let log = File::create(self.log_path())
                .map_err(|e| format!("cannot create {}: {e}", self.log_path().display()))?;
            let stdout = log
                .try_clone()
                .map_err(|e| format!("cannot duplicate the log file handle: {e}"))?;
            let server = self
                .tools
                .command("postgres", &self.dir)
                .arg("-D")
                .arg(self.data())
                .arg("-p")
                .arg(self.port.to_string())
                .args(["-c", "listen_addresses=127.0.0.1", "-k"])
                .arg(&self.dir)
                .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
                .args(["-c", "full_page_writes=off", "-c", "max_connections=200"])
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(log)
                .spawn()
                .map_err(|e| {
                    format!("cannot run {}: {e}", self.tools.path("postgres").display())
                })?;
            self.server = Some(server);
            match self.wait_ready()? {
                true => {
                    self.watchdog = self.spawn_watchdog();
                    return Ok(());
                }
                false => {
                    let log = self.log();
                    self.server = None;
                    let port_taken = ["could not bind", "Address already in use"]
                        .iter()
                        .any(|sign| log.contains(sign));
                    if !port_taken {
                        return Err(format!(
                            "PostgreSQL exited during startup; {}",
                            log_tail(&log)
                        ));
                    }
                }
            }
        }
        Err(format!(
            "PostgreSQL found its port taken {PORT_ATTEMPTS} times; {}",
            log_tail(&self.log())
        ))
    }

    /// `Ok(true)` once the server accepts connections, `Ok(false)` if it exited first.
    ///
    /// Readiness is read from our own `postmaster.pid` (its status line says `ready` once the
    /// server accepts connections, as `pg_ctl -w` checks), not probed on the port, where some
    /// other server could answer while ours is failing to bind.
    fn wait_ready(&mut self) -> Result<bool, String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let pid_file = self.data().join("postmaster.pid");
        loop {
            let server = self.server.as_mut().expect("server is running");
            if let Ok(Some(_)) = server.try_wait() {
                return Ok(false);
            }
            let status = fs::read_to_string(&pid_file).unwrap_or_default();
            let lines: Vec<&str> = status.lines().map(str::trim).collect();
            let port = self.port.to_string();
            if lines.get(3) == Some(&port.as_str()) && lines.get(7) == Some(&"ready") {
                // Still ours: it did not exit between the two reads.
                return Ok(matches!(server.try_wait(), Ok(None)));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "PostgreSQL did not accept connections on port {} within {} s; {}",
                    self.port,
                    READY_TIMEOUT.as_secs(),
                    log_tail(&self.log())
                ));
            }
            thread::sleep(POLL);
        }
    }

    /// A shell that shuts the server down once its stdin, a pipe from this process, closes.
    fn spawn_watchdog(&self) -> Option<Child> {
        let pid = self.postmaster_pid()?;
        Command::new("/bin/sh")
            .args(["-c", "read _line; kill -s QUIT \"$1\" 2>/dev/null", "sh"])
            .arg(pid.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
    }

    /// The server process: the first line of `postmaster.pid`, else the child's own id (the
    /// same process unless a user switch tool stays in between).
    fn postmaster_pid(&self) -> Option<u32> {
        self.pid_file_pid()
            .or_else(|| self.server.as_ref().map(Child::id))
    }

    fn pid_file_pid(&self) -> Option<u32> {
        let text = fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    fn run_psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let output = self
            .tools
            .command("psql", &self.dir)
            .args([
                "-X",
                "-A",
                "-t",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args(["-U", SUPERUSER, "-d", database, "-p"])
            .arg(self.port.to_string())
            .arg("-c")
            .arg(sql)
            .env("PGCONNECT_TIMEOUT", "10")
            .env("PGCLIENTENCODING", "UTF8")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.tools.path("psql").display()))?;
        if !output.status.success() {
            return Err(format!(
                "psql {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        if text.ends_with('\n') {
            text.pop();
        }
        Ok(text)
    }

    fn stop(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        if let Ok(Some(_)) = server.try_wait() {
            return;
        }
        let pid = self.pid_file_pid().unwrap_or(server.id());
        signal("QUIT", pid);
        if !wait_exit(&mut server, STOP_TIMEOUT) {
            signal("KILL", pid);
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The PostgreSQL binaries, and how to run them as the `postgres` user when we are root.
struct Tools {
    bin: PathBuf,
    /// `setpriv` or `runuser` with their arguments, when running as root.
    switch: Option<Vec<String>>,
}

impl Tools {
    fn find() -> Result<Tools, String> {
        let bin = newest_versioned_bin()
            .or_else(|| {
                let initdb = on_path("initdb")?;
                let bin = initdb.parent()?.to_path_buf();
                bin.join("postgres").is_file().then_some(bin)
            })
            .ok_or_else(|| NOT_INSTALLED.to_owned())?;
        for tool in ["initdb", "postgres", "psql"] {
            if !bin.join(tool).is_file() && on_path(tool).is_none() {
                return Err(format!("{NOT_INSTALLED} ({tool} is missing)"));
            }
        }
        let switch = if running_as_root() {
            Some(user_switch()?)
        } else {
            None
        };
        Ok(Tools { bin, switch })
    }

    fn path(&self, tool: &str) -> PathBuf {
        let path = self.bin.join(tool);
        if path.is_file() {
            return path;
        }
        on_path(tool).unwrap_or(path)
    }

    /// `tool` run in `dir` with a clean `PG*` environment and the C locale; the server-side
    /// tools run as the `postgres` user when we are root.
    fn command(&self, tool: &str, dir: &Path) -> Command {
        let server_side = matches!(tool, "initdb" | "postgres");
        let mut command = match (&self.switch, server_side) {
            (Some(switch), true) => {
                let mut command = Command::new(&switch[0]);
                command.args(&switch[1..]).arg(self.path(tool));
                command
            }
            _ => Command::new(self.path(tool)),
        };
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                command.env_remove(&key);
            }
        }
        command.env("LC_ALL", "C").current_dir(dir);
        command
    }
}

/// `/usr/lib/postgresql/<version>/bin` of the highest version that has `initdb` and `postgres`.
fn newest_versioned_bin() -> Option<PathBuf> {
    let mut found: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("postgres").is_file())
                .then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn on_path(tool: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(tool))
        .find(|path| path.is_file())
}

fn running_as_root() -> bool {
    // /proc/self belongs to the effective user.
    match fs::metadata("/proc/self") {
        Ok(meta) => meta.uid() == 0,
        Err(_) => Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0"),
    }
}

/// The server refuses to run as root: switch to the `postgres` user. `setpriv` execs the tool
/// directly, so the child is the server itself; `runuser` stays in between.
fn user_switch() -> Result<Vec<String>, String> {
    let known = Command::new("id")
        .arg("-u")
        .arg(SYSTEM_USER)
        .output()
        .is_ok_and(|out| out.status.success());
    if !known {
        return Err(format!(
            "running as root but there is no {SYSTEM_USER:?} system user to run PostgreSQL as; \
             {NOT_INSTALLED}"
        ));
    }
    if let Some(setpriv) = on_path("setpriv") {
        return Ok(vec![
            setpriv.display().to_string(),
            format!("--reuid={SYSTEM_USER}"),
            format!("--regid={SYSTEM_USER}"),
            "--clear-groups".to_owned(),
        ]);
    }
    if let Some(runuser) = on_path("runuser") {
        return Ok(vec![
            runuser.display().to_string(),
            "-u".to_owned(),
            SYSTEM_USER.to_owned(),
            "--".to_owned(),
        ]);
    }
    Err("running as root but neither setpriv nor runuser (util-linux) is installed".to_owned())
}

/// A free port of 127.0.0.1, never 5432 and never one this process handed out before.
fn free_port() -> Result<u16, String> {
    let mut taken = PORTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for _ in 0..100 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .map_err(|e| format!("cannot bind a port of 127.0.0.1: {e}"))?
            .port();
        if port != DEFAULT_PORT && !taken.contains(&port) {
            taken.push(port);
            return Ok(port);
        }
    }
    Err("no free port of 127.0.0.1 found".to_owned())
}

/// Removes `<name>-<pid>-<n>` directories whose process no longer exists.
fn remove_stale(base: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.rsplit('-').nth(1))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// `name` reduced to what is safe and short in a path.
fn label(name: &str) -> String {
    let label: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(32)
        .collect();
    if label.is_empty() {
        "pg".to_owned()
    } else {
        label
    }
}

fn check(what: &str, output: std::io::Result<Output>) -> Result<(), String> {
    let output = output.map_err(|e| format!("cannot run {what}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// Sends a signal with the shell's `kill` (std has no `kill(2)` besides `Child::kill`).
fn signal(name: &str, pid: u32) {
    let _ = Command::new("/bin/sh")
        .args(["-c", "kill -s \"$1\" \"$2\" 2>/dev/null", "sh", name])
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn wait_exit(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= deadline => return false,
            Ok(None) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn log_tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
    format!("server log tail:\n{}", tail.join("\n"))
}
