//! Where the managed nginx keeps its files, and how nginx is pointed at them.
//!
//! This is the one thing every other part of `nginx` needs (the renderer writes these names into
//! nginx.conf, the platform code signals nginx through them, the supervisor starts nginx in
//! them), so it depends on nothing else in the module: that keeps the module's imports a tree.
//!
//! nginx runs *in* its prefix (its working directory) and is given only relative, ASCII names,
//! on its command line and in nginx.conf. nginx for Windows reads its command line in the ANSI
//! code page but opens files as UTF-8, so an absolute path under a user name such as `Zoë Müller`
//! or `田中` fails with "No Unicode translation", and it refuses 8.3 short names (`RUNNER~1`)
//! in paths it is given. The working directory is set through the OS's wide-character API,
//! which has neither problem; the names below are relative to it.

use std::io;
use std::path::{Path, PathBuf};

use crate::fsutil::create_private_dir;

/// The names nginx is given, relative to its prefix (and working directory). ASCII only, `/` as
/// the separator (nginx for Windows takes both).
pub(crate) mod names {
    /// The prefix itself, as nginx's `-p`.
    pub const PREFIX: &str = "./";
    pub const CONF: &str = "nginx.conf";
    pub const CANDIDATE_CONF: &str = "nginx.conf.candidate";
    pub const PID: &str = "nginx.pid";
    pub const LOCK: &str = "nginx.lock";
    pub const LOGS: &str = "logs";
    pub const ERROR_LOG: &str = "logs/error.log";
    pub const TEMP: &str = "temp";
    pub const TLS_CHAIN: &str = "tls-chain.pem";
    pub const TLS_KEY: &str = "tls-key.pem";
    /// The roots an `https` upstream's certificate is checked against: the system's, written
    /// here as one PEM file on every OS (see `nginx::upstream_ca`).
    pub const UPSTREAM_CA: &str = "upstream-ca.pem";
}

/// The temporary-file areas nginx uses for buffering; all are placed inside the prefix so the
/// managed nginx never writes outside its own directory (the distribution defaults such as
/// `/var/lib/nginx/body` may not exist or may not be writable for us).
pub(super) const TEMP_KINDS: [(&str, &str); 5] = [
    ("client_body_temp_path", "client_body"),
    ("proxy_temp_path", "proxy"),
    ("fastcgi_temp_path", "fastcgi"),
    ("uwsgi_temp_path", "uwsgi"),
    ("scgi_temp_path", "scgi"),
];

/// Where the managed nginx keeps its files: one private directory (the nginx "prefix") holding
/// the config, pid file, logs and temp files. Nothing is written anywhere else, so several
/// gateways (or a system nginx) can run side by side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxLayout {
    /// Absolute path of the prefix directory.
    pub prefix_dir: PathBuf,
}

impl NginxLayout {
    /// A layout rooted at `prefix_dir`. A relative path is made absolute against the current
    /// directory, because nginx resolves relative paths against its own prefix and the pid/log
    /// paths must mean the same thing to us and to it.
    pub fn new(prefix_dir: impl Into<PathBuf>) -> Self {
        let prefix_dir = prefix_dir.into();
        let prefix_dir =
            if prefix_dir.is_absolute() { prefix_dir } else { std::env::current_dir().map(|d| d.join(&prefix_dir)).unwrap_or(prefix_dir) };
        NginxLayout { prefix_dir }
    }

    /// `<prefix>/nginx.conf`, the configuration nginx runs with.
    pub fn conf_path(&self) -> PathBuf {
        self.prefix_dir.join(names::CONF)
    }

    /// `<prefix>/nginx.conf.candidate`: a new configuration is written here and tested before it
    /// replaces `nginx.conf`, so a bad one never touches the running setup.
    pub fn candidate_conf_path(&self) -> PathBuf {
        self.prefix_dir.join(names::CANDIDATE_CONF)
    }

    /// `<prefix>/nginx.pid`, written by the nginx master once it is listening.
    pub fn pid_path(&self) -> PathBuf {
        self.prefix_dir.join(names::PID)
    }

    /// `<prefix>/nginx.lock`, only used by nginx on platforms without atomic operations.
    pub fn lock_path(&self) -> PathBuf {
        self.prefix_dir.join(names::LOCK)
    }

    /// `<prefix>/tls-chain.pem`: the certificate nginx presents on network-facing ports (the
    /// leaf, then the CA that issued it). Written 0600 in the 0700 prefix, like everything here.
    pub fn tls_chain_path(&self) -> PathBuf {
        self.prefix_dir.join(names::TLS_CHAIN)
    }

    /// `<prefix>/tls-key.pem`: that certificate's private key (0600; nginx's master reads it
    /// before it drops to the workers' account, so the workers never need it).
    pub fn tls_key_path(&self) -> PathBuf {
        self.prefix_dir.join(names::TLS_KEY)
    }

    /// `<prefix>/upstream-ca.pem`: the system's trusted roots for `https` upstreams.
    pub fn upstream_ca_path(&self) -> PathBuf {
        self.prefix_dir.join(names::UPSTREAM_CA)
    }

    /// `<prefix>/logs`.
    pub fn logs_dir(&self) -> PathBuf {
        self.prefix_dir.join(names::LOGS)
    }

    /// `<prefix>/logs/error.log`, nginx's only log (access logging is off).
    pub fn error_log(&self) -> PathBuf {
        self.prefix_dir.join(names::ERROR_LOG)
    }

    /// `<prefix>/temp`, the parent of all of nginx's temporary-file directories.
    pub fn temp_dir(&self) -> PathBuf {
        self.prefix_dir.join(names::TEMP)
    }

    /// The temporary directories (`client_body`, `proxy`, ...) under [`temp_dir`](Self::temp_dir).
    pub fn temp_dirs(&self) -> Vec<PathBuf> {
        TEMP_KINDS.iter().map(|(_, dir)| self.temp_dir().join(dir)).collect()
    }

    /// Creates the prefix, logs and temp directories, readable by the owner only: the config
    /// names the auth server's port and the temp files may hold request bodies.
    pub fn prepare(&self) -> io::Result<()> {
        create_private_dir(&self.prefix_dir)?;
        create_private_dir(&self.logs_dir())?;
        create_private_dir(&self.temp_dir())?;
        for dir in self.temp_dirs() {
            create_private_dir(&dir)?;
        }
        Ok(())
    }
}

/// A command that runs `binary` in the prefix with `conf` (a name from [`names`]): the working
/// directory is the prefix and `-p ./ -c <conf> -e logs/error.log` point nginx at it, so nothing
/// falls back to the distribution's `/etc/nginx` or `/var/log/nginx`. Every invocation of nginx
/// (start, `-t`, and on Windows `-s`) is made here; `extra` comes before the prefix arguments.
pub(crate) fn nginx_command(binary: &Path, layout: &NginxLayout, extra: &[&str], conf: &str) -> tokio::process::Command {
    let mut command = crate::child::tokio_command(binary);
    command.current_dir(&layout.prefix_dir).args(extra).args(prefix_args(conf));
    command
}

/// `-p ./ -c <conf> -e logs/error.log`: relative, ASCII (see the module docs).
fn prefix_args(conf: &str) -> [&str; 6] {
    ["-p", names::PREFIX, "-c", conf, "-e", names::ERROR_LOG]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_paths() {
        let l = NginxLayout::new("/p");
        // ("/p" is absolute on Unix; on Windows it gets the current drive.)
        let p = &l.prefix_dir;
        assert!(p.is_absolute() && p.ends_with("p"), "{}", p.display());
        assert_eq!(l.conf_path(), p.join("nginx.conf"));
        assert_eq!(l.pid_path(), p.join("nginx.pid"));
        assert_eq!(l.error_log(), p.join("logs").join("error.log"));
        assert!(l.temp_dirs().iter().all(|d| d.starts_with(p.join("temp"))));
        assert!(NginxLayout::new("rel").prefix_dir.is_absolute());
    }

    #[test]
    fn nginx_is_given_only_relative_ascii_names() {
        let l = NginxLayout::new("/home/Zoë Müller/SimpleOTP/nginx");
        let command = nginx_command(Path::new("/usr/sbin/nginx"), &l, &["-t"], names::CONF);
        let std = command.as_std();
        assert_eq!(std.get_current_dir(), Some(l.prefix_dir.as_path()));
        let args: Vec<&str> = std.get_args().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(args, ["-t", "-p", "./", "-c", "nginx.conf", "-e", "logs/error.log"]);
        for name in [
            names::CONF,
            names::CANDIDATE_CONF,
            names::PID,
            names::LOCK,
            names::ERROR_LOG,
            names::TLS_CHAIN,
            names::TLS_KEY,
            names::UPSTREAM_CA,
        ] {
            assert!(name.is_ascii() && Path::new(name).is_relative(), "{name}");
        }
        // The names and the absolute paths we use ourselves are the same files.
        assert_eq!(l.prefix_dir.join(names::ERROR_LOG), l.error_log());
        assert_eq!(l.prefix_dir.join(names::PID), l.pid_path());
    }

    #[cfg(unix)]
    #[test]
    fn prepare_creates_private_dirs() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let l = NginxLayout::new(dir.path().join("nginx"));
        l.prepare().unwrap();
        for d in [l.prefix_dir.clone(), l.logs_dir()].into_iter().chain(l.temp_dirs()) {
            assert_eq!(std::fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700, "{}", d.display());
        }
    }
}
