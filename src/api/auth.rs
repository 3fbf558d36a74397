//! `Authorization: Bearer <token>` or `SSWS <token>`, checked against
//! `ACCESSBOT_API_TOKENS` (full) and `ACCESSBOT_API_READ_TOKENS` (GET only) in constant time. Tokens are never logged; events
//! name a token by a short hash.

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams};
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::{ApiError, Kind};
use crate::config::Secret;
use crate::state::AppState;
use crate::workflow::engine::is_request_id;
use crate::workflow::{Actor, ActorType, Party, Source};

/// A stable, non-secret name for a token: `tok_` + 12 hex digits of its SHA-256.
pub fn token_id(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    format!("tok_{}", &hex::encode(digest)[..12])
}

/// Which configured token `presented` is, comparing against every one in constant time.
pub fn check(tokens: &[Secret], presented: &str) -> Option<String> {
    let presented_hash = Sha256::digest(presented.as_bytes());
    let mut found = None;
    for t in tokens {
        // Comparing fixed-length digests keeps the time independent of where bytes differ.
        let hash = Sha256::digest(t.expose().as_bytes());
        if bool::from(hash.ct_eq(&presented_hash)) {
            found = Some(token_id(t.expose()));
        }
    }
    found
}

/// What a token may do: `ACCESSBOT_API_TOKENS` everything, `ACCESSBOT_API_READ_TOKENS` only GET.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Read,
    Full,
}

/// Which token `presented` is and its scope; a token listed in both lists is full.
pub fn authenticate(full: &[Secret], read: &[Secret], presented: &str) -> Option<(String, Scope)> {
    // Both lists are always compared, so timing does not tell which one matched.
    let (f, r) = (check(full, presented), check(read, presented));
    f.map(|id| (id, Scope::Full)).or_else(|| r.map(|id| (id, Scope::Read)))
}

/// An authenticated API caller (any scope): enough for reads.
pub struct ApiActor(pub Actor);

/// A caller that may change things. The one place a read-only token is refused:
/// 403 `E0000006` and a `security.request.blocked` event.
pub struct ApiWriter(pub Actor);

/// The token in `Bearer <token>`, `SSWS <token>` or `SSWS<token>` (what Okta's
/// Python SDK sends: the scheme glued to the token); `None` for other schemes.
pub fn presented_token(header: &str) -> Option<&str> {
    let header = header.trim();
    let scheme_len = |s: &str| header.get(..s.len()).filter(|h| h.eq_ignore_ascii_case(s)).map(|_| s.len());
    if let Some(n) = scheme_len("Bearer ") {
        return header.get(n..).map(str::trim);
    }
    scheme_len("SSWS").and_then(|n| header.get(n..)).map(str::trim)
}

async fn caller(parts: &Parts, state: &AppState) -> Result<(Actor, Scope), ApiError> {
    let header = parts.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let presented = presented_token(header);
    let found = match presented {
        Some(p) if !p.is_empty() => authenticate(&state.api_tokens, &state.api_read_tokens, p),
        _ => None,
    };
    match found {
        Some((id, scope)) => Ok((
            Actor {
                party: Party::new(id.clone(), None),
                kind: ActorType::ApiToken,
                name: Some(id),
                source: Source::Api,
            },
            scope,
        )),
        None => {
            tracing::warn!(path = %parts.uri.path(), "api: missing or invalid token");
            let reason = if presented.is_some() {
                "invalid token"
            } else {
                "missing Authorization: Bearer <token> or SSWS <token>"
            };
            Err(ApiError::new(Kind::Authentication).summary("Invalid token provided").cause(
                reason,
                "Authorization",
                "header",
            ))
        }
    }
}

impl FromRequestParts<AppState> for ApiActor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        caller(parts, state).await.map(|(actor, _)| ApiActor(actor))
    }
}

impl FromRequestParts<AppState> for ApiWriter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let (actor, scope) = caller(parts, state).await?;
        if scope == Scope::Full {
            return Ok(ApiWriter(actor));
        }
        let route = parts.extensions.get::<MatchedPath>().map(|p| p.as_str()).unwrap_or_else(|| parts.uri.path());
        let action = format!("api {} {route}", parts.method);
        let id = RawPathParams::from_request_parts(parts, state)
            .await
            .ok()
            .and_then(|params| params.iter().find(|(k, v)| *k == "id" && is_request_id(v)).map(|(_, v)| v.to_string()));
        tracing::warn!(token = %actor.party.id, %action, "api: read-only token refused a write");
        if let Err(e) = state.workflow.refuse(&actor, &action, READ_ONLY, id.as_deref()).await {
            tracing::error!(error = %e, %action, "could not log a refused write");
        }
        Err(ApiError::new(Kind::Forbidden).cause(READ_ONLY, "Authorization", "header"))
    }
}

const READ_ONLY: &str =
    "this token is read-only (ACCESSBOT_API_READ_TOKENS): it may only read requests, the catalog and the system log";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_by_value_and_are_named_by_hash() {
        let tokens = vec![Secret::new("alpha"), Secret::new("beta")];
        assert_eq!(check(&tokens, "beta"), Some(token_id("beta")));
        assert_eq!(check(&tokens, "gamma"), None);
        assert_eq!(check(&tokens, "bet"), None);
        assert_eq!(check(&[], "alpha"), None);
        assert!(token_id("alpha").starts_with("tok_") && !token_id("alpha").contains("alpha"));
        assert_eq!(token_id("alpha").len(), 16);
    }

    #[test]
    fn authorization_forms_okta_clients_send() {
        assert_eq!(presented_token("Bearer abc"), Some("abc"));
        assert_eq!(presented_token("bearer  abc "), Some("abc"));
        assert_eq!(presented_token("SSWS abc"), Some("abc"));
        assert_eq!(presented_token("SSWSabc"), Some("abc"));
        assert_eq!(presented_token("ssws abc"), Some("abc"));
        assert_eq!(presented_token("SSWS"), Some(""));
        assert_eq!(presented_token("Basic abc"), None);
        assert_eq!(presented_token("Bearerabc"), None);
        assert_eq!(presented_token(""), None);
        assert_eq!(presented_token("é"), None);
    }

    #[test]
    fn scope_comes_from_the_list_and_full_wins() {
        let full = vec![Secret::new("writer"), Secret::new("both")];
        let read = vec![Secret::new("reader"), Secret::new("both")];
        assert_eq!(authenticate(&full, &read, "writer"), Some((token_id("writer"), Scope::Full)));
        assert_eq!(authenticate(&full, &read, "reader"), Some((token_id("reader"), Scope::Read)));
        assert_eq!(authenticate(&full, &read, "both"), Some((token_id("both"), Scope::Full)));
        assert_eq!(authenticate(&full, &read, "nobody"), None);
        assert_eq!(authenticate(&[], &read, "reader"), Some((token_id("reader"), Scope::Read)));
    }
}
