//! HTML escaping, the one way every page (and the Apple profile's XML, whose text rules are the
//! same) puts a dynamic value into markup.

/// Escapes `&`, `<`, `>`, `"` and `'` so `s` is safe as HTML text and in a quoted attribute.
#[must_use]
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
