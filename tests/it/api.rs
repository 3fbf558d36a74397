//! The REST API: Okta Governance Requests v2 and System Log shapes.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(app: &TestApp) -> Api {
        Api { base: app.base.clone(), http: reqwest::Client::new() }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(API_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        (status, res.json().await.unwrap_or(Value::Null), headers)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (s, b, _) = self.call(reqwest::Method::GET, path, None).await;
        (s, b)
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, b, _) = self.call(reqwest::Method::POST, path, Some(body)).await;
        (s, b)
    }

    async fn create(&self, app: &str, user: &str, justification: &str) -> (StatusCode, Value) {
        self.post(
            "/governance/api/v2/requests",
            json!({"requested": {"type": "CATALOG_ENTRY", "entryId": app},
                   "requestedFor": {"type": "SLACK_USER", "externalId": user},
                   "requesterFieldValues": [{"id": "justification", "value": justification}]}),
        )
        .await
    }

    /// All ids across pages of `query`, following `next` links.
    async fn walk(&self, query: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut url = format!("{}/governance/api/v2/requests?{query}", self.base);
        loop {
            let res = self.http.get(&url).bearer_auth(API_TOKEN).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            let body: Value = res.json().await.unwrap();
            ids.extend(body["data"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()));
            match body["_links"]["next"]["href"].as_str() {
                Some(n) => url = n.to_string(),
                None => return ids,
            }
        }
    }
}

fn assert_okta_error(body: &Value, code: &str) {
    assert_eq!(body["errorCode"], code, "{body}");
    assert_eq!(body["errorLink"], code);
    assert!(body["errorId"].as_str().unwrap().starts_with("oae"));
    assert!(body["errorSummary"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(body["errorCauses"].is_array());
}

async fn tokens_are_required(b: Backend) {
    let app = spawn_app(b).await;
    let url = format!("{}/governance/api/v2/requests", app.base);
    let http = reqwest::Client::new();
    for auth in [None, Some("Bearer wrong"), Some("Bearer "), Some("Basic dGVzdA=="), Some("test-api-token-2a9f")] {
        let mut req = http.get(&url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(res.headers().contains_key("www-authenticate"));
        assert_okta_error(&res.json().await.unwrap(), "E0000004");
    }
    for auth in [format!("Bearer {API_TOKEN}"), format!("SSWS {API_TOKEN}"), "SSWS second-token".into()] {
        let res = http.get(&url).header("authorization", auth).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    // The document is public.
    assert_eq!(http.get(format!("{}/openapi.json", app.base)).send().await.unwrap().status(), StatusCode::OK);
}

async fn create_runs_the_chat_workflow(b: Backend) {
    let app = spawn_app(b).await;
    let api = Api::new(&app);
    let (status, r) = api.create("github", "U0REQ", "for the Q3 audit").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("req") && id.len() == 20);
    assert_eq!(r["status"], "SUBMITTED", "Okta's 202 is SUBMITTED");
    assert_eq!(r["requestApproval"]["type"], "OKTA");
    assert_eq!(r["requestApproval"]["providerName"], "accessbot");
    assert!(r.get("grantStatus").is_none() && r.get("revocationStatus").is_none(), "absent, not null: {r}");
    assert_eq!(api.get(&format!("/governance/api/v2/requests/{id}")).await.1["status"], "PENDING");
    assert_eq!(
        r["requested"],
        json!({"type": "CATALOG_ENTRY", "entryId": "github", "resourceId": "github", "resourceType": "APPLICATION"})
    );
    assert_eq!(r["requestedFor"]["type"], "SLACK_USER");
    assert_eq!(r["requestedFor"]["externalId"], "U0REQ");
    assert_eq!(r["requesterFieldValues"][0]["value"], "for the Q3 audit");
    assert_eq!(r["requestApproval"]["steps"][0]["groupName"], "Security Team");
    assert!(r["_links"]["self"]["href"].as_str().unwrap().ends_with(&format!("/governance/api/v2/requests/{id}")));
    app.drain().await;
    assert_eq!(app.slack.dms_to("U0BOB").len(), 1, "approvers are asked in Slack");
    assert_eq!(app.slack.dms_to("U0REQ").len(), 1, "the requester is told in Slack");

    let ev = &app.events(&id).await[0];
    assert_eq!(ev.event_type, "app.access_request.request");
    assert_eq!(ev.actor.kind.as_str(), "API_TOKEN");
    assert!(ev.actor.id.starts_with("tok_") && !ev.actor.id.contains(API_TOKEN));
    assert_eq!(ev.debug_context.debug_data["source"], "API");

    // Asking again returns the open request.
    let (status, again) = api.create("github", "U0REQ", "again").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], r["id"]);

    // Decided in chat, visible in the API.
    assert_eq!(app.click("U0BOB", "approve", &id, 0).await, StatusCode::OK);
    let (status, got) = api.get(&format!("/governance/api/v2/requests/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["status"], "APPROVED");
    assert_eq!(got["grantStatus"], "GRANTED");
    assert_eq!(got["requestApproval"]["decisions"][0]["deciderId"], "U0BOB");
    assert_eq!(got["requestApproval"]["decisions"][0]["decision"], "APPROVE");
}

async fn create_validation_and_errors(b: Backend) {
    let app = spawn_app(b).await;
    let api = Api::new(&app);
    let post_raw = |body: &'static str| {
        let http = reqwest::Client::new();
        let url = format!("{}/governance/api/v2/requests", app.base);
        async move {
            let res = http
                .post(url)
                .bearer_auth(API_TOKEN)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (res.status(), res.json::<Value>().await.unwrap())
        }
    };
    let (s, e) = post_raw("{not json").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_okta_error(&e, "E0000001");
    let (s, e) = post_raw(r#"{"requested":{"type":"CATALOG_ENTRY","entryId":"github"}}"#).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "requestedFor missing: {e}");
    let (s, e) = post_raw(r#"{"requested":{"type":"CATALOG_ENTRY","entryId":"github"},"requestedFor":{"type":"SLACK_USER","externalId":"U0A"},"bogus":1}"#).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "unknown member: {e}");

    let (s, e) = api.create("nosuch", "U0REQ", "x").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_okta_error(&e, "E0000007");
    let (s, e) = api.create("github", "not-a-user", "x").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e["errorCauses"][0]["location"], "requestedFor.externalId");
    let (s, e) = api.create("salesforce", "U0REQ", "").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "justification is required: {e}");
    assert_eq!(e["errorCauses"][0]["location"], "justification");
    let (s, e) = api
        .post(
            "/governance/api/v2/requests",
            json!({"requested": {"type": "CATALOG_ENTRY", "entryId": "github"},
                   "requestedFor": {"type": "SLACK_USER", "externalId": "U0REQ"},
                   "requesterFieldValues": [{"id": "color", "value": "red"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e["errorCauses"][0]["location"], "color");

    // On behalf of someone else: refused while the setting is off, and logged.
    let (s, e) = api
        .post(
            "/governance/api/v2/requests",
            json!({"requested": {"type": "CATALOG_ENTRY", "entryId": "zoom"},
                   "requestedFor": {"type": "SLACK_USER", "externalId": "U0REQ"},
                   "requestedBy": {"type": "SLACK_USER", "externalId": "U0MGR"}}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_okta_error(&e, "E0000006");
    assert_eq!(app.events_of("security.request.blocked").await.len(), 1);
    assert!(app.open_request("U0REQ", "zoom").await.is_none());
    assert!(app.store().assignment("U0REQ", "zoom").await.unwrap().is_none());

    let (s, e) = api.get("/governance/api/v2/requests/reqAAAAAAAAAAAAAAAAA").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_okta_error(&e, "E0000007");
    let (s, _) = api.get("/governance/api/v2/requests/x'%20OR%201=1").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn on_behalf_requests_when_allowed(b: Backend) {
    let mut setup = Setup::new(b);
    setup.config =
        setup.config.replace("admins = [\"U0ROOT\"]", "admins = [\"U0ROOT\"]\nallow_request_on_behalf = true");
    let app = spawn_with(setup).await;
    let api = Api::new(&app);
    let (s, r) = api
        .post(
            "/governance/api/v2/requests",
            json!({"requested": {"type": "CATALOG_ENTRY", "entryId": "github"},
                   "requestedFor": {"type": "SLACK_USER", "externalId": "U0REQ"},
                   "requestedBy": {"type": "SLACK_USER", "externalId": "U0MGR"}}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{r}");
    assert_eq!(r["requestedBy"]["externalId"], "U0MGR");
    assert_eq!(r["requestedFor"]["externalId"], "U0REQ");
    // Neither the manager nor the beneficiary may approve it.
    let id = r["id"].as_str().unwrap();
    let req = app.request(id).await;
    assert!(req.steps[0].approvers.iter().all(|p| p.key() != "U0MGR" && p.key() != "U0REQ"));
}

async fn messages_reach_the_requester(b: Backend) {
    let app = spawn_app(b).await;
    let api = Api::new(&app);
    let (_, r) = api.create("github", "U0REQ", "x").await;
    let id = r["id"].as_str().unwrap();
    let path = format!("/governance/api/v2/requests/{id}/messages");
    let (s, m) = api.post(&path, json!({"message": "Ticket INC-42 was approved by the CAB"})).await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    assert_eq!(m["message"], "Ticket INC-42 was approved by the CAB");
    assert!(m["createdBy"].as_str().unwrap().starts_with("tok_"));
    app.drain().await;
    assert!(app.slack.dms_to("U0REQ").iter().any(|c| c.text().contains("Ticket INC-42 was approved by the CAB")));
    let ev = app.events(id).await;
    assert!(ev.iter().any(|e| e.event_type == "app.access_request.message" && e.actor.kind.as_str() == "API_TOKEN"));

    for bad in [json!({"message": ""}), json!({"message": "x".repeat(5001)}), json!({"text": "hi"})] {
        let (s, e) = api.post(&path, bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_okta_error(&e, "E0000001");
    }
    let (s, _) = api.post("/governance/api/v2/requests/reqAAAAAAAAAAAAAAAAA/messages", json!({"message": "hi"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn patch_cancels_once(b: Backend) {
    let app = spawn_app(b).await;
    let api = Api::new(&app);
    let (_, r) = api.create("github", "U0REQ", "x").await;
    let path = format!("/governance/api/v2/requests/{}", r["id"].as_str().unwrap());
    let (s, e, _) = api.call(reqwest::Method::PATCH, &path, Some(json!({"status": "APPROVED"}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_okta_error(&e, "E0000001");
    let (s, c, _) = api.call(reqwest::Method::PATCH, &path, Some(json!({"status": "CANCELED"}))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(c["status"], "CANCELED");
    assert_eq!(c["requestApproval"]["decisions"][0]["decision"], "CANCEL");
    let (s, e, _) = api.call(reqwest::Method::PATCH, &path, Some(json!({"status": "CANCELED"}))).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_okta_error(&e, "E0000195");
    app.drain().await;
    assert!(app.slack.updates_for("U0BOB")[0].text().contains("Canceled by tok_"));
}

async fn list_filters_every_operator(b: Backend) {
    let app = spawn_app(b).await;
    let api = Api::new(&app);
    let (_, a) = api.create("github", "U0AAA", "a").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (_, z) = api.create("zoom", "U0BBB", "b").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (_, c) = api.create("github", "U0CCC", "c").await;
    let mid = z["created"].as_str().unwrap().to_string();
    let ids = |v: &Value| -> Vec<String> {
        v["data"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
    };
    let (a, z, c) = (
        a["id"].as_str().unwrap().to_string(),
        z["id"].as_str().unwrap().to_string(),
        c["id"].as_str().unwrap().to_string(),
    );
    let cases: Vec<(String, Vec<&String>)> = vec![
        ("status eq \"PENDING\"".into(), vec![&a, &c]),
        ("status ne \"PENDING\"".into(), vec![&z]),
        ("grantStatus eq \"GRANTED\"".into(), vec![&z]),
        ("grantStatus ne \"GRANTED\"".into(), vec![&a, &c]),
        ("requestedFor eq \"U0CCC\"".into(), vec![&c]),
        ("requestedBy ne \"U0CCC\"".into(), vec![&a, &z]),
        ("resourceId eq \"github\"".into(), vec![&a, &c]),
        ("resourceType eq \"APPLICATION\"".into(), vec![&a, &z, &c]),
        (format!("created gt \"{mid}\""), vec![&c]),
        (format!("created ge \"{mid}\""), vec![&z, &c]),
        (format!("created lt \"{mid}\""), vec![&a]),
        (format!("created le \"{mid}\""), vec![&a, &z]),
        (format!("lastUpdated ge \"{mid}\""), vec![&z, &c]),
        ("resourceId eq \"github\" and not (requestedFor eq \"U0AAA\")".into(), vec![&c]),
        ("requestedFor eq \"U0AAA\" or requestedFor eq \"U0BBB\" and status eq \"PENDING\"".into(), vec![&a]),
        ("(requestedFor eq \"U0AAA\" or requestedFor eq \"U0BBB\") AND status EQ \"APPROVED\"".into(), vec![&z]),
    ];
    for (filter, want) in cases {
        let q = serde_urlencoded::to_string([("filter", filter.as_str())]).unwrap();
        let (s, body) = api.get(&format!("/governance/api/v2/requests?{q}")).await;
        assert_eq!(s, StatusCode::OK, "{filter}: {body}");
        assert_eq!(ids(&body), want.into_iter().cloned().collect::<Vec<_>>(), "{filter}");
    }
    let (_, desc) = api.get("/governance/api/v2/requests?orderBy=created%20desc").await;
    assert_eq!(ids(&desc), vec![c.clone(), z.clone(), a.clone()]);

    for (q, code) in [
        ("filter=status%20eq%20PENDING", "E0000001"),
        ("filter=statuz%20eq%20%22PENDING%22", "E0000001"),
        ("filter=created%20eq%20%22yesterday%22", "E0000001"),
        ("filter=status%20gt%20%22A%22", "E0000001"),
        ("filter=(status%20eq%20%22A%22", "E0000001"),
        ("orderBy=name", "E0000001"),
        ("limit=0", "E0000029"),
        ("limit=201", "E0000029"),
        ("limit=ten", "E0000029"),
        ("after=garbage!", "E0000029"),
    ] {
        let (s, e) = api.get(&format!("/governance/api/v2/requests?{q}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {e}");
        assert_okta_error(&e, code);
    }
    let (_, e) = api.get("/governance/api/v2/requests?filter=status%20eq%20PENDING").await;
    assert!(e["errorCauses"][0]["reason"].as_str().unwrap().contains("position 10"), "{e}");
}

async fn pagination_is_stable_while_requests_arrive(b: Backend) {
    let app = spawn_app(b).await;
    let api = Api::new(&app);
    let mut made = Vec::new();
    for i in 0..23 {
        let (_, r) = api.create("zoom", &format!("U0P{i:03}"), "x").await;
        made.push(r["id"].as_str().unwrap().to_string());
    }
    // Walk pages of 5, adding a request between pages: nothing skipped, nothing twice.
    let mut seen = Vec::new();
    let mut url = format!("{}/governance/api/v2/requests?limit=5&filter=resourceId%20eq%20%22zoom%22", app.base);
    let http = reqwest::Client::new();
    let mut pages = 0;
    loop {
        let res = http.get(&url).bearer_auth(API_TOKEN).send().await.unwrap();
        // One Link header per rel, as Okta sends them.
        let links: Vec<String> =
            res.headers().get_all("link").iter().map(|v| v.to_str().unwrap().to_string()).collect();
        assert!(links.iter().all(|l| !l.contains(", <")), "one rel per header: {links:?}");
        let link = links.join(", ");
        let body: Value = res.json().await.unwrap();
        assert!(links[0].ends_with("rel=\"self\""));
        seen.extend(body["data"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()));
        pages += 1;
        let (_, r) = api.create("zoom", &format!("U0N{pages:03}"), "late").await;
        made.push(r["id"].as_str().unwrap().to_string());
        match body["_links"]["next"]["href"].as_str() {
            Some(n) => {
                assert!(link.contains("rel=\"next\""));
                url = n.to_string();
            }
            None => {
                assert!(!link.contains("rel=\"next\""), "no next link on the last page");
                break;
            }
        }
    }
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), seen.len(), "no request twice");
    assert_eq!(&seen[..23], &made[..23], "every request that existed at the start, in order");
    // `after` is the last item's id, in any order; an unknown id is a 400.
    let (_, page) = api.get("/governance/api/v2/requests?limit=2").await;
    let next = page["_links"]["next"]["href"].as_str().unwrap().to_string();
    assert_eq!(next.split("after=").nth(1).unwrap(), page["data"][1]["id"].as_str().unwrap());
    let (s, rest) = api.get(&format!("/governance/api/v2/requests?after={}", made[1])).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(rest["data"][0]["id"], made[2].as_str());
    let (s, _) = api.get(&format!("/governance/api/v2/requests?orderBy=lastUpdated%20desc&after={}", made[1])).await;
    assert_eq!(s, StatusCode::OK);
    let (s, e) = api.get("/governance/api/v2/requests?after=req00000000000000000").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_okta_error(&e, "E0000029");
    assert_eq!(api.walk("limit=7").await.len(), made.len());
}

async fn system_log_api(b: Backend) {
    let app = spawn_app(b).await;
    let api = Api::new(&app);
    let (_, r) = api.create("github", "U0REQ", "x").await;
    let id = r["id"].as_str().unwrap().to_string();
    assert_eq!(app.click("U0BOB", "approve", &id, 0).await, StatusCode::OK);
    app.say("U0EVE", "admin pending").await;

    let (s, all) = api.get("/api/v1/logs").await;
    assert_eq!(s, StatusCode::OK);
    let all = all.as_array().unwrap().clone();
    assert!(all.len() >= 5);
    let e = &all[0];
    for key in
        ["uuid", "published", "eventType", "severity", "displayMessage", "actor", "target", "outcome", "debugContext"]
    {
        assert!(!e[key].is_null(), "{key} in {e}");
    }
    let types = |v: &Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|e| e["eventType"].as_str().unwrap().to_string()).collect()
    };
    let (_, by_type) = api.get("/api/v1/logs?filter=eventType%20eq%20%22app.access_request.approver.approve%22").await;
    assert_eq!(types(&by_type), ["app.access_request.approver.approve"]);
    assert_eq!(by_type[0]["debugContext"]["debugData"]["approverType"], "GROUP");
    let q = serde_urlencoded::to_string([("filter", format!("target.id eq \"{id}\""))]).unwrap();
    let (_, by_target) = api.get(&format!("/api/v1/logs?{q}")).await;
    assert_eq!(
        types(&by_target),
        [
            "app.access_request.request",
            "app.access_request.approver.approve",
            "application.user_membership.add",
            "app.access_request.grant"
        ]
    );
    let (_, by_actor) = api.get("/api/v1/logs?filter=actor.id%20eq%20%22U0EVE%22").await;
    assert_eq!(types(&by_actor), ["security.request.blocked"]);
    assert_eq!(by_actor[0]["actor"]["type"], "USER");
    assert_eq!(by_actor[0]["outcome"]["result"], "DENY");

    // Paging and sort order.
    let mut url = format!("{}/api/v1/logs?limit=2&sortOrder=DESCENDING", app.base);
    let mut seen = Vec::new();
    let http = reqwest::Client::new();
    loop {
        let res = http.get(&url).bearer_auth(API_TOKEN).send().await.unwrap();
        let link = res.headers()["link"].to_str().unwrap().to_string();
        let page: Value = res.json().await.unwrap();
        seen.extend(page.as_array().unwrap().iter().map(|e| e["uuid"].as_str().unwrap().to_string()));
        match link.split(", ").find(|l| l.ends_with("rel=\"next\"")) {
            Some(n) => url = n.trim_start_matches('<').split('>').next().unwrap().to_string(),
            None => break,
        }
    }
    let mut expected: Vec<String> = all.iter().map(|e| e["uuid"].as_str().unwrap().to_string()).collect();
    expected.reverse();
    assert_eq!(seen, expected);

    let future = "2999-01-01T00:00:00Z";
    let (_, none) = api.get(&format!("/api/v1/logs?since={future}")).await;
    assert_eq!(none.as_array().unwrap().len(), 0);
    let (_, until) = api.get(&format!("/api/v1/logs?until={future}")).await;
    assert_eq!(until.as_array().unwrap().len(), all.len());
    for (q, code) in [
        ("filter=eventType%20gt%20%22x%22", "E0000001"),
        ("filter=published%20eq%20%222026-01-01T00:00:00Z%22", "E0000001"),
        ("filter=client.id%20eq%20%22x%22", "E0000001"),
        ("since=yesterday", "E0000001"),
        ("sortOrder=UP", "E0000001"),
        ("limit=1001", "E0000029"),
        ("after=%%%", "E0000029"),
    ] {
        let (s, e) = api.get(&format!("/api/v1/logs?{q}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {e}");
        assert_okta_error(&e, code);
    }
}

async fn catalog_and_openapi(b: Backend) {
    let app = spawn_app(b).await;
    let api = Api::new(&app);
    let (s, cat) = api.get("/governance/api/v2/catalog/entries").await;
    assert_eq!(s, StatusCode::OK);
    let sf = cat["data"].as_array().unwrap().iter().find(|e| e["id"] == "salesforce").unwrap().clone();
    assert_eq!(sf["approvalRequired"], true);
    assert_eq!(sf["steps"][1], json!({"type": "GROUP", "approver": "Security Team"}));
    assert_eq!(sf["fields"][0]["required"], true);

    let (_, doc) = api.get("/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    let documented: Vec<String> = paths
        .iter()
        .flat_map(|(p, ops)| ops.as_object().unwrap().keys().map(move |m| format!("{} {p}", m.to_uppercase())))
        .collect();
    let mut documented = documented;
    documented.sort();
    assert_eq!(
        documented,
        [
            "DELETE /governance/api/v2/request-settings",
            "DELETE /governance/api/v2/resources/{resourceId}/request-conditions",
            "DELETE /governance/api/v2/resources/{resourceId}/request-sequences",
            "GET /api/v1/logs",
            "GET /governance/api/v2/catalog/entries",
            "GET /governance/api/v2/catalogs/default/entries",
            "GET /governance/api/v2/catalogs/default/entries/{entryId}",
            "GET /governance/api/v2/catalogs/default/entries/{entryId}/users/{userId}/request-fields",
            "GET /governance/api/v2/catalogs/default/user/{userId}/entries",
            "GET /governance/api/v2/request-settings",
            "GET /governance/api/v2/requests",
            "GET /governance/api/v2/requests/{id}",
            "GET /governance/api/v2/resources/{resourceId}/request-conditions",
            "GET /governance/api/v2/resources/{resourceId}/request-sequences",
            "PATCH /governance/api/v2/request-settings",
            "PATCH /governance/api/v2/requests/{id}",
            "PATCH /governance/api/v2/resources/{resourceId}/request-conditions",
            "PATCH /governance/api/v2/resources/{resourceId}/request-sequences",
            "POST /admin/reload",
            "POST /governance/api/v2/request-settings",
            "POST /governance/api/v2/requests",
            "POST /governance/api/v2/requests/{id}/messages",
            "POST /governance/api/v2/resources/{resourceId}/request-conditions",
            "POST /governance/api/v2/resources/{resourceId}/request-sequences",
            "PUT /governance/api/v2/request-settings",
            "PUT /governance/api/v2/resources/{resourceId}/request-conditions",
            "PUT /governance/api/v2/resources/{resourceId}/request-sequences",
        ]
    );
    // Every documented operation is served (401 without a token, never 404/405).
    let http = reqwest::Client::new();
    for op in &documented {
        let (method, path) = op.split_once(' ').unwrap();
        let path = path
            .replace("{id}", "reqAAAAAAAAAAAAAAAAA")
            .replace("{entryId}", "github")
            .replace("{resourceId}", "github")
            .replace("{userId}", "U0REQ");
        let res = http.request(method.parse().unwrap(), format!("{}{path}", app.base)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{op}");
    }
}

crate::both!(
    tokens_are_required,
    create_runs_the_chat_workflow,
    create_validation_and_errors,
    on_behalf_requests_when_allowed,
    messages_reach_the_requester,
    patch_cancels_once,
    list_filters_every_operator,
    pagination_is_stable_while_requests_arrive,
    system_log_api,
    catalog_and_openapi,
);
