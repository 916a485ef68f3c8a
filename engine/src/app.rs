//! [`Application`]: everything wired together — the auth server, the gateway state, and the
//! managed nginx — built in one step and run until a shutdown signal.
//!
//! ```text
//! Application::build(settings)   bind the auth server, load state and secret, start nginx
//!     .run_until_stopped(token)  serve, purge expired sessions, persist; on cancel: stop nginx,
//!                                drain the server, write the state file one last time
//! ```
//!
//! `simpleotp serve`, `simpleotp demo`, the tray app and the integration tests all start the
//! gateway this way, so there is one start-up order and one shutdown order.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::ca::CaStore;
use crate::config::{AppConfig, Config};
use crate::control::{ControlFile, RotatedCa};
use crate::gateway::{CaRotation, Gateway, GatewayParts};
use crate::instance::InstanceLock;
use crate::lan::{LanCertificates, LanError};
use crate::limiter::LimiterSettings;
use crate::nginx::{self, Nginx, NginxError, NginxLayout};
use crate::protocol::NginxProof;
use crate::secret::{SecretError, SecretStore};
use crate::state::StateFile;
use crate::totp::unix_now;

/// How often expired sessions are purged and changed sessions written to disk. Logins and
/// `last seen` updates only mark the state dirty; this loop writes it, off the request path.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(5);

/// After a session ends, wait this long for more to end before nginx replaces its workers, so
/// "sign everyone out" or a burst of sign-outs costs one worker replacement, not one each.
const RECYCLE_GATHER: Duration = Duration::from_millis(200);
/// At least this long between two worker replacements: each one leaves old workers running for
/// up to `worker_shutdown_timeout`, and a steady stream of sign-outs must not pile them up.
const RECYCLE_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Who runs nginx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NginxMode {
    /// The gateway starts and supervises its own nginx (the default).
    Managed,
    /// The user runs nginx with the output of `simpleotp nginx-snippet`; the auth server must
    /// then listen on the fixed `auth_listen` address from the config. That nginx is not ours to
    /// reload, so open WebSockets outlive a sign-out until its owner reloads it.
    External,
}

/// What [`Application::build`] needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: Config,
    /// Sessions, the replay counter, the nginx prefix and the control file live here.
    pub data_dir: PathBuf,
    pub secret: SecretStore,
    pub nginx: NginxMode,
    pub limiter: LimiterSettings,
    /// How this program is named to a second gateway refused on the same data directory
    /// ([`crate::instance`]): `simpleotp serve` (the default) or `the SimpleOTP app`.
    pub program: &'static str,
}

impl Settings {
    pub fn new(config: Config, data_dir: PathBuf, secret: SecretStore) -> Settings {
        Settings { config, data_dir, secret, nginx: NginxMode::Managed, limiter: LimiterSettings::default(), program: "simpleotp serve" }
    }
}

/// Why the gateway could not start. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot use the data directory {}: {source}", .path.display())]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    AlreadyRunning(#[from] crate::instance::LockError),
    #[error(
        "no TOTP secret is stored in {location}. Create one first with `simpleotp init` (with the same --secret-file, if you use one)."
    )]
    NoSecret { location: String },
    #[error(transparent)]
    Secret(SecretError),
    /// The blocking task that reads the secret did not finish (it panicked, or the runtime is
    /// shutting down).
    #[error("reading the TOTP secret failed: {0}")]
    SecretTask(#[source] tokio::task::JoinError),
    #[error("cannot listen on {addr} for the auth server: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("external nginx mode needs a fixed auth server address: set `auth_listen = \"127.0.0.1:PORT\"` in the config file")]
    ExternalNeedsAuthListen,
    #[error(transparent)]
    Nginx(#[from] NginxError),
    /// The certificate for network-facing apps could not be made (see [`crate::lan`]).
    #[error("cannot serve the apps on the local network over HTTPS: {0}")]
    Lan(#[from] LanError),
}

/// A built gateway, ready to run.
pub struct Application {
    gateway: Gateway,
    listener: TcpListener,
    auth_addr: SocketAddr,
    nginx: Option<Arc<Nginx>>,
    /// The certificate of the network-facing apps (with the managed nginx only).
    lan: Option<Arc<LanCertificates>>,
    config: Config,
    data_dir: PathBuf,
    control: ControlFile,
    nginx_proof: NginxProof,
    warnings: Vec<String>,
    /// Released when the gateway has stopped ([`Application::run_until_stopped`]), or when an
    /// application that never ran is dropped.
    instance_lock: InstanceLock,
}

/// Where external-nginx mode keeps nginx's proof: it must stay the same across restarts,
/// because the user pasted it into their own nginx config (`simpleotp nginx-snippet`).
pub const EXTERNAL_PROOF_FILE_NAME: &str = "nginx-proof";

/// The proof an external nginx sends: read from the data directory, or made and saved (0600) on
/// first use. The managed nginx gets a fresh one at every start instead.
pub fn external_nginx_proof(data_dir: &std::path::Path) -> std::io::Result<NginxProof> {
    let path = data_dir.join(EXTERNAL_PROOF_FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => NginxProof::parse(&text).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is damaged; delete it and paste a new `simpleotp nginx-snippet` into your nginx config", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::fsutil::create_private_dir(data_dir)?;
            let proof = NginxProof::generate();
            crate::fsutil::write_atomic(&path, proof.expose().as_bytes())?;
            Ok(proof)
        }
        Err(e) => Err(e),
    }
}

impl Application {
    /// Binds the auth server, loads the state and the secret, and starts nginx. When this
    /// returns, protected apps already answer (with the login page until someone signs in).
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        let Settings { config, data_dir, secret, nginx: mode, limiter, program } = settings;
        config.validate().map_err(StartError::Config)?;
        crate::fsutil::create_private_dir(&data_dir).map_err(|source| StartError::DataDir { path: data_dir.clone(), source })?;

        // One gateway per data directory: two would fight over the state file and nginx prefix.
        // First, before anything is read or cleaned up, and held until the gateway stops.
        let instance_lock = InstanceLock::acquire(&data_dir, program)?;

        let ca_store = CaStore::beside(&secret, &data_dir);
        let ca_store_for_rotation = ca_store.clone();
        // The keychain may block on D-Bus or an unlock prompt: keep it off the async threads.
        let store = secret.clone();
        let authenticators = tokio::task::spawn_blocking(move || store.load_authenticators()).await.map_err(StartError::SecretTask)?;
        let authenticators = match authenticators {
            Ok(authenticators) => authenticators,
            Err(SecretError::NotFound { location }) => return Err(StartError::NoSecret { location }),
            Err(e) => return Err(StartError::Secret(e)),
        };

        let auth_addr = match (&mode, config.auth_listen) {
            (_, Some(addr)) => addr,
            (NginxMode::Managed, None) => SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            (NginxMode::External, None) => return Err(StartError::ExternalNeedsAuthListen),
        };
        let listener = TcpListener::bind(auth_addr).await.map_err(|source| StartError::Bind { addr: auth_addr, source })?;
        let auth_addr = listener.local_addr().map_err(|source| StartError::Bind { addr: auth_addr, source })?;

        let mut warnings = Vec::new();
        let state_file = StateFile::in_dir(&data_dir);
        let loaded = state_file.load(unix_now());
        if let Some(warning) = loaded.warning {
            warn!("{warning}");
            warnings.push(warning);
        }

        let nginx_proof = match mode {
            NginxMode::Managed => NginxProof::generate(),
            NginxMode::External => {
                external_nginx_proof(&data_dir).map_err(|source| StartError::DataDir { path: data_dir.clone(), source })?
            }
        };
        let control = ControlFile {
            auth_addr,
            route_prefix: config.route_prefix.clone(),
            token: crate::session::SessionToken::generate().expose().to_string(),
            pid: std::process::id(),
            app_urls: config.apps.iter().map(|app| app.protected_url().trim_end_matches('/').to_string()).collect(),
            other_device_urls: {
                let machine = crate::config::MachineNames::this_machine();
                let interfaces = crate::lan::facing_addresses(config.lan.interfaces.as_deref());
                config
                    .apps
                    .iter()
                    .filter_map(|app| crate::lan::other_device_url(app, &machine, &interfaces))
                    .map(|url| url.trim_end_matches('/').to_string())
                    .collect()
            },
        };
        let gateway = Gateway::new(GatewayParts {
            route_prefix: config.route_prefix.clone(),
            authenticators,
            secret_store: secret,
            issuer: config.issuer(),
            account: config.account(),
            session_settings: config.session,
            limiter_settings: limiter,
            state_file,
            persisted: loaded.state,
            control_token: control.token.clone(),
            nginx_proof: nginx_proof.clone(),
            apps: config.apps.clone(),
        });
        // The CA page offers the local CA once one exists. Only its public certificate is read
        // here (no keychain access, so no unlock prompt); the CA itself is loaded where HTTPS
        // needs it, which updates the page too.
        match ca_store.stored_certificate() {
            Ok(certificate) => gateway.set_ca_certificate(certificate),
            Err(e) => {
                let warning = format!("the CA page is off: {e}");
                warn!("{warning}");
                warnings.push(warning);
            }
        }

        // The managed nginx serves network-facing apps over HTTPS: their certificate must be in
        // place before nginx starts (`nginx -t` reads it).
        let (nginx, lan) = match mode {
            NginxMode::Managed => {
                let lan = Arc::new(LanCertificates::new(ca_store, nginx_layout(&data_dir), &config.apps, gateway.clone()));
                lan.prepare(&config.apps, &config.lan).await?;
                (Some(Arc::new(start_nginx(&config, &data_dir, auth_addr, &nginx_proof).await?)), Some(lan))
            }
            NginxMode::External => (None, None),
        };
        gateway.set_ca_rotation(ca_rotation(&gateway, lan.clone(), nginx.clone(), ca_store_for_rotation)).await;
        control.write(&data_dir).map_err(|source| StartError::DataDir { path: data_dir.clone(), source })?;
        info!(auth = %auth_addr, data_dir = %data_dir.display(), apps = config.apps.len(), "gateway started");
        Ok(Application { gateway, listener, auth_addr, nginx, lan, config, data_dir, control, nginx_proof, warnings, instance_lock })
    }

    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// The auth server's loopback address (what nginx talks to).
    pub fn auth_addr(&self) -> SocketAddr {
        self.auth_addr
    }

    /// The managed nginx, if this gateway runs one.
    pub fn nginx(&self) -> Option<Arc<Nginx>> {
        self.nginx.clone()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Problems found at start that did not stop it (e.g. a corrupt state file set aside).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// A handle for changing the running gateway (the tray app keeps one).
    pub fn handle(&self) -> GatewayHandle {
        GatewayHandle {
            gateway: self.gateway.clone(),
            nginx: self.nginx.clone(),
            lan: self.lan.clone(),
            auth_addr: self.auth_addr,
            nginx_proof: self.nginx_proof.clone(),
        }
    }

    /// Each protected app and the URL to open it.
    pub fn protected_urls(&self) -> Vec<(String, String)> {
        self.config.apps.iter().map(|app| (app.name.to_string(), app.protected_url())).collect()
    }

    /// Each protected app and every URL it can be opened at now: `http://127.0.0.1:PORT/` for a
    /// loopback app; `https://<hostname>.local:PORT/` and `https://<address>:PORT/` for each
    /// of the machine's addresses for a network-facing one (see [`crate::lan::app_urls`]).
    pub fn app_urls(&self) -> Vec<(String, Vec<String>)> {
        let machine = crate::config::MachineNames::this_machine();
        let interfaces = crate::lan::facing_addresses(self.config.lan.interfaces.as_deref());
        self.config.apps.iter().map(|app| (app.name.to_string(), crate::lan::app_urls(app, &machine, &interfaces))).collect()
    }

    /// Serves until `shutdown` is cancelled, then stops nginx gracefully, lets in-flight
    /// requests finish and writes the state one last time.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) {
        let Application { gateway, listener, nginx, lan, data_dir, control, instance_lock, .. } = self;
        let server_stop = CancellationToken::new();
        let server = tokio::spawn(crate::server::serve(listener, gateway.clone(), server_stop.clone()));
        let mut watcher = None;
        if let Some(nginx) = &nginx {
            tokio::spawn(cut_upgraded_connections(&gateway, nginx.clone(), shutdown.clone()));
            if let Some(lan) = lan {
                watcher = Some(tokio::spawn(crate::lan::watch(lan, nginx.clone(), shutdown.clone())));
            }
        }

        let mut ticker = tokio::time::interval(MAINTENANCE_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => gateway.maintain().await,
            }
        }

        info!("shutting down");
        // The watcher withdraws the mDNS names (it saw the same cancellation).
        if let Some(watcher) = watcher {
            let _ = watcher.await;
        }
        // nginx first, so no new request arrives at a server that is going away.
        if let Some(nginx) = nginx {
            nginx.stop().await;
        }
        server_stop.cancel();
        if let Err(e) = server.await {
            error!("the auth server task failed: {e}");
        }
        if let Err(e) = gateway.persist().await {
            error!("{e}");
        }
        control.remove_if_ours(&data_dir);
        info!("stopped");
        // Only now may another gateway take the data directory: nginx is gone, the state written.
        drop(instance_lock);
    }
}

/// How this gateway answers `simpleotp ca rotate`: with the managed nginx, the LAN certificates
/// rotate the CA and issue the leaf from the new one, and nginx reloads to present it; with an
/// external nginx (which SimpleOTP gives no certificate) only the stored CA and the CA page
/// change. Either way the running gateway is the one that writes the CA.
fn ca_rotation(gateway: &Gateway, lan: Option<Arc<LanCertificates>>, nginx: Option<Arc<Nginx>>, store: CaStore) -> CaRotation {
    let gateway = gateway.clone();
    Arc::new(move || {
        let (gateway, lan, nginx, store) = (gateway.clone(), lan.clone(), nginx.clone(), store.clone());
        Box::pin(async move {
            let (ca, leaf_reissued) = match &lan {
                Some(lan) => lan.rotate_ca().await.map_err(|e| e.to_string())?,
                None => {
                    let machine = crate::config::MachineNames::this_machine();
                    let ca = tokio::task::spawn_blocking(move || crate::ca::rotate(&store, &machine))
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?;
                    gateway.set_ca_certificate(Some(ca.certificate()));
                    (Arc::new(ca), false)
                }
            };
            if leaf_reissued {
                if let Some(nginx) = &nginx {
                    nginx
                        .reload_certificates()
                        .await
                        .map_err(|e| format!("the CA was rotated, but nginx could not be reloaded to present the new certificate: {e}"))?;
                }
            }
            info!(fingerprint = %ca.fingerprint(), "rotated the local CA at the owner's request");
            Ok(RotatedCa {
                common_name: ca.certificate().common_name().to_string(),
                fingerprint: ca.fingerprint().to_string(),
                leaf_reissued,
            })
        })
    })
}

/// Closes the WebSockets (and other long requests) of sessions that have ended: whenever
/// sessions end, the managed nginx replaces its workers, and the old ones drop what they still
/// hold after `worker_shutdown_timeout` (see `nginx::render_config` for the choice and its cost).
/// Sign-out, revoke, "sign everyone out" and a new secret all count; a new session does not.
/// With an external nginx this cannot happen: that nginx is not ours to reload.
fn cut_upgraded_connections(gateway: &Gateway, nginx: Arc<Nginx>, shutdown: CancellationToken) -> impl std::future::Future<Output = ()> {
    // Subscribed now, not when the task first runs, so no end is missed; sessions that ended
    // between start-up and here (their sockets may be open already) count as one more end.
    let mut ended = gateway.sessions_ended();
    if *ended.borrow() != 0 {
        ended.mark_changed();
    }
    let recycle = move || {
        let nginx = nginx.clone();
        async move {
            if let Err(e) = nginx.recycle_workers().await {
                warn!("cannot make nginx close the connections of ended sessions: {e}");
            }
        }
    };
    after_each_burst(ended, RECYCLE_GATHER, RECYCLE_MIN_INTERVAL, shutdown, recycle)
}

/// Calls `action` once after each burst of changes to `changes`: `gather` after the first change
/// of a burst, and never sooner than `min_interval` after the previous call. Every change is
/// followed by a call that starts after it. Returns when `shutdown` is cancelled or the sender
/// is gone.
async fn after_each_burst<F: std::future::Future<Output = ()>>(
    mut changes: watch::Receiver<u64>,
    gather: Duration,
    min_interval: Duration,
    shutdown: CancellationToken,
    mut action: impl FnMut() -> F,
) {
    loop {
        let burst = async {
            changes.changed().await.ok()?;
            tokio::time::sleep(gather).await;
            Some(())
        };
        tokio::select! {
            seen = burst => if seen.is_none() { return },
            _ = shutdown.cancelled() => return,
        }
        // Marked seen before acting: every change up to here is covered by this call; one that
        // comes while it runs wakes the loop again.
        changes.borrow_and_update();
        action().await;
        tokio::select! {
            _ = tokio::time::sleep(min_interval) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Changes a running gateway without restarting it: new apps, lifetimes or nginx settings.
#[derive(Clone)]
pub struct GatewayHandle {
    gateway: Gateway,
    nginx: Option<Arc<Nginx>>,
    lan: Option<Arc<LanCertificates>>,
    auth_addr: SocketAddr,
    nginx_proof: NginxProof,
}

impl GatewayHandle {
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    pub fn nginx(&self) -> Option<Arc<Nginx>> {
        self.nginx.clone()
    }

    /// Applies `config`: session lifetimes at once; apps through an nginx reload (open WebSockets
    /// and long downloads are cut after `worker_shutdown_timeout`; their apps reconnect). If
    /// nginx rejects the new configuration (or a new port is taken), nginx keeps running with the
    /// old one and the error carries nginx's message. The route prefix and
    /// `auth_listen` cannot change while running (they need a restart).
    pub async fn apply_config(&self, config: &Config) -> Result<(), StartError> {
        config.validate().map_err(StartError::Config)?;
        if &config.route_prefix != self.gateway.route_prefix() {
            return Err(StartError::Config("the route prefix can only change with a restart".into()));
        }
        if let Some(nginx) = &self.nginx {
            // A newly network-facing app (or a new host name) needs its certificate first.
            if let Some(lan) = &self.lan {
                lan.prepare(&config.apps, &config.lan).await?;
            }
            nginx.reload(nginx_config(config, self.auth_addr, &self.nginx_proof), &config.apps).await?;
        }
        self.gateway.set_session_settings(config.session);
        self.gateway.set_apps(&config.apps);
        Ok(())
    }
}

/// Renders the nginx configuration for `apps` (used at start and by reloads).
pub fn nginx_config(config: &Config, auth_addr: SocketAddr, proof: &NginxProof) -> String {
    nginx::render_config(auth_addr, proof, &config.route_prefix, &config.apps)
}

/// nginx's private prefix inside the data directory.
pub fn nginx_layout(data_dir: &std::path::Path) -> NginxLayout {
    NginxLayout::new(data_dir.join("nginx"))
}

async fn start_nginx(config: &Config, data_dir: &std::path::Path, auth_addr: SocketAddr, proof: &NginxProof) -> Result<Nginx, NginxError> {
    let binary = nginx::discover(config.nginx.path.as_deref())?;
    let text = nginx_config(config, auth_addr, proof);
    let apps: &[AppConfig] = &config.apps;
    Nginx::start(binary, nginx_layout(data_dir), text, apps).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A thousand sign-outs at once are one nginx worker replacement; a later one is another;
    /// the loop ends with the gateway.
    ///
    /// On tokio's paused clock, which moves only when every task waits: a loaded machine (this
    /// ran under Wine beside a release build) cannot stretch the burst's 5 ms pauses past the
    /// 300 ms the loop gathers for, so the test asserts the rule, not the machine's speed.
    #[tokio::test(start_paused = true)]
    async fn a_burst_of_ends_is_one_action_and_a_later_end_another() {
        let (tx, rx) = watch::channel(0u64);
        let calls = Arc::new(AtomicU32::new(0));
        let shutdown = CancellationToken::new();
        let counter = calls.clone();
        let task =
            tokio::spawn(after_each_burst(rx, Duration::from_millis(300), Duration::from_millis(200), shutdown.clone(), move || {
                counter.fetch_add(1, Ordering::SeqCst);
                std::future::ready(())
            }));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing ended, nothing to do");

        // A thousand sign-outs spread over about 50 ms (the loop must wait for them, not act on
        // the first).
        for i in 0..1000 {
            tx.send_modify(|n| *n += 1);
            if i % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let started = tokio::time::Instant::now();
        while calls.load(Ordering::SeqCst) == 0 {
            assert!(started.elapsed() < Duration::from_secs(5), "no action after the burst");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one burst, one action");

        tx.send_modify(|n| *n += 1);
        let started = tokio::time::Instant::now();
        while calls.load(Ordering::SeqCst) == 1 {
            assert!(started.elapsed() < Duration::from_secs(5), "no action after the second end");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("the loop stops with the gateway").unwrap();
    }
}
