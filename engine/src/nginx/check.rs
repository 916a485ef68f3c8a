//! Checking a configuration before it is used: `nginx -t` on the exact file nginx would run
//! with, and a plain-words check that the apps' ports are free.
//!
//! Both run before a configuration replaces a working one (see `supervisor.rs`), so what the
//! user sees on a mistake is nginx's own explanation, and the running nginx is left alone.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::layout::{names, nginx_command, NginxLayout};
use super::NginxError;
use crate::config::AppConfig;

/// Runs `nginx -t` on the layout's nginx.conf. On failure the error carries nginx's own
/// explanation (file, line and what is wrong).
pub async fn test_config(binary: &Path, layout: &NginxLayout) -> Result<(), NginxError> {
    test_config_file(binary, layout, names::CONF).await
}

/// `nginx -t` on `conf`, a file name in the prefix (see `layout::names`).
pub(super) async fn test_config_file(binary: &Path, layout: &NginxLayout, conf: &str) -> Result<(), NginxError> {
    let mut cmd = nginx_command(binary, layout, &["-t", "-q"], conf);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .map_err(|_| NginxError::ConfigInvalid { message: "`nginx -t` did not finish within 30 seconds".into() })?
        .map_err(|source| NginxError::Spawn { binary: binary.to_path_buf(), source })?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    let message = in_prefix(&useful_lines(&text), layout);
    let message = if message.is_empty() { format!("`nginx -t` failed ({}) without a message", out.status) } else { message };
    Err(NginxError::ConfigInvalid { message })
}

/// Checks that every app's listen address is free, so "port in use" is reported per app in
/// plain words instead of as nginx's generic bind error after a 2.5 s retry.
pub fn check_ports(apps: &[AppConfig]) -> Result<(), NginxError> {
    for app in apps {
        let addr = app.listen.socket_addr();
        if let Err(e) = probe_bind(addr) {
            return Err(bind_error(app.name.as_str(), addr, e));
        }
    }
    Ok(())
}

/// Binds `addr` the way nginx will and lets go at once.
///
/// On Windows a plain bind succeeds on a port another program listens on with a wildcard
/// address (or with `SO_REUSEADDR`), so the check would pass and nginx fail later; with
/// `SO_EXCLUSIVEADDRUSE` the bind fails whenever anyone else holds the port.
fn probe_bind(addr: SocketAddr) -> io::Result<()> {
    #[cfg(windows)]
    {
        use std::os::windows::io::AsRawSocket;
        use windows_sys::Win32::Networking::WinSock::{setsockopt, SOCKET, SOL_SOCKET, SO_EXCLUSIVEADDRUSE};
        let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
        let on: i32 = 1;
        // SAFETY: a valid socket and a pointer to an i32 of the length given.
        let set = unsafe {
            setsockopt(
                socket.as_raw_socket() as SOCKET,
                SOL_SOCKET,
                SO_EXCLUSIVEADDRUSE,
                (&on as *const i32).cast(),
                size_of::<i32>() as i32,
            )
        };
        if set != 0 {
            return Err(io::Error::last_os_error());
        }
        socket.bind(&addr.into())?;
        socket.listen(1)
    }
    #[cfg(not(windows))]
    {
        // std sets SO_REUSEADDR on Unix, as nginx does: a port with connections in TIME_WAIT is free.
        std::net::TcpListener::bind(addr).map(drop)
    }
}

/// The error for an app whose address could not be bound, in words that say what to do.
fn bind_error(app: &str, addr: SocketAddr, e: io::Error) -> NginxError {
    /// WSAEACCES: on Windows, a port in a reserved range or held with SO_EXCLUSIVEADDRUSE.
    const WINDOWS_ACCESS_DENIED: i32 = 10013;
    let app = app.to_string();
    if e.kind() == io::ErrorKind::AddrInUse {
        NginxError::PortInUse { app, addr }
    } else if cfg!(windows) && e.raw_os_error() == Some(WINDOWS_ACCESS_DENIED) {
        NginxError::PortReserved { app, addr }
    } else {
        NginxError::Bind { app, addr, source: e }
    }
}

/// nginx's messages with the names it was given (relative to its prefix, `./nginx.conf`) written
/// out in full, so a person reading them knows which file is meant.
pub(super) fn in_prefix(text: &str, layout: &NginxLayout) -> String {
    let prefix = format!("{}{}", layout.prefix_dir.display(), std::path::MAIN_SEPARATOR);
    text.replace("\"./", &format!("\"{prefix}")).replace(" ./", &format!(" {prefix}"))
}

/// The lines of nginx output worth showing a person: its `[emerg]`/`[alert]`/`[crit]`/`[error]`
/// lines if there are any (dropping the "configuration file ... test failed" trailer), else
/// the last few non-empty lines.
pub(super) fn useful_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let important: Vec<&str> =
        lines.iter().copied().filter(|l| ["[emerg]", "[alert]", "[crit]", "[error]"].iter().any(|lvl| l.contains(lvl))).collect();
    let chosen = if important.is_empty() { lines.iter().copied().filter(|l| !l.ends_with("test failed")).collect() } else { important };
    let skip = chosen.len().saturating_sub(10);
    chosen[skip..].join("\n")
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
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = holder.local_addr().unwrap();
        let app = AppConfig::new("Jupyter".parse().unwrap(), "http://127.0.0.1:1".parse().unwrap(), addr.to_string().parse().unwrap());
        let err = check_ports(std::slice::from_ref(&app)).unwrap_err();
        assert!(matches!(&err, NginxError::PortInUse { app, addr: a } if app == "Jupyter" && *a == addr), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("port {} for app \"Jupyter\" ({addr}) is already in use", addr.port())), "{msg}");
        drop(holder);
        check_ports(&[app]).unwrap();
    }

    /// A program listening on every address holds the port for 127.0.0.1 too; on Windows only
    /// an exclusive bind notices (a plain one succeeds beside a wildcard listener).
    #[test]
    fn a_wildcard_listener_makes_the_port_taken_for_loopback() {
        let holder = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = holder.local_addr().unwrap().port();
        let app =
            AppConfig::new("Jupyter".parse().unwrap(), "http://127.0.0.1:1".parse().unwrap(), format!("127.0.0.1:{port}").parse().unwrap());
        let err = check_ports(&[app]).unwrap_err();
        assert!(matches!(err, NginxError::PortInUse { .. } | NginxError::PortReserved { .. }), "{err:?}");
    }

    /// Windows' error 10013 cannot be caused here on purpose (it needs Hyper-V's reserved ranges),
    /// so this hands the classification a made-up one and checks the words a person gets.
    #[test]
    fn a_reserved_windows_port_is_explained() {
        let addr: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        let err = bind_error("Jupyter", addr, io::Error::from_raw_os_error(10013));
        if cfg!(windows) {
            let msg = err.to_string();
            assert!(
                msg.contains("reserved by Windows") && msg.contains("excludedportrange") && msg.contains("Choose another port"),
                "{msg}"
            );
        } else {
            // On Unix 10013 is no errno of note: the generic message, with the OS's own words.
            assert!(matches!(err, NginxError::Bind { .. }), "{err:?}");
        }
        let in_use = bind_error("Jupyter", addr, io::ErrorKind::AddrInUse.into());
        assert!(matches!(in_use, NginxError::PortInUse { .. }), "{in_use:?}");
    }
}
