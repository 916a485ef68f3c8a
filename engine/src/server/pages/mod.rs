//! The HTML pages the auth server serves, one module per page: [`login`] (sign-in and the
//! sign-out confirmation), [`ca`] (trusting SimpleOTP's CA on another device), and plain
//! messages here; the frame they share (brand, document, styles, security headers) is this
//! module, and escaping lives in [`crate::html`].
//!
//! Every page is a complete, self-contained document: one inline stylesheet ([`STYLE`]), an
//! inline SVG mark, no fonts, no images or anything else fetched by URL. The login page also
//! carries one inline script ([`LOGIN_SCRIPT`]: submit at the sixth digit, the lockout's
//! countdown); every other page has none, and the login page works without it. That lets the
//! pages ship with a strict Content-Security-Policy ([`content_security_policy`]) that allows
//! exactly that stylesheet and that script, each by its SHA-256 hash (computed at run time from
//! the embedded bytes, so editing an asset cannot leave a stale hash), and nothing else; send
//! it, with the other [`security_headers`], on every response that carries one of these pages.
//!
//! Every dynamic value (paths, the return path, the CSRF token, message titles, the app's name)
//! goes through [`html_escape`](crate::html::html_escape). Escaping makes a value safe *as text and inside a quoted
//! attribute*; it does not make an arbitrary string a safe URL, so `next` and `back` must
//! already be validated same-site paths (the CSP allows no script but ours, so `javascript:`
//! links would not run).

mod ca;
mod login;
mod passkey;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use sha2::{Digest, Sha256};

pub(crate) use crate::html::html_escape;
pub use ca::{ca_page, CaView};
pub use login::{login_page, logout_page, ContinueOffer, Device, LoginMessage, LoginView, LogoutView, PasskeySignIn};
pub use passkey::{passkey_add_page, PasskeyAddView};

/// The one stylesheet of every page, embedded verbatim between `<style>` and `</style>`.
///
/// The CSP allows exactly these bytes (by hash), so nothing may be added around them.
pub const STYLE: &str = include_str!("assets/pages.css");

/// The login page's one script, embedded verbatim between `<script>` and `</script>`: it
/// submits the form at the sixth digit and, during a lockout, shows when it ends in the
/// device's own time, counts down and enables the form when it is over. Everything it does has
/// a fallback without it (the button, the server's UTC time, `<meta http-equiv="refresh">`).
///
/// The CSP allows exactly these bytes (by hash), so nothing may be added around them.
pub const LOGIN_SCRIPT: &str = include_str!("assets/login.js");

/// The CA page's one script, embedded verbatim like [`LOGIN_SCRIPT`]: it finds out by itself
/// when this device trusts SimpleOTP's CA (it fetches [`crate::protocol::routes::TRUST_CHECK`]
/// over HTTPS from the app's port every two seconds: only a trusted certificate lets that
/// through) and then shows "Open Jupyter →" for each app other devices reach, so nothing needs
/// to be scanned a second time. Without it the page is what it was: the steps and downloads.
pub const CA_SCRIPT: &str = include_str!("assets/ca.js");

/// The passkey script of the login page and the page that adds a passkey: "Sign in with a
/// passkey" (and the code field's autofill), "Create a passkey". Talks to this origin only.
pub const PASSKEY_SCRIPT: &str = include_str!("assets/passkey.js");

/// `'sha256-<base64>'` of `bytes`, as a CSP source expression.
fn csp_hash(bytes: &str) -> String {
    let digest = Sha256::digest(bytes.as_bytes());
    format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest))
}

static CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; style-src {}; script-src {} {}; connect-src 'self'; img-src data:; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
        csp_hash(STYLE),
        csp_hash(LOGIN_SCRIPT),
        csp_hash(PASSKEY_SCRIPT)
    )
});

/// The CA page's policy: the other pages' with its own script instead of the login one, and
/// `connect-src https:` for its trust check (which goes to the app's port over HTTPS, another
/// origin than the page's plain HTTP; the script, allowed by hash, decides where).
static CA_PAGE_CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; style-src {}; script-src {}; connect-src https:; img-src data:; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
        csp_hash(STYLE),
        csp_hash(CA_SCRIPT)
    )
});

/// The Content-Security-Policy of the CA page (see `CA_PAGE_CSP`); send it instead of
/// [`content_security_policy`] with that page.
#[must_use]
pub fn ca_page_content_security_policy() -> &'static str {
    &CA_PAGE_CSP
}

static SECURITY_HEADERS: LazyLock<Vec<(&'static str, String)>> = LazyLock::new(|| {
    vec![
        ("Content-Security-Policy", content_security_policy().to_owned()),
        ("X-Content-Type-Options", "nosniff".to_owned()),
        ("X-Frame-Options", "DENY".to_owned()),
        ("Referrer-Policy", "same-origin".to_owned()),
        ("Cache-Control", "no-store".to_owned()),
        ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=(), browsing-topics=()".to_owned()),
        ("Cross-Origin-Opener-Policy", "same-origin".to_owned()),
    ]
});

/// The Content-Security-Policy for the pages in this module: nothing but the embedded
/// stylesheet and the login and passkey scripts (each by hash; they may fetch from this origin) and `data:` images; forms post only to the
/// same origin; no framing.
#[must_use]
pub fn content_security_policy() -> &'static str {
    &CSP
}

/// Headers to send with every HTML page from this module (name, value), including the CSP.
///
/// `Content-Type: text/html; charset=utf-8` is not included; the caller sets it.
#[must_use]
pub fn security_headers() -> &'static [(&'static str, String)] {
    &SECURITY_HEADERS
}

/// A short human duration for "try again in …": `"45 s"`, `"4 min 30 s"`, `"2 h 5 min"`.
///
/// Rounds *up* (to whole seconds below an hour, to whole minutes from an hour on), so a
/// lockout is never shown as shorter than it is and never as `"0 s"` while it still runs.
/// Zero components are left out (`"4 min"`, `"2 h"`).
#[must_use]
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if d.subsec_nanos() > 0 {
        secs = secs.saturating_add(1);
    }
    if secs < 60 {
        return format!("{secs} s");
    }
    if secs < 3600 {
        let (m, s) = (secs / 60, secs % 60);
        return if s == 0 { format!("{m} min") } else { format!("{m} min {s} s") };
    }
    let mins = secs.div_ceil(60);
    let (h, m) = (mins / 60, mins % 60);
    if m == 0 {
        format!("{h} h")
    } else {
        format!("{h} h {m} min")
    }
}

/// How long a sign-in lasts, in words: `"7 days"`, `"12 hours"`, `"1 day and 12 hours"`.
///
/// The two largest non-zero units among days, hours and minutes, rounded *down*, so the page
/// never promises more than the session gives; below a minute, seconds.
#[must_use]
pub fn format_span(d: Duration) -> String {
    let secs = d.as_secs();
    let unit = |n: u64, name: &str| if n == 1 { format!("1 {name}") } else { format!("{n} {name}s") };
    let parts: Vec<String> = [(secs / 86_400, "day"), (secs % 86_400 / 3600, "hour"), (secs % 3600 / 60, "minute")]
        .into_iter()
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, name)| unit(n, name))
        .collect();
    if parts.is_empty() {
        unit(secs, "second")
    } else {
        parts.join(" and ")
    }
}

/// A moment as UTC: (`datetime` attribute value, text for a person). The text has the minute
/// rounded *up* (a lockout never looks shorter than it is), and the date only when `with_date`.
fn utc_moment(at: SystemTime, with_date: bool) -> (String, String) {
    let secs = at.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0)).unwrap_or(0);
    let civil =
        |secs: u64| time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0)).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let exact = civil(secs);
    let machine = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        exact.year(),
        u8::from(exact.month()),
        exact.day(),
        exact.hour(),
        exact.minute(),
        exact.second()
    );
    let shown = civil(secs.div_ceil(60) * 60);
    let date = if with_date { format!("{:04}-{:02}-{:02} ", shown.year(), u8::from(shown.month()), shown.day()) } else { String::new() };
    (machine, format!("{date}{:02}:{:02} UTC", shown.hour(), shown.minute()))
}

/// The SimpleOTP mark (a shield with a padlock) and name, at the top of every card.
const BRAND: &str = concat!(
    r#"<header class="brand">"#,
    r#"<svg class="mark" viewBox="0 0 32 32" width="34" height="34" aria-hidden="true" focusable="false">"#,
    r#"<path class="shield" d="M16 2 4.5 6.4v8.3c0 7.4 4.9 13.2 11.5 15.3 6.6-2.1 11.5-7.9 11.5-15.3V6.4z"/>"#,
    r#"<path class="shade" d="M16 2v28c6.6-2.1 11.5-7.9 11.5-15.3V6.4z"/>"#,
    r#"<path class="shackle" d="M12.9 15v-2.4a3.1 3.1 0 0 1 6.2 0V15"/>"#,
    r#"<rect class="lock" x="10.5" y="14.6" width="11" height="8.4" rx="1.8"/>"#,
    r#"</svg>"#,
    r#"<span>SimpleOTP</span>"#,
    r#"</header>"#,
);

/// Wraps a card's inner HTML in a complete document. `title` is escaped; `card` is trusted.
fn document(title: &str, card: &str) -> String {
    document_with(title, "", card, &[])
}

/// [`document`] with more trusted `<head>` elements and `scripts` of ours ([`LOGIN_SCRIPT`],
/// [`PASSKEY_SCRIPT`], [`CA_SCRIPT`]) at the end of the body (after the elements they look for).
fn document_with(title: &str, head: &str, card: &str, scripts: &[&str]) -> String {
    let mut out = String::with_capacity(STYLE.len() + scripts.iter().map(|s| s.len()).sum::<usize>() + card.len() + 1024);
    out.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex\">\n\
         <meta name=\"referrer\" content=\"same-origin\">\n\
         <meta name=\"color-scheme\" content=\"light dark\">\n",
    );
    let _ = writeln!(out, "<title>{} · SimpleOTP</title>", html_escape(title));
    out.push_str(head);
    out.push_str("<style>");
    out.push_str(STYLE);
    out.push_str("</style>\n</head>\n<body>\n<main class=\"card\">\n");
    out.push_str(BRAND);
    out.push('\n');
    out.push_str(card);
    out.push_str("</main>\n");
    for script in scripts {
        out.push_str("<script>");
        out.push_str(script);
        out.push_str("</script>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// A plain page with a heading and one paragraph, for errors like "Bad request" or
/// "Forbidden". Both strings are escaped.
#[must_use]
pub fn message_page(title: &str, body: &str) -> String {
    let card = format!("<h1>{}</h1>\n<p class=\"help\">{}</p>\n", html_escape(title), html_escape(body));
    document(title, &card)
}
