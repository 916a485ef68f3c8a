//! The engine's integration tests, in one binary so they share one build.
//!
//! Every test runs the real parts: the real nginx from the system, the real auth server on
//! loopback, real sessions on disk in a temp directory; the browser tests drive headless
//! Chromium through chromedriver. Each test gets its own data directory and ports (port 0), so
//! they run in parallel.
//!
//! * [`attacks`]: the attack battery (redirects, injection, cookies, CSRF, slow clients, ...).
//! * [`helpers`]: `spawn_app()` and friends.
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

#![cfg(unix)]

mod attacks;
mod browser;
mod budget;
mod ca;
mod cli;
mod faults;
mod flow;
mod helpers;
mod nginx;
mod per_app;
mod privilege;
mod properties;
mod websockets;
