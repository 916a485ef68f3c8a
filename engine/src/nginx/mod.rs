//! Finding nginx, generating its configuration, and running it as a supervised child process.
//!
//! SimpleOTP does not implement a reverse proxy itself: nginx does the proxying (uploads,
//! WebSockets, keepalive, HTTP edge cases) and asks our auth server about every request through
//! `auth_request`. This module owns that nginx:
//!
//! * [`discover`] finds the binary (configured path, bundled copy, `PATH`, usual places).
//! * [`render_config`] writes the whole nginx.conf for a private prefix directory
//!   ([`NginxLayout`]); [`render_snippet`] gives the same protection as blocks to paste into
//!   one's own nginx.
//! * [`test_config`] runs `nginx -t`, so a bad configuration is reported in nginx's own words
//!   before it can replace a working one.
//! * [`Nginx`] starts nginx as a contained child (it dies with us, even on SIGKILL), restarts it
//!   with backoff when it crashes, reloads it gracefully, replaces its workers when sessions end
//!   (which closes their WebSockets), and stops it.
//!
//! Requires nginx 1.19.5 or newer (for the `-e` option, which keeps even the very first log line
//! inside our prefix) built with the `auth_request` module, as most distribution packages are.

// The files, each depending only on those listed before it (no import circles):
// `layout` (where nginx's files are), `platform` (the OS-specific parts: accounts, process
// containment, signals), `render` (the config text), `check` (`nginx -t`, free ports),
// `upstream_ca` (the roots https upstreams are checked against), `launcher` (the thread that
// forks nginx), `process` (one running nginx), `supervisor` (restarts, reloads, stop).
mod check;
mod discover;
mod launcher;
mod layout;
mod platform;
mod process;
mod render;
mod supervisor;
mod upstream_ca;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use check::{check_ports, test_config};
pub use discover::discover;
pub use layout::NginxLayout;
pub use render::{render_config, render_snippet};
pub use supervisor::{Nginx, NginxStatus, RestartPolicy};

/// Everything that can go wrong finding, configuring or running nginx. Each message says what
/// happened and, where there is one, what the user can do about it.
#[derive(Debug, thiserror::Error)]
pub enum NginxError {
    #[error("{}", not_found_message(tried))]
    NotFound { tried: Vec<PathBuf> },

    #[error("the configured nginx {path} cannot be used: {reason}. Fix `[nginx] path` in the config file, or remove it to search for nginx automatically")]
    NotExecutable { path: PathBuf, reason: String },

    /// `message` is nginx's own explanation (from `nginx -t`), which names the file and line.
    #[error("nginx rejected the configuration:\n{message}")]
    ConfigInvalid { message: String },

    #[error("port {} for app {app:?} ({addr}) is already in use by another program; stop it or choose another port", addr.port())]
    PortInUse { app: String, addr: SocketAddr },

    /// Windows error 10013 (WSAEACCES): the port lies in a range Windows keeps for Hyper-V, WSL or
    /// Docker (they change after updates and reboots), or a program holds it exclusively.
    #[error("port {} for app {app:?} ({addr}) is reserved by Windows or held exclusively by another program (Hyper-V, WSL and Docker reserve ranges of ports; `netsh interface ipv4 show excludedportrange protocol=tcp` lists them). Choose another port", addr.port())]
    PortReserved { app: String, addr: SocketAddr },

    #[error(
        "cannot listen on {addr} for app {app:?}: {source}. Choose another address or port (ports below 1024 need administrator rights)"
    )]
    Bind {
        app: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    #[error("SimpleOTP runs as root, and nginx's workers (which parse every request) must not, but none of the accounts they could run as exists (tried: {}). Create one, e.g. `useradd --system --no-create-home --shell /usr/sbin/nologin simpleotp`, or run SimpleOTP as a normal user", tried.join(", "))]
    NoWorkerAccount { tried: Vec<String> },

    #[error("cannot run nginx ({binary}): {source}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// `message` is nginx's own error output, e.g. a port it could not bind.
    #[error("nginx exited while starting:\n{message}")]
    StartFailed { message: String },

    #[error("nginx did not finish starting within {seconds} seconds; {message}")]
    StartTimeout { seconds: u64, message: String },

    #[error("nginx did not apply the new configuration:\n{message}")]
    ReloadFailed { message: String },

    #[error("no trusted root certificates were found on this system{why}, so the certificates of https apps cannot be checked. Install the system's CA certificates (e.g. `apt-get install ca-certificates`), or set `tls_verify = false` for apps you trust on your own network")]
    NoTrustedRoots { why: String },

    #[error("nginx is not running: it was stopped")]
    Stopped,

    #[error("cannot {action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
}

fn not_found_message(tried: &[PathBuf]) -> String {
    let mut msg = String::from("nginx was not found. Looked for it at:\n");
    for path in tried {
        msg.push_str(&format!("  - {}\n", path.display()));
    }
    msg.push_str(
        "Install nginx (for example `apt-get install nginx`, `dnf install nginx`, `brew install nginx`, \
         or on Windows unpack the nginx.org zip to a folder only administrators can change, such as one \
         under C:\\Program Files), or set `[nginx] path = \"/path/to/nginx\"` in the config file.",
    );
    msg
}

impl NginxError {
    pub(crate) fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        NginxError::Io { action: action.into(), source }
    }
}

/// These run the real nginx found on this machine (`nginx -t` only; nothing is started), with
/// certificates made by the real `openssl`: Unix only (Windows has no openssl of its own; the
/// api tests run nginx for Windows under Wine, `scripts/wine-nginx-test.sh`).
#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A fixed proof, so the rendered text is the same every time.
    fn proof() -> crate::protocol::NginxProof {
        crate::protocol::NginxProof::parse(&"p".repeat(43)).unwrap()
    }
    use crate::config::{AppConfig, RoutePrefix};

    fn app(name: &str, upstream: &str, listen: &str) -> AppConfig {
        AppConfig::new(name.parse().unwrap(), upstream.parse().unwrap(), listen.parse().unwrap())
    }

    fn nginx() -> PathBuf {
        discover(None).expect("these tests need nginx installed (e.g. apt-get install nginx)")
    }

    fn apps() -> Vec<AppConfig> {
        vec![
            app("Jupyter", "http://127.0.0.1:8888/lab", "127.0.0.1:18081"),
            app("v6 app", "http://[::1]:9000", "[::1]:18082"),
            app("Secure", "https://localhost:8443", "0.0.0.0:18083"),
        ]
    }

    /// A throw-away self-signed certificate where the managed nginx expects its TLS files
    /// (made by the real `openssl`), so `nginx -t` can load them for network-facing apps.
    fn write_test_certificate(layout: &NginxLayout) {
        let status = crate::child::command("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
            ])
            .arg("-keyout")
            .arg(layout.tls_key_path())
            .arg("-out")
            .arg(layout.tls_chain_path())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("these tests need openssl");
        assert!(status.success());
    }

    async fn test_text(layout: &NginxLayout, text: &str) -> Result<(), NginxError> {
        layout.prepare().unwrap();
        write_test_certificate(layout);
        upstream_ca::write_if_needed(layout, &apps()).unwrap();
        crate::fsutil::write_atomic(&layout.conf_path(), text.as_bytes()).unwrap();
        test_config(&nginx(), layout).await
    }

    #[tokio::test]
    async fn nginx_accepts_the_generated_config() {
        let dir = tempfile::tempdir().unwrap();
        let layout = NginxLayout::new(dir.path().join("nginx dir"));
        let text = render_config("127.0.0.1:7000".parse().unwrap(), &proof(), &RoutePrefix::default(), &apps());
        test_text(&layout, &text).await.unwrap();
        // `nginx -t` wrote nothing outside the prefix (it creates the temp dirs and error log).
        assert!(layout.error_log().exists());
    }

    #[tokio::test]
    async fn nginx_accepts_the_snippet_in_a_minimal_config() {
        let dir = tempfile::tempdir().unwrap();
        let layout = NginxLayout::new(dir.path());
        let snippet = render_snippet(&"/_gate/".parse().unwrap(), "127.0.0.1:7000", &proof(), &apps());
        let p = dir.path().display();
        // A minimal main config; only the pid and temp paths are redirected so the test does not
        // need /run or /var/lib/nginx.
        let text = format!(
            "pid {p}/test.pid;\nevents {{}}\nhttp {{\nclient_body_temp_path {p}/t1; proxy_temp_path {p}/t2; \
             fastcgi_temp_path {p}/t3; uwsgi_temp_path {p}/t4; scgi_temp_path {p}/t5;\n{snippet}\n}}\n"
        );
        test_text(&layout, &text).await.unwrap();
    }

    #[tokio::test]
    async fn invalid_config_reports_nginx_message() {
        let dir = tempfile::tempdir().unwrap();
        let layout = NginxLayout::new(dir.path());
        let text = render_config("127.0.0.1:7000".parse().unwrap(), &proof(), &RoutePrefix::default(), &apps());
        let text = text.replace("access_log off;", "access_log off;\n    bogus_directive on;");
        let err = test_text(&layout, &text).await.unwrap_err();
        let NginxError::ConfigInvalid { message } = &err else { panic!("{err:?}") };
        assert!(message.contains("unknown directive \"bogus_directive\""), "{message}");
        assert!(message.contains(&layout.conf_path().display().to_string()), "{message}");
        assert!(!message.contains("test failed"), "{message}");
        assert!(err.to_string().starts_with("nginx rejected the configuration:"), "{err}");
    }

    #[tokio::test]
    async fn unresolvable_upstream_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let layout = NginxLayout::new(dir.path());
        let apps = [app("Broken", "http://simpleotp-no-such-host.invalid:8000", "127.0.0.1:18084")];
        let text = render_config("127.0.0.1:7000".parse().unwrap(), &proof(), &RoutePrefix::default(), &apps);
        let err = test_text(&layout, &text).await.unwrap_err();
        let NginxError::ConfigInvalid { message } = &err else { panic!("{err:?}") };
        assert!(message.contains("host not found in upstream"), "{message}");
        assert!(message.contains("simpleotp-no-such-host.invalid"), "{message}");
    }

    #[test]
    fn not_found_message_says_how_to_fix() {
        let msg = NginxError::NotFound { tried: vec![PathBuf::from("/a/nginx"), PathBuf::from("/b/nginx")] }.to_string();
        assert!(msg.contains("  - /a/nginx\n  - /b/nginx\n"), "{msg}");
        assert!(msg.contains("apt-get install nginx"), "{msg}");
    }
}
