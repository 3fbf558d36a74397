//! Outbound webhooks (action steps, provisioning), delivered from the outbox
//! and signed like Slack signs its requests:
//! `X-Accessbot-Signature: v0=hex(HMAC-SHA256(secret, "v0:{timestamp}:{body}"))`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::outbox::{Deliverer, Delivery};
use crate::store::ClaimedJob;
use crate::workflow::model::{Notice, WebhookPurpose};
use crate::workflow::Workflow;

/// The outbox kind of webhook notices.
pub use crate::workflow::ports::WEBHOOK_KIND as WEBHOOK;

/// Reads a secret by its environment variable name.
pub type SecretLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

pub struct WebhookDeliverer {
    http: reqwest::Client,
    /// Reads a secret by environment variable name (tests inject their own).
    secrets: SecretLookup,
    /// Set after the workflow exists; told each webhook's final outcome.
    workflow: OnceLock<Arc<Workflow>>,
}

impl WebhookDeliverer {
    pub fn new(secrets: SecretLookup) -> WebhookDeliverer {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        WebhookDeliverer { http, secrets, workflow: OnceLock::new() }
    }

    pub fn set_workflow(&self, wf: Arc<Workflow>) {
        let _ = self.workflow.set(wf);
    }

    fn parse(job: &ClaimedJob) -> Option<(String, Option<String>, serde_json::Value, WebhookPurpose)> {
        match Notice::deserialize(&job.item.payload).ok()? {
            Notice::Webhook { url, secret_env, body, purpose } => Some((url, secret_env, body, purpose)),
            _ => None,
        }
    }
}

#[async_trait]
impl Deliverer for WebhookDeliverer {
    async fn deliver(&self, job: &ClaimedJob) -> Delivery {
        let Some((url, secret_env, body, _)) = Self::parse(job) else {
            return Delivery::Failed("unreadable webhook payload".into());
        };
        let body = body.to_string();
        // The URL may carry credentials; every error below names only its redacted form.
        let shown = crate::redact::redact_url(&url);
        let mut req = self.http.post(&url).header("content-type", "application/json");
        if let Some(name) = secret_env {
            let Some(secret) = (self.secrets)(&name).filter(|s| !s.is_empty()) else {
                return Delivery::Failed(format!("the secret environment variable {name} is not set"));
            };
            let ts = chrono::Utc::now().timestamp().to_string();
            let sig = crate::signing::sign(&secret, &ts, body.as_bytes());
            req = req.header("x-accessbot-request-timestamp", ts).header("x-accessbot-signature", sig);
        }
        match req.body(body).send().await {
            Err(e) => Delivery::Retry {
                after: None,
                error: format!("webhook {shown}: {}", crate::redact::http_error(e)),
                rate_limited: false,
            },
            Ok(r) if r.status().is_success() => Delivery::Done,
            Ok(r) if r.status().as_u16() == 429 => {
                let after = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok())
                    .map(Duration::from_secs);
                Delivery::Retry { after, error: format!("webhook {shown}: HTTP 429"), rate_limited: false }
            }
            Ok(r) if r.status().is_server_error() => Delivery::Retry {
                after: None,
                error: format!("webhook {shown}: HTTP {}", r.status()),
                rate_limited: false,
            },
            Ok(r) => Delivery::Failed(format!("webhook {shown}: HTTP {}", r.status())),
        }
    }

    async fn settled(&self, job: &ClaimedJob, error: Option<&str>) {
        let (Some(wf), Some((_, _, _, purpose))) = (self.workflow.get(), Self::parse(job)) else { return };
        if let Err(e) = wf.webhook_settled(&purpose, error).await {
            tracing::error!(error = %e, job = job.id, "could not record a webhook's outcome");
        }
    }
}

/// Sends each outbox row to the deliverer for its kind.
pub struct DeliveryRouter {
    pub chat: Arc<dyn Deliverer>,
    pub webhooks: Arc<dyn Deliverer>,
    pub okta: Arc<dyn Deliverer>,
}

impl DeliveryRouter {
    fn route(&self, job: &ClaimedJob) -> &dyn Deliverer {
        match job.item.kind.as_str() {
            WEBHOOK => self.webhooks.as_ref(),
            crate::okta::OKTA => self.okta.as_ref(),
            _ => self.chat.as_ref(),
        }
    }
}

#[async_trait]
impl Deliverer for DeliveryRouter {
    async fn deliver(&self, job: &ClaimedJob) -> Delivery {
        self.route(job).deliver(job).await
    }

    async fn settled(&self, job: &ClaimedJob, error: Option<&str>) {
        self.route(job).settled(job, error).await
    }
}
