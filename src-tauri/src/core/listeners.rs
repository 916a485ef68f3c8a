//! The bypass check: can other devices open a protected app through its own port, without a code?
//!
//! SimpleOTP only guards the new, protected port. An app started with `--ip=0.0.0.0` (or a
//! server that binds everything by default) still answers on its own port to every device on
//! the network, and they skip the code by going there. Rather than ask each OS who listens
//! where (`/proc/net/tcp`, `netstat`, `lsof`), the check does what another device would do: it
//! connects to the app's own port at each of this computer's network addresses (loopback left
//! out, the interfaces listed as for LAN access: [`simpleotp_engine::lan::network_interfaces`]).
//! Whatever accepts there is reachable without a code. The same code runs on every OS.
//!
//! What it cannot see: a firewall that lets this computer's own connections through but not
//! other devices' (Windows Firewall never filters a computer's connections to itself, and most
//! Linux and macOS setups let them through as well). So it may warn about an app a firewall
//! already shields; the window says so, and starting the app on 127.0.0.1 is the fix it can see.
//!
//! The core keeps the answer current ([`Core::check_bypasses`]): right after an app is added,
//! changed or removed, when the window asks (Check again), and every [`RECHECK_INTERVAL`]
//! ([`Core::recheck_bypasses_periodically`]), so the badge in Status, Apps and the tray menu goes
//! away by itself once the app is fixed.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{info, warn};

use simpleotp_engine::config::AppConfig;

use super::apps::upstream_port_if_local;
use super::Core;
use crate::sync::lock;

/// How long one connection attempt waits. The addresses are this computer's own, so an answer
/// (accepted or refused) comes at once; only a firewall that drops packets makes it wait.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(700);

/// How often every app is checked again.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(30);

/// This computer's addresses that other devices may use: every interface's addresses but
/// loopback (and IPv6 link-local), those of interfaces with a default route first, so that the
/// address a warning names is the one other devices are likeliest to know.
pub fn network_addresses() -> Vec<IpAddr> {
    let mut interfaces = simpleotp_engine::lan::network_interfaces();
    interfaces.sort_by_key(|i| !i.default_route);
    let mut addresses: Vec<IpAddr> = Vec::new();
    for ip in interfaces.into_iter().flat_map(|i| i.addresses) {
        if !ip.is_loopback() && !ip.is_unspecified() && !addresses.contains(&ip) {
            addresses.push(ip);
        }
    }
    addresses
}

/// The first of `addresses` (in their order) where something accepts a TCP connection on
/// `port`, each tried at once and given `timeout`. The connection is closed straight away;
/// nothing is sent.
pub async fn reachable_at(port: u16, addresses: &[IpAddr], timeout: Duration) -> Option<SocketAddr> {
    let mut attempts = tokio::task::JoinSet::new();
    for (index, &ip) in addresses.iter().enumerate() {
        let addr = SocketAddr::new(ip, port);
        attempts.spawn(async move {
            let connected = matches!(tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await, Ok(Ok(_)));
            (index, connected.then_some(addr))
        });
    }
    let mut found: Vec<(usize, SocketAddr)> = Vec::new();
    while let Some(attempt) = attempts.join_next().await {
        if let Ok((index, Some(addr))) = attempt {
            found.push((index, addr));
        }
    }
    found.into_iter().min_by_key(|(index, _)| *index).map(|(_, addr)| addr)
}

/// For the apps that run on this computer (a loopback upstream), where each upstream port is
/// reachable at one of `addresses` (the port's key is absent when it is not).
pub async fn bypasses(apps: &[AppConfig], addresses: &[IpAddr], timeout: Duration) -> BTreeMap<u16, SocketAddr> {
    let mut ports: Vec<u16> = apps.iter().filter_map(|a| upstream_port_if_local(&a.upstream)).collect();
    ports.sort_unstable();
    ports.dedup();
    let mut checks = tokio::task::JoinSet::new();
    for port in ports {
        let addresses = addresses.to_vec();
        checks.spawn(async move { (port, reachable_at(port, &addresses, timeout).await) });
    }
    let mut found = BTreeMap::new();
    while let Some(check) = checks.join_next().await {
        if let Ok((port, Some(addr))) = check {
            found.insert(port, addr);
        }
    }
    found
}

/// What the checks found and what they share: a field of [`Core`] (`bypass`).
#[derive(Default)]
pub(super) struct Findings {
    /// Upstream port → the address:port where it answers without a code.
    reachable: Mutex<BTreeMap<u16, SocketAddr>>,
    /// One check at a time: a slow check begun before an app was added cannot finish after the
    /// next one and put back an answer without that app.
    checking: tokio::sync::Mutex<()>,
    /// "Check again soon" (an app was added, changed or removed): wakes the periodic check. Its
    /// own `Arc`, so that the periodic loop waits on it without keeping the `Core` alive.
    soon: Arc<Notify>,
}

impl Core {
    /// Where the app whose upstream is `app` can be opened without a code, as of the last check
    /// (`address:port`); `None` for an app on another computer or one not found reachable.
    pub(super) fn reachable_without_code(&self, app: &AppConfig) -> Option<String> {
        let port = upstream_port_if_local(&app.upstream)?;
        lock(&self.bypass.reachable).get(&port).map(SocketAddr::to_string)
    }

    /// Asks the periodic check (if it runs) to check every app now rather than at its next turn.
    pub(super) fn recheck_bypasses_soon(&self) {
        self.bypass.soon.notify_one();
    }

    /// Checks every app now at this computer's network addresses and keeps the answer; the
    /// window and the tray hear of a change. Returns the status afterwards.
    pub async fn check_bypasses(self: &Arc<Self>) -> super::StatusView {
        let addresses = network_addresses();
        self.check_bypasses_at(&addresses).await;
        self.status()
    }

    /// [`Core::check_bypasses`] at the given addresses (the tests choose them).
    pub(super) async fn check_bypasses_at(self: &Arc<Self>, addresses: &[IpAddr]) {
        let _one_at_a_time = self.bypass.checking.lock().await;
        let apps = self.config().apps;
        let reachable = bypasses(&apps, addresses, CONNECT_TIMEOUT).await;
        let changed = {
            let mut mine = lock(&self.bypass.reachable);
            let changed = *mine != reachable;
            *mine = reachable.clone();
            changed
        };
        if changed {
            for app in &apps {
                if let Some(at) = upstream_port_if_local(&app.upstream).and_then(|port| reachable.get(&port)) {
                    warn!(app = %app.name, "reachable without a code at {at} (its own port, at this computer's network address)");
                }
            }
            if reachable.is_empty() {
                info!("no app is reachable without a code");
            }
            self.changed();
        }
    }

    /// Every [`RECHECK_INTERVAL`], and when an app was added, changed or removed, checks every
    /// app again (see [`Core::check_bypasses`]); ends when the `Core` is dropped.
    pub async fn recheck_bypasses_periodically(core: Weak<Core>) {
        let soon = match core.upgrade() {
            Some(core) => core.bypass.soon.clone(),
            None => return,
        };
        loop {
            {
                let Some(core) = core.upgrade() else { return };
                core.check_bypasses().await;
            }
            tokio::select! {
                _ = tokio::time::sleep(RECHECK_INTERVAL) => {}
                _ = soon.notified() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, TcpListener};

    use super::*;

    /// A port nothing listens on (bound, then let go).
    fn closed_port() -> u16 {
        TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    /// The pure check, with the addresses given: a real listener is found at the address it
    /// listens on, and nothing is found where nothing listens. 127.0.0.1 stands in for "an
    /// address of this computer" here only because every machine has it; the tests below use
    /// the machine's real network addresses.
    #[tokio::test]
    async fn a_listener_is_found_at_the_address_it_listens_on_and_the_first_address_wins() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let other_loopback = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(reachable_at(port, &[loopback], CONNECT_TIMEOUT).await, Some(SocketAddr::new(loopback, port)));
        // 127.0.0.2 is loopback too, but the listener took 127.0.0.1 only: refused there.
        assert_eq!(reachable_at(port, &[other_loopback, loopback], CONNECT_TIMEOUT).await, Some(SocketAddr::new(loopback, port)));
        assert_eq!(reachable_at(port, &[other_loopback], CONNECT_TIMEOUT).await, None);
        assert_eq!(reachable_at(closed_port(), &[loopback], CONNECT_TIMEOUT).await, None);
        assert_eq!(reachable_at(port, &[], CONNECT_TIMEOUT).await, None, "no network address: nothing to reach");
        drop(listener);
    }

    /// With the machine's real network addresses: an app listening on all interfaces is
    /// reachable at one of them, the same app on 127.0.0.1 only is not. Skipped (said so) on a
    /// machine without a network address.
    #[tokio::test]
    async fn all_interfaces_is_reachable_at_this_computers_address_and_loopback_only_is_not() {
        let addresses = network_addresses();
        assert!(addresses.iter().all(|ip| !ip.is_loopback()), "{addresses:?}");
        if addresses.is_empty() {
            eprintln!("skipped: this machine has no network address besides loopback");
            return;
        }
        let everywhere = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = everywhere.local_addr().unwrap().port();
        let found = reachable_at(port, &addresses, CONNECT_TIMEOUT).await.expect("reachable at this computer's address");
        assert!(addresses.contains(&found.ip()) && found.port() == port, "{found}");
        drop(everywhere);

        let local = TcpListener::bind(("127.0.0.1", port)).or_else(|_| TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = local.local_addr().unwrap().port();
        assert_eq!(reachable_at(port, &addresses, CONNECT_TIMEOUT).await, None, "127.0.0.1 only: not reachable from elsewhere");
        drop(local);

        // IPv6's "all interfaces" (`::`, dual-stack where the OS makes it so) counts too.
        if let Ok(v6) = TcpListener::bind("[::]:0") {
            let port = v6.local_addr().unwrap().port();
            let v6_addresses: Vec<IpAddr> = addresses.iter().copied().filter(IpAddr::is_ipv6).collect();
            if !v6_addresses.is_empty() {
                assert!(reachable_at(port, &v6_addresses, CONNECT_TIMEOUT).await.is_some(), "[::]:{port} at {v6_addresses:?}");
            }
        }
    }

    /// Only apps on this computer are checked, each upstream port once.
    #[tokio::test]
    async fn only_upstreams_on_this_computer_are_checked() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let another = TcpListener::bind("127.0.0.1:0").unwrap();
        let another_port = another.local_addr().unwrap().port();
        let app = |name: &str, upstream: String| {
            AppConfig::new(
                name.parse().unwrap(),
                upstream.parse().unwrap(),
                simpleotp_engine::config::ListenAddr(([127, 0, 0, 1], 8081).into()),
            )
        };
        let loopback = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
        let apps = [
            app("Local", format!("http://127.0.0.1:{port}")),
            app("Same", format!("http://localhost:{port}")),
            // Another computer's app is not ours to check: its port here is someone else's
            // (something listens on it, but no app of this computer's was asked about).
            app("Elsewhere", format!("http://192.0.2.77:{another_port}")),
        ];
        let found = bypasses(&apps, &loopback, CONNECT_TIMEOUT).await;
        assert_eq!(found, BTreeMap::from([(port, SocketAddr::new(loopback[0], port))]));
        drop((listener, another));
    }
}
