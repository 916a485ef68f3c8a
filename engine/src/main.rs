//! `simpleotp`: the gateway without a desktop. See `simpleotp --help`.

use std::error::Error;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use simpleotp_engine::app::{Application, NginxMode, Settings};
use simpleotp_engine::authenticator::{AuthenticatorInfo, AuthenticatorName, Authenticators, PendingAuthenticator};
use simpleotp_engine::config::{Account, AppConfig, Config, Issuer, ListenAddr, MachineNames};
use simpleotp_engine::instance::{InstanceLock, LockError};
use simpleotp_engine::secret::SecretStore;
use simpleotp_engine::totp::{unix_now, Totp, TotpSecret};
use simpleotp_engine::{ca, config, control, demo, logfile, nginx, qr, updates};

/// A second factor (TOTP codes from an authenticator app) in front of any local web app,
/// through nginx.
#[derive(Debug, Parser)]
#[command(name = "simpleotp", about, long_about = None, disable_version_flag = true, arg_required_else_help = true)]
struct Cli {
    /// Print the version (and whether a newer release exists).
    #[arg(short = 'V', long)]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new TOTP secret, store it, and show the QR code to scan.
    Init {
        /// Keep the secret in this file (0600) instead of the OS keychain (for servers).
        #[arg(long, value_name = "PATH")]
        secret_file: Option<PathBuf>,
        /// Account name shown in the authenticator app [default: from the config, else user@host].
        #[arg(long)]
        account: Option<Account>,
        /// Issuer shown in the authenticator app [default: from the config, else SimpleOTP].
        #[arg(long)]
        issuer: Option<Issuer>,
        /// Also write the QR code as a PNG image.
        #[arg(long, value_name = "PATH")]
        qr_png: Option<PathBuf>,
        /// Replace an existing secret (the old one stops working in your authenticator app).
        #[arg(long)]
        force: bool,
        /// Config file to read the issuer and account from.
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Run the auth server and nginx in the foreground until Ctrl-C or SIGTERM.
    Serve {
        #[command(flatten)]
        gateway: GatewayArgs,
        /// Do not start nginx; you run it with the output of `simpleotp nginx-snippet`
        /// (needs `auth_listen` in the config).
        #[arg(long)]
        external_nginx: bool,
    },
    /// Print the nginx configuration to paste into your own nginx.
    NginxSnippet {
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// The data directory `simpleotp serve --external-nginx` will use: the snippet carries
        /// the proof kept there [default: the OS data dir].
        #[arg(long, value_name = "PATH")]
        data_dir: Option<PathBuf>,
    },
    /// Try it now: a demo page protected on a local port, with a throw-away secret.
    Demo {
        /// Where the protected demo page listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: ListenAddr,
        /// Also print the current code every 30 s (for trying it without a phone).
        #[arg(long)]
        print_codes: bool,
    },
    /// The local certificate authority for HTTPS on the local network: export it, or replace it.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// Recovery codes: ten one-time codes for signing in when the phone is lost.
    RecoveryCodes {
        #[command(subcommand)]
        command: RecoveryCommand,
    },
    /// Authenticator apps: add another one (a second phone, a password manager), list them,
    /// remove one. Each has its own setup key; a code from any of them signs in.
    Authenticator {
        #[command(subcommand)]
        command: AuthenticatorCommand,
    },
    /// Passkeys: sign in with Touch ID, Windows Hello, a security key or a phone instead of a code.
    Passkey {
        #[command(subcommand)]
        command: PasskeyCommand,
    },
    /// Lift brute-force lockouts in the running gateway that uses this data directory, and print a
    /// one-time sign-in link that works even while every sign-in is locked.
    Unlock {
        #[arg(long, value_name = "PATH")]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum RecoveryCommand {
    /// Make ten new recovery codes and print them (once: only their hashes are kept). The old
    /// ones stop working. Works through the running gateway when there is one.
    New {
        #[command(flatten)]
        gateway: GatewayArgs,
    },
}

#[derive(Debug, Subcommand)]
enum AuthenticatorCommand {
    /// Add an authenticator app: shows a new QR code and setup key, asks for the code the new
    /// app then shows, and adds it once that code is right. Works through the running gateway
    /// when there is one.
    Add {
        /// What to call it, e.g. "Pixel" or "1Password" (up to 40 characters).
        #[arg(long)]
        name: AuthenticatorName,
        #[command(flatten)]
        gateway: GatewayArgs,
    },
    /// List the authenticator apps (name, id, when added); never their setup keys.
    List {
        #[command(flatten)]
        gateway: GatewayArgs,
    },
    /// Remove an authenticator app: its codes stop working at once. The last one stays.
    Remove {
        /// Its name or id, as `simpleotp authenticator list` shows them.
        #[arg(value_name = "NAME_OR_ID")]
        which: String,
        #[command(flatten)]
        gateway: GatewayArgs,
    },
}

#[derive(Debug, Subcommand)]
enum PasskeyCommand {
    /// Print a one-time link (it works once, for 5 minutes) that adds a passkey in the browser
    /// that opens it, and open it in this computer's browser where there is a desktop. Needs the
    /// running gateway.
    Add {
        /// The passkey's name, e.g. "MacBook Touch ID" (the page asks for it too).
        #[arg(long)]
        name: Option<String>,
        /// Only print the link (and the QR code for a phone); open no browser.
        #[arg(long)]
        no_open: bool,
        #[command(flatten)]
        gateway: GatewayArgs,
    },
    /// List the passkeys: name, where each works, when it was added and last used.
    List {
        #[command(flatten)]
        gateway: GatewayArgs,
    },
    /// Remove a passkey (by name or id): it stops working at once.
    Remove {
        #[arg(value_name = "NAME_OR_ID")]
        passkey: String,
        #[command(flatten)]
        gateway: GatewayArgs,
    },
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Write the CA certificate (PEM) to FILE, to trust it on other devices, and print its
    /// SHA-256 fingerprint. Makes the CA first if there is none yet.
    Export {
        /// Where to write the certificate (it is public).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        gateway: GatewayArgs,
    },
    /// Make a new CA in place of the old one (e.g. after the machine was renamed, or if its key
    /// may have leaked). Devices must then trust the new one and should remove the old one.
    Rotate {
        #[command(flatten)]
        gateway: GatewayArgs,
    },
}

/// Where a gateway keeps what it needs: the options `serve` and `ca` share, so that `ca` works on
/// the CA that `serve` with the same options uses.
#[derive(Debug, clap::Args)]
struct GatewayArgs {
    /// The config file [default: config.toml in the OS config dir].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Where sessions, nginx's files, the control file and the CA certificate live [default: the
    /// OS data dir].
    #[arg(long, value_name = "PATH")]
    data_dir: Option<PathBuf>,
    /// Read the secret from this file instead of the OS keychain (the CA key is then kept next to
    /// it).
    #[arg(long, value_name = "PATH")]
    secret_file: Option<PathBuf>,
}

impl GatewayArgs {
    /// The config (read and checked), the data directory and where the secret is.
    fn open(self) -> Result<(Config, PathBuf, SecretStore), Box<dyn Error>> {
        Ok((load_config(self.config)?, data_dir_or_default(self.data_dir)?, secret_store(self.secret_file)))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli.command {
        Some(command) if !cli.version => command,
        _ => {
            runtime().block_on(print_version());
            return ExitCode::SUCCESS;
        }
    };
    let log = init_logging(&command);
    let result = match command {
        Command::Init { secret_file, account, issuer, qr_png, force, config } => init(secret_file, account, issuer, qr_png, force, config),
        Command::Serve { gateway, external_nginx } => runtime().block_on(serve(gateway, external_nginx)),
        Command::NginxSnippet { config, data_dir } => nginx_snippet(config, data_dir),
        Command::Demo { listen, print_codes } => runtime().block_on(run_demo(listen, print_codes)),
        Command::Ca { command: CaCommand::Export { file, gateway } } => ca_export(&file, gateway),
        Command::Ca { command: CaCommand::Rotate { gateway } } => ca_rotate(gateway),
        Command::Unlock { data_dir } => runtime().block_on(unlock(data_dir)),
        Command::RecoveryCodes { command: RecoveryCommand::New { gateway } } => recovery_codes_new(gateway),
        Command::Passkey { command: PasskeyCommand::Add { name, no_open, gateway } } => passkey_add(name, no_open, gateway),
        Command::Passkey { command: PasskeyCommand::List { gateway } } => passkey_list(gateway),
        Command::Passkey { command: PasskeyCommand::Remove { passkey, gateway } } => passkey_remove(&passkey, gateway),
        Command::Authenticator { command: AuthenticatorCommand::Add { name, gateway } } => authenticator_add(name, gateway),
        Command::Authenticator { command: AuthenticatorCommand::List { gateway } } => authenticator_list(gateway),
        Command::Authenticator { command: AuthenticatorCommand::Remove { which, gateway } } => authenticator_remove(&which, gateway),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = simpleotp_engine::error_chain(e.as_ref());
            if log.is_some() {
                // The person at the terminal reads it below; a bug report needs it in the file.
                tracing::error!(target: logfile::FILE_ONLY, "error: {message}");
            }
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

type CliResult = Result<(), Box<dyn Error>>;

/// Logging to stderr (filtered by `SIMPLEOTP_LOG`, default `info`) for every command; `serve`
/// also keeps the log file in its data directory (`logs/simpleotp.log`, see
/// `simpleotp_engine::logfile`), as a gateway that runs for days should. The other commands are
/// short and answer the person who ran them, and the demo's data directory is deleted when it
/// stops, so a file there would help no one. The guard flushes the file when `main` returns.
fn init_logging(command: &Command) -> Option<logfile::Guard> {
    let data_dir = match command {
        Command::Serve { gateway, .. } => data_dir_or_default(gateway.data_dir.clone()).ok(),
        _ => None,
    };
    let Some(data_dir) = data_dir else {
        let _ = logfile::init_stderr();
        return None;
    };
    match logfile::init(&data_dir, "simpleotp serve") {
        Ok(guard) => Some(guard),
        Err(e) => {
            // Logging to stderr is installed all the same.
            tracing::warn!("{e}");
            None
        }
    }
}

/// How long `--version` and `serve`'s start line wait for the release manifest: a person is
/// waiting, and offline must not feel like a hang.
const UPDATE_CHECK_WAIT: Duration = Duration::from_secs(3);

/// `simpleotp --version`: the version, and a second line when a newer release exists (asked at
/// most once a day, see `updates::newer_release`; never with `[updates] check = false` in the
/// default config). The command never updates itself: the package manager or the installer it
/// came with does.
async fn print_version() {
    println!("simpleotp {}", updates::current_version());
    let config = config_path(None).ok().and_then(|path| Config::load(&path).ok()).unwrap_or_default();
    if !config.updates.check {
        return;
    }
    let Ok(url) = updates::ManifestUrl::from_env() else { return };
    let data_dir = config::default_data_dir();
    if let Some(newer) = updates::newer_release(data_dir.as_deref(), &url, UPDATE_CHECK_WAIT).await {
        println!("{}", updates::newer_release_line(&newer, &url));
    }
}

/// `serve`'s own check: the start line says when a newer release exists, and every day after
/// that the log does. Nothing at all with `[updates] check = false`.
fn watch_for_releases(check: bool, data_dir: PathBuf, shutdown: CancellationToken) -> Option<tokio::task::JoinHandle<Option<String>>> {
    if !check {
        return None;
    }
    let url = match updates::ManifestUrl::from_env() {
        Ok(url) => url,
        Err(e) => {
            tracing::warn!("no update checks: {e}");
            return None;
        }
    };
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut told = updates::newer_release(Some(&data_dir), &url, UPDATE_CHECK_WAIT * 10).await;
        let _ = first_tx.send(told.as_ref().map(|newer| updates::newer_release_line(newer, &url)));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(updates::CHECK_INTERVAL) => {}
            }
            let newer = updates::newer_release(Some(&data_dir), &url, UPDATE_CHECK_WAIT * 10).await;
            if let Some(version) = newer.as_ref().filter(|v| told.as_ref() != Some(*v)) {
                tracing::info!("{}", updates::newer_release_line(version, &url));
                told = newer;
            }
        }
    });
    Some(tokio::spawn(async move { first_rx.await.ok().flatten() }))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("cannot start the tokio runtime")
}

fn secret_store(secret_file: Option<PathBuf>) -> SecretStore {
    secret_file.map(SecretStore::file).unwrap_or_else(SecretStore::keychain)
}

fn config_path(path: Option<PathBuf>) -> Result<PathBuf, Box<dyn Error>> {
    path.or_else(Config::default_path).ok_or_else(|| "cannot find the OS config directory (is $HOME set?); pass --config PATH".into())
}

fn data_dir_or_default(path: Option<PathBuf>) -> Result<PathBuf, Box<dyn Error>> {
    path.or_else(config::default_data_dir).ok_or_else(|| "cannot find the OS data directory (is $HOME set?); pass --data-dir PATH".into())
}

fn load_config(path: Option<PathBuf>) -> Result<Config, Box<dyn Error>> {
    let path = config_path(path)?;
    let config = Config::load(&path)?;
    config.validate().map_err(|message| format!("invalid config file {}: {message}", path.display()))?;
    Ok(config)
}

fn init(
    secret_file: Option<PathBuf>,
    account: Option<Account>,
    issuer: Option<Issuer>,
    qr_png: Option<PathBuf>,
    force: bool,
    config: Option<PathBuf>,
) -> CliResult {
    let config = load_config(config)?;
    let store = secret_store(secret_file);
    let secret = TotpSecret::generate();
    let issuer = issuer.unwrap_or_else(|| config.issuer());
    let account = account.unwrap_or_else(|| config.account());
    let uri = Totp::new(&secret, &issuer, &account).otpauth_uri();
    // Made before the secret is stored, so a code that cannot be drawn leaves nothing behind.
    let qr_text = qr::terminal(&uri)?;
    store.store(&secret, force)?;
    println!("A new TOTP secret is stored in {}.", store.describe());
    println!();
    println!("Scan this QR code with your authenticator app (Google Authenticator, Aegis, 1Password, ...):");
    println!();
    println!("{qr_text}");
    println!("Or enter this key by hand: {}", secret.to_grouped_base32());
    println!("(issuer {issuer}, account {account}, 6 digits, every 30 seconds)");
    println!();
    println!("otpauth URI: {uri}");
    if let Some(path) = qr_png {
        qr::write_png(&uri, &path, 8)?;
        println!("QR code written to {}", path.display());
    }
    println!();
    println!("Keep the key private: whoever has it can make codes. Next: `simpleotp serve`.");
    Ok(())
}

async fn serve(gateway: GatewayArgs, external_nginx: bool) -> CliResult {
    let (config, data_dir, secret) = gateway.open()?;
    if config.apps.is_empty() {
        eprintln!("note: the config has no [[app]] yet, so nothing is protected. Add one, e.g.\n\n[[app]]\nname = \"Jupyter\"\nupstream = \"http://127.0.0.1:8888\"\nlisten = \"127.0.0.1:8081\"\n");
    }
    let mut settings = Settings::new(config, data_dir, secret);
    if external_nginx {
        settings.nginx = NginxMode::External;
    }
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    // Asked while the gateway starts, so the start line can say it without making it wait.
    let releases = watch_for_releases(settings.config.updates.check, settings.data_dir.clone(), shutdown.clone());
    let app = Application::build(settings).await?;
    let newer = match releases {
        Some(first) => tokio::time::timeout(UPDATE_CHECK_WAIT, first).await.ok().and_then(Result::ok).flatten(),
        None => None,
    };
    match newer {
        Some(line) => println!("SimpleOTP {} is running. {line}", updates::current_version()),
        None => println!("SimpleOTP {} is running.", updates::current_version()),
    }
    for (name, urls) in app.app_urls() {
        println!("{name}: {}", urls.join("  "));
    }
    app.run_until_stopped(shutdown).await;
    Ok(())
}

fn nginx_snippet(config: Option<PathBuf>, data_dir: Option<PathBuf>) -> CliResult {
    let config = load_config(config)?;
    let data_dir = data_dir_or_default(data_dir)?;
    let proof = simpleotp_engine::app::external_nginx_proof(&data_dir)
        .map_err(|e| format!("cannot read or create nginx's proof in {}: {e}", data_dir.display()))?;
    let auth = match config.auth_listen {
        Some(addr) => addr.to_string(),
        None => {
            eprintln!("note: no `auth_listen` in the config; the snippet uses 127.0.0.1:9090. Set `auth_listen = \"127.0.0.1:9090\"` and run `simpleotp serve --external-nginx`.");
            "127.0.0.1:9090".to_string()
        }
    };
    print!("{}", nginx::render_snippet(&config.route_prefix, &auth, &proof, &config.apps));
    Ok(())
}

async fn run_demo(listen: ListenAddr, print_codes: bool) -> CliResult {
    let dir = tempfile::Builder::new().prefix("simpleotp-demo-").tempdir()?;
    let secret_path = dir.path().join("secret");
    let store = SecretStore::file(&secret_path);
    let secret = TotpSecret::generate();
    store.store(&secret, false)?;

    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    let upstream = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let upstream_addr = upstream.local_addr()?;
    let mut config = Config { issuer: Some(Issuer::parse("SimpleOTP demo")?), ..Config::default() };
    tokio::spawn(demo::serve_demo_app(upstream, config.route_prefix.clone(), shutdown.clone()));

    let listen = free_or_fallback(listen);
    config.apps.push(AppConfig::new("Demo".parse()?, format!("http://{upstream_addr}/").parse()?, listen));
    let totp = Totp::new(&secret, &config.issuer(), &config.account());
    let app = Application::build(Settings::new(config, dir.path().join("data"), store)).await?;
    let url = app.protected_urls().remove(0).1;

    println!("SimpleOTP demo: a throw-away secret (deleted when you stop the demo).\n");
    println!("{}", qr::terminal(&totp.otpauth_uri())?);
    println!("Scan the QR code with your authenticator app, or enter the key {}.", secret.to_grouped_base32());
    println!("Then open {url} and type the code the app shows. Ctrl-C stops the demo.");
    drop(secret);
    if print_codes {
        tokio::spawn(print_codes_forever(totp, shutdown.clone()));
    }
    app.run_until_stopped(shutdown).await;
    drop(dir);
    Ok(())
}

/// The demo should start even when 8080 is taken: it then takes any free port (and says so).
fn free_or_fallback(listen: ListenAddr) -> ListenAddr {
    let wanted = listen.socket_addr();
    if std::net::TcpListener::bind(wanted).is_ok() {
        return listen;
    }
    let any = SocketAddr::new(wanted.ip(), 0);
    match std::net::TcpListener::bind(any).and_then(|l| l.local_addr()) {
        Ok(addr) => {
            eprintln!("note: {wanted} is in use; the demo listens on {addr} instead");
            ListenAddr(addr)
        }
        Err(_) => listen, // let the gateway report the port in use properly
    }
}

async fn print_codes_forever(totp: Totp, shutdown: CancellationToken) {
    let mut last_step = None;
    loop {
        let now = unix_now();
        let step = Totp::step_at(now);
        if last_step != Some(step) {
            println!("current demo code: {}", totp.code_at(now));
            last_step = Some(step);
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

fn ca_export(file: &Path, gateway: GatewayArgs) -> CliResult {
    let (_, data_dir, secret) = gateway.open()?;
    let store = ca::CaStore::beside(&secret, &data_dir);
    // Making (or renewing) the CA is a write: only while no gateway holds the data directory.
    // A running one has its CA already, and the stored certificate is what it uses.
    let certificate = match InstanceLock::acquire(&data_dir, "simpleotp ca export") {
        Ok(_lock) => ca::load_or_create(&store, &MachineNames::this_machine())?.certificate(),
        Err(LockError::Held { .. }) => {
            store.stored_certificate()?.ok_or("the running gateway has not made its CA yet; try again in a moment")?
        }
        Err(e) => return Err(e.into()),
    };
    std::fs::write(file, certificate.pem()).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    println!("Wrote the SimpleOTP CA certificate (PEM) to {}.", file.display());
    println!("SHA-256 fingerprint: {}", certificate.fingerprint());
    println!("SHA-1 thumbprint (what Windows shows): {}", certificate.sha1_thumbprint());
    println!();
    println!("It can only vouch for this machine's websites (its names and private network addresses).");
    println!("Trust it on each device that opens your apps over HTTPS. Before you do, compare the fingerprint");
    println!("the DEVICE shows for the certificate it downloaded with the one above (never with a web page):");
    println!("  iPhone/iPad: Settings > General > VPN & Device Management > the profile > More Details;");
    println!("  Android: Settings > Security > Encryption & credentials > Trusted credentials > User;");
    println!("  macOS: Keychain Access > the certificate > SHA-256 Fingerprint;");
    println!("  Windows: the certificate > Details > Thumbprint (SHA-1).");
    println!("(Phones: open /_simpleotp/ca on any protected app's address.)");
    Ok(())
}

/// `simpleotp ca rotate`. A gateway running on this data directory rotates its own CA (it must:
/// it holds the key in memory, and two writers of one CA could leave a key and a certificate
/// that do not match); with none running, the stored CA is rotated here.
fn recovery_codes_new(gateway: GatewayArgs) -> CliResult {
    let (_, data_dir, _) = gateway.open()?;
    // As `ca rotate`: a running gateway keeps the set in memory and must make it itself; without
    // one, the state file is changed here, holding the lock so that no gateway starts meanwhile.
    let codes: Vec<String> = match reach(&data_dir, "simpleotp recovery-codes new")? {
        Reach::Direct(_lock) => {
            let file = simpleotp_engine::state::StateFile::in_dir(&data_dir);
            let loaded = file.load(unix_now());
            if let Some(warning) = loaded.warning {
                eprintln!("{warning}");
            }
            let (set, codes) = simpleotp_engine::recovery::RecoveryCodes::generate(unix_now());
            file.save(&simpleotp_engine::state::PersistedState { recovery: Some(set), ..loaded.state })?;
            codes.iter().map(|c| c.expose().to_string()).collect()
        }
        Reach::Gateway(holder) => runtime()
            .block_on(control::new_recovery_codes(&data_dir))
            .map_err(|e| format!("no new recovery codes: the gateway ({holder}) using {} did not make them: {e}", data_dir.display()))?,
    };
    println!("Your new recovery codes (the old ones no longer work). Each works once, on the login page");
    println!("under \"Use a recovery code\". Keep them somewhere safe, away from your phone; they are not");
    println!("shown again:");
    println!();
    for pair in codes.chunks(2) {
        println!("  {}", pair.join("    "));
    }
    Ok(())
}

/// Whether a command that changes what a gateway holds (`authenticator …`, `passkey list|remove`,
/// `recovery-codes new`) goes through the running gateway (which holds it in memory and must
/// change it itself) or, holding the data directory's lock so that none starts meanwhile, works
/// on the secret store or the state file directly.
enum Reach {
    Gateway(String),
    Direct(#[allow(dead_code)] InstanceLock),
}

fn reach(data_dir: &Path, program: &'static str) -> Result<Reach, Box<dyn Error>> {
    match InstanceLock::acquire(data_dir, program) {
        Ok(lock) => Ok(Reach::Direct(lock)),
        Err(LockError::Held { holder, .. }) => Ok(Reach::Gateway(holder)),
        Err(e) => Err(e.into()),
    }
}

/// The stored set, for the commands that work without a gateway.
fn stored_authenticators(store: &SecretStore) -> Result<Authenticators, Box<dyn Error>> {
    match store.load_authenticators() {
        Ok(set) => Ok(set),
        Err(simpleotp_engine::secret::SecretError::NotFound { location }) => Err(format!(
            "no authenticator is set up yet in {location}: run `simpleotp init` first (with the same --secret-file, if you use one)"
        )
        .into()),
        Err(e) => Err(e.into()),
    }
}

/// `simpleotp authenticator add --name NAME`: a new secret shown as a QR code and a setup key; a
/// code from the new app (read from stdin, so it can be piped) confirms it through the one rule
/// for adding (`PendingAuthenticator::confirm`), then it is added, through the running gateway
/// when there is one.
fn authenticator_add(name: AuthenticatorName, gateway: GatewayArgs) -> CliResult {
    let (config, data_dir, store) = gateway.open()?;
    let (issuer, account) = (config.issuer(), config.account());
    let reach = reach(&data_dir, "simpleotp authenticator add")?;
    // The name is checked before anything is shown: a taken name would waste a scan.
    let existing: Vec<AuthenticatorInfo> = match &reach {
        Reach::Gateway(holder) => runtime()
            .block_on(control::authenticators(&data_dir))
            .map_err(|e| format!("the gateway ({holder}) using {} did not answer: {e}", data_dir.display()))?,
        Reach::Direct(_) => stored_authenticators(&store)?.infos(),
    };
    if existing.iter().any(|a| a.name.to_lowercase() == name.as_str().to_lowercase()) {
        return Err(format!(
            "an authenticator named {:?} exists already; choose another name (`simpleotp authenticator list`)",
            name.as_str()
        )
        .into());
    }
    if existing.len() >= simpleotp_engine::authenticator::MAX_AUTHENTICATORS {
        return Err(simpleotp_engine::authenticator::AuthenticatorError::TooMany.into());
    }
    let pending = PendingAuthenticator::new(name.clone());
    let uri = pending.totp(&issuer, &account).otpauth_uri();
    println!("Scan this QR code with the new authenticator app ({name}):");
    println!();
    println!("{}", qr::terminal(&uri)?);
    println!("Or enter this setup key by hand: {}", pending.secret().to_grouped_base32());
    println!("(issuer {issuer}, account {account}, 6 digits, every 30 seconds)");
    println!();
    let mut pending = pending;
    let confirmed = loop {
        print!("Type the code the new app shows: ");
        std::io::Write::flush(&mut std::io::stdout())?;
        let mut line = zeroize::Zeroizing::new(String::new());
        if std::io::stdin().read_line(&mut line)? == 0 {
            return Err("no code was typed: nothing was added".into());
        }
        let code = zeroize::Zeroizing::new(line.trim().to_string());
        // The same rule the gateway applies (which checks it again): here, so that a mistyped
        // code can be typed again.
        match pending.clone().confirm(&code, unix_now(), &issuer, &account) {
            Ok(confirmed) => break (confirmed, code),
            Err((again, reason)) => {
                println!(
                    "{}",
                    match reason {
                        simpleotp_engine::totp::CodeRejected::Malformed => "A code is six digits. Try again (Ctrl-C stops).",
                        _ => "That is not the new app's code. Check that you scanned this QR code, and type the code it shows now (Ctrl-C stops).",
                    }
                );
                pending = again;
            }
        }
    };
    let ((added, step), code) = confirmed;
    let info = match reach {
        Reach::Gateway(holder) => runtime()
            .block_on(control::add_authenticator(&data_dir, &added.name, &added.secret, &code))
            .map_err(|e| format!("the authenticator was not added: the gateway ({holder}) using {} did not: {e}", data_dir.display()))?,
        Reach::Direct(_lock) => {
            let set = stored_authenticators(&store)?.with_added(added)?;
            let info = set.iter().last().expect("just added").info();
            store.store_authenticators(&set).map_err(|e| format!("the authenticator was not added (nothing changed): {e}"))?;
            // The confirming code is its replay guard, as the gateway does it.
            let file = simpleotp_engine::state::StateFile::in_dir(&data_dir);
            if data_dir.is_dir() {
                let loaded = file.load(unix_now());
                let mut state = loaded.state;
                state.last_totp_steps.insert(info.id.clone(), step);
                if let Err(e) = file.save(&state) {
                    eprintln!("note: {e}");
                }
            }
            info
        }
    };
    println!();
    println!("Added {:?} (id {}). Its codes sign in from now on, like those of your other authenticator apps.", info.name, info.id);
    Ok(())
}

/// `simpleotp authenticator list`.
fn authenticator_list(gateway: GatewayArgs) -> CliResult {
    let (_, data_dir, store) = gateway.open()?;
    let list = match reach(&data_dir, "simpleotp authenticator list")? {
        Reach::Gateway(holder) => runtime()
            .block_on(control::authenticators(&data_dir))
            .map_err(|e| format!("the gateway ({holder}) using {} did not answer: {e}", data_dir.display()))?,
        Reach::Direct(_lock) => {
            let steps = if data_dir.is_dir() {
                simpleotp_engine::state::StateFile::in_dir(&data_dir).load(unix_now()).state.last_totp_steps
            } else {
                Default::default()
            };
            stored_authenticators(&store)?
                .infos()
                .into_iter()
                .map(|a| AuthenticatorInfo { last_used_at: steps.get(&a.id).map(|s| s * 30), ..a })
                .collect()
        }
    };
    let width = list.iter().map(|a| a.name.chars().count()).max().unwrap_or(4).max(4);
    println!("{:width$}  {:8}  {:20}  LAST CODE", "NAME", "ID", "ADDED");
    for a in &list {
        println!(
            "{:width$}  {:8}  {:20}  {}",
            a.name,
            a.id,
            a.added_at.map(utc_time).unwrap_or_else(|| "at setup".into()),
            a.last_used_at.map(utc_time).unwrap_or_else(|| "-".into())
        );
    }
    Ok(())
}

/// `simpleotp authenticator remove NAME_OR_ID`.
fn authenticator_remove(which: &str, gateway: GatewayArgs) -> CliResult {
    let (_, data_dir, store) = gateway.open()?;
    let removed = match reach(&data_dir, "simpleotp authenticator remove")? {
        Reach::Gateway(holder) => runtime()
            .block_on(control::remove_authenticator(&data_dir, which))
            .map_err(|e| format!("nothing was removed: the gateway ({holder}) using {} did not: {e}", data_dir.display()))?,
        Reach::Direct(_lock) => {
            let (set, removed) = stored_authenticators(&store)?.without(which)?;
            store.store_authenticators(&set).map_err(|e| format!("nothing was removed: {e}"))?;
            removed.info()
        }
    };
    println!("Removed {:?} (id {}): its codes no longer sign in. You can delete its entry in that app.", removed.name, removed.id);
    Ok(())
}

/// `2026-05-01 12:00 UTC`.
fn utc_time(unix: u64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix.min(i64::MAX as u64) as i64) {
        Ok(t) => format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute()),
        Err(_) => "?".into(),
    }
}

/// `simpleotp passkey add`: the running gateway makes the one-time link (it keeps the link's
/// hash in memory and checks the passkey the browser makes).
fn passkey_add(name: Option<String>, no_open: bool, gateway: GatewayArgs) -> CliResult {
    let name = name.map(|n| simpleotp_engine::passkey::PasskeyName::parse(&n)).transpose()?;
    let (_, data_dir, _) = gateway.open()?;
    let (link, control) = runtime().block_on(control::passkey_link(&data_dir)).map_err(|e| format!("no passkey link: {e}"))?;
    let mut path = link.add_path.clone();
    if let Some(name) = &name {
        path.push_str("&name=");
        path.extend(form_urlencoded::byte_serialize(name.as_str().as_bytes()));
    }
    // Passkeys work at a name: `localhost` here (the control file's app URLs say it for apps on
    // this computer).
    let here: Vec<&String> = control.app_urls.iter().filter(|u| u.starts_with("http://localhost:")).collect();
    println!("Open this link to add a passkey (it works once, within {} minutes):", link.expires_in_secs / 60);
    for url in &here {
        println!("  {url}{path}");
    }
    if here.is_empty() {
        println!("  <an app's address by name, e.g. http://localhost:PORT>{path}");
    }
    println!("A passkey made there works on this computer (at localhost) only.");
    if let Some(first) = control.other_device_urls.first() {
        println!("For a phone or another device (its passkey works at the network name), open instead:");
        for url in &control.other_device_urls {
            println!("  {url}{path}");
        }
        println!("{}", qr::terminal(&format!("{first}{path}")).map_err(|e| e.to_string())?);
    }
    if let (false, true, Some(url)) = (no_open, has_desktop(), here.first()) {
        match open::that_detached(format!("{url}{path}")) {
            Ok(()) => println!("Opened it in your browser."),
            Err(e) => println!("(Could not open a browser: {e}. Open the link yourself.)"),
        }
    }
    Ok(())
}

/// Whether a browser can be opened here: always on Windows and macOS, on Linux only in a
/// graphical session (not over SSH on a server).
fn has_desktop() -> bool {
    cfg!(any(windows, target_os = "macos")) || std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
}

/// The passkeys from the running gateway, or from the state file when none runs (holding the
/// data directory's lock meanwhile, as `recovery-codes new` does).
fn with_passkeys<T>(
    gateway: GatewayArgs,
    what: &'static str,
    offline: impl FnOnce(&mut simpleotp_engine::passkey::PasskeyRegistry) -> Result<T, Box<dyn Error>>,
    online: impl FnOnce(&Path) -> Result<T, control::ControlError>,
) -> Result<T, Box<dyn Error>> {
    let (_, data_dir, _) = gateway.open()?;
    match reach(&data_dir, what)? {
        Reach::Direct(_lock) => {
            let file = simpleotp_engine::state::StateFile::in_dir(&data_dir);
            let loaded = file.load(unix_now());
            if let Some(warning) = loaded.warning {
                eprintln!("{warning}");
            }
            let mut registry = simpleotp_engine::passkey::PasskeyRegistry::restore(loaded.state.passkeys.as_ref());
            let before = registry.snapshot();
            let answer = offline(&mut registry)?;
            if registry.snapshot() != before {
                file.save(&simpleotp_engine::state::PersistedState { passkeys: registry.snapshot(), ..loaded.state })?;
            }
            Ok(answer)
        }
        Reach::Gateway(holder) => {
            online(&data_dir).map_err(|e| format!("the gateway ({holder}) using {} did not answer: {e}", data_dir.display()).into())
        }
    }
}

fn passkey_list(gateway: GatewayArgs) -> CliResult {
    let passkeys =
        with_passkeys(gateway, "simpleotp passkey list", |registry| Ok(registry.list()), |dir| runtime().block_on(control::passkeys(dir)))?;
    if passkeys.is_empty() {
        println!("No passkeys yet. `simpleotp passkey add` makes a link that adds one.");
        return Ok(());
    }
    let now = unix_now();
    let ago = |at: u64| format!("{} ago", simpleotp_engine::server::format_span(Duration::from_secs(now.saturating_sub(at))));
    for passkey in passkeys {
        let used = passkey.last_used_at.map_or_else(|| "never used".to_owned(), |at| format!("last used {}", ago(at)));
        println!("{}  (works at {}; added {}, {used})  id {}", passkey.name, passkey.rp_id, ago(passkey.created_at), passkey.id);
    }
    Ok(())
}

fn passkey_remove(passkey: &str, gateway: GatewayArgs) -> CliResult {
    let removed = with_passkeys(
        gateway,
        "simpleotp passkey remove",
        |registry| registry.remove(passkey).map_err(|e| e.to_string().into()),
        |dir| runtime().block_on(control::remove_passkey(dir, passkey)),
    )?;
    println!("Removed the passkey {} (it worked at {}); it no longer signs anyone in.", removed.name, removed.rp_id);
    Ok(())
}

fn ca_rotate(gateway: GatewayArgs) -> CliResult {
    let (_, data_dir, secret) = gateway.open()?;
    let store = ca::CaStore::beside(&secret, &data_dir);
    let old = store.stored_certificate().ok().flatten();
    // Whether a gateway runs is what its lock says (a control file can be stale). A running one
    // keeps the CA's key in memory, so it must rotate it itself: it is asked to, through its
    // control token. Without one, the stored CA is rotated here, holding the lock so that no
    // gateway starts meanwhile.
    let (common_name, fingerprint, by_gateway) = match InstanceLock::acquire(&data_dir, "simpleotp ca rotate") {
        Ok(_lock) => {
            let authority = ca::rotate(&store, &MachineNames::this_machine())?;
            (authority.certificate().common_name().to_string(), authority.fingerprint().to_string(), false)
        }
        Err(LockError::Held { holder, .. }) => match runtime().block_on(control::rotate_ca(&data_dir)) {
            Ok(rotated) => {
                println!("The running gateway ({holder}) made a new SimpleOTP CA and now presents certificates from it.");
                (rotated.common_name, rotated.fingerprint, true)
            }
            // Changing the CA under a gateway that did not rotate would leave it issuing with
            // the old key: nothing is changed.
            Err(e) => {
                return Err(format!("the CA was not rotated: the gateway ({holder}) using {} did not: {e}", data_dir.display()).into())
            }
        },
        Err(e) => return Err(e.into()),
    };
    println!("Made a new SimpleOTP CA: {common_name}");
    println!("SHA-256 fingerprint: {fingerprint}");
    println!();
    match old {
        Some(old) => {
            println!("The old CA ({}, fingerprint {}) is gone: its key was replaced,", old.common_name(), old.fingerprint());
            println!("so it can never sign again. On every device that trusted it:");
        }
        None => println!("On every device that trusted an earlier SimpleOTP CA:"),
    }
    println!("  1. Remove the old one (iOS: Settings > General > VPN & Device Management; Android: Settings >");
    println!("     Encryption & credentials > User credentials; Windows: certmgr.msc > Trusted Root Certification");
    println!("     Authorities; macOS: Keychain Access). A device that still trusts it accepts whatever the old key");
    println!("     signed (for this machine's names and private addresses only) until that expires.");
    println!("  2. Trust the new one: open /_simpleotp/ca on a protected app's address, or `simpleotp ca export FILE`.");
    println!("On this computer, the SimpleOTP app's \"Trust on this computer\" swaps the old one for the new one.");
    if !by_gateway {
        println!("The next `simpleotp serve` (or the SimpleOTP app) issues certificates from the new CA.");
    }
    Ok(())
}

async fn unlock(data_dir: Option<PathBuf>) -> CliResult {
    let data_dir = data_dir_or_default(data_dir)?;
    let (link, control) = control::unlock(Path::new(&data_dir)).await?;
    println!("Lockouts of single addresses are lifted. The shared budget of attempts is not refilled");
    println!("(that would give whoever is guessing more tries), so to sign in now, open this link");
    println!("in your browser within {} minutes; it works once, for up to {} codes:", link.expires_in_secs / 60, link.attempts);
    if control.app_urls.is_empty() {
        println!("  <your app's address>{}", link.login_path);
    }
    for url in &control.app_urls {
        println!("  {url}{}", link.login_path);
    }
    // A phone cannot open this computer's loopback address: it gets the network address, and a
    // QR code to scan rather than a link to type.
    if let Some(first) = control.other_device_urls.first() {
        println!("On a phone or another device:");
        for url in &control.other_device_urls {
            println!("  {url}{}", link.login_path);
        }
        let qr = simpleotp_engine::qr::terminal(&format!("{first}{}", link.login_path)).map_err(|e| e.to_string())?;
        println!("{qr}");
    }
    println!("Running `simpleotp unlock` again replaces the link. Keep it to yourself.");
    Ok(())
}

/// Ctrl-C everywhere; SIGTERM too on Unix (systemd, `kill`, a tray app quitting).
///
/// The handlers are installed before this returns, so a signal that arrives while the gateway
/// is still starting is not lost (and does not kill the process before nginx can be stopped).
fn cancel_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("cannot listen for SIGTERM");
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::spawn(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("stop requested");
        shutdown.cancel();
    });
}
