//! What nginx and the auth server say to each other: the auth server's route names, the headers
//! nginx sets on every request it sends to the auth server, the proof that such a request really
//! comes from *our* nginx, and the names of the session cookies.
//!
//! Both sides ([`crate::nginx`] renders the config, [`crate::server`] reads the requests) use
//! these names, so they cannot drift apart.
//!
//! ## Why nginx has to prove itself
//!
//! The auth server listens on loopback, and every local process can connect to it. If it
//! believed `X-Real-IP` from any loopback peer, a local process could pose as many addresses
//! (and spread its guesses over the per-address limits) or claim `https`. So at each start the
//! engine makes a random [`NginxProof`], writes it into the generated (0700) nginx config, and
//! nginx sends it with every request to the auth server; only when it matches (compared in
//! constant time) are the forwarded headers believed. Without it, a request is treated as a
//! plain loopback client: its own address, plain http, and no app (so `check` fails closed).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use subtle::ConstantTimeEq;

/// The auth server's routes, each under the [`RoutePrefix`](crate::config::RoutePrefix) (e.g.
/// `RoutePrefix::route(routes::LOGIN)` → `/_simpleotp/login`). The server answers them and the
/// nginx config points at them; see [`crate::server`] for what each one does.
pub mod routes {
    /// nginx's `auth_request` subrequest, on every request.
    pub const CHECK: &str = "check";
    /// The login page and form.
    pub const LOGIN: &str = "login";
    /// The sign-out confirmation page and form.
    pub const LOGOUT: &str = "logout";
    /// "Continue": a session of another app on this host, held by this browser, starts one for
    /// this app without a code (one sign-in per device).
    pub const CONTINUE: &str = "continue";
    /// Liveness, for monitoring and `simpleotp unlock`.
    pub const HEALTH: &str = "health";
    /// The page nginx shows when the protected app does not answer.
    pub const UPSTREAM_DOWN: &str = "upstream-down";
    /// `simpleotp unlock`'s request to a running gateway.
    pub const CONTROL_UNLOCK: &str = "control/unlock";
    /// `simpleotp recovery-codes new`'s request to a running gateway.
    pub const CONTROL_RECOVERY_CODES: &str = "control/recovery-codes";
    /// `simpleotp authenticator list`'s request to a running gateway.
    pub const CONTROL_AUTHENTICATORS: &str = "control/authenticators";
    /// `simpleotp authenticator add`'s request (a JSON body: name, secret, code).
    pub const CONTROL_AUTHENTICATOR_ADD: &str = "control/authenticator-add";
    /// `simpleotp authenticator remove`'s request (a JSON body: which).
    pub const CONTROL_AUTHENTICATOR_REMOVE: &str = "control/authenticator-remove";
    /// `simpleotp ca rotate`'s request to a running gateway.
    pub const CONTROL_CA_ROTATE: &str = "control/ca-rotate";
    /// The gateway proves it knows the control token before a client sends it anything:
    /// `CONTROL_NONCE_HEADER` in, `CONTROL_PROOF_HEADER` out (see [`crate::control`]).
    pub const CONTROL_PROVE: &str = "control/prove";
    /// The page that helps a person trust the local CA on a phone or another computer
    /// (fingerprint, downloads, steps). Public, and served over plain HTTP too: a device has to
    /// fetch the CA before it can check an HTTPS certificate.
    pub const CA_PAGE: &str = "ca";
    /// The CA certificate, DER, as `application/x-x509-ca-cert`.
    pub const CA_CERTIFICATE: &str = "ca.crt";
    /// The CA certificate in an Apple configuration profile (`application/x-apple-aspen-config`).
    pub const CA_PROFILE: &str = "ca.mobileconfig";
    /// The CA page's check that this device trusts the CA: an empty answer over HTTPS, which
    /// the page fetches from the app's port. Reaching it at all means the TLS handshake passed,
    /// so the device trusts the certificate. Never served over plain HTTP (not in
    /// [`CA_ROUTES`]), needs no session.
    pub const TRUST_CHECK: &str = "trusted";
    /// The page that adds a passkey (`?link=…`, or `?offer=1` right after a sign-in with a code).
    pub const PASSKEY_ADD: &str = "passkey/add";
    /// Adding a passkey: the challenge, then the browser's answer (JSON, for the page's script).
    pub const PASSKEY_ADD_START: &str = "passkey/add/start";
    pub const PASSKEY_ADD_FINISH: &str = "passkey/add/finish";
    /// Signing in with a passkey: the challenge, then the browser's answer (JSON).
    pub const PASSKEY_SIGN_IN_START: &str = "passkey/sign-in/start";
    pub const PASSKEY_SIGN_IN_FINISH: &str = "passkey/sign-in/finish";
    /// `simpleotp passkey add`: a one-time link to add a passkey.
    pub const CONTROL_PASSKEY_LINK: &str = "control/passkey-link";
    /// `simpleotp passkey list`.
    pub const CONTROL_PASSKEYS: &str = "control/passkeys";
    /// `simpleotp passkey remove` (`?id=` the passkey's id or name).
    pub const CONTROL_PASSKEY_REMOVE: &str = "control/passkey-remove";
    /// The CA routes, which need no session (nginx serves them over plain HTTP as well).
    pub const CA_ROUTES: [&str; 3] = [CA_PAGE, CA_CERTIFICATE, CA_PROFILE];
}

/// nginx's proof that it is the nginx the engine configured.
pub const PROOF_HEADER: &str = "x-simpleotp-proof";
/// The browser's address, as nginx saw it.
pub const REAL_IP_HEADER: &str = "x-real-ip";
/// `http` or `https`, as nginx saw it.
pub const FORWARDED_PROTO_HEADER: &str = "x-forwarded-proto";
/// Which protected app a request is for: its listen port. Set by nginx in each app's server
/// block, never taken from the client (nginx's `proxy_set_header` replaces a client's copy).
pub const APP_HEADER: &str = "x-simpleotp-app";
/// On the `check` subrequest: the URI the browser asked for (for the login link's `next`).
pub const ORIGINAL_URI_HEADER: &str = "x-simpleotp-original-uri";
/// On the `check` subrequest: the method of the browser's request (a subrequest itself is always
/// a GET), so `check` can refuse a cross-origin request that changes something.
pub const ORIGINAL_METHOD_HEADER: &str = "x-simpleotp-original-method";
/// On the `check` subrequest: the browser's `Upgrade` header (nginx drops `Upgrade` on the way
/// to any proxied server unless told otherwise), so `check` sees a WebSocket handshake.
pub const ORIGINAL_UPGRADE_HEADER: &str = "x-simpleotp-original-upgrade";
/// In `check`'s 401 answer: where to send the browser (the login page, with `next`). nginx
/// answers the redirect itself (`auth_request_set` → `return 302`), so the body of a request
/// without a session is discarded, never buffered to disk on its way to another proxy pass.
pub const LOGIN_LOCATION_HEADER: &str = "x-simpleotp-login";
/// In `check`'s 200 answer: the request's cookies without any SimpleOTP session cookie. nginx
/// forwards this (`auth_request_set`) as the `Cookie` header to the app, so no app ever sees a
/// session token.
pub const APP_COOKIES_HEADER: &str = "x-simpleotp-app-cookies";

/// A control client's fresh random challenge (hex), on `control/prove`.
pub const CONTROL_NONCE_HEADER: &str = "x-simpleotp-nonce";
/// The gateway's answer: HMAC-SHA256 keyed by the control token over the nonce (hex).
pub const CONTROL_PROOF_HEADER: &str = "x-simpleotp-control-proof";

/// The answer to a control challenge: HMAC-SHA256(key = the control token, "simpleotp-control\0"
/// ‖ nonce), in lower-case hex. Computed the same way by the gateway and the client.
pub fn control_proof(token: &str, nonce: &str) -> String {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(token.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"simpleotp-control\0");
    mac.update(nonce.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Every session cookie's name starts with this (after the optional `__Host-` prefix).
pub const COOKIE_PREFIX: &str = "simpleotp_";
/// Browsers accept a `__Host-` cookie only with `Secure`, `Path=/` and no `Domain`, so a plain
/// http server on the same host (or a sibling domain) can neither set nor overwrite it.
const HOST_PREFIX: &str = "__Host-";

/// The session cookie's name for the app on `port`. Cookies ignore ports, so the port in the
/// name keeps one app's session from being sent as (or overwritten by) another's.
pub fn session_cookie_name(app_port: u16, secure: bool) -> String {
    if secure {
        format!("{HOST_PREFIX}{COOKIE_PREFIX}{app_port}")
    } else {
        format!("{COOKIE_PREFIX}{app_port}")
    }
}

/// Whether a cookie of this name is one of ours (any app's, secure or not): those are never
/// forwarded to an app.
pub fn is_session_cookie_name(name: &[u8]) -> bool {
    let name = name.strip_prefix(HOST_PREFIX.as_bytes()).unwrap_or(name);
    name.len() >= COOKIE_PREFIX.len() && name[..COOKIE_PREFIX.len()].eq_ignore_ascii_case(COOKIE_PREFIX.as_bytes())
}

/// A random value that only the engine and the nginx it configured know.
#[derive(Clone, PartialEq, Eq)]
pub struct NginxProof(String);

impl NginxProof {
    /// 256 random bits, in base64url (safe inside a quoted nginx value and a header).
    pub fn generate() -> NginxProof {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
        NginxProof(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Reads a proof kept in a file (external-nginx mode); `None` if it is not one we made.
    pub fn parse(text: &str) -> Option<NginxProof> {
        let text = text.trim();
        (text.len() == 43 && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
            .then(|| NginxProof(text.to_string()))
    }

    /// The value for the nginx config.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant time, so the comparison says nothing about how much of a guess was right.
    pub fn matches(&self, presented: &[u8]) -> bool {
        bool::from(self.0.as_bytes().ct_eq(presented))
    }
}

impl fmt::Debug for NginxProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NginxProof(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_names_carry_the_app_and_the_host_prefix_when_secure() {
        assert_eq!(session_cookie_name(8081, false), "simpleotp_8081");
        assert_eq!(session_cookie_name(8081, true), "__Host-simpleotp_8081");
        for ours in ["simpleotp_8081", "__Host-simpleotp_1", "SimpleOTP_x", "simpleotp_session"] {
            assert!(is_session_cookie_name(ours.as_bytes()), "{ours}");
        }
        for theirs in ["_xsrf", "simpleotp", "xsimpleotp_8081", "__Host-other", "__host-simpleotp_1x"] {
            assert!(!is_session_cookie_name(theirs.as_bytes()), "{theirs}");
        }
    }

    #[test]
    fn proofs_are_random_and_compared_exactly() {
        let a = NginxProof::generate();
        assert_ne!(a, NginxProof::generate());
        assert!(a.matches(a.expose().as_bytes()));
        assert!(!a.matches(&a.expose().as_bytes()[1..]));
        assert!(!a.matches(b""));
        assert_eq!(NginxProof::parse(&format!("{}\n", a.expose())), Some(a.clone()));
        assert_eq!(NginxProof::parse("short"), None);
        assert!(!format!("{a:?}").contains(a.expose()));
    }
}
