//! Checking a configuration before it is used: `nginx -t` on the exact file nginx would run
//! with, and a plain-words check that the apps' ports are free.
//!
//! Both run before a configuration replaces a working one (see `supervisor.rs`), so what the
//! user sees on a mistake is nginx's own explanation, and the running nginx is left alone.

use std::io;
use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::layout::{prefix_args, NginxLayout};
use super::NginxError;
use crate::config::AppConfig;

/// Runs `nginx -t` on the layout's nginx.conf. On failure the error carries nginx's own
/// explanation (file, line and what is wrong).
pub async fn test_config(binary: &Path, layout: &NginxLayout) -> Result<(), NginxError> {
    test_config_file(binary, layout, &layout.conf_path()).await
}

pub(super) async fn test_config_file(binary: &Path, layout: &NginxLayout, conf: &Path) -> Result<(), NginxError> {
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
}
