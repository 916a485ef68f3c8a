//! Running nginx as a supervised child process.
//!
//! nginx runs in the foreground (`daemon off`) as our direct child, so we learn the moment it
//! dies and can tie its lifetime to ours (see `platform.rs`). A supervision task waits on it and
//! restarts it with exponential backoff when it exits unexpectedly; a crash loop ends in
//! [`NginxStatus::Failed`] with nginx's own error text instead of spinning forever. Reloads go
//! through `nginx -t` on a candidate file first, so a bad configuration never replaces a working
//! one, and nginx's graceful reload lets requests in flight finish (for up to the config's
//! `worker_shutdown_timeout`; see [`Nginx::recycle_workers`] for why that is short).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::check::{check_ports, in_prefix, test_config, test_config_file, useful_lines};
use super::layout::{names, NginxLayout};
use super::platform::{self, Request};
use super::process::{cleanup_stale, connect_addr, describe_exit, launch, read_log_from, Running};
use super::{upstream_ca, NginxError};
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

/// The addresses nginx listens on for `apps`.
fn listen_addrs(apps: &[AppConfig]) -> Vec<SocketAddr> {
    apps.iter().map(|app| app.listen.socket_addr()).collect()
}

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
        layout.prepare().map_err(|e| NginxError::io(format!("create the nginx directory {}", layout.prefix_dir.display()), e))?;
        platform::open_temp_dirs_to_workers(&layout)?;
        cleanup_stale(&binary, &layout).await;
        upstream_ca::write_if_needed(&layout, apps)?;
        let conf = layout.conf_path();
        write_atomic(&conf, config_text.as_bytes()).map_err(|e| NginxError::io(format!("write {}", conf.display()), e))?;
        // Free ports first: on Windows `nginx -t` binds the ports itself, and a taken one would be
        // reported as a rejected configuration instead of in plain words.
        check_ports(apps)?;
        test_config(&binary, &layout).await?;

        let (status_tx, status_rx) = watch::channel(NginxStatus::Starting);
        let running = launch(&binary, &layout, &listen_addrs(apps), policy.start_timeout).await?;
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
        write_atomic(&candidate, config_text.as_bytes()).map_err(|e| NginxError::io(format!("write {}", candidate.display()), e))?;
        let result = async {
            let held: HashSet<SocketAddr> =
                shared.apps.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|a| a.listen.socket_addr()).collect();
            let new_apps: Vec<AppConfig> = apps.iter().filter(|a| !held.contains(&a.listen.socket_addr())).cloned().collect();
            // The new ports first, as at start (a taken one in plain words).
            check_ports(&new_apps)?;
            upstream_ca::write_if_needed(layout, apps)?;
            test_config_file(&shared.binary, layout, names::CANDIDATE_CONF).await?;
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
                            let message = read_log_from(&layout.error_log(), log_offset)
                                .map(|t| in_prefix(&useful_lines(&t), layout))
                                .unwrap_or_default();
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
        self.reload_in_place("nginx is replacing its workers (sessions ended)").await
    }

    /// Makes nginx read its TLS certificate and key files again (they were replaced; see
    /// [`crate::lan`]): the same graceful reload, for the nginx.conf already in place. Requests
    /// in flight finish; new connections get the new certificate.
    pub async fn reload_certificates(&self) -> Result<(), NginxError> {
        self.reload_in_place("nginx is reloading to present a new certificate").await
    }

    /// Sends the reload signal for the configuration already in place, if nginx is running,
    /// and logs `why`.
    async fn reload_in_place(&self, why: &str) -> Result<(), NginxError> {
        let shared = &self.shared;
        let _ops = shared.ops.lock().await;
        if shared.cancel.is_cancelled() {
            return Err(NginxError::Stopped);
        }
        let status = shared.status.borrow().clone();
        if let NginxStatus::Running { pid } = status {
            platform::send(&shared.binary, &shared.layout, pid, Request::Reload)
                .await
                .map_err(|e| NginxError::io(format!("signal nginx (pid {pid}) to reload"), e))?;
            tracing::info!(pid, "{why}");
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
            let listen = listen_addrs(&shared.apps.lock().unwrap_or_else(|p| p.into_inner()));
            match launch(&shared.binary, layout, &listen, policy.start_timeout).await {
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
    fn wildcard_listen_is_reached_through_loopback() {
        assert_eq!(connect_addr("0.0.0.0:80".parse().unwrap()), "127.0.0.1:80".parse().unwrap());
        assert_eq!(connect_addr("[::]:80".parse().unwrap()), "[::1]:80".parse().unwrap());
        assert_eq!(connect_addr("10.0.0.1:80".parse().unwrap()), "10.0.0.1:80".parse().unwrap());
    }
}
