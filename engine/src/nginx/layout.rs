//! Where the managed nginx keeps its files, and the arguments that point nginx at them.
//!
//! This is the one thing every other part of `nginx` needs (the renderer writes these paths into
//! nginx.conf, the platform code signals nginx through them, the supervisor starts nginx in
//! them), so it depends on nothing else in the module: that keeps the module's imports a tree.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use crate::fsutil::create_private_dir;

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
        self.prefix_dir.join("nginx.conf")
    }

    /// `<prefix>/nginx.conf.candidate`: a new configuration is written here and tested before it
    /// replaces `nginx.conf`, so a bad one never touches the running setup.
    pub fn candidate_conf_path(&self) -> PathBuf {
        self.prefix_dir.join("nginx.conf.candidate")
    }

    /// `<prefix>/nginx.pid`, written by the nginx master once it is listening.
    pub fn pid_path(&self) -> PathBuf {
        self.prefix_dir.join("nginx.pid")
    }

    /// `<prefix>/nginx.lock`, only used by nginx on platforms without atomic operations.
    pub fn lock_path(&self) -> PathBuf {
        self.prefix_dir.join("nginx.lock")
    }

    /// `<prefix>/tls-chain.pem`: the certificate nginx presents on network-facing ports (the
    /// leaf, then the CA that issued it). Written 0600 in the 0700 prefix, like everything here.
    pub fn tls_chain_path(&self) -> PathBuf {
        self.prefix_dir.join("tls-chain.pem")
    }

    /// `<prefix>/tls-key.pem`: that certificate's private key (0600; nginx's master reads it
    /// before it drops to the workers' account, so the workers never need it).
    pub fn tls_key_path(&self) -> PathBuf {
        self.prefix_dir.join("tls-key.pem")
    }

    /// `<prefix>/logs`.
    pub fn logs_dir(&self) -> PathBuf {
        self.prefix_dir.join("logs")
    }

    /// `<prefix>/logs/error.log`, nginx's only log (access logging is off).
    pub fn error_log(&self) -> PathBuf {
        self.logs_dir().join("error.log")
    }

    /// `<prefix>/temp`, the parent of all of nginx's temporary-file directories.
    pub fn temp_dir(&self) -> PathBuf {
        self.prefix_dir.join("temp")
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

/// The arguments that point nginx at our prefix, config and error log; every invocation uses
/// them so nothing falls back to the distribution's `/etc/nginx` or `/var/log/nginx`.
pub(crate) fn prefix_args(layout: &NginxLayout, conf: &Path) -> Vec<OsString> {
    vec![
        "-p".into(),
        layout.prefix_dir.clone().into_os_string(),
        "-c".into(),
        conf.as_os_str().to_owned(),
        "-e".into(),
        layout.error_log().into_os_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_paths() {
        let l = NginxLayout::new("/p");
        assert_eq!(l.conf_path(), Path::new("/p/nginx.conf"));
        assert_eq!(l.pid_path(), Path::new("/p/nginx.pid"));
        assert_eq!(l.error_log(), Path::new("/p/logs/error.log"));
        assert!(l.temp_dirs().iter().all(|d| d.starts_with("/p/temp")));
        assert!(NginxLayout::new("rel").prefix_dir.is_absolute());
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
