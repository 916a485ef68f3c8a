//! Reaching the protected apps from other devices on the local network, safely.
//!
//! An app whose listen address is not loopback is served by the managed nginx over HTTPS (see
//! `nginx::render_config`) with a certificate from this machine's own CA ([`crate::ca`]). This
//! module keeps that certificate true to the machine:
//!
//! * [`Reach`]: every name and address the network-facing apps can be reached at (the
//!   machine's names, `localhost`, each app's `hosts`, and, when an app listens on
//!   `0.0.0.0`/`::`, the addresses of the interfaces chosen to face the network: `[lan]
//!   interfaces`, by default those with a default route, see [`facing`]). The leaf covers what
//!   of it the CA may vouch for, and nothing else: a VPN's or a docker bridge's address is not
//!   shown to whoever completes a handshake.
//! * [`LanCertificates`]: loads the CA when first needed, issues a leaf for the current
//!   [`Reach`], writes it (0600) where nginx reads it, and tells whether it changed.
//! * [`watch`]: polls the interfaces every [`POLL_INTERVAL`]; a change in what the leaf would
//!   hold (DHCP, another Wi-Fi), or a leaf near its expiry, means a new leaf and an nginx reload
//!   (which cuts WebSockets; sessions live in the engine, so everyone stays signed in). Address
//!   changes are paced to one leaf per [`MIN_REISSUE_INTERVAL`].
//!
//! nginx still listens on `0.0.0.0`/`::` for such apps, not on the chosen interfaces' addresses
//! only: listening per address would need a reload for every address that comes or goes (the
//! reloads this module avoids), and an address that arrives by DHCP would not be served until
//! then. What the chosen interfaces limit is what the certificate, the URLs and mDNS disclose.
//! * [`mdns`]: advertises `<hostname>.local` and an `_https._tcp` service per app, so phones
//!   can open a name rather than an address.
//! * [`app_urls`]: the URLs a person opens (printed by `simpleotp serve`).
//!
//! Why poll rather than subscribe to the OS's address-change events: each OS has its own API
//! (netlink, `NotifyIpInterfaceChange`, `SCDynamicStore`), while listing the interfaces is one
//! cheap, portable call; two seconds is well within "a new address works within seconds".

pub mod mdns;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::ca::{CaStore, CertificateAuthority, LeafCertificate};
use crate::config::{AppConfig, HostName, InterfaceName, LanSettings, MachineNames};
use crate::fsutil::write_atomic;
use crate::gateway::Gateway;
use crate::nginx::{Nginx, NginxLayout};

/// How often the watcher looks at the machine's addresses (and the leaf's expiry).
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The least time between two leaves the watcher issues for address changes. Each new leaf means
/// an nginx reload, and each reload cuts every WebSocket: an address that flaps (or a router
/// advertisement sent every 2 s by someone on the network) must not turn into a reload every
/// poll. The change is not lost: the poll after the pause sees the latest addresses and issues
/// for them. A leaf due for renewal, and the apps' own changes (`prepare`), are not held back.
pub const MIN_REISSUE_INTERVAL: Duration = Duration::from_secs(30);

/// Whether the watcher may issue a leaf for an address change `now`, the previous leaf having
/// been issued at `last_issued`. A leaf due for renewal is always allowed.
fn reissue_allowed(last_issued: Option<Instant>, now: Instant, renewal_due: bool) -> bool {
    renewal_due || last_issued.is_none_or(|last| now.saturating_duration_since(last) >= MIN_REISSUE_INTERVAL)
}

/// Why the LAN certificate could not be made or put in place.
#[derive(Debug, thiserror::Error)]
pub enum LanError {
    /// Loading or making the CA, or issuing the leaf, failed; the CA's message says what to do.
    #[error(transparent)]
    Ca(crate::ca::CaError),
    /// The blocking task (keychain, interface list) did not finish.
    #[error("the local CA could not be loaded: {0}")]
    Task(String),
    #[error("cannot write the certificate for nginx to {}: {source}", .path.display())]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Every name and address the network-facing apps can be reached at: what their certificate
/// must cover. Sorted and without duplicates, so two reaches compare equal when they cover the
/// same things.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reach {
    pub names: Vec<HostName>,
    pub addresses: Vec<IpAddr>,
}

impl Reach {
    /// The reach of `apps` on a machine with these names and interface addresses; `None` when
    /// no app listens beyond loopback (then no certificate is needed).
    ///
    /// An app on `0.0.0.0` is reachable at every IPv4 address of the machine, one on `::` at
    /// every IPv6 one (nginx listens IPv6-only there); one on a specific address only at that.
    /// `localhost` is covered too (a name that reaches the TLS side through a hosts entry or a
    /// tunnel still verifies); loopback itself is served without TLS, see
    /// [`AppConfig::on_this_computer`].
    ///
    /// Apps reached on this computer at their own name ([`AppConfig::https_name`], also when
    /// they face the network) add that name (`jupyter.localhost`) and their loopback address.
    pub fn of(apps: &[AppConfig], machine: &MachineNames, interfaces: &[IpAddr]) -> Option<Reach> {
        let facing: Vec<&AppConfig> = apps.iter().filter(|app| app.listen.is_network_facing()).collect();
        let own_names: Vec<(AppConfig, HostName)> = apps
            .iter()
            .filter_map(AppConfig::on_this_computer)
            .filter_map(|local| local.own_host_name().map(|name| (local, name)))
            .collect();
        if facing.is_empty() && own_names.is_empty() {
            return None;
        }
        let mut names = Vec::new();
        let mut addresses = Vec::new();
        for (local, name) in own_names {
            names.push(name);
            addresses.push(local.listen.socket_addr().ip());
        }
        if !facing.is_empty() {
            names.push("localhost".parse().expect("localhost is a valid host name"));
            names.extend(machine.names().iter().cloned());
            names.extend(facing.iter().flat_map(|app| app.hosts.iter().cloned()));
        }
        for app in &facing {
            let ip = app.listen.socket_addr().ip();
            match ip {
                IpAddr::V4(v4) if v4.is_unspecified() => addresses.extend(interfaces.iter().filter(|a| a.is_ipv4())),
                IpAddr::V6(v6) if v6.is_unspecified() => addresses.extend(interfaces.iter().filter(|a| a.is_ipv6())),
                _ => addresses.push(ip),
            }
        }
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        names.dedup();
        addresses.sort();
        addresses.dedup();
        Some(Reach { names, addresses })
    }

    /// The addresses other devices use (loopback left out): for URLs and mDNS.
    pub fn lan_addresses(&self) -> impl Iterator<Item = &IpAddr> {
        self.addresses.iter().filter(|a| !a.is_loopback())
    }
}

/// A network interface of this machine, as the tray's Settings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInterface {
    pub name: String,
    /// Its addresses, IPv6 link-local left out (see [`interface_addresses`]).
    pub addresses: Vec<IpAddr>,
    /// Whether it carries a default route (the default choice of interfaces facing the network).
    pub default_route: bool,
}

/// The machine's interfaces with addresses, loopback left out, sorted by name.
pub fn network_interfaces() -> Vec<NetworkInterface> {
    let listed = match if_addrs::get_if_addrs() {
        Ok(listed) => listed,
        Err(e) => {
            warn!("cannot list this machine's network addresses: {e}");
            return Vec::new();
        }
    };
    let routed = default_route::interfaces(&listed);
    let mut interfaces: Vec<NetworkInterface> = Vec::new();
    for interface in listed.iter().filter(|i| !i.is_loopback()) {
        let ip = interface.ip();
        if is_link_local_v6(&ip) {
            continue;
        }
        match interfaces.iter_mut().find(|i| i.name == interface.name) {
            Some(known) => known.addresses.push(ip),
            None => interfaces.push(NetworkInterface {
                name: interface.name.clone(),
                addresses: vec![ip],
                default_route: routed.contains(&interface.name),
            }),
        }
    }
    for interface in &mut interfaces {
        interface.addresses.sort();
        interface.addresses.dedup();
    }
    interfaces.sort_by(|a, b| a.name.cmp(&b.name));
    interfaces
}

/// The interfaces that face the network under `choice` (`[lan] interfaces`): the named ones;
/// by default those with a default route, or all of them when none has one (a LAN without a
/// router to the internet, where the machine's only addresses are the LAN's).
pub fn facing<'a>(interfaces: &'a [NetworkInterface], choice: Option<&[InterfaceName]>) -> Vec<&'a NetworkInterface> {
    match choice {
        Some(names) => interfaces.iter().filter(|i| names.iter().any(|n| n.as_str() == i.name)).collect(),
        None if interfaces.iter().any(|i| i.default_route) => interfaces.iter().filter(|i| i.default_route).collect(),
        None => interfaces.iter().collect(),
    }
}

/// The machine's addresses, as [`Reach::of`] wants them: loopback (this machine's own browser)
/// and the addresses of the interfaces that face the network under `choice` (see [`facing`]);
/// IPv6 link-local left out (an `fe80::` address only works with a zone, which no URL or
/// certificate can carry). An error listing them is logged and counts as "no addresses".
pub fn facing_addresses(choice: Option<&[InterfaceName]>) -> Vec<IpAddr> {
    let interfaces = network_interfaces();
    let mut addresses: Vec<IpAddr> = vec![IpAddr::from([127, 0, 0, 1]), IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)];
    addresses.extend(facing(&interfaces, choice).iter().flat_map(|i| i.addresses.iter().copied()));
    addresses.sort();
    addresses.dedup();
    addresses
}

/// [`facing_addresses`] with the default choice.
pub fn interface_addresses() -> Vec<IpAddr> {
    facing_addresses(None)
}

fn is_link_local_v6(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

/// Which interfaces carry a default route. Linux: the kernel's routing tables in `/proc`, which
/// name every such interface. Elsewhere: the UDP-connect trick, which asks the OS which source
/// address it would use towards the internet (no packet is sent) and picks the interface with
/// that address; one per address family, which is the route the OS prefers. A crate
/// (`netdev`) would add a large dependency for the same answer.
mod default_route {
    use std::collections::BTreeSet;

    #[cfg(target_os = "linux")]
    pub fn interfaces(_listed: &[if_addrs::Interface]) -> BTreeSet<String> {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        super::default_route_interfaces(&read("/proc/net/route"), &read("/proc/net/ipv6_route"))
    }

    #[cfg(not(target_os = "linux"))]
    pub fn interfaces(listed: &[if_addrs::Interface]) -> BTreeSet<String> {
        use std::net::{SocketAddr, UdpSocket};
        // Documentation addresses (TEST-NET-1, 2001:db8::): only the route lookup matters.
        let source = |bind: &str, towards: &str| -> Option<std::net::IpAddr> {
            let socket = UdpSocket::bind(bind).ok()?;
            socket.connect(towards.parse::<SocketAddr>().ok()?).ok()?;
            socket.local_addr().ok().map(|a| a.ip())
        };
        [source("0.0.0.0:0", "192.0.2.1:9"), source("[::]:0", "[2001:db8::1]:9")]
            .into_iter()
            .flatten()
            .filter_map(|ip| listed.iter().find(|i| i.ip() == ip).map(|i| i.name.clone()))
            .collect()
    }
}

/// The interfaces with a default route in Linux's `/proc/net/route` (destination and mask 0)
/// and `/proc/net/ipv6_route` (destination `::/0`, not a reject route, not `lo`).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn default_route_interfaces(route: &str, ipv6_route: &str) -> std::collections::BTreeSet<String> {
    const RTF_REJECT: u32 = 0x0200;
    let mut names = std::collections::BTreeSet::new();
    for line in route.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() >= 8 && fields[1] == "00000000" && fields[7] == "00000000" {
            names.insert(fields[0].to_string());
        }
    }
    for line in ipv6_route.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 10 || fields[0].bytes().any(|b| b != b'0') || fields[1] != "00" {
            continue;
        }
        let flags = u32::from_str_radix(fields[8], 16).unwrap_or(RTF_REJECT);
        if flags & RTF_REJECT == 0 && fields[9] != "lo" {
            names.insert(fields[9].to_string());
        }
    }
    names
}

/// The URLs a person opens for `app`: `http://127.0.0.1:PORT/` for a loopback app; for a
/// network-facing one `https://<hostname>.local:PORT/` and `https://<address>:PORT/` for each
/// address other devices can use, then this computer's own ([`AppConfig::protected_url`]).
pub fn app_urls(app: &AppConfig, machine: &MachineNames, interfaces: &[IpAddr]) -> Vec<String> {
    if !app.listen.is_network_facing() {
        return vec![app.protected_url()];
    }
    let port = app.listen.socket_addr().port();
    let mut urls: Vec<String> =
        machine.names().iter().filter(|n| n.as_str().ends_with(".local")).map(|n| format!("https://{}:{port}/", n.as_str())).collect();
    if let Some(reach) = Reach::of(std::slice::from_ref(app), machine, interfaces) {
        for ip in reach.lan_addresses() {
            urls.push(match ip {
                IpAddr::V4(v4) => format!("https://{v4}:{port}/"),
                IpAddr::V6(v6) => format!("https://[{v6}]:{port}/"),
            });
        }
    }
    // Last, how this computer opens it (plain HTTP on loopback for an app on all interfaces).
    let here = app.protected_url();
    if !urls.contains(&here) {
        urls.push(here);
    }
    urls
}

/// The one URL to give another device (a phone) for `app`: its `https://<hostname>.local:PORT/`
/// when the machine has such a name, else its first network address; `None` for an app on this
/// computer only.
pub fn other_device_url(app: &AppConfig, machine: &MachineNames, interfaces: &[IpAddr]) -> Option<String> {
    if !app.listen.is_network_facing() {
        return None;
    }
    app_urls(app, machine, interfaces).into_iter().find(|url| url.starts_with("https://"))
}

/// A leaf in nginx's files and what it holds.
struct Issued {
    /// Exactly the names and addresses in the leaf: a change to anything else of the machine
    /// (a public IPv6 privacy address, a name the CA may not vouch for) changes nothing here, so
    /// it causes no new leaf and no reload.
    holds: Reach,
    leaf: LeafCertificate,
    /// When the watcher issued it for an address change; `None` for a leaf made for the apps
    /// (start, a new configuration): the first address change after one of those is not held
    /// back, only a second one within the pause is.
    paced_at: Option<Instant>,
}

/// The leaf certificate nginx presents on network-facing ports, kept covering the apps' current
/// [`Reach`]. The CA is loaded (or made) the first time a network-facing app needs it, so a
/// gateway that only serves loopback never touches the CA key.
pub struct LanCertificates {
    store: CaStore,
    layout: NginxLayout,
    machine: MachineNames,
    /// The CA, once loaded (or made). A mutex, not a once-cell: `rotate_ca` replaces it, so a
    /// running gateway never issues another leaf with a key that was rotated away.
    ca: tokio::sync::Mutex<Option<Arc<CertificateAuthority>>>,
    /// The apps nginx serves now (they change when the configuration is applied).
    apps: std::sync::Mutex<Vec<AppConfig>>,
    /// The interfaces chosen to face the network (`[lan] interfaces`; `None`: the default).
    interfaces: std::sync::Mutex<Option<Vec<InterfaceName>>>,
    /// What the leaf in nginx's files holds (the part of the reach the CA may vouch for), the
    /// leaf, and when it was issued (for [`MIN_REISSUE_INTERVAL`]).
    current: tokio::sync::Mutex<Option<Issued>>,
    /// Offers the CA on its page once it is loaded (or made).
    gateway: Gateway,
    /// What the last warning about names and addresses the CA cannot vouch for listed (the
    /// watcher computes the leaf's contents every poll; the warning is for news only).
    refused_warned: std::sync::Mutex<Vec<String>>,
}

impl LanCertificates {
    pub fn new(store: CaStore, layout: NginxLayout, apps: &[AppConfig], gateway: Gateway) -> LanCertificates {
        LanCertificates {
            gateway,
            store,
            layout,
            machine: MachineNames::this_machine(),
            ca: tokio::sync::Mutex::new(None),
            apps: std::sync::Mutex::new(apps.to_vec()),
            interfaces: std::sync::Mutex::new(None),
            current: tokio::sync::Mutex::new(None),
            refused_warned: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The CA, loaded or made on first use (off the async threads: the keychain may block).
    pub async fn ca(&self) -> Result<Arc<CertificateAuthority>, LanError> {
        let mut ca = self.ca.lock().await;
        if let Some(ca) = ca.as_ref() {
            return Ok(ca.clone());
        }
        let store = self.store.clone();
        let machine = self.machine.clone();
        let loaded = tokio::task::spawn_blocking(move || crate::ca::load_or_create(&store, &machine))
            .await
            .map_err(|e| LanError::Task(e.to_string()))?
            .map_err(LanError::Ca)?;
        // A CA made just now is offered on the CA page at once.
        self.gateway.set_ca_certificate(Some(loaded.certificate()));
        Ok(ca.insert(Arc::new(loaded)).clone())
    }

    /// Replaces the stored CA with a new one (`simpleotp ca rotate` while this gateway runs:
    /// the gateway is then the only writer of the CA), offers it on the CA page, and, when an
    /// app faces the network, writes a leaf from the new CA. Returns the new CA and whether the
    /// leaf changed (then nginx must reload to present it). While this runs, the watcher cannot
    /// issue (it waits for the leaf's lock), so no leaf from the old key follows.
    pub async fn rotate_ca(&self) -> Result<(Arc<CertificateAuthority>, bool), LanError> {
        let mut current = self.current.lock().await;
        let new_ca = {
            let mut ca = self.ca.lock().await;
            let store = self.store.clone();
            let machine = self.machine.clone();
            let rotated = tokio::task::spawn_blocking(move || crate::ca::rotate(&store, &machine))
                .await
                .map_err(|e| LanError::Task(e.to_string()))?
                .map_err(LanError::Ca)?;
            self.gateway.set_ca_certificate(Some(rotated.certificate()));
            ca.insert(Arc::new(rotated)).clone()
        };
        let Some(reach) = self.reach() else {
            // No network-facing app: no leaf to replace; the next one comes from the new CA.
            *current = None;
            return Ok((new_ca, false));
        };
        let holds = self.leaf_contents(&new_ca, &reach);
        self.issue(&mut current, &new_ca, holds, None)?;
        Ok((new_ca, true))
    }

    /// The apps nginx serves now.
    pub fn apps(&self) -> Vec<AppConfig> {
        self.apps.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The machine's addresses under the chosen interfaces (see [`facing_addresses`]).
    fn addresses(&self) -> Vec<IpAddr> {
        let choice = self.interfaces.lock().unwrap_or_else(|p| p.into_inner()).clone();
        facing_addresses(choice.as_deref())
    }

    /// The reach of the current apps on this machine now; `None` without network-facing apps.
    pub fn reach(&self) -> Option<Reach> {
        Reach::of(&self.apps(), &self.machine, &self.addresses())
    }

    /// Makes `apps` and the interface choice (`[lan]`) the current ones and, if an app faces
    /// the network, makes sure nginx's files hold a leaf for them (before nginx starts or
    /// reloads with them: `nginx -t` reads the files). Returns whether the files changed.
    pub async fn prepare(self: &Arc<Self>, apps: &[AppConfig], lan: &LanSettings) -> Result<bool, LanError> {
        *self.apps.lock().unwrap_or_else(|p| p.into_inner()) = apps.to_vec();
        *self.interfaces.lock().unwrap_or_else(|p| p.into_inner()) = lan.interfaces.clone();
        let this = self.clone();
        let interfaces = tokio::task::spawn_blocking(move || this.addresses()).await.map_err(|e| LanError::Task(e.to_string()))?;
        match Reach::of(apps, &self.machine, &interfaces) {
            Some(reach) => self.ensure(&reach).await,
            None => Ok(false),
        }
    }

    /// Makes sure the files nginx reads hold a leaf that covers `reach` and is not due for
    /// renewal, issuing and writing a new one when not. Returns whether the files changed (then
    /// nginx must reload to present it). The private key goes only into its 0600 file in
    /// nginx's 0700 prefix; it is never logged.
    pub async fn ensure(&self, reach: &Reach) -> Result<bool, LanError> {
        self.ensure_at(reach, Instant::now(), false).await
    }

    /// [`ensure`](Self::ensure) for the watcher: an address change within
    /// [`MIN_REISSUE_INTERVAL`] of the last leaf waits (returns `false`, the files unchanged);
    /// the next call after the pause issues for the reach it is given then. `now` is passed in
    /// so the pacing is tested without waiting.
    pub async fn ensure_paced(&self, reach: &Reach, now: Instant) -> Result<bool, LanError> {
        self.ensure_at(reach, now, true).await
    }

    async fn ensure_at(&self, reach: &Reach, now: Instant, paced: bool) -> Result<bool, LanError> {
        // The leaf's lock first, then the CA: the same order as `rotate_ca`, so a leaf is never
        // issued from a CA that was rotated away while this waited.
        let mut current = self.current.lock().await;
        let ca = self.ca().await?;
        let holds = self.leaf_contents(&ca, reach);
        if let Some(issued) = current.as_ref() {
            let renewal_due = issued.leaf.needs_renewal(SystemTime::now()) || !self.layout.tls_chain_path().exists();
            if issued.holds == holds && !renewal_due {
                return Ok(false);
            }
            if paced && !reissue_allowed(issued.paced_at, now, renewal_due) {
                debug!("the network-facing addresses changed; the new certificate waits for the end of the pause between reloads");
                return Ok(false);
            }
        }
        self.issue(&mut current, &ca, holds, paced.then_some(now))?;
        Ok(true)
    }

    /// Issues a leaf holding `holds` from `ca`, writes it where nginx reads it and records it in
    /// `current` (whose lock the caller holds).
    fn issue(
        &self,
        current: &mut Option<Issued>,
        ca: &CertificateAuthority,
        holds: Reach,
        paced_at: Option<Instant>,
    ) -> Result<(), LanError> {
        let leaf = ca.issue_leaf(&holds.names, &holds.addresses).map_err(LanError::Ca)?;
        // Key first, then the chain: nginx only re-reads them when told to reload, after both.
        for (path, contents) in [(self.layout.tls_key_path(), leaf.private_key_pem()), (self.layout.tls_chain_path(), leaf.chain_pem())] {
            write_atomic(&path, contents.as_bytes()).map_err(|source| LanError::Write { path, source })?;
        }
        info!(
            names = %holds.names.iter().map(HostName::as_str).collect::<Vec<_>>().join(" "),
            addresses = %holds.addresses.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(" "),
            "issued a new certificate for the network-facing apps"
        );
        *current = Some(Issued { holds, leaf, paced_at });
        Ok(())
    }

    /// The part of `reach` the leaf can hold. Names and addresses outside the CA's name
    /// constraints (an app's extra host name, a public address) would make verifiers reject the
    /// whole certificate: they are left out, and those who use them get a name mismatch instead
    /// of losing every other name. A warning names them once per new set (the machine's bare
    /// name, `box`, is outside by design: no warning for it).
    fn leaf_contents(&self, ca: &CertificateAuthority, reach: &Reach) -> Reach {
        let (names, mut refused_names): (Vec<HostName>, Vec<HostName>) = reach.names.iter().cloned().partition(|n| ca.permits_name(n));
        refused_names.retain(|n| !self.machine.names().contains(n));
        let (addresses, refused_addresses): (Vec<IpAddr>, Vec<IpAddr>) = reach.addresses.iter().partition(|a| ca.permits_address(**a));
        let refused: Vec<String> =
            refused_names.iter().map(|n| n.as_str().to_string()).chain(refused_addresses.iter().map(IpAddr::to_string)).collect();
        let mut warned = self.refused_warned.lock().unwrap_or_else(|p| p.into_inner());
        if !refused.is_empty() && *warned != refused {
            warn!(
                "the certificate cannot cover {} (SimpleOTP's CA only vouches for this machine's names and private addresses); \
                 browsers that use them will warn",
                refused.join(", ")
            );
        }
        *warned = refused;
        Reach { names, addresses }
    }
}

/// Keeps the leaf and mDNS true to the machine until `shutdown`: every [`POLL_INTERVAL`] it
/// computes the apps' [`Reach`] from the current interfaces; when the leaf no longer covers it
/// (or is due for renewal), a new one is written and nginx reloads (graceful: requests in
/// flight finish, sessions are untouched). `<hostname>.local` is advertised while an app faces
/// the network.
pub async fn watch(certificates: Arc<LanCertificates>, nginx: Arc<Nginx>, shutdown: CancellationToken) {
    let mut advertiser: Option<mdns::Advertiser> = None;
    let mut advertised: Option<(Vec<AppConfig>, Vec<IpAddr>)> = None;
    let mut mdns_failed = false;
    loop {
        let reach = tokio::task::spawn_blocking({
            let certificates = certificates.clone();
            move || certificates.reach()
        })
        .await
        .unwrap_or_default();
        match reach {
            Some(reach) => {
                match certificates.ensure_paced(&reach, Instant::now()).await {
                    Ok(true) => {
                        if let Err(e) = nginx.reload_certificates().await {
                            warn!("cannot make nginx present the new certificate: {e}");
                        }
                    }
                    Ok(false) => {}
                    Err(e) => warn!("{e}"),
                }
                // Apps served over HTTPS on this computer only need a certificate, not mDNS.
                let faces_network = certificates.apps().iter().any(|app| app.listen.is_network_facing());
                if advertiser.is_none() && !mdns_failed && faces_network {
                    advertiser = mdns::Advertiser::start(&certificates.machine);
                    mdns_failed = advertiser.is_none();
                }
                let wanted = (certificates.apps(), reach.lan_addresses().copied().collect::<Vec<_>>());
                if let Some(advertiser) = advertiser.as_mut().filter(|_| advertised.as_ref() != Some(&wanted)) {
                    advertiser.update(&wanted.0, &wanted.1);
                    advertised = Some(wanted);
                }
            }
            None => {
                if let Some(advertiser) = advertiser.take() {
                    let _ = tokio::task::spawn_blocking(move || advertiser.stop()).await;
                    advertised = None;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    if let Some(advertiser) = advertiser {
        let _ = tokio::task::spawn_blocking(move || advertiser.stop()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(listen: &str) -> AppConfig {
        AppConfig::new("a".parse().unwrap(), "http://127.0.0.1:1".parse().unwrap(), listen.parse().unwrap())
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn names(reach: &Reach) -> Vec<&str> {
        reach.names.iter().map(HostName::as_str).collect()
    }

    const INTERFACES: [&str; 5] = ["127.0.0.1", "192.168.1.20", "10.0.0.5", "::1", "2001:db8::7"];

    #[test]
    fn an_app_at_its_own_name_needs_a_certificate_for_that_name_only() {
        let machine = MachineNames::from_host_name("box");
        let mut own = app("127.0.0.1:8081");
        own.https_name = Some("a-k3x9q2ab.localhost".parse().unwrap());
        let interfaces = ips(&["127.0.0.1", "192.168.1.20"]);
        let reach = Reach::of(std::slice::from_ref(&own), &machine, &interfaces).expect("a certificate is needed");
        assert_eq!(reach.names.iter().map(HostName::as_str).collect::<Vec<_>>(), ["a-k3x9q2ab.localhost"]);
        assert_eq!(reach.addresses, ips(&["127.0.0.1"]));
        assert_eq!(reach.lan_addresses().count(), 0, "nothing for other devices");
        assert_eq!(Reach::of(&[app("127.0.0.1:8081")], &machine, &interfaces), None);
        let both = Reach::of(&[own, app("0.0.0.0:8082")], &machine, &interfaces).unwrap();
        assert!(both.names.iter().any(|n| n.as_str() == "a-k3x9q2ab.localhost") && both.names.iter().any(|n| n.as_str() == "box.local"));
    }

    #[test]
    fn loopback_apps_need_no_certificate() {
        let machine = MachineNames::from_host_name("box");
        assert_eq!(Reach::of(&[app("127.0.0.1:8081"), app("[::1]:8082")], &machine, &ips(&INTERFACES)), None);
        assert_eq!(app_urls(&app("127.0.0.1:8081"), &machine, &ips(&INTERFACES)), ["http://localhost:8081/"]);
    }

    #[test]
    fn any_address_covers_every_address_of_its_family_and_all_names() {
        let machine = MachineNames::from_host_name("box.lan");
        let mut jupyter = app("0.0.0.0:8081");
        jupyter.hosts = vec!["box.local".parse().unwrap()];
        let reach = Reach::of(&[jupyter.clone(), app("127.0.0.1:8082")], &machine, &ips(&INTERFACES)).unwrap();
        assert_eq!(names(&reach), ["box", "box.lan", "box.local", "localhost"]);
        assert_eq!(reach.addresses, ips(&["10.0.0.5", "127.0.0.1", "192.168.1.20"]));
        assert_eq!(reach.lan_addresses().copied().collect::<Vec<_>>(), ips(&["10.0.0.5", "192.168.1.20"]));
        assert_eq!(
            app_urls(&jupyter, &machine, &ips(&INTERFACES)),
            ["https://box.local:8081/", "https://10.0.0.5:8081/", "https://192.168.1.20:8081/", "http://localhost:8081/"]
        );

        let v6 = Reach::of(&[app("[::]:8083")], &machine, &ips(&INTERFACES)).unwrap();
        assert_eq!(v6.addresses, ips(&["::1", "2001:db8::7"]));
        assert_eq!(app_urls(&app("[::]:8083"), &machine, &ips(&INTERFACES))[1], "https://[2001:db8::7]:8083/");
        assert_eq!(other_device_url(&jupyter, &machine, &ips(&INTERFACES)).as_deref(), Some("https://box.local:8081/"));
        let nameless = MachineNames::from_host_name("");
        assert_eq!(other_device_url(&jupyter, &nameless, &ips(&INTERFACES)).as_deref(), Some("https://10.0.0.5:8081/"));
        assert_eq!(other_device_url(&app("127.0.0.1:8082"), &machine, &ips(&INTERFACES)), None);
    }

    #[test]
    fn a_specific_address_covers_only_itself_and_a_new_interface_changes_the_reach() {
        let machine = MachineNames::from_host_name("box");
        let reach = Reach::of(&[app("192.168.1.20:8081")], &machine, &ips(&INTERFACES)).unwrap();
        assert_eq!(reach.addresses, ips(&["192.168.1.20"]));

        let before = Reach::of(&[app("0.0.0.0:8081")], &machine, &ips(&INTERFACES)).unwrap();
        let mut more = ips(&INTERFACES);
        more.push("172.16.0.9".parse().unwrap());
        let after = Reach::of(&[app("0.0.0.0:8081")], &machine, &more).unwrap();
        assert_ne!(before, after, "a new address needs a new certificate");
        assert!(after.addresses.contains(&"172.16.0.9".parse().unwrap()));
        // The same addresses in another order are the same reach (no needless new certificate).
        let mut shuffled = ips(&INTERFACES);
        shuffled.reverse();
        assert_eq!(Reach::of(&[app("0.0.0.0:8081")], &machine, &shuffled).unwrap(), before);
    }

    fn test_gateway(dir: &std::path::Path) -> Gateway {
        use crate::config::{Account, Issuer};
        crate::gateway::Gateway::new(crate::gateway::GatewayParts {
            route_prefix: Default::default(),
            authenticators: crate::authenticator::Authenticators::single(crate::totp::TotpSecret::generate()),
            secret_store: crate::secret::SecretStore::file(dir.join("secret")),
            issuer: Issuer::parse("t").unwrap(),
            account: Account::parse("t").unwrap(),
            session_settings: Default::default(),
            limiter_settings: Default::default(),
            state_file: crate::state::StateFile::in_dir(dir),
            persisted: Default::default(),
            control_token: "t".into(),
            nginx_proof: crate::protocol::NginxProof::generate(),
            apps: Vec::new(),
        })
    }

    /// The leaf is issued once per reach (with the real CA, keys in files), written owner-only,
    /// offered on the CA page, issued again for a new address and when due for renewal; what the
    /// CA may not vouch for is left out instead of failing the rest.
    #[tokio::test]
    async fn a_leaf_is_issued_per_reach_written_privately_and_renewed_when_due() {
        let dir = tempfile::tempdir().unwrap();
        let store = CaStore::File { path: dir.path().join("ca-key.pem"), certificate: dir.path().join("ca.pem") };
        let layout = NginxLayout::new(dir.path().join("nginx"));
        layout.prepare().unwrap();
        let gateway = test_gateway(dir.path());
        let apps = [app("0.0.0.0:8081")];
        let lan = LanCertificates::new(store, layout.clone(), &apps, gateway.clone());
        let machine = MachineNames::this_machine();
        let reach = Reach::of(&apps, &machine, &ips(&["127.0.0.1", "192.168.1.20"])).unwrap();

        assert!(gateway.ca_certificate().is_none());
        assert!(lan.ensure(&reach).await.unwrap(), "the first leaf is written");
        assert!(gateway.ca_certificate().is_some(), "the CA page offers the CA once it exists");
        let read_back = || {
            let chain = std::fs::read_to_string(layout.tls_chain_path()).unwrap();
            let key = std::fs::read_to_string(layout.tls_key_path()).unwrap();
            LeafCertificate::from_pem(&chain, &key).unwrap()
        };
        // (Single-label names such as `box` are outside what the CA may vouch for.)
        let ca = lan.ca().await.unwrap();
        let permitted = |reach: &Reach| reach.names.iter().filter(|n| ca.permits_name(n)).cloned().collect::<Vec<_>>();
        assert!(permitted(&reach).iter().any(|n| n.as_str().ends_with(".local")) && permitted(&reach).len() >= 2);
        assert!(read_back().covers(&permitted(&reach), &reach.addresses), "{:?}", read_back().names());
        #[cfg(unix)]
        for path in [layout.tls_chain_path(), layout.tls_key_path()] {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600, "{}", path.display());
        }
        assert!(!lan.ensure(&reach).await.unwrap(), "the same reach needs no new leaf");

        let moved = Reach::of(&apps, &machine, &ips(&["127.0.0.1", "192.168.1.20", "10.1.2.3"])).unwrap();
        assert!(lan.ensure(&moved).await.unwrap(), "a new address needs a new leaf");
        assert!(read_back().covers(&[], &ips(&["10.1.2.3"])));

        // A leaf with less than a third of its life left is renewed by the same check.
        let old = ca.issue_leaf_at(&permitted(&moved), &moved.addresses, SystemTime::now() - Duration::from_secs(300 * 24 * 3600)).unwrap();
        assert!(old.needs_renewal(SystemTime::now()));
        lan.current.lock().await.as_mut().unwrap().leaf = old;
        assert!(lan.ensure(&moved).await.unwrap(), "a leaf due for renewal is replaced");
        assert!(!read_back().needs_renewal(SystemTime::now()));

        // A public address and a name that is not this machine's cannot be vouched for: the
        // leaf covers the rest, and since it would hold the same, it is not issued again.
        let mut wider = moved.clone();
        wider.addresses.push("203.0.113.7".parse().unwrap());
        wider.names.push("jupyter.example.com".parse().unwrap());
        assert!(!lan.ensure(&wider).await.unwrap(), "nothing the leaf can hold changed");
        let leaf = read_back();
        assert!(leaf.covers(&permitted(&moved), &moved.addresses));
        assert!(!leaf.covers(&[], &ips(&["203.0.113.7"])) && !leaf.covers(&["jupyter.example.com".parse().unwrap()], &[]));
    }

    /// Only what the leaf would hold counts: a new public IPv6 address (a privacy address
    /// rotating, a router advertisement) or a public IPv4 one changes nothing in the leaf, so it
    /// causes no new leaf and no reload; a new private address does.
    #[tokio::test]
    async fn addresses_the_ca_cannot_vouch_for_cause_no_new_leaf() {
        let dir = tempfile::tempdir().unwrap();
        let store = CaStore::File { path: dir.path().join("ca-key.pem"), certificate: dir.path().join("ca.pem") };
        let layout = NginxLayout::new(dir.path().join("nginx"));
        layout.prepare().unwrap();
        let apps = [app("0.0.0.0:8081"), app("[::]:8082")];
        let lan = LanCertificates::new(store, layout.clone(), &apps, test_gateway(dir.path()));
        let machine = MachineNames::this_machine();
        let reach = |list: &[&str]| Reach::of(&apps, &machine, &ips(list)).unwrap();
        let start = Instant::now();
        assert!(lan.ensure_paced(&reach(&["127.0.0.1", "192.168.1.20"]), start).await.unwrap());
        let chain = std::fs::read_to_string(layout.tls_chain_path()).unwrap();
        // Long after the pause, so only the contents decide.
        let later = start + MIN_REISSUE_INTERVAL * 10;
        for public in [&["127.0.0.1", "192.168.1.20", "2001:db8:1::77"][..], &["127.0.0.1", "192.168.1.20", "203.0.113.9", "2a00:1450::1"]]
        {
            assert!(!lan.ensure_paced(&reach(public), later).await.unwrap(), "{public:?} needs no new leaf");
            assert_eq!(std::fs::read_to_string(layout.tls_chain_path()).unwrap(), chain, "the leaf was rewritten for {public:?}");
        }
        assert!(lan.ensure_paced(&reach(&["127.0.0.1", "192.168.1.20", "fd00::5"]), later).await.unwrap(), "a private IPv6 address counts");
    }

    /// Address changes are paced: after a leaf, a change within MIN_REISSUE_INTERVAL waits (no
    /// new leaf, the files untouched), and the first call after the pause issues for the latest
    /// addresses; a leaf due for renewal and `ensure` (the apps changed) are not held back.
    #[tokio::test]
    async fn address_changes_are_paced_but_renewal_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = CaStore::File { path: dir.path().join("ca-key.pem"), certificate: dir.path().join("ca.pem") };
        let layout = NginxLayout::new(dir.path().join("nginx"));
        layout.prepare().unwrap();
        let apps = [app("0.0.0.0:8081")];
        let lan = LanCertificates::new(store, layout.clone(), &apps, test_gateway(dir.path()));
        let machine = MachineNames::this_machine();
        let reach = |list: &[&str]| Reach::of(&apps, &machine, &ips(list)).unwrap();
        let leaf_covers = |address: &str| {
            let chain = std::fs::read_to_string(layout.tls_chain_path()).unwrap();
            let key = std::fs::read_to_string(layout.tls_key_path()).unwrap();
            LeafCertificate::from_pem(&chain, &key).unwrap().covers(&[], &ips(&[address]))
        };
        // The leaf made at start does not hold back the first address change.
        assert!(lan.ensure(&reach(&["10.0.0.1"])).await.unwrap());
        let t0 = Instant::now();
        assert!(lan.ensure_paced(&reach(&["10.0.0.1", "10.0.0.5"]), t0).await.unwrap(), "the first change is not held back");
        // Flapping within the pause: nothing is issued, whatever the addresses do.
        for (secs, list) in [(2, &["10.0.0.1", "10.0.0.2"][..]), (4, &["10.0.0.3"]), (29, &["10.0.0.1", "10.0.0.4"])] {
            assert!(!lan.ensure_paced(&reach(list), t0 + Duration::from_secs(secs)).await.unwrap(), "issued at {secs} s");
            assert!(leaf_covers("10.0.0.5") && !leaf_covers("10.0.0.4"));
        }
        // After the pause: the latest addresses, once.
        let t1 = t0 + MIN_REISSUE_INTERVAL;
        assert!(lan.ensure_paced(&reach(&["10.0.0.1", "10.0.0.4"]), t1).await.unwrap());
        assert!(leaf_covers("10.0.0.4"));
        assert!(!lan.ensure_paced(&reach(&["10.0.0.1", "10.0.0.4"]), t1 + Duration::from_secs(2)).await.unwrap());

        // A leaf due for renewal is replaced at once, pause or not.
        let ca = lan.ca().await.unwrap();
        let holds = lan.current.lock().await.as_ref().unwrap().holds.clone();
        let old = ca.issue_leaf_at(&holds.names, &holds.addresses, SystemTime::now() - Duration::from_secs(300 * 24 * 3600)).unwrap();
        lan.current.lock().await.as_mut().unwrap().leaf = old;
        assert!(lan.ensure_paced(&holds, t1 + Duration::from_secs(4)).await.unwrap(), "renewal waits for no pause");
        // The apps' own changes (`prepare` → `ensure`) are not paced either.
        assert!(lan.ensure(&reach(&["10.0.0.9"])).await.unwrap());
        assert!(leaf_covers("10.0.0.9"));
    }

    #[test]
    fn reissue_is_allowed_after_the_interval_or_for_renewal() {
        let t0 = Instant::now();
        assert!(reissue_allowed(None, t0, false));
        assert!(!reissue_allowed(Some(t0), t0 + MIN_REISSUE_INTERVAL - Duration::from_millis(1), false));
        assert!(reissue_allowed(Some(t0), t0 + MIN_REISSUE_INTERVAL, false));
        assert!(reissue_allowed(Some(t0), t0 + Duration::from_secs(1), true));
    }

    /// Linux's routing tables as /proc shows them: the interfaces with a default route (IPv4
    /// destination and mask 0; IPv6 `::/0` that is not lo's reject route), nothing else.
    #[test]
    fn default_routes_are_read_from_the_kernel_tables() {
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
                     wlan0\t0001A8C0\t00000000\t0001\t0\t0\t600\t00FFFFFF\t0\t0\t0\n\
                     docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
                     tun0\t00000000\t00000000\t0001\t0\t0\t50\t00000080\t0\t0\t0\n";
        let ipv6_route = "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth1\n\
                          00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000003 00000000 00000003     eth1\n\
                          00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";
        let names: Vec<String> = default_route_interfaces(route, ipv6_route).into_iter().collect();
        assert_eq!(names, ["eth1", "wlan0"], "docker0, a VPN's split route (mask not 0) and lo's reject route have no default route");
        assert!(default_route_interfaces("", "").is_empty());
    }

    /// The default choice is the default-route interfaces (all of them when none has one); a
    /// configured list is taken as it is, names that do not exist simply match nothing.
    #[test]
    fn facing_interfaces_follow_the_choice() {
        let interface =
            |name: &str, address: &str, default_route| NetworkInterface { name: name.into(), addresses: ips(&[address]), default_route };
        let all =
            [interface("docker0", "172.17.0.1", false), interface("tun0", "10.8.0.2", false), interface("wlan0", "192.168.1.20", true)];
        let names = |list: Vec<&NetworkInterface>| list.iter().map(|i| i.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(facing(&all, None)), ["wlan0"]);
        let chosen: Vec<InterfaceName> = vec!["tun0".parse().unwrap(), "eth9".parse().unwrap()];
        assert_eq!(names(facing(&all, Some(&chosen))), ["tun0"]);
        assert!(facing(&all, Some(&[])).is_empty(), "an empty list: no interface faces the network");
        let no_route = [interface("eth0", "10.0.0.2", false), interface("eth1", "10.1.0.2", false)];
        assert_eq!(names(facing(&no_route, None)), ["eth0", "eth1"], "no default route anywhere: all of them");
    }

    #[test]
    fn interface_addresses_include_loopback_but_no_link_local_ipv6() {
        let addresses = interface_addresses();
        assert!(addresses.contains(&"127.0.0.1".parse().unwrap()), "{addresses:?}");
        assert!(!addresses.iter().any(|a| a.to_string().starts_with("fe80:")), "{addresses:?}");
    }
}
