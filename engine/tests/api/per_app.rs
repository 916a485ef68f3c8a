//! Sessions per app, through the real nginx: a session opens only the app it was made for, the
//! app behind the gateway never sees a session token, and an app cannot replace a session by
//! setting a cookie of the same name.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use simpleotp_engine::protocol::session_cookie_name;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

/// An upstream that records the `Cookie` header of every request it gets and answers 200; on
/// `/set-session-cookie` it also tries to set the gateway's session cookie for `port`.
struct RecordingUpstream {
    addr: SocketAddr,
    cookies: Arc<Mutex<Vec<String>>>,
}

impl RecordingUpstream {
    async fn start() -> RecordingUpstream {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cookies = Arc::new(Mutex::new(Vec::new()));
        let seen = cookies.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.is_ok_and(|n| n == 1) {
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8_lossy(&head).to_string();
                    let cookie = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Cookie: ").or_else(|| l.strip_prefix("cookie: ")))
                        .unwrap_or("")
                        .to_string();
                    seen.lock().unwrap().push(cookie);
                    let host_port = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Host: "))
                        .and_then(|h| h.rsplit(':').next())
                        .and_then(|p| p.trim().parse::<u16>().ok())
                        .unwrap_or(0);
                    let set_cookie = if head.starts_with("GET /set-session-cookie ") {
                        format!("Set-Cookie: {}={}; Path=/\r\n", session_cookie_name(host_port, false), "A".repeat(43))
                    } else {
                        String::new()
                    };
                    let response = format!("HTTP/1.1 200 OK\r\n{set_cookie}Content-Length: 2\r\nConnection: close\r\n\r\nok");
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        RecordingUpstream { addr, cookies }
    }

    fn last_cookie(&self) -> String {
        self.cookies.lock().unwrap().last().cloned().expect("the upstream got a request")
    }
}

#[tokio::test]
async fn a_session_opens_only_its_own_app_and_no_app_sees_a_token() {
    let upstream = RecordingUpstream::start().await;
    let app = spawn_app_with(AppOptions { upstream: Some(upstream.addr), ..Default::default() }).await;
    // A second app on another port of the same host, behind the same gateway.
    let (second_port, _config) = app.add_app("Second").await;
    let second_base = format!("http://127.0.0.1:{second_port}");

    let browser = client();
    let login = app.login(&browser, "/").await;
    assert_eq!(login.status(), 303);
    let set_cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set_cookie.starts_with(&format!("{}=", app.cookie_name())), "{set_cookie}");
    let token = browser.session_token(&app.base);
    let sessions = app.handle().gateway().sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].app_port, app.port());

    // The first app opens, and gets the browser's other cookies but no session cookie at all.
    let cookies = format!("theme=dark; {}={token}; {}=junk; _xsrf=2|ab", app.cookie_name(), session_cookie_name(second_port, false));
    let r = client().get(app.url("/notebooks")).header("cookie", &cookies).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(upstream.last_cookie(), "theme=dark; _xsrf=2|ab");
    // Only session cookies: the app gets no Cookie header.
    let r = client().get(app.url("/")).header("cookie", format!("{}={token}", app.cookie_name())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(upstream.last_cookie(), "");

    // The second app does not open with the first app's session, under either name.
    for name in [app.cookie_name(), session_cookie_name(second_port, false)] {
        let r = client().get(format!("{second_base}/")).header("cookie", format!("{name}={token}")).send().await.unwrap();
        assert_eq!(r.status(), 302, "{name}");
    }
    // Its own sign-in gives it its own session; signing out of one leaves the other.
    let second_browser = client();
    let r = second_browser
        .post(format!("{second_base}{}", app.config.route_prefix.route("login")))
        .header("origin", &second_base)
        .form(&[("code", app.fresh_code().as_str()), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let mut ports: Vec<u16> = app.handle().gateway().sessions().iter().map(|s| s.app_port).collect();
    ports.sort();
    let mut expected = vec![app.port(), second_port];
    expected.sort();
    assert_eq!(ports, expected);
    let confirm = browser.get(app.route("logout")).send().await.unwrap().text().await.unwrap();
    let csrf = form_field(&confirm, "csrf").unwrap();
    let out = browser.post(app.route("logout")).header("origin", &app.base).form(&[("csrf", &csrf)]).send().await.unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(browser.get(app.url("/")).send().await.unwrap().status(), 302);
    assert_eq!(second_browser.get(format!("{second_base}/")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn an_app_cannot_replace_the_session_with_a_cookie_of_its_own() {
    let upstream = RecordingUpstream::start().await;
    let app = spawn_app_with(AppOptions { upstream: Some(upstream.addr), ..Default::default() }).await;
    let browser = client();
    app.login(&browser, "/").await;
    let token = browser.session_token(&app.base);

    // The app answers with a Set-Cookie of the session's name: the browser now holds the app's
    // value, and the gateway refuses it (fails closed) instead of letting it in.
    let r = browser.get(app.url("/set-session-cookie")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(browser.session_token(&app.base), "A".repeat(43));
    assert_eq!(browser.get(app.url("/")).send().await.unwrap().status(), 302);
    // The real session was not touched by any of it.
    let r = client().get(app.url("/")).header("cookie", format!("{}={token}", app.cookie_name())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.handle().gateway().sessions().len(), 1);
}

/// Over TLS (nginx says `https`, with its proof) the cookie is `Secure` and named `__Host-...`,
/// which a plain-http server on the same host can neither set nor overwrite; the plain name is
/// then not accepted, nor is the `__Host-` one over plain http.
#[tokio::test]
async fn over_https_the_cookie_is_secure_and_host_prefixed() {
    let app = spawn_app().await;
    let port = app.port().to_string();
    let auth = |route: &str| format!("http://{}{}", app.auth_addr(), app.config.route_prefix.route(route));
    let proof = app.nginx_proof();
    let as_nginx = |request: reqwest::RequestBuilder, https: bool| {
        request
            .header("x-simpleotp-proof", &proof)
            .header("x-simpleotp-app", &port)
            .header("x-real-ip", "192.168.1.20")
            .header("x-forwarded-proto", if https { "https" } else { "http" })
    };
    let r = as_nginx(client().post(auth("login")), true).form(&[("code", app.fresh_code().as_str()), ("next", "/")]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let secure_name = session_cookie_name(app.port(), true);
    assert!(cookie.starts_with(&format!("{secure_name}=")), "{cookie}");
    assert!(
        cookie.contains("; Secure") && cookie.contains("Path=/") && cookie.contains("HttpOnly") && !cookie.contains("Domain"),
        "{cookie}"
    );
    let token = cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_string();
    assert_eq!(app.handle().gateway().sessions()[0].client_ip, Some("192.168.1.20".parse().unwrap()));

    let check = |name: String, https: bool| {
        let request = as_nginx(client().get(auth("check")), https).header("cookie", format!("{name}={token}"));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(check(secure_name.clone(), true).await, 200);
    assert_eq!(check(app.cookie_name(), true).await, 401);
    assert_eq!(check(secure_name, false).await, 401);
}

/// HSTS through the real nginx on an app served over HTTPS at its own name: present for the
/// name on every answer (the login redirect, the login page), absent for an IP literal (browsers
/// ignore it there; here it would be answered before the redirect to the name) and over plain
/// HTTP. (For `localhost` and the LAN names: `nginx::render` and the lan suite.)
#[tokio::test]
async fn hsts_is_sent_for_the_https_name_only() {
    let app = spawn_app_with(AppOptions { https_name: true, ..Default::default() }).await;
    let port = app.port();
    let name = app.config.apps[0].https_name.clone().unwrap().to_string();
    let ca = app.data_dir.join("ca-certificate.pem");
    // curl runs async: the auth server answering nginx's check runs on this test's runtime.
    let headers = async |url: &str| {
        let output = tokio::process::Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-D", "-", "--resolve", &format!("{name}:{port}:127.0.0.1"), "--cacert"])
            .arg(&ca)
            .arg(url)
            .output()
            .await
            .expect("curl runs");
        assert!(output.status.success(), "{url}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).to_lowercase()
    };
    let hsts = "strict-transport-security: max-age=604800";
    for path in ["/notebooks/x", "/_simpleotp/login?next=%2F"] {
        let answer = headers(&format!("https://{name}:{port}{path}")).await;
        assert!(answer.contains(hsts), "{path}: {answer}");
    }
    let by_address = headers(&format!("https://127.0.0.1:{port}/notebooks/x")).await;
    assert!(by_address.starts_with("http/1.1 308") && !by_address.contains("strict-transport-security"), "{by_address}");
    // `localhost` (which this app's certificate does not cover: -k) gets the redirect, no HSTS.
    let output = tokio::process::Command::new("curl")
        .args(["-sSk", "-o", "/dev/null", "-D", "-", &format!("https://localhost:{port}/notebooks/x")])
        .output()
        .await
        .unwrap();
    let by_localhost = String::from_utf8_lossy(&output.stdout).to_lowercase();
    assert!(by_localhost.starts_with("http/1.1 308") && !by_localhost.contains("strict-transport-security"), "{by_localhost}");
    let plain = headers(&format!("http://127.0.0.1:{port}/notebooks/x")).await;
    assert!(plain.starts_with("http/1.1 301") && !plain.contains("strict-transport-security"), "{plain}");
    assert!(plain.contains(&format!("location: https://{name}:{port}/notebooks/x")), "{plain}");
}

/// One sign-in per device, through the real nginx: a browser signed in to one app is offered
/// "Continue" on another app's login page; one POST (with the page's value, from the same
/// origin) gives it a session of its own, bound to the second app. Without the value, from
/// another origin, after signing out of the first app, or while the address is locked out,
/// nothing is given.
#[tokio::test]
async fn a_device_signed_in_to_one_app_continues_to_another_with_one_click() {
    let app = spawn_app().await;
    let (second_port, _config) = app.add_app("Grafana").await;
    let second = format!("http://127.0.0.1:{second_port}");
    let route = |name: &str| format!("{second}{}", app.config.route_prefix.route(name));

    // A browser with no session anywhere gets the code field only.
    let fresh = client();
    let page = fresh.get(route("login")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("name=\"continue\""), "{page}");

    let browser = client();
    assert_eq!(app.login(&browser, "/").await.status(), 303);
    let page = browser.get(format!("{}?next=/dashboards", route("login"))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("You are signed in to <strong>Demo</strong> on this device."), "{page}");
    let value = form_field(&page, "continue").expect("the Continue form");

    // Refused: no value, a wrong one, another origin. Nothing is created.
    for (origin, value) in
        [(second.as_str(), ""), (second.as_str(), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), ("http://evil.example", value.as_str())]
    {
        let r = browser
            .post(route("continue"))
            .header("origin", origin)
            .form(&[("continue", value), ("next", "/dashboards")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{origin} {value}");
    }
    assert_eq!(app.handle().gateway().sessions().len(), 1);

    // One click: a session of its own, for the second app only, and back to where it was going.
    let r = browser
        .post(route("continue"))
        .header("origin", &second)
        .form(&[("continue", value.as_str()), ("next", "/dashboards")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/dashboards");
    assert!(r.headers()["set-cookie"].to_str().unwrap().starts_with(&format!("{}=", session_cookie_name(second_port, false))));
    assert_eq!(browser.get(format!("{second}/")).send().await.unwrap().status(), 200);
    let sessions = app.handle().gateway().sessions();
    let mut ports: Vec<u16> = sessions.iter().map(|s| s.app_port).collect();
    ports.sort();
    let mut expected = vec![app.port(), second_port];
    expected.sort();
    assert_eq!(ports, expected, "two sessions, each bound to its app");
    // Signed in there now: its login page goes straight on.
    assert_eq!(browser.get(route("login")).send().await.unwrap().status(), 303);

    // Signed out of the first app, a copy of the value continues nothing.
    let other = client();
    app.login(&other, "/").await;
    let page = other.get(route("login")).send().await.unwrap().text().await.unwrap();
    let stale = form_field(&page, "continue").unwrap();
    let confirm = other.get(app.route("logout")).send().await.unwrap().text().await.unwrap();
    let csrf = form_field(&confirm, "csrf").unwrap();
    other.post(app.route("logout")).header("origin", &app.base).form(&[("csrf", &csrf)]).send().await.unwrap();
    let r =
        other.post(route("continue")).header("origin", &second).form(&[("continue", stale.as_str()), ("next", "/")]).send().await.unwrap();
    assert_ne!(r.status(), 303, "the signed-out session's value was refused as not from the page");
    assert_eq!(app.handle().gateway().sessions().len(), 2);
}

/// Continuing is a sign-in like any other for the limiter: an address locked out by wrong codes
/// is not offered it and does not get it.
#[tokio::test]
async fn a_locked_out_address_cannot_continue() {
    let app = spawn_app().await;
    let (second_port, _config) = app.add_app("Grafana").await;
    let second = format!("http://127.0.0.1:{second_port}");
    let route = |name: &str| format!("{second}{}", app.config.route_prefix.route(name));
    let browser = client();
    app.login(&browser, "/").await;
    let value = form_field(&browser.get(route("login")).send().await.unwrap().text().await.unwrap(), "continue").unwrap();
    for _ in 0..5 {
        app.post_code(&client(), &app.wrong_code(), "/").await;
    }
    let page = browser.get(route("login")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Too many wrong codes") && !page.contains("name=\"continue\""), "{page}");
    let r = browser
        .post(route("continue"))
        .header("origin", &second)
        .form(&[("continue", value.as_str()), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"].to_str().unwrap().contains("/login"), "sent to the login page, which shows the lockout");
    assert_eq!(app.handle().gateway().sessions().len(), 1);
}
