//! Property tests for the functions that read untrusted input: cookie headers, form bodies,
//! return URLs, the config file and the state file. They check the same invariants as the
//! cargo-fuzz targets in `fuzz/` (see `fuzz/src/lib.rs`), but from generators that build
//! realistic structure (cookie pairs, encoded forms, dangerous path fragments, TOML documents,
//! state JSON), at proptest's default 256 cases each, so they run in every `cargo test`.
//! No nginx or browser needed: `cargo test -p simpleotp-engine --test api properties::`.
//!
//! The `regression_*` tests replay, one by one, the inputs the fuzzers found (also kept under
//! `fuzz/regressions/<target>/`).

use std::net::IpAddr;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use percent_encoding::percent_decode_str;
use proptest::prelude::*;
use simpleotp_engine::config::{Account, Config, Issuer, SessionSettings};
use simpleotp_engine::limiter::{Limiter, LimiterSettings};
use simpleotp_engine::redirect::{is_safe_return_path, safe_return_path, DEFAULT_RETURN_PATH, MAX_RETURN_PATH_LEN};
use simpleotp_engine::server::parse_form;
use simpleotp_engine::session::{tokens_from_cookie_headers, SessionStore, SessionToken};

/// The session cookie of an app protected on port 8888 (the fuzz seeds' name too).
const COOKIE_NAME: &str = "simpleotp_8888";
use simpleotp_engine::state::PersistedState;
use simpleotp_engine::totp::{CodeRejected, Totp, TotpSecret};

const TOKEN_CHARS: usize = 43;
/// RFC 6238's SHA-1 test secret.
const TOTP_SECRET: &[u8] = b"12345678901234567890";
const NOW: u64 = 1_700_000_000;

fn is_token_shape(s: &str) -> bool {
    s.len() == TOKEN_CHARS && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn fuzz_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

// ---------------------------------------------------------------------------------------------
// Cookies
// ---------------------------------------------------------------------------------------------

/// One `name=value` pair of a Cookie header, and whether it carries a token we must find.
#[derive(Debug, Clone)]
struct CookiePair {
    text: String,
    /// The token, when the pair is our cookie with a well-formed value.
    ours: Option<String>,
}

fn token_strategy() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{43}"
}

fn whitespace() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "", " ", "  ", "\t", " \t"])
}

fn cookie_pair() -> impl Strategy<Value = CookiePair> {
    let our_valid = (
        whitespace(),
        whitespace(),
        whitespace(),
        prop::sample::select(vec![("", ""), ("\"", "\""), ("\"", ""), ("", "\"")]),
        token_strategy(),
    )
        .prop_map(|(w1, w2, w3, (q1, q2), token)| CookiePair {
            text: format!("{w1}{COOKIE_NAME}{w2}={w3}{q1}{token}{q2}{w1}"),
            ours: Some(token),
        });
    let bad_value = prop_oneof![
        "[A-Za-z0-9_-]{42}",
        "[A-Za-z0-9_-]{44,60}",
        "[A-Za-z0-9_-]{0,20}",
        token_strategy().prop_map(|t| format!("{}=", &t[..42])),
        token_strategy().prop_map(|t| format!("{}+", &t[..42])),
        token_strategy().prop_map(|t| format!("{}/", &t[..42])),
        token_strategy().prop_map(|t| format!("{} {}", &t[..21], &t[21..42])),
        token_strategy().prop_map(|t| format!("{}é", &t[..41])),
        "[ -:<-~]{0,50}".prop_filter("not a token", |v| !is_token_shape(v.trim().trim_matches('"'))),
    ];
    let our_invalid = (whitespace(), bad_value).prop_map(|(w, v)| CookiePair { text: format!("{w}{COOKIE_NAME}={v}"), ours: None });
    let other_name = prop::sample::select(vec![
        "_xsrf",
        "username-localhost-8888",
        "code-server-session",
        "vscode-tkn",
        "simpleotp_session2",
        "simpleotp-session",
        "SIMPLEOTP_SESSION",
        "xsimpleotp_session",
        "",
    ]);
    let other = (other_name, prop_oneof![token_strategy(), "[ -:<-~]{0,40}"])
        .prop_map(|(name, value)| CookiePair { text: format!("{name}={value}"), ours: None });
    let junk = prop::sample::select(vec!["", " ", "=", "==", "simpleotp_session", "\"", "a"])
        .prop_map(|t| CookiePair { text: t.to_string(), ours: None });
    prop_oneof![3 => our_valid, 3 => our_invalid, 3 => other, 1 => junk]
}

fn cookie_headers() -> impl Strategy<Value = Vec<(String, Vec<String>)>> {
    let separator = prop::sample::select(vec![";", "; ", " ;", ";;", ";\t", " ; "]);
    let header = prop::collection::vec((cookie_pair(), separator), 0..8).prop_map(|pairs| {
        let mut text = String::new();
        let mut ours = Vec::new();
        for (i, (pair, sep)) in pairs.iter().enumerate() {
            if i > 0 {
                text.push_str(sep);
            }
            text.push_str(&pair.text);
            ours.extend(pair.ours.clone());
        }
        (text, ours)
    });
    prop::collection::vec(header, 0..4)
}

proptest! {
    /// Exactly the well-formed tokens in our cookie are found, in order, at most four; each one
    /// round-trips and has the token's length.
    #[test]
    fn cookie_headers_yield_exactly_our_well_formed_tokens(headers in cookie_headers()) {
        let texts: Vec<&str> = headers.iter().map(|(t, _)| t.as_str()).collect();
        let expected: Vec<String> = headers.iter().flat_map(|(_, ours)| ours.clone()).take(4).collect();
        let found = tokens_from_cookie_headers(texts.iter().copied(), COOKIE_NAME);
        let found_text: Vec<&str> = found.iter().map(|t| t.expose()).collect();
        prop_assert_eq!(&found_text, &expected);
        for token in &found {
            prop_assert_eq!(token.expose().len(), TOKEN_CHARS);
            prop_assert_eq!(SessionToken::parse(token.expose()), Some(token.clone()));
        }
    }

    /// Any text at all: no panic, and whatever is returned is a well-formed token that was in the input.
    #[test]
    fn cookie_parsing_never_returns_a_malformed_token(headers in prop::collection::vec(".{0,120}", 0..4)) {
        let found = tokens_from_cookie_headers(headers.iter().map(|s| s.as_str()), COOKIE_NAME);
        prop_assert!(found.len() <= 4);
        for token in &found {
            prop_assert!(is_token_shape(token.expose()));
            prop_assert!(headers.iter().any(|h| h.contains(token.expose())));
            prop_assert_eq!(SessionToken::parse(token.expose()), Some(token.clone()));
        }
    }

    /// `SessionToken::parse` accepts exactly the 43-character base64url strings.
    #[test]
    fn token_parse_accepts_exactly_the_token_shape(value in prop_oneof![token_strategy(), "[A-Za-z0-9_=+/-]{40,46}", ".{0,50}"]) {
        match SessionToken::parse(&value) {
            Some(token) => {
                prop_assert!(is_token_shape(&value));
                prop_assert_eq!(token.expose(), value.as_str());
            }
            None => prop_assert!(!is_token_shape(&value)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Return paths
// ---------------------------------------------------------------------------------------------

/// The open-redirect invariants for one input (the same as the `return_url` fuzz target).
fn check_return_path(raw: &str) -> Result<(), TestCaseError> {
    let out = safe_return_path(raw);
    prop_assert!(out == raw || out == DEFAULT_RETURN_PATH, "{:?} became {:?}", raw, out);
    prop_assert_eq!(is_safe_return_path(raw), out == raw);
    prop_assert!(is_safe_return_path(out));
    assert_same_origin_path(out)
}

fn assert_same_origin_path(out: &str) -> Result<(), TestCaseError> {
    prop_assert!(out.starts_with('/'), "{:?}", out);
    prop_assert!(!out.starts_with("//") && !out.starts_with("/\\"), "{:?}", out);
    prop_assert!(!out.contains('\\') && !out.chars().any(|c| c.is_control()), "{:?}", out);
    prop_assert!(out.bytes().all(|b| b.is_ascii_graphic()), "{:?}", out);
    prop_assert!(out.len() <= MAX_RETURN_PATH_LEN);
    let mut layer = out.to_string();
    for _ in 0..8 {
        let decoded = percent_decode_str(&layer).decode_utf8_lossy().into_owned();
        prop_assert!(!decoded.starts_with("//") && !decoded.starts_with("/\\"), "{:?} decodes to {:?}", out, decoded);
        prop_assert!(!decoded.contains('\\') && !decoded.contains('\r') && !decoded.contains('\n'), "{:?} decodes to {:?}", out, decoded);
        prop_assert!(!decoded.chars().any(|c| c.is_control()), "{:?} decodes to {:?}", out, decoded);
        prop_assert!(!starts_with_scheme(&decoded), "{:?} decodes to {:?}", out, decoded);
        let second = decoded.chars().nth(1);
        prop_assert!(
            !matches!(second, Some('/' | '\\' | '\u{FF0F}' | '\u{2215}' | '\u{FF3C}' | '\u{29F8}' | '\u{2044}')),
            "{:?} decodes to {:?}",
            out,
            decoded
        );
        if decoded == layer {
            break;
        }
        layer = decoded;
    }
    Ok(())
}

fn starts_with_scheme(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once(':') else { return false };
    let mut chars = scheme.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic()) && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Pieces attackers build return URLs from, plus ordinary path pieces.
const PATH_FRAGMENTS: &[&str] = &[
    "/",
    "//",
    "\\",
    "/\\",
    "%2F",
    "%2f",
    "%5C",
    "%5c",
    "%252F",
    "%25252F",
    "%255C",
    "%0d%0a",
    "%0D%0A",
    "%0a",
    "%09",
    "%00",
    "%",
    "%Z",
    "%25",
    "\t",
    "\n",
    "\r",
    " ",
    "%20",
    "https:",
    "http:",
    "javascript:",
    "data:",
    "//evil.com",
    "evil.com",
    "@evil",
    ".",
    "..",
    "?",
    "#",
    "&",
    "=",
    "next=",
    "lab",
    "tree",
    "a",
    "~user",
    "caf%C3%A9",
    "é",
    "／",
    "∕",
    "＼",
    "⁄",
    "⧸",
    "%EF%BC%8F",
    "%E2%88%95",
    "%EF%BC%BC",
    "%E2%80%AE",
    "%C0%AF",
    "%c0%ae",
    "\u{200B}",
    "\u{FEFF}",
];

fn return_path() -> impl Strategy<Value = String> {
    (prop::sample::select(vec!["", "/", "/", "/", "//", "\\"]), prop::collection::vec(prop::sample::select(PATH_FRAGMENTS), 0..8))
        .prop_map(|(lead, parts)| format!("{lead}{}", parts.concat()))
}

proptest! {
    /// Built from dangerous fragments: the result is the input or `/`, and a same-origin path at
    /// every layer of percent-decoding.
    #[test]
    fn return_paths_from_dangerous_fragments_stay_on_the_origin(raw in return_path()) {
        check_return_path(&raw)?;
    }

    /// Arbitrary text, including non-ASCII and long inputs.
    #[test]
    fn return_paths_from_any_text_stay_on_the_origin(raw in prop_oneof![".{0,80}", "/[ -~]{0,80}", "/[%0-9A-Fa-f/\\\\]{0,40}"]) {
        check_return_path(&raw)?;
    }

    /// A host switch at the start survives no encoding: the result is always `/`.
    #[test]
    fn host_switch_prefixes_always_fall_back(
        lead in prop::sample::select(vec!["//", "/\\", "\\/", "/%2F", "/%2f", "/%5C", "/%5c", "/%252F", "/%25252F", "/%255C", "/\t/", "/%09/", "/%0a/", "/%0d%0a/", "/／", "/%EF%BC%8F", "/∕", "/%E2%88%95", "https://", "https:", "javascript:", "%2F%2F", " //"]),
        host in "[a-z]{1,10}\\.[a-z]{2,3}",
        rest in "(/[a-zA-Z0-9?=&]{0,10}){0,3}",
    ) {
        let payload = format!("{lead}{host}{rest}");
        prop_assert_eq!(safe_return_path(&payload), "/");
    }
}

// ---------------------------------------------------------------------------------------------
// Forms (and the TOTP code in them)
// ---------------------------------------------------------------------------------------------

fn totp() -> Totp {
    Totp::new(
        &TotpSecret::from_bytes(TOTP_SECRET.to_vec()).unwrap(),
        &Issuer::parse("SimpleOTP").unwrap(),
        &Account::parse("test@localhost").unwrap(),
    )
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Checks what the login handler does with a form: `next` through the redirect check, `code`
/// through verification (at `now`). Returns the verification result.
fn check_form_fields(form: &[(String, String)], now: u64) -> Result<Result<u64, CodeRejected>, TestCaseError> {
    let get = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    check_return_path(get("next").unwrap_or("/"))?;
    let code = get("code").unwrap_or("");
    let stripped: String = code.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    let well_formed = stripped.len() == 6 && stripped.bytes().all(|b| b.is_ascii_digit());
    let result = totp().verify(code, now, None);
    match result {
        Err(CodeRejected::Malformed) => prop_assert!(!well_formed, "{:?} called malformed", code),
        Err(CodeRejected::Replayed) => prop_assert!(false, "replay reported with no previous step"),
        Err(CodeRejected::Wrong) => prop_assert!(well_formed),
        Ok(step) => {
            prop_assert!(well_formed);
            prop_assert!(step + 1 >= Totp::step_at(now) && step <= Totp::step_at(now).saturating_add(1));
            prop_assert_eq!(totp().verify(code, now, Some(step)), Err(CodeRejected::Replayed));
        }
    }
    Ok(result)
}

fn form_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{6}",
        "[0-9]{3} [0-9]{3}",
        "[0-9]{3}-[0-9]{3}",
        "[0-9 -]{0,10}",
        "[0-9 ]{0,10}",
        "[0-9a-z]{5,7}",
        return_path(),
        ".{0,30}",
    ]
}

fn form_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["next", "code", "csrf", "m"]).prop_map(str::to_string),
        1 => ".{0,8}",
    ]
}

proptest! {
    /// Encoded pairs decode to exactly what was encoded; the `next` and `code` in them behave.
    #[test]
    fn encoded_forms_round_trip(pairs in prop::collection::vec((form_key(), form_value()), 0..6), now in prop_oneof![Just(NOW), 0u64..4_000_000_000]) {
        let body = pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&");
        let form = parse_form(body.as_bytes());
        prop_assert_eq!(&form, &pairs);
        let _ = check_form_fields(&form, now)?;
    }

    /// Raw (unencoded, partly binary) bodies: no panic, and the same checks.
    #[test]
    fn raw_forms_never_panic(
        parts in prop::collection::vec(prop_oneof![
            form_value().prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..20),
            prop::sample::select(vec!["&", "=", "%", "%2", "%ZZ", "+", "%FF", "&&", "code=", "next=", "%00"]).prop_map(|s| s.as_bytes().to_vec()),
        ], 0..10),
        now in any::<u64>(),
    ) {
        let body = parts.concat();
        let form = parse_form(&body);
        let _ = check_form_fields(&form, now)?;
    }

    /// The right code for the time is accepted (whitespace inside allowed), at any time.
    #[test]
    fn the_current_code_is_accepted(now in prop_oneof![0u64..4_000_000_000, any::<u64>()], spaced in any::<bool>()) {
        let code = totp().code_at(now);
        let typed = if spaced { format!("{} {}", &code[..3], &code[3..]) } else { code.clone() };
        let body = format!("code={}&next=%2Flab", encode(&typed));
        let result = check_form_fields(&parse_form(body.as_bytes()), now)?;
        // The current step, or the next one in the one-in-a-million case that they share the code.
        let current = Totp::step_at(now);
        prop_assert!(result == Ok(current) || result == Ok(current + 1), "{:?} at step {}", result, current);
    }
}

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn config_line() -> impl Strategy<Value = String> {
    let good_prefix = prop::sample::select(vec!["/_simpleotp/", "/_gate/", "_x", "/a/b/", "//x//", "/x.y-z/"]);
    let bad_prefix = prop::sample::select(vec!["/", "/a/../b", "/a b/", "/./"]);
    let good_listen = prop::sample::select(vec!["127.0.0.1:9100", "[::1]:9100", "127.0.0.2:65535"]);
    let bad_listen = prop::sample::select(vec!["0.0.0.0:9100", "127.0.0.1:0", "localhost:1", "10.0.0.1:80"]);
    prop_oneof![
        4 => good_prefix.prop_map(|v| format!("route_prefix = {}", toml_str(v))),
        1 => bad_prefix.prop_map(|v| format!("route_prefix = {}", toml_str(v))),
        4 => good_listen.prop_map(|v| format!("auth_listen = {}", toml_str(v))),
        1 => bad_listen.prop_map(|v| format!("auth_listen = {}", toml_str(v))),
        6 => (prop::sample::select(vec!["issuer", "account"]), ".{0,20}").prop_map(|(k, v)| format!("{k} = {}", toml_str(&v))),
        1 => prop::sample::select(vec!["unknown = 1", "route_prefix = 5", "issuer = []"]).prop_map(str::to_string),
        3 => prop::sample::select(vec!["# comment", ""]).prop_map(str::to_string),
    ]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(vec!["1", "30", "3600", "604800", "9223372036854775807"]).prop_map(str::to_string),
        6 => (1u32..).prop_map(|n| n.to_string()),
        1 => prop::sample::select(vec!["0", "-1", "1.5", "\"60\""]).prop_map(str::to_string),
    ]
}

fn session_table() -> impl Strategy<Value = String> {
    (prop::option::of(number()), prop::option::of(number()), prop::bool::weighted(0.1)).prop_map(|(lifetime, idle, typo)| {
        let mut t = "[session]\n".to_string();
        if let Some(n) = lifetime {
            t += &format!("lifetime_seconds = {n}\n");
        }
        if let Some(n) = idle {
            t += &format!("idle_timeout_seconds = {n}\n");
        }
        if typo {
            t += "idle_seconds = 5\n";
        }
        t
    })
}

fn app_table() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        3 => prop::sample::select(vec!["Jupyter", "code-server", "Jupyter Lab", "  padded  ", "é", "x.y_z", "Ünïcödé app"]).prop_map(str::to_string),
        6 => "[a-zA-Z0-9][a-zA-Z0-9 ._-]{0,39}",
        1 => prop::sample::select(vec!["a;b", "", "   ", "x{y}", "0123456789012345678901234567890123456789x"]).prop_map(str::to_string),
    ];
    let upstream = prop_oneof![
        3 => prop::sample::select(vec![
            "http://127.0.0.1:8888",
            "HTTP://LOCALHOST:8080/",
            "https://[::1]:9000/base",
            "http://h",
            "https://h",
            "http://[::1]",
            "http://[::1]junk",
            "http://a:b:80",
            "http://Host.Example:65535/a/b/",
        ])
        .prop_map(str::to_string),
        4 => ("(http|https|HtTp)://", "[a-z0-9.\\[\\]-]{1,15}(:[0-9]{1,5})?", "(/[a-z%0-9]{0,6}){0,2}").prop_map(|(s, h, p)| format!("{s}{h}{p}")),
        1 => prop::sample::select(vec![
            "http://127.0.0.1:1;evil",
            "http://user@h:1",
            "http://h:0",
            "http://h:99999",
            "ftp://h:1",
            "http://",
            "127.0.0.1:1",
            "http://h:1/x{",
            "http://[::1",
            "http://h:1/a b",
        ])
        .prop_map(str::to_string),
    ];
    let host = prop::sample::select(vec!["127.0.0.1", "127.0.0.1", "0.0.0.0", "[::1]", "[::]", "192.168.1.10", "[fe80::1%2]"]);
    let port = prop_oneof![20 => 8080u32..8100, 1 => Just(0u32), 1 => Just(65535), 1 => Just(70000)];
    (name, upstream, host, port, prop::bool::weighted(0.05)).prop_map(|(name, upstream, host, port, extra)| {
        let mut t = format!(
            "[[app]]\nname = {}\nupstream = {}\nlisten = {}\n",
            toml_str(&name),
            toml_str(&upstream),
            toml_str(&format!("{host}:{port}"))
        );
        if extra {
            t += "extra = true\n";
        }
        t
    })
}

fn config_document() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(config_line(), 0..4),
        prop::option::of(session_table()),
        prop::option::of(prop::sample::select(vec![
            "[nginx]\npath = \"/usr/sbin/nginx\"\n",
            "[nginx]\n",
            "[nginx]\npath = \"C:\\\\nginx\\\\nginx.exe\"\n",
            "[nginx]\npath = '/opt/my nginx/nginx'\n",
            "[nginx]\npath = \"/usr/sbin/nginx\"\n",
            "[nginx]\npath = \"/usr/sbin/nginx\"\n",
            "[nginx]\npath = 1\n",
        ])),
        prop::collection::vec(app_table(), 0..4),
    )
        .prop_map(|(lines, session, nginx, apps)| {
            // A key given twice is a TOML error; keep the first of each (a later test covers junk).
            let mut seen = std::collections::HashSet::new();
            let lines: Vec<String> = lines.into_iter().filter(|l| seen.insert(l.split(" = ").next().unwrap_or("").to_string())).collect();
            let mut doc = lines.join("\n");
            doc.push('\n');
            doc += &session.unwrap_or_default();
            doc += nginx.unwrap_or("");
            doc += &apps.concat();
            doc
        })
}

proptest! {
    /// Whatever parses also validates, satisfies the cross-field rules and survives a TOML round
    /// trip (compact and pretty) unchanged.
    #[test]
    fn configs_that_parse_round_trip(doc in config_document()) {
        let path = Path::new("config.toml");
        let Ok(config) = Config::parse(&doc, path) else { return Ok(()) };
        prop_assert!(config.validate().is_ok());
        prop_assert!(!config.session.lifetime.is_zero() && !config.session.idle_timeout.is_zero());
        if let Some(addr) = config.auth_listen {
            prop_assert!(addr.ip().is_loopback());
        }
        for (i, a) in config.apps.iter().enumerate() {
            for b in &config.apps[..i] {
                prop_assert!(a.name != b.name);
                let (x, y) = (a.listen.socket_addr(), b.listen.socket_addr());
                prop_assert!(x.port() != y.port() || (x.ip() != y.ip() && !x.ip().is_unspecified() && !y.ip().is_unspecified()));
            }
            prop_assert!(a.upstream.port() != 0);
            prop_assert!(matches!(a.upstream.scheme(), "http" | "https"));
        }
        prop_assert!(config.route_prefix.as_str().starts_with('/') && config.route_prefix.as_str().ends_with('/'));
        for text in [toml::to_string(&config).unwrap(), toml::to_string_pretty(&config).unwrap()] {
            let again = Config::parse(&text, path);
            prop_assert!(again.is_ok(), "{}\n{:?}", text, again.err());
            prop_assert_eq!(&again.unwrap(), &config);
        }
    }

    /// Arbitrary text: parse never panics.
    #[test]
    fn config_parse_never_panics(doc in prop_oneof![".{0,200}", config_document().prop_map(|d| d.replace('"', "'"))]) {
        let _ = Config::parse(&doc, Path::new("config.toml"));
    }
}

// ---------------------------------------------------------------------------------------------
// State file
// ---------------------------------------------------------------------------------------------

fn timestamp() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => NOW - 2_000_000..NOW + 100_000,
        1 => Just(0u64),
        1 => any::<u64>(),
        1 => u64::MAX - 2_000_000..=u64::MAX,
    ]
}

fn session_json() -> impl Strategy<Value = serde_json::Value> {
    let token_hash = prop_oneof![
        30 => prop::array::uniform32(any::<u8>()).prop_map(|b| serde_json::json!(URL_SAFE_NO_PAD.encode(b))),
        1 => "[A-Za-z0-9_-]{0,50}".prop_map(|s| serde_json::json!(s)),
        1 => Just(serde_json::json!(null)),
    ];
    let ip = prop_oneof![
        10 => Just(serde_json::json!(null)),
        10 => any::<[u8; 4]>().prop_map(|b| serde_json::json!(IpAddr::from(b).to_string())),
        10 => any::<[u8; 16]>().prop_map(|b| serde_json::json!(IpAddr::from(b).to_string())),
        1 => Just(serde_json::json!("not an ip")),
    ];
    ("[A-Za-z0-9_-]{12}", token_hash, timestamp(), timestamp(), ip, ".{0,40}", prop::option::weighted(0.03, Just("extra"))).prop_map(
        |(id, hash, created, last, ip, ua, extra)| {
            let mut s = serde_json::json!({
                "id": id, "token_hash": hash, "created_at": created, "last_seen": last, "client_ip": ip, "user_agent": ua,
            });
            if let Some(key) = extra {
                s[key] = serde_json::json!(1);
            }
            s
        },
    )
}

/// A saved attempt budget with any values, sensible or absurd (a hand-edited file).
fn limiter_json() -> impl Strategy<Value = serde_json::Value> {
    let wall_ms = prop_oneof![3 => 1_700_000_000_000u64..1_900_000_000_000, 1 => any::<u64>()];
    let client = (any::<u8>(), any::<u32>(), prop::option::of(wall_ms.clone()), wall_ms.clone()).prop_map(|(n, failures, until, last)| {
        serde_json::json!({ "ip": format!("192.0.2.{n}"), "consecutive_failures": failures, "locked_until_unix_ms": until, "last_attempt_unix_ms": last })
    });
    (wall_ms, prop_oneof![3 => 0u64..20_000, 1 => any::<u64>()], prop::collection::vec(client, 0..4)).prop_map(
        |(saved, milli, clients)| serde_json::json!({ "saved_at_unix_ms": saved, "bucket_milli_tokens": milli, "clients": clients }),
    )
}

fn state_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![8 => Just(1u32), 1 => Just(0u32), 1 => any::<u32>()],
        prop::option::of(timestamp()),
        prop::collection::vec(session_json(), 0..6),
        prop_oneof![8 => Just(None), 1 => (0usize..400).prop_map(Some)],
        any::<bool>(),
        prop::option::of(limiter_json()),
    )
        .prop_map(|(version, step, sessions, cut, pretty, limiter)| {
            let mut state = serde_json::json!({ "version": version, "last_totp_step": step, "sessions": sessions });
            if let Some(limiter) = limiter {
                state["limiter"] = limiter;
            }
            let mut bytes = if pretty { serde_json::to_vec_pretty(&state).unwrap() } else { serde_json::to_vec(&state).unwrap() };
            if let Some(cut) = cut {
                bytes.truncate(cut);
            }
            bytes
        })
}

/// The error text is one of two fixed templates with numbers in it: never the file's bytes.
fn check_state_error(message: &str, data: &[u8]) -> Result<(), TestCaseError> {
    let shape_ok = if let Some(rest) = message.strip_prefix("it is not valid (line ") {
        let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
        let rest = rest.strip_prefix(", column ").unwrap_or("!");
        let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
        matches!(rest, ": Io error)" | ": Syntax error)" | ": Data error)" | ": Eof error)")
    } else if let Some(rest) = message.strip_prefix("it has format version ") {
        rest.trim_start_matches(|c: char| c.is_ascii_digit()).starts_with(", this program reads version ")
    } else {
        false
    };
    prop_assert!(shape_ok, "unexpected error text {:?}", message);
    if data.len() > 8 {
        prop_assert!(!message.as_bytes().windows(data.len()).any(|w| w == data), "the error quotes the file");
    }
    for token_like in message.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')) {
        prop_assert!(token_like.len() < 20, "{:?} looks like a quoted value", token_like);
    }
    Ok(())
}

/// Loads the state, rebuilds the store and uses it (the same as the `state_file` fuzz target).
fn check_state(data: &[u8]) -> Result<(), TestCaseError> {
    let state = match PersistedState::from_bytes(data) {
        Ok(state) => state,
        Err(message) => return check_state_error(&message, data),
    };
    let now = state.last_totp_step.unwrap_or(NOW);
    let settings = SessionSettings::default();
    let mut store = SessionStore::from_sessions(settings, state.sessions.clone(), now);
    prop_assert!(store.len() <= state.sessions.len());
    let listed = store.list(now);
    prop_assert!(listed.len() <= store.len());
    for pair in listed.windows(2) {
        prop_assert!(pair[0].created_at >= pair[1].created_at);
    }
    store.purge_expired(now);
    prop_assert_eq!(store.list(now).len(), store.len());
    let later = now.saturating_add(settings.lifetime.as_secs());
    store.list(later);
    store.purge_expired(later);
    // Whatever budget the file claims, restoring it neither panics nor exceeds the settings.
    if let Some(snapshot) = &state.limiter {
        let start = std::time::Instant::now();
        let settings = LimiterSettings::default();
        let mut limiter = Limiter::restore(settings, snapshot, start, now.saturating_mul(1000));
        prop_assert!(limiter.status(start).locked_clients.iter().all(|(_, left)| *left <= settings.ip_max_lockout));
        prop_assert!(limiter.snapshot(start, now.saturating_mul(1000)).bucket_milli_tokens <= u64::from(settings.global_burst) * 1000);
    }
    let again = PersistedState {
        version: state.version,
        last_totp_step: state.last_totp_step,
        last_totp_steps: state.last_totp_steps.clone(),
        sessions: store.snapshot(),
        limiter: state.limiter.clone(),
        recovery: state.recovery.clone(),
        passkeys: state.passkeys.clone(),
    };
    let reread = PersistedState::from_bytes(&serde_json::to_vec(&again).unwrap());
    prop_assert_eq!(reread.map(|s| s.sessions.len()), Ok(again.sessions.len()));
    if let Some(first) = listed.first() {
        prop_assert!(store.revoke(&first.id) || !store.list(later).iter().any(|s| s.id == first.id));
    }
    store.revoke_all();
    prop_assert!(store.is_empty());
    Ok(())
}

proptest! {
    /// Random sessions (times anywhere from 0 to u64::MAX, good and bad hashes and addresses,
    /// unknown fields, truncated files): loading never panics, errors never quote the file, and
    /// the store rebuilt from it lists, purges and persists consistently.
    #[test]
    fn state_files_load_safely(data in state_bytes()) {
        check_state(&data)?;
    }

    /// Arbitrary bytes.
    #[test]
    fn state_from_random_bytes_never_panics(data in prop::collection::vec(any::<u8>(), 0..200)) {
        check_state(&data)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Seeds and regressions
// ---------------------------------------------------------------------------------------------

/// The committed seeds are what they claim: the engine accepts the valid config and state file.
#[test]
fn fuzz_seeds_are_valid_inputs() {
    let seeds = fuzz_dir().join("seeds");
    let config = std::fs::read_to_string(seeds.join("config/full")).unwrap();
    let config = Config::parse(&config, Path::new("full")).unwrap();
    assert_eq!(config.apps.len(), 2);
    let state = PersistedState::from_bytes(&std::fs::read(seeds.join("state_file/three_sessions")).unwrap()).unwrap();
    assert_eq!(state.sessions.len(), 3);
    let state = PersistedState::from_bytes(&std::fs::read(seeds.join("state_file/with_budget")).unwrap()).unwrap();
    assert_eq!(state.limiter.expect("a budget").clients.len(), 2);
    let cookie = std::fs::read_to_string(seeds.join("cookie/jupyter")).unwrap();
    assert_eq!(tokens_from_cookie_headers([cookie.as_str()].into_iter(), COOKIE_NAME).len(), 1);
}

/// Every input under `fuzz/regressions/<target>/` (each one crashed a target once) now passes
/// the same checks as above.
#[test]
fn fuzz_regressions_pass() {
    let dir = fuzz_dir().join("regressions");
    let mut count = 0;
    for target in ["cookie", "form", "return_url", "config", "state_file"] {
        let Ok(entries) = std::fs::read_dir(dir.join(target)) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            let result = match target {
                "cookie" => {
                    let text = String::from_utf8_lossy(&data);
                    for token in tokens_from_cookie_headers(text.split('\n'), COOKIE_NAME) {
                        assert!(is_token_shape(token.expose()));
                    }
                    Ok(())
                }
                "form" => {
                    let form = parse_form(&data);
                    let now = form.iter().find(|(k, _)| k == "t").and_then(|(_, v)| v.parse().ok()).unwrap_or(NOW);
                    check_form_fields(&form, now).map(|_| ())
                }
                "return_url" => check_return_path(&String::from_utf8_lossy(&data)),
                "config" => {
                    if let Ok(text) = std::str::from_utf8(&data) {
                        if let Ok(config) = Config::parse(text, Path::new("r.toml")) {
                            assert_eq!(Config::parse(&toml::to_string(&config).unwrap(), Path::new("r.toml")).unwrap(), config);
                        }
                    }
                    Ok(())
                }
                "state_file" => check_state(&data),
                _ => unreachable!(),
            };
            if let Err(e) = result {
                panic!("{}: {e}", path.display());
            }
            count += 1;
        }
    }
    eprintln!("{count} fuzz regression inputs replayed");
}
