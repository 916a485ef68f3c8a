//! Who is signed in: listed for the window, signed out one by one or all at once.

use simpleotp_engine::session::SessionId;

use super::views::SessionView;
use super::{Core, CoreError, Result};

impl Core {
    pub fn sessions_list(&self) -> Vec<SessionView> {
        let Some(gateway) = self.gateway() else { return Vec::new() };
        let mut sessions: Vec<SessionView> = gateway
            .sessions()
            .into_iter()
            .map(|s| SessionView {
                id: s.id.as_str().to_string(),
                app: gateway.app_name(s.app_port).map(|n| n.to_string()).unwrap_or_else(|| format!("port {}", s.app_port)),
                created_at: s.created_at,
                last_seen: s.last_seen,
                expires_at: s.expires_at,
                client_ip: s.client_ip.map(|ip| ip.to_string()).unwrap_or_else(|| "unknown".into()),
                user_agent: s.user_agent,
            })
            .collect();
        sessions.sort_by_key(|s| std::cmp::Reverse(s.last_seen));
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
