//! The benchmark's stand-ins, in one small binary so each runs in its own process (and its CPU
//! is not counted as the engine's):
//!
//! * `bench-upstream static`: the "app": answers every request with the same 1 KiB page.
//! * `bench-upstream noop-auth`: the floor for `auth_request`: answers 200 with an empty body
//!   at once, on keep-alive connections, like the auth server would for a valid session.
//!
//! Each prints `LISTENING <addr>` on stdout once it accepts connections.

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let body: &'static [u8] = match mode.as_str() {
        "static" => Box::leak(static_page().into_boxed_slice()),
        "noop-auth" => b"",
        _ => {
            eprintln!("usage: bench-upstream static|noop-auth");
            std::process::exit(2);
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    println!("LISTENING {}", listener.local_addr().unwrap());
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |_req: Request<hyper::body::Incoming>| async move {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(body))))
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn static_page() -> Vec<u8> {
    let mut page = b"<!doctype html><title>bench</title><p>".to_vec();
    page.resize(1024 - 4, b'x');
    page.extend_from_slice(b"</p>");
    page
}
