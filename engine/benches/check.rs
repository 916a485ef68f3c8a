//! The `check` hot path, which nginx calls on every request: cookie header → token parse →
//! SHA-256 → session lookup → touch. Measured with 1, 1 000 and 100 000 stored sessions: the
//! cost must not grow with the number of sessions (a hash-map lookup, not a scan).
//!
//! `cargo bench -p simpleotp-engine --bench check`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use simpleotp_engine::authenticator::Authenticators;
use simpleotp_engine::config::{Account, Issuer, RoutePrefix, SessionSettings};
use simpleotp_engine::gateway::{Gateway, GatewayParts};
use simpleotp_engine::limiter::LimiterSettings;
use simpleotp_engine::protocol::{session_cookie_name, NginxProof};
use simpleotp_engine::secret::SecretStore;
use simpleotp_engine::session::{tokens_from_cookie_headers, SessionStore, SignInMethod};
use simpleotp_engine::state::{PersistedState, StateFile};
use simpleotp_engine::totp::{unix_now, TotpSecret};

/// The protected app the sessions are for.
const APP_PORT: u16 = 8081;

/// A gateway holding `count` sessions, and a cookie header carrying one of them.
fn gateway_with_sessions(count: usize, dir: &std::path::Path) -> (Gateway, String) {
    let now = unix_now();
    let mut store = SessionStore::new(SessionSettings::default());
    let mut cookie = String::new();
    for i in 0..count {
        let (token, _) = store.create(APP_PORT, Some([10, 0, 0, 1].into()), "bench", SignInMethod::Unknown, now);
        if i == count / 2 {
            // Real browsers send other cookies too; the parser must skip them.
            cookie = format!("_xsrf=2|abc|def; {}={}; theme=dark", session_cookie_name(APP_PORT, false), token.expose());
        }
    }
    let gateway = Gateway::new(GatewayParts {
        route_prefix: RoutePrefix::default(),
        authenticators: Authenticators::single(TotpSecret::generate()),
        secret_store: SecretStore::file(dir.join("secret")),
        issuer: Issuer::parse("bench").unwrap(),
        account: Account::parse("bench").unwrap(),
        session_settings: SessionSettings::default(),
        limiter_settings: LimiterSettings::default(),
        state_file: StateFile::in_dir(dir),
        persisted: PersistedState { sessions: store.snapshot(), ..Default::default() },
        control_token: "bench".into(),
        nginx_proof: NginxProof::generate(),
        apps: Vec::new(),
    });
    (gateway, cookie)
}

fn check_hot_path(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("check");
    for count in [1, 1_000, 100_000] {
        let (gateway, cookie) = gateway_with_sessions(count, dir.path());
        let name = session_cookie_name(APP_PORT, false);
        group.bench_with_input(BenchmarkId::from_parameter(count), &cookie, |b, cookie| {
            b.iter(|| {
                let tokens = tokens_from_cookie_headers(std::iter::once(cookie.as_str()), &name);
                assert!(gateway.touch_any(&tokens, APP_PORT));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, check_hot_path);
criterion_main!(benches);
