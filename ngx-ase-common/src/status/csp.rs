//! The status page's Content-Security-Policy: the browser may run the page's one inline
//! script and apply its one inline style (named by their SHA-256, so nothing injected would
//! run), fetch only from this nginx, and load nothing else.
//!
//! `build.rs` hashes `page.html` with these functions (it includes this file), so the module
//! ships the finished header value and no hashing code. Safe Rust, no dependencies.

const POLICY_HEAD: &str = "default-src 'none'; script-src 'sha256-";
const POLICY_MIDDLE: &str = "'; style-src 'sha256-";
const POLICY_TAIL: &str =
    "'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The policy for a page whose inline script and style have these base64 SHA-256 hashes.
pub fn policy(script_sha256: &str, style_sha256: &str) -> String {
    format!("{POLICY_HEAD}{script_sha256}{POLICY_MIDDLE}{style_sha256}{POLICY_TAIL}")
}

/// The text between the first `open` and the `close` after it, which must be the only such
/// element: a second one would run without being allowed, so the build fails instead.
pub fn element_text<'a>(page: &'a str, open: &str, close: &str) -> Result<&'a str, String> {
    let start = page.find(open).ok_or_else(|| format!("the status page has no {open}"))? + open.len();
    let len = page[start..].find(close).ok_or_else(|| format!("the status page's {open} is not closed"))?;
    if page[start + len..].contains(open) {
        return Err(format!("the status page has a second {open}"));
    }
    Ok(&page[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_hashes_and_nothing_else() {
        let p = policy("SCRIPT=", "STYLE=");
        assert!(p.starts_with("default-src 'none'; script-src 'sha256-SCRIPT='; style-src 'sha256-STYLE=';"), "{p}");
        assert!(!p.contains("unsafe") && !p.contains('*'), "{p}");
    }

    #[test]
    fn the_page_has_one_script_and_one_style() {
        let page = "<html><style>p{}</style><script>go()</script></html>";
        assert_eq!(element_text(page, "<script>", "</script>"), Ok("go()"));
        assert_eq!(element_text(page, "<style>", "</style>"), Ok("p{}"));
        let second = element_text("<script>a</script><script>b</script>", "<script>", "</script>");
        assert!(second.is_err_and(|e| e.contains("second")));
        assert!(element_text("<script>a", "<script>", "</script>").is_err());
        assert!(element_text("<p>", "<script>", "</script>").is_err());
    }

    #[test]
    fn the_built_policy_hashes_the_page_as_csp_wants() {
        use base64::Engine;
        use sha2::Digest;
        let hash = |s: &str| base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(s.as_bytes()));
        // The hash source of "alert('Hello, world.');" in the CSP specification.
        assert_eq!(hash("alert('Hello, world.');"), "qznLcsROx4GACP2dm0UCKCzCG+HiZ1guq6ZZDob/Tng=");
        let page = include_str!("page.html");
        let (script, style) =
            (element_text(page, "<script>", "</script>").unwrap(), element_text(page, "<style>", "</style>").unwrap());
        let built = include_str!(concat!(env!("OUT_DIR"), "/status_csp.txt"));
        assert_eq!(built, policy(&hash(script), &hash(style)));
    }
}
