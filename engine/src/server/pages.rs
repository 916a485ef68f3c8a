//! The HTML pages the auth server serves: login, logout confirmation and plain messages.
//!
//! Every page is a complete, self-contained document: one inline stylesheet ([`STYLE`]), an
//! inline SVG mark, no scripts, no fonts, no images or anything else fetched by URL. That lets
//! the pages ship with a strict Content-Security-Policy ([`content_security_policy`]) that
//! allows exactly that one stylesheet by its SHA-256 hash and nothing else; send it, with the
//! other [`security_headers`], on every response that carries one of these pages.
//!
//! Every dynamic value (paths, the return path, the CSRF token, message titles) goes through
//! [`html_escape`]. Escaping makes a value safe *as text and inside a quoted attribute*; it does
//! not make an arbitrary string a safe URL, so `next` and `back` must already be validated
//! same-site paths (the CSP forbids scripts anyway, so `javascript:` links would not run).

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The one stylesheet of every page, embedded verbatim between `<style>` and `</style>`.
///
/// The CSP allows exactly these bytes (by hash), so nothing may be added around them.
pub const STYLE: &str = include_str!("assets/pages.css");

/// `'sha256-<base64>'` of [`STYLE`], as a CSP source expression.
static STYLE_HASH: LazyLock<String> = LazyLock::new(|| {
    let digest = Sha256::digest(STYLE.as_bytes());
    format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest))
});

static CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; style-src {}; img-src data:; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
        *STYLE_HASH
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
/// stylesheet (by hash) and `data:` images; forms post only to the same origin; no framing.
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

/// What the login page tells the user above the code field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginMessage {
    /// The code was wrong.
    WrongCode,
    /// The code was right but already used (replay protection).
    CodeAlreadyUsed,
    /// Too many wrong codes from this client (or overall); the form still works once this ends.
    LockedOut { retry_after: Duration },
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
            Self::LockedOut { retry_after } => format!(
                "<p><strong>Too many wrong codes.</strong> Try again in {}.</p>\
                 <p>If this is your gateway, you can unlock it now: run \
                 <code>simpleotp unlock</code> or use Unlock in the SimpleOTP app.</p>",
                html_escape(&format_duration(*retry_after))
            ),
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
            Self::TicketInvalid => "<p>This unlock link has expired or was already used. Run \
                                    <code>simpleotp unlock</code> again (or use Unlock in the \
                                    SimpleOTP app) for a new one.</p>"
                .to_owned(),
        }
    }
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
    let mut out = String::with_capacity(STYLE.len() + card.len() + 1024);
    out.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex\">\n\
         <meta name=\"referrer\" content=\"same-origin\">\n\
         <meta name=\"color-scheme\" content=\"light dark\">\n",
    );
    let _ = writeln!(out, "<title>{} · SimpleOTP</title>", html_escape(title));
    out.push_str("<style>");
    out.push_str(STYLE);
    out.push_str("</style>\n</head>\n<body>\n<main class=\"card\">\n");
    out.push_str(BRAND);
    out.push('\n');
    out.push_str(card);
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

/// The login page: one 6-digit code field and a "Sign in" button, posting `code` and `next`
/// to `view.action`.
#[must_use]
pub fn login_page(view: &LoginView) -> String {
    let mut card = String::with_capacity(2048);
    card.push_str("<h1>Sign in</h1>\n");
    card.push_str("<p class=\"help\" id=\"help\">Enter the 6-digit code from your authenticator app.</p>\n");
    let mut described_by = "help";
    let mut invalid = "";
    if let Some(message) = &view.message {
        let (class, role) = if message.is_error() {
            invalid = " aria-invalid=\"true\"";
            ("msg msg-error", "alert")
        } else {
            ("msg msg-info", "status")
        };
        described_by = "msg help";
        let _ = writeln!(card, "<div class=\"{class}\" id=\"msg\" role=\"{role}\">{}</div>", message.html());
    }
    let _ = write!(
        card,
        "<form method=\"post\" action=\"{action}\">\n\
         <label for=\"code\">Code</label>\n\
         <input class=\"code\" id=\"code\" name=\"code\" type=\"text\" inputmode=\"numeric\" \
         autocomplete=\"one-time-code\" pattern=\"[0-9]{{6}}\" minlength=\"6\" maxlength=\"6\" \
         placeholder=\"······\" title=\"6 digits\" spellcheck=\"false\" autocapitalize=\"off\" \
         enterkeyhint=\"go\" required autofocus aria-describedby=\"{described_by}\"{invalid}>\n\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\n\
         {ticket}\
         <button class=\"btn btn-primary\" id=\"submit\" type=\"submit\">Sign in</button>\n\
         </form>\n",
        action = html_escape(view.action),
        next = html_escape(view.next),
        ticket = view.ticket.map(|t| format!("<input type=\"hidden\" name=\"ticket\" value=\"{}\">\n", html_escape(t))).unwrap_or_default(),
    );
    document("Sign in", &card)
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
/// its fingerprint to compare (this page may come over plain HTTP, so the comparison is what
/// protects against someone on the network swapping the certificate), the two downloads, and
/// short steps for iOS, Android, Windows and macOS (each a `<details>`, no script needed).
#[must_use]
pub fn ca_page(view: &CaView) -> String {
    let name = html_escape(view.certificate.common_name());
    let fingerprint = html_escape(&view.certificate.fingerprint().to_string());
    let card = format!(
        "<h1>Trust SimpleOTP on this device</h1>\n\
         <p class=\"help\">Apps protected by SimpleOTP on this computer are served over HTTPS with \
         certificates from its own certificate authority, <strong>{name}</strong>. It is made for this \
         computer only: it can vouch for its names and private network addresses, never for another \
         website. Trust it once on each device you use.</p>\n\
         <p class=\"label\" id=\"fingerprint-label\">SHA-256 fingerprint</p>\n\
         <p><code class=\"fingerprint\" id=\"fingerprint\" aria-labelledby=\"fingerprint-label\">{fingerprint}</code></p>\n\
         <p class=\"help\">Before you trust it, check that this matches the fingerprint the SimpleOTP \
         app shows on the computer (or <code>simpleotp ca export FILE</code> prints). If it does not, \
         someone may be tampering with your network: do not install it.</p>\n\
         <div class=\"actions\">\n\
         <a class=\"btn btn-primary\" id=\"profile\" href=\"{profile}\">iPhone / iPad profile</a>\n\
         <a class=\"btn btn-secondary\" id=\"certificate\" href=\"{certificate}\" download>Certificate (.crt)</a>\n\
         </div>\n\
         <div class=\"steps\">\n\
         <details id=\"steps-ios\"><summary>iPhone and iPad</summary><ol>\
         <li>Open this page in Safari, tap <strong>iPhone / iPad profile</strong> and allow the download.</li>\
         <li>Open Settings, tap <strong>Profile Downloaded</strong>, then <strong>Install</strong>.</li>\
         <li>Settings &gt; General &gt; About &gt; <strong>Certificate Trust Settings</strong>: turn on full \
         trust for {name}.</li></ol></details>\n\
         <details id=\"steps-android\"><summary>Android</summary><ol>\
         <li>Tap <strong>Certificate (.crt)</strong> to download it.</li>\
         <li>Settings &gt; Security &gt; More security settings &gt; Encryption &amp; credentials &gt; \
         <strong>Install a certificate</strong> &gt; <strong>CA certificate</strong> (or search Settings for \
         “CA certificate”), and pick the downloaded file.</li>\
         <li>Chrome trusts it from then on; some other apps ignore certificates you add.</li></ol></details>\n\
         <details id=\"steps-windows\"><summary>Windows</summary><ol>\
         <li>Download the certificate. To compare the fingerprint, run \
         <code>certutil -hashfile FILE SHA256</code> on it.</li>\
         <li>Open the file, <strong>Install Certificate</strong>, <strong>Current User</strong>, \
         <strong>Place all certificates in the following store</strong>: \
         <strong>Trusted Root Certification Authorities</strong>, then Finish and Yes.</li>\
         <li>Firefox keeps its own list: Settings &gt; Privacy &amp; Security &gt; View Certificates &gt; \
         Authorities &gt; Import.</li></ol></details>\n\
         <details id=\"steps-macos\"><summary>macOS</summary><ol>\
         <li>Download the certificate and open it: Keychain Access adds it to your login keychain. \
         (<code>shasum -a 256 FILE</code> shows the fingerprint.)</li>\
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

    fn all_messages() -> Vec<LoginMessage> {
        vec![
            LoginMessage::WrongCode,
            LoginMessage::CodeAlreadyUsed,
            LoginMessage::LockedOut { retry_after: Duration::from_secs(270) },
            LoginMessage::SignedOut,
            LoginMessage::Expired,
            LoginMessage::NotSaved,
            LoginMessage::TicketReady,
            LoginMessage::TicketInvalid,
        ]
    }

    /// Every page variant, each rendered with hostile dynamic values.
    fn all_pages(dynamic: &str) -> Vec<String> {
        let mut pages: Vec<String> = std::iter::once(None)
            .chain(all_messages().into_iter().map(Some))
            .map(|message| login_page(&LoginView { action: dynamic, next: dynamic, message, ticket: Some(dynamic) }))
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
            assert!(!page.to_ascii_lowercase().contains("<script"), "{page}");
            assert!(!page.contains(EVIL), "{page}");
            assert!(!page.contains("<a href='"), "{page}");
            assert!(page.contains("&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)"));
        }
    }

    #[test]
    fn dynamic_values_land_in_the_right_attributes() {
        let page = login_page(&LoginView { action: "/_simpleotp/login", next: "/lab/tree?a=1&b=2", message: None, ticket: None });
        assert!(page.contains(r#"<form method="post" action="/_simpleotp/login">"#));
        assert!(page.contains(r#"<input type="hidden" name="next" value="/lab/tree?a=1&amp;b=2">"#));

        let page = logout_page(&LogoutView { action: "/_simpleotp/logout", csrf_token: "tok_123", back: "/lab" });
        assert!(page.contains(r#"<form method="post" action="/_simpleotp/logout""#));
        assert!(page.contains(r#"<input type="hidden" name="csrf" value="tok_123">"#));
        assert!(page.contains(r#"href="/lab">Cancel</a>"#));
        assert!(page.contains(r#"id="submit" type="submit">Sign out</button>"#));
    }

    #[test]
    fn csp_hash_matches_the_embedded_style() {
        for page in all_pages("/x") {
            let style = embedded_style(&page);
            assert_eq!(style, STYLE);
            let digest = Sha256::digest(style.as_bytes());
            let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
            let source = format!("style-src 'sha256-{b64}';");
            assert!(content_security_policy().contains(&source));
        }
        assert_eq!(
            content_security_policy(),
            format!(
                "default-src 'none'; style-src {}; img-src data:; form-action 'self'; \
                 frame-ancestors 'none'; base-uri 'none'",
                *STYLE_HASH
            )
        );
    }

    #[test]
    fn pages_need_nothing_the_csp_forbids() {
        for page in all_pages("/x") {
            let lower = page.to_ascii_lowercase();
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
        let page = login_page(&LoginView { action: "/_simpleotp/login", next: "/", message: None, ticket: None });
        for attr in [
            r#"id="code""#,
            r#"name="code""#,
            r#"inputmode="numeric""#,
            r#"autocomplete="one-time-code""#,
            r#"pattern="[0-9]{6}""#,
            r#"maxlength="6""#,
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
        assert!(!markup(&page).contains("aria-invalid"));
        assert!(!markup(&page).contains("role="));
    }

    #[test]
    fn each_message_renders_its_text_and_role() {
        let cases = [
            (LoginMessage::WrongCode, "That code didn't work. Check the time on your phone and try the newest code.", "alert"),
            (LoginMessage::CodeAlreadyUsed, "That code was already used. Wait for the next one.", "alert"),
            (LoginMessage::LockedOut { retry_after: Duration::from_secs(270) }, "Try again in 4 min 30 s.", "alert"),
            (LoginMessage::SignedOut, "You are signed out.", "status"),
            (LoginMessage::Expired, "Your session ended. Sign in again.", "status"),
        ];
        for (message, text, role) in cases {
            let error = message.is_error();
            assert_eq!(error, role == "alert");
            let page = login_page(&LoginView { action: "/_simpleotp/login", next: "/", message: Some(message), ticket: None });
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
        let page = login_page(&LoginView {
            action: "/_simpleotp/login",
            next: "/",
            message: Some(LoginMessage::LockedOut { retry_after: Duration::from_secs(7470) }),
            ticket: None,
        });
        assert!(page.contains("Too many wrong codes."));
        assert!(page.contains("Try again in 2 h 5 min."));
        assert!(page.contains("<code>simpleotp unlock</code>"));
        assert!(page.contains("Unlock in the SimpleOTP app"));
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
        let login = |message| login_page(&LoginView { action: "/_simpleotp/login", next: "/lab", message, ticket: None });
        let pages = [
            ("login", login(None)),
            ("login-wrong", login(Some(LoginMessage::WrongCode))),
            ("login-used", login(Some(LoginMessage::CodeAlreadyUsed))),
            ("login-locked", login(Some(LoginMessage::LockedOut { retry_after: Duration::from_secs(270) }))),
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
