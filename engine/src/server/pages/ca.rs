//! The page that helps a person trust SimpleOTP's CA on a phone or another computer.

use std::fmt::Write as _;

use super::{document_with, html_escape, CA_SCRIPT};

/// Everything the CA page shows.
#[derive(Debug, Clone)]
pub struct CaView<'a> {
    pub certificate: &'a crate::ca::CaCertificate,
    /// Where the DER certificate is, e.g. `"/_simpleotp/ca.crt"`.
    pub certificate_path: &'a str,
    /// Where the Apple profile is, e.g. `"/_simpleotp/ca.mobileconfig"`.
    pub profile_path: &'a str,
    /// The HTTPS check the page's script makes, e.g. `"/_simpleotp/trusted"`.
    pub trust_check_path: &'a str,
    /// The apps other devices reach (listen port, name): "Open Jupyter →" once trusted.
    pub apps: &'a [(u16, &'a str)],
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
    // Shown by the script once this device trusts the CA (the links get this page's host name
    // and each app's port there); until then "waiting" says what the page is doing.
    let mut apps = String::new();
    for (port, app) in view.apps {
        let _ = write!(apps, "<li><a class=\"btn btn-primary\" data-port=\"{port}\" href=\"/\">Open {} →</a></li>", html_escape(app));
    }
    let trust = format!(
        "<div id=\"trust\" data-check=\"{check}\">\n\
         <p class=\"help\" id=\"trust-waiting\" role=\"status\" hidden>Waiting for this device to trust SimpleOTP… \
         This page notices by itself once it does.</p>\n\
         <div id=\"trust-done\" hidden><p class=\"help\" role=\"status\"><strong>This device trusts SimpleOTP.</strong> \
         Open your app and sign in with a code:</p>\n<ul class=\"open-apps\">{apps}</ul></div>\n</div>\n",
        check = html_escape(view.trust_check_path),
    );
    let card = format!(
        "<h1>Trust SimpleOTP on this device</h1>\n{trust}\
         <p class=\"help\">Apps protected by SimpleOTP on this computer are served over HTTPS with \
         certificates from its own certificate authority, <strong>{name}</strong>. It is made for this \
         computer only: it can vouch for its websites, on its names and private network addresses, and \
         for nothing else. Trust it once on each device you use.</p>\n\
         <p class=\"help\" id=\"compare\"><strong>Before you trust it</strong>, compare the fingerprint \
         <strong>your device</strong> shows for the certificate it downloaded (the steps below say where) \
         with the one the SimpleOTP app shows on the computer (<em>Other devices</em>, next to the QR code), or \
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
    document_with("Trust SimpleOTP", "", &card, &[CA_SCRIPT])
}
