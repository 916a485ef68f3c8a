//! The HTML pages the auth server serves: login, logout confirmation and plain messages.
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
//! goes through [`html_escape`]. Escaping makes a value safe *as text and inside a quoted
//! attribute*; it does not make an arbitrary string a safe URL, so `next` and `back` must
//! already be validated same-site paths (the CSP allows no script but ours, so `javascript:`
//! links would not run).

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::config::{AppName, SessionSettings};

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

/// `'sha256-<base64>'` of `bytes`, as a CSP source expression.
fn csp_hash(bytes: &str) -> String {
    let digest = Sha256::digest(bytes.as_bytes());
    format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest))
}

static CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; style-src {}; script-src {}; img-src data:; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
        csp_hash(STYLE),
        csp_hash(LOGIN_SCRIPT)
    )
});

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
/// stylesheet and the login script (each by hash) and `data:` images; forms post only to the
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

/// Escapes `&`, `<`, `>`, `"` and `'` so `s` is safe as HTML text and in a quoted attribute.
#[must_use]
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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

/// What the login page tells the user above the code field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginMessage {
    /// The code was wrong.
    WrongCode,
    /// The code was right but already used (replay protection).
    CodeAlreadyUsed,
    /// Too many wrong codes from this client (or overall): the form is disabled until
    /// `ends_at`, `retry_after` from now (see [`LoginMessage::locked_out`]).
    LockedOut { retry_after: Duration, ends_at: SystemTime },
    /// The user just signed out.
    SignedOut,
    /// The session expired or was revoked.
    Expired,
    /// The code was right, but the gateway could not save that it was used, so it refused the
    /// sign-in (the code would otherwise work twice after a restart).
    NotSaved,
    /// The page was opened with a live unlock ticket: the next codes skip the lockout.
    TicketReady,
    /// The page was opened with an unlock ticket that is expired, used up or unknown.
    TicketInvalid,
}

impl LoginMessage {
    /// A lockout that ends `retry_after` from now.
    #[must_use]
    pub fn locked_out(retry_after: Duration) -> LoginMessage {
        LoginMessage::LockedOut { retry_after, ends_at: SystemTime::now() + retry_after }
    }

    /// Whether this reports a failed attempt (shown as an alert, field marked invalid) rather
    /// than news (shown as a status).
    #[must_use]
    pub fn is_error(&self) -> bool {
        matches!(self, Self::WrongCode | Self::CodeAlreadyUsed | Self::LockedOut { .. } | Self::NotSaved | Self::TicketInvalid)
    }

    /// The message as HTML paragraphs (trusted markup; no caller-supplied text is in it).
    fn html(&self) -> String {
        match self {
            Self::WrongCode => "<p>That code didn't work. Check the time on your phone and try \
                                the newest code.</p>"
                .to_owned(),
            Self::CodeAlreadyUsed => "<p>That code was already used. Wait for the next one.</p>".to_owned(),
            Self::LockedOut { retry_after, ends_at } => {
                // The countdown changes every second: it must not be read out each time (the
                // message is an alert), so it is its own region that stays quiet.
                let (datetime, shown) = utc_moment(*ends_at, *retry_after >= Duration::from_secs(20 * 3600));
                format!(
                    "<p><strong>Too many wrong codes.</strong> Try again in <span id=\"lockout-left\" \
                     aria-live=\"off\" data-seconds=\"{seconds}\">{left}</span>, at <time id=\"lockout-end\" \
                     datetime=\"{datetime}\">{shown}</time>. The form opens again by itself then.</p>\
                     <p>If this is your SimpleOTP, unlock it now. On the computer running SimpleOTP: \
                     tray menu → <strong>Unlock sign-ins</strong>. On a server: run \
                     <code>simpleotp unlock</code>.</p>",
                    seconds = lockout_seconds(*retry_after),
                    left = html_escape(&format_duration(*retry_after)),
                )
            }
            Self::SignedOut => "<p>You are signed out.</p>".to_owned(),
            Self::Expired => "<p>Your session ended. Sign in again.</p>".to_owned(),
            Self::NotSaved => "<p><strong>Sign-in failed: SimpleOTP could not save it.</strong> \
                               Its data folder is not writable or the disk is full. On the \
                               computer running SimpleOTP, free some space, then try the next \
                               code.</p>"
                .to_owned(),
            Self::TicketReady => format!(
                "<p>Unlock link accepted: this page lets you sign in even while sign-ins are \
                 locked. It works once, for up to {} codes, for {} minutes.</p>",
                crate::ticket::TICKET_ATTEMPTS,
                crate::ticket::TICKET_LIFETIME.as_secs() / 60
            ),
            Self::TicketInvalid => "<p>This unlock link has expired or was already used. For a new \
                                    one, on the computer running SimpleOTP: tray menu → \
                                    <strong>Unlock sign-ins</strong> (on a server: run \
                                    <code>simpleotp unlock</code> again).</p>"
                .to_owned(),
        }
    }
}

/// The seconds a lockout's page waits before it reloads: the lockout rounded up, plus one so
/// the reload lands after the lockout ended even with the request's own delay.
fn lockout_seconds(retry_after: Duration) -> u64 {
    retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0) + 1
}

/// Everything the login page shows.
#[derive(Debug, Clone)]
pub struct LoginView<'a> {
    /// The form's action path, e.g. `"/_simpleotp/login"`.
    pub action: &'a str,
    /// The already-validated return path, sent back in a hidden `next` field.
    pub next: &'a str,
    /// A message above the field, if any.
    pub message: Option<LoginMessage>,
    /// A live unlock ticket, sent back in a hidden `ticket` field.
    pub ticket: Option<&'a str>,
    /// The app being signed in to ("Sign in to Jupyter"), from our own configuration for the
    /// port the request came through; `None` when it did not come through our nginx.
    pub app_name: Option<&'a AppName>,
    /// How long the sign-in will last, said under the button.
    pub session: SessionSettings,
}

/// Everything the sign-out confirmation page shows.
#[derive(Debug, Clone)]
pub struct LogoutView<'a> {
    /// The form's action path, e.g. `"/_simpleotp/logout"`.
    pub action: &'a str,
    /// The CSRF token, sent back in a hidden `csrf` field.
    pub csrf_token: &'a str,
    /// Where "Cancel" leads: an already-validated same-site path.
    pub back: &'a str,
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
    document_with(title, "", card, false)
}

/// [`document`] with more trusted `<head>` elements and, when `script`, [`LOGIN_SCRIPT`] at the
/// end of the body (after the elements it looks for).
fn document_with(title: &str, head: &str, card: &str, script: bool) -> String {
    let mut out = String::with_capacity(STYLE.len() + LOGIN_SCRIPT.len() + card.len() + 1024);
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
    if script {
        out.push_str("<script>");
        out.push_str(LOGIN_SCRIPT);
        out.push_str("</script>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// How long a sign-in lasts, as the sentence under the login button. The idle timeout is named
/// only when it can end the session before its lifetime does.
fn session_sentence(session: &SessionSettings, app: &str) -> String {
    let lifetime = format_span(session.lifetime);
    if session.idle_timeout < session.lifetime {
        format!(
            "You stay signed in for {lifetime} on this device, as long as you use {app} at least every {}.",
            format_span(session.idle_timeout)
        )
    } else {
        format!("You stay signed in for {lifetime} on this device.")
    }
}

/// The login page: one code field and a "Sign in" button, posting `code` and `next` to
/// `view.action`, headed with the app's name and followed by how long the sign-in lasts.
///
/// The field takes a code as authenticator apps show and copy it ("123 456", "123-456"): the
/// server ignores spaces and dashes. With the script the form submits itself at the sixth
/// digit. During a lockout the field and button are disabled (the server refuses anyway, and a
/// field that looks usable invites more failures) until it ends: then the script enables them;
/// without a script a `<meta http-equiv="refresh">` in `<noscript>` reloads the page then, by a
/// plain GET of this page (never a re-POST).
#[must_use]
pub fn login_page(view: &LoginView) -> String {
    let title = match view.app_name {
        Some(name) => format!("Sign in to {}", name.as_str()),
        None => "Sign in".to_owned(),
    };
    let app = view.app_name.map(|name| html_escape(name.as_str())).unwrap_or_else(|| "the app".to_owned());
    let mut card = String::with_capacity(2048);
    let _ = writeln!(card, "<h1>{}</h1>", html_escape(&title));
    card.push_str("<p class=\"help\" id=\"help\">Enter the 6-digit code from your authenticator app.</p>\n");
    let mut described_by = "help";
    let mut invalid = "";
    let mut head = String::new();
    let mut disabled = "";
    let mut autofocus = " autofocus";
    if let Some(message) = &view.message {
        let (class, role) = if message.is_error() {
            invalid = " aria-invalid=\"true\"";
            ("msg msg-error", "alert")
        } else {
            ("msg msg-info", "status")
        };
        described_by = "msg help";
        let _ = writeln!(card, "<div class=\"{class}\" id=\"msg\" role=\"{role}\">{}</div>", message.html());
        if let LoginMessage::LockedOut { retry_after, .. } = message {
            disabled = " disabled";
            autofocus = "";
            let again: String = form_urlencoded::byte_serialize(view.next.as_bytes()).collect();
            let _ = writeln!(
                head,
                "<noscript><meta http-equiv=\"refresh\" content=\"{}\"></noscript>",
                html_escape(&format!("{};url={}?next={again}", lockout_seconds(*retry_after), view.action))
            );
        }
    }
    let _ = write!(
        card,
        "<form class=\"login\" method=\"post\" action=\"{action}\">\n\
         <label for=\"code\">Code</label>\n\
         <input class=\"code\" id=\"code\" name=\"code\" type=\"text\" inputmode=\"numeric\" \
         autocomplete=\"one-time-code\" pattern=\" *(?:[0-9][ \\-]*){{5}}[0-9] *\" minlength=\"6\" maxlength=\"9\" \
         placeholder=\"······\" title=\"6 digits\" spellcheck=\"false\" autocapitalize=\"off\" \
         enterkeyhint=\"go\" required{autofocus}{disabled} aria-describedby=\"{described_by}\"{invalid}>\n\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\n\
         {ticket}\
         <button class=\"btn btn-primary\" id=\"submit\" type=\"submit\"{disabled}>Sign in</button>\n\
         </form>\n\
         <p class=\"help lasts\" id=\"lasts\">{lasts}</p>\n",
        action = html_escape(view.action),
        next = html_escape(view.next),
        ticket = view.ticket.map(|t| format!("<input type=\"hidden\" name=\"ticket\" value=\"{}\">\n", html_escape(t))).unwrap_or_default(),
        lasts = session_sentence(&view.session, &app),
    );
    document_with(&title, &head, &card, true)
}

/// The sign-out confirmation: a "Sign out" button posting the hidden `csrf` field to
/// `view.action`, and a "Cancel" link back to `view.back`.
#[must_use]
pub fn logout_page(view: &LogoutView) -> String {
    let card = format!(
        "<h1>Sign out?</h1>\n\
         <p class=\"help\">You will need a new code from your authenticator app to sign in \
         again.</p>\n\
         <form method=\"post\" action=\"{action}\" class=\"actions\">\n\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
         <a class=\"btn btn-secondary\" id=\"cancel\" href=\"{back}\">Cancel</a>\n\
         <button class=\"btn btn-primary\" id=\"submit\" type=\"submit\">Sign out</button>\n\
         </form>\n",
        action = html_escape(view.action),
        csrf = html_escape(view.csrf_token),
        back = html_escape(view.back),
    );
    document("Sign out", &card)
}

/// Everything the CA page shows.
#[derive(Debug, Clone)]
pub struct CaView<'a> {
    pub certificate: &'a crate::ca::CaCertificate,
    /// Where the DER certificate is, e.g. `"/_simpleotp/ca.crt"`.
    pub certificate_path: &'a str,
    /// Where the Apple profile is, e.g. `"/_simpleotp/ca.mobileconfig"`.
    pub profile_path: &'a str,
}

/// The page that helps a person trust the local CA on a phone or another computer: what it is,
/// the two downloads, and short steps for iOS, Android, Windows and macOS (each a `<details>`,
/// no script needed), each saying where that device shows the fingerprint of the certificate it
/// downloaded. The page itself never shows the fingerprint to compare: it may come over plain
/// HTTP, and someone who can change the certificate on the way can change the page with it. The
/// comparison is between the device's own screen and the trusted computer's (the tray, or
/// `simpleotp ca export`).
#[must_use]
pub fn ca_page(view: &CaView) -> String {
    let name = html_escape(view.certificate.common_name());
    let card = format!(
        "<h1>Trust SimpleOTP on this device</h1>\n\
         <p class=\"help\">Apps protected by SimpleOTP on this computer are served over HTTPS with \
         certificates from its own certificate authority, <strong>{name}</strong>. It is made for this \
         computer only: it can vouch for its websites, on its names and private network addresses, and \
         for nothing else. Trust it once on each device you use.</p>\n\
         <p class=\"help\" id=\"compare\"><strong>Before you trust it</strong>, compare the fingerprint \
         <strong>your device</strong> shows for the certificate it downloaded (the steps below say where) \
         with the one the SimpleOTP app shows on the computer (<em>Open on another device</em>), or \
         <code>simpleotp ca export FILE</code> prints. This page cannot show it to you: someone on the \
         network could change this page and the certificate together. If they differ, do not install it.</p>\n\
         <div class=\"actions\">\n\
         <a class=\"btn btn-primary\" id=\"profile\" href=\"{profile}\">iPhone / iPad profile</a>\n\
         <a class=\"btn btn-secondary\" id=\"certificate\" href=\"{certificate}\" download>Certificate (.crt)</a>\n\
         </div>\n\
         <div class=\"steps\">\n\
         <details id=\"steps-ios\"><summary>iPhone and iPad</summary><ol>\
         <li>Open this page in Safari, tap <strong>iPhone / iPad profile</strong> and allow the download.</li>\
         <li>Open Settings, tap <strong>Profile Downloaded</strong>, then <strong>Install</strong>.</li>\
         <li>Compare: Settings &gt; General &gt; <strong>VPN &amp; Device Management</strong> &gt; the \
         SimpleOTP profile &gt; <strong>More Details</strong> &gt; the certificate shows its SHA-256 fingerprint.</li>\
         <li>Settings &gt; General &gt; About &gt; <strong>Certificate Trust Settings</strong>: turn on full \
         trust for {name}.</li></ol></details>\n\
         <details id=\"steps-android\"><summary>Android</summary><ol>\
         <li>Tap <strong>Certificate (.crt)</strong> to download it.</li>\
         <li>Settings &gt; Security &gt; More security settings &gt; Encryption &amp; credentials &gt; \
         <strong>Install a certificate</strong> &gt; <strong>CA certificate</strong> (or search Settings for \
         “CA certificate”), and pick the downloaded file.</li>\
         <li>Compare: Encryption &amp; credentials &gt; <strong>Trusted credentials</strong> &gt; <strong>User</strong> \
         &gt; tap the certificate: it shows the fingerprints (older Android: SHA-1 only, which the app \
         shows too). Remove it there if they differ.</li>\
         <li>Chrome trusts it from then on; some other apps ignore certificates you add.</li></ol></details>\n\
         <details id=\"steps-windows\"><summary>Windows</summary><ol>\
         <li>Download the certificate and open it. Compare: <strong>Details</strong> &gt; <strong>Thumbprint</strong> \
         is its SHA-1 fingerprint (the app shows that one too), or run \
         <code>certutil -hashfile FILE SHA256</code> for the SHA-256.</li>\
         <li>Open the file, <strong>Install Certificate</strong>, <strong>Current User</strong>, \
         <strong>Place all certificates in the following store</strong>: \
         <strong>Trusted Root Certification Authorities</strong>, then Finish and Yes.</li>\
         <li>Firefox keeps its own list: Settings &gt; Privacy &amp; Security &gt; View Certificates &gt; \
         Authorities &gt; Import.</li></ol></details>\n\
         <details id=\"steps-macos\"><summary>macOS</summary><ol>\
         <li>Download the certificate and open it: Keychain Access adds it to your login keychain. \
         Compare: open {name} in Keychain Access, <strong>SHA-256 Fingerprint</strong> \
         (or <code>shasum -a 256 FILE</code>).</li>\
         <li>In Keychain Access, open {name}, expand <strong>Trust</strong> and set \
         <strong>When using this certificate</strong> to <strong>Always Trust</strong>; close it and \
         confirm with your password.</li></ol></details>\n\
         </div>\n\
         <p class=\"help\">If the certificate authority is ever replaced (<code>simpleotp ca rotate</code>), \
         remove the old one from your devices and trust the new one here.</p>\n",
        profile = html_escape(view.profile_path),
        certificate = html_escape(view.certificate_path),
    );
    document("Trust SimpleOTP", &card)
}

/// A plain page with a heading and one paragraph, for errors like "Bad request" or
/// "Forbidden". Both strings are escaped.
#[must_use]
pub fn message_page(title: &str, body: &str) -> String {
    let card = format!("<h1>{}</h1>\n<p class=\"help\">{}</p>\n", html_escape(title), html_escape(body));
    document(title, &card)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVIL: &str = "\"><script>alert('x')</script><a href='";

    /// 2025-11-24 16:00:00 UTC.
    const NOON_ISH: u64 = 1_764_000_000;

    fn at(unix: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix)
    }

    fn locked(retry_after_secs: u64) -> LoginMessage {
        LoginMessage::LockedOut { retry_after: Duration::from_secs(retry_after_secs), ends_at: at(NOON_ISH + retry_after_secs) }
    }

    fn view<'a>(action: &'a str, next: &'a str, message: Option<LoginMessage>, ticket: Option<&'a str>) -> LoginView<'a> {
        LoginView { action, next, message, ticket, app_name: None, session: SessionSettings::default() }
    }

    /// The page without the login script (the one `<script>` the CSP allows, by its hash), so
    /// the checks for anything script-like see only the markup around it.
    fn without_script(page: &str) -> String {
        page.replace(&format!("<script>{LOGIN_SCRIPT}</script>"), "")
    }

    fn all_messages() -> Vec<LoginMessage> {
        vec![
            LoginMessage::WrongCode,
            LoginMessage::CodeAlreadyUsed,
            locked(270),
            LoginMessage::SignedOut,
            LoginMessage::Expired,
            LoginMessage::NotSaved,
            LoginMessage::TicketReady,
            LoginMessage::TicketInvalid,
        ]
    }

    /// Every page variant, each rendered with hostile dynamic values.
    fn all_pages(dynamic: &str) -> Vec<String> {
        let jupyter: AppName = "Jupyter".parse().unwrap();
        let mut pages: Vec<String> = std::iter::once(None)
            .chain(all_messages().into_iter().map(Some))
            .flat_map(|message| {
                let plain = view(dynamic, dynamic, message, Some(dynamic));
                let named = LoginView { app_name: Some(&jupyter), ..plain.clone() };
                [login_page(&plain), login_page(&named)]
            })
            .collect();
        pages.push(logout_page(&LogoutView { action: dynamic, csrf_token: dynamic, back: dynamic }));
        pages.push(message_page(dynamic, dynamic));
        pages
    }

    /// Whether `html` has an ` on…=` attribute (an inline event handler).
    fn has_event_handler(html: &str) -> bool {
        html.match_indices(" on").any(|(i, _)| {
            let rest = &html[i + 3..];
            let name_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        })
    }

    /// The page without its stylesheet (whose selectors mention attributes too).
    fn markup(page: &str) -> &str {
        &page[page.find("</style>").expect("</style>")..]
    }

    fn embedded_style(page: &str) -> &str {
        let start = page.find("<style>").expect("a <style> element") + "<style>".len();
        let end = page[start..].find("</style>").expect("</style>") + start;
        assert_eq!(page.matches("<style").count(), 1, "exactly one <style>");
        &page[start..end]
    }

    #[test]
    fn html_escape_escapes_the_five_characters() {
        assert_eq!(html_escape(r#"a&b<c>d"e'f"#), "a&amp;b&lt;c&gt;d&quot;e&#39;f");
        assert_eq!(html_escape("/lab?x=1"), "/lab?x=1");
        assert_eq!(html_escape("ünï"), "ünï");
        assert_eq!(html_escape(""), "");
    }

    #[test]
    fn every_dynamic_value_is_escaped() {
        for page in all_pages(EVIL) {
            let page = without_script(&page);
            assert!(!page.to_ascii_lowercase().contains("<script"), "{page}");
            assert!(!page.contains(EVIL), "{page}");
            assert!(!page.contains("<a href='"), "{page}");
            assert!(page.contains("&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)"));
        }
    }

    #[test]
    fn dynamic_values_land_in_the_right_attributes() {
        let page = login_page(&view("/_simpleotp/login", "/lab/tree?a=1&b=2", None, None));
        assert!(page.contains(r#"<form class="login" method="post" action="/_simpleotp/login">"#));
        assert!(page.contains(r#"<input type="hidden" name="next" value="/lab/tree?a=1&amp;b=2">"#));

        let page = logout_page(&LogoutView { action: "/_simpleotp/logout", csrf_token: "tok_123", back: "/lab" });
        assert!(page.contains(r#"<form method="post" action="/_simpleotp/logout""#));
        assert!(page.contains(r#"<input type="hidden" name="csrf" value="tok_123">"#));
        assert!(page.contains(r#"href="/lab">Cancel</a>"#));
        assert!(page.contains(r#"id="submit" type="submit">Sign out</button>"#));
    }

    fn sha256_base64(bytes: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes.as_bytes()))
    }

    #[test]
    fn csp_hash_matches_the_embedded_style() {
        for page in all_pages("/x") {
            let style = embedded_style(&page);
            assert_eq!(style, STYLE);
            let source = format!("style-src 'sha256-{}';", sha256_base64(style));
            assert!(content_security_policy().contains(&source));
        }
        assert_eq!(
            content_security_policy(),
            format!(
                "default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}'; img-src data:; form-action 'self'; \
                 frame-ancestors 'none'; base-uri 'none'",
                sha256_base64(STYLE),
                sha256_base64(LOGIN_SCRIPT)
            )
        );
    }

    #[test]
    fn csp_hash_matches_the_login_script_and_no_other_page_has_one() {
        let source = format!("script-src 'sha256-{}';", sha256_base64(LOGIN_SCRIPT));
        assert!(content_security_policy().contains(&source));
        for page in all_pages("/x") {
            let scripts = page.matches("<script").count();
            if page.contains("<form class=\"login\"") {
                assert_eq!(scripts, 1, "the login page has exactly its one script");
                let start = page.find("<script>").unwrap() + "<script>".len();
                let end = page[start..].find("</script>").unwrap() + start;
                assert_eq!(&page[start..end], LOGIN_SCRIPT, "byte for byte what the hash allows");
            } else {
                assert_eq!(scripts, 0, "{page}");
            }
        }
    }

    #[test]
    fn login_script_fetches_nothing_and_writes_no_markup() {
        let lower = LOGIN_SCRIPT.to_ascii_lowercase();
        for forbidden in [
            "http:",
            "https:",
            "fetch(",
            "xmlhttprequest",
            "websocket",
            "eval(",
            "function(",
            "innerhtml",
            "outerhtml",
            "document.write",
            "import(",
        ] {
            assert!(!lower.contains(forbidden), "the login script has {forbidden:?}");
        }
        assert!(!lower.contains("</script"), "it would end its own element");
    }

    #[test]
    fn pages_need_nothing_the_csp_forbids() {
        for page in all_pages("/x") {
            let lower = without_script(&page).to_ascii_lowercase();
            assert!(!lower.contains("http://"), "no URLs");
            assert!(!lower.contains("https://"), "no URLs");
            assert!(!lower.contains("xmlns"), "no namespace URLs");
            assert!(!lower.contains("<script"), "no scripts");
            assert!(!lower.contains("<link"), "no external stylesheets");
            assert!(!lower.contains("<img"), "no images");
            assert!(!lower.contains("src="), "nothing loaded by URL");
            assert!(!lower.contains("url("), "nothing loaded from CSS");
            assert!(!lower.contains("@import"), "nothing loaded from CSS");
            assert!(!lower.contains(" style="), "style attributes need 'unsafe-hashes'");
            assert!(!has_event_handler(&lower), "no event handler attributes");
        }
    }

    #[test]
    fn documents_have_the_required_head() {
        for page in all_pages("/x") {
            assert!(page.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
            assert!(page.contains("<meta charset=\"utf-8\">"));
            assert!(page.contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"));
            assert!(page.contains("<meta name=\"robots\" content=\"noindex\">"));
            assert!(page.contains("<meta name=\"referrer\" content=\"same-origin\">"));
            assert!(page.contains("<title>"));
            assert!(page.contains("SimpleOTP"));
            assert!(page.trim_end().ends_with("</html>"));
        }
        assert!(message_page("Forbidden", "Nope.").contains("<title>Forbidden · SimpleOTP</title>"));
    }

    #[test]
    fn login_input_attributes() {
        let page = login_page(&view("/_simpleotp/login", "/", None, None));
        for attr in [
            r#"id="code""#,
            r#"name="code""#,
            r#"inputmode="numeric""#,
            r#"autocomplete="one-time-code""#,
            // Room for a pasted "123 456" or "123 - 456"; six digits, spaced as apps show them.
            r#"pattern=" *(?:[0-9][ \-]*){5}[0-9] *""#,
            r#"maxlength="9""#,
            " required",
            " autofocus",
            r#"aria-describedby="help""#,
            r#"<label for="code">"#,
            r#"id="help""#,
            r#"<button class="btn btn-primary" id="submit" type="submit">Sign in</button>"#,
            "Enter the 6-digit code from your authenticator app.",
        ] {
            assert!(page.contains(attr), "missing {attr}");
        }
        assert_eq!(page.matches("<input").count(), 2, "code and next only");
        assert!(!without_script(markup(&page)).contains("aria-invalid"));
        assert!(!markup(&page).contains("role="));
        assert!(!without_script(markup(&page)).contains("disabled"));
        assert!(!without_script(&page).contains("http-equiv"), "no reload without a lockout");
        assert!(page.contains("<h1>Sign in</h1>"), "no app name: no app named");
    }

    #[test]
    fn each_message_renders_its_text_and_role() {
        let cases = [
            (LoginMessage::WrongCode, "That code didn't work. Check the time on your phone and try the newest code.", "alert"),
            (LoginMessage::CodeAlreadyUsed, "That code was already used. Wait for the next one.", "alert"),
            (locked(270), r#"Try again in <span id="lockout-left" aria-live="off" data-seconds="271">4 min 30 s</span>"#, "alert"),
            (LoginMessage::SignedOut, "You are signed out.", "status"),
            (LoginMessage::Expired, "Your session ended. Sign in again.", "status"),
        ];
        for (message, text, role) in cases {
            let error = message.is_error();
            assert_eq!(error, role == "alert");
            let page = login_page(&view("/_simpleotp/login", "/", Some(message), None));
            assert!(page.contains(text), "missing {text:?}");
            assert!(page.contains(&format!(r#"id="msg" role="{role}""#)));
            assert!(page.contains(r#"aria-describedby="msg help""#));
            assert_eq!(markup(&page).contains(r#"aria-invalid="true""#), error);
            // The form is always there, even when locked out: the server decides.
            assert!(page.contains(r#"name="code""#));
            assert!(page.contains(r#"id="submit""#));
        }
    }

    #[test]
    fn lockout_says_how_to_unlock() {
        let page = login_page(&view("/_simpleotp/login", "/", Some(locked(7470)), None));
        assert!(page.contains("Too many wrong codes."));
        assert!(page.contains(r#"Try again in <span id="lockout-left" aria-live="off" data-seconds="7471">2 h 5 min</span>"#));
        assert!(page.contains("<code>simpleotp unlock</code>"));
        // In words a phone user can act on: where to go, and what to pick there.
        assert!(page.contains("On the computer running SimpleOTP: tray menu → <strong>Unlock sign-ins</strong>."));
    }

    #[test]
    fn lockout_disables_the_form_shows_its_end_and_reloads_then() {
        // Locked at 16:00:00 UTC for 4 min 30 s: ends 16:04:30, shown as 16:05 (never earlier).
        let page = login_page(&view("/_simpleotp/login", "/lab?a=1&b=\"2\"", Some(locked(270)), None));
        assert!(page.contains(r#"<time id="lockout-end" datetime="2025-11-24T16:04:30Z">16:05 UTC</time>"#), "{page}");
        assert!(page.contains("The form opens again by itself then."));
        // The field and the button are there, disabled (the server refuses anyway).
        let field = &page[page.find(r#"<input class="code""#).unwrap()..];
        let field = &field[..field.find('>').unwrap()];
        assert!(field.contains(" disabled"), "{field}");
        assert!(!field.contains("autofocus"), "{field}");
        assert!(page.contains(r#"id="submit" type="submit" disabled>Sign in</button>"#));
        // Without a script, a plain GET of the login page once the lockout is over (one second
        // late), with the same return path, percent-encoded and then HTML-escaped. Only then:
        // the script enables the form in place instead (a timed reload takes the page away from
        // whoever is reading it, which axe-core counts as a critical violation).
        assert!(
            page.contains(
                r#"<noscript><meta http-equiv="refresh" content="271;url=/_simpleotp/login?next=%2Flab%3Fa%3D1%26b%3D%222%22"></noscript>"#
            ),
            "{page}"
        );
        // In the head, before the stylesheet.
        assert!(page.find("http-equiv").unwrap() < page.find("<style>").unwrap());

        // A lockout of a day or more says which day it ends.
        let page = login_page(&view("/_simpleotp/login", "/", Some(locked(86_400)), None));
        assert!(page.contains(r#"datetime="2025-11-25T16:00:00Z">2025-11-25 16:00 UTC</time>"#), "{page}");
    }

    #[test]
    fn login_page_names_the_app_and_how_long_the_sign_in_lasts() {
        let jupyter: AppName = "Jupyter".parse().unwrap();
        let page = login_page(&LoginView { app_name: Some(&jupyter), ..view("/_simpleotp/login", "/", None, None) });
        assert!(page.contains("<h1>Sign in to Jupyter</h1>"));
        assert!(page.contains("<title>Sign in to Jupyter · SimpleOTP</title>"));
        assert!(page.contains(
            r#"<p class="help lasts" id="lasts">You stay signed in for 7 days on this device, as long as you use Jupyter at least every 12 hours.</p>"#
        ));

        let page = login_page(&view("/_simpleotp/login", "/", None, None));
        assert!(page.contains("as long as you use the app at least every 12 hours."));

        // An idle timeout that cannot end the session first is not mentioned.
        let session = SessionSettings { lifetime: Duration::from_secs(8 * 3600), idle_timeout: Duration::from_secs(8 * 3600) };
        let page = login_page(&LoginView { app_name: Some(&jupyter), session, ..view("/_simpleotp/login", "/", None, None) });
        assert!(page.contains(">You stay signed in for 8 hours on this device.</p>"));
    }

    #[test]
    fn format_span_cases() {
        let s = Duration::from_secs;
        assert_eq!(format_span(s(7 * 86_400)), "7 days");
        assert_eq!(format_span(s(86_400)), "1 day");
        assert_eq!(format_span(s(36 * 3600)), "1 day and 12 hours");
        assert_eq!(format_span(s(86_400 + 60)), "1 day", "two largest units, from the largest non-zero one");
        assert_eq!(format_span(s(12 * 3600)), "12 hours");
        assert_eq!(format_span(s(3600)), "1 hour");
        assert_eq!(format_span(s(5400)), "1 hour and 30 minutes");
        assert_eq!(format_span(s(3599)), "59 minutes", "rounded down: never more than the session gives");
        assert_eq!(format_span(s(60)), "1 minute");
        assert_eq!(format_span(s(59)), "59 seconds");
        assert_eq!(format_span(s(1)), "1 second");
    }

    #[test]
    fn format_duration_cases() {
        let s = Duration::from_secs;
        assert_eq!(format_duration(s(0)), "0 s");
        assert_eq!(format_duration(Duration::from_millis(1)), "1 s");
        assert_eq!(format_duration(Duration::from_millis(44_200)), "45 s");
        assert_eq!(format_duration(s(45)), "45 s");
        assert_eq!(format_duration(s(59)), "59 s");
        assert_eq!(format_duration(Duration::from_millis(59_001)), "1 min");
        assert_eq!(format_duration(s(60)), "1 min");
        assert_eq!(format_duration(s(61)), "1 min 1 s");
        assert_eq!(format_duration(s(270)), "4 min 30 s");
        assert_eq!(format_duration(s(3599)), "59 min 59 s");
        assert_eq!(format_duration(s(3600)), "1 h");
        assert_eq!(format_duration(s(3601)), "1 h 1 min");
        assert_eq!(format_duration(s(7500)), "2 h 5 min");
        assert_eq!(format_duration(s(7470)), "2 h 5 min");
        assert_eq!(format_duration(s(86_400)), "24 h");
        assert!(format_duration(Duration::MAX).contains(" h"), "no overflow");
    }

    #[test]
    fn security_headers_are_complete() {
        let headers = security_headers();
        let get = |name: &str| {
            headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("missing {name}"))
        };
        assert_eq!(get("Content-Security-Policy"), content_security_policy());
        assert_eq!(get("X-Content-Type-Options"), "nosniff");
        assert_eq!(get("X-Frame-Options"), "DENY");
        assert_eq!(get("Referrer-Policy"), "same-origin");
        assert_eq!(get("Cache-Control"), "no-store");
        assert_eq!(get("Cross-Origin-Opener-Policy"), "same-origin");
        assert!(get("Permissions-Policy").contains("camera=()"));
        for (name, value) in headers {
            assert!(value.bytes().all(|b| (0x20..0x7f).contains(&b)), "{name}: {value}");
        }
    }

    /// Writes every page to `$SIMPLEOTP_PAGES_DIR` (default: `<tmp>/pages`) to look at in a
    /// browser: `cargo test -p simpleotp-engine --lib server::pages -- --ignored`.
    #[test]
    #[ignore = "writes files for manual review"]
    fn write_pages_for_review() {
        let dir =
            std::env::var_os("SIMPLEOTP_PAGES_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("pages"));
        std::fs::create_dir_all(&dir).unwrap();
        let jupyter: AppName = "Jupyter".parse().unwrap();
        let login = |message| login_page(&LoginView { app_name: Some(&jupyter), ..view("/_simpleotp/login", "/lab", message, None) });
        let pages = [
            ("login", login(None)),
            ("login-wrong", login(Some(LoginMessage::WrongCode))),
            ("login-used", login(Some(LoginMessage::CodeAlreadyUsed))),
            ("login-locked", login(Some(LoginMessage::locked_out(Duration::from_secs(270))))),
            ("login-signedout", login(Some(LoginMessage::SignedOut))),
            ("login-expired", login(Some(LoginMessage::Expired))),
            ("logout", logout_page(&LogoutView { action: "/_simpleotp/logout", csrf_token: "csrf-token", back: "/lab" })),
            ("forbidden", message_page("Forbidden", "This request did not come from the sign-in page. Go back and try again.")),
        ];
        for (name, html) in pages {
            std::fs::write(dir.join(format!("{name}.html")), html).unwrap();
        }
        let headers: String = security_headers().iter().map(|(name, value)| format!("{name}: {value}\n")).collect();
        std::fs::write(dir.join("headers.txt"), headers).unwrap();
    }
}
