//! The OpenAPI 3.1 document, generated from the handlers' annotations and types.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::{ObjectBuilder, Ref, ResponseBuilder, Type};

use super::{admin, catalog, dto, error, log_event, logs, requests, settings};

/// Every REST API operation: `X-Rate-Limit-*` on each response, and the 429;
/// the old catalog path is deprecated.
struct RateLimits;

fn rate_headers(op: &mut Operation) {
    let int = || ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0));
    for (_, resp) in op.responses.responses.iter_mut() {
        if let utoipa::openapi::RefOr::T(r) = resp {
            for (name, what) in [
                ("X-Rate-Limit-Limit", "Calls allowed per minute with this token"),
                ("X-Rate-Limit-Remaining", "Calls left in the window"),
                ("X-Rate-Limit-Reset", "When the window is full again (epoch seconds)"),
            ] {
                r.headers
                    .entry(name.into())
                    .or_insert_with(|| HeaderBuilder::new().schema(int()).description(Some(what)).build());
            }
        }
    }
}

fn too_many() -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description("Too many calls with this token (E0000047): 600 per minute, per replica")
        .header("Retry-After", HeaderBuilder::new().schema(ObjectBuilder::new().schema_type(Type::Integer)).build())
        .content(
            "application/json",
            utoipa::openapi::ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
        )
        .build()
}

impl Modify for RateLimits {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        for (path, item) in api.paths.paths.iter_mut() {
            if !path.starts_with("/governance/") && !path.starts_with("/api/v1/") {
                continue;
            }
            let ops = [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
            for op in ops.into_iter().flatten() {
                op.responses.responses.entry("429".into()).or_insert_with(|| too_many().into());
                rate_headers(op);
                if path == "/governance/api/v2/catalog/entries" {
                    op.deprecated = Some(utoipa::openapi::Deprecated::True);
                    op.description =
                        Some("Deprecated: use /governance/api/v2/catalogs/default/entries (Okta's path).".into());
                }
            }
        }
    }
}

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "ssws",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description("Authorization", "SSWS <token>"))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "accessbot API", description = "Access requests (Okta Governance Requests API v2 shape) and the system log (Okta /api/v1/logs shape)."),
    paths(requests::list, requests::create, requests::get_one, requests::patch, requests::post_message, logs::list, logs::catalog, admin::reload,
        catalog::list, catalog::get_one, catalog::user_entries, catalog::request_fields,
        settings::settings, settings::conditions, settings::sequences, settings::settings_write, settings::conditions_write, settings::sequences_write),
    components(schemas(
        dto::RequestDto, dto::RequestList, dto::CreateRequest, dto::MessageInput, dto::MessageDto, dto::PatchRequest,
        dto::CatalogList, dto::CatalogPage, dto::CatalogEntry, dto::RequestFields, dto::RequestField, log_event::LogEventDto,
        settings::RequestSettings, settings::RequestConditionList, settings::RequestSequenceList, error::ErrorBody, error::ErrorCause
    )),
    modifiers(&Security, &RateLimits),
    tags((name = "requests", description = "Access requests"), (name = "system log", description = "Append-only audit events"), (name = "catalog", description = "Requestable apps"), (name = "request settings", description = "Read-only views of the config file"), (name = "admin", description = "Operating the server"))
)]
pub struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
