//! The bodies of outbound webhooks: action steps' mapped fields and the
//! provisioning hook's grant/revoke events. Delivery and signing are the
//! outbox's business.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::*;
use crate::workflow::catalog::Webhook;

/// The value of an action-step source (`requester.email`, `field.region`, …) for a request.
fn source_value(req: &Request, source: &str) -> Value {
    match source {
        "request.id" => json!(req.id),
        "app.id" => json!(req.app_id),
        "app.name" => json!(req.app_name),
        "requester.id" => json!(req.requested_by.id),
        "requester.email" => json!(req.requested_by.email),
        "requestedFor.id" => json!(req.requested_for.id),
        "requestedFor.email" => json!(req.requested_for.email),
        "justification" | "field.justification" => json!(req.justification),
        "access.until" => json!(req.access_until),
        other => match other.strip_prefix("field.") {
            Some(id) => json!(req.field_values.iter().find(|f| f.id == id).map(|f| f.value.clone())),
            None => Value::Null,
        },
    }
}

/// `{"event":"action", "requestId", "step", "timestamp", "fields": {out: value}}`
pub fn action_body(req: &Request, step: usize, fields: &BTreeMap<String, String>, now: Timestamp) -> Value {
    let mapped: Map<String, Value> = fields.iter().map(|(out, src)| (out.clone(), source_value(req, src))).collect();
    json!({
        "event": "action",
        "requestId": req.id,
        "step": step + 1,
        "app": {"id": req.app_id, "name": req.app_name},
        "timestamp": now,
        "fields": mapped,
    })
}

/// The provisioning hook's notice for a grant or a revoke.
pub fn provisioning(
    hook: &Webhook,
    event: &str,
    request_id: Option<&str>,
    user: &Party,
    app_id: &str,
    expires: Option<Timestamp>,
    now: Timestamp,
) -> Notice {
    let body = json!({
        "event": event,
        "user": {"id": user.id, "email": user.email},
        "app": app_id,
        "requestId": request_id,
        "expires": expires,
        "timestamp": now,
    });
    let (request_id, user_id, app_id) = (request_id.map(str::to_string), user.id.clone(), app_id.to_string());
    let purpose = if event == "revoke" {
        WebhookPurpose::Revoke { request_id, user_id, app_id }
    } else {
        WebhookPurpose::Grant { request_id, user_id, app_id }
    };
    Notice::Webhook { url: hook.url.clone(), secret_env: hook.secret_env.clone(), body, purpose }
}
