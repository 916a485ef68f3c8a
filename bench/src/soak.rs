//! The sustained-load run (`simpleotp-bench --soak SECONDS`): the protected app at ~70 % of the
//! measured maximum for minutes, with sign-ins every TOTP step and a thousand concurrent
//! sign-outs in the middle, while the engine's memory and open file descriptors are sampled.
//! It asserts what it reports: zero errors, no growth in descriptors, memory flat.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use simpleotp_engine::protocol::session_cookie_name;
use simpleotp_engine::session::SessionToken;
use simpleotp_engine::totp::{unix_now, Totp};

use crate::measure;

#[derive(Debug, Serialize)]
pub struct SoakResults {
    pub seconds: u64,
    pub max_rps: f64,
    pub target_rps: f64,
    pub achieved_rps: f64,
    pub requests: u64,
    pub errors: u64,
    pub logins: u64,
    pub login_failures: u64,
    pub logouts: u64,
    pub logout_failures: u64,
    /// (seconds since start, RSS KiB, open fds) every 10 s.
    pub samples: Vec<(u64, u64, u64)>,
}

const CONNECTIONS: u64 = 16;
const LOGOUTS: usize = 1_000;

pub async fn run(seconds: u64) -> Result<SoakResults, String> {
    let gateway = measure::Gateway::start(LOGOUTS).await?;
    let max_rps = measure::max_rps(&gateway).await?;
    let target_rps = max_rps * 0.7;
    eprintln!("maximum {max_rps:.0} req/s; holding {target_rps:.0} req/s for {seconds} s");

    let requests = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut load = Vec::new();
    for _ in 0..CONNECTIONS {
        let (requests, errors, cookie) = (requests.clone(), errors.clone(), gateway.cookie.clone());
        let port = gateway.port;
        let interval = Duration::from_secs_f64(CONNECTIONS as f64 / target_rps);
        load.push(tokio::spawn(async move { paced_client(port, cookie, interval, deadline, requests, errors).await }));
    }

    let started = Instant::now();
    let pid = gateway.pid();
    let mut samples = vec![(0, measure::rss_kib(pid), open_fds(pid))];
    let (mut logins, mut login_failures, mut logouts, mut logout_failures) = (0, 0, 0, 0);
    let mut last_step = Totp::step_at(unix_now());
    let mut logged_out = false;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let elapsed = started.elapsed().as_secs();
        if elapsed % 10 == 0 && samples.last().is_some_and(|s| s.0 != elapsed) {
            samples.push((elapsed, measure::rss_kib(pid), open_fds(pid)));
        }
        // One sign-in per TOTP step (codes are single-use).
        let step = Totp::step_at(unix_now());
        if step > last_step {
            last_step = step;
            match measure::login(gateway.port, &gateway.totp).await {
                Ok(_) => logins += 1,
                Err(_) => login_failures += 1,
            }
        }
        if !logged_out && elapsed >= seconds / 2 {
            logged_out = true;
            let (ok, failed) = concurrent_logouts(gateway.port, &gateway.extra_tokens).await;
            logouts += ok;
            logout_failures += failed;
        }
    }
    for task in load {
        let _ = task.await;
    }
    samples.push((started.elapsed().as_secs(), measure::rss_kib(pid), open_fds(pid)));
    let total = requests.load(Ordering::Relaxed);
    Ok(SoakResults {
        seconds,
        max_rps,
        target_rps,
        achieved_rps: total as f64 / started.elapsed().as_secs_f64(),
        requests: total,
        errors: errors.load(Ordering::Relaxed),
        logins,
        login_failures,
        logouts,
        logout_failures,
        samples,
    })
}

/// One keep-alive connection sending a request every `interval` until `deadline`.
async fn paced_client(port: u16, cookie: String, interval: Duration, deadline: Instant, requests: Arc<AtomicU64>, errors: Arc<AtomicU64>) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sender: Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> = None;
    while Instant::now() < deadline {
        ticker.tick().await;
        // nginx closes a keep-alive connection after 1000 requests (`keepalive_requests`), as
        // it should; like a browser, open a new one then rather than count an error.
        if let Some(s) = sender.as_mut() {
            if s.ready().await.is_err() {
                sender = None;
            }
        }
        if sender.is_none() {
            sender = connect(port).await;
        }
        let Some(s) = sender.as_mut() else {
            errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let request =
            Request::get("/").header("host", format!("127.0.0.1:{port}")).header("cookie", &cookie).body(Empty::<Bytes>::new()).unwrap();
        let ok = match s.send_request(request).await {
            Ok(response) if response.status() == 200 => response.into_body().collect().await.is_ok(),
            Ok(response) => {
                eprintln!("soak: HTTP {}", response.status());
                false
            }
            // Never sent: the connection closed between our check and the send. Not an answer.
            Err(e) if e.is_canceled() => {
                sender = None;
                continue;
            }
            Err(e) => {
                eprintln!("soak: {e}");
                false
            }
        };
        requests.fetch_add(1, Ordering::Relaxed);
        if !ok {
            errors.fetch_add(1, Ordering::Relaxed);
            sender = None;
        }
    }
}

async fn connect(port: u16) -> Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(connection);
    Some(sender)
}

/// Signs out `tokens` all at once (POST with each session's CSRF value).
async fn concurrent_logouts(port: u16, tokens: &[String]) -> (u64, u64) {
    let tasks = tokens.iter().map(|token| {
        let token = token.clone();
        tokio::spawn(async move {
            let csrf = SessionToken::parse(&token).map(|t| t.csrf_token()).unwrap_or_default();
            let body = format!("csrf={csrf}");
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
            tokio::spawn(connection);
            let request = Request::post("/_simpleotp/logout")
                .header("host", format!("127.0.0.1:{port}"))
                .header("cookie", format!("{}={token}", session_cookie_name(port, false)))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            let response = sender.send_request(request).await.ok()?;
            Some(response.status() == 303)
        })
    });
    let mut ok = 0;
    let mut failed = 0;
    for task in tasks.collect::<Vec<_>>() {
        match task.await {
            Ok(Some(true)) => ok += 1,
            _ => failed += 1,
        }
    }
    (ok, failed)
}

fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as u64).unwrap_or(0)
}

pub fn markdown(r: &SoakResults) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "# Sustained load\n");
    let _ = writeln!(
        out,
        "`bench/run --soak {}`: the protected app (scenario B) at 70 % of its measured maximum ({:.0} of {:.0} req/s) over {CONNECTIONS} keep-alive connections for {} s; a sign-in every 30 s (each TOTP step); {LOGOUTS} sessions signed out concurrently half-way.\n",
        r.seconds, r.target_rps, r.max_rps, r.seconds
    );
    let _ = writeln!(out, "| what | value |\n|---|---:|");
    let _ = writeln!(out, "| requests | {} ({:.0} req/s) |", r.requests, r.achieved_rps);
    let _ = writeln!(out, "| errors | {} |", r.errors);
    let _ = writeln!(out, "| sign-ins / failed | {} / {} |", r.logins, r.login_failures);
    let _ = writeln!(out, "| concurrent sign-outs / failed | {} / {} |", r.logouts, r.logout_failures);
    let _ = writeln!(out, "\n| t (s) | engine RSS (KiB) | open fds |\n|---:|---:|---:|");
    for (t, rss, fds) in &r.samples {
        let _ = writeln!(out, "| {t} | {rss} | {fds} |");
    }
    out
}

/// What the soak run must show; `Err` lists what it did not.
pub fn check(r: &SoakResults) -> Result<(), String> {
    let mut problems = Vec::new();
    if r.errors > 0 {
        problems.push(format!("{} errors", r.errors));
    }
    if r.login_failures > 0 || r.logout_failures > 0 {
        problems.push(format!("{} sign-ins and {} sign-outs failed", r.login_failures, r.logout_failures));
    }
    if r.logouts as usize != LOGOUTS {
        problems.push(format!("{} of {LOGOUTS} sign-outs done", r.logouts));
    }
    // Growth is judged within the first half (before the sign-out burst) and within the second
    // (after it): the burst itself may raise the high-water mark once; a leak keeps climbing.
    let half = r.seconds / 2;
    let before: Vec<_> = r.samples.iter().skip(1).filter(|s| s.0 < half).collect();
    let after: Vec<_> = r.samples.iter().filter(|s| s.0 >= half + 10).collect();
    for (phase, samples) in [("before the burst", before), ("after the burst", after)] {
        if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
            if last.2 > first.2 + 4 {
                problems.push(format!("open descriptors grew {phase} from {} to {}", first.2, last.2));
            }
            if last.1 > first.1 + first.1 / 4 + 2048 {
                problems.push(format!("memory grew {phase} from {} KiB to {} KiB", first.1, last.1));
            }
        }
    }
    if r.achieved_rps < r.target_rps * 0.8 {
        problems.push(format!("held only {:.0} of {:.0} req/s", r.achieved_rps, r.target_rps));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
