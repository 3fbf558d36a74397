//! The bodies of outbound webhooks: action steps' mapped fields and the
//! provisioning notices of a grant or revoke (the hook's events, Okta's calls). Delivery and signing are the
//! outbox's business.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::*;
use crate::workflow::catalog::{App, Webhook};
use crate::workflow::model::ProvisionAction;

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

/// Every provisioning notice of a grant or a revoke: the app's hook and its Okta target.
pub fn provisioning(
    app: Option<&App>,
    action: ProvisionAction,
    request_id: Option<&str>,
    user: &Party,
    expires: Option<Timestamp>,
    now: Timestamp,
) -> Vec<Notice> {
    let Some(app) = app else { return Vec::new() };
    let mut out = Vec::new();
    if let Some(hook) = &app.provisioning {
        out.push(hook_notice(hook, action, request_id, user, &app.id, expires, now));
    }
    if let Some(target) = &app.okta {
        out.push(Notice::Okta {
            action,
            target: target.clone(),
            user: user.clone(),
            request_id: request_id.map(str::to_string),
            app_id: app.id.clone(),
        });
    }
    out
}

/// Whether a grant or revoke of `app` waits on an outside call (status PENDING until it settles).
pub fn provisioned(app: Option<&App>) -> bool {
    app.is_some_and(|a| a.provisioning.is_some() || a.okta.is_some())
}

/// The provisioning hook's notice for a grant or a revoke.
fn hook_notice(
    hook: &Webhook,
    action: ProvisionAction,
    request_id: Option<&str>,
    user: &Party,
    app_id: &str,
    expires: Option<Timestamp>,
    now: Timestamp,
) -> Notice {
    let body = json!({
        "event": action.as_str(),
        "user": {"id": user.id, "email": user.email},
        "app": app_id,
        "requestId": request_id,
        "expires": expires,
        "timestamp": now,
    });
    let purpose = action.purpose(request_id.map(str::to_string), user.id.clone(), app_id.to_string());
    Notice::Webhook { url: hook.url.clone(), secret_env: hook.secret_env.clone(), body, purpose }
}
