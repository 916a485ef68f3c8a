//! Where to send the browser after a login: only ever a path on the same origin.
//!
//! The return URL comes from the request the browser first made (through nginx) and travels in a
//! query parameter and a form field, so an attacker can put anything in it. Browsers are
//! generous about what they treat as "another host": `//evil`, `/\evil`, `\/evil`, a scheme,
//! tabs or newlines inside (which browsers strip), or any of those percent-encoded. Rather than
//! enumerate tricks, the rule is an allow-list: a single leading `/`, then printable ASCII only,
//! no backslash anywhere, and the same must hold after percent-decoding (repeatedly, so that
//! double encoding does not help). Anything else falls back to `/`.

use percent_encoding::percent_decode_str;

/// The fallback destination.
pub const DEFAULT_RETURN_PATH: &str = "/";

/// Longer return paths are refused: they are never needed and make headers large.
pub const MAX_RETURN_PATH_LEN: usize = 2048;

/// Returns `raw` if it is a safe same-origin path (with its query intact), otherwise `/`.
pub fn safe_return_path(raw: &str) -> &str {
    if is_safe_return_path(raw) {
        raw
    } else {
        DEFAULT_RETURN_PATH
    }
}

/// See the module documentation for the rule.
pub fn is_safe_return_path(raw: &str) -> bool {
    if raw.len() > MAX_RETURN_PATH_LEN || !is_safe_path_text(raw) {
        return false;
    }
    // Decode up to a few layers deep: every layer must be safe too. Stop once decoding no
    // longer changes anything.
    let mut current = raw.to_string();
    for _ in 0..4 {
        let decoded = match percent_decode_str(&current).decode_utf8() {
            Ok(d) => d.into_owned(),
            // Invalid UTF-8 after decoding: nothing legitimate needs that in a return path.
            Err(_) => return false,
        };
        if decoded == current {
            return true;
        }
        if !is_safe_decoded_text(&decoded) {
            return false;
        }
        current = decoded;
    }
    // Still changing after four layers: someone is being clever.
    false
}

/// The rule for a decoded layer. Decoded text may hold spaces and letters of any script (a
/// `%20` or `caf%C3%A9` in a path is ordinary), but still no control character, no backslash,
/// no second leading slash, and no other non-ASCII symbol (that is where look-alike slashes such
/// as `／` or `∕` live).
fn is_safe_decoded_text(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next() == Some('/')
        && !matches!(chars.next(), Some('/') | Some('\\'))
        && s.chars().all(|c| (c.is_ascii_graphic() && c != '\\') || c == ' ' || (!c.is_ascii() && c.is_alphanumeric()))
}

fn is_safe_path_text(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.first() == Some(&b'/') && bytes.get(1) != Some(&b'/') && bytes.iter().all(|&b| b.is_ascii_graphic() && b != b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_ordinary_paths_with_queries() {
        for ok in ["/", "/lab", "/lab/tree?token=&a=b%20c", "/a/b#frag", "/caf%C3%A9", "/x?next=//y"] {
            assert_eq!(safe_return_path(ok), ok, "{ok}");
        }
    }

    /// Known open-redirect forms; every one must fall back to `/`.
    #[test]
    fn refuses_known_open_redirect_forms() {
        let payloads = [
            "//evil.com",
            "///evil.com",
            "////evil.com",
            "/\\evil.com",
            "\\/evil.com",
            "\\\\evil.com",
            "/%2F%2Fevil.com",
            "/%2fevil.com",
            "%2F%2Fevil.com",
            "/%5Cevil.com",
            "/%5cevil.com",
            "https://evil.com",
            "http:evil.com",
            "https:evil.com",
            "javascript:alert(1)",
            "data:text/html,x",
            "/\tevil.com",
            "/\t/evil.com",
            "/\n/evil.com",
            "/\r\n/evil.com",
            "/%09/evil.com",
            "/%0A/evil.com",
            "/%0D%0ALocation:%20http://evil.com",
            "/%252F%252Fevil.com",
            "/%25252F%25252Fevil.com",
            "/／evil.com",
            "/\u{2215}evil.com",
            "/\u{FF3C}evil.com",
            "evil.com",
            "",
            " /x",
            "/x y",
            "/%00",
            "/%E2%80%AE",
            "/%2F/evil.com",
            "/.%2F/evil.com%5C",
        ];
        for p in payloads {
            assert_eq!(safe_return_path(p), "/", "{p:?} was accepted");
        }
    }

    #[test]
    fn refuses_overlong_paths() {
        assert_eq!(safe_return_path(&format!("/{}", "a".repeat(MAX_RETURN_PATH_LEN))), "/");
    }

    proptest! {
        /// Whatever comes in, what goes out is a path on this origin: it starts with exactly one
        /// slash and has no character a browser could read as a host switch.
        #[test]
        fn output_is_always_a_same_origin_path(raw in ".{0,64}") {
            let out = safe_return_path(&raw);
            prop_assert!(out.starts_with('/'));
            prop_assert!(!out.starts_with("//"));
            prop_assert!(!out.contains('\\'));
            prop_assert!(out.bytes().all(|b| b.is_ascii_graphic()));
            let decoded = percent_decode_str(out).decode_utf8_lossy();
            prop_assert!(!decoded.starts_with("//") && !decoded.contains('\\'));
        }

        /// Prefixes and encodings of a host switch never survive.
        #[test]
        fn host_switches_never_survive(
            lead in prop::sample::select(vec!["//", "/\\", "\\\\", "/%2F", "/%2f/", "/%5C", "/%252F%252F", "/\t/", "/%09/", "https://", "/%0d%0a"]),
            host in "[a-z]{1,10}\\.[a-z]{2,3}",
            rest in "[a-zA-Z0-9/?=&]{0,20}",
        ) {
            let payload = format!("{lead}{host}{rest}");
            prop_assert_eq!(safe_return_path(&payload), "/");
        }

        /// Safe input is returned untouched (path and query intact).
        #[test]
        fn plain_paths_are_kept(path in "/[a-zA-Z0-9_.~-]{1,20}(/[a-zA-Z0-9_.~-]{1,10}){0,3}(\\?[a-z]{1,5}=[a-z0-9]{0,5})?") {
            prop_assert_eq!(safe_return_path(&path), path.as_str());
        }
    }
}
