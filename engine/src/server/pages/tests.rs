//! The pages' own tests: escaping, the CSP and its hashes, every page's content.

use super::*;
use crate::config::{AppName, SessionSettings};

const EVIL: &str = "\"><script>alert('x')</script><a href='";

/// 2025-11-24 16:00:00 UTC.
const NOON_ISH: u64 = 1_764_000_000;

fn at(unix: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(unix)
}

fn locked(retry_after_secs: u64) -> LoginMessage {
    locked_on(retry_after_secs, Device::ThisComputer)
}

fn locked_on(retry_after_secs: u64, from: Device) -> LoginMessage {
    LoginMessage::LockedOut { retry_after: Duration::from_secs(retry_after_secs), ends_at: at(NOON_ISH + retry_after_secs), from }
}

fn view<'a>(action: &'a str, next: &'a str, message: Option<LoginMessage>, ticket: Option<&'a str>) -> LoginView<'a> {
    LoginView {
        action,
        next,
        message,
        ticket,
        app_name: None,
        session: SessionSettings::default(),
        entry: None,
        tries_left: None,
        continue_offer: None,
        recovery: false,
        passkey: PasskeySignIn::None,
    }
}

/// The page without our scripts (the `<script>`s the CSP allows, by their hashes), so the
/// checks for anything script-like see only the markup around them.
fn without_script(page: &str) -> String {
    page.replace(&format!("<script>{LOGIN_SCRIPT}</script>"), "").replace(&format!("<script>{PASSKEY_SCRIPT}</script>"), "")
}

fn all_messages() -> Vec<LoginMessage> {
    vec![
        LoginMessage::WrongCode,
        LoginMessage::CodeAlreadyUsed,
        LoginMessage::WrongRecoveryCode,
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
            let passkey = LoginView { passkey: PasskeySignIn::Offer { start: dynamic, finish: dynamic }, ..plain.clone() };
            let elsewhere = LoginView { passkey: PasskeySignIn::AtAnotherAddress(dynamic), ..plain.clone() };
            [login_page(&plain), login_page(&named), login_page(&passkey), login_page(&elsewhere)]
        })
        .collect();
    for offer in [false, true] {
        pages.push(passkey_add_page(&PasskeyAddView {
            offer,
            link: dynamic,
            start: dynamic,
            finish: dynamic,
            next: dynamic,
            name: dynamic,
            rp_id: dynamic,
        }));
    }
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
            "default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}' 'sha256-{}'; connect-src 'self'; img-src data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            sha256_base64(STYLE),
            sha256_base64(LOGIN_SCRIPT),
            sha256_base64(PASSKEY_SCRIPT)
        )
    );
}

/// The CA page carries its own script, byte for byte what its own policy allows by hash (and
/// `connect-src https:` for its trust check, which no other page's policy has); the apps it
/// offers are escaped and link to their ports.
#[test]
fn the_ca_page_has_its_script_and_its_own_policy() {
    let authority =
        crate::ca::CertificateAuthority::generate(&crate::config::MachineNames::from_host_name("box"), SystemTime::now()).unwrap();
    let certificate = authority.certificate();
    let apps = [(8081, "Jupyter"), (8082, "<b>Lab</b>")];
    let page = ca_page(&CaView {
        certificate: &certificate,
        certificate_path: "/_simpleotp/ca.crt",
        profile_path: "/_simpleotp/ca.mobileconfig",
        trust_check_path: "/_simpleotp/trusted",
        apps: &apps,
    });
    let start = page.find("<script>").unwrap() + "<script>".len();
    let end = page[start..].find("</script>").unwrap() + start;
    assert_eq!(&page[start..end], CA_SCRIPT);
    assert_eq!(page.matches("<script").count(), 1);
    let policy = ca_page_content_security_policy();
    assert!(policy.contains(&format!("script-src 'sha256-{}';", sha256_base64(CA_SCRIPT))), "{policy}");
    assert!(policy.contains("connect-src https:;") && !content_security_policy().contains("connect-src https:"), "{policy}");
    assert!(page.contains(r#"data-check="/_simpleotp/trusted""#));
    assert!(page.contains(r#"data-port="8081" href="/">Open Jupyter →</a>"#), "{page}");
    assert!(page.contains("Open &lt;b&gt;Lab&lt;/b&gt; →") && !page.contains("<b>Lab"), "{page}");
    assert!(page.contains(r#"<div id="trust-done" hidden>"#), "shown by the script only once trusted");
}

/// The scripts of `page`, in order, exactly as embedded.
fn scripts(page: &str) -> Vec<&str> {
    page.match_indices("<script>")
        .map(|(i, _)| {
            let start = i + "<script>".len();
            &page[start..start + page[start..].find("</script>").unwrap()]
        })
        .collect()
}

#[test]
fn csp_hashes_match_the_login_and_passkey_scripts_and_other_pages_have_none() {
    let source = format!("script-src 'sha256-{}' 'sha256-{}';", sha256_base64(LOGIN_SCRIPT), sha256_base64(PASSKEY_SCRIPT));
    assert!(content_security_policy().contains(&source));
    for page in all_pages("/x") {
        assert_eq!(page.matches("<script").count(), scripts(&page).len());
        if page.contains("<form class=\"login\"") {
            assert_eq!(scripts(&page), [LOGIN_SCRIPT, PASSKEY_SCRIPT], "byte for byte what the hashes allow");
        } else if page.contains("id=\"passkey-add\"") {
            assert_eq!(scripts(&page), [PASSKEY_SCRIPT]);
        } else {
            assert!(scripts(&page).is_empty(), "{page}");
        }
    }
}

/// The passkey script talks to this origin only (the paths the page gives it) and builds no
/// markup from what it receives.
#[test]
fn the_passkey_script_fetches_only_this_origin_and_writes_no_markup() {
    let lower = PASSKEY_SCRIPT.to_ascii_lowercase();
    for forbidden in ["http:", "https:", "xmlhttprequest", "websocket", "eval(", "innerhtml", "outerhtml", "document.write", "import("] {
        assert!(!lower.contains(forbidden), "the passkey script has {forbidden:?}");
    }
    assert!(!lower.contains("</script"), "it would end its own element");
    assert!(lower.contains("credentials: \"same-origin\""));
}

#[test]
fn the_login_page_offers_a_passkey_where_one_works_and_says_where_otherwise() {
    let base = view("/_simpleotp/login", "/lab", None, None);
    let plain = without_script(&login_page(&base));
    assert!(!plain.contains("passkey-signin") && !plain.contains("webauthn") && !plain.contains("passkey-where"));

    let offer = login_page(&LoginView {
        passkey: PasskeySignIn::Offer { start: "/_simpleotp/passkey/sign-in/start", finish: "/_simpleotp/passkey/sign-in/finish" },
        ..base.clone()
    });
    let markup = without_script(&offer);
    assert!(markup.contains(r#"id="passkey-signin" type="button" hidden data-start="/_simpleotp/passkey/sign-in/start""#), "{markup}");
    assert!(markup.contains(r#"data-next="/lab""#));
    assert!(markup.contains(r#"autocomplete="one-time-code webauthn""#), "the code field's autofill offers the passkey");
    assert!(markup.contains(">Sign in with a passkey</button>"));

    let elsewhere = login_page(&LoginView { passkey: PasskeySignIn::AtAnotherAddress("http://localhost:8081/x"), ..base.clone() });
    assert!(elsewhere.contains(r#"Passkeys work at <a href="http://localhost:8081/x">http://localhost:8081/x</a>: browsers offer them at a name, not at an IP address."#), "{elsewhere}");
    assert!(!without_script(&elsewhere).contains("passkey-signin"));

    // A lockout applies to passkeys too.
    let locked_page =
        login_page(&LoginView { message: Some(locked(60)), passkey: PasskeySignIn::Offer { start: "/s", finish: "/f" }, ..base });
    assert!(!without_script(&locked_page).contains("passkey-signin"));
}

#[test]
fn the_add_page_says_where_the_passkey_works_and_offers_a_way_out() {
    let view = PasskeyAddView {
        offer: true,
        link: "offer_1",
        start: "/_simpleotp/passkey/add/start",
        finish: "/_simpleotp/passkey/add/finish",
        next: "/lab",
        name: "My passkey",
        rp_id: "localhost",
    };
    let offer = passkey_add_page(&view);
    assert!(offer.contains("Sign in with Face ID, Windows Hello or your security key next time?"));
    assert!(offer.contains("on this computer (at <strong>localhost</strong>)"), "{offer}");
    assert!(offer.contains(r#"id="passkey-skip" href="/lab">Not now</a>"#));
    assert!(offer.contains(r#"id="passkey-skip-unsupported" href="/lab" hidden"#), "a browser without WebAuthn goes on");
    assert!(offer.contains(r#"data-link="offer_1""#), "the link from the page's own URL");
    assert!(offer.contains(r#"<div id="passkey-form" class="needs-webauthn" hidden>"#));

    let owner = passkey_add_page(&PasskeyAddView { offer: false, link: "abc_-1", rp_id: "box.local", ..view });
    let owner = owner.replace(&format!("<script>{PASSKEY_SCRIPT}</script>"), "");
    assert!(owner.contains("<h1>Add a passkey</h1>"));
    assert!(owner.contains(r#"data-link="abc_-1""#));
    assert!(owner.contains("at <strong>box.local</strong>. On this computer itself (at localhost) passkeys are made separately."));
    assert!(owner.contains(">Back to the app</a>") && !owner.contains("passkey-skip-unsupported"));
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

/// "Use a recovery code" only where a set exists and the form is usable; open after a wrong one.
#[test]
fn the_recovery_form_is_offered_when_there_are_codes() {
    let page = |message, recovery| login_page(&LoginView { recovery, ..view("/_simpleotp/login", "/lab", message, None) });
    assert!(!page(None, false).contains("id=\"recovery\""));
    let offered = page(None, true);
    assert!(offered.contains(r#"<details class="recovery" id="recovery"><summary>Use a recovery code</summary>"#), "{offered}");
    assert!(offered.contains(r#"name="recovery""#) && offered.contains(r#"<input type="hidden" name="next" value="/lab">"#));
    let wrong = page(Some(LoginMessage::WrongRecoveryCode), true);
    assert!(wrong.contains(r#"<details class="recovery" id="recovery" open>"#) && wrong.contains("That recovery code didn't work"));
    assert!(!page(Some(locked(60)), true).contains("id=\"recovery\""), "a lockout applies to recovery codes too");
}

#[test]
fn lockout_says_how_to_unlock() {
    let page = login_page(&view("/_simpleotp/login", "/", Some(locked(7470)), None));
    assert!(page.contains("Too many wrong codes."));
    assert!(page.contains(r#"Try again in <span id="lockout-left" aria-live="off" data-seconds="7471">2 h 5 min</span>"#));
    // On this computer: the tray at hand (or the command, without a tray).
    assert!(page.contains("in SimpleOTP's tray menu choose <strong>Unlock sign-ins</strong>"), "{page}");
    assert!(page.contains("<code>simpleotp unlock</code> in a terminal"));
    assert!(!page.contains("camera"));

    // On a phone, which has neither: the tray's QR code, read with this device's camera.
    let page = login_page(&view("/_simpleotp/login", "/", Some(locked_on(7470, Device::Other)), None));
    assert!(
        page.contains("unlock it from this device: on the computer running SimpleOTP choose <strong>Unlock sign-ins</strong>"),
        "{page}"
    );
    assert!(page.contains("scan the QR code it shows with this device's camera"));
    assert!(!page.contains("in a terminal"));
    assert_eq!(Device::of("192.168.1.7".parse().unwrap()), Device::Other);
    assert_eq!(Device::of("::1".parse().unwrap()), Device::ThisComputer);
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

/// The page says which entry of the authenticator app to read (escaped: the account is the
/// owner's text), and after a wrong code how many tries are left before the pause.
#[test]
fn login_page_names_the_entry_and_the_tries_left() {
    use crate::limiter::TriesLeft;
    let entry = Some(("SimpleOTP", "alice@<laptop>"));
    let page = login_page(&LoginView { entry, ..view("/_simpleotp/login", "/", None, None) });
    assert!(page.contains(r#"under <strong class="entry">SimpleOTP</strong> (alice@&lt;laptop&gt;).</p>"#), "{page}");
    assert!(!page.contains("tries-left"));

    let left = |tries| Some(TriesLeft { tries, pause: Duration::from_secs(60) });
    let wrong =
        |tries_left| login_page(&LoginView { entry, tries_left, ..view("/_simpleotp/login", "/", Some(LoginMessage::WrongCode), None) });
    assert!(wrong(left(3)).contains(r#"<p id="tries-left">3 more tries before sign-in locks for 1 minute.</p>"#));
    assert!(wrong(left(1)).contains(r#"<p id="tries-left">One more wrong code locks sign-in for 1 minute.</p>"#));
    assert!(!wrong(None).contains("tries-left"), "paused, or with a ticket: no count");
    // Not after news such as a sign-out.
    let news = login_page(&LoginView { tries_left: left(3), ..view("/_simpleotp/login", "/", Some(LoginMessage::SignedOut), None) });
    assert!(!news.contains("tries-left"));
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
    let dir = std::env::var_os("SIMPLEOTP_PAGES_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("pages"));
    std::fs::create_dir_all(&dir).unwrap();
    let jupyter: AppName = "Jupyter".parse().unwrap();
    let login = |message| login_page(&LoginView { app_name: Some(&jupyter), ..view("/_simpleotp/login", "/lab", message, None) });
    let pages = [
        ("login", login(None)),
        ("login-wrong", login(Some(LoginMessage::WrongCode))),
        ("login-used", login(Some(LoginMessage::CodeAlreadyUsed))),
        ("login-locked", login(Some(LoginMessage::locked_out(Duration::from_secs(270), Device::Other)))),
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
