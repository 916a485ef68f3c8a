//! The invariants the fuzz targets check, one function per target, so that a target is one line
//! and a crash can be replayed from a plain test (`cargo +nightly fuzz run <t> <file>`).
//!
//! Every function panics (through `assert!`) when an invariant breaks; libFuzzer records the
//! input under `artifacts/<target>/`.

use std::path::Path;

use percent_encoding::percent_decode_str;
use simpleotp_engine::config::{Account, Config, Issuer, SessionSettings};
use simpleotp_engine::redirect::{is_safe_return_path, safe_return_path, DEFAULT_RETURN_PATH};
use simpleotp_engine::server::parse_form;
use simpleotp_engine::session::{tokens_from_cookie_headers, SessionStore, SessionToken};
use simpleotp_engine::state::PersistedState;
use simpleotp_engine::totp::{CodeRejected, Totp, TotpSecret};

/// Length of a session token in unpadded base64url (32 bytes).
pub const TOKEN_CHARS: usize = 43;
/// A fixed "now" for the targets that need one: 2023-11-14.
pub const FIXED_NOW: u64 = 1_700_000_000;
/// The fixed TOTP secret of the `form` target: RFC 6238's SHA-1 test secret.
pub const TOTP_SECRET: &[u8] = b"12345678901234567890";

/// `cookie`: the input is split at `\n` into several `Cookie` header values.
pub fn check_cookie(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let headers: Vec<&str> = text.split('\n').collect();
    // The seeds are cookies of a Jupyter protected on port 8888.
    let tokens = tokens_from_cookie_headers(headers.iter().copied(), "simpleotp_8888");
    assert!(tokens.len() <= 4, "at most four candidate tokens are kept, got {}", tokens.len());
    for token in &tokens {
        let exposed = token.expose();
        assert_eq!(exposed.len(), TOKEN_CHARS, "token of the wrong length");
        assert!(exposed.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "token outside base64url");
        assert_eq!(SessionToken::parse(exposed).as_ref(), Some(token), "token does not round-trip");
        assert!(text.contains(exposed), "a token that is not in the headers");
    }
    // The raw input, and each header, as a bare cookie value.
    for candidate in std::iter::once(&*text).chain(headers.iter().copied()) {
        if let Some(token) = SessionToken::parse(candidate) {
            assert_eq!(token.expose(), candidate);
            assert_eq!(candidate.len(), TOKEN_CHARS);
        } else {
            assert!(
                candidate.len() != TOKEN_CHARS || !candidate.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "a well-formed token was refused"
            );
        }
    }
}

/// `return_url`: the whole input (as UTF-8, lossily) is the return URL.
pub fn check_return_url(data: &[u8]) {
    let raw = String::from_utf8_lossy(data);
    check_return_path(&raw);
}

/// The open-redirect invariants for one return path; shared with `form`.
pub fn check_return_path(raw: &str) {
    let out = safe_return_path(raw);
    let safe = is_safe_return_path(raw);
    assert!(out == raw || out == DEFAULT_RETURN_PATH, "result is neither the input nor /");
    assert_eq!(safe, out == raw, "safe_return_path disagrees with is_safe_return_path");
    assert!(is_safe_return_path(out), "the result is not itself safe");
    assert_is_same_origin_path(out);
}

/// What every accepted return path looks like, at every layer of percent-decoding.
pub fn assert_is_same_origin_path(out: &str) {
    assert!(out.starts_with('/'), "{out:?} does not start with /");
    assert!(!out.starts_with("//") && !out.starts_with("/\\"), "{out:?} switches host");
    assert!(!out.contains('\\'), "{out:?} has a backslash");
    assert!(!out.chars().any(|c| c.is_control()), "{out:?} has a control character");
    assert!(out.bytes().all(|b| b.is_ascii_graphic()), "{out:?} is not printable ASCII");
    let mut layer = out.to_string();
    for _ in 0..8 {
        let decoded = percent_decode_str(&layer).decode_utf8_lossy().into_owned();
        assert!(!decoded.starts_with("//") && !decoded.starts_with("/\\"), "{out:?} decodes to a host switch");
        assert!(!decoded.contains('\\'), "{out:?} decodes to a backslash");
        assert!(!decoded.contains('\r') && !decoded.contains('\n'), "{out:?} decodes to CR/LF");
        assert!(!decoded.chars().any(|c| c.is_control()), "{out:?} decodes to a control character");
        assert!(!starts_with_scheme(&decoded), "{out:?} decodes to a scheme");
        // Browsers strip tabs and newlines and treat look-alike slashes as slashes; none may
        // appear in the second position either.
        let second = decoded.chars().nth(1);
        assert!(!matches!(second, Some('/' | '\\' | '\u{FF0F}' | '\u{2215}' | '\u{FF3C}' | '\u{29F8}' | '\u{2044}')), "{out:?} decodes to a host switch");
        if decoded == layer {
            break;
        }
        layer = decoded;
    }
}

/// `scheme:` at the start (RFC 3986: a letter, then letters, digits, `+`, `-`, `.`).
fn starts_with_scheme(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once(':') else { return false };
    let mut chars = scheme.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic()) && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// `form`: the body is parsed, `next` goes through the redirect check, `code` through TOTP
/// verification at a fixed time (or at the time in a `t` field, to reach the clock's edges).
pub fn check_form(data: &[u8]) {
    let form = parse_form(data);
    for (key, value) in &form {
        // into_owned() replaces invalid UTF-8; the result is always a String, never a panic.
        let _ = (key.len(), value.len());
    }
    let get = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    check_return_path(get("next").unwrap_or("/"));
    let now = get("t").and_then(|t| t.parse::<u64>().ok()).unwrap_or(FIXED_NOW);
    let code = get("code").unwrap_or("");
    let totp = Totp::new(&TotpSecret::from_bytes(TOTP_SECRET.to_vec()).unwrap(), &Issuer::parse("SimpleOTP").unwrap(), &Account::parse("fuzz@localhost").unwrap());
    let stripped: String = code.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    let well_formed = stripped.len() == 6 && stripped.bytes().all(|b| b.is_ascii_digit());
    match totp.verify(code, now, None) {
        Err(CodeRejected::Malformed) => assert!(!well_formed, "a six-digit code was called malformed"),
        Err(CodeRejected::Replayed) => panic!("replay reported with no previous step"),
        Err(CodeRejected::Wrong) => assert!(well_formed),
        Ok(step) => {
            assert!(well_formed);
            let current = Totp::step_at(now);
            assert!(step + 1 >= current && step <= current.saturating_add(1), "matched a step outside ±1");
            assert_eq!(totp.verify(code, now, Some(step)), Err(CodeRejected::Replayed), "the same code was accepted twice");
        }
    }
}

/// `config`: parse + validate; whatever succeeds must survive a TOML round trip unchanged.
pub fn check_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("fuzz.toml");
    let Ok(config) = Config::parse(text, path) else { return };
    config.validate().expect("parse() returned a config that validate() refuses");
    let compact = toml::to_string(&config).expect("a parsed config serializes");
    let again = Config::parse(&compact, path).unwrap_or_else(|e| panic!("serialized config does not parse again: {e}\n{compact}"));
    assert_eq!(again, config, "config changed in a round trip:\n{compact}");
    let pretty = toml::to_string_pretty(&config).expect("a parsed config serializes (pretty)");
    assert_eq!(Config::parse(&pretty, path).expect("pretty config parses"), config);
}

/// `state_file`: load the file, rebuild the store from it and use it.
pub fn check_state_file(data: &[u8]) {
    let state = match PersistedState::from_bytes(data) {
        Ok(state) => state,
        Err(message) => {
            assert_error_quotes_nothing(&message, data);
            return;
        }
    };
    let now = state.last_totp_step.unwrap_or(FIXED_NOW);
    let settings = SessionSettings::default();
    let count = state.sessions.len();
    let mut store = SessionStore::from_sessions(settings, state.sessions.clone(), now);
    assert!(store.len() <= count);
    let listed = store.list(now);
    assert!(listed.len() <= store.len());
    for pair in listed.windows(2) {
        assert!(pair[0].created_at >= pair[1].created_at, "list is not newest first");
    }
    for info in &listed {
        assert!(info.expires_at > now || info.created_at > now || info.last_seen > now, "an expired session is listed");
    }
    store.purge_expired(now);
    assert_eq!(store.list(now).len(), store.len(), "purge left expired sessions behind");
    let later = now.saturating_add(settings.lifetime.as_secs());
    store.list(later);
    store.purge_expired(later);
    // Whatever budget the file claims, restoring it neither panics nor exceeds the settings.
    if let Some(snapshot) = &state.limiter {
        let start = std::time::Instant::now();
        let settings = simpleotp_engine::limiter::LimiterSettings::default();
        let mut limiter = simpleotp_engine::limiter::Limiter::restore(settings, snapshot, start, now.saturating_mul(1000));
        let status = limiter.status(start);
        assert!(status.locked_clients.iter().all(|(_, left)| *left <= settings.ip_max_lockout), "a restored lockout is longer than the maximum");
        let again = limiter.snapshot(start, now.saturating_mul(1000));
        assert!(again.bucket_milli_tokens <= u64::from(settings.global_burst) * 1000, "a restored bucket holds more than a full one");
    }
    // What is persisted again reads back the same.
    let again = PersistedState { sessions: store.snapshot(), ..state.clone() };
    let bytes = serde_json::to_vec(&again).expect("state serializes");
    let reread = PersistedState::from_bytes(&bytes).expect("a saved state reads back");
    assert_eq!(reread.sessions.len(), again.sessions.len());
    if let Some(first) = listed.first() {
        store.revoke(&first.id);
    }
    store.revoke_all();
    assert!(store.is_empty());
}

/// A parse error names what is wrong in fixed words and numbers only: never the file's bytes
/// (they hold token hashes).
pub fn assert_error_quotes_nothing(message: &str, data: &[u8]) {
    let shape_ok = if let Some(rest) = message.strip_prefix("it is not valid (line ") {
        // "<n>, column <n>: <Io|Syntax|Data|Eof> error)"
        let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
        let rest = rest.strip_prefix(", column ").unwrap_or("!");
        let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
        matches!(rest, ": Io error)" | ": Syntax error)" | ": Data error)" | ": Eof error)")
    } else if let Some(rest) = message.strip_prefix("it has format version ") {
        let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
        rest.starts_with(", this program reads version ")
    } else {
        false
    };
    assert!(shape_ok, "unexpected error text: {message:?}");
    // Inputs made only of the message's own words could trivially be "in" it; anything with a
    // JSON character or a byte the templates never use must not be.
    let templated = data.iter().all(|b| b.is_ascii_alphanumeric() || b" ,:()".contains(b));
    if data.len() > 8 && !templated {
        assert!(!message.as_bytes().windows(data.len()).any(|w| w == data), "the error message quotes the input");
    }
}
