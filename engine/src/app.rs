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
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{AppConfig, Config};
use crate::control::ControlFile;
use crate::gateway::{Gateway, GatewayParts};
use crate::limiter::LimiterSettings;
use crate::nginx::{self, Nginx, NginxError, NginxLayout};
use crate::secret::{SecretError, SecretStore};
use crate::state::StateFile;
use crate::totp::{unix_now, Totp};

/// How often expired sessions are purged and changed sessions written to disk. Logins and
/// `last seen` updates only mark the state dirty; this loop writes it, off the request path.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(5);

/// Who runs nginx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NginxMode {
    /// The gateway starts and supervises its own nginx (the default).
    Managed,
    /// The user runs nginx with the output of `simpleotp nginx-snippet`; the auth server must
    /// then listen on the fixed `auth_listen` address from the config.
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
}

impl Settings {
    pub fn new(config: Config, data_dir: PathBuf, secret: SecretStore) -> Settings {
        Settings { config, data_dir, secret, nginx: NginxMode::Managed, limiter: LimiterSettings::default() }
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
    #[error("another SimpleOTP gateway (pid {pid}) is already running with the data directory {}; stop it first, or use another --data-dir", .data_dir.display())]
    AlreadyRunning { data_dir: PathBuf, pid: u32 },
    #[error("no TOTP secret is stored in {location}. Create one first with `simpleotp init` (with the same --secret-file, if you use one).")]
    NoSecret { location: String },
    #[error(transparent)]
    Secret(SecretError),
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
}

/// A built gateway, ready to run.
pub struct Application {
    gateway: Gateway,
    listener: TcpListener,
    auth_addr: SocketAddr,
    nginx: Option<Arc<Nginx>>,
    config: Config,
    data_dir: PathBuf,
    control: ControlFile,
    warnings: Vec<String>,
}

impl Application {
    /// Binds the auth server, loads the state and the secret, and starts nginx. When this
    /// returns, protected apps already answer (with the login page until someone signs in).
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        let Settings { config, data_dir, secret, nginx: mode, limiter } = settings;
        config.validate().map_err(StartError::Config)?;
        crate::fsutil::create_private_dir(&data_dir).map_err(|source| StartError::DataDir { path: data_dir.clone(), source })?;

        // One gateway per data directory: two would fight over the state file and nginx prefix.
        if let Ok(existing) = ControlFile::read(&data_dir) {
            if existing.pid != std::process::id() && existing.is_alive().await {
                return Err(StartError::AlreadyRunning { data_dir, pid: existing.pid });
            }
        }

        // The keychain may block on D-Bus or an unlock prompt: keep it off the async threads.
        let store = secret.clone();
        let secret = tokio::task::spawn_blocking(move || store.load()).await.expect("secret loading does not panic");
        let secret = match secret {
            Ok(secret) => secret,
            Err(SecretError::NotFound { location }) => return Err(StartError::NoSecret { location }),
            Err(e) => return Err(StartError::Secret(e)),
        };
        let totp = Totp::new(&secret, &config.issuer(), &config.account());
        drop(secret);

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

        let control = ControlFile {
            auth_addr,
            route_prefix: config.route_prefix.clone(),
            token: crate::session::SessionToken::generate().expose().to_string(),
            pid: std::process::id(),
            app_urls: config.apps.iter().map(|app| app.protected_url().trim_end_matches('/').to_string()).collect(),
        };
        let gateway = Gateway::new(GatewayParts {
            route_prefix: config.route_prefix.clone(),
            totp,
            session_settings: config.session,
            limiter_settings: limiter,
            state_file,
            persisted: loaded.state,
            control_token: control.token.clone(),
        });

        let nginx = match mode {
            NginxMode::Managed => Some(Arc::new(start_nginx(&config, &data_dir, auth_addr).await?)),
            NginxMode::External => None,
        };
        control.write(&data_dir).map_err(|source| StartError::DataDir { path: data_dir.clone(), source })?;
        info!(auth = %auth_addr, data_dir = %data_dir.display(), apps = config.apps.len(), "gateway started");
        Ok(Application { gateway, listener, auth_addr, nginx, config, data_dir, control, warnings })
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
            data_dir: self.data_dir.clone(),
            auth_addr: self.auth_addr,
        }
    }

    /// Each protected app and the URL to open it.
    pub fn protected_urls(&self) -> Vec<(String, String)> {
        self.config.apps.iter().map(|app| (app.name.to_string(), app.protected_url())).collect()
    }

    /// Serves until `shutdown` is cancelled, then stops nginx gracefully, lets in-flight
    /// requests finish and writes the state one last time.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) {
        let Application { gateway, listener, nginx, data_dir, control, .. } = self;
        let server_stop = CancellationToken::new();
        let server = tokio::spawn(crate::server::serve(listener, gateway.clone(), server_stop.clone()));

        let mut ticker = tokio::time::interval(MAINTENANCE_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => gateway.maintain().await,
            }
        }

        info!("shutting down");
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
    }
}

/// Changes a running gateway without restarting it: new apps, lifetimes or nginx settings.
#[derive(Clone)]
pub struct GatewayHandle {
    gateway: Gateway,
    nginx: Option<Arc<Nginx>>,
    data_dir: PathBuf,
    auth_addr: SocketAddr,
}

impl GatewayHandle {
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    pub fn nginx(&self) -> Option<Arc<Nginx>> {
        self.nginx.clone()
    }

    /// Applies `config`: session lifetimes at once; apps through an nginx reload that keeps open
    /// connections. If nginx rejects the new configuration (or a new port is taken), nginx keeps
    /// running with the old one and the error carries nginx's message. The route prefix and
    /// `auth_listen` cannot change while running (they need a restart).
    pub async fn apply_config(&self, config: &Config) -> Result<(), StartError> {
        config.validate().map_err(StartError::Config)?;
        if &config.route_prefix != self.gateway.route_prefix() {
            return Err(StartError::Config("the route prefix can only change with a restart".into()));
        }
        if let Some(nginx) = &self.nginx {
            nginx.reload(nginx_config(config, &self.data_dir, self.auth_addr), &config.apps).await?;
        }
        self.gateway.set_session_settings(config.session);
        Ok(())
    }
}

/// Renders the nginx configuration for `apps` (used at start and by reloads).
pub fn nginx_config(config: &Config, data_dir: &std::path::Path, auth_addr: SocketAddr) -> String {
    nginx::render_config(&nginx_layout(data_dir), auth_addr, &config.route_prefix, &config.apps)
}

/// nginx's private prefix inside the data directory.
pub fn nginx_layout(data_dir: &std::path::Path) -> NginxLayout {
    NginxLayout::new(data_dir.join("nginx"))
}

async fn start_nginx(config: &Config, data_dir: &std::path::Path, auth_addr: SocketAddr) -> Result<Nginx, NginxError> {
    let binary = nginx::discover(config.nginx.path.as_deref())?;
    let text = nginx_config(config, data_dir, auth_addr);
    let apps: &[AppConfig] = &config.apps;
    Nginx::start(binary, nginx_layout(data_dir), text, apps).await
}
