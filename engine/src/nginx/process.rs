//! One running nginx master: starting it and waiting until it listens, what it said when it
//! failed, and clearing away an nginx a previous run of ours left behind.
//!
//! A [`Running`] kills its nginx (master and workers) when dropped without a clean exit, so no
//! code path of the supervisor can leak an nginx.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use super::check::{in_prefix, useful_lines};
use super::launcher::spawn_contained;
use super::layout::{names, nginx_command, NginxLayout};
use super::platform::{self, Containment, Request};
use super::NginxError;

/// The last lines nginx wrote to stderr, kept for error messages.
type Tail = Arc<Mutex<VecDeque<String>>>;

/// A started nginx master. Dropping it without a clean exit kills the master and any workers
/// left in its process group, so no code path can leak an nginx.
pub(super) struct Running {
    pub(super) child: Child,
    pub(super) pid: u32,
    pub(super) started: Instant,
    stderr: Tail,
    /// Length of error.log when this nginx started: only what it wrote itself is reported.
    log_offset: u64,
    reaped: bool,
    containment: Containment,
}

impl Running {
    pub(super) fn failure_text(&self, layout: &NginxLayout) -> String {
        in_prefix(&failure_text(&self.stderr, layout, self.log_offset), layout)
    }

    pub(super) async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait().await;
        if status.is_ok() {
            self.reaped = true;
            // Workers of a master that was killed outright keep running (and keep the ports).
            let n = self.containment.kill_leftovers(self.pid);
            if n > 0 {
                tracing::warn!(pid = self.pid, killed = n, "killed nginx workers left behind by their master");
            }
        }
        status
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.start_kill();
            self.containment.kill_leftovers(self.pid);
        }
    }
}

fn failure_text(stderr: &Tail, layout: &NginxLayout, log_offset: u64) -> String {
    let from_stderr = useful_lines(&stderr.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect::<Vec<_>>().join("\n"));
    if !from_stderr.is_empty() {
        return from_stderr;
    }
    let from_log = read_log_from(&layout.error_log(), log_offset).map(|t| useful_lines(&t)).unwrap_or_default();
    if !from_log.is_empty() {
        return from_log;
    }
    format!("nginx gave no reason; see {}", layout.error_log().display())
}

pub(super) fn read_log_from(path: &Path, offset: u64) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    // At most the last 16 KiB: enough for the reason, bounded if the log is huge.
    let start = offset.max(len.saturating_sub(16 * 1024));
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut text = String::new();
    file.take(16 * 1024).read_to_string(&mut text).ok()?;
    Some(text)
}

fn read_pid_file(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Where to connect to reach a listen address (a wildcard is reached through loopback).
pub(super) fn connect_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port()),
        _ => addr,
    }
}

/// Starts nginx and waits until it is ready: its pid file names our child and it accepts
/// connections on every address in `listen`.
///
/// Both, because "ready" differs by OS. On Unix the master writes its pid file after it has bound
/// every listening socket, which its workers inherit. nginx for Windows' master closes its
/// sockets before it starts its worker, and the worker opens its own (`ngx_process_cycle.c` in
/// `src/os/win32`), so there the pid file comes first and the ports some milliseconds later
/// (measured under Wine: 86 ms). Between the pid file and that close a connection would still
/// reach the master's socket, so on Windows the ports are tried only once a worker exists.
/// On Unix the connections succeed at once.
pub(super) async fn launch(binary: &Path, layout: &NginxLayout, listen: &[SocketAddr], timeout: Duration) -> Result<Running, NginxError> {
    let pid_path = layout.pid_path();
    match std::fs::remove_file(&pid_path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(NginxError::io(format!("remove the old pid file {}", pid_path.display()), e));
        }
        _ => {}
    }
    let log_offset = std::fs::metadata(layout.error_log()).map(|m| m.len()).unwrap_or(0);

    let mut cmd = nginx_command(binary, layout, &[], names::CONF);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = spawn_contained(cmd).await.map_err(|source| NginxError::Spawn { binary: binary.to_path_buf(), source })?;
    let Some(pid) = child.id() else {
        return Err(NginxError::StartFailed { message: "nginx exited immediately".into() });
    };
    // On Windows nginx was created suspended: it runs only once it is in its Job Object, so no
    // worker it starts can be outside (see `platform`).
    let containment = match platform::after_spawn(&child) {
        Ok(c) => c,
        Err(e) => {
            let _ = child.start_kill();
            return Err(NginxError::io("tie nginx's lifetime to ours", e));
        }
    };
    let stderr: Tail = Arc::default();
    if let Some(pipe) = child.stderr.take() {
        let tail = stderr.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::warn!(target: "simpleotp::nginx", nginx_pid = pid, "nginx: {line}");
                let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
                if tail.len() == 20 {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
    }
    let mut running = Running { child, pid, started: Instant::now(), stderr, log_offset, reaped: false, containment };

    let deadline = Instant::now() + timeout;
    let mut waiting_for: Vec<SocketAddr> = listen.iter().copied().map(connect_addr).collect();
    loop {
        if read_pid_file(&pid_path) == Some(pid) && running.containment.worker_started(pid) {
            let mut still = Vec::with_capacity(waiting_for.len());
            for addr in waiting_for {
                if tokio::net::TcpStream::connect(addr).await.is_err() {
                    still.push(addr);
                }
            }
            waiting_for = still;
            if waiting_for.is_empty() {
                tracing::info!(pid, prefix = %layout.prefix_dir.display(), "nginx is running");
                running.started = Instant::now();
                return Ok(running);
            }
        }
        match running.child.try_wait() {
            Ok(Some(status)) => {
                running.reaped = true;
                // Give the stderr reader a moment to collect nginx's last words.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let message = format!("{} ({})", running.failure_text(layout), describe_exit(&status));
                tracing::warn!(pid, "nginx exited while starting: {message}");
                return Err(NginxError::StartFailed { message });
            }
            Ok(None) => {}
            Err(e) => return Err(NginxError::io("check on the starting nginx", e)),
        }
        if Instant::now() >= deadline {
            let mut reason = running.failure_text(layout);
            if let Some(addr) = waiting_for.first().filter(|_| read_pid_file(&pid_path) == Some(pid)) {
                reason = format!("it does not accept connections on {addr}; {reason}");
            }
            drop(running); // kills it
            return Err(NginxError::StartTimeout { seconds: timeout.as_secs(), message: reason });
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Stops a leftover nginx from a previous run of ours (e.g. after a power cut or a crash of the
/// engine on a platform without parent-death signals): it would hold our ports and pid file.
/// The pid file is only trusted if that process runs in our prefix (its working directory; nginx
/// gets only relative names, see `layout`) and its command line says nginx, so an unrelated
/// program that reused the pid is never touched.
pub(super) async fn cleanup_stale(binary: &Path, layout: &NginxLayout) {
    let pid_path = layout.pid_path();
    let Some(pid) = read_pid_file(&pid_path) else { return };
    match platform::process_alive(pid) {
        Some(true) => match platform::is_nginx_in(pid, &layout.prefix_dir) {
            Some(true) => {
                tracing::warn!(pid, "stopping an nginx left over from a previous run");
                let leader = platform::is_group_leader(pid);
                let _ = platform::send(binary, layout, pid, Request::Quit).await;
                if !wait_gone(pid, Duration::from_secs(3)).await {
                    tracing::warn!(pid, "the leftover nginx did not quit in time; killing it");
                    let _ = platform::send(binary, layout, pid, Request::Kill).await;
                    wait_gone(pid, Duration::from_secs(1)).await;
                }
                if leader {
                    platform::kill_group(pid);
                }
            }
            Some(false) => tracing::info!(pid, "the old pid file names a process that is not our nginx; leaving it alone"),
            None => tracing::info!(pid, "cannot tell whether the process named by the old pid file is our nginx; leaving it alone"),
        },
        // The master is gone, but its workers may not be (a master we started leads its group).
        Some(false) => {
            platform::kill_group(pid);
        }
        // No way to inspect processes (Windows): ask nginx itself to stop whatever master the
        // pid file in our prefix names; if there is none, this fails harmlessly.
        None => {
            let _ = platform::send(binary, layout, pid, Request::Kill).await;
        }
    }
    let _ = std::fs::remove_file(&pid_path);
}

async fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while platform::process_alive(pid) != Some(false) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

pub(super) fn describe_exit(status: &ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return format!("killed by signal {sig}");
        }
    }
    match status.code() {
        Some(code) => format!("exit code {code}"),
        None => status.to_string(),
    }
}
