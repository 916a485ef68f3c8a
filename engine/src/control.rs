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

use crate::authenticator::{AuthenticatorInfo, AuthenticatorName};
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
    #[error("what listens at {url} is not the gateway that wrote {} (it could not prove it knows the control token; another program may have taken the port after the gateway stopped). Nothing was sent to it. Stop that program or restart SimpleOTP.", .path.display())]
    NotProven { url: String, path: PathBuf },
    #[error("{} is not one SimpleOTP wrote ({detail}); delete it and restart SimpleOTP", .path.display())]
    Malformed { path: PathBuf, detail: String },
    #[error("the gateway's answer is not what SimpleOTP sends ({0}); nothing of it was used")]
    BadAnswer(String),
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
    /// The same for another device, for each app it can reach ([`crate::lan::other_device_url`]),
    /// e.g. `https://box.local:8081`: the unlock link a phone opens. Absent in older files.
    #[serde(default)]
    pub other_device_urls: Vec<String>,
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

    /// Checks what a client takes from the file before using any of it: the auth server's
    /// address is loopback, and each app URL is `http(s)://host[:port]` with a host that is an
    /// IP literal, `localhost` or a plain DNS name — no user-info (`http://127.0.0.1:8081@evil.example`
    /// goes to evil.example), no path, query or fragment.
    fn check_shape(&self, path: &Path) -> Result<(), ControlError> {
        let malformed = |detail: String| ControlError::Malformed { path: path.to_path_buf(), detail };
        if !self.auth_addr.ip().is_loopback() {
            return Err(malformed(format!("the auth server's address {} is not loopback", self.auth_addr)));
        }
        for url in self.app_urls.iter().chain(&self.other_device_urls) {
            if !is_plain_origin(url) {
                return Err(malformed(format!("{url:?} is not an app address")));
            }
        }
        Ok(())
    }
}

/// `http(s)://host[:port]`, host an IP literal (`[v6]` too), `localhost` or a DNS name.
fn is_plain_origin(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")) else { return false };
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((address, after)) if address.parse::<std::net::Ipv6Addr>().is_ok() => (address, after),
            _ => return false,
        },
        None => match rest.rsplit_once(':') {
            Some((host, port)) => (host, &rest[host.len()..][..port.len() + 1]),
            None => (rest, ""),
        },
    };
    let port_ok = port.is_empty() || port.strip_prefix(':').is_some_and(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    let host_ok = rest.starts_with('[')
        || (!host.is_empty()
            && host.split('.').all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')));
    port_ok && host_ok
}

/// The running gateway of `data_dir`, proven: the data directory's lock is held (else no gateway
/// runs, whatever a stale control file says), the control file has the shape SimpleOTP writes,
/// and whatever answers at its address proves it knows the token (HMAC over a fresh nonce)
/// before the token is sent. Then the caller may send the token.
async fn connect(data_dir: &Path) -> Result<ControlFile, ControlError> {
    // Taking the lock would make the directory: a mistyped --data-dir must not leave one behind.
    if !data_dir.is_dir() {
        return Err(ControlError::NotRunning(data_dir.to_path_buf()));
    }
    match crate::instance::InstanceLock::acquire(data_dir, "a SimpleOTP command") {
        Ok(lock) => {
            drop(lock);
            return Err(ControlError::NotRunning(data_dir.to_path_buf()));
        }
        Err(crate::instance::LockError::Held { .. }) => {}
        Err(e) => return Err(ControlError::Unreadable { path: data_dir.to_path_buf(), detail: e.to_string() }),
    }
    let control = ControlFile::read(data_dir)?;
    let path = ControlFile::path(data_dir);
    control.check_shape(&path)?;
    let mut nonce = [0u8; 32];
    getrandom::fill(&mut nonce).expect("the operating system's random number generator failed");
    let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let url = format!("http://{}", control.auth_addr);
    let prove = control.route_prefix.route(routes::CONTROL_PROVE);
    let answer = request(control.auth_addr, "POST", &prove, &[(crate::protocol::CONTROL_NONCE_HEADER, &nonce)], b"")
        .await
        .map_err(|detail| ControlError::Unreachable { url: url.clone(), detail })?;
    let expected = crate::protocol::control_proof(&control.token, &nonce);
    let presented = answer.header(crate::protocol::CONTROL_PROOF_HEADER).unwrap_or_default();
    use subtle::ConstantTimeEq as _;
    if answer.status != 200 || !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        return Err(ControlError::NotProven { url, path });
    }
    Ok(control)
}

/// Unlocks the gateway that uses `data_dir`: lifts the per-address lockouts and gets a one-time
/// login link that skips the global budget (which is not refilled). Returns the control file
/// too, for the apps' addresses.
pub async fn unlock(data_dir: &Path) -> Result<(UnlockLink, ControlFile), ControlError> {
    let control = connect(data_dir).await?;
    let path = control.route_prefix.route(routes::CONTROL_UNLOCK);
    let link: UnlockLink = call(&control, &path, None).await?;
    // The link is printed for the person to open: only `<prefix>login?ticket=<token>`.
    let ticket = link.login_path.strip_prefix(&format!("{}?ticket=", control.route_prefix.route(routes::LOGIN)));
    if !ticket.is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')) {
        return Err(ControlError::BadAnswer(format!("the sign-in link {:?} has another shape", link.login_path)));
    }
    Ok((link, control))
}

/// The largest request body a control route takes (and a client sends).
pub const MAX_CONTROL_BODY: usize = 4 * 1024;

/// A control route of the proven gateway, with the token and, for routes that take one, a JSON
/// body (at most [`MAX_CONTROL_BODY`] bytes); its JSON answer.
async fn call<T: serde::de::DeserializeOwned>(control: &ControlFile, path: &str, body: Option<&[u8]>) -> Result<T, ControlError> {
    let bearer = format!("Bearer {}", control.token);
    let mut headers = vec![("Authorization", bearer.as_str())];
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    let body = body.unwrap_or_default();
    if body.len() > MAX_CONTROL_BODY {
        return Err(ControlError::BadAnswer(format!("the request is larger than {MAX_CONTROL_BODY} bytes")));
    }
    match request(control.auth_addr, "POST", path, &headers, body).await {
        Ok(answer) if answer.status == 200 => serde_json::from_str::<T>(&answer.body)
            .map_err(|e| ControlError::Refused(format!("unexpected answer ({e}); is the running gateway an older version? Restart it."))),
        Ok(answer) => Err(ControlError::Refused(format!("HTTP {}: {}", answer.status, answer.body.trim()))),
        Err(detail) => Err(ControlError::Unreachable { url: format!("http://{}", control.auth_addr), detail }),
    }
}

/// An HTTP answer, as [`request`] reads it.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// A minimal HTTP/1.1 request on loopback; enough for the control routes, and it keeps an HTTP
/// client library out of the engine.
async fn request(addr: std::net::SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Answer, String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let extra: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
        let head =
            format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n", body.len());
        stream.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
        stream.write_all(body).await.map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        stream.take(64 * 1024).read_to_end(&mut response).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&response);
        let status =
            text.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok()).ok_or_else(|| "not an HTTP response".to_string())?;
        let (head, body) =
            text.split_once("\r\n\r\n").map(|(h, b)| (h.to_string(), b.to_string())).unwrap_or((text.to_string(), String::new()));
        Ok(Answer { status, head, body })
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
/// What `control/recovery-codes` answers: the new set's codes, shown once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRecoveryCodes {
    pub codes: Vec<String>,
}

impl std::fmt::Debug for NewRecoveryCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewRecoveryCodes").field("codes", &self.codes.len()).finish()
    }
}

/// Asks the running gateway for a new set of recovery codes (the old set stops working).
pub async fn new_recovery_codes(data_dir: &Path) -> Result<Vec<String>, ControlError> {
    let control = connect(data_dir).await?;
    let answer: NewRecoveryCodes = call(&control, &control.route_prefix.route(routes::CONTROL_RECOVERY_CODES), None).await?;
    let well_formed = |code: &String| code.len() == 14 && code.bytes().all(|b| b == b'-' || b.is_ascii_alphanumeric());
    if answer.codes.len() != crate::recovery::CODES_PER_SET || !answer.codes.iter().all(well_formed) {
        return Err(ControlError::BadAnswer("the recovery codes have another shape".into()));
    }
    Ok(answer.codes)
}

/// What `control/passkey-link` answers: the path of a one-time page to add a passkey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyLink {
    /// `<prefix>passkey/add?link=…`, to open at an app's address by name (`localhost`).
    pub add_path: String,
    pub expires_in_secs: u64,
}

/// A one-time link to add a passkey, from the running gateway (with the control file, for the
/// apps' addresses).
pub async fn passkey_link(data_dir: &Path) -> Result<(PasskeyLink, ControlFile), ControlError> {
    let control = connect(data_dir).await?;
    let link: PasskeyLink = call(&control, &control.route_prefix.route(routes::CONTROL_PASSKEY_LINK), None).await?;
    let token = link.add_path.strip_prefix(&format!("{}?link=", control.route_prefix.route(routes::PASSKEY_ADD)));
    if !token.is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')) {
        return Err(ControlError::BadAnswer(format!("the link {:?} has another shape", link.add_path)));
    }
    Ok((link, control))
}

/// The running gateway's passkeys.
pub async fn passkeys(data_dir: &Path) -> Result<Vec<crate::passkey::PasskeyInfo>, ControlError> {
    let control = connect(data_dir).await?;
    call(&control, &control.route_prefix.route(routes::CONTROL_PASSKEYS), None).await
}

/// Removes a passkey (by id or name) from the running gateway: it stops working at once.
pub async fn remove_passkey(data_dir: &Path, id_or_name: &str) -> Result<crate::passkey::PasskeyInfo, ControlError> {
    let control = connect(data_dir).await?;
    let id: String = form_urlencoded::byte_serialize(id_or_name.as_bytes()).collect();
    call(&control, &format!("{}?id={id}", control.route_prefix.route(routes::CONTROL_PASSKEY_REMOVE)), None).await
}

pub async fn rotate_ca(data_dir: &Path) -> Result<RotatedCa, ControlError> {
    let control = connect(data_dir).await?;
    call(&control, &control.route_prefix.route(routes::CONTROL_CA_ROTATE), None).await
}

/// What `control/authenticator-add` takes: the new authenticator's name, the secret the CLI
/// made and showed, and the code the new app made from it (see
/// [`crate::authenticator::PendingAuthenticator::confirm`]). Wiped when dropped; `Debug` shows
/// the name only.
#[derive(Serialize, Deserialize)]
pub struct AddAuthenticator {
    pub name: String,
    /// Base32.
    pub secret: String,
    pub code: String,
}

impl std::fmt::Debug for AddAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddAuthenticator").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Drop for AddAuthenticator {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.secret.zeroize();
        self.code.zeroize();
    }
}

/// What `control/authenticator-remove` takes: the authenticator's id or name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveAuthenticator {
    pub which: String,
}

/// The running gateway's authenticators (never their secrets).
pub async fn authenticators(data_dir: &Path) -> Result<Vec<AuthenticatorInfo>, ControlError> {
    let control = connect(data_dir).await?;
    call(&control, &control.route_prefix.route(routes::CONTROL_AUTHENTICATORS), None).await
}

/// Asks the running gateway to add an authenticator: it checks `code` against `secret` (the one
/// rule for adding), writes the secret store and uses it from then on.
pub async fn add_authenticator(
    data_dir: &Path,
    name: &AuthenticatorName,
    secret: &crate::totp::TotpSecret,
    code: &str,
) -> Result<AuthenticatorInfo, ControlError> {
    let control = connect(data_dir).await?;
    let body = AddAuthenticator { name: name.to_string(), secret: secret.to_base32(), code: code.to_string() };
    let body = zeroize::Zeroizing::new(serde_json::to_vec(&body).expect("serializes"));
    call(&control, &control.route_prefix.route(routes::CONTROL_AUTHENTICATOR_ADD), Some(&body)).await
}

/// Asks the running gateway to remove the authenticator `which` (its id or name).
pub async fn remove_authenticator(data_dir: &Path, which: &str) -> Result<AuthenticatorInfo, ControlError> {
    let control = connect(data_dir).await?;
    let body = serde_json::to_vec(&RemoveAuthenticator { which: which.to_string() }).expect("serializes");
    call(&control, &control.route_prefix.route(routes::CONTROL_AUTHENTICATOR_REMOVE), Some(&body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_app_origins_are_taken_from_the_control_file() {
        for good in ["http://127.0.0.1:8081", "https://box.local:8443", "http://localhost", "https://[fd00::5]:8081", "http://[::1]:1"] {
            assert!(is_plain_origin(good), "{good}");
        }
        for bad in [
            "http://127.0.0.1:8081@evil.example",
            "http://evil.example#@127.0.0.1:8081",
            "http://127.0.0.1:8081/path",
            "http://user@127.0.0.1",
            "javascript:alert(1)",
            "http://127.0.0.1:0",
            "http://127.0.0.1:99999",
            "http://[::1",
            "http://[evil]:80",
            "http://a..b",
            "http://",
            "ftp://127.0.0.1",
            "http://127.0.0.1:8081?x",
        ] {
            assert!(!is_plain_origin(bad), "{bad}");
        }
    }

    #[test]
    fn the_proof_depends_on_the_token_and_the_nonce() {
        let proof = crate::protocol::control_proof("token-a", "00ff");
        assert_eq!(proof.len(), 64);
        assert_ne!(proof, crate::protocol::control_proof("token-b", "00ff"));
        assert_ne!(proof, crate::protocol::control_proof("token-a", "00fe"));
        assert_eq!(proof, crate::protocol::control_proof("token-a", "00ff"));
    }
}
