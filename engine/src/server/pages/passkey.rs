//! The page that adds a passkey: opened from a one-time link (the tray's "Add a passkey",
//! `simpleotp passkey add`), or offered once per browser right after a sign-in with a code.

use std::fmt::Write as _;

use super::{document_with, html_escape, PASSKEY_SCRIPT};

/// Everything the page shows.
#[derive(Debug, Clone)]
pub struct PasskeyAddView<'a> {
    /// Offered after a sign-in with a code ("… next time?", with "Not now"), rather than opened
    /// from a link the owner asked for.
    pub offer: bool,
    /// The one-time link's secret (from this page's URL), for the script to send back.
    pub link: &'a str,
    /// The ceremony routes the script posts to.
    pub start: &'a str,
    pub finish: &'a str,
    /// Where "Continue" and "Not now" go (a validated same-site path).
    pub next: &'a str,
    /// The name the field starts with.
    pub name: &'a str,
    /// The relying-party ID the passkey will be made for (`localhost`, `box.local`).
    pub rp_id: &'a str,
}

/// The heading the offer asks with, naming what people know their unlock as.
pub const OFFER_TITLE: &str = "Sign in with Face ID, Windows Hello or your security key next time?";

#[must_use]
pub fn passkey_add_page(view: &PasskeyAddView) -> String {
    let title = if view.offer { OFFER_TITLE } else { "Add a passkey" };
    let next = html_escape(view.next);
    let mut card = String::with_capacity(2048);
    let _ = writeln!(card, "<h1>{}</h1>", html_escape(title));
    // Where it works, said here because a passkey made at one name does nothing at another.
    let other = if view.rp_id == "localhost" {
        "on this computer (at <strong>localhost</strong>). Phones and other computers use the address SimpleOTP gives them, \
         where each makes a passkey of its own."
            .to_owned()
    } else {
        format!("at <strong>{}</strong>. On this computer itself (at localhost) passkeys are made separately.", html_escape(view.rp_id))
    };
    let _ = writeln!(
        card,
        "<p class=\"help\" id=\"passkey-help\">Instead of typing a code, unlock with your fingerprint, face, PIN or security key. \
         This passkey works {other}</p>"
    );
    card.push_str("<div class=\"msg\" id=\"passkey-msg\" hidden></div>\n");
    let _ = write!(
        card,
        "<div id=\"passkey-form\" class=\"needs-webauthn\" hidden>\n\
         <label for=\"passkey-name\">Name</label>\n\
         <input class=\"text-field\" id=\"passkey-name\" type=\"text\" value=\"{name}\" maxlength=\"60\" required spellcheck=\"false\" \
         autocomplete=\"off\" aria-describedby=\"passkey-help\">\n\
         <button class=\"btn btn-primary\" id=\"passkey-add\" type=\"button\" data-start=\"{start}\" data-finish=\"{finish}\" \
         data-link=\"{link}\">Create a passkey</button>\n\
         </div>\n\
         <noscript><p class=\"help\">Making a passkey needs JavaScript in this browser.</p></noscript>\n",
        name = html_escape(view.name),
        start = html_escape(view.start),
        finish = html_escape(view.finish),
        link = html_escape(view.link),
    );
    if view.offer {
        let _ = writeln!(card, "<p><a class=\"btn btn-secondary\" id=\"passkey-skip\" href=\"{next}\">Not now</a></p>");
        // A browser without WebAuthn is sent on at once (the script follows this link).
        let _ = writeln!(card, "<a id=\"passkey-skip-unsupported\" href=\"{next}\" hidden></a>");
    } else {
        let _ = writeln!(card, "<p><a class=\"btn btn-secondary\" id=\"passkey-skip\" href=\"{next}\">Back to the app</a></p>");
    }
    let _ = write!(
        card,
        "<div id=\"passkey-done\" role=\"status\" hidden>\n\
         <p class=\"msg msg-info\">Passkey <strong id=\"passkey-done-name\"></strong> added. Next time, choose \
         “Sign in with a passkey”.</p>\n\
         <a class=\"btn btn-primary\" id=\"passkey-continue\" href=\"{next}\">Continue</a>\n\
         </div>\n"
    );
    document_with(title, "", &card, &[PASSKEY_SCRIPT])
}
