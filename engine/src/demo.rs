//! The page `simpleotp demo` protects: a tiny web app that shows which request reached it, so
//! a person trying SimpleOTP sees that the path and query they asked for survived the login.
//! The integration tests use it as their upstream for the same reason.

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::html::html_escape;
use crate::protocol::routes;

/// Serves the demo app on `listener` until `shutdown` is cancelled.
pub async fn serve_demo_app(listener: TcpListener, route_prefix: crate::config::RoutePrefix, shutdown: CancellationToken) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(10));
    // Like the auth server: a header line with control bytes is dropped, not a failed request.
    http.ignore_invalid_headers(true);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let logout = route_prefix.route(routes::LOGOUT);
        let service = hyper::service::service_fn(move |req| {
            let page = demo_page(&req, &logout);
            async move { Ok::<_, Infallible>(page) }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

fn demo_page<B>(req: &Request<B>, logout: &str) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("");
    let body = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>SimpleOTP demo app</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}}code{{background:#eee;padding:.1em .3em;border-radius:3px}}@media (prefers-color-scheme:dark){{body{{background:#111;color:#eee}}code{{background:#333}}}}</style>
</head><body>
<h1 id="demo-title">You are in.</h1>
<p>This page stands for your app. It was reached through SimpleOTP after a valid code.</p>
<p>Method <code id="method">{method}</code>, path <code id="path">{path}</code>, query <code id="query">{query}</code>.</p>
<p><a id="logout" href="{logout}">Sign out</a></p>
</body></html>
"#,
        method = html_escape(req.method().as_str()),
        path = html_escape(path),
        query = html_escape(query),
        logout = html_escape(logout),
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
