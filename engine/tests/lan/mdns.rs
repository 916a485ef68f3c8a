//! `<hostname>.local` over multicast DNS, answered by the running gateway and asked by a real
//! mDNS querier (`mdns-sd`'s), inside a network namespace with a `veth` pair (unlike `lo`, a
//! veth link carries multicast).

use std::time::{Duration, Instant};

use mdns_sd::{HostnameResolutionEvent, ServiceDaemon, ServiceEvent};

use crate::netns;
use crate::support::*;

/// The veth pair's addresses (a private /24, so the CA may vouch for them too).
const VETH_ADDRESSES: [&str; 2] = ["10.77.3.1", "10.77.3.2"];

#[test]
fn hostname_local_and_each_lan_app_are_advertised_and_withdrawn_on_shutdown() {
    netns::run("mdns::hostname_local_and_each_lan_app_are_advertised_and_withdrawn_on_shutdown", || async {
        netns::ip(&["link", "add", "simpleotp0", "type", "veth", "peer", "name", "simpleotp1"]);
        for (link, address) in ["simpleotp0", "simpleotp1"].iter().zip(VETH_ADDRESSES) {
            netns::ip(&["addr", "add", &format!("{address}/24"), "dev", link]);
            netns::ip(&["link", "set", link, "up"]);
        }
        let serve = Serve::start().await;
        let local_name = machine_local_name();

        let querier = ServiceDaemon::new().expect("an mDNS querier");
        // The gateway's name resolves to its LAN addresses.
        let resolved = querier.resolve_hostname(&format!("{local_name}."), Some(8000)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut found = Vec::new();
        while Instant::now() < deadline && !found.iter().any(|a: &String| a.starts_with(VETH_ADDRESSES[0])) {
            match resolved.recv_timeout(Duration::from_millis(500)) {
                Ok(HostnameResolutionEvent::AddressesFound(_, addresses)) => found.extend(addresses.iter().map(|a| a.to_string())),
                Ok(HostnameResolutionEvent::SearchTimeout(_)) => break,
                _ => {}
            }
        }
        assert!(found.iter().any(|a| a.starts_with(VETH_ADDRESSES[0])), "{local_name} resolved to {found:?}; log:\n{}", serve.log());

        // The LAN app is an _https._tcp service on that name and its port; the loopback app is not.
        let browse = querier.browse("_https._tcp.local.").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut services = Vec::new();
        while Instant::now() < deadline && services.is_empty() {
            if let Ok(ServiceEvent::ServiceResolved(service)) = browse.recv_timeout(Duration::from_millis(500)) {
                services.push((service.fullname.clone(), service.host.clone(), service.port));
            }
        }
        assert_eq!(services, [("LAN._https._tcp.local.".to_string(), format!("{local_name}."), serve.lan_port)]);

        assert!(serve.log().contains(&format!("advertising {local_name} over mDNS at ")), "{}", serve.log());

        // On shutdown the gateway says goodbye: the service is withdrawn.
        drop(serve);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut removed = false;
        while Instant::now() < deadline && !removed {
            removed = matches!(browse.recv_timeout(Duration::from_millis(500)), Ok(ServiceEvent::ServiceRemoved(_, name)) if name.starts_with("LAN."));
        }
        assert!(removed, "the service was not withdrawn on shutdown");
        let _ = querier.shutdown();
    });
}
