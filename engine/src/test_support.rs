//! What the engine's integration tests and the tray app's core tests share: ports for things
//! that listen, the demo app as an upstream, waiting for something to happen, and a stub HTTP
//! server playing the release server.
//!
//! Compiled only with the `test-support` feature, which only the dev-dependencies of the engine
//! and the tray app turn on: it is never part of a release build.
//!
//! Why ports need care: nginx cannot be told to listen on port 0 and report what it got, so a
//! test has to pick a port first and hand it over. Picked naively (bind port 0, read the port,
//! close the socket) the port comes from the kernel's ephemeral range, where every outgoing
//! connection and every other `bind(0)` of the parallel tests also draws, and another test can
//! be handed the same port before nginx binds it. So:
//!
//! * [`free_port`] hands out ports *below* the ephemeral range (the kernel never assigns those
//!   by itself), each one once per process, starting at a per-process random point (so that
//!   two test binaries running at the same time rarely meet), and only ports nothing listens on.
//! * [`on_free_port`] starts something on such a port and, if another program took the port
//!   in the meantime anyway, starts it again on a new one. Every test that starts nginx (or
//!   anything else that needs a fixed port) goes through it.
//! * Things that can listen on port 0 do (the demo app, the auth server).

use std::error::Error;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::RoutePrefix;

/// How many ports below the ephemeral range [`free_port`] draws from.
const POOL_SIZE: u32 = 8_000;

/// How often [`on_free_port`] tries a new port before it gives up.
const START_ATTEMPTS: usize = 5;

/// A loopback port that nothing listens on now and that no other caller in this process has
/// been given. For something the test starts itself that cannot bind port 0, use
/// [`on_free_port`], which also copes with another program taking the port first; use this
/// alone for a port that is meant to stay closed (an upstream that does not answer) or that the
/// test holds itself.
pub fn free_port() -> u16 {
    for _ in 0..POOL_SIZE {
        let port = next_candidate();
        if nothing_listens_on(port) {
            return port;
        }
    }
    panic!("no free port among {POOL_SIZE} tried below the ephemeral range");
}

/// The next port of this process's walk through the pool.
fn next_candidate() -> u16 {
    static NEXT: OnceLock<AtomicU32> = OnceLock::new();
    let (low, high) = pool();
    let next = NEXT.get_or_init(|| AtomicU32::new(random_below(high - low)));
    (low + next.fetch_add(1, Ordering::Relaxed) % (high - low)) as u16
}

/// `[low, high)`: the ports just below the ephemeral range.
fn pool() -> (u32, u32) {
    let high = ephemeral_low().clamp(1024 + POOL_SIZE, 65_535);
    (high - POOL_SIZE, high)
}

/// The lowest port the kernel assigns by itself (Linux: `ip_local_port_range`; elsewhere the
/// IANA range that macOS and Windows use).
fn ephemeral_low() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(49_152)
}

/// A number in `[0, bound)` that differs between processes (the std hasher is randomly keyed).
fn random_below(bound: u32) -> u32 {
    use std::hash::{BuildHasher, RandomState};
    (RandomState::new().hash_one(std::process::id()) % u64::from(bound)) as u32
}

/// Whether `port` can be bound on IPv4 loopback and on all IPv4 addresses (an app of the tray
/// may move from one to the other), and on IPv6 loopback where the machine has one.
fn nothing_listens_on(port: u16) -> bool {
    let v4 = [Ipv4Addr::LOCALHOST, Ipv4Addr::UNSPECIFIED].iter().all(|ip| TcpListener::bind((*ip, port)).is_ok());
    let v6 = match TcpListener::bind((Ipv6Addr::LOCALHOST, port)) {
        Ok(_) => true,
        Err(e) => e.kind() != std::io::ErrorKind::AddrInUse,
    };
    v4 && v6
}

/// Starts something that must listen on a port the test chooses (nginx for an app, a driver):
/// `start` gets a port from [`free_port`]; if it fails because another program took that port
/// in the meantime ([`is_port_in_use`]), it is called again with a new port. Returns the port
/// it finally got and what `start` returned; any other error, or a port taken on every attempt,
/// fails the test with the error.
pub async fn on_free_port<T, E>(what: &str, mut start: impl AsyncFnMut(u16) -> Result<T, E>) -> (u16, T)
where
    E: Error + 'static,
{
    for attempt in 1..=START_ATTEMPTS {
        let port = free_port();
        match start(port).await {
            Ok(started) => return (port, started),
            Err(e) if is_port_in_use(&e) && attempt < START_ATTEMPTS => {
                tracing::warn!("{what}: port {port} was taken by another program before it could be used; trying another port");
            }
            Err(e) => panic!("{what} did not start on port {port} (attempt {attempt}): {}", crate::error_chain(&e)),
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// Whether `error` (or one of its causes) says that an address was already in use: the
/// engine's own port check, a failed bind, or nginx's "Address already in use" (its text is
/// all there is of nginx's own error).
pub fn is_port_in_use(error: &(dyn Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(cause) = next {
        if cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::AddrInUse) {
            return true;
        }
        next = cause.source();
    }
    // Errors that forward their cause transparently hide it from `source()`; their text has it.
    crate::error_chain(error).to_ascii_lowercase().contains("already in use")
}

/// The demo app on a loopback port of its own (port 0), until the test's runtime ends;
/// returns its address.
pub async fn spawn_demo_upstream() -> SocketAddr {
    spawn_demo_upstream_until(RoutePrefix::default(), CancellationToken::new()).await
}

/// The demo app on a loopback port of its own (port 0), until `stop` is cancelled (or the
/// test's runtime ends); its pages link to the login routes under `route_prefix`.
pub async fn spawn_demo_upstream_until(route_prefix: RoutePrefix, stop: CancellationToken) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind a loopback port for the demo app");
    let addr = listener.local_addr().expect("the demo app's address");
    tokio::spawn(crate::demo::serve_demo_app(listener, route_prefix, stop));
    addr
}

/// Waits until `cond` holds, checking every 50 ms; fails the test naming `what` after `timeout`.
/// This is how a test waits for something to happen (a state, a file, an answer), instead of
/// sleeping for a fixed time and hoping.
pub async fn wait_until(what: &str, timeout: Duration, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether process `pid` is alive: it exists and has not ended (on Linux a zombie counts as
/// gone: it runs no code and holds no ports). Linux reads `/proc`; Windows asks for the exit
/// code of a process handle; other Unixes send signal 0.
pub fn process_alive(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
        // The state follows the command name in parentheses, which may itself contain ')'.
        let state = stat.rfind(')').and_then(|end| stat[end + 1..].split_whitespace().next());
        !matches!(state, None | Some("Z" | "X"))
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
        // SAFETY: signal 0 only checks that the process exists; no memory is involved.
        pid > 0 && unsafe { libc::kill(pid, 0) } == 0
    }
    #[cfg(windows)]
    {
        use windows_sys::Win32::Foundation::{CloseHandle, STILL_ACTIVE};
        use windows_sys::Win32::System::Threading::{GetExitCodeProcess, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION};
        // SAFETY: a handle opened here, read once and closed; `code` outlives the call.
        unsafe {
            let handle = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
            if handle.is_null() {
                return false;
            }
            let mut code = 0u32;
            let read = GetExitCodeProcess(handle, &mut code) != 0;
            CloseHandle(handle);
            read && code == STILL_ACTIVE as u32
        }
    }
}

/// What a [`StubHttpServer`] does with a request: answer with a status and a body, or hold the
/// connection open and never answer (a network that swallows packets).
pub enum StubAnswer {
    Status(u16, Vec<u8>),
    Silent,
}

/// A plain HTTP/1.1 server on loopback that answers each request as `answer` decides from the
/// request's first line (`GET /latest.json HTTP/1.1`), and counts the requests: a release server
/// for the update tests (the engine's notice and the tray's updater).
pub struct StubHttpServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl StubHttpServer {
    /// Starts it; `answer` gets the server's own base URL too, for answers that link back to it.
    pub fn start(answer: impl Fn(&str, &str) -> StubAnswer + Send + 'static) -> StubHttpServer {
        use std::io::{Read, Write};
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("a bound address"));
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (counted, own_base) = (requests.clone(), base.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut request = [0u8; 4096];
                let n = stream.read(&mut request).unwrap_or(0);
                let head = String::from_utf8_lossy(&request[..n]);
                match answer(head.lines().next().unwrap_or_default(), &own_base) {
                    StubAnswer::Status(status, body) => {
                        let _ = write!(stream, "HTTP/1.1 {status} Stub\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                        let _ = stream.write_all(&body);
                    }
                    StubAnswer::Silent => held.push(stream),
                }
            }
        });
        StubHttpServer { base, requests }
    }

    /// How many requests it got.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_below_the_ephemeral_range_and_never_handed_out_twice() {
        let (low, high) = pool();
        assert!(high <= ephemeral_low().max(1024 + POOL_SIZE));
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        assert!(ports.iter().all(|p| (low..high).contains(&u32::from(*p))), "{ports:?}");
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "a port was handed out twice");
    }

    #[tokio::test]
    async fn a_port_taken_before_the_start_is_replaced_by_another() {
        let mut tried = Vec::new();
        let mut squatters = Vec::new();
        let (port, ()) = on_free_port("the test server", async |port| {
            tried.push(port);
            if tried.len() < 3 {
                // Another program gets there first.
                squatters.push(TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap());
                return TcpListener::bind((Ipv4Addr::LOCALHOST, port)).map(drop);
            }
            Ok::<(), std::io::Error>(())
        })
        .await;
        assert_eq!(tried.len(), 3, "{tried:?}");
        assert_eq!(port, tried[2]);
    }

    #[test]
    fn this_process_is_alive_and_an_ended_child_is_not() {
        assert!(process_alive(std::process::id()));
        let mut child =
            crate::child::command(std::env::current_exe().unwrap()).arg("--list").stdout(std::process::Stdio::null()).spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        drop(child);
        assert!(!process_alive(pid));
    }

    #[test]
    fn port_in_use_is_recognised_in_the_engine_errors_and_nginx_text() {
        let in_use = crate::nginx::NginxError::PortInUse { app: "Demo".into(), addr: "127.0.0.1:8080".parse().unwrap() };
        assert!(is_port_in_use(&crate::app::StartError::Nginx(in_use)));
        let nginx_said = crate::nginx::NginxError::StartFailed {
            message: "[emerg] bind() to 127.0.0.1:8080 failed (98: Address already in use)".into(),
        };
        assert!(is_port_in_use(&nginx_said));
        assert!(!is_port_in_use(&crate::nginx::NginxError::Stopped));
    }

    #[tokio::test]
    #[should_panic(expected = "did not start on port")]
    async fn other_errors_fail_at_once() {
        on_free_port("the test server", async |_| Err::<(), _>(std::io::Error::other("broken"))).await;
    }
}
