//! How a local command reaches the running gateway, e.g. `simpleotp unlock`.
//!
//! At start the gateway writes `control.json` (0600) into its data directory: the auth server's
//! loopback URL and a random token. Whoever can read that file is the owner (or root) and may
//! call the control routes; nginx never forwards them. This works the same on every OS, with no
//! Unix sockets or named pipes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::RoutePrefix;
use crate::protocol::routes;

pub const CONTROL_FILE_NAME: &str = "control.json";

/// Errors talking to a running gateway.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no running gateway uses the data directory {0} (there is no control file). Is `simpleotp serve` (or the SimpleOTP app) running with this --data-dir?")]
    NotRunning(PathBuf),
    #[error("cannot read the control file {path}: {detail}")]
    Unreadable { path: PathBuf, detail: String },
    #[error(
        "the gateway at {url} does not answer ({detail}); it may have stopped without cleaning up. Start it again with `simpleotp serve`."
    )]
    Unreachable { url: String, detail: String },
    #[error("the gateway refused the request: {0}")]
    Refused(String),
}

/// The contents of `control.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlFile {
    /// `127.0.0.1:PORT` of the auth server.
    pub auth_addr: std::net::SocketAddr,
    pub route_prefix: RoutePrefix,
    pub token: String,
    pub pid: u32,
    /// Each protected app's [`crate::config::AppConfig::protected_url`] without the trailing
    /// slash, e.g. `http://127.0.0.1:8081` (for the unlock link). Absent in older files.
    #[serde(default)]
    pub app_urls: Vec<String>,
}

/// What `control/unlock` answers: a one-time login link for the owner (see [`crate::ticket`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnlockLink {
    /// `<prefix>login?ticket=…`, to open on any protected app's address.
    pub login_path: String,
    pub expires_in_secs: u64,
    /// How many codes the link lets through.
    pub attempts: u32,
}

impl ControlFile {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(CONTROL_FILE_NAME)
    }

    pub fn write(&self, data_dir: &Path) -> std::io::Result<()> {
        crate::fsutil::write_atomic(&Self::path(data_dir), &serde_json::to_vec(self).expect("serializes"))
    }

    pub fn read(data_dir: &Path) -> Result<ControlFile, ControlError> {
        let path = Self::path(data_dir);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ControlError::NotRunning(data_dir.to_path_buf())),
            Err(e) => return Err(ControlError::Unreadable { path, detail: e.to_string() }),
        };
        serde_json::from_slice(&bytes).map_err(|e| ControlError::Unreadable { path, detail: e.to_string() })
    }

    /// Removes the file, but only if it is still ours (a newer gateway may have replaced it).
    pub fn remove_if_ours(&self, data_dir: &Path) {
        if ControlFile::read(data_dir).is_ok_and(|current| current.token == self.token) {
            let _ = std::fs::remove_file(Self::path(data_dir));
        }
    }

    /// Whether a gateway answers at this file's address (used to refuse starting a second
    /// gateway on the same data directory).
    pub async fn is_alive(&self) -> bool {
        request(self.auth_addr, "GET", &self.route_prefix.route(routes::HEALTH), None).await.is_ok_and(|(status, _)| status == 200)
    }
}

/// Unlocks the gateway that uses `data_dir`: lifts the per-address lockouts and gets a one-time
/// login link that skips the global budget (which is not refilled). Returns the control file
/// too, for the apps' addresses.
pub async fn unlock(data_dir: &Path) -> Result<(UnlockLink, ControlFile), ControlError> {
    let control = ControlFile::read(data_dir)?;
    let path = control.route_prefix.route(routes::CONTROL_UNLOCK);
    match request(control.auth_addr, "POST", &path, Some(&control.token)).await {
        Ok((200, body)) => match serde_json::from_str::<UnlockLink>(&body) {
            Ok(link) => Ok((link, control)),
            Err(e) => Err(ControlError::Refused(format!("unexpected answer ({e}); is the running gateway an older version? Restart it."))),
        },
        Ok((status, body)) => Err(ControlError::Refused(format!("HTTP {status}: {}", body.trim()))),
        Err(detail) => Err(ControlError::Unreachable { url: format!("http://{}", control.auth_addr), detail }),
    }
}

/// A minimal HTTP/1.1 request on loopback; enough for the control routes, and it keeps an HTTP
/// client library out of the engine.
async fn request(addr: std::net::SocketAddr, method: &str, path: &str, bearer: Option<&str>) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let auth = bearer.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        stream.take(64 * 1024).read_to_end(&mut response).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&response);
        let status =
            text.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok()).ok_or_else(|| "not an HTTP response".to_string())?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Ok((status, body))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange).await.map_err(|_| "timed out".to_string())?
}

/// What `control/ca-rotate` answers: the running gateway's new CA (see `simpleotp ca rotate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotatedCa {
    pub common_name: String,
    /// SHA-256 of the new CA certificate, as the tray and `ca export` show it.
    pub fingerprint: String,
    /// Whether nginx now presents a leaf from the new CA (false when no app faces the network).
    pub leaf_reissued: bool,
}

/// Asks the gateway that uses `data_dir` to rotate its CA: it replaces the stored CA (being its
/// only writer while it runs), issues the leaf from the new one and reloads nginx, so the old
/// key signs nothing more. [`ControlError::NotRunning`] when no gateway uses `data_dir`.
pub async fn rotate_ca(data_dir: &Path) -> Result<RotatedCa, ControlError> {
    let control = ControlFile::read(data_dir)?;
    let path = control.route_prefix.route(routes::CONTROL_CA_ROTATE);
    match request(control.auth_addr, "POST", &path, Some(&control.token)).await {
        Ok((200, body)) => serde_json::from_str::<RotatedCa>(&body)
            .map_err(|e| ControlError::Refused(format!("unexpected answer ({e}); is the running gateway an older version? Restart it."))),
        Ok((status, body)) => Err(ControlError::Refused(format!("HTTP {status}: {}", body.trim()))),
        Err(detail) => Err(ControlError::Unreachable { url: format!("http://{}", control.auth_addr), detail }),
    }
}
