//! Which answer the status page gives: JSON (the default, what curl's `*/*` gets),
//! Prometheus text, or the HTML page for a browser. Safe Rust.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Prometheus,
    Html,
}

/// The format, and whether it came from the `Accept` header (then the answer must say
/// `Vary: Accept`, or a cache could give curl the page a browser got).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    pub format: Format,
    pub negotiated: bool,
}

/// `?format=prometheus|html|json` decides (any other `format=` value is JSON, as before the
/// page existed); without one, the HTML page goes to a client that prefers `text/html` to
/// `application/json` (a browser), JSON to everyone else.
pub fn choose<'a>(args: &[u8], accept: impl Iterator<Item = &'a [u8]>) -> Choice {
    let explicit = |f| Choice { format: f, negotiated: false };
    let args: Vec<&[u8]> = args.split(|&b| b == b'&').collect();
    if args.contains(&&b"format=prometheus"[..]) {
        return explicit(Format::Prometheus);
    }
    if args.contains(&&b"format=html"[..]) {
        return explicit(Format::Html);
    }
    if args.iter().any(|a| a.starts_with(b"format=")) {
        return explicit(Format::Json);
    }
    let (mut html, mut json) = (0u32, 0u32);
    for range in accept.flat_map(|v| v.split(|&b| b == b',')) {
        let mut parts = range.split(|&b| b == b';');
        let media = parts.next().unwrap_or_default().trim_ascii();
        let q = parts.map(<[u8]>::trim_ascii).find_map(|p| p.strip_prefix(b"q=")).map(quality).unwrap_or(1000);
        if media.eq_ignore_ascii_case(b"text/html") {
            html = html.max(q);
        } else if media.eq_ignore_ascii_case(b"application/json") {
            json = json.max(q);
        }
    }
    Choice { format: if html > json { Format::Html } else { Format::Json }, negotiated: true }
}

/// A `q` value in thousandths; a malformed one counts as 0 (the range is not accepted).
fn quality(v: &[u8]) -> u32 {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse::<f32>().ok())
        .filter(|q| (0.0..=1.0).contains(q))
        .map(|q| (q * 1000.0).round() as u32)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(args: &str, accept: &[&str]) -> Choice {
        choose(args.as_bytes(), accept.iter().map(|s| s.as_bytes()))
    }

    const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

    #[test]
    fn the_query_string_decides_first() {
        assert_eq!(pick("format=prometheus", &[BROWSER]).format, Format::Prometheus);
        assert_eq!(pick("a=1&format=html", &[]).format, Format::Html);
        assert_eq!(pick("format=json", &[BROWSER]), Choice { format: Format::Json, negotiated: false });
        assert_eq!(pick("format=xml", &[BROWSER]).format, Format::Json);
        assert_eq!(pick("xformat=html", &[]).format, Format::Json);
    }

    #[test]
    fn browsers_get_the_page_and_everyone_else_json() {
        assert_eq!(pick("", &[BROWSER]), Choice { format: Format::Html, negotiated: true });
        assert_eq!(pick("", &["*/*"]), Choice { format: Format::Json, negotiated: true });
        assert_eq!(pick("", &[]).format, Format::Json);
        assert_eq!(pick("", &["application/json"]).format, Format::Json);
        assert_eq!(pick("", &["text/*"]).format, Format::Json);
        assert_eq!(pick("", &["application/json, text/html;q=0.5"]).format, Format::Json);
        assert_eq!(pick("", &["application/json;q=0.5", "TEXT/HTML"]).format, Format::Html);
        assert_eq!(pick("", &["text/html; q=0"]).format, Format::Json);
        assert_eq!(pick("", &["text/html;q=bad"]).format, Format::Json);
        assert_eq!(pick("", &["text/html, application/json"]).format, Format::Json, "a tie keeps JSON");
    }
}
