//! Where the tray app keeps things: the config file, the data directory and the secret.
//!
//! The defaults are the engine's (shared with the `simpleotp` command), and each can be moved
//! with an environment variable, so tests and the end-to-end run use throw-away directories and
//! never touch a developer's real setup:
//!
//! * `SIMPLEOTP_CONFIG`: the config file (default: the OS config dir's `config.toml`);
//! * `SIMPLEOTP_DATA_DIR`: sessions, nginx's prefix, the control file;
//! * `SIMPLEOTP_SECRET_FILE`: keep the secret in this 0600 file instead of the OS keychain
//!   (for machines without a Secret Service).
//!
//! The user's home (`HOME`) is where "Trust on this computer" finds the browsers' own
//! certificate databases on Linux and the login keychain on macOS.

use std::path::PathBuf;

use simpleotp_engine::config::{default_data_dir, Config};
use simpleotp_engine::secret::SecretStore;

#[derive(Debug, Clone)]
pub struct Paths {
    pub config: PathBuf,
    pub data_dir: PathBuf,
    pub secret: SecretStore,
    /// The user's home directory, if known.
    pub home: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot find the {what} directory of this user (is $HOME set?); set {var}")]
pub struct NoDefaultDir {
    what: &'static str,
    var: &'static str,
}

impl Paths {
    pub fn from_env() -> Result<Paths, NoDefaultDir> {
        Self::from_lookup(|name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from))
    }

    /// `from_env` with the variables looked up by `var` (so tests need not change the process
    /// environment, which other threads read).
    pub fn from_lookup(var: impl Fn(&str) -> Option<PathBuf>) -> Result<Paths, NoDefaultDir> {
        let config = match var("SIMPLEOTP_CONFIG") {
            Some(path) => path,
            None => Config::default_path().ok_or(NoDefaultDir { what: "config", var: "SIMPLEOTP_CONFIG" })?,
        };
        let data_dir = match var("SIMPLEOTP_DATA_DIR") {
            Some(path) => path,
            None => default_data_dir().ok_or(NoDefaultDir { what: "data", var: "SIMPLEOTP_DATA_DIR" })?,
        };
        let secret = var("SIMPLEOTP_SECRET_FILE").map(SecretStore::file).unwrap_or_else(SecretStore::keychain);
        Ok(Paths { config, data_dir, secret, home: var("HOME") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_override_every_location() {
        let paths = Paths::from_lookup(|name| match name {
            "SIMPLEOTP_CONFIG" => Some("/t/c.toml".into()),
            "SIMPLEOTP_DATA_DIR" => Some("/t/data".into()),
            "SIMPLEOTP_SECRET_FILE" => Some("/t/secret".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(paths.config, PathBuf::from("/t/c.toml"));
        assert_eq!(paths.data_dir, PathBuf::from("/t/data"));
        assert_eq!(paths.secret, SecretStore::file("/t/secret"));
    }

    #[test]
    fn the_keychain_is_the_default_secret_store() {
        let paths = Paths::from_lookup(|name| match name {
            "SIMPLEOTP_CONFIG" => Some("/t/c.toml".into()),
            "SIMPLEOTP_DATA_DIR" => Some("/t/data".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(paths.secret, SecretStore::keychain());
    }
}
