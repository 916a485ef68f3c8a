//! Running nginx as a supervised child process.
//!
//! nginx runs in the foreground (`daemon off`) as our direct child, so we learn the moment it
//! dies and can tie its lifetime to ours (see `platform.rs`). A supervision task waits on it and
//! restarts it with exponential backoff when it exits unexpectedly; a crash loop ends in
//! [`NginxStatus::Failed`] with nginx's own error text instead of spinning forever. Reloads go
//! through `nginx -t` on a candidate file first, so a bad configuration never replaces a working
//! one, and nginx's graceful reload lets requests in flight finish (for up to the config's
//! `worker_shutdown_timeout`; see [`Nginx::recycle_workers`] for why that is short).

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::platform::{self, Containment, Request};
use super::render::NginxLayout;
use super::NginxError;
use crate::config::AppConfig;
use crate::fsutil::write_atomic;

/// What the managed nginx is doing, published through a `watch` channel for the UI and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NginxStatus {
    /// Being started for the first time.
    Starting,
    /// Serving; `pid` is the master process.
    Running { pid: u32 },
    /// It exited unexpectedly and will be started again after a backoff delay.
    Restarting { attempt: u32, last_error: String },
    /// It kept failing; no further attempts until the configuration is reloaded.
    /// `message` is nginx's own error text.
    Failed { message: String },
    /// Stopped on request.
    Stopped,
}

/// How persistently a crashed nginx is restarted.
#[derive(Debug, Clone)]
pub struct RestartPolicy {
    /// Delay before the first restart; doubled after every failure.
    pub initial_backoff: Duration,
    /// The delay never grows beyond this.
    pub max_backoff: Duration,
    /// An nginx that stayed up this long is considered healthy: the next crash starts the
    /// backoff and failure count afresh.
    pub reset_after: Duration,
    /// After this many consecutive quick failures (crashes and failed restarts) give up and
    /// report [`NginxStatus::Failed`].
    pub max_failures: u32,
    /// How long a starting nginx may take to write its pid file (i.e. to bind its ports).
    /// nginx itself retries a busy port for 2.5 s before giving up.
    pub start_timeout: Duration,
    /// How long a graceful stop may take before nginx is killed.
    pub stop_timeout: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            reset_after: Duration::from_secs(60),
            max_failures: 5,
            start_timeout: Duration::from_secs(10),
            stop_timeout: Duration::from_secs(3),
        }
    }
}

/// The arguments that point nginx at our prefix, config and error log; every invocation uses
/// them so nothing falls back to the distribution's `/etc/nginx` or `/var/log/nginx`.
pub(crate) fn prefix_args(layout: &NginxLayout, conf: &Path) -> Vec<OsString> {
    vec![
        "-p".into(),
        layout.prefix_dir.clone().into_os_string(),
        "-c".into(),
        conf.as_os_str().to_owned(),
        "-e".into(),
        layout.error_log().into_os_string(),
    ]
}

/// Runs `nginx -t` on the layout's nginx.conf. On failure the error carries nginx's own
/// explanation (file, line and what is wrong).
pub async fn test_config(binary: &Path, layout: &NginxLayout) -> Result<(), NginxError> {
    test_config_file(binary, layout, &layout.conf_path()).await
}

async fn test_config_file(binary: &Path, layout: &NginxLayout, conf: &Path) -> Result<(), NginxError> {
    let mut cmd = Command::new(binary);
    cmd.arg("-t")
        .arg("-q")
        .args(prefix_args(layout, conf))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .map_err(|_| NginxError::ConfigInvalid { message: "`nginx -t` did not finish within 30 seconds".into() })?
        .map_err(|source| NginxError::Spawn { binary: binary.to_path_buf(), source })?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    let message = useful_lines(&text);
    let message = if message.is_empty() { format!("`nginx -t` failed ({}) without a message", out.status) } else { message };
    Err(NginxError::ConfigInvalid { message })
}

/// Checks that every app's listen address is free, so "port in use" is reported per app in
/// plain words instead of as nginx's generic bind error after a 2.5 s retry.
pub fn check_ports(apps: &[AppConfig]) -> Result<(), NginxError> {
    for app in apps {
        let addr = app.listen.socket_addr();
        match TcpListener::bind(addr) {
            Ok(listener) => drop(listener),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                return Err(NginxError::PortInUse { app: app.name.as_str().to_string(), addr });
            }
            Err(source) => return Err(NginxError::Bind { app: app.name.as_str().to_string(), addr, source }),
        }
    }
    Ok(())
}

/// The lines of nginx output worth showing a person: its `[emerg]`/`[alert]`/`[crit]`/`[error]`
/// lines if there are any (dropping the "configuration file ... test failed" trailer), else
/// the last few non-empty lines.
fn useful_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let important: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| ["[emerg]", "[alert]", "[crit]", "[error]"].iter().any(|lvl| l.contains(lvl)))
        .collect();
    let chosen = if important.is_empty() {
        lines.iter().copied().filter(|l| !l.ends_with("test failed")).collect()
    } else {
        important
    };
    let skip = chosen.len().saturating_sub(10);
    chosen[skip..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// The launcher thread.

struct SpawnRequest {
    command: Command,
    handle: tokio::runtime::Handle,
    reply: oneshot::Sender<io::Result<Child>>,
}

/// Spawns `command` from the "nginx-launcher" thread.
///
/// Linux delivers PR_SET_PDEATHSIG when the *thread* that forked the child exits, not the
/// process. Forking from a tokio worker or `spawn_blocking` thread would kill nginx whenever
/// that thread is retired. The launcher thread is started once and never exits, so the signal
/// comes exactly when the whole process dies. It enters the caller's runtime so that the child
/// is registered with that runtime's process reaper.
async fn spawn_contained(mut command: Command) -> io::Result<Child> {
    static LAUNCHER: OnceLock<Mutex<std_mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let sender = LAUNCHER.get_or_init(|| {
        let (tx, rx) = std_mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("nginx-launcher".into())
            .spawn(move || {
                // Ends only if every sender is dropped, which never happens: one lives in the static.
                for mut req in rx {
                    // This thread must never die (its exit would fire PDEATHSIG in every nginx
                    // it started), so a panic in spawn, e.g. from a runtime that is shutting
                    // down, becomes an error for that one caller.
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let _guard = req.handle.enter();
                        req.command.spawn()
                    }))
                    .unwrap_or_else(|_| Err(io::Error::other("spawning nginx panicked")));
                    let _ = req.reply.send(result);
                }
            })
            .expect("cannot start the nginx launcher thread");
        Mutex::new(tx)
    });
    platform::contain(&mut command);
    let (reply, response) = oneshot::channel();
    let req = SpawnRequest { command, handle: tokio::runtime::Handle::current(), reply };
    sender
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send(req)
        .map_err(|_| io::Error::other("the nginx launcher thread is gone"))?;
    response.await.map_err(|_| io::Error::other("the nginx launcher thread did not answer"))?
}

// ---------------------------------------------------------------------------------------------
// One running nginx.

/// The last lines nginx wrote to stderr, kept for error messages.
type Tail = Arc<Mutex<VecDeque<String>>>;

/// A started nginx master. Dropping it without a clean exit kills the master and any workers
/// left in its process group, so no code path can leak an nginx.
struct Running {
    child: Child,
    pid: u32,
    started: Instant,
    stderr: Tail,
    /// Length of error.log when this nginx started: only what it wrote itself is reported.
    log_offset: u64,
    reaped: bool,
    _containment: Containment,
}

impl Running {
    fn failure_text(&self, layout: &NginxLayout) -> String {
        failure_text(&self.stderr, layout, self.log_offset)
    }

    async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait().await;
        if status.is_ok() {
            self.reaped = true;
            // Workers of a master that was killed outright keep running (and keep the ports).
            let n = platform::kill_group(self.pid);
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
            platform::kill_group(self.pid);
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

fn read_log_from(path: &Path, offset: u64) -> Option<String> {
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

/// Starts nginx and waits until it listens: the master writes its pid file only after it has
/// bound every listening socket, so "pid file names our child" means "ready".
async fn launch(binary: &Path, layout: &NginxLayout, timeout: Duration) -> Result<Running, NginxError> {
    let pid_path = layout.pid_path();
    match std::fs::remove_file(&pid_path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(NginxError::io(format!("remove the old pid file {}", pid_path.display()), e));
        }
        _ => {}
    }
    let log_offset = std::fs::metadata(layout.error_log()).map(|m| m.len()).unwrap_or(0);

    let mut cmd = Command::new(binary);
    cmd.args(prefix_args(layout, &layout.conf_path()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = spawn_contained(cmd).await.map_err(|source| NginxError::Spawn { binary: binary.to_path_buf(), source })?;
    let Some(pid) = child.id() else {
        return Err(NginxError::StartFailed { message: "nginx exited immediately".into() });
    };
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
    let mut running = Running { child, pid, started: Instant::now(), stderr, log_offset, reaped: false, _containment: containment };

    let deadline = Instant::now() + timeout;
    loop {
        if read_pid_file(&pid_path) == Some(pid) {
            tracing::info!(pid, prefix = %layout.prefix_dir.display(), "nginx is running");
            running.started = Instant::now();
            return Ok(running);
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
            let reason = running.failure_text(layout);
            drop(running); // kills it
            return Err(NginxError::StartTimeout { seconds: timeout.as_secs(), message: reason });
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Stops a leftover nginx from a previous run of ours (e.g. after a power cut or a crash of the
/// engine on a platform without parent-death signals): it would hold our ports and pid file.
/// The pid file is only trusted if that process's command line mentions our prefix, so an
/// unrelated program that reused the pid is never touched.
async fn cleanup_stale(binary: &Path, layout: &NginxLayout) {
    let pid_path = layout.pid_path();
    let Some(pid) = read_pid_file(&pid_path) else { return };
    match platform::process_alive(pid) {
        Some(true) => {
            let prefix = layout.prefix_dir.to_string_lossy();
            match platform::process_cmdline(pid) {
                Some(cmdline) if cmdline.contains(prefix.as_ref()) => {
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
                Some(_) => tracing::info!(pid, "the old pid file names a process that is not our nginx; leaving it alone"),
                None => tracing::info!(pid, "cannot tell whether the process named by the old pid file is our nginx; leaving it alone"),
            }
        }
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

/// Where to connect to reach a listen address (a wildcard is reached through loopback).
fn connect_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port()),
        _ => addr,
    }
}

// ---------------------------------------------------------------------------------------------
// The supervisor.

struct Shared {
    binary: PathBuf,
    layout: NginxLayout,
    policy: RestartPolicy,
    status: watch::Sender<NginxStatus>,
    /// The apps in the configuration nginx currently runs: their ports are nginx's own, so a
    /// reload only checks ports that are new.
    apps: Mutex<Vec<AppConfig>>,
    /// Serialises reloads and (re)starts, so a reload never signals a half-started nginx.
    ops: tokio::sync::Mutex<()>,
    /// Wakes a supervisor that gave up ([`NginxStatus::Failed`]) after a reload.
    retry: Notify,
    cancel: CancellationToken,
}

/// The managed nginx. Dropping it stops nginx too (gracefully if the runtime is still running,
/// otherwise by killing it).
pub struct Nginx {
    shared: Arc<Shared>,
    status: watch::Receiver<NginxStatus>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Nginx {
    /// Starts nginx with [`RestartPolicy::default`]. See [`Nginx::start_with_policy`].
    pub async fn start(binary: PathBuf, layout: NginxLayout, config_text: String, apps: &[AppConfig]) -> Result<Nginx, NginxError> {
        Self::start_with_policy(binary, layout, config_text, apps, RestartPolicy::default()).await
    }

    /// Prepares the prefix, stops a stale nginx of ours, writes and tests `config_text`, checks
    /// that the apps' ports are free, starts nginx and returns once it is listening. From then
    /// on a supervision task restarts it if it dies.
    pub async fn start_with_policy(
        binary: PathBuf,
        layout: NginxLayout,
        config_text: String,
        apps: &[AppConfig],
        policy: RestartPolicy,
    ) -> Result<Nginx, NginxError> {
        layout
            .prepare()
            .map_err(|e| NginxError::io(format!("create the nginx directory {}", layout.prefix_dir.display()), e))?;
        platform::open_temp_dirs_to_workers(&layout)?;
        cleanup_stale(&binary, &layout).await;
        let conf = layout.conf_path();
        write_atomic(&conf, config_text.as_bytes()).map_err(|e| NginxError::io(format!("write {}", conf.display()), e))?;
        test_config(&binary, &layout).await?;
        check_ports(apps)?;

        let (status_tx, status_rx) = watch::channel(NginxStatus::Starting);
        let running = launch(&binary, &layout, policy.start_timeout).await?;
        status_tx.send_replace(NginxStatus::Running { pid: running.pid });
        let shared = Arc::new(Shared {
            binary,
            layout,
            policy,
            status: status_tx,
            apps: Mutex::new(apps.to_vec()),
            ops: tokio::sync::Mutex::new(()),
            retry: Notify::new(),
            cancel: CancellationToken::new(),
        });
        let task = tokio::spawn(supervise(shared.clone(), running));
        Ok(Nginx { shared, status: status_rx, task: Mutex::new(Some(task)) })
    }

    /// Follows the status; `changed().await` wakes on every transition.
    pub fn status(&self) -> watch::Receiver<NginxStatus> {
        self.status.clone()
    }

    /// The current master's pid, while it is running.
    pub fn pid(&self) -> Option<u32> {
        match *self.status.borrow() {
            NginxStatus::Running { pid } => Some(pid),
            _ => None,
        }
    }

    /// The prefix directory nginx runs in.
    pub fn layout(&self) -> &NginxLayout {
        &self.shared.layout
    }

    /// Applies a new configuration without restarting nginx: new connections get the new
    /// configuration at once, requests in flight may finish (for up to `worker_shutdown_timeout`).
    ///
    /// The text is written to a candidate file and checked with `nginx -t`; only if nginx
    /// accepts it, and the ports it adds are free, does it replace nginx.conf and nginx is told
    /// to reload. Otherwise the running nginx and its config file are untouched and the error
    /// carries nginx's own message. When new ports are added, this waits until nginx listens
    /// on them. If the supervisor had given up ([`NginxStatus::Failed`]), a valid new
    /// configuration makes it try again.
    pub async fn reload(&self, config_text: String, apps: &[AppConfig]) -> Result<(), NginxError> {
        let shared = &self.shared;
        let _ops = shared.ops.lock().await;
        if shared.cancel.is_cancelled() {
            return Err(NginxError::Stopped);
        }
        let layout = &shared.layout;
        let candidate = layout.candidate_conf_path();
        write_atomic(&candidate, config_text.as_bytes())
            .map_err(|e| NginxError::io(format!("write {}", candidate.display()), e))?;
        let result = async {
            test_config_file(&shared.binary, layout, &candidate).await?;
            let held: HashSet<SocketAddr> =
                shared.apps.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|a| a.listen.socket_addr()).collect();
            let new_apps: Vec<AppConfig> = apps.iter().filter(|a| !held.contains(&a.listen.socket_addr())).cloned().collect();
            check_ports(&new_apps)?;
            Ok::<_, NginxError>(new_apps)
        }
        .await;
        let new_apps = match result {
            Ok(new_apps) => new_apps,
            Err(e) => {
                let _ = std::fs::remove_file(&candidate);
                tracing::warn!("new nginx configuration rejected; nginx keeps running with the old one: {e}");
                return Err(e);
            }
        };
        std::fs::rename(&candidate, layout.conf_path())
            .map_err(|e| NginxError::io(format!("replace {}", layout.conf_path().display()), e))?;

        let status = shared.status.borrow().clone();
        match status {
            NginxStatus::Running { pid } => {
                let log_offset = std::fs::metadata(layout.error_log()).map(|m| m.len()).unwrap_or(0);
                platform::send(&shared.binary, layout, pid, Request::Reload)
                    .await
                    .map_err(|e| NginxError::io(format!("signal nginx (pid {pid}) to reload"), e))?;
                tracing::info!(pid, "nginx is reloading its configuration");
                // nginx reloads asynchronously and only logs a failure (typically a port it
                // cannot bind); new ports becoming reachable is the evidence that it worked.
                let deadline = Instant::now() + Duration::from_secs(5);
                for app in &new_apps {
                    let addr = connect_addr(app.listen.socket_addr());
                    while tokio::net::TcpStream::connect(addr).await.is_err() {
                        if Instant::now() >= deadline {
                            let message = read_log_from(&layout.error_log(), log_offset).map(|t| useful_lines(&t)).unwrap_or_default();
                            return Err(NginxError::ReloadFailed {
                                message: format!("nginx is not listening on {} for app {:?}: {message}", app.listen, app.name.as_str()),
                            });
                        }
                        tokio::time::sleep(Duration::from_millis(25)).await;
                    }
                }
            }
            NginxStatus::Failed { .. } => {
                tracing::info!("new configuration accepted; trying to start nginx again");
                shared.retry.notify_one();
            }
            // A restart in progress picks up the new file.
            _ => {}
        }
        // Only now are the new ports nginx's own; after a failure they are checked again.
        *shared.apps.lock().unwrap_or_else(|p| p.into_inner()) = apps.to_vec();
        Ok(())
    }

    /// Replaces nginx's workers without changing the configuration: the same reload signal as
    /// [`Nginx::reload`], for the nginx.conf already in place (no `nginx -t`, no port checks).
    ///
    /// New workers take every new connection at once; the old ones finish what they are doing
    /// and, because the configuration sets `worker_shutdown_timeout`, close whatever is still
    /// open (WebSockets, long downloads) after that time. This is how connections that were
    /// authorised by a session that has since ended are cut: nginx only asks the auth server
    /// when a request starts, and an upgraded connection never starts another one. A browser
    /// that reconnects passes `auth_request` again. Does nothing unless nginx is running (a
    /// nginx being restarted has no old connections).
    pub async fn recycle_workers(&self) -> Result<(), NginxError> {
        let shared = &self.shared;
        let _ops = shared.ops.lock().await;
        if shared.cancel.is_cancelled() {
            return Err(NginxError::Stopped);
        }
        let status = shared.status.borrow().clone();
        if let NginxStatus::Running { pid } = status {
            platform::send(&shared.binary, &shared.layout, pid, Request::Reload)
                .await
                .map_err(|e| NginxError::io(format!("signal nginx (pid {pid}) to replace its workers"), e))?;
            tracing::info!(pid, "nginx is replacing its workers (sessions ended)");
        }
        Ok(())
    }

    /// Stops nginx gracefully (SIGQUIT: finish current requests), killing it if it takes
    /// longer than the policy's `stop_timeout`. Afterwards the status is `Stopped` and nothing
    /// restarts it. Calling it again does nothing.
    pub async fn stop(&self) {
        self.shared.cancel.cancel();
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl std::fmt::Debug for Nginx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nginx")
            .field("binary", &self.shared.binary)
            .field("prefix", &self.shared.layout.prefix_dir)
            .field("status", &*self.status.borrow())
            .finish()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // The supervision task sees this and stops nginx; if the runtime is shutting down, the
        // task is dropped instead, and dropping `Running` kills nginx.
        self.shared.cancel.cancel();
    }
}

/// The supervision loop: wait for nginx to exit, restart it with backoff, give up after too
/// many quick failures, stop it when cancelled.
async fn supervise(shared: Arc<Shared>, mut running: Running) {
    let policy = &shared.policy;
    let layout = &shared.layout;
    let mut failures: u32 = 0;
    let mut backoff = policy.initial_backoff;
    loop {
        let exit = tokio::select! {
            exit = running.wait() => exit,
            _ = shared.cancel.cancelled() => {
                shutdown(&shared, running).await;
                shared.status.send_replace(NginxStatus::Stopped);
                return;
            }
        };
        let uptime = running.started.elapsed();
        let how = match &exit {
            Ok(status) => describe_exit(status),
            Err(e) => format!("cannot wait for it: {e}"),
        };
        let mut last_error = format!("nginx (pid {}) stopped unexpectedly ({how}): {}", running.pid, running.failure_text(layout));
        drop(running);
        tracing::error!("{last_error}");
        if uptime >= policy.reset_after {
            failures = 0;
            backoff = policy.initial_backoff;
        }

        // Restart until one attempt succeeds, we give up, or we are stopped.
        running = loop {
            failures += 1;
            if failures >= policy.max_failures {
                tracing::error!(failures, "nginx keeps failing; not restarting it until the configuration changes");
                shared.status.send_replace(NginxStatus::Failed { message: last_error.clone() });
                tokio::select! {
                    _ = shared.cancel.cancelled() => {
                        shared.status.send_replace(NginxStatus::Stopped);
                        return;
                    }
                    _ = shared.retry.notified() => {
                        failures = 0;
                        backoff = policy.initial_backoff;
                    }
                }
            } else {
                shared.status.send_replace(NginxStatus::Restarting { attempt: failures, last_error: last_error.clone() });
                tracing::info!(attempt = failures, delay_ms = backoff.as_millis() as u64, "restarting nginx");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shared.cancel.cancelled() => {
                        shared.status.send_replace(NginxStatus::Stopped);
                        return;
                    }
                }
                backoff = (backoff * 2).min(policy.max_backoff);
            }
            let _ops = shared.ops.lock().await;
            if shared.cancel.is_cancelled() {
                shared.status.send_replace(NginxStatus::Stopped);
                return;
            }
            match launch(&shared.binary, layout, policy.start_timeout).await {
                Ok(r) => break r,
                Err(e) => {
                    tracing::warn!("restarting nginx failed: {e}");
                    last_error = e.to_string();
                }
            }
        };
        shared.status.send_replace(NginxStatus::Running { pid: running.pid });
    }
}

fn describe_exit(status: &ExitStatus) -> String {
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

/// Graceful stop: SIGQUIT lets workers finish their requests; after `stop_timeout` it is killed.
async fn shutdown(shared: &Shared, mut running: Running) {
    let pid = running.pid;
    tracing::info!(pid, "stopping nginx");
    if let Err(e) = platform::send(&shared.binary, &shared.layout, pid, Request::Quit).await {
        tracing::warn!(pid, "cannot ask nginx to quit ({e}); killing it");
    }
    match tokio::time::timeout(shared.policy.stop_timeout, running.wait()).await {
        Ok(_) => tracing::info!(pid, "nginx stopped"),
        Err(_) => {
            tracing::warn!(pid, "nginx did not stop within {:?}; killing it", shared.policy.stop_timeout);
            let _ = running.child.start_kill();
            let _ = running.wait().await;
        }
    }
    let _ = std::fs::remove_file(shared.layout.pid_path());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn useful_lines_prefers_errors() {
        let out = "nginx: [warn] something minor\nnginx: [emerg] unknown directive \"bogus\" in /p/nginx.conf:3\nnginx: configuration file /p/nginx.conf test failed\n";
        assert_eq!(useful_lines(out), "nginx: [emerg] unknown directive \"bogus\" in /p/nginx.conf:3");
        assert_eq!(useful_lines("\n  just this  \n"), "just this");
        assert_eq!(useful_lines(""), "");
    }

    #[test]
    fn port_in_use_names_app_and_port() {
        let holder = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = holder.local_addr().unwrap();
        let app = AppConfig::new("Jupyter".parse().unwrap(), "http://127.0.0.1:1".parse().unwrap(), addr.to_string().parse().unwrap());
        let err = check_ports(std::slice::from_ref(&app)).unwrap_err();
        assert!(matches!(&err, NginxError::PortInUse { app, addr: a } if app == "Jupyter" && *a == addr), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("port {} for app \"Jupyter\" ({addr}) is already in use", addr.port())), "{msg}");
        drop(holder);
        check_ports(&[app]).unwrap();
    }

    #[test]
    fn wildcard_listen_is_reached_through_loopback() {
        assert_eq!(connect_addr("0.0.0.0:80".parse().unwrap()), "127.0.0.1:80".parse().unwrap());
        assert_eq!(connect_addr("[::]:80".parse().unwrap()), "[::1]:80".parse().unwrap());
        assert_eq!(connect_addr("10.0.0.1:80".parse().unwrap()), "10.0.0.1:80".parse().unwrap());
    }
}
