//! `Authorization: Bearer <token>` or `SSWS <token>`, checked against
//! `ACCESSBOT_API_TOKENS` in constant time. Tokens are never logged; events
//! name a token by a short hash.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::{ApiError, Kind};
use crate::config::Secret;
use crate::server::AppState;
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

/// An authenticated API caller.
pub struct ApiActor(pub Actor);

impl FromRequestParts<AppState> for ApiActor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let presented = header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("SSWS ")).map(str::trim);
        let id = match presented {
            Some(p) if !p.is_empty() => check(&state.api_tokens, p),
            _ => None,
        };
        match id {
            Some(id) => Ok(ApiActor(Actor {
                party: Party::new(id.clone(), None),
                kind: ActorType::ApiToken,
                name: Some(id),
                source: Source::Api,
            })),
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
}

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
}
