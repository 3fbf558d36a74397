//! URLs fit for errors, logs, messages and the system log: no userinfo,
//! query or fragment, which is where credentials ride
//! (`http://svc:pw@host/grant?token=…`).

/// `scheme://host[:port]/path`; anything unparseable becomes its scheme and
/// host at most, or `(invalid url)`.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw.trim()) {
        Ok(u) if !u.cannot_be_a_base() => {
            let host = u.host_str().unwrap_or_default();
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{host}{port}{}", u.scheme(), u.path())
        }
        Ok(_) => INVALID.to_string(),
        Err(_) => fallback(raw.trim()),
    }
}

const INVALID: &str = "(invalid url)";

/// Scheme and host only, taken conservatively from text the parser refused.
fn fallback(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else { return INVALID.to_string() };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    // Userinfo may hold an unescaped '/', so cut at the last '@' before any query.
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let rest = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
    let host = rest.split('/').next().unwrap_or_default();
    let host_ok = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    if scheme_ok && host_ok {
        format!("{}://{host}", scheme.to_ascii_lowercase())
    } else {
        INVALID.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn keeps_scheme_host_port_and_path() {
        assert_eq!(redact_url("https://hooks.example.com/grant"), "https://hooks.example.com/grant");
        assert_eq!(redact_url("http://svc.internal:8080/a/b"), "http://svc.internal:8080/a/b");
        assert_eq!(redact_url("http://[::1]:9000/x"), "http://[::1]:9000/x");
        assert_eq!(redact_url("https://example.com"), "https://example.com/");
        assert_eq!(redact_url("postgres://db.internal/accessbot"), "postgres://db.internal/accessbot");
    }

    #[test]
    fn drops_userinfo_query_and_fragment() {
        let out = redact_url("http://svc:pw@host/grant?token=SECRET#frag");
        assert_eq!(out, "http://host/grant");
        assert_eq!(redact_url("https://user@host:8443/p?a=1&b=2"), "https://host:8443/p");
        assert_eq!(redact_url("postgres://accessbot:hunter2@db:5432/app?sslmode=require"), "postgres://db:5432/app");
    }

    #[test]
    fn unparseable_input_keeps_nothing_secret() {
        // A password with a '/' and a bad port: the parser refuses it.
        let out = redact_url("http://svc:p/w@host/grant?token=SECRET");
        assert_eq!(out, "http://host");
        assert_eq!(redact_url("http://svc:pw@host:99999/x?token=SECRET"), "http://host:99999");
        for bad in ["", "not a url", "host/path?token=SECRET", "mailto:a@b.c", "ht tp://x y@z?token=SECRET", "://x"] {
            let out = redact_url(bad);
            assert!(!out.contains("SECRET") && !out.contains('@'), "{bad:?} → {out}");
        }
        assert_eq!(redact_url("not a url"), "(invalid url)");
    }
}
