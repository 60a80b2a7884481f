//! The servers the benchmark starts: each is killed and reaped when its handle is dropped, so
//! also when the benchmark panics (the handles are dropped while unwinding), and the kernel
//! kills it if the benchmark dies without unwinding (a signal).

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of stderr kept for an error message.
const KEPT_LINES: usize = 40;

pub struct Server {
    name: String,
    child: Child,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `program` with `env` on top of the inherited environment (minus the connector
    /// and store settings a caller's shell might have set) and waits for its
    /// `connector listening address=...` line. Everything else it writes to stderr is read and
    /// discarded, so the pipe never fills up.
    pub fn start(name: &str, program: &Path, env: &[(&str, String)]) -> Server {
        let (mut child, announced, kept) = spawn(program, env);
        let addr = match announced.recv_timeout(START_TIMEOUT) {
            Ok(addr) => addr,
            Err(_) => fail(name, &mut child, &kept, "did not announce its address"),
        };
        Server {
            name: name.to_owned(),
            child,
            addr,
        }
    }

    /// Like [`Server::start`], for a log level that hides the `connector listening` line: the
    /// server listens on a free port of 127.0.0.1 chosen here (`CONNECTOR_LISTEN`), and is
    /// ready once that port accepts connections.
    pub fn start_unannounced(name: &str, program: &Path, env: &[(&str, String)]) -> Server {
        let addr = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"));
        let mut env = env.to_vec();
        env.push(("CONNECTOR_LISTEN", addr.to_string()));
        let (mut child, _, kept) = spawn(program, &env);
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                fail(name, &mut child, &kept, &format!("exited: {status}"));
            }
            if Instant::now() > deadline {
                fail(
                    name,
                    &mut child,
                    &kept,
                    &format!("did not listen on {addr}"),
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Server {
            name: name.to_owned(),
            child,
            addr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Panics if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited unexpectedly: {status}", self.name);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A started child, the address it announces (if it does), and the first lines of its stderr
/// (up to the announcement).
type Started = (Child, mpsc::Receiver<SocketAddr>, Arc<Mutex<Vec<String>>>);

/// Starts `program` (see [`Server::start`]) with a thread reading its stderr.
fn spawn(program: &Path, env: &[(&str, String)]) -> Started {
    let mut command = Command::new(program);
    for inherited in [
        "CONNECTOR_LOG_FORMAT",
        "CONNECTOR_BODY_LIMIT",
        "CONNECTOR_LOG",
        "CONNECTOR_LISTEN",
        "CONNECTOR_STORE",
        "CONNECTOR_INITIATION_TIMEOUT",
        "DATABASE_URL",
    ] {
        command.env_remove(inherited);
    }
    if !env.iter().any(|(name, _)| *name == "CONNECTOR_STORE") {
        // Never the directory the benchmark runs in: a store of its own under the temp dir.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let store = std::env::temp_dir().join(format!(
            "connector-bench-{}-{n}.sqlite3",
            std::process::id()
        ));
        command.env("CONNECTOR_STORE", store);
    }
    command
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let parent = std::process::id();
    // SAFETY: between fork and exec the closure only makes async-signal-safe system calls
    // (prctl, getppid) and touches no memory shared with other threads.
    unsafe {
        command.pre_exec(move || {
            // Killed with the benchmark even when that is itself killed by a signal,
            // which skips `Server`'s `Drop`.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent as libc::pid_t {
                // The benchmark died before the prctl took effect.
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let stderr = child.stderr.take().expect("stderr is piped");
    let (found, address) = mpsc::channel();
    let kept = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&kept);
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stderr);
        let mut line = String::new();
        let mut announced = false;
        while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
            if !announced {
                if let Some(addr) = listening_address(&line) {
                    announced = true;
                    let _ = found.send(addr);
                } else if let Ok(mut kept) = log.lock()
                    && kept.len() < KEPT_LINES
                {
                    kept.push(line.trim_end().to_owned());
                }
            }
            line.clear();
        }
    });
    (child, address, kept)
}

fn fail(name: &str, child: &mut Child, kept: &Mutex<Vec<String>>, what: &str) -> ! {
    let _ = child.kill();
    let _ = child.wait();
    let logs = kept.lock().map(|k| k.join("\n")).unwrap_or_default();
    panic!("{name} {what}; its stderr:\n{logs}");
}

fn listening_address(line: &str) -> Option<SocketAddr> {
    if !line.contains("connector listening") {
        return None;
    }
    let (_, rest) = line.split_once("address=")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
pub fn proc_status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let kb: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
        Some(kb * 1024)
    })
}

/// CPU time (user + system) a process has used, in seconds, and its parent's id, from
/// `/proc/<pid>/stat`.
pub fn proc_cpu(pid: u32) -> Option<(f64, u32)> {
    let (_, seconds, parent) = read_stat(&format!("/proc/{pid}/stat"))?;
    Some((seconds, parent))
}

/// The threads of a process: their id, name and the CPU time each has used, in seconds.
pub fn proc_threads(pid: u32) -> Vec<(u32, String, f64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let id = task.file_name().to_str()?.parse().ok()?;
            let (name, seconds, _) = read_stat(&format!("{}/stat", task.path().display()))?;
            Some((id, name, seconds))
        })
        .collect()
}

/// The command name, user + system CPU seconds and parent id of a `stat` file of `/proc`.
fn read_stat(path: &str) -> Option<(String, f64, u32)> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name, in parentheses, may hold spaces: the fields start after the last ')'.
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let parent = fields.get(1)?.parse().ok()?;
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some((name, (user + system) as f64 / clock_ticks(), parent))
}

/// The whole machine's CPU time since boot, in seconds summed over its CPUs: (busy, total),
/// from the first line of `/proc/stat` (busy is everything but idle and iowait).
pub fn machine_cpu() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4)?;
    Some((
        (total - idle) as f64 / clock_ticks(),
        total as f64 / clock_ticks(),
    ))
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a system setting.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}
