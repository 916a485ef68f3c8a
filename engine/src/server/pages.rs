//! TEMPORARY stub; replaced by the real pages at merge.
use std::time::Duration;
pub struct LoginView<'a> { pub action: &'a str, pub next: &'a str, pub message: Option<LoginMessage> }
pub enum LoginMessage { WrongCode, CodeAlreadyUsed, LockedOut { retry_after: Duration }, SignedOut, Expired }
pub fn login_page(view: &LoginView) -> String { format!("<form method=post action=\"{}\"><input id=code name=code><input type=hidden name=next value=\"{}\"><button id=submit>Sign in</button></form>{}", html_escape(view.action), html_escape(view.next), match &view.message { Some(LoginMessage::WrongCode) => "wrong code", Some(LoginMessage::CodeAlreadyUsed) => "already used", Some(LoginMessage::LockedOut{..}) => "Too many wrong codes", Some(LoginMessage::SignedOut) => "signed out", Some(LoginMessage::Expired)=>"ended", None => "" }) }
pub struct LogoutView<'a> { pub action: &'a str, pub csrf_token: &'a str, pub back: &'a str }
pub fn logout_page(view: &LogoutView) -> String { format!("<form method=post action=\"{}\"><input type=hidden name=csrf value=\"{}\"><button id=submit>Sign out</button></form><a href=\"{}\">Cancel</a>", html_escape(view.action), html_escape(view.csrf_token), html_escape(view.back)) }
pub fn message_page(title: &str, body: &str) -> String { format!("<h1>{}</h1><p>{}</p>", html_escape(title), html_escape(body)) }
pub fn security_headers() -> Vec<(&'static str, String)> { vec![("content-security-policy", "default-src 'none'".into())] }
pub fn html_escape(s: &str) -> String { s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;") }
