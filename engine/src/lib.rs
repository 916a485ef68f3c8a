//! SimpleOTP's engine: a second factor (TOTP) in front of any local web app, through nginx's
//! `auth_request`.
//!
//! nginx asks the auth server on every request whether the browser holds a valid session; if
//! not, the browser is sent to a login page that takes a code from the user's authenticator app.
//! This crate is everything but the GUI; the `simpleotp` command and the tray app are thin
//! shells over it.
//!
//! How the modules fit together:
//!
//! * [`config`]: the TOML configuration and the validated newtypes in it (app name, upstream
//!   URL, listen address, route prefix).
//! * [`config_edit`]: saving the configuration into the user's own file in place (comments and
//!   order kept), refused when the file changed on disk since it was loaded.
//! * [`totp`]: the secret, code verification (RFC 6238, ±1 step, no replay) and `otpauth://` URIs.
//! * [`authenticator`]: several authenticator apps, each a named secret with its own id; the
//!   set's encoding in the secret store (a bare secret for the one setup made), and the one
//!   confirm-a-code rule for adding one ([`authenticator::PendingAuthenticator::confirm`]).
//! * [`secret`]: where the secrets live: the OS keychain through `keyring`, or a 0600 file.
//! * [`ca`]: the local certificate authority for HTTPS on the local network: made for this
//!   machine's websites only (X.509 name constraints, EKU serverAuth), its key kept beside the
//!   secret, the leaf certificates it issues for nginx, and the CAs it replaced.
//! * [`session`]: random session tokens, stored only as hashes, with lifetimes, and their
//!   persistence in the data directory.
//! * [`limiter`]: the brute-force bound: per-IP escalating lockouts and a global budget.
//! * [`ticket`]: one-time unlock tickets that let the owner in past an empty budget.
//! * [`passkey`]: passkeys (WebAuthn): where they work (a name, never an IP address), the
//!   one-time links that add one, the ceremonies, and the public keys kept.
//! * [`recovery`]: ten one-time recovery codes for a lost phone, kept only as hashes.
//! * [`redirect`]: validation of the "where to go after login" URL (no open redirect).
//! * [`gateway`]: the shared state behind the server and the operations on it (log in, check,
//!   revoke, unlock) that the server, the CLI and the tray app use.
//! * [`server`]: the hyper HTTP server nginx talks to: `check`, `login`, `logout`, `health`.
//! * [`protocol`]: what nginx and the server say to each other: route names, shared header names, the
//!   proof that a request comes from our nginx, the per-app session cookie names.
//! * [`child`]: the one way to start another program (no console window on Windows).
//! * [`nginx`]: finding nginx, generating its config, and supervising it as a child process.
//! * [`state`]: the persisted state file (sessions, the replay counter, the attempt budget).
//! * [`control`]: how a local command reaches a running gateway (e.g. `simpleotp unlock`).
//! * [`instance`]: one gateway per data directory, held by an OS file lock.
//! * [`lan`]: other devices on the network: the apps' HTTPS certificate that follows the
//!   machine's addresses, and `<hostname>.local` over mDNS.
//! * [`demo`]: the little app `simpleotp demo` protects (also the tests' upstream).
//! * [`qr`]: QR codes for the terminal, PNG and SVG.
//! * [`os_trust`]: Windows: the CA in the user's Root store, trusted for TLS servers only (the
//!   tray's "Trust on this computer"), found by fingerprint.
//! * [`updates`]: whether a newer release exists (the release manifest, `SIMPLEOTP_UPDATE_URL`,
//!   the last answer kept in the data directory); the tray app installs updates, the CLI only
//!   says so.
//! * [`app`]: [`app::Application`], which wires everything together and runs until stopped.
//! * [`logfile`]: the rotated, scrubbed log file in the data directory (`logs/simpleotp.log`),
//!   and [`logfile::scrub`], which masks anything a person could sign in with.
//! * `test_support` (only with the `test-support` feature, which only dev-dependencies turn
//!   on): ports, the demo upstream and waiting, shared by the engine's and the tray's tests.
//!
//! The modules above are the crate's API (the CLI, the tray app, the bench, the fuzz targets and
//! the integration tests use them). `fsutil` (private files, atomic writes), `html` (escaping)
//! and the server's HTML pages are internal.

pub mod app;
pub mod authenticator;
pub mod ca;
pub mod child;
pub mod config;
pub mod config_edit;
pub mod control;
pub mod demo;
mod fsutil;
pub mod gateway;
mod html;
pub mod instance;
pub mod lan;
pub mod limiter;
pub mod logfile;
pub mod nginx;
pub mod os_trust;
pub mod passkey;
pub mod protocol;
pub mod qr;
pub mod recovery;
pub mod redirect;
pub mod secret;
pub mod server;
pub mod session;
pub mod state;
#[cfg(feature = "test-support")]
pub mod test_support;
pub mod ticket;
pub mod totp;
pub mod updates;

/// An error and its causes on one line (`outer: inner: innermost`) for a person to read,
/// skipping causes whose text the outer message already repeats. Used by the CLI and the tray
/// app for every error they show.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}
