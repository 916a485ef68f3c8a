//! `<hostname>.local` on the local network, through multicast DNS (`mdns-sd`, pure Rust).
//!
//! Phones and laptops resolve `.local` names with mDNS, so `https://box.local:8081/` works
//! without any DNS server and keeps working when DHCP hands out a new address. Each
//! network-facing app is registered as an `_https._tcp` service on `<hostname>.local`, which
//! also makes the responder answer A/AAAA queries for that name with the given addresses.
//!
//! mDNS is a convenience, never a reason not to start: without multicast (a container, a
//! network namespace, a firewall) the apps still answer by address, and the log says why the
//! name is not advertised.

use std::net::IpAddr;

use mdns_sd::{ServiceDaemon, ServiceInfo};
use tracing::{info, warn};

use crate::config::{AppConfig, MachineNames};

/// Whether any of `addresses` sits on an interface that is up and carries multicast (on Unix,
/// the `IFF_MULTICAST` flag, which e.g. `lo` lacks). Only for the log line: the responder itself
/// follows the interfaces as they come and go.
#[cfg(unix)]
fn multicast_capable(addresses: &[IpAddr]) -> bool {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we only read, then free once.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return true; // cannot tell: do not claim it is unavailable
    }
    let mut capable = false;
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: `entry` is a node of the list getifaddrs returned, not yet freed.
        let node = unsafe { &*entry };
        let flags = node.ifa_flags as libc::c_int;
        let usable = flags & libc::IFF_UP != 0 && flags & libc::IFF_MULTICAST != 0 && flags & libc::IFF_LOOPBACK == 0;
        // SAFETY: a non-null ifa_addr points at a sockaddr of the family it names.
        if usable && !node.ifa_addr.is_null() && unsafe { sockaddr_ip(node.ifa_addr) }.is_some_and(|ip| addresses.contains(&ip)) {
            capable = true;
        }
        entry = node.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed exactly once.
    unsafe { libc::freeifaddrs(list) };
    capable
}

/// The IP address in a `sockaddr`, for IPv4 and IPv6 ones.
///
/// # Safety
/// `addr` must point at a valid `sockaddr` whose storage matches its `sa_family`.
#[cfg(unix)]
unsafe fn sockaddr_ip(addr: *const libc::sockaddr) -> Option<IpAddr> {
    match (*addr).sa_family as libc::c_int {
        libc::AF_INET => {
            let v4 = &*(addr as *const libc::sockaddr_in);
            Some(IpAddr::from(u32::from_be(v4.sin_addr.s_addr).to_be_bytes()))
        }
        libc::AF_INET6 => {
            let v6 = &*(addr as *const libc::sockaddr_in6);
            Some(IpAddr::from(v6.sin6_addr.s6_addr))
        }
        _ => None,
    }
}

/// Windows reports no such flag through a portable call; assume multicast works there.
#[cfg(not(unix))]
fn multicast_capable(_addresses: &[IpAddr]) -> bool {
    true
}

/// The DNS-SD service type each network-facing app is advertised as.
const SERVICE_TYPE: &str = "_https._tcp.local.";

/// Advertises the machine's `.local` name and the network-facing apps while it lives; stopped
/// with [`Advertiser::stop`] (on shutdown).
pub struct Advertiser {
    daemon: ServiceDaemon,
    /// `<label>.local.`, the host name the services point at.
    host: String,
    /// The full names of the services registered now.
    registered: Vec<String>,
}

impl Advertiser {
    /// Starts the responder, or logs why it cannot (and returns `None`) when this machine has no
    /// usable `.local` name or multicast is not available.
    pub fn start(machine: &MachineNames) -> Option<Advertiser> {
        let Some(local) = machine.names().iter().find(|n| n.as_str().ends_with(".local")) else {
            warn!("not advertising this machine over mDNS: its host name is not a valid DNS name");
            return None;
        };
        match ServiceDaemon::new() {
            Ok(daemon) => Some(Advertiser { daemon, host: format!("{}.", local.as_str()), registered: Vec::new() }),
            Err(e) => {
                warn!("cannot advertise {} over mDNS (multicast unavailable?): {e}; open the apps by address instead", local.as_str());
                None
            }
        }
    }

    /// Advertises the network-facing `apps` at `addresses` (the LAN ones), replacing what was
    /// advertised before.
    pub fn update(&mut self, apps: &[AppConfig], addresses: &[IpAddr]) {
        self.unregister_all();
        if addresses.is_empty() {
            return;
        }
        for app in apps.iter().filter(|app| app.listen.is_network_facing()) {
            let port = app.listen.socket_addr().port();
            let service = ServiceInfo::new(
                SERVICE_TYPE,
                app.name.as_str(),
                &self.host,
                addresses,
                port,
                None::<std::collections::HashMap<String, String>>,
            );
            let registered = service.and_then(|service| {
                let full_name = service.get_fullname().to_string();
                self.daemon.register(service).map(|()| full_name)
            });
            match registered {
                Ok(full_name) => self.registered.push(full_name),
                Err(e) => warn!("cannot advertise app {:?} over mDNS: {e}", app.name.as_str()),
            }
        }
        if !self.registered.is_empty() {
            let list = addresses.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(" ");
            let name = self.host.trim_end_matches('.');
            if multicast_capable(addresses) {
                info!("advertising {name} over mDNS at {list}");
            } else {
                warn!("cannot advertise {name} over mDNS: no network interface that is up carries {list} (multicast unavailable?); open the apps by address instead");
            }
        }
    }

    fn unregister_all(&mut self) {
        for full_name in self.registered.drain(..) {
            if let Err(e) = self.daemon.unregister(&full_name) {
                warn!("cannot withdraw the mDNS service {full_name}: {e}");
            }
        }
    }

    /// Withdraws the services (goodbye packets, so other devices forget them at once) and stops
    /// the responder.
    pub fn stop(mut self) {
        self.unregister_all();
        if let Ok(done) = self.daemon.shutdown() {
            // The responder sends the goodbyes before it reports having stopped.
            let _ = done.recv_timeout(std::time::Duration::from_secs(1));
        }
    }
}
