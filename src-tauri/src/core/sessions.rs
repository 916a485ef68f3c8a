//! Who is signed in: listed for the window like devices ("Chrome on Android · Jupyter · idle
//! 12 h · ends in 6 d"), signed out one by one or all at once.

use simpleotp_engine::session::SessionId;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::views::{device_name, short_duration, SessionView};
use super::{Core, CoreError, Result};

impl Core {
    pub fn sessions_list(&self) -> Vec<SessionView> {
        let Some(gateway) = self.gateway() else { return Vec::new() };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut sessions: Vec<SessionView> = gateway
            .sessions()
            .into_iter()
            .map(|s| {
                let idle = now.saturating_sub(s.last_seen);
                SessionView {
                    id: s.id.as_str().to_string(),
                    app: gateway.app_name(s.app_port).map(|n| n.to_string()).unwrap_or_else(|| format!("port {}", s.app_port)),
                    created_at: s.created_at,
                    last_seen: s.last_seen,
                    expires_at: s.expires_at,
                    client_ip: s.client_ip.map(|ip| ip.to_string()).unwrap_or_else(|| "unknown".into()),
                    device: device_name(&s.user_agent),
                    this_computer: s.client_ip.is_some_and(|ip| ip.to_canonical().is_loopback()),
                    idle: if idle < 60 { "active now".into() } else { format!("idle {}", short_duration(Duration::from_secs(idle))) },
                    ends: format!("ends in {}", short_duration(Duration::from_secs(s.expires_at.saturating_sub(now)))),
                    user_agent: s.user_agent,
                    signed_in_with: s.signed_in_with.describe(),
                }
            })
            .collect();
        // Most recent activity first; this computer's first among equals.
        sessions.sort_by_key(|s| (std::cmp::Reverse(s.last_seen), !s.this_computer));
        sessions
    }

    pub async fn session_revoke(&self, id: &str) -> Result<()> {
        let gateway = self.gateway().ok_or(CoreError::NoSuchSession)?;
        if gateway.revoke(&SessionId::from(id)).await {
            Ok(())
        } else {
            Err(CoreError::NoSuchSession)
        }
    }

    /// Signs everyone out; returns how many sessions ended.
    pub async fn sessions_revoke_all(&self) -> usize {
        match self.gateway() {
            Some(gateway) => gateway.revoke_all().await,
            None => 0,
        }
    }
}
