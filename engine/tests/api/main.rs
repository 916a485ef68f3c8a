//! The engine's integration tests, in one binary so they share one build.
//!
//! Every test runs the real parts: the real nginx from the system, the real auth server on
//! loopback, real sessions on disk in a temp directory; the browser tests drive headless
//! Chromium through chromedriver. Each test gets its own data directory and ports, so they run
//! in parallel: port 0 wherever the component can report what it got (the auth server, the demo
//! app, chromedriver, openssl), and otherwise (nginx) a port started through `on_free_port`,
//! which moves to a new port if another program takes the first one.
//!
//! * [`attacks`]: the attack battery (redirects, injection, cookies, CSRF, slow clients, ...).
//! * [`authenticators`]: several authenticator apps: `simpleotp authenticator add|list|remove`
//!   with and without a gateway, a guard per app, a removed one fails, old files load.
//! * [`helpers`]: `spawn_app()` and friends; ports, the demo upstream and `wait_until` come from
//!   `simpleotp_engine::test_support` (the `test-support` feature), shared with the tray's tests.
//! * [`budget`]: the attempt budget across restarts, and unlock's one-time sign-in link.
//! * [`flow`]: the HTTP contract through nginx (login, logout, replay, lockout, restart, ...).
//! * [`browser`]: the same flow in a real browser, plus the login page screenshots.
//! * [`ca`]: `simpleotp ca export/rotate` with the file and keychain stores; the CA page and downloads.
//! * [`cli`]: the `simpleotp` command as a user runs it (errors, signals, SIGKILL).
//! * [`faults`]: an app that is down, a full or read-only disk, SIGKILL mid-write, clock jumps.
//! * [`nginx`]: the nginx supervisor on its own, with a stand-in auth server.
//! * [`per_app`]: sessions bound to their app; apps never see a session token.
//! * [`websockets`]: WebSockets end when their session ends; only WebSocket upgrades reach apps.
//! * [`privilege`]: nginx workers of a root gateway run unprivileged, and everything still works.
//! * [`logfile`]: `simpleotp serve`'s log file after a real sign-in: the events, none of the secrets.
//! * [`updates`]: `simpleotp --version` and `serve` say when a newer release exists.
//! * [`user_paths`]: a data directory under a user's name such as `Zoë Müller`, on every OS.
//!
//! On Windows (and under Wine, `scripts/wine-nginx-test.sh`) the binary holds the modules that
//! only need nginx and HTTP: sign-in, the Host allow-list, reloads, WebSockets cut at sign-out,
//! clean stops, taken ports, [`user_paths`]. The others need Unix tools (openssl, Chromium,
//! mount, signals, root) and are built for Unix only; single tests of the shared modules that need
//! them say so with their own `cfg`.
// Tests and the benchmark start their own helper programs (openssl, curl, chromedriver, wrk…) directly;
// the product starts programs only through simpleotp_engine::child (clippy.toml).
#![allow(clippy::disallowed_methods)]

mod attacks;
#[cfg(unix)]
mod authenticators;
#[cfg(unix)]
mod browser;
#[cfg(unix)]
mod budget;
#[cfg(unix)]
mod ca;
#[cfg(unix)]
mod cli;
#[cfg(unix)]
mod faults;
mod flow;
mod helpers;
#[cfg(unix)]
mod logfile;
mod nginx;
#[cfg(unix)]
mod passkeys;
#[cfg(unix)]
mod per_app;
#[cfg(unix)]
mod privilege;
#[cfg(unix)]
mod properties;
#[cfg(unix)]
mod recovery;
#[cfg(unix)]
mod updates;
mod user_paths;
mod websockets;
