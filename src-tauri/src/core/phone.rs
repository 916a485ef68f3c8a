//! "Add a phone": the live progress of the guided flow on Other devices. The window starts the
//! flow ([`Core::phone_flow_start`]) when it shows the one QR code (the CA page), then asks
//! [`Core::phone_progress`] every couple of seconds: what another device did since, as the
//! gateway saw it — opened the CA page, trusts the CA (the page's own HTTPS check got through),
//! signed in to an app. Nothing is guessed: each step is a request that device made.

use simpleotp_engine::gateway::DeviceStep;
use simpleotp_engine::totp::unix_now;

use super::views::{PhoneProgressView, PhoneStep};
use super::Core;
use crate::sync::lock;

impl Core {
    /// Starts watching for a new device from now on (what came before is another phone's).
    pub fn phone_flow_start(&self) -> PhoneProgressView {
        *lock(&self.phone_flow_since) = Some(unix_now());
        self.phone_progress()
    }

    /// How far a device got since [`Core::phone_flow_start`]: the furthest step any device took.
    pub fn phone_progress(&self) -> PhoneProgressView {
        let waiting = PhoneProgressView { step: PhoneStep::Waiting, app: None };
        let (Some(since), Some(gateway)) = (*lock(&self.phone_flow_since), self.gateway()) else { return waiting };
        let signed_in = gateway
            .sessions()
            .into_iter()
            .filter(|s| s.created_at >= since && s.client_ip.is_some_and(|ip| !ip.is_loopback()))
            .max_by_key(|s| s.created_at);
        if let Some(session) = signed_in {
            let app = gateway.app_name(session.app_port).map(|n| n.to_string());
            return PhoneProgressView { step: PhoneStep::SignedIn, app };
        }
        let events: Vec<_> = gateway.device_events().into_iter().filter(|e| e.at >= since).collect();
        let step = if events.iter().any(|e| e.step == DeviceStep::TrustsCa) {
            PhoneStep::TrustsCa
        } else if events.iter().any(|e| e.step == DeviceStep::OpenedCaPage) {
            PhoneStep::OpenedPage
        } else {
            PhoneStep::Waiting
        };
        PhoneProgressView { step, app: None }
    }
}
