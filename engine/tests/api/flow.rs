//! The HTTP contract, through the real nginx in front of the demo app.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use simpleotp_engine::control;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

use crate::helpers::*;

#[tokio::test]
async fn unauthenticated_request_goes_to_login_with_path_and_query_intact() {
    let app = spawn_app().await;
    let response = client().get(app.url("/lab/tree/x.ipynb?token=&a=b%20c")).send().await.unwrap();
    assert_eq!(response.status(), 302);
    let location = location(&response);
    assert!(location.ends_with("/_simpleotp/login?next=%2Flab%2Ftree%2Fx.ipynb%3Ftoken%3D%26a%3Db%2520c"), "{location}");
    // Nothing from the app leaked into the answer: nginx answers the redirect itself, with its
    // few-line "302 Found" page.
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = response.text().await.unwrap();
    assert!(body.len() < 300 && body.contains("302 Found") && !body.contains("demo"), "{body}");
}

#[tokio::test]
async fn check_is_401_or_200_with_an_empty_body_and_never_a_redirect() {
    let app = spawn_app().await;
    let cookie_name = app.cookie_name();
    let check = format!("http://{}{}", app.auth_addr(), app.config.route_prefix.route("check"));
    let response = client().get(&check).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.text().await.unwrap().is_empty());

    let browser = client();
    app.login(&browser, "/").await;
    let cookie = browser.session_token(&app.base);
    let as_nginx = |proof: &str| {
        client()
            .get(&check)
            .header("cookie", format!("theme=dark; {cookie_name}={cookie}; _xsrf=1"))
            .header("x-simpleotp-app", app.port().to_string())
            .header("x-simpleotp-proof", proof)
    };
    let response = as_nginx(&app.nginx_proof()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    // nginx hands the app every cookie but the session's.
    assert_eq!(response.headers()["x-simpleotp-app-cookies"], "theme=dark; _xsrf=1");
    assert!(response.text().await.unwrap().is_empty());

    // Any other local process that calls the auth server directly is not believed: without
    // nginx's proof (or with a wrong one) there is no app, so no session is valid.
    for proof in ["", "wrong", &app.nginx_proof()[1..]] {
        let response = as_nginx(proof).send().await.unwrap();
        assert_eq!(response.status(), 401, "proof {proof:?}");
    }

    // And nginx does not let a browser call it.
    let response = client().get(app.route("check")).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn full_login_and_logout_flow() {
    let app = spawn_app().await;
    let cookie_name = app.cookie_name();
    let browser = client();

    // The login page: one numeric field, strict CSP, no caching.
    let page = browser.get(app.route("login") + "?next=%2Fnotebooks%3Fa%3D1").send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    for needle in [r#"inputmode="numeric""#, r#"autocomplete="one-time-code""#, "autofocus"] {
        assert!(html.contains(needle), "login page lacks {needle}");
    }
    assert_eq!(form_field(&html, "next").as_deref(), Some("/notebooks?a=1"));

    // Sign in: 303 back to where the user wanted to go, with a proper cookie.
    let response = app.login(&browser, "/notebooks?a=1").await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/notebooks?a=1");
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
    for part in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=604800"] {
        assert!(set_cookie.contains(part), "cookie lacks {part}: {set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain http://localhost must not get a Secure cookie (login loop)");

    let page = browser.get(app.url("/notebooks?a=1")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<code id="path">/notebooks</code>"#) && html.contains(r#"<code id="query">a=1</code>"#));
    assert_eq!(app.handle().gateway().sessions().len(), 1);
    let session = &app.handle().gateway().sessions()[0];
    assert_eq!(session.client_ip, Some("127.0.0.1".parse().unwrap()));
    assert!(session.user_agent.is_empty() || !session.user_agent.contains(&cookie_name));

    // Logout: GET only shows a confirmation, POST needs the CSRF value.
    let confirm = browser.get(app.route("logout")).send().await.unwrap();
    assert_eq!(confirm.status(), 200);
    let csrf = form_field(&confirm.text().await.unwrap(), "csrf").expect("logout form has a CSRF field");
    assert_eq!(browser.get(app.url("/")).send().await.unwrap().status(), 200, "GET logout must not sign out");

    let forged = browser.post(app.route("logout")).header("origin", &app.base).form(&[("csrf", "x")]).send().await.unwrap();
    assert_eq!(forged.status(), 403);
    let cross_site =
        browser.post(app.route("logout")).header("origin", "http://evil.example").form(&[("csrf", &csrf)]).send().await.unwrap();
    assert_eq!(cross_site.status(), 403);
    assert_eq!(app.handle().gateway().sessions().len(), 1);

    let out = browser.post(app.route("logout")).header("origin", &app.base).form(&[("csrf", &csrf)]).send().await.unwrap();
    assert_eq!(out.status(), 303);
    assert!(location(&out).contains("m=signed-out"));
    assert!(app.handle().gateway().sessions().is_empty());
    assert_eq!(browser.get(app.url("/notebooks")).send().await.unwrap().status(), 302);
}

#[tokio::test]
async fn wrong_code_is_refused_no_faster_than_the_floor() {
    let app = spawn_app().await;
    let started = Instant::now();
    let response = app.post_code(&client(), &app.wrong_code(), "/").await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 401);
    assert!(elapsed >= Duration::from_millis(250), "a failure was answered after {elapsed:?}");
    assert!(response.headers().get("set-cookie").is_none());
    let page = response.text().await.unwrap();
    assert!(page.contains("That code didn"));
    // What to do next: which entry in the authenticator app, and how many tries are left.
    assert!(page.contains("under <strong class=\"entry\">SimpleOTP</strong> ("), "{page}");
    assert!(page.contains("4 more tries before sign-in locks for 1 minute"), "{page}");
    let page = app.post_code(&client(), &app.wrong_code(), "/").await.text().await.unwrap();
    assert!(page.contains("3 more tries before sign-in locks"), "{page}");
}

#[tokio::test]
async fn replayed_code_is_refused_also_after_a_restart() {
    let mut app = spawn_app().await;
    let code = app.fresh_code();
    assert_eq!(app.post_code(&client(), &code, "/").await.status(), 303);
    let again = app.post_code(&client(), &code, "/").await;
    assert_eq!(again.status(), 401);
    assert!(again.text().await.unwrap().contains("already used"));

    app.restart().await;
    assert_eq!(app.post_code(&client(), &code, "/").await.status(), 401, "the replay counter must survive a restart");
}

#[tokio::test]
async fn lockout_is_reached_reported_and_lifted_by_the_owner() {
    let app = spawn_app().await;
    let browser = client();
    for _ in 0..5 {
        assert_eq!(app.post_code(&browser, &app.wrong_code(), "/").await.status(), 401);
    }
    // The sixth attempt is refused without looking at the code, even a right one.
    let locked = app.post_code(&browser, &app.fresh_code(), "/").await;
    assert_eq!(locked.status(), 429);
    let retry_after: u64 = locked.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(locked.text().await.unwrap().contains("Too many wrong codes"));
    // The login page itself says so too.
    let page = browser.get(app.route("login")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Try again in"));

    control::unlock(&app.data_dir).await.expect("unlock through the control file");
    let response = app.login(&browser, "/").await;
    assert_eq!(response.status(), 303, "after unlock a right code gets in");
}

#[tokio::test]
async fn session_survives_an_engine_restart_and_state_file_is_private() {
    let mut app = spawn_app().await;
    let browser = client();
    assert_eq!(app.login(&browser, "/").await.status(), 303);
    let token = browser.session_token(&app.base);
    app.restart().await;
    assert_eq!(browser.get(app.url("/")).send().await.unwrap().status(), 200, "signed in after a restart");

    let state_path = app.data_dir.join("state.json");
    let state = std::fs::read_to_string(&state_path).unwrap();
    assert!(!state.contains(&token), "the state file must hold token hashes only");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&state_path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

#[tokio::test]
async fn revoking_a_session_sends_the_browser_back_to_login() {
    let app = spawn_app().await;
    let browser = client();
    app.login(&browser, "/").await;
    assert_eq!(browser.get(app.url("/x")).send().await.unwrap().status(), 200);
    let id = app.handle().gateway().sessions()[0].id.clone();
    assert!(app.handle().gateway().revoke(&id).await);
    let response = browser.get(app.url("/x")).send().await.unwrap();
    assert_eq!(response.status(), 302);
    assert!(location(&response).contains("m=expired"), "the login page tells why");
}

#[tokio::test]
async fn open_redirects_fall_back_to_root() {
    let app = spawn_app().await;
    let browser = client();
    let response = app.login(&browser, "//evil.example/").await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/");
    for next in ["/\\evil.example", "https://evil.example", "/%2F%2Fevil.example", "/%0d%0aSet-Cookie:x=y"] {
        let page = browser.get(app.route("login")).query(&[("next", next)]).send().await.unwrap();
        // Already signed in: the login page forwards at once, to a safe place.
        assert_eq!(page.status(), 303, "{next}");
        assert_eq!(location(&page), "/", "{next}");
    }
}

#[tokio::test]
async fn health_reports_ok_without_secrets() {
    let app = spawn_app().await;
    let response = client().get(app.route("health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(body.contains("\"status\":\"ok\""), "{body}");
    assert!(!body.contains(&app.secret_base32()));
}

#[tokio::test]
async fn websocket_passes_through_the_gateway_once_signed_in() {
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = upstream.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_text() && ws.send(message).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let app = spawn_app_with(AppOptions { upstream: Some(upstream_addr), ..Default::default() }).await;
    let cookie_name = app.cookie_name();
    let ws_url = format!("ws://127.0.0.1:{}/api/kernels/1/channels", app.config.apps[0].listen.socket_addr().port());

    // Without a session the handshake is answered by the redirect to the login page.
    let refused = tokio_tungstenite::connect_async(ws_url.as_str()).await;
    assert!(refused.is_err());

    let browser = client();
    app.login(&browser, "/").await;
    let token = browser.session_token(&app.base);
    let mut request = ws_url.into_client_request().unwrap();
    request.headers_mut().insert("cookie", format!("{cookie_name}={token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("the WebSocket opens through nginx");
    ws.send(Message::text("ping through the gateway")).await.unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(echo.into_text().unwrap().as_str(), "ping through the gateway");
}

#[cfg(unix)] // kills nginx with SIGKILL
#[tokio::test]
async fn killed_nginx_is_back_within_seconds() {
    let app = spawn_app().await;
    let nginx = app.handle().nginx().unwrap();
    let pid = nginx.pid().unwrap();
    // SAFETY: kill(2) on a pid we own; no memory is involved.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_until("nginx to be restarted", Duration::from_secs(10), async || {
        nginx.pid().is_some_and(|p| p != pid) && client().get(app.url("/")).send().await.is_ok_and(|r| r.status() == 302)
    })
    .await;
}

#[tokio::test]
async fn config_change_applies_with_a_reload() {
    let app = spawn_app().await;
    let nginx = app.handle().nginx().unwrap();
    let pid = nginx.pid().unwrap();
    let (_, config) = app.add_app("Second").await;
    let second_url = config.apps[1].protected_url();
    assert_eq!(nginx.pid(), Some(pid), "a reload keeps the master");
    assert_eq!(client().get(&second_url).send().await.unwrap().status(), 302);

    // A bad change (the port of the first app taken by... the first app's twin) keeps serving.
    let mut bad = config.clone();
    bad.apps[1].listen = bad.apps[0].listen;
    let err = app.handle().apply_config(&bad).await.unwrap_err().to_string();
    assert!(err.contains("each app needs its own port"), "{err}");
    assert_eq!(client().get(&second_url).send().await.unwrap().status(), 302);
}
