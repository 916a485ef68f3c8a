//! Generating nginx configuration text.
//!
//! Everything here is a pure function of its inputs (plus, for the `user` line, who we run as),
//! so the exact text can be unit-tested and `nginx -t` can check it before it ever replaces a
//! running configuration.
//!
//! There is exactly one function that renders the `upstream`, `map` and `server` blocks
//! ([`render_http_blocks`]); the managed nginx.conf and the copy-paste snippet for people who
//! run their own nginx both use it, so the two can never disagree about how an app is guarded.
//! The one difference: the managed nginx serves network-facing apps over HTTPS with the
//! certificate SimpleOTP's CA issues for this machine ([`crate::lan`]); the snippet cannot know
//! that nginx's certificates and says so.

use super::layout::{names, TEMP_KINDS};
use crate::config::{AppConfig, HostName, RoutePrefix};
use crate::protocol::{
    routes, NginxProof, APP_COOKIES_HEADER, APP_HEADER, FORWARDED_PROTO_HEADER, LOGIN_LOCATION_HEADER, ORIGINAL_METHOD_HEADER,
    ORIGINAL_UPGRADE_HEADER, ORIGINAL_URI_HEADER, PROOF_HEADER, REAL_IP_HEADER,
};
use std::fmt::Write as _;
use std::net::SocketAddr;

/// Name of the nginx `upstream` that points at the auth server.
const AUTH_UPSTREAM: &str = "simpleotp_auth";
/// Name of the variable holding the `Connection` header for WebSocket upgrades.
const UPGRADE_VAR: &str = "$simpleotp_connection_upgrade";
/// Name of the variable holding the cookies the app may see (all but the session cookies).
const APP_COOKIES_VAR: &str = "$simpleotp_app_cookies";
/// Name of the variable holding where a browser without a session is sent (from `check`).
const LOGIN_VAR: &str = "$simpleotp_login";
/// Host names that are IP literals (`127.0.0.1`, `[::1]`). A DNS-rebinding page needs a *name*
/// that it controls to point at this machine; an address typed as such is no such name, so any
/// address literal is allowed (the machine's addresses change with DHCP; the set of literals
/// that can reach a listen socket is exactly the machine's own addresses anyway).
const IP_LITERAL_NAMES: [&str; 2] = ["~^[0-9.]+$", "~^[[][0-9a-f:.]+[]]$"];
/// Name of the variable that says whether a plain-HTTP request on an HTTPS port may be answered
/// (the CA page: a phone must fetch the CA before it can trust the port's certificate).
const PLAIN_ALLOWED_VAR: &str = "$simpleotp_plain_http_allowed";
/// TLS settings for network-facing ports: TLS 1.2 and 1.3 only, with forward-secret AEAD
/// ciphers (Mozilla's "intermediate" list; 1.3's suites are fixed by OpenSSL), the client's
/// preference among them, and no session tickets (their key would live for the whole run and
/// undo forward secrecy; the session cache resumes without one).
const TLS_SETTINGS: &str = "ssl_protocols TLSv1.2 TLSv1.3;
ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
ssl_prefer_server_ciphers off;
ssl_session_tickets off;
ssl_session_cache shared:simpleotp_tls:1m;
ssl_session_timeout 1h;
";
/// Name of the variable holding the `Strict-Transport-Security` value of a response: set only
/// for HTTPS requests to a host *name* other than `localhost` (see [`HSTS_VALUE`]).
const HSTS_VAR: &str = "$simpleotp_hsts";
/// HSTS for the network-facing apps' names (`<hostname>.local`, an app's `hosts`), so a typed
/// `box.local:8081` cannot be stripped to plain HTTP after the first visit.
///
/// * Never for IP literals (browsers ignore it there anyway) and never for `localhost`: HSTS
///   covers every port of a host, and a `localhost` entry would break the user's other plain-HTTP
///   dev servers.
/// * One week: every visit renews it, so someone who uses the app keeps the protection, while a
///   user who stops facing the network (or runs another plain-HTTP service on `box.local`) is
///   locked out of plain HTTP on that name for at most a week, not a year.
/// * No `includeSubDomains` (the names are not ours to speak for below `box.local`) and no
///   `preload` (`.local` names cannot be preloaded).
const HSTS_VALUE: &str = "max-age=604800";
/// Name of the variable holding the `Upgrade` header forwarded to apps: `websocket` or nothing.
const UPGRADE_PROTOCOL_VAR: &str = "$simpleotp_upgrade";
/// How long a replaced nginx worker may keep serving the connections it still holds. Short on
/// purpose: when a session ends, the engine replaces the workers (`Nginx::recycle_workers`)
/// and this is what actually closes the WebSockets that session opened. See `render_config`.
const WORKER_SHUTDOWN_TIMEOUT_SECS: u64 = 3;

/// Quotes a value for nginx.conf. nginx un-escapes `\"` and `\\` inside double quotes, so
/// every path or user-derived value goes through here and can never end a directive early.
pub(crate) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The whole nginx.conf for the managed nginx.
///
/// * `daemon off` + `master_process on`: nginx stays our direct child (so we notice when it
///   dies and it can be tied to our lifetime) but still has a master that can reload gracefully.
/// * pid, error log, lock and temp files all live in the prefix; access logging is off.
/// * When we run as root, workers run as an unprivileged account (see
///   `platform::WorkerAccount`) that may only write its temp directories.
/// * `auth` is the auth server's address; nginx reaches it through a keepalive `upstream`.
/// * `proof` goes with every request to the auth server (see [`crate::protocol`]); this file is
///   in the 0700 prefix, so only we (and root) can read it.
pub fn render_config(auth: SocketAddr, proof: &NginxProof, prefix: &RoutePrefix, apps: &[AppConfig]) -> String {
    let mut out = String::new();
    out.push_str("# Generated by SimpleOTP. Do not edit: it is rewritten whenever the configuration changes.\n");
    out.push_str("daemon off;\nmaster_process on;\nworker_processes 1;\n");
    if let Some((user, group)) = super::platform::worker_user() {
        let _ = writeln!(out, "user {} {};", quote(&user), quote(&group));
    }
    // Names relative to the prefix, which is also nginx's working directory (see `layout`).
    let _ = writeln!(out, "pid {};", quote(names::PID));
    let _ = writeln!(out, "lock_file {};", quote(names::LOCK));
    let _ = writeln!(out, "error_log {} warn;", quote(names::ERROR_LOG));
    // Each proxied request holds two connections (browser and upstream) plus the auth check's
    // keep-alive ones; 1024 ran out under a burst of a thousand concurrent clients.
    out.push_str("worker_rlimit_nofile 16384;\n");
    // WebSockets end when their session ends. nginx asks the auth server only when a request
    // starts; an upgraded connection (a notebook kernel, a terminal) is one request that never
    // ends, so signing out would not close it. When sessions end, the engine makes nginx replace
    // its workers (the same as a reload); the old workers keep their open connections for at
    // most this long and then close them. A browser that reconnects is checked again, so only
    // holders of a live session get back in. The cost: every upgraded connection and long
    // download is cut, also those of sessions that are still valid (their apps reconnect), and
    // so does any configuration reload. Sign-outs are rare and reconnecting is what WebSocket
    // apps do anyway. The alternative, proxying upgrades through the engine to know which
    // session each belongs to, would put every WebSocket byte through a second proxy.
    let _ = writeln!(out, "worker_shutdown_timeout {WORKER_SHUTDOWN_TIMEOUT_SECS}s;");
    out.push_str("\nevents {\n    worker_connections 8192;\n}\n\nhttp {\n");
    out.push_str("    access_log off;\n    server_tokens off;\n    default_type application/octet-stream;\n");
    for (directive, dir) in TEMP_KINDS {
        let _ = writeln!(out, "    {directive} {};", quote(&format!("{}/{dir}", names::TEMP)));
    }
    // As few temp files as possible (the workers' account may write only the temp directories):
    // login forms (16k at most) stay in memory, app requests and responses stream unbuffered,
    // and the auth server's responses are never spooled to disk. What remains is the body of a
    // request that is not signed in, read before the redirect to the login page.
    out.push_str("    client_body_buffer_size 16k;\n    proxy_max_temp_file_size 0;\n");
    out.push('\n');
    let files =
        Files { tls: Some(TlsFiles { chain: names::TLS_CHAIN, key: names::TLS_KEY }), upstream_ca: Some(names::UPSTREAM_CA.into()) };
    render_http_blocks(&mut out, &auth.to_string(), proof, prefix, apps, &files, "    ");
    out.push_str("}\n");
    out
}

/// The files a configuration names besides itself.
struct Files {
    /// The certificate chain and key nginx presents on network-facing ports; none in the snippet
    /// (we do not manage that nginx's certificates).
    tls: Option<TlsFiles>,
    /// The roots an `https` upstream's certificate is checked against; `None` when none is known.
    upstream_ca: Option<String>,
}

/// The certificate chain and key nginx presents on network-facing ports (names in the prefix).
struct TlsFiles {
    chain: &'static str,
    key: &'static str,
}

/// The `upstream`, `map` and `server` blocks alone, for people who run their own nginx and want
/// to paste SimpleOTP's protection into its `http {}` block. `auth` is the auth server's
/// `host:port`: the `auth_listen` address `simpleotp serve --external-nginx` uses; `proof` is the
/// one kept in its data directory.
pub fn render_snippet(prefix: &RoutePrefix, auth: &str, proof: &NginxProof, apps: &[AppConfig]) -> String {
    let mut out = String::new();
    out.push_str(
        "# SimpleOTP: paste this inside the http { } block of your own nginx configuration\n\
         # (nginx must be built with the auth_request module; most packages are).\n\
         # The auth server address below is `auth_listen` from the config, where\n\
         # `simpleotp serve --external-nginx` listens. Each server block protects one app.\n\
         # It holds a secret (X-SimpleOTP-Proof): keep the file readable by root only.\n\
         # SimpleOTP cannot reload this nginx: WebSockets stay open after a sign-out until you\n\
         # reload it yourself, with `worker_shutdown_timeout 3s;` in its main context.\n\n",
    );
    if apps.iter().any(|app| app.listen.is_network_facing()) {
        out.push_str(
            "# Apps that listen beyond loopback are served over plain HTTP here: add `ssl` to their\n\
             # network `listen` lines with your own certificate (the managed nginx does this with\n\
             # SimpleOTP's CA); their 127.0.0.1/[::1] servers stay plain HTTP for this computer.\n\n",
        );
    }
    // Another nginx, another working directory: the system's bundle by its absolute path.
    let upstream_ca = super::platform::system_ca_bundle().map(|p| p.to_string_lossy().into_owned());
    render_http_blocks(&mut out, auth, proof, prefix, apps, &Files { tls: None, upstream_ca }, "");
    out
}

/// The single renderer of everything inside `http {}` that SimpleOTP needs: the auth
/// `upstream`, the WebSocket `map`, and one `server` per app. `indent` is prepended to every
/// line so the blocks read well both inside the managed config and as a snippet.
///
/// With `tls`, apps that listen beyond loopback are served over HTTPS with those files; without
/// (the snippet: we do not manage that nginx's certificates) every app is plain HTTP.
fn render_http_blocks(
    out: &mut String,
    auth: &str,
    proof: &NginxProof,
    prefix: &RoutePrefix,
    apps: &[AppConfig],
    files: &Files,
    indent: &str,
) {
    let mut text = String::new();
    // keepalive: every protected request causes an auth subrequest; reusing connections keeps
    // that cheap. It needs HTTP/1.1 and an empty Connection header in each proxying location.
    let _ = write!(text, "upstream {AUTH_UPSTREAM} {{\n    server {};\n    keepalive 32;\n}}\n\n", quote(auth));
    // WebSockets, and only WebSockets: the client's `Upgrade: websocket` (any case) is passed
    // on with `Connection: upgrade`; any other upgrade (h2c, which would let a client talk
    // HTTP/2 straight to the app past nginx's request handling) is dropped: neither header is
    // sent, and without any Upgrade no Connection header is sent at all.
    let _ = write!(text, "map $http_upgrade {UPGRADE_PROTOCOL_VAR} {{\n    default '';\n    '~*^websocket$' websocket;\n}}\n");
    let _ = write!(text, "map $http_upgrade {UPGRADE_VAR} {{\n    default '';\n    '~*^websocket$' upgrade;\n}}\n");
    let machine_names = super::platform::machine_names();
    let any_tls = files.tls.is_some() && apps.iter().any(AppConfig::served_over_https);
    if any_tls {
        // Exact paths (a map compares strings, so the prefix needs no regex escaping).
        let _ = write!(text, "map $uri {PLAIN_ALLOWED_VAR} {{\n    default 0;\n");
        // The gateway routes a plain-HTTP request to a network-facing (HTTPS) port may still
        // reach: the CA page and its downloads. Everything else is redirected to https://.
        for route in routes::CA_ROUTES {
            let _ = writeln!(text, "    {} 1;", quote(&prefix.route(route)));
        }
        text.push_str("}\n");
        // Keyed on `$https` too: a plain-HTTP request to an HTTPS port (the CA page) must not
        // get the header (RFC 6797 says to ignore it there; better not to send it at all).
        // Regexes are tried in order: IP literals first, then any other name but `localhost`.
        let _ = write!(
            text,
            "map \"$https:$host\" {HSTS_VAR} {{\n    default '';\n    'on:localhost' '';\n    '~^on:[0-9.]+$' '';\n    \
             '~^on:[[]' '';\n    '~^on:.' '{HSTS_VALUE}';\n}}\n"
        );
    }
    for app in apps {
        // An app on all interfaces is also served on loopback as if it were on this computer
        // only (`AppConfig::on_this_computer`). nginx binds the one wildcard socket and picks
        // the server, and whether to speak TLS, by the address a connection arrived at, so the
        // loopback side stays plain HTTP (or HTTPS at the app's own name) on the same port.
        let sides = [app.on_this_computer().filter(|local| local.listen != app.listen), Some(app.clone())];
        for side in sides.iter().flatten() {
            text.push('\n');
            let tls = files.tls.as_ref().filter(|_| side.served_over_https());
            render_server(&mut text, proof, prefix, side, &machine_names, tls, files.upstream_ca.as_deref());
        }
    }
    for line in text.lines() {
        if line.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "{indent}{line}");
        }
    }
}

/// Headers every request to the auth server carries, so it sees the browser's host (cookies,
/// redirects), address (rate limiting), scheme (Secure cookies) and which app it is about, with
/// the proof that makes the server believe them. `proxy_set_header` replaces a client's own copy
/// of each, so none can be forged through nginx.
fn auth_headers(out: &mut String, proof: &NginxProof, app: &AppConfig, original_uri: &str) {
    out.push_str("        proxy_set_header Host $http_host;\n");
    let _ = writeln!(out, "        proxy_set_header {REAL_IP_HEADER} $remote_addr;");
    let _ = writeln!(out, "        proxy_set_header {FORWARDED_PROTO_HEADER} $scheme;");
    out.push_str("        proxy_set_header X-Forwarded-Host $http_host;\n");
    let _ = writeln!(out, "        proxy_set_header {ORIGINAL_URI_HEADER} {original_uri};");
    let _ = writeln!(out, "        proxy_set_header {APP_HEADER} {};", app.listen.socket_addr().port());
    let _ = writeln!(out, "        proxy_set_header {PROOF_HEADER} {};", quote(proof.expose()));
}

/// HTTP/1.1 with an empty Connection header: required for the keepalive upstream to reuse
/// connections.
fn auth_keepalive(out: &mut String) {
    let _ = writeln!(out, "        proxy_pass http://{AUTH_UPSTREAM};");
    out.push_str("        proxy_http_version 1.1;\n");
    out.push_str("        proxy_set_header Connection \"\";\n");
}

/// The host names an app answers for: `localhost`, this machine's names, the app's own `hosts`,
/// its own name on this computer ([`AppConfig::own_host_name`]) and any IP literal (see [`IP_LITERAL_NAMES`]).
fn allowed_host_names(app: &AppConfig, machine_names: &[HostName]) -> Vec<String> {
    let mut names = vec!["localhost".to_string()];
    let own = app.own_host_name();
    for name in machine_names.iter().chain(&app.hosts).chain(&own) {
        if !names.iter().any(|n| n == name.as_str()) {
            names.push(name.as_str().to_string());
        }
    }
    names.extend(IP_LITERAL_NAMES.iter().map(|r| quote(r)));
    names
}

/// The TLS lines of a network-facing server block: its certificate and [`TLS_SETTINGS`].
fn tls_directives(out: &mut String, tls: &TlsFiles) {
    let _ = writeln!(out, "    ssl_certificate {};", quote(tls.chain));
    let _ = writeln!(out, "    ssl_certificate_key {};", quote(tls.key));
    for line in TLS_SETTINGS.lines() {
        let _ = writeln!(out, "    {line}");
    }
}

fn render_server(
    out: &mut String,
    proof: &NginxProof,
    prefix: &RoutePrefix,
    app: &AppConfig,
    machine_names: &[HostName],
    tls: Option<&TlsFiles>,
    upstream_ca: Option<&str>,
) {
    let p = prefix.as_str();
    let check = prefix.route(routes::CHECK);
    let up = &app.upstream;
    // SocketAddr's Display gives `[::1]:8081` for IPv6, which is nginx's syntax too.
    let listen = app.listen.socket_addr();
    // `AppName` only allows letters, digits, space, '-', '_' and '.', so it is safe in a comment.
    let _ = writeln!(out, "# App {:?}: {} -> {}", app.name.as_str(), app.listen, up);
    // DNS rebinding: a page on evil.example can point its own name at 127.0.0.1 and then talk to
    // this port as a "same-origin" site. Such requests carry `Host: evil.example`; they land in
    // this default server and get 421 from nginx itself, before anything reaches the auth server
    // (so they cannot spend the owner's login attempts either).
    //
    // Network-facing ports speak TLS only (both servers: the default one needs the certificate
    // for the handshake that comes before any Host header). A plain-HTTP request to such a port
    // is error 497 in nginx; the app's server turns it into a redirect to https://, except for
    // the CA page (see `@simpleotp_plain_http` below). The default server leaves it at nginx's
    // own 400.
    let ssl = if tls.is_some() { " ssl" } else { "" };
    out.push_str("server {\n");
    let _ = writeln!(out, "    listen {listen}{ssl} default_server;");
    out.push_str("    server_name \"\";\n");
    if let Some(tls) = tls {
        tls_directives(out, tls);
    }
    out.push_str("    default_type text/plain;\n");
    out.push_str("    return 421 \"This address does not serve that host name. Open the app by this computer's name or address.\\n\";\n");
    out.push_str("}\n");
    out.push_str("server {\n");
    let _ = writeln!(out, "    listen {listen}{ssl};");
    let _ = writeln!(out, "    server_name {};", allowed_host_names(app, machine_names).join(" "));
    if let Some(tls) = tls {
        tls_directives(out, tls);
        out.push_str("    error_page 497 = @simpleotp_plain_http;\n");
        // Every location that sets a header of its own repeats this (nginx inherits add_header
        // only into locations that set none).
        let _ = writeln!(out, "    add_header Strict-Transport-Security {HSTS_VAR} always;");
    }
    // An app served at its own name on this computer (`https_name`) is only ever used under
    // that name, so its Secure, `__Host-` cookie is bound to it: `localhost` or `127.0.0.1`
    // (which the certificate also covers, so the browser gets here without a warning) are sent
    // on to it before anything else happens (`if` with only a `return` inside is safe).
    let own_name = app.own_host_name().filter(|_| tls.is_some());
    if let Some(own) = &own_name {
        let _ = writeln!(
            out,
            "    if ($host != {}) {{\n        return 308 https://{own}:$server_port$request_uri;\n    }}",
            quote(own.as_str())
        );
    }
    out.push('\n');

    if tls.is_some() {
        // A plain-HTTP request on this HTTPS port. A phone must be able to fetch the CA before it
        // trusts this port's certificate, so the CA page and its downloads are answered over
        // plain HTTP (they hold nothing secret: the certificate is public, and the page shows
        // its fingerprint to compare with the tray's). Everything else, the login page
        // included, goes to https:// (`if` with only a `return` inside is safe in nginx).
        out.push_str("    location @simpleotp_plain_http {\n");
        let https_host = own_name.as_ref().map_or("$host".to_string(), |own| own.to_string());
        let _ = writeln!(
            out,
            "        if ({PLAIN_ALLOWED_VAR} = 0) {{\n            return 301 https://{https_host}:$server_port$request_uri;\n        }}"
        );
        auth_keepalive(out);
        auth_headers(out, proof, app, "\"\"");
        out.push_str("        proxy_pass_request_body off;\n");
        out.push_str("        proxy_set_header Content-Length \"\";\n");
        out.push_str("    }\n\n");
    }

    // The auth_request subrequest: no body (the auth server only looks at headers and cookies).
    // nginx checks the main request's Content-Length against *this* location's body limit, so
    // it must be unlimited here too, or every upload over 1 MB would fail the check with 413.
    let _ = writeln!(out, "    location = {check} {{");
    out.push_str("        internal;\n");
    auth_keepalive(out);
    out.push_str("        proxy_pass_request_body off;\n");
    out.push_str("        proxy_set_header Content-Length \"\";\n");
    out.push_str("        client_max_body_size 0;\n");
    // The answer carries the request's cookies back (without the session's), which must fit in
    // the header buffer: up to 4 x 8k of request headers (large_client_header_buffers).
    out.push_str("        proxy_buffer_size 64k;\n");
    out.push_str("        proxy_buffers 4 64k;\n");
    out.push_str("        proxy_busy_buffers_size 128k;\n");
    // In a subrequest, $request_uri and $request_method are still the main request's: what the
    // browser asked for, and how.
    auth_headers(out, proof, app, "$request_uri");
    let _ = writeln!(out, "        proxy_set_header {ORIGINAL_METHOD_HEADER} $request_method;");
    let _ = writeln!(out, "        proxy_set_header {ORIGINAL_UPGRADE_HEADER} $http_upgrade;");
    out.push_str("    }\n\n");

    // The control API is for local clients talking to the auth server directly; it must never
    // be reachable through a protected (possibly network-facing) port.
    let _ = writeln!(out, "    location ^~ {p}control/ {{\n        return 404;\n    }}\n");

    // Login, logout and health pages. Their forms are tiny, hence the small body limit.
    let _ = writeln!(out, "    location ^~ {p} {{");
    auth_keepalive(out);
    auth_headers(out, proof, app, "\"\"");
    out.push_str("        client_max_body_size 16k;\n");
    out.push_str("    }\n\n");

    // A failed check (401 from auth_request) lands here, and nginx itself redirects to the login
    // page `check` named (with the URL the browser asked for in `next`). Answering with
    // `return` makes nginx discard the request body as it arrives: a browser without a session
    // cannot make nginx buffer an upload of any size to disk (proxying the 401 on to the auth
    // server would). The location is relative, so it works whatever name the browser used.
    out.push_str("    location @simpleotp_unauthorized {\n");
    out.push_str("        absolute_redirect off;\n");
    out.push_str("        add_header Cache-Control \"no-store\" always;\n");
    if tls.is_some() {
        // An `add_header` here replaces the server's: HSTS must be repeated.
        let _ = writeln!(out, "        add_header Strict-Transport-Security {HSTS_VAR} always;");
    }
    let _ = writeln!(out, "        return 302 {LOGIN_VAR};");
    out.push_str("    }\n\n");

    out.push_str("    location @simpleotp_other_origin {\n");
    out.push_str("        default_type text/plain;\n");
    out.push_str("        add_header Cache-Control \"no-store\" always;\n");
    if tls.is_some() {
        let _ = writeln!(out, "        add_header Strict-Transport-Security {HSTS_VAR} always;");
    }
    out.push_str(
        "        return 403 \"SimpleOTP refused this request: a page of another site or port sent it to this app. \
         If you meant it, do it from the app's own page.\\n\";\n",
    );
    out.push_str("    }\n\n");

    // The app does not answer (not started, crashed): a page that says so, instead of nginx's
    // bare 502, so nobody mistakes it for a SimpleOTP problem. Only reached after the check
    // passed (auth_request runs first), so naming the app reveals nothing.
    out.push_str("    location @simpleotp_upstream_down {\n");
    let _ = writeln!(out, "        rewrite ^ {}? break;", prefix.route(routes::UPSTREAM_DOWN));
    auth_keepalive(out);
    out.push_str("        proxy_method GET;\n");
    out.push_str("        proxy_pass_request_body off;\n");
    out.push_str("        proxy_set_header Content-Length \"\";\n");
    out.push_str("        client_max_body_size 0;\n");
    auth_headers(out, proof, app, "\"\"");
    out.push_str("    }\n\n");

    // The app itself, behind auth_request.
    //
    // proxy_pass is always given *without* a URI part, so nginx forwards the request URI
    // exactly as the browser sent it (still percent-encoded; apps such as Jupyter rely on
    // `%2F` surviving). If the upstream URL has a path (e.g. `http://127.0.0.1:8888/lab`), that
    // path is treated as the app's start page: opening `/` on the protected port redirects
    // there, and every other URL passes through unchanged. Putting the path into proxy_pass
    // instead would make nginx *replace* the matched `/` with it (`/api` -> `/labapi`), which
    // breaks every absolute link the app generates.
    if !up.path().is_empty() {
        // A relative Location, so it works whatever host name the browser used. `return` runs
        // before the access phase, so this answers without auth; it reveals only the path.
        out.push_str("    location = / {\n        absolute_redirect off;\n");
        let _ = writeln!(out, "        return 302 {};\n    }}\n", quote(up.path()));
    }
    out.push_str("    location / {\n");
    let _ = writeln!(out, "        auth_request {check};");
    out.push_str("        error_page 401 = @simpleotp_unauthorized;\n");
    let login_header_var = LOGIN_LOCATION_HEADER.replace('-', "_");
    let _ = writeln!(out, "        auth_request_set {LOGIN_VAR} $upstream_http_{login_header_var};");
    out.push_str("        error_page 502 504 = @simpleotp_upstream_down;\n");
    // `check` refused a change sent by a page of another origin (see the server's
    // `changes_something_from_another_origin`). The app's own 403s pass unchanged: error_page
    // applies only to nginx's own answers unless proxy_intercept_errors is on, which it is not.
    out.push_str("        error_page 403 = @simpleotp_other_origin;\n");
    // The app gets the browser's cookies minus every SimpleOTP session cookie, as `check`
    // handed them back: an app (or whoever runs it) never sees a token it could replay.
    let header_var = APP_COOKIES_HEADER.replace('-', "_");
    let _ = writeln!(out, "        auth_request_set {APP_COOKIES_VAR} $upstream_http_{header_var};");
    let _ = writeln!(out, "        proxy_set_header Cookie {APP_COOKIES_VAR};");
    let _ = writeln!(out, "        proxy_pass {}://{};", up.scheme(), up.authority());
    if up.scheme() == "https" {
        out.push_str("        proxy_ssl_server_name on;\n");
        if app.tls_verify {
            // nginx checks nothing by default; an app on another machine must prove who it is.
            out.push_str("        proxy_ssl_verify on;\n        proxy_ssl_verify_depth 4;\n");
            match upstream_ca {
                Some(bundle) => {
                    let _ = writeln!(out, "        proxy_ssl_trusted_certificate {};", quote(bundle));
                }
                // nginx -t then refuses the config and says which directive is missing.
                None => out.push_str("        # no system CA bundle found: set tls_verify = false for this app, or install one\n"),
            }
        }
    }
    out.push_str("        proxy_http_version 1.1;\n");
    let _ = writeln!(out, "        proxy_set_header Upgrade {UPGRADE_PROTOCOL_VAR};");
    let _ = writeln!(out, "        proxy_set_header Connection {UPGRADE_VAR};");
    // h2c's companion header (hop-by-hop, meaningless once its Upgrade is dropped).
    out.push_str("        proxy_set_header HTTP2-Settings \"\";\n");
    out.push_str("        proxy_set_header Host $http_host;\n");
    out.push_str("        proxy_set_header X-Real-IP $remote_addr;\n");
    out.push_str("        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n");
    out.push_str("        proxy_set_header X-Forwarded-Proto $scheme;\n");
    out.push_str("        proxy_set_header X-Forwarded-Host $http_host;\n");
    // Uploads of any size stream straight through; responses (server-sent events, notebooks'
    // long polls) are not held back; WebSockets and slow requests may stay open for an hour.
    // proxy_intercept_errors stays off: the app's own 401s must reach the browser untouched.
    out.push_str("        client_max_body_size 0;\n");
    out.push_str("        proxy_request_buffering off;\n");
    out.push_str("        proxy_buffering off;\n");
    out.push_str("        proxy_read_timeout 1h;\n");
    out.push_str("        proxy_send_timeout 1h;\n");
    out.push_str("    }\n");
    out.push_str("}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed proof, so the rendered text is the same every time.
    fn proof() -> crate::protocol::NginxProof {
        crate::protocol::NginxProof::parse(&"p".repeat(43)).unwrap()
    }

    fn app(name: &str, upstream: &str, listen: &str) -> AppConfig {
        AppConfig::new(name.parse().unwrap(), upstream.parse().unwrap(), listen.parse().unwrap())
    }

    fn config(apps: &[AppConfig]) -> String {
        render_config("127.0.0.1:9999".parse().unwrap(), &proof(), &RoutePrefix::default(), apps)
    }

    /// The body of the `location` block that starts with `header`.
    fn block<'a>(text: &'a str, header: &str) -> &'a str {
        let start = text.find(header).unwrap_or_else(|| panic!("no {header:?} in\n{text}"));
        let end = text[start..].find("\n    }").unwrap();
        &text[start..start + end]
    }

    #[test]
    fn an_app_at_its_own_name_is_https_only_under_that_name() {
        let mut own = app("Jupyter", "http://127.0.0.1:8888", "127.0.0.1:8081");
        own.https_name = Some("jupyter-k3x9q2ab.localhost".parse().unwrap());
        let text = config(&[own.clone(), app("plain", "http://127.0.0.1:8889", "127.0.0.1:8082")]);
        assert!(text.contains("listen 127.0.0.1:8081 ssl default_server;") && text.contains("listen 127.0.0.1:8081 ssl;"), "{text}");
        assert!(text.contains("listen 127.0.0.1:8082 default_server;"), "the other app stays plain HTTP:\n{text}");
        let server_names = text.lines().find(|l| l.contains("server_name localhost")).unwrap();
        assert!(server_names.contains("jupyter-k3x9q2ab.localhost"), "{server_names}");
        assert!(
            text.contains("if ($host != \"jupyter-k3x9q2ab.localhost\") {")
                && text.contains("return 308 https://jupyter-k3x9q2ab.localhost:$server_port$request_uri;"),
            "{text}"
        );
        assert!(
            text.contains("return 301 https://jupyter-k3x9q2ab.localhost:$server_port$request_uri;"),
            "plain HTTP goes to the name:\n{text}"
        );
        // Without the name, none of it.
        assert!(!config(&[app("Jupyter", "http://127.0.0.1:8888", "127.0.0.1:8081")]).contains("ssl"));
    }

    #[test]
    fn global_part_keeps_everything_in_the_prefix() {
        let text = config(&[]);
        for needle in [
            "daemon off;",
            "master_process on;",
            "worker_processes 1;",
            "pid \"nginx.pid\";",
            "error_log \"logs/error.log\" warn;",
            "access_log off;",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        // Every path-taking directive points inside the prefix (nginx's working directory).
        for directive in [
            "pid",
            "lock_file",
            "error_log",
            "client_body_temp_path",
            "proxy_temp_path",
            "fastcgi_temp_path",
            "uwsgi_temp_path",
            "scgi_temp_path",
        ] {
            let line = text.lines().find(|l| l.trim_start().starts_with(&format!("{directive} "))).unwrap();
            let name = line.split('"').nth(1).unwrap_or_else(|| panic!("unquoted: {line}"));
            assert!(!name.starts_with('/') && !name.contains(".."), "{line}");
        }
        assert!(text.contains("upstream simpleotp_auth {\n        server \"127.0.0.1:9999\";\n        keepalive 32;\n    }"), "{text}");
        assert!(
            text.contains("map $http_upgrade $simpleotp_upgrade {\n        default '';\n        '~*^websocket$' websocket;\n    }"),
            "{text}"
        );
        assert!(
            text.contains(
                "map $http_upgrade $simpleotp_connection_upgrade {\n        default '';\n        '~*^websocket$' upgrade;\n    }"
            ),
            "{text}"
        );
        // Main context (before `events`), so replaced workers drop WebSockets within seconds.
        let timeout = text.find("\nworker_shutdown_timeout 3s;\n").expect("worker_shutdown_timeout");
        assert!(timeout < text.find("events {").unwrap(), "{text}");
    }

    #[cfg(unix)]
    #[test]
    fn user_line_only_as_root() {
        let text = config(&[]);
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        assert_eq!(text.lines().any(|l| l.starts_with("user ")), root, "{text}");
        // As root, workers get an unprivileged account, never ours.
        if let Some(line) = text.lines().find(|l| l.starts_with("user ")) {
            let user = line.split('"').nth(1).unwrap();
            assert!(super::super::platform::WORKER_ACCOUNTS.contains(&user) && user != "root", "{line}");
        }
    }

    #[test]
    fn server_has_the_gateway_locations() {
        let text = config(&[app("Jupyter", "http://127.0.0.1:8888", "127.0.0.1:8081")]);
        assert!(text.contains("# App \"Jupyter\": 127.0.0.1:8081 -> http://127.0.0.1:8888"), "{text}");
        // Host allow-list: a default server that refuses unknown names, then the app's server.
        assert!(text.contains("listen 127.0.0.1:8081 default_server;\n        server_name \"\";"), "{text}");
        assert!(text.contains("return 421 "), "{text}");
        assert!(text.contains("listen 127.0.0.1:8081;\n        server_name localhost "), "{text}");
        assert!(text.contains(r#" "~^[0-9.]+$" "~^[[][0-9a-f:.]+[]]$";"#), "{text}");

        let check = block(&text, "location = /_simpleotp/check {");
        for needle in [
            "internal;",
            "proxy_pass http://simpleotp_auth;",
            "proxy_pass_request_body off;",
            "proxy_set_header Content-Length \"\";",
            "proxy_http_version 1.1;",
            "proxy_set_header Connection \"\";",
            "proxy_set_header Host $http_host;",
            "proxy_set_header x-real-ip $remote_addr;",
            "proxy_set_header x-forwarded-proto $scheme;",
            "proxy_set_header X-Forwarded-Host $http_host;",
            "proxy_set_header x-simpleotp-original-uri $request_uri;",
            "proxy_set_header x-simpleotp-app 8081;",
            &format!("proxy_set_header x-simpleotp-proof \"{}\";", proof().expose()),
            "client_max_body_size 0;",
            "proxy_buffer_size 64k;",
        ] {
            assert!(check.contains(needle), "check lacks {needle:?}:\n{check}");
        }

        assert!(block(&text, "location ^~ /_simpleotp/control/ {").contains("return 404;"));

        let pages = block(&text, "location ^~ /_simpleotp/ {");
        for needle in [
            "proxy_pass http://simpleotp_auth;",
            "proxy_set_header Connection \"\";",
            "client_max_body_size 16k;",
            "x-simpleotp-original-uri \"\";",
            "x-real-ip $remote_addr;",
            "x-simpleotp-app 8081;",
            "x-simpleotp-proof ",
        ] {
            assert!(pages.contains(needle), "pages lack {needle:?}:\n{pages}");
        }

        let unauth = block(&text, "location @simpleotp_unauthorized {");
        for needle in ["absolute_redirect off;", "return 302 $simpleotp_login;", "add_header Cache-Control \"no-store\" always;"] {
            assert!(unauth.contains(needle), "unauthorized lacks {needle:?}:\n{unauth}");
        }
        let unauth_only = &unauth[..unauth.find("\n        }").unwrap()];
        assert!(!unauth_only.contains("proxy_pass"), "a request without a session is never proxied on:\n{unauth_only}");

        let root = block(&text, "location / {");
        for needle in [
            "auth_request /_simpleotp/check;",
            "error_page 401 = @simpleotp_unauthorized;",
            "auth_request_set $simpleotp_login $upstream_http_x_simpleotp_login;",
            "proxy_pass http://127.0.0.1:8888;",
            "auth_request_set $simpleotp_app_cookies $upstream_http_x_simpleotp_app_cookies;",
            "proxy_set_header Cookie $simpleotp_app_cookies;",
            "proxy_set_header Upgrade $simpleotp_upgrade;",
            "proxy_set_header HTTP2-Settings \"\";",
            "proxy_set_header Connection $simpleotp_connection_upgrade;",
            "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
            "client_max_body_size 0;",
            "proxy_request_buffering off;",
            "proxy_buffering off;",
            "proxy_read_timeout 1h;",
            "proxy_send_timeout 1h;",
        ] {
            assert!(root.contains(needle), "app location lacks {needle:?}:\n{root}");
        }
        assert!(!text.contains("proxy_intercept_errors"));
        // No start-page redirect without an upstream path.
        assert!(!text.contains("location = / {"));
    }

    #[test]
    fn custom_prefix_is_used_everywhere() {
        let text = render_config(
            "127.0.0.1:1".parse().unwrap(),
            &proof(),
            &"/_gate/".parse().unwrap(),
            &[app("a", "http://127.0.0.1:2", "127.0.0.1:3")],
        );
        assert!(text.contains("location = /_gate/check {"));
        assert!(text.contains("location ^~ /_gate/control/ {"));
        assert!(text.contains("location @simpleotp_unauthorized {"));
        assert!(!text.contains("_simpleotp/"));
    }

    #[test]
    fn ipv6_listen_and_upstream() {
        let text = render_config(
            "[::1]:9999".parse().unwrap(),
            &proof(),
            &RoutePrefix::default(),
            &[app("v6", "http://[::1]:9000", "[::1]:8082")],
        );
        assert!(text.contains("listen [::1]:8082;"), "{text}");
        assert!(text.contains("proxy_pass http://[::1]:9000;"), "{text}");
        assert!(text.contains("server \"[::1]:9999\";"), "{text}");
    }

    #[test]
    fn upstream_path_becomes_the_start_page() {
        let text = config(&[app("lab", "http://127.0.0.1:8888/lab", "127.0.0.1:8081")]);
        // The URI is passed through unchanged...
        assert!(text.contains("proxy_pass http://127.0.0.1:8888;"), "{text}");
        assert!(!text.contains("proxy_pass http://127.0.0.1:8888/lab"), "{text}");
        // ...and `/` redirects to the configured path.
        let start = block(&text, "location = / {");
        assert!(start.contains("return 302 \"/lab\";"), "{start}");
        assert!(start.contains("absolute_redirect off;"), "{start}");
    }

    #[test]
    fn https_upstream_sends_sni_and_is_verified_unless_told_not_to() {
        let text = config(&[app("s", "https://localhost:8443", "127.0.0.1:8081")]);
        assert!(text.contains("proxy_pass https://localhost:8443;"), "{text}");
        assert!(text.contains("proxy_ssl_server_name on;"), "{text}");
        assert!(text.contains("proxy_ssl_verify on;"), "{text}");
        // The managed nginx checks against the system's roots, copied into its prefix.
        assert!(text.contains("proxy_ssl_trusted_certificate \"upstream-ca.pem\";"), "{text}");
        let unverified = config(&[AppConfig { tls_verify: false, ..app("s", "https://localhost:8443", "127.0.0.1:8081") }]);
        assert!(unverified.contains("proxy_ssl_server_name on;") && !unverified.contains("proxy_ssl_verify"), "{unverified}");
        // Plain http upstreams have nothing to verify.
        assert!(!config(&[app("p", "http://127.0.0.1:1", "127.0.0.1:8081")]).contains("proxy_ssl_"));
    }

    #[test]
    fn extra_host_names_are_allowed_and_duplicates_are_not_repeated() {
        let mut jupyter = app("Jupyter", "http://127.0.0.1:8888", "0.0.0.0:8081");
        jupyter.hosts = vec!["jupyter.home.arpa".parse().unwrap(), "localhost".parse().unwrap()];
        let text = config(&[jupyter]);
        let line = text.lines().find(|l| l.trim_start().starts_with("server_name localhost")).unwrap();
        assert!(line.contains(" jupyter.home.arpa "), "{line}");
        assert_eq!(line.matches("localhost").count(), 1, "{line}");
    }

    #[test]
    fn snippet_has_the_same_blocks_without_globals() {
        let apps = [app("Jupyter", "http://127.0.0.1:8888", "127.0.0.1:8081"), app("Grafana", "http://127.0.0.1:3000", "0.0.0.0:8082")];
        let snippet = render_snippet(&RoutePrefix::default(), "127.0.0.1:7000", &proof(), &apps);
        for absent in ["daemon", "pid ", "error_log", "events", "\nhttp {", "user ", "master_process"] {
            assert!(!snippet.contains(absent), "snippet has {absent:?}:\n{snippet}");
        }
        assert!(snippet.starts_with("# SimpleOTP: paste this inside the http { } block"));
        assert!(snippet.contains("simpleotp serve"));
        assert!(snippet.contains("worker_shutdown_timeout"), "the snippet says how to close WebSockets after a sign-out");
        assert!(snippet.contains("upstream simpleotp_auth {\n    server \"127.0.0.1:7000\";"), "{snippet}");
        // Two apps, each with its Host allow-list's default server; Grafana's on all
        // interfaces has its loopback side too.
        assert_eq!(snippet.matches("\nserver {\n").count(), 6, "{snippet}");
        // Same server blocks as the managed config, modulo indentation.
        let managed = render_config("127.0.0.1:7000".parse().unwrap(), &proof(), &RoutePrefix::default(), &apps);
        let managed_server: String = managed[managed.find("    # App \"Jupyter\"").unwrap()..]
            .lines()
            .map(|l| l.strip_prefix("    ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        // (Up to the network-facing app, which only the managed nginx serves over HTTPS.)
        let snippet_server = &snippet[snippet.find("# App \"Jupyter\"").unwrap()..snippet.find("# App \"Grafana\"").unwrap()];
        assert!(managed_server.starts_with(snippet_server.trim_end()), "managed:\n{managed_server}\nsnippet:\n{snippet_server}");
        assert!(
            snippet.contains("listen 0.0.0.0:8082 default_server;") && !snippet.contains("ssl_certificate") && !snippet.contains(" ssl;"),
            "{snippet}"
        );
        assert!(
            snippet.contains("add `ssl` to their\n# network `listen` lines"),
            "the snippet says what it leaves to its owner:\n{snippet}"
        );
        assert!(managed.contains("listen 0.0.0.0:8082 ssl default_server;"), "{managed}");
    }

    /// The server block (default or app) that listens with `listen_line`.
    fn server_block<'a>(text: &'a str, listen_line: &str) -> &'a str {
        let at = text.find(listen_line).unwrap_or_else(|| panic!("no {listen_line:?} in\n{text}"));
        let start = text[..at].rfind("server {").unwrap();
        let end = text[start..].find("\n    }\n").unwrap();
        &text[start..start + end]
    }

    #[test]
    fn network_facing_apps_speak_tls_and_loopback_ones_plain_http() {
        let text = config(&[app("lan", "http://127.0.0.1:8888", "0.0.0.0:8081"), app("local", "http://127.0.0.1:8889", "127.0.0.1:8082")]);
        let chain = "ssl_certificate \"tls-chain.pem\";";
        let key = "ssl_certificate_key \"tls-key.pem\";";
        // Both servers of the network-facing port: the default one (421 for unknown names) needs
        // the certificate too, because the handshake comes before the Host header.
        for listen in ["listen 0.0.0.0:8081 ssl default_server;", "listen 0.0.0.0:8081 ssl;"] {
            let server = server_block(&text, listen);
            for needle in [
                chain,
                key,
                "ssl_protocols TLSv1.2 TLSv1.3;",
                "ssl_prefer_server_ciphers off;",
                "ssl_session_tickets off;",
                "ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:",
            ] {
                assert!(server.contains(needle), "{listen} lacks {needle:?}:\n{server}");
            }
            assert!(!server.contains("CBC") && !server.contains("TLSv1 ") && !server.contains("TLSv1.1"), "{server}");
        }
        assert!(server_block(&text, "listen 0.0.0.0:8081 ssl default_server;").contains("return 421 "));
        // Loopback stays plain HTTP.
        let local = server_block(&text, "listen 127.0.0.1:8082;");
        assert!(!local.contains("ssl") && !local.contains("error_page 497"), "{local}");
        assert!(text.contains("listen 127.0.0.1:8082 default_server;"), "{text}");

        // Plain HTTP on the TLS port: redirected to https://, except the CA page and downloads.
        let app_server = server_block(&text, "listen 0.0.0.0:8081 ssl;");
        assert!(app_server.contains("error_page 497 = @simpleotp_plain_http;"), "{app_server}");
        let plain = block(&text, "location @simpleotp_plain_http {");
        for needle in [
            "if ($simpleotp_plain_http_allowed = 0) {",
            "return 301 https://$host:$server_port$request_uri;",
            "proxy_pass http://simpleotp_auth;",
            "proxy_set_header x-forwarded-proto $scheme;",
            "proxy_set_header x-simpleotp-app 8081;",
            "proxy_pass_request_body off;",
        ] {
            assert!(plain.contains(needle), "plain-HTTP location lacks {needle:?}:\n{plain}");
        }
        let allowed = &text[text.find("map $uri $simpleotp_plain_http_allowed {").expect("the CA map")..];
        let allowed = &allowed[..allowed.find('}').unwrap()];
        for needle in ["default 0;", "\"/_simpleotp/ca\" 1;", "\"/_simpleotp/ca.crt\" 1;", "\"/_simpleotp/ca.mobileconfig\" 1;"] {
            assert!(allowed.contains(needle), "{allowed}");
        }
        assert_eq!(allowed.matches(" 1;").count(), 3, "only the CA routes are answered over plain HTTP:\n{allowed}");

        // Without a network-facing app there is no TLS at all.
        let local_only = config(&[app("local", "http://127.0.0.1:8889", "127.0.0.1:8082")]);
        assert!(!local_only.contains("ssl") && !local_only.contains("497"), "{local_only}");
    }

    /// HSTS: only the HTTPS server of a network-facing app sends it, for names other than
    /// `localhost` and never for IP literals; the location with its own `add_header` repeats it.
    #[test]
    fn hsts_is_set_for_names_over_https_only() {
        let text = config(&[app("lan", "http://127.0.0.1:8888", "0.0.0.0:8081"), app("local", "http://127.0.0.1:8889", "127.0.0.1:8082")]);
        let map = &text[text.find("map \"$https:$host\" $simpleotp_hsts {").expect("the HSTS map")..];
        let map = &map[..map.find('}').unwrap()];
        for needle in ["default '';", "'on:localhost' '';", "'~^on:[0-9.]+$' '';", "'~^on:[[]' '';", "'~^on:.' 'max-age=604800';"] {
            assert!(map.contains(needle), "{needle:?} not in {map}");
        }
        assert!(map.find("'~^on:.'").unwrap() > map.find("'~^on:[[]'").unwrap(), "the catch-all regex must come last: {map}");
        let header = "add_header Strict-Transport-Security $simpleotp_hsts always;";
        assert!(server_block(&text, "listen 0.0.0.0:8081 ssl;").contains(header));
        let network = &text[text.find("listen 0.0.0.0:8081 ssl;").unwrap()..];
        let unauthorized = &network[network.find("location @simpleotp_unauthorized {").unwrap()..];
        assert!(unauthorized[..unauthorized.find("}").unwrap()].contains(header), "{unauthorized}");
        assert!(!server_block(&text, "listen 0.0.0.0:8081 ssl default_server;").contains("Strict-Transport"));
        assert!(!server_block(&text, "listen 127.0.0.1:8082;").contains("Strict-Transport"));
        let local_only = config(&[app("local", "http://127.0.0.1:8889", "127.0.0.1:8082")]);
        assert!(!local_only.contains("Strict-Transport") && !local_only.contains("simpleotp_hsts"), "{local_only}");
    }

    #[test]
    fn a_specific_lan_address_and_ipv6_any_are_network_facing() {
        let text = config(&[app("a", "http://127.0.0.1:1", "192.168.1.20:8081"), app("b", "http://127.0.0.1:2", "[::]:8082")]);
        assert!(text.contains("listen 192.168.1.20:8081 ssl;"), "{text}");
        assert!(text.contains("listen [::]:8082 ssl;"), "{text}");
        assert!(config(&[app("c", "http://127.0.0.1:3", "[::1]:8083")]).contains("listen [::1]:8083;"));
    }

    /// An app on all interfaces keeps its plain-HTTP side on loopback, the same port: this
    /// computer's browser meets no certificate and keeps its cookie (#21). Every other address
    /// speaks TLS. An app on one specific address has no loopback side.
    #[test]
    fn an_app_on_all_interfaces_stays_plain_http_on_loopback() {
        let text = config(&[app("v4", "http://127.0.0.1:1", "0.0.0.0:8081"), app("v6", "http://127.0.0.1:2", "[::]:8082")]);
        for (network, loopback) in [("0.0.0.0:8081", "127.0.0.1:8081"), ("[::]:8082", "[::1]:8082")] {
            assert!(text.contains(&format!("listen {network} ssl default_server;")), "{text}");
            let local = server_block(&text, &format!("listen {loopback};"));
            assert!(!local.contains("ssl") && !local.contains("497") && !local.contains("Strict-Transport"), "{local}");
            assert!(local.contains("server_name localhost "), "{local}");
            assert!(
                server_block(&text, &format!("listen {loopback} default_server;")).contains("return 421 "),
                "rebinding is refused there too"
            );
        }
        // The same app: the auth server is told the same port on both sides.
        let header = "proxy_set_header x-simpleotp-app 8081;";
        let one_side = config(&[app("v4", "http://127.0.0.1:1", "127.0.0.1:8081")]).matches(header).count();
        assert!(one_side > 0 && text.matches(header).count() >= 2 * one_side, "{text}");
        assert!(!config(&[app("a", "http://127.0.0.1:1", "192.168.1.20:8081")]).contains("listen 127.0.0.1:8081"));

        // With its own name on this computer, loopback is HTTPS under that name, as it was
        // before the app faced the network.
        let mut named = app("named", "http://127.0.0.1:3", "0.0.0.0:8083");
        named.https_name = Some("named-k3x9q2ab.localhost".parse().unwrap());
        let text = config(&[named]);
        let local = server_block(&text, "listen 127.0.0.1:8083 ssl;");
        assert!(local.contains("return 308 https://named-k3x9q2ab.localhost:$server_port$request_uri;"), "{local}");
        let network = server_block(&text, "listen 0.0.0.0:8083 ssl;");
        assert!(!network.contains("return 308"), "other devices use the machine's names: {network}");
    }

    /// nginx for Windows opens what its config names as UTF-8 but refuses 8.3 short names, and the
    /// managed nginx runs in its prefix: every file the managed config names is a relative,
    /// ASCII name in the prefix (see `layout`), whatever the data directory is called.
    #[test]
    fn the_managed_config_names_only_relative_ascii_files() {
        let apps = [app("lan", "https://example.org", "0.0.0.0:8081"), app("local", "http://127.0.0.1:8889", "127.0.0.1:8082")];
        let text = config(&apps);
        let mut files = 0;
        for line in text.lines().map(str::trim) {
            let directive = line.split_whitespace().next().unwrap_or("");
            let names_a_file = ["pid", "lock_file", "error_log", "ssl_certificate", "ssl_certificate_key", "proxy_ssl_trusted_certificate"]
                .contains(&directive)
                || directive.ends_with("_temp_path");
            if names_a_file {
                files += 1;
                let name = line.split('"').nth(1).unwrap_or_else(|| panic!("unquoted file in {line:?}"));
                assert!(name.is_ascii() && !name.starts_with('/') && !name.contains(':') && !name.contains('~'), "{line}");
            }
        }
        // pid, lock, log; five temp paths; certificate and key in both TLS servers; the
        // upstream's CA bundle on both sides (network, loopback) of the app on all interfaces.
        assert_eq!(files, 3 + 5 + 2 * 2 + 2, "{text}");
    }

    #[test]
    fn quoting_escapes_quotes_and_backslashes() {
        assert_eq!(quote(r#"C:\nginx "x""#), r#""C:\\nginx \"x\"""#);
        assert_eq!(quote("a;b{c}"), "\"a;b{c}\"");
    }
}
