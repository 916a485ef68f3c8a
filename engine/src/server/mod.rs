//! The auth server nginx talks to, on hyper 1.x.
//!
//! It listens on loopback only, on a port nginx is told about, and owns every path under the
//! route prefix (default `/_simpleotp/`):
//!
//! | route | method | who calls it | answer |
//! |---|---|---|---|
//! | `check` | GET | nginx `auth_request`, on every request | 200 valid session for this app (with the cookies the app may see), 401 otherwise (with the login URL, `login?next=<the URL asked for>`, which nginx redirects to); empty body |
//! | `login` | GET / POST | the browser | the login page / verify a code, start a session, 303 back; `?ticket=` carries an unlock ticket |
//! | `logout` | GET / POST | the browser | a confirm page / end the session (CSRF-checked) |
//! | `health` | GET | monitoring | `{"status":"ok",...}`, nothing secret |
//! | `control/unlock` | POST | `simpleotp unlock`, directly on loopback | lifts per-address lockouts, answers a one-time login link (JSON); needs the control token |
//! | `control/ca-rotate` | POST | `simpleotp ca rotate`, directly on loopback | replaces the CA, the leaf nginx presents and reloads nginx; answers the new CA's name and fingerprint (JSON); needs the control token |
//! | `ca` | GET | a person setting up a phone | the page to trust the local CA: fingerprint, downloads, steps per OS; 404 while there is no CA |
//! | `ca.crt` | GET | that page | the CA certificate, DER, `application/x-x509-ca-cert` |
//! | `ca.mobileconfig` | GET | that page, on iOS | the certificate in an Apple configuration profile |
//!
//! The CA routes need no session: the certificate is public, and a device must be able to fetch
//! it over plain HTTP before it can check any HTTPS certificate. `.crt` is DER, not PEM, because
//! DER is what `application/x-x509-ca-cert` means to the installers that react to it (Android's
//! certificate installer, Windows' certificate dialog, iOS Safari), and because the SHA-256 of
//! the downloaded file is then the fingerprint itself (`certutil -hashfile`, `shasum -a 256`).
//!
//! The logic lives in [`Gateway`] (shared state and the operations the tray app and CLI use);
//! this module only maps HTTP onto it. What nginx tells the server (client address, scheme, which
//! app) is believed only with nginx's proof; see [`crate::protocol`].

pub(crate) mod pages;
mod passkey;

/// How the login page says a wait and a session's length; the tray app says them the same way.
pub use pages::{format_duration, format_span};

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::gateway::{ContinueOutcome, DeviceStep, Gateway, LoginOutcome};
use crate::protocol::{
    routes, session_cookie_name, APP_COOKIES_HEADER, APP_HEADER, CONTROL_NONCE_HEADER, CONTROL_PROOF_HEADER, FORWARDED_PROTO_HEADER,
    LOGIN_LOCATION_HEADER, ORIGINAL_METHOD_HEADER, ORIGINAL_UPGRADE_HEADER, ORIGINAL_URI_HEADER, PROOF_HEADER, REAL_IP_HEADER,
};
use crate::redirect::safe_return_path;
use crate::session::{cookies_without_sessions, tokens_from_cookie_headers, SessionToken};
use pages::{ContinueOffer, Device, LoginMessage, LoginView, LogoutView};
/// Failed logins are answered no sooner than this after the request arrived, so that guessing
/// is slow even before the limiter steps in, and timing says nothing about why a code failed.
pub const FAILURE_FLOOR: Duration = Duration::from_millis(250);
/// Largest login/logout form accepted.
const MAX_FORM_BYTES: usize = 4 * 1024;

type Body = Full<Bytes>;

/// Serves HTTP on `listener` until `shutdown` is cancelled, then lets in-flight requests finish
/// (for up to five seconds).
pub async fn serve(listener: TcpListener, gateway: Gateway, shutdown: CancellationToken) {
    let mut http = hyper::server::conn::http1::Builder::new();
    // A client that opens a connection and dribbles a header must not hold a task forever.
    http.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(10)).keep_alive(true);
    // nginx passes on header lines that HTTP forbids (control bytes in a Cookie, say). Refusing
    // the whole request would fail nginx's auth subrequest, and nginx would answer 500; a line
    // that is not valid HTTP is dropped instead, and the request judged without it.
    http.ignore_invalid_headers(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();

    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let gateway = gateway.clone();
                let service = service_fn(move |req| {
                    let gateway = gateway.clone();
                    async move { Ok::<_, Infallible>(route(&gateway, peer, req).await) }
                });
                let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = shutdown.cancelled() => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => debug!("connections still open after 5 s; closing"),
    }
}

/// Facts about a request that the handlers need, read once.
struct Caller {
    ip: IpAddr,
    https: bool,
    /// The protected app (listen port) the request is about; `None` when it did not come
    /// through our nginx, and then no session is valid and none can be started.
    app_port: Option<u16>,
    /// The request carries forwarding headers (from our nginx or anyone else's proxy).
    came_through_proxy: bool,
}

impl Caller {
    /// nginx tells us the browser's address, the scheme and the app. We believe them only with
    /// nginx's proof, from a loopback peer: any local process can connect here, but only our
    /// nginx knows the proof.
    fn from(peer: SocketAddr, headers: &HeaderMap, proof_matches: impl FnOnce(&[u8]) -> bool) -> Caller {
        let trusted = peer.ip().is_loopback() && headers.get(PROOF_HEADER).is_some_and(|v| proof_matches(v.as_bytes()));
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|_| trusted);
        Caller {
            ip: text(REAL_IP_HEADER).and_then(|v| v.parse::<IpAddr>().ok()).unwrap_or(peer.ip()),
            https: text(FORWARDED_PROTO_HEADER).is_some_and(|p| p.eq_ignore_ascii_case("https")),
            app_port: text(APP_HEADER).and_then(|v| v.parse::<u16>().ok()),
            came_through_proxy: headers.contains_key(REAL_IP_HEADER) || headers.contains_key(PROOF_HEADER),
        }
    }

    /// The session tokens this request carries for its app: only the cookie named for that app
    /// (with `__Host-` over https) counts.
    fn session_tokens(&self, headers: &HeaderMap) -> Vec<SessionToken> {
        match self.app_port {
            Some(port) => tokens_from_cookie_headers(
                headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()),
                &session_cookie_name(port, self.https),
            ),
            None => Vec::new(),
        }
    }

    /// The session cookies this request carries for the *other* apps on this host (cookies
    /// ignore ports, so a browser signed in to one app sends them to all): (port, token), under
    /// the names this scheme uses (`__Host-` over https). At most 16.
    fn other_apps_tokens(&self, headers: &HeaderMap) -> Vec<(u16, SessionToken)> {
        let prefix = session_cookie_name(0, self.https);
        let prefix = prefix.trim_end_matches('0');
        let mut found = Vec::new();
        for header in headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()) {
            for pair in header.split(';') {
                let Some((name, value)) = pair.trim().split_once('=') else { continue };
                let Some(port) = name.trim().strip_prefix(prefix).and_then(|p| p.parse::<u16>().ok()) else { continue };
                if Some(port) == self.app_port || found.len() >= 16 {
                    continue;
                }
                if let Some(token) = SessionToken::parse(value.trim().trim_matches('"')) {
                    found.push((port, token));
                }
            }
        }
        found
    }

    /// Whether the request holds a live session for its app.
    fn has_session(&self, gateway: &Gateway, headers: &HeaderMap) -> bool {
        self.app_port.is_some_and(|port| gateway.is_valid_any(&self.session_tokens(headers), port))
    }
}

async fn route(gateway: &Gateway, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let caller = Caller::from(peer, req.headers(), |presented| gateway.nginx_proof_matches(presented));
    let prefix = gateway.route_prefix();
    let Some(route) = req.uri().path().strip_prefix(prefix.as_str()) else {
        return not_found();
    };
    match (req.method(), route) {
        (&Method::GET | &Method::HEAD, routes::CHECK) => check(gateway, &caller, req.headers()),
        (&Method::GET | &Method::HEAD, routes::LOGIN) => login_page(gateway, &caller, &req),
        (&Method::POST, routes::LOGIN) => login_submit(gateway, &caller, req, started).await,
        (&Method::GET | &Method::HEAD, routes::LOGOUT) => logout_page(gateway, &caller, req.headers()),
        (&Method::GET | &Method::HEAD, routes::UPSTREAM_DOWN) => upstream_down(gateway, &caller),
        (&Method::POST, routes::LOGOUT) => logout_submit(gateway, &caller, req).await,
        (&Method::POST, routes::CONTINUE) => continue_submit(gateway, &caller, req).await,
        (&Method::GET | &Method::HEAD, routes::HEALTH) => health(),
        (&Method::POST, routes::CONTROL_PROVE) => control_prove(gateway, &caller, req.headers()),
        (&Method::POST, routes::CONTROL_UNLOCK) => control_unlock(gateway, &caller, req.headers()),
        (&Method::POST, routes::CONTROL_CA_ROTATE) => control_ca_rotate(gateway, &caller, req.headers()).await,
        (&Method::POST, routes::CONTROL_RECOVERY_CODES) => control_recovery_codes(gateway, &caller, req.headers()).await,
        (&Method::POST, routes::CONTROL_PASSKEY_LINK) => control_passkey_link(gateway, &caller, req.headers()),
        (&Method::POST, routes::CONTROL_PASSKEYS) => control_passkeys(gateway, &caller, req.headers()),
        (&Method::POST, routes::CONTROL_PASSKEY_REMOVE) => control_passkey_remove(gateway, &caller, &req).await,
        (&Method::GET | &Method::HEAD, routes::PASSKEY_ADD) => passkey::add_page(gateway, &caller, &req),
        (&Method::POST, routes::PASSKEY_ADD_START) => passkey::add_start(gateway, &caller, req).await,
        (&Method::POST, routes::PASSKEY_ADD_FINISH) => passkey::add_finish(gateway, req).await,
        (&Method::POST, routes::PASSKEY_SIGN_IN_START) => passkey::sign_in_start(gateway, &caller, req).await,
        (&Method::POST, routes::PASSKEY_SIGN_IN_FINISH) => passkey::sign_in_finish(gateway, &caller, req).await,
        (&Method::POST, routes::CONTROL_AUTHENTICATORS) => control_authenticators(gateway, &caller, req.headers()),
        (&Method::POST, routes::CONTROL_AUTHENTICATOR_ADD) => control_authenticator_add(gateway, &caller, req).await,
        (&Method::POST, routes::CONTROL_AUTHENTICATOR_REMOVE) => control_authenticator_remove(gateway, &caller, req).await,
        (&Method::GET | &Method::HEAD, routes::CA_PAGE) => {
            if req.method() == Method::GET {
                gateway.record_device_step(caller.ip, DeviceStep::OpenedCaPage);
            }
            ca_page(gateway)
        }
        (&Method::GET | &Method::HEAD, routes::TRUST_CHECK) => trust_check(gateway, &caller),
        (&Method::GET | &Method::HEAD, routes::CA_CERTIFICATE) => ca_download(gateway, CaDownload::Certificate),
        (&Method::GET | &Method::HEAD, routes::CA_PROFILE) => ca_download(gateway, CaDownload::AppleProfile),
        (_, routes::CA_PAGE | routes::CA_CERTIFICATE | routes::CA_PROFILE | routes::TRUST_CHECK) => {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        }
        (
            _,
            routes::CHECK
            | routes::LOGIN
            | routes::LOGOUT
            | routes::HEALTH
            | routes::CONTROL_UNLOCK
            | routes::CONTROL_CA_ROTATE
            | routes::CONTROL_RECOVERY_CODES
            | routes::CONTROL_PASSKEY_LINK
            | routes::CONTROL_PASSKEYS
            | routes::CONTROL_PASSKEY_REMOVE
            | routes::PASSKEY_ADD
            | routes::PASSKEY_ADD_START
            | routes::PASSKEY_ADD_FINISH
            | routes::PASSKEY_SIGN_IN_START
            | routes::PASSKEY_SIGN_IN_FINISH
            | routes::CONTROL_AUTHENTICATORS
            | routes::CONTROL_AUTHENTICATOR_ADD
            | routes::CONTROL_AUTHENTICATOR_REMOVE
            | routes::CONTROL_PROVE,
        ) => {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST"));
            response
        }
        _ => not_found(),
    }
}

/// The hot path: one cookie parse, one SHA-256, one hash-map lookup under a short lock. A 200
/// hands nginx the cookies the app may see: all but the session cookies; a 401 hands it the
/// login page to redirect to.
fn check(gateway: &Gateway, caller: &Caller, headers: &HeaderMap) -> Response<Body> {
    let tokens = caller.session_tokens(headers);
    let valid = caller.app_port.is_some_and(|port| gateway.touch_any(&tokens, port));
    let mut response = Response::new(Body::default());
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if !valid {
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        // A browser that still sends a (now unknown) session cookie had a session that ended.
        let location = login_location(gateway, headers, !tokens.is_empty());
        // Built from a validated return path and our own prefix: plain ASCII.
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(LOGIN_LOCATION_HEADER, value);
        }
        return response;
    }
    if changes_something_from_another_origin(caller, headers) {
        // A page on another port of this host (another protected app, or anyone's server on
        // it) is "same site", so the browser sends this app's cookie along (SameSite looks at
        // sites, not ports). The app must not act on it: 403, which nginx answers itself.
        *response.status_mut() = StatusCode::FORBIDDEN;
        return response;
    }
    let app_cookies = cookies_without_sessions(headers.get_all(header::COOKIE).iter().map(|v| v.as_bytes()));
    // Made of bytes hyper already accepted in a header value, joined with "; ": always valid.
    if let Ok(value) = HeaderValue::from_bytes(&app_cookies) {
        if !app_cookies.is_empty() {
            response.headers_mut().insert(APP_COOKIES_HEADER, value);
        }
    }
    response
}

/// Whether a request that holds a session changes something (any method but GET, HEAD and
/// OPTIONS, or a WebSocket) and was sent by a page of another origin.
///
/// Cookies ignore ports, and `SameSite` compares sites, not origins: a page served by anyone on
/// `127.0.0.1:9999` is the same site as the app on `127.0.0.1:8081`, so the browser attaches the
/// app's session cookie to the form it posts there, or the WebSocket it opens. `SameSite=Lax`
/// only stops such requests from *other sites*; this stops them from other origins, using what
/// the browser says and a page cannot forge: `Sec-Fetch-Site` (only `same-origin` and `none`,
/// typed by the person, pass), else `Origin` (must be this request's own scheme, host and port).
/// A request with neither header does not come from a web page (browsers send `Origin` on every
/// POST and WebSocket), so it passes, as before. Reading something cross-origin needs the app's
/// own CORS consent, so safe methods are left alone (a cross-port image or an app linking to
/// another still works).
fn changes_something_from_another_origin(caller: &Caller, headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok()).map(str::trim);
    let method = text(ORIGINAL_METHOD_HEADER).unwrap_or("GET");
    let websocket = text(ORIGINAL_UPGRADE_HEADER).is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
        || text("sec-fetch-mode").is_some_and(|m| m.eq_ignore_ascii_case("websocket"));
    if matches!(method, "GET" | "HEAD" | "OPTIONS") && !websocket {
        return false;
    }
    if let Some(site) = text("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    match text(header::ORIGIN.as_str()) {
        Some(origin) => {
            let host = text(header::HOST.as_str()).unwrap_or("");
            let scheme = if caller.https { "https" } else { "http" };
            host.is_empty() || !origin.eq_ignore_ascii_case(&format!("{scheme}://{host}"))
        }
        None => false,
    }
}

/// The login page for a browser without a session, with the URL it asked for (nginx's
/// original-URI header, made safe) as `next`, and `m=expired` when its session just ended.
fn login_location(gateway: &Gateway, headers: &HeaderMap, expired: bool) -> String {
    let original = headers.get(ORIGINAL_URI_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("/");
    let next = safe_return_path(original);
    let mut location = format!("{}?next={}", gateway.route_prefix().route(routes::LOGIN), encode_query(next));
    if expired {
        location.push_str("&m=expired");
    }
    location
}

fn login_page(gateway: &Gateway, caller: &Caller, req: &Request<Incoming>) -> Response<Body> {
    let query = req.uri().query().unwrap_or("");
    let mut next = "/".to_string();
    let mut message = None;
    let mut ticket = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "next" => next = safe_return_path(&value).to_string(),
            "ticket" => ticket = Some(value.into_owned()),
            "m" if value == "signed-out" => message = Some(LoginMessage::SignedOut),
            "m" if value == "expired" => message = Some(LoginMessage::Expired),
            _ => {}
        }
    }
    // Already signed in (e.g. a second tab): go straight on.
    if caller.has_session(gateway, req.headers()) {
        return redirect(StatusCode::SEE_OTHER, &next);
    }
    // An unlock ticket in the link: a live one goes into the form (the lockout does not apply
    // to it), a dead one is said to be dead (which also says how to get a new one).
    let ticket = match ticket {
        Some(ticket) if gateway.unlock_ticket_is_valid(&ticket) => {
            message = Some(LoginMessage::TicketReady);
            Some(ticket)
        }
        Some(_) => {
            message = Some(LoginMessage::TicketInvalid);
            None
        }
        None => {
            if let Some(locked) = gateway.peek_lockout(caller.ip) {
                message = Some(LoginMessage::locked_out(locked.retry_after, Device::of(caller.ip)));
            }
            None
        }
    };
    let action = gateway.route_prefix().route(routes::LOGIN);
    let app_name = caller.app_port.and_then(|port| gateway.app_name(port));
    let (issuer, account) = gateway.authenticator_entry();
    // Signed in to another app on this device: one click instead of a second code (which the
    // replay guard would refuse within the same 30 s anyway).
    let elsewhere = caller.app_port.and_then(|port| gateway.live_session_elsewhere(&caller.other_apps_tokens(req.headers()), port));
    let continue_action = gateway.route_prefix().route(routes::CONTINUE);
    let continue_value = elsewhere.as_ref().map(|(_, _, token)| token.continue_token());
    let passkey_routes =
        (gateway.route_prefix().route(routes::PASSKEY_SIGN_IN_START), gateway.route_prefix().route(routes::PASSKEY_SIGN_IN_FINISH));
    let elsewhere_url = passkey_elsewhere_url(gateway, caller, req.headers(), &next);
    let view = LoginView {
        action: &action,
        next: &next,
        message,
        ticket: ticket.as_deref(),
        app_name: app_name.as_ref(),
        session: gateway.session_settings(),
        entry: Some((&issuer, &account)),
        recovery: gateway.recovery_codes_left().is_some_and(|(left, _)| left > 0),
        passkey: passkey_sign_in(gateway, caller, req.headers(), &passkey_routes, &elsewhere_url),
        tries_left: None,
        continue_offer: elsewhere.as_ref().zip(continue_value.as_deref()).map(|((_, name, _), value)| ContinueOffer {
            app: name.as_str(),
            action: &continue_action,
            value,
        }),
    };
    html(StatusCode::OK, pages::login_page(&view))
}

/// The login page's passkey part: the button where a passkey was added at this address; at an
/// IP address (where browsers refuse passkeys) the address where they work, once any exists.
fn passkey_sign_in<'a>(
    gateway: &Gateway,
    caller: &Caller,
    headers: &HeaderMap,
    routes: &'a (String, String),
    elsewhere: &'a Option<String>,
) -> pages::PasskeySignIn<'a> {
    match passkey::relying_party(gateway, caller, headers) {
        Ok(rp) if gateway.has_passkeys_for(&rp) => pages::PasskeySignIn::Offer { start: &routes.0, finish: &routes.1 },
        Ok(_) => pages::PasskeySignIn::None,
        Err(_) => elsewhere.as_deref().map_or(pages::PasskeySignIn::None, pages::PasskeySignIn::AtAnotherAddress),
    }
}

/// For a login page opened at an IP address while passkeys exist: this page at the name
/// where they work (`localhost` on this computer, the `.local` name for another device), when
/// a passkey was added there.
fn passkey_elsewhere_url(gateway: &Gateway, caller: &Caller, headers: &HeaderMap, next: &str) -> Option<String> {
    let port = caller.app_port?;
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok())?;
    let (name, _) = host.rsplit_once(':')?;
    let ip: IpAddr = name.trim_start_matches('[').trim_end_matches(']').parse().ok()?;
    let passkeys = gateway.passkeys();
    let (scheme, rp_id) = if ip.is_loopback() && !caller.https {
        ("http", "localhost".to_owned())
    } else {
        ("https", passkeys.iter().map(|p| p.rp_id.clone()).find(|id| id != "localhost")?)
    };
    passkeys
        .iter()
        .any(|p| p.rp_id == rp_id)
        .then(|| format!("{scheme}://{rp_id}:{port}{}?next={}", gateway.route_prefix().route(routes::LOGIN), encode_query(next)))
}

async fn login_submit(gateway: &Gateway, caller: &Caller, req: Request<Incoming>, started: Instant) -> Response<Body> {
    if let Err(response) = same_origin(req.headers()) {
        return response;
    }
    let user_agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let headers = req.headers().clone();
    let form = match read_form(req).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let next = safe_return_path(form_value(&form, "next").unwrap_or("/")).to_string();
    let code = form_value(&form, "code").unwrap_or("");
    let action = gateway.route_prefix().route(routes::LOGIN);
    let Some(app_port) = caller.app_port else {
        // Not through our nginx: there is no app to sign in to, and nothing was counted.
        return html(
            StatusCode::BAD_REQUEST,
            pages::message_page("Open the app first", "Sign in from the app's own address (the one SimpleOTP protects)."),
        );
    };

    let ticket = form_value(&form, "ticket").filter(|t| !t.is_empty());
    // "Use a recovery code" posts this field instead of `code`.
    let recovery = form_value(&form, "recovery").filter(|r| !r.trim().is_empty());
    let outcome = match (recovery, ticket) {
        (Some(recovery), _) => gateway.login_with_recovery_code(caller.ip, app_port, recovery, &user_agent).await,
        (None, Some(ticket)) => gateway.login_with_ticket(caller.ip, app_port, code, &user_agent, ticket).await,
        (None, None) => gateway.login(caller.ip, app_port, code, &user_agent).await,
    };
    let (status, message) = match outcome {
        LoginOutcome::Success(token) => {
            // Once per browser, where passkeys work: "Sign in with Face ID … next time?"
            let (offer_cookies, location) = match passkey::offer_after_code(gateway, caller, &headers, &next) {
                Some((cookies, page)) => (cookies, page),
                None => (Vec::new(), next.clone()),
            };
            let mut response = redirect(StatusCode::SEE_OTHER, &location);
            let cookie = session_cookie(&token, app_port, gateway.session_lifetime(), caller.https);
            response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("cookie is ASCII"));
            for cookie in offer_cookies {
                if let Ok(value) = HeaderValue::from_str(&cookie) {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
            }
            return response;
        }
        LoginOutcome::Rejected { reason, lockout } => {
            let message = match (lockout, reason) {
                (Some(locked), _) => LoginMessage::locked_out(locked.retry_after, Device::of(caller.ip)),
                (None, _) if recovery.is_some() => LoginMessage::WrongRecoveryCode,
                (None, crate::totp::CodeRejected::Replayed) => LoginMessage::CodeAlreadyUsed,
                (None, _) => LoginMessage::WrongCode,
            };
            (StatusCode::UNAUTHORIZED, message)
        }
        LoginOutcome::Locked(locked) => {
            (StatusCode::TOO_MANY_REQUESTS, LoginMessage::locked_out(locked.retry_after, Device::of(caller.ip)))
        }
        LoginOutcome::NotSaved(_) => (StatusCode::SERVICE_UNAVAILABLE, LoginMessage::NotSaved),
    };
    tokio::time::sleep_until(started + FAILURE_FLOOR).await;
    let retry_after = match &message {
        LoginMessage::LockedOut { retry_after, .. } => Some(retry_after.as_secs().max(1)),
        _ => None,
    };
    // A ticket with attempts left stays in the form for the next try.
    let ticket = ticket.filter(|t| gateway.unlock_ticket_is_valid(t));
    let app_name = gateway.app_name(app_port);
    let (issuer, account) = gateway.authenticator_entry();
    let view = LoginView {
        action: &action,
        next: &next,
        message: Some(message),
        ticket,
        app_name: app_name.as_ref(),
        session: gateway.session_settings(),
        entry: Some((&issuer, &account)),
        recovery: gateway.recovery_codes_left().is_some_and(|(left, _)| left > 0),
        // After a failure the page is the answer to a POST: passkeys are offered on the page
        // itself (a reload), not here.
        passkey: pages::PasskeySignIn::None,
        continue_offer: None,
        // A ticket has its own count (said in its message); the pause does not apply to it.
        tries_left: if ticket.is_some() { None } else { gateway.tries_left(caller.ip) },
    };
    let mut response = html(status, pages::login_page(&view));
    if let Some(seconds) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

fn logout_page(gateway: &Gateway, caller: &Caller, headers: &HeaderMap) -> Response<Body> {
    let tokens = caller.session_tokens(headers);
    let port = caller.app_port.unwrap_or_default();
    let Some(token) = tokens.iter().find(|t| gateway.is_valid_any(std::slice::from_ref(*t), port)) else {
        return redirect(StatusCode::SEE_OTHER, &gateway.route_prefix().route(routes::LOGIN));
    };
    let action = gateway.route_prefix().route(routes::LOGOUT);
    html(StatusCode::OK, pages::logout_page(&LogoutView { action: &action, csrf_token: &token.csrf_token(), back: "/" }))
}

/// "Continue — you are signed in to Jupyter on this device": the form's value must belong to a
/// live session of another app that this browser sends (so another site cannot make the browser
/// do it: it cannot read the value, and `same_origin` refuses its request anyway).
async fn continue_submit(gateway: &Gateway, caller: &Caller, req: Request<Incoming>) -> Response<Body> {
    if let Err(response) = same_origin(req.headers()) {
        return response;
    }
    let Some(app_port) = caller.app_port else {
        return html(
            StatusCode::BAD_REQUEST,
            pages::message_page("Open the app first", "Sign in from the app's own address (the one SimpleOTP protects)."),
        );
    };
    let others = caller.other_apps_tokens(req.headers());
    let user_agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let form = match read_form(req).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let next = safe_return_path(form_value(&form, "next").unwrap_or("/")).to_string();
    let presented = form_value(&form, "continue").unwrap_or("");
    let Some((from_port, from)) = others.into_iter().find(|(_, t)| bool::from(t.continue_token().as_bytes().ct_eq(presented.as_bytes())))
    else {
        return html(
            StatusCode::FORBIDDEN,
            pages::message_page("Continue refused", "This request did not come from your SimpleOTP page. Nothing was changed."),
        );
    };
    let login = || {
        let again: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
        redirect(StatusCode::SEE_OTHER, &format!("{}?next={again}", gateway.route_prefix().route(routes::LOGIN)))
    };
    match gateway.continue_session(caller.ip, app_port, from_port, &from, &user_agent).await {
        ContinueOutcome::Success(token) => {
            let mut response = redirect(StatusCode::SEE_OTHER, &next);
            let cookie = session_cookie(&token, app_port, gateway.session_lifetime(), caller.https);
            response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("cookie is ASCII"));
            response
        }
        // The other session ended meanwhile, or the address is locked out: the login page says
        // what applies (the lockout, with its countdown).
        ContinueOutcome::NoSession | ContinueOutcome::Locked(_) => login(),
        ContinueOutcome::NotSaved(_) => html(
            StatusCode::SERVICE_UNAVAILABLE,
            pages::message_page("Sign-in failed", "SimpleOTP could not save it: its data folder is not writable or the disk is full."),
        ),
    }
}

async fn logout_submit(gateway: &Gateway, caller: &Caller, req: Request<Incoming>) -> Response<Body> {
    if let Err(response) = same_origin(req.headers()) {
        return response;
    }
    let tokens = caller.session_tokens(req.headers());
    let form = match read_form(req).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let presented = form_value(&form, "csrf").unwrap_or("");
    // The form must carry the CSRF value of one of the sessions the browser holds.
    let Some(token) = tokens.iter().find(|t| bool::from(t.csrf_token().as_bytes().ct_eq(presented.as_bytes()))) else {
        return html(
            StatusCode::FORBIDDEN,
            pages::message_page("Sign-out refused", "This sign-out request did not come from your SimpleOTP page. Nothing was changed."),
        );
    };
    gateway.revoke_token(token).await;
    info!(client = %caller.ip, "signed out");
    let mut response = redirect(StatusCode::SEE_OTHER, &format!("{}?m=signed-out", gateway.route_prefix().route(routes::LOGIN)));
    if let Some(port) = caller.app_port {
        let cookie = format!(
            "{}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0{}",
            session_cookie_name(port, caller.https),
            if caller.https { "; Secure" } else { "" }
        );
        response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("cookie is ASCII"));
    }
    response
}

/// nginx's `error_page` for an app that does not answer (502/504 from nginx itself). The app's
/// name comes from our own configuration, never from a request header.
fn upstream_down(gateway: &Gateway, caller: &Caller) -> Response<Body> {
    let name = caller.app_port.and_then(|port| gateway.app_name(port));
    let app = name.as_ref().map(|n| n.as_str()).unwrap_or("The app");
    let body = format!(
        "{} is not answering. You are signed in, but the app behind SimpleOTP did not respond. Check that it is running, then reload this page.",
        app
    );
    html(StatusCode::BAD_GATEWAY, pages::message_page("App not answering", &body))
}

fn health() -> Response<Body> {
    let body = serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }).to_string();
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Local owner actions. Never reachable through nginx (nginx answers 404 for `control/`, and a
/// request carrying nginx's `X-Real-IP` is refused here too), and only with the token from the
/// 0600 control file in the data directory.
/// A control client's challenge: the gateway shows it knows the control token without sending
/// it, and before the client sends it (whoever listens on a stale control file's port gets
/// nothing worth having). Loopback only, never through nginx, like every control route.
fn control_prove(gateway: &Gateway, caller: &Caller, headers: &HeaderMap) -> Response<Body> {
    if caller.came_through_proxy || !caller.ip.is_loopback() {
        return not_found();
    }
    let nonce = headers.get(CONTROL_NONCE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    if nonce.len() != 64 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return plain(StatusCode::BAD_REQUEST, "a 256-bit hex nonce is needed");
    }
    let mut response = plain(StatusCode::OK, "ok");
    response.headers_mut().insert(CONTROL_PROOF_HEADER, HeaderValue::from_str(&gateway.control_proof(nonce)).expect("hex is ASCII"));
    response
}

fn control_unlock(gateway: &Gateway, caller: &Caller, headers: &HeaderMap) -> Response<Body> {
    if let Err(refused) = control_caller_allowed(gateway, caller, headers) {
        return refused;
    }
    let ticket = gateway.issue_unlock_ticket();
    let login_path = format!("{}?ticket={}", gateway.route_prefix().route(routes::LOGIN), ticket.expose());
    let body = crate::control::UnlockLink {
        login_path,
        expires_in_secs: crate::ticket::TICKET_LIFETIME.as_secs(),
        attempts: crate::ticket::TICKET_ATTEMPTS,
    };
    let mut response = Response::new(Body::from(serde_json::to_string(&body).expect("serializes")));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `simpleotp recovery-codes new` against this gateway: a new set, saved, the codes in the
/// answer (once; only their hashes stay).
async fn control_recovery_codes(gateway: &Gateway, caller: &Caller, headers: &HeaderMap) -> Response<Body> {
    if let Err(refused) = control_caller_allowed(gateway, caller, headers) {
        return refused;
    }
    match gateway.new_recovery_codes().await {
        Ok(codes) => {
            let body = crate::control::NewRecoveryCodes { codes: codes.iter().map(|c| c.expose().to_string()).collect() };
            let mut response = Response::new(Body::from(serde_json::to_string(&body).expect("serializes")));
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => {
            warn!("new recovery codes could not be saved: {e}");
            plain(StatusCode::SERVICE_UNAVAILABLE, "the new codes could not be saved (see the gateway's log), so the old ones stay")
        }
    }
}

/// `simpleotp passkey add`: a one-time link to add a passkey (the path; the CLI puts an app's
/// address in front).
fn control_passkey_link(gateway: &Gateway, caller: &Caller, headers: &HeaderMap) -> Response<Body> {
    if let Err(refused) = control_caller_allowed(gateway, caller, headers) {
        return refused;
    }
    let link = gateway.issue_passkey_link();
    let body = crate::control::PasskeyLink {
        add_path: format!("{}?link={}", gateway.route_prefix().route(routes::PASSKEY_ADD), link.expose()),
        expires_in_secs: crate::passkey::LINK_LIFETIME.as_secs(),
    };
    control_json(&serde_json::to_value(&body).expect("serializes"))
}

/// `simpleotp passkey list`.
fn control_passkeys(gateway: &Gateway, caller: &Caller, headers: &HeaderMap) -> Response<Body> {
    if let Err(refused) = control_caller_allowed(gateway, caller, headers) {
        return refused;
    }
    control_json(&serde_json::to_value(gateway.passkeys()).expect("serializes"))
}

/// `simpleotp passkey remove ID_OR_NAME` (`?id=`).
async fn control_passkey_remove(gateway: &Gateway, caller: &Caller, req: &Request<Incoming>) -> Response<Body> {
    if let Err(refused) = control_caller_allowed(gateway, caller, req.headers()) {
        return refused;
    }
    let id = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).find(|(k, _)| k == "id").map(|(_, v)| v.into_owned());
    match gateway.remove_passkey(id.as_deref().unwrap_or("")).await {
        Ok(removed) => control_json(&serde_json::to_value(removed).expect("serializes")),
        Err(crate::passkey::PasskeyError::NotFound) => plain(StatusCode::NOT_FOUND, "there is no passkey with that name or id"),
        Err(e) => {
            warn!("removing a passkey failed: {e}");
            plain(StatusCode::SERVICE_UNAVAILABLE, "the passkey no longer works, but the state file could not be written (see the gateway's log): it may work again after a restart")
        }
    }
}

/// A control route's JSON answer (never cached).
fn control_json(body: &impl serde::Serialize) -> Response<Body> {
    let mut response = Response::new(Body::from(serde_json::to_string(body).expect("serializes")));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A control route's JSON body, at most [`crate::control::MAX_CONTROL_BODY`] bytes.
#[allow(clippy::result_large_err)] // the refusal is the response itself
async fn control_body<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, Response<Body>> {
    let body = match Limited::new(req.into_body(), crate::control::MAX_CONTROL_BODY).collect().await {
        Ok(collected) => zeroize::Zeroizing::new(collected.to_bytes().to_vec()),
        Err(_) => return Err(plain(StatusCode::PAYLOAD_TOO_LARGE, "the request is too large")),
    };
    // The error's kind only: serde_json's message may quote the body (a secret, a code).
    serde_json::from_slice(&body)
        .map_err(|e| plain(StatusCode::BAD_REQUEST, format!("the request is not valid JSON ({:?} error)", e.classify())))
}

/// `simpleotp authenticator list` against this gateway: names, ids, times; never a secret.
fn control_authenticators(gateway: &Gateway, caller: &Caller, headers: &HeaderMap) -> Response<Body> {
    if let Err(refused) = control_caller_allowed(gateway, caller, headers) {
        return refused;
    }
    control_json(&gateway.authenticators())
}

/// `simpleotp authenticator add` against this gateway: the CLI made the secret and showed it;
/// the code from the new app confirms it here, through the one rule for adding.
async fn control_authenticator_add(gateway: &Gateway, caller: &Caller, req: Request<Incoming>) -> Response<Body> {
    if let Err(refused) = control_caller_allowed(gateway, caller, req.headers()) {
        return refused;
    }
    let add: crate::control::AddAuthenticator = match control_body(req).await {
        Ok(add) => add,
        Err(refused) => return refused,
    };
    let name = match crate::authenticator::AuthenticatorName::parse(&add.name) {
        Ok(name) => name,
        Err(e) => return plain(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let secret = match crate::totp::TotpSecret::from_base32(&add.secret) {
        Ok(secret) => secret,
        Err(e) => return plain(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let pending = crate::authenticator::PendingAuthenticator::from_parts(name, secret);
    match gateway.add_authenticator(pending, &add.code).await {
        Ok(info) => control_json(&info),
        Err(e @ crate::gateway::AddAuthenticatorError::NotSaved(_)) => plain(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(e) => plain(StatusCode::CONFLICT, e.to_string()),
    }
}

/// `simpleotp authenticator remove` against this gateway: its codes fail from now on.
async fn control_authenticator_remove(gateway: &Gateway, caller: &Caller, req: Request<Incoming>) -> Response<Body> {
    if let Err(refused) = control_caller_allowed(gateway, caller, req.headers()) {
        return refused;
    }
    let remove: crate::control::RemoveAuthenticator = match control_body(req).await {
        Ok(remove) => remove,
        Err(refused) => return refused,
    };
    match gateway.remove_authenticator(&remove.which).await {
        Ok(info) => control_json(&info),
        Err(e @ crate::gateway::RemoveAuthenticatorError::NotSaved(_)) => plain(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(e) => plain(StatusCode::CONFLICT, e.to_string()),
    }
}

/// Whether a control request comes from the owner: directly on loopback (not through nginx) with
/// the control file's token. The refusal to send otherwise.
#[allow(clippy::result_large_err)] // the refusal is the response itself
fn control_caller_allowed(gateway: &Gateway, caller: &Caller, headers: &HeaderMap) -> Result<(), Response<Body>> {
    if caller.came_through_proxy || !caller.ip.is_loopback() {
        return Err(not_found());
    }
    let presented = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
    if !gateway.control_token_matches(presented) {
        return Err(plain(StatusCode::UNAUTHORIZED, "bad control token"));
    }
    Ok(())
}

/// `simpleotp ca rotate` while this gateway runs: the gateway rotates (it is the CA's only
/// writer while it runs), so it never issues another leaf with the old key.
async fn control_ca_rotate(gateway: &Gateway, caller: &Caller, headers: &HeaderMap) -> Response<Body> {
    if let Err(refused) = control_caller_allowed(gateway, caller, headers) {
        return refused;
    }
    let mut response = match gateway.rotate_ca().await {
        Some(Ok(rotated)) => {
            let mut response = Response::new(Body::from(serde_json::to_string(&rotated).expect("serializes")));
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Some(Err(message)) => {
            let mut response = Response::new(Body::from(message));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
            response
        }
        None => plain(StatusCode::SERVICE_UNAVAILABLE, "the gateway is still starting; try again in a moment"),
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The session cookie for the app on `app_port`: `HttpOnly` (no script reads it), `SameSite=Lax`
/// (no cross-site POST carries it) and, over https, `Secure` with the `__Host-` name.
fn session_cookie(token: &SessionToken, app_port: u16, lifetime: Duration, https: bool) -> String {
    format!(
        "{}={}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{}",
        session_cookie_name(app_port, https),
        token.expose(),
        lifetime.as_secs(),
        if https { "; Secure" } else { "" }
    )
}

/// Refuses state-changing requests that a browser says came from another origin.
///
/// Browsers send `Sec-Fetch-Site`, which page scripts cannot forge: only `same-origin` (our own
/// form) or `none` (typed by the user) pass; `same-site` is refused too, because another app on
/// another port of the same host is a different origin. Browsers without it are judged by
/// `Origin`, which must match `Host`. Clients that send neither, like curl, are not browsers and
/// cannot be tricked into sending our cookie.
#[allow(clippy::result_large_err)]
fn same_origin(headers: &HeaderMap) -> Result<(), Response<Body>> {
    let forbidden = || {
        html(
            StatusCode::FORBIDDEN,
            pages::message_page("Request refused", "This request came from another site. Open the page directly and try again."),
        )
    };
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.to_str() {
            Ok("same-origin") | Ok("none") => Ok(()),
            _ => Err(forbidden()),
        };
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        let origin_host = origin.to_str().ok().and_then(|o| o.split_once("://")).map(|(_, h)| h).unwrap_or("");
        if host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
            return Err(forbidden());
        }
    }
    Ok(())
}

#[allow(clippy::result_large_err)]
async fn read_form(req: Request<Incoming>) -> Result<Vec<(String, String)>, Response<Body>> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(html(StatusCode::UNSUPPORTED_MEDIA_TYPE, pages::message_page("Bad request", "Expected a form submission.")));
    }
    let body = match Limited::new(req.into_body(), MAX_FORM_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(html(StatusCode::PAYLOAD_TOO_LARGE, pages::message_page("Bad request", "The form was too large."))),
    };
    Ok(parse_form(&body))
}

/// Decodes an `application/x-www-form-urlencoded` body (public for the fuzz targets).
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn form_value<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The CA page's check ([`routes::TRUST_CHECK`]): answered at all over HTTPS, the device
/// trusts the CA; noted for the tray's progress. Empty, never cached.
fn trust_check(gateway: &Gateway, caller: &Caller) -> Response<Body> {
    if caller.https {
        gateway.record_device_step(caller.ip, DeviceStep::TrustsCa);
    }
    let mut response = Response::new(Body::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The page that helps a person trust the local CA on another device.
fn ca_page(gateway: &Gateway) -> Response<Body> {
    let prefix = gateway.route_prefix();
    match gateway.ca_certificate() {
        Some(certificate) => {
            let apps = gateway.apps_facing_network();
            let apps: Vec<(u16, &str)> = apps.iter().map(|(port, name)| (*port, name.as_str())).collect();
            let mut response = html(
                StatusCode::OK,
                pages::ca_page(&pages::CaView {
                    certificate: &certificate,
                    certificate_path: &prefix.route(routes::CA_CERTIFICATE),
                    profile_path: &prefix.route(routes::CA_PROFILE),
                    trust_check_path: &prefix.route(routes::TRUST_CHECK),
                    apps: &apps,
                }),
            );
            // Its script may fetch the trust check over HTTPS (another origin than the page's
            // plain HTTP): the one thing its policy allows beyond the others'.
            if let Ok(value) = HeaderValue::from_str(pages::ca_page_content_security_policy()) {
                response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
            }
            response
        }
        None => html(
            StatusCode::NOT_FOUND,
            pages::message_page(
                "No certificate authority yet",
                "HTTPS on the local network is not set up on this computer yet. Turn on access from other devices in the \
                 SimpleOTP app first, then open this page again.",
            ),
        ),
    }
}

enum CaDownload {
    Certificate,
    AppleProfile,
}

/// The CA certificate as a file to install: DER `.crt`, or the Apple profile.
fn ca_download(gateway: &Gateway, kind: CaDownload) -> Response<Body> {
    let Some(certificate) = gateway.ca_certificate() else {
        return not_found();
    };
    // Names the CA (a rotated one downloads under another name) without a fingerprint prefix,
    // which someone could take for the value to compare.
    let id: String = {
        use sha2::Digest as _;
        sha2::Sha256::new().chain_update(b"simpleotp-download-name\0").chain_update(certificate.der()).finalize()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let (body, content_type, file_name) = match kind {
        CaDownload::Certificate => {
            (Bytes::from(certificate.der().to_vec()), "application/x-x509-ca-cert", format!("SimpleOTP-CA-{id}.crt"))
        }
        CaDownload::AppleProfile => {
            (Bytes::from(certificate.apple_profile()), "application/x-apple-aspen-config", format!("SimpleOTP-CA-{id}.mobileconfig"))
        }
    };
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Made of ASCII letters, digits, '-' and '.': always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // A rotated CA must not be served from a cache.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn encode_query(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn html(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    for (name, value) in pages::security_headers().iter() {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(*name, value);
        }
    }
    response
}

fn redirect(status: StatusCode, location: &str) -> Response<Body> {
    let mut response = Response::new(Body::default());
    *response.status_mut() = status;
    // `location` is either a validated return path or one we built; both are plain ASCII.
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/")));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn plain(status: StatusCode, text: impl Into<Body>) -> Response<Body> {
    let mut response = Response::new(text.into());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn not_found() -> Response<Body> {
    plain(StatusCode::NOT_FOUND, "not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn forwarded_headers_are_trusted_only_with_the_proof_from_loopback() {
        let proof = crate::protocol::NginxProof::generate();
        let matches = |presented: &[u8]| proof.matches(presented);
        let forwarded = [("x-real-ip", "203.0.113.9"), ("x-forwarded-proto", "https"), ("x-simpleotp-app", "8081")];
        let mut with_proof = forwarded.to_vec();
        with_proof.push(("x-simpleotp-proof", proof.expose()));
        let local = Caller::from("127.0.0.1:5000".parse().unwrap(), &headers(&with_proof), matches);
        assert_eq!(local.ip, "203.0.113.9".parse::<IpAddr>().unwrap());
        assert!(local.https);
        assert_eq!(local.app_port, Some(8081));

        // Any other local process: no proof, or a wrong one, and none of it is believed.
        let right = proof.expose();
        let wrong = format!("{}{}", &right[..right.len() - 1], if right.ends_with('A') { 'B' } else { 'A' });
        for presented in [headers(&forwarded), {
            let mut h = forwarded.to_vec();
            h.push(("x-simpleotp-proof", &wrong));
            headers(&h)
        }] {
            let forged = Caller::from("127.0.0.1:5000".parse().unwrap(), &presented, matches);
            assert_eq!(forged.ip, "127.0.0.1".parse::<IpAddr>().unwrap());
            assert!(!forged.https);
            assert_eq!(forged.app_port, None);
            assert!(forged.came_through_proxy);
        }
        // The right proof from a non-loopback peer is not believed either.
        let remote = Caller::from("192.0.2.1:5000".parse().unwrap(), &headers(&with_proof), matches);
        assert_eq!(remote.ip, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert!(!remote.https);
    }

    #[test]
    fn cross_site_posts_are_refused() {
        assert!(same_origin(&headers(&[("host", "localhost:8081"), ("origin", "http://localhost:8081")])).is_ok());
        assert!(same_origin(&headers(&[("host", "localhost:8081")])).is_ok());
        assert!(same_origin(&headers(&[("host", "localhost:8081"), ("origin", "http://evil.example")])).is_err());
        assert!(same_origin(&headers(&[("host", "localhost:8081"), ("origin", "null")])).is_err());
        assert!(same_origin(&headers(&[("host", "localhost:8081"), ("sec-fetch-site", "cross-site")])).is_err());
        assert!(same_origin(&headers(&[("host", "localhost:8081"), ("sec-fetch-site", "same-site")])).is_err());
        // A browser that hides Origin ("null") but says same-origin is our own form.
        assert!(same_origin(&headers(&[("host", "localhost:8081"), ("origin", "null"), ("sec-fetch-site", "same-origin")])).is_ok());
    }

    #[test]
    fn only_a_change_from_another_origin_is_refused() {
        let caller = |https| Caller { ip: "127.0.0.1".parse().unwrap(), https, app_port: Some(8081), came_through_proxy: true };
        let refused = |https, pairs: &[(&'static str, &str)]| {
            let mut all = vec![("host", "127.0.0.1:8081")];
            all.extend_from_slice(pairs);
            changes_something_from_another_origin(&caller(https), &headers(&all))
        };
        let post = ("x-simpleotp-original-method", "POST");
        // Another port of the same host: "same-site" to the browser, another origin to us.
        assert!(refused(false, &[post, ("sec-fetch-site", "same-site")]));
        assert!(refused(false, &[post, ("sec-fetch-site", "cross-site")]));
        assert!(refused(false, &[("x-simpleotp-original-method", "DELETE"), ("origin", "http://127.0.0.1:9999")]));
        assert!(refused(false, &[post, ("origin", "null")]));
        assert!(refused(true, &[post, ("origin", "http://127.0.0.1:8081")]), "the scheme is part of the origin");
        assert!(refused(false, &[("x-simpleotp-original-upgrade", "websocket"), ("origin", "http://127.0.0.1:9999")]));
        assert!(refused(false, &[("sec-fetch-mode", "websocket"), ("sec-fetch-site", "same-site")]));
        // The app's own pages, the person typing, and programs that are not browsers.
        assert!(!refused(false, &[post, ("sec-fetch-site", "same-origin"), ("origin", "http://127.0.0.1:8081")]));
        assert!(!refused(false, &[post, ("origin", "http://127.0.0.1:8081")]));
        assert!(!refused(true, &[post, ("origin", "https://127.0.0.1:8081")]));
        assert!(!refused(false, &[("x-simpleotp-original-upgrade", "websocket"), ("origin", "http://127.0.0.1:8081")]));
        assert!(!refused(false, &[post]));
        // Reading is left to CORS: a cross-port GET (an image, a link) is not refused.
        assert!(!refused(false, &[("sec-fetch-site", "same-site")]));
        assert!(!refused(false, &[("x-simpleotp-original-method", "GET"), ("sec-fetch-site", "cross-site")]));
    }

    #[test]
    fn cookies_are_http_only_and_same_site() {
        let token = SessionToken::generate();
        let plain = session_cookie(&token, 8081, Duration::from_secs(60), false);
        assert!(plain.starts_with("simpleotp_8081="), "{plain}");
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Lax") && plain.contains("Path=/") && !plain.contains("Secure"));
        let secure = session_cookie(&token, 8081, Duration::from_secs(60), true);
        assert!(secure.starts_with("__Host-simpleotp_8081=") && secure.ends_with("; Secure"), "{secure}");
    }
}
