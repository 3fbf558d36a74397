//! Query parameters, opaque keyset cursors and `Link` headers.

use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{de::DeserializeOwned, Serialize};

use super::error::ApiError;
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

pub fn encode_cursor<T: Serialize>(c: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(c).unwrap_or_default())
}

pub fn decode_cursor<T: DeserializeOwned>(s: &str) -> Result<T, ApiError> {
    let bytes =
        URL_SAFE_NO_PAD.decode(s.trim()).map_err(|_| ApiError::paging("after", "not a cursor returned by this API"))?;
    serde_json::from_slice(&bytes).map_err(|_| ApiError::paging("after", "not a cursor returned by this API"))
}

/// `scheme://host` the caller used (honouring a proxy's X-Forwarded-Proto/Host).
pub fn base_url(headers: &HeaderMap) -> String {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let proto = h("x-forwarded-proto").unwrap_or_else(|| "http".into());
    let host = h("x-forwarded-host").or_else(|| h("host")).unwrap_or_else(|| "localhost".into());
    let proto = if proto == "https" { "https" } else { "http" };
    let host: String = host.chars().filter(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(*c)).collect();
    format!("{proto}://{host}")
}

/// `Link: <…>; rel="self", <…>; rel="next"`.
fn link_header(self_url: &str, next_url: Option<&str>) -> String {
    let mut out = format!("<{self_url}>; rel=\"self\"");
    if let Some(n) = next_url {
        out.push_str(&format!(", <{n}>; rel=\"next\""));
    }
    out
}
