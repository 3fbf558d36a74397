//! Query parameters, opaque keyset cursors and `Link` headers.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{de::DeserializeOwned, Serialize};

use super::error::ApiError;
use crate::config::IpRange;
use crate::state::AppState;
use crate::store::filter::{Attribute, Filter};

/// Query parameters in order (repeated names: the last one wins).
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<&str>) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or_default())
            .map_err(|e| ApiError::validation("query", "query", format!("malformed query string: {e}")))?;
        Ok(Params(pairs))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// `limit` in `1..=max`, `default` when absent; anything else is a paging error.
    pub fn limit(&self, default: i64, max: i64) -> Result<i64, ApiError> {
        match self.get("limit") {
            None => Ok(default),
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::paging("limit", format!("limit must be an integer from 1 to {max}, got \"{v}\""))),
            },
        }
    }

    /// The same query with `after` replaced (for `next` links).
    pub fn with_after(&self, after: &str) -> String {
        let mut pairs: Vec<(&str, &str)> =
            self.0.iter().filter(|(k, _)| k != "after").map(|(k, v)| (k.as_str(), v.as_str())).collect();
        pairs.push(("after", after));
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }

    pub fn query_string(&self) -> String {
        serde_urlencoded::to_string(&self.0).unwrap_or_default()
    }

    /// The `filter` parameter parsed for attributes `A`; a parse error is a 400 naming the position.
    pub fn filter<A: Attribute>(&self) -> Result<Option<Filter<A>>, ApiError> {
        match self.get("filter").map(str::trim).filter(|f| !f.is_empty()) {
            Some(f) => {
                super::scim::parse::<A>(f).map(Some).map_err(|e| ApiError::validation("filter", "query", e.to_string()))
            }
            None => Ok(None),
        }
    }

    /// This page's URL and, when `next_cursor` is given, the next page's.
    pub fn page_urls(&self, base: &str, path: &str, next_cursor: Option<String>) -> (String, Option<String>) {
        let self_url = format!("{base}{path}?{}", self.query_string()).trim_end_matches('?').to_string();
        let next_url = next_cursor.map(|c| format!("{base}{path}?{}", self.with_after(&c)));
        (self_url, next_url)
    }
}

/// `body` as JSON with the page's `Link` header.
pub fn paged<T: Serialize>(body: T, self_url: &str, next_url: Option<&str>) -> Response {
    let mut res = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&link_header(self_url, next_url)) {
        res.headers_mut().insert("link", v);
    }
    res
}

/// `body` as JSON with one `Link` header per rel, as Okta sends them.
pub fn paged_links<T: Serialize>(body: T, self_url: &str, next_url: Option<&str>) -> Response {
    let mut res = Json(body).into_response();
    let links = std::iter::once((self_url, "self")).chain(next_url.map(|n| (n, "next")));
    for (url, rel) in links {
        if let Ok(v) = HeaderValue::from_str(&format!("<{url}>; rel=\"{rel}\"")) {
            res.headers_mut().append("link", v);
        }
    }
    res
}

pub fn encode_cursor<T: Serialize>(c: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(c).unwrap_or_default())
}

pub fn decode_cursor<T: DeserializeOwned>(s: &str) -> Result<T, ApiError> {
    let bytes =
        URL_SAFE_NO_PAD.decode(s.trim()).map_err(|_| ApiError::paging("after", "not a cursor returned by this API"))?;
    serde_json::from_slice(&bytes).map_err(|_| ApiError::paging("after", "not a cursor returned by this API"))
}

/// Where the API's links point: `ACCESSBOT_PUBLIC_URL` (default the listen
/// address), or a trusted proxy's forwarded host.
#[derive(Clone, Debug)]
pub struct LinkSettings {
    /// No trailing slash.
    pub public_url: String,
    pub trusted_proxies: Vec<IpRange>,
}

impl LinkSettings {
    /// The base for links. `Host` and `X-Forwarded-*` are believed only from a
    /// trusted proxy: from anyone else they would let a caller point our links elsewhere.
    pub fn base_for(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> String {
        let trusted = peer.is_some_and(|ip| self.trusted_proxies.iter().any(|r| r.contains(ip)));
        if !trusted {
            return self.public_url.clone();
        }
        // A list (several proxies) starts with the client-facing value.
        let h = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let Some(host) = h("x-forwarded-host").or_else(|| h("host")) else { return self.public_url.clone() };
        let host: String = host.chars().filter(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(*c)).collect();
        if host.is_empty() {
            return self.public_url.clone();
        }
        let default_proto = if self.public_url.starts_with("https://") { "https" } else { "http" };
        let proto = match h("x-forwarded-proto").as_deref() {
            Some("https") => "https",
            Some("http") => "http",
            _ => default_proto,
        };
        format!("{proto}://{host}")
    }
}

/// The base URL for this request's links (see [`LinkSettings::base_for`]).
pub struct BaseUrl(pub String);

impl FromRequestParts<AppState> for BaseUrl {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Ok(BaseUrl(state.links.base_for(peer, &parts.headers)))
    }
}

/// `Link: <…>; rel="self", <…>; rel="next"`.
fn link_header(self_url: &str, next_url: Option<&str>) -> String {
    let mut out = format!("<{self_url}>; rel=\"self\"");
    if let Some(n) = next_url {
        out.push_str(&format!(", <{n}>; rel=\"next\""));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(proxies: &[&str]) -> LinkSettings {
        LinkSettings {
            public_url: "https://accessbot.example.com".into(),
            trusted_proxies: proxies.iter().filter_map(|p| IpRange::parse(p)).collect(),
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_peers() {
        let evil =
            headers(&[("host", "evil.example"), ("x-forwarded-host", "evil.example"), ("x-forwarded-proto", "http")]);
        let peer: Option<IpAddr> = "10.1.2.3".parse().ok();
        assert_eq!(settings(&[]).base_for(peer, &evil), "https://accessbot.example.com");
        assert_eq!(settings(&["10.9.0.0/16"]).base_for(peer, &evil), "https://accessbot.example.com");
        assert_eq!(settings(&["10.9.0.0/16"]).base_for(None, &evil), "https://accessbot.example.com");
        assert_eq!(settings(&["10.0.0.0/8"]).base_for(peer, &evil), "http://evil.example");
        // Host alone, from a trusted peer; the scheme falls back to the public URL's.
        assert_eq!(
            settings(&["10.1.2.3"]).base_for(peer, &headers(&[("host", "api.internal:8080")])),
            "https://api.internal:8080"
        );
        let listed = headers(&[("x-forwarded-host", "first.example, second.example"), ("x-forwarded-proto", "https")]);
        assert_eq!(settings(&["10.1.2.3"]).base_for(peer, &listed), "https://first.example");
        assert_eq!(settings(&["10.1.2.3"]).base_for(peer, &headers(&[])), "https://accessbot.example.com");
    }
}
