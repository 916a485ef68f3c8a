//! The sign-in page and the sign-out confirmation.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use super::{document, document_with, format_duration, format_span, html_escape, utc_moment};
use crate::config::{AppName, SessionSettings};
use crate::limiter::TriesLeft;

/// What the login page tells the user above the code field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginMessage {
    /// The code was wrong.
    WrongCode,
    /// The code was right but already used (replay protection).
    CodeAlreadyUsed,
    /// "Use a recovery code": not an unused code of the current set.
    WrongRecoveryCode,
    /// Too many wrong codes from this client (or overall): the form is disabled until
    /// `ends_at`, `retry_after` from now (see [`LoginMessage::locked_out`]). How to unlock
    /// depends on where the person is (`from`).
    LockedOut { retry_after: Duration, ends_at: SystemTime, from: Device },
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

/// Where the person reading the page is, as far as the words to unlock go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// The request came from loopback: the computer running SimpleOTP, whose tray (or terminal)
    /// is at hand.
    ThisComputer,
    /// A phone or another computer: it has no tray and cannot run `simpleotp unlock`.
    Other,
}

impl Device {
    /// Where a request from `ip` (as nginx saw it) comes from.
    #[must_use]
    pub fn of(ip: std::net::IpAddr) -> Device {
        if ip.is_loopback() {
            Device::ThisComputer
        } else {
            Device::Other
        }
    }
}

impl LoginMessage {
    /// A lockout that ends `retry_after` from now, told to a person on `from`.
    #[must_use]
    pub fn locked_out(retry_after: Duration, from: Device) -> LoginMessage {
        LoginMessage::LockedOut { retry_after, ends_at: SystemTime::now() + retry_after, from }
    }

    /// Whether this reports a failed attempt (shown as an alert, field marked invalid) rather
    /// than news (shown as a status).
    #[must_use]
    pub fn is_error(&self) -> bool {
        matches!(
            self,
            Self::WrongCode
                | Self::CodeAlreadyUsed
                | Self::WrongRecoveryCode
                | Self::LockedOut { .. }
                | Self::NotSaved
                | Self::TicketInvalid
        )
    }

    /// The message as HTML paragraphs (trusted markup; no caller-supplied text is in it).
    fn html(&self) -> String {
        match self {
            Self::WrongCode => "<p>That code didn't work. Check the time on your phone and try \
                                the newest code.</p>"
                .to_owned(),
            Self::CodeAlreadyUsed => "<p>That code was already used. Wait for the next one.</p>".to_owned(),
            Self::WrongRecoveryCode => "<p>That recovery code didn't work. Each one works once; check it for typos \
                                        (it looks like <code>7kq2-m9xd-4hbn</code>).</p>"
                .to_owned(),
            Self::LockedOut { retry_after, ends_at, from } => {
                // The countdown changes every second: it must not be read out each time (the
                // message is an alert), so it is its own region that stays quiet.
                let (datetime, shown) = utc_moment(*ends_at, *retry_after >= Duration::from_secs(20 * 3600));
                format!(
                    "<p><strong>Too many wrong codes.</strong> Try again in <span id=\"lockout-left\" \
                     aria-live=\"off\" data-seconds=\"{seconds}\">{left}</span>, at <time id=\"lockout-end\" \
                     datetime=\"{datetime}\">{shown}</time>. The form opens again by itself then.</p>{unlock}",
                    seconds = lockout_seconds(*retry_after),
                    left = html_escape(&format_duration(*retry_after)),
                    unlock = unlock_words(*from),
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

/// How the owner unlocks sign-ins, in words that fit where they are: a phone has no tray and
/// cannot run `simpleotp unlock`, but its camera can read the QR code the tray shows.
fn unlock_words(from: Device) -> &'static str {
    match from {
        Device::ThisComputer => {
            "<p>If this is your SimpleOTP, unlock it now: in SimpleOTP's tray menu choose \
             <strong>Unlock sign-ins</strong> (where SimpleOTP runs without a tray, run \
             <code>simpleotp unlock</code> in a terminal).</p>"
        }
        Device::Other => {
            "<p>If this is your SimpleOTP, unlock it from this device: on the computer running \
             SimpleOTP choose <strong>Unlock sign-ins</strong> in its tray menu, then scan the \
             QR code it shows with this device's camera. (On a server, <code>simpleotp \
             unlock</code> prints a link and a QR code to open here.)</p>"
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
    /// The entry to take the code from, as the authenticator app shows it: issuer and account.
    pub entry: Option<(&'a str, &'a str)>,
    /// After a wrong code: how many more tries before sign-in locks, and for how long.
    pub tries_left: Option<TriesLeft>,
    /// This browser is signed in to another app on this host: continue without a code.
    pub continue_offer: Option<ContinueOffer<'a>>,
    /// Recovery codes exist: "Use a recovery code" is offered under the code field.
    pub recovery: bool,
    /// Whether "Sign in with a passkey" is offered here, or where it would be.
    pub passkey: PasskeySignIn<'a>,
}

/// Passkeys on the login page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasskeySignIn<'a> {
    /// None added (or none that works anywhere): nothing is said.
    None,
    /// A passkey was added at this address: the button (shown by the script), and the code
    /// field's autofill offers it where the browser can.
    Offer { start: &'a str, finish: &'a str },
    /// Passkeys exist, but this address is an IP address, where browsers refuse them: one line
    /// with the address where they work.
    AtAnotherAddress(&'a str),
}

/// "Continue — you are signed in to Jupyter on this device" (one sign-in per device).
#[derive(Debug, Clone)]
pub struct ContinueOffer<'a> {
    /// The app this browser is signed in to.
    pub app: &'a str,
    /// The form's action path (`/_simpleotp/continue`).
    pub action: &'a str,
    /// The form value that proves the request comes from this page (derived from that session).
    pub value: &'a str,
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

/// "2 more tries before sign-in locks for 1 min." (the tray's word: "Sign-ins locked", "Unlock
/// sign-ins") under a wrong code: people stop guessing
/// before the pause rather than after.
fn tries_sentence(left: TriesLeft) -> String {
    let pause = html_escape(&format_span(left.pause));
    match left.tries {
        1 => format!("<p id=\"tries-left\">One more wrong code locks sign-in for {pause}.</p>"),
        n => format!("<p id=\"tries-left\">{n} more tries before sign-in locks for {pause}.</p>"),
    }
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
    match view.entry {
        // As the app lists it: "SimpleOTP (alice@laptop)".
        Some((issuer, account)) => {
            let _ = writeln!(
                card,
                "<p class=\"help\" id=\"help\">Enter the 6-digit code from your authenticator app, \
                 under <strong class=\"entry\">{}</strong> ({}).</p>",
                html_escape(issuer),
                html_escape(account)
            );
        }
        None => card.push_str("<p class=\"help\" id=\"help\">Enter the 6-digit code from your authenticator app.</p>\n"),
    }
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
        let tries = match (message, view.tries_left) {
            (LoginMessage::WrongCode | LoginMessage::CodeAlreadyUsed, Some(left)) => tries_sentence(left),
            _ => String::new(),
        };
        let _ = writeln!(card, "<div class=\"{class}\" id=\"msg\" role=\"{role}\">{}{tries}</div>", message.html());
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
    // Offered only when the code field is usable: a lockout applies to continuing too. Then
    // Continue is the one primary button and Sign in the way for someone else.
    let mut submit_class = "btn-primary";
    if let (Some(offer), "") = (&view.continue_offer, disabled) {
        submit_class = "btn-secondary";
        let _ = write!(
            card,
            "<form class=\"continue\" method=\"post\" action=\"{action}\">\n\
             <p id=\"continue-text\">You are signed in to <strong>{app}</strong> on this device.</p>\n\
             <input type=\"hidden\" name=\"continue\" value=\"{value}\">\n\
             <input type=\"hidden\" name=\"next\" value=\"{next}\">\n\
             <button class=\"btn btn-primary\" id=\"continue\" type=\"submit\" aria-describedby=\"continue-text\">Continue</button>\n\
             </form>\n<p class=\"help or\">Or type a code:</p>\n",
            action = html_escape(offer.action),
            app = html_escape(offer.app),
            value = html_escape(offer.value),
            next = html_escape(view.next),
        );
        autofocus = "";
    }
    let _ = write!(
        card,
        "<form class=\"login\" method=\"post\" action=\"{action}\">\n\
         <label for=\"code\">Code</label>\n\
         <input class=\"code\" id=\"code\" name=\"code\" type=\"text\" inputmode=\"numeric\" \
         autocomplete=\"{autocomplete}\" pattern=\" *(?:[0-9][ \\-]*){{5}}[0-9] *\" minlength=\"6\" maxlength=\"9\" \
         placeholder=\"······\" title=\"6 digits\" spellcheck=\"false\" autocapitalize=\"off\" \
         enterkeyhint=\"go\" required{autofocus}{disabled} aria-describedby=\"{described_by}\"{invalid}>\n\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\n\
         {ticket}\
         <button class=\"btn {submit_class}\" id=\"submit\" type=\"submit\"{disabled}>Sign in</button>\n\
         </form>\n\
         {passkey}\
         {recovery}\
         <p class=\"help lasts\" id=\"lasts\">{lasts}</p>\n",
        action = html_escape(view.action),
        next = html_escape(view.next),
        recovery = recovery_form(view, disabled),
        passkey = passkey_sign_in(view, disabled),
        autocomplete = if matches!(view.passkey, PasskeySignIn::Offer { .. }) { "one-time-code webauthn" } else { "one-time-code" },
        ticket = view.ticket.map(|t| format!("<input type=\"hidden\" name=\"ticket\" value=\"{}\">\n", html_escape(t))).unwrap_or_default(),
        lasts = session_sentence(&view.session, &app),
    );
    document_with(&title, &head, &card, &[super::LOGIN_SCRIPT, super::PASSKEY_SCRIPT])
}

/// "Sign in with a passkey" (hidden until the script finds WebAuthn), or where passkeys work
/// when this is an IP address. Not during a lockout, which applies to passkeys too.
fn passkey_sign_in(view: &LoginView, disabled: &str) -> String {
    if !disabled.is_empty() {
        return String::new();
    }
    match &view.passkey {
        PasskeySignIn::None => String::new(),
        PasskeySignIn::Offer { start, finish } => format!(
            "<button class=\"btn btn-secondary passkey\" id=\"passkey-signin\" type=\"button\" hidden \
             data-start=\"{}\" data-finish=\"{}\" data-next=\"{}\" data-autofill>Sign in with a passkey</button>\n\
             <div class=\"msg\" id=\"passkey-msg\" hidden></div>\n",
            html_escape(start),
            html_escape(finish),
            html_escape(view.next),
        ),
        PasskeySignIn::AtAnotherAddress(url) => format!(
            "<p class=\"help\" id=\"passkey-where\">Passkeys work at <a href=\"{url}\">{text}</a>: browsers offer them at a name, \
             not at an IP address.</p>\n",
            url = html_escape(url),
            text = html_escape(url.trim_end_matches('/')),
        ),
    }
}

/// "Use a recovery code" (for a lost phone): a `<details>` that opens without a script, with a
/// form of its own posting `recovery`; open after a wrong one. Not during a lockout, which
/// applies to recovery codes too.
fn recovery_form(view: &LoginView, disabled: &str) -> String {
    if !view.recovery || !disabled.is_empty() {
        return String::new();
    }
    let open = if view.message == Some(LoginMessage::WrongRecoveryCode) { " open" } else { "" };
    format!(
        "<details class=\"recovery\" id=\"recovery\"{open}><summary>Use a recovery code</summary>\n\
         <form method=\"post\" action=\"{action}\">\n\
         <label for=\"recovery-code\">Recovery code</label>\n\
         <input class=\"text-field\" id=\"recovery-code\" name=\"recovery\" type=\"text\" autocomplete=\"off\" spellcheck=\"false\" \
         autocapitalize=\"off\" placeholder=\"xxxx-xxxx-xxxx\" maxlength=\"20\" required>\n\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\n\
         <button class=\"btn btn-secondary\" id=\"recovery-submit\" type=\"submit\">Sign in with it</button>\n\
         </form>\n<p class=\"help\">Each of the ten codes you saved at setup works once.</p>\n</details>\n",
        action = html_escape(view.action),
        next = html_escape(view.next),
    )
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
