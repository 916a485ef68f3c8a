//! "Copy diagnostics": a plain-text report a user can paste into a bug report, and where the
//! config lives ("Open config folder").
//!
//! Why a hand-picked list instead of, say, the config file or nginx's log: those hold what must
//! never leave the machine (nginx's config carries the proof header shared with the auth server,
//! its log the URLs of unlock links). The report names versions, paths, ports, the protection
//! state, counts and the core's own recent error messages, and nothing a person could sign in
//! with: no secret, code, session token, unlock ticket, key or cookie. A test in `tests.rs`
//! holds it to that.

use std::path::{Path, PathBuf};
use std::time::Duration;

use simpleotp_engine::nginx;

use super::views::{human_duration, Protection};
use super::Core;
use crate::sync::lock;

/// How many of the log's last lines the report carries.
const LOG_LINES: usize = 50;

/// How many of the core's recent error messages are kept for the report.
pub(super) const RECENT_ERRORS: usize = 10;

impl Core {
    /// The folder of the config file (what "Open config folder" opens).
    pub fn config_folder(&self) -> PathBuf {
        self.paths.config.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
    }

    /// The folder of the log file (what the tray's "Open logs" opens), made if it is not there
    /// yet so the file manager has something to show.
    pub fn logs_folder(&self) -> PathBuf {
        let folder = simpleotp_engine::logfile::dir(&self.paths.data_dir);
        let _ = std::fs::create_dir_all(&folder);
        folder
    }

    /// Keeps an error message the user was shown for the diagnostics (newest last).
    pub(super) fn remember_error(&self, message: &str) {
        let mut errors = lock(&self.recent_errors);
        if errors.len() == RECENT_ERRORS {
            errors.pop_front();
        }
        errors.push_back((simpleotp_engine::totp::unix_now(), message.to_string()));
    }

    /// The report behind "Copy diagnostics" (see the module doc for what it leaves out).
    pub async fn diagnostics(&self) -> String {
        let status = self.status();
        let config = self.config();
        let mut out = String::from("SimpleOTP diagnostics (holds no secret, code, token, key or cookie)\n\n");
        let line = |out: &mut String, key: &str, value: &str| out.push_str(&format!("{key}: {value}\n"));

        line(&mut out, "App", &format!("SimpleOTP {} on {} {}", env!("CARGO_PKG_VERSION"), std::env::consts::OS, std::env::consts::ARCH));
        line(&mut out, "Protection", protection_words(status.state));
        if let Some(message) = &status.message {
            line(&mut out, "Problem", message);
        }
        match nginx::discover(config.nginx.path.as_deref()) {
            Ok(binary) => {
                line(&mut out, "nginx", &binary.display().to_string());
                line(&mut out, "nginx version", &nginx_version(binary.clone()).await);
                let layout = simpleotp_engine::app::nginx_layout(&self.paths.data_dir);
                let test = if !layout.conf_path().exists() {
                    "not run (no nginx.conf yet: protection has not started)".to_string()
                } else {
                    match nginx::test_config(&binary, &layout).await {
                        Ok(()) => "ok".to_string(),
                        Err(e) => format!("failed: {}", simpleotp_engine::error_chain(&e)),
                    }
                };
                line(&mut out, "nginx -t", &test);
            }
            Err(e) => line(&mut out, "nginx", &format!("not found: {e}")),
        }
        line(&mut out, "Config file", &self.paths.config.display().to_string());
        line(&mut out, "Data folder", &self.paths.data_dir.display().to_string());
        line(&mut out, "Reachable from", if status.lan { "other devices on the network (HTTPS)" } else { "this computer only" });
        line(
            &mut out,
            "Sessions last",
            &format!("{} ({} when unused)", lifetime_words(config.session.lifetime), lifetime_words(config.session.idle_timeout)),
        );
        out.push_str(&format!("Apps: {}\n", config.apps.len()));
        for app in &config.apps {
            out.push_str(&format!("  {}: port {} → {}\n", app.name, app.listen.socket_addr(), without_userinfo(&app.upstream.to_string())));
        }
        line(&mut out, "Signed in", &status.sessions.to_string());
        let security = self.security_status();
        let lockout = match (security.everyone_locked_for_secs, security.locked_clients.len()) {
            (Some(secs), _) => format!("every sign-in locked for {}", human_duration(Duration::from_secs(secs))),
            (None, 0) => "none".to_string(),
            (None, n) => format!("{n} address(es) locked"),
        };
        line(&mut out, "Lockouts", &lockout);
        line(&mut out, "Failed codes (recent)", &security.recent_failures.len().to_string());
        for warning in &status.warnings {
            line(&mut out, "Warning", warning);
        }
        let errors = lock(&self.recent_errors).clone();
        if errors.is_empty() {
            line(&mut out, "Recent errors", "none");
        } else {
            out.push_str("Recent errors (oldest first):\n");
            for (at, message) in errors {
                out.push_str(&format!("  [{at}] {}\n", message.replace('\n', "\n    ")));
            }
        }
        let log = simpleotp_engine::logfile::tail(&self.paths.data_dir, LOG_LINES);
        line(&mut out, "Log file", &simpleotp_engine::logfile::path(&self.paths.data_dir).display().to_string());
        if log.is_empty() {
            out.push_str("Log (last lines): none yet\n");
        } else {
            out.push_str(&format!("Log (last {LOG_LINES} lines at most):\n"));
            for log_line in log.lines() {
                out.push_str(&format!("  {log_line}\n"));
            }
        }
        // A second line of defence: nothing above should hold a secret, and the scrubber masks
        // what would look like one (the log's lines are scrubbed when written and again here).
        simpleotp_engine::logfile::scrub(&out)
    }
}

fn protection_words(state: Protection) -> &'static str {
    match state {
        Protection::NeedsSetup => "not set up yet",
        Protection::Starting => "starting",
        Protection::Running => "on",
        Protection::Paused => "apps offline",
        Protection::Error => "off because of a problem",
    }
}

/// A session length as the Settings screen and the login page say it: "7 days", "12 hours".
fn lifetime_words(d: Duration) -> String {
    simpleotp_engine::server::format_span(d)
}

/// `nginx -v` (nginx prints it on stderr), or why it could not be run.
async fn nginx_version(binary: PathBuf) -> String {
    let run = tokio::task::spawn_blocking(move || simpleotp_engine::child::command(&binary).arg("-v").output()).await;
    match run {
        Ok(Ok(out)) => {
            let text = format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
            text.trim().trim_start_matches("nginx version: ").to_string()
        }
        Ok(Err(e)) => format!("cannot run it: {e}"),
        Err(e) => format!("cannot run it: {e}"),
    }
}

/// An upstream URL without a `user:password@` part, should one have been typed in.
fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://…@{host}{}", &rest[authority_end..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod unit {
    use std::time::Duration;

    use super::{lifetime_words, without_userinfo};

    #[test]
    fn session_lengths_read_as_the_settings_offer_them() {
        assert_eq!(lifetime_words(Duration::from_secs(7 * 86_400)), "7 days");
        assert_eq!(lifetime_words(Duration::from_secs(86_400)), "1 day");
        assert_eq!(lifetime_words(Duration::from_secs(12 * 3600)), "12 hours");
    }

    #[test]
    fn passwords_in_upstream_urls_are_left_out() {
        assert_eq!(without_userinfo("http://me:pw@127.0.0.1:8888/x"), "http://…@127.0.0.1:8888/x");
        assert_eq!(without_userinfo("http://127.0.0.1:8888/"), "http://127.0.0.1:8888/");
        assert_eq!(without_userinfo("http://127.0.0.1:8888/a@b"), "http://127.0.0.1:8888/a@b");
    }
}
