//! The OpenAPI 3.1 document, generated from the handlers' annotations and types.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, dto, error, log_event, logs, requests};

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
    paths(requests::list, requests::create, requests::get_one, requests::patch, requests::post_message, logs::list, logs::catalog, admin::reload),
    components(schemas(
        dto::RequestDto, dto::RequestList, dto::CreateRequest, dto::MessageInput, dto::MessageDto, dto::PatchRequest,
        dto::CatalogList, dto::CatalogEntry, log_event::LogEventDto, error::ErrorBody, error::ErrorCause
    )),
    modifiers(&Security),
    tags((name = "requests", description = "Access requests"), (name = "system log", description = "Append-only audit events"), (name = "catalog", description = "Requestable apps"), (name = "admin", description = "Operating the server"))
)]
pub struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
