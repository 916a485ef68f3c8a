//! The passkey routes (see [`crate::passkey`]): the page that adds one, and the two ceremonies
//! as JSON for the pages' script (`start` hands out a challenge, `finish` checks the answer).
//!
//! Every POST here is same-origin only, like the forms. The link that allows adding a passkey
//! is always in the page's URL: the owner's one-time link, or, for the offer right after a
//! sign-in with a code, the page the sign-in redirects to. Never in a cookie: cookies ignore
//! ports, so any program listening on another port of `localhost` would receive it (see
//! SECURITY.md, "Sessions and other programs on the same host") and could add a passkey of its
//! own; a URL goes only to our origin, and the page sends no `Referer`. The offer is made once
//! per browser ([`ASKED_COOKIE`], which says nothing but "asked").

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use tracing::warn;

use super::{html, pages, redirect, same_origin, session_cookie, Body, Caller};
use crate::gateway::{Gateway, LoginOutcome};
use crate::passkey::{PasskeyError, PasskeyName, RelyingParty};
use crate::protocol::routes;
use crate::redirect::safe_return_path;

/// Set when a browser was offered a passkey: the offer is made once per browser.
pub const ASKED_COOKIE: &str = "simpleotp_passkey_asked";
/// A WebAuthn answer is a few kilobytes at most (nginx allows 16 KiB on these routes).
const MAX_JSON_BYTES: usize = 16 * 1024;

fn host(headers: &HeaderMap) -> &str {
    headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Where passkeys work for this request, if anywhere.
pub(super) fn relying_party(gateway: &Gateway, caller: &Caller, headers: &HeaderMap) -> Result<RelyingParty, PasskeyError> {
    if caller.app_port.is_none() {
        return Err(PasskeyError::NotHere("open the app first".into()));
    }
    gateway.relying_party(host(headers), caller.https)
}

/// After a sign-in with a code: when this browser was never asked and passkeys work at this
/// address, the cookie that says it was asked and the page to go to instead of `next` (with a
/// fresh one-time link in its URL).
pub(super) fn offer_after_code(gateway: &Gateway, caller: &Caller, headers: &HeaderMap, next: &str) -> Option<(Vec<String>, String)> {
    if cookie(headers, ASKED_COOKIE).is_some() || relying_party(gateway, caller, headers).is_err() {
        return None;
    }
    let link = gateway.issue_passkey_link();
    let secure = if caller.https { "; Secure" } else { "" };
    let cookies = vec![format!("{ASKED_COOKIE}=1; HttpOnly; SameSite=Lax; Path=/; Max-Age=31536000{secure}")];
    let page =
        format!("{}?offer=1&link={}&next={}", gateway.route_prefix().route(routes::PASSKEY_ADD), link.expose(), super::encode_query(next));
    Some((cookies, page))
}

/// The page that adds a passkey (`?link=…` from the owner, or `?offer=1` with the cookie).
pub(super) fn add_page(gateway: &Gateway, caller: &Caller, req: &Request<Incoming>) -> Response<Body> {
    let mut next = "/".to_owned();
    let mut link = None;
    let mut offer = false;
    let mut name = "My passkey".to_owned();
    for (key, value) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match &*key {
            "next" => next = safe_return_path(&value).to_owned(),
            "link" => link = Some(value.into_owned()),
            "offer" => offer = value == "1",
            "name" => name = PasskeyName::parse(&value).map(String::from).unwrap_or(name),
            _ => {}
        }
    }
    if offer && link.as_deref().is_none_or(|l| !gateway.passkey_link_is_valid(l)) {
        // The offer is only worth making while it can be taken up.
        return redirect(StatusCode::SEE_OTHER, &next);
    }
    let Some(link) = link.filter(|l| gateway.passkey_link_is_valid(l)) else {
        return html(
            StatusCode::GONE,
            pages::message_page("This link no longer works", &capitalise(&PasskeyError::LinkInvalid.to_string())),
        );
    };
    let rp = match relying_party(gateway, caller, req.headers()) {
        Ok(rp) => rp,
        Err(e) => return html(StatusCode::BAD_REQUEST, pages::message_page("Passkeys do not work here", &capitalise(&e.to_string()))),
    };
    let start = gateway.route_prefix().route(routes::PASSKEY_ADD_START);
    let finish = gateway.route_prefix().route(routes::PASSKEY_ADD_FINISH);
    let view = pages::PasskeyAddView { offer, link: &link, start: &start, finish: &finish, next: &next, name: &name, rp_id: rp.id() };
    let mut response = html(StatusCode::OK, pages::passkey_add_page(&view));
    // The link is in this page's URL: no Referer carries it on (to the app, on "Continue").
    response.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[derive(Deserialize)]
struct AddStart {
    link: String,
}

#[derive(Deserialize)]
struct AddFinish {
    ceremony: String,
    name: String,
    credential: webauthn_rs::prelude::RegisterPublicKeyCredential,
}

#[derive(Deserialize)]
struct SignInFinish {
    ceremony: String,
    #[serde(default)]
    next: String,
    credential: webauthn_rs::prelude::PublicKeyCredential,
}

pub(super) async fn add_start(gateway: &Gateway, caller: &Caller, req: Request<Incoming>) -> Response<Body> {
    let headers = req.headers().clone();
    let body: AddStart = match read_json(req).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let started = relying_party(gateway, caller, &headers).and_then(|rp| gateway.start_adding_passkey(&body.link, &rp));
    match started {
        Ok(started) => json(StatusCode::OK, &serde_json::json!({ "ceremony": started.ceremony, "options": started.options })),
        Err(e) => error(&e),
    }
}

pub(super) async fn add_finish(gateway: &Gateway, req: Request<Incoming>) -> Response<Body> {
    let body: AddFinish = match read_json(req).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let name = match PasskeyName::parse(&body.name) {
        Ok(name) => name,
        Err(e) => return error(&e),
    };
    match gateway.finish_adding_passkey(&body.ceremony, name, &body.credential).await {
        Ok(added) => json(StatusCode::OK, &serde_json::json!({ "name": added.name, "rp_id": added.rp_id })),
        Err(e) => error(&e),
    }
}

pub(super) async fn sign_in_start(gateway: &Gateway, caller: &Caller, req: Request<Incoming>) -> Response<Body> {
    let headers = req.headers().clone();
    if let Err(response) = read_json::<serde_json::Value>(req).await {
        return response;
    }
    match relying_party(gateway, caller, &headers).and_then(|rp| gateway.start_passkey_sign_in(caller.ip, &rp)) {
        Ok(started) => json(StatusCode::OK, &serde_json::json!({ "ceremony": started.ceremony, "options": started.options })),
        Err(e) => error(&e),
    }
}

pub(super) async fn sign_in_finish(gateway: &Gateway, caller: &Caller, req: Request<Incoming>) -> Response<Body> {
    let user_agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let Some(app_port) = caller.app_port else {
        return error(&PasskeyError::NotHere("open the app first".into()));
    };
    let body: SignInFinish = match read_json(req).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let next = safe_return_path(&body.next).to_owned();
    match gateway.sign_in_with_passkey(caller.ip, app_port, &body.ceremony, &body.credential, &user_agent).await {
        LoginOutcome::Success(token) => {
            let mut response = json(StatusCode::OK, &serde_json::json!({ "redirect": next }));
            let cookie = session_cookie(&token, app_port, gateway.session_lifetime(), caller.https);
            response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("cookie is ASCII"));
            response
        }
        LoginOutcome::Locked(locked) | LoginOutcome::Rejected { lockout: Some(locked), .. } => json(
            StatusCode::TOO_MANY_REQUESTS,
            &serde_json::json!({ "error": format!("Sign-in is locked for {}: too many failed tries.", pages::format_duration(locked.retry_after)) }),
        ),
        LoginOutcome::Rejected { .. } => json(
            StatusCode::UNAUTHORIZED,
            &serde_json::json!({ "error": "That passkey was not accepted (removed, or made for another address). Use a code." }),
        ),
        LoginOutcome::NotSaved(_) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "error": "SimpleOTP could not save the sign-in; the computer's owner can see why in SimpleOTP." }),
        ),
    }
}

/// A passkey error as JSON for the script: the person's words (a refusal's detail stays in
/// the log).
fn error(e: &PasskeyError) -> Response<Body> {
    let status = match e {
        PasskeyError::LinkInvalid => StatusCode::GONE,
        PasskeyError::Refused(detail) => {
            warn!(reason = %detail, "passkey refused");
            StatusCode::UNAUTHORIZED
        }
        PasskeyError::NoPasskeys | PasskeyError::NotFound => StatusCode::NOT_FOUND,
        PasskeyError::Locked(_) => StatusCode::TOO_MANY_REQUESTS,
        PasskeyError::NotSaved(detail) => {
            warn!(reason = %detail, "a passkey change could not be saved");
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::BAD_REQUEST,
    };
    json(status, &serde_json::json!({ "error": capitalise(&e.to_string()) }))
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    response
}

/// A same-origin JSON body, bounded.
#[allow(clippy::result_large_err)]
async fn read_json<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, Response<Body>> {
    if same_origin(req.headers()).is_err() {
        return Err(json(StatusCode::FORBIDDEN, &serde_json::json!({ "error": "This request came from another site." })));
    }
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    if !is_json {
        return Err(json(StatusCode::UNSUPPORTED_MEDIA_TYPE, &serde_json::json!({ "error": "Expected JSON." })));
    }
    let body = match Limited::new(req.into_body(), MAX_JSON_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(json(StatusCode::PAYLOAD_TOO_LARGE, &serde_json::json!({ "error": "Too large." }))),
    };
    serde_json::from_slice(&body)
        .map_err(|_| json(StatusCode::BAD_REQUEST, &serde_json::json!({ "error": "That answer could not be read." })))
}
