//! The Slack agent end to end: a real gateway on a fresh database, the real agent, and a mock
//! Slack (users.info and response_url) — signatures, each command, the button flow, identity
//! mapping, separation of duties.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use carapulse_core::auth::{mint_dev_token, DevTokenRequest};
use carapulse_core::testing::{TestDatabase, TEST_JWT_SECRET};

const SECRET: &str = "slack-signing-secret-for-tests";

fn token(sub: &str, roles: &[&str]) -> String {
    let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    mint_dev_token(&DevTokenRequest {
        secret: TEST_JWT_SECRET,
        issuer: "carapulse-dev",
        audience: None,
        subject: sub,
        tenant: "acme",
        roles: &roles,
        email: None,
        ttl_secs: 3600,
        tenant_claim: "tenant_id",
        roles_claim: "groups",
    })
    .unwrap()
}

struct Env {
    agent: String,
    gateway: String,
    slack: MockServer,
    http: reqwest::Client,
    db: TestDatabase,
    stops: Vec<tokio_util::sync::CancellationToken>,
    replies: std::sync::atomic::AtomicUsize,
}

async fn start(channels: Vec<String>) -> Env {
    carapulse_core::telemetry::init("agent-test");
    let db = TestDatabase::create().await;
    let gw = gateway::Application::build(db.config()).await.unwrap();
    let gateway_url = format!("http://127.0.0.1:{}", gw.port());
    let gw_stop = gw.shutdown_token();
    tokio::spawn(gw.run_until_stopped());

    let slack = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/users.info"))
        .and(query_param("user", "U_CAROL"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "user": {"id": "U_CAROL", "deleted": false, "is_bot": false, "profile": {"email": "Carol@Example.com"}}})))
        .mount(&slack)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/users.info"))
        .and(query_param("user", "U_ZED"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": false, "error": "user_not_found"})),
        )
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&slack)
        .await;

    let mut config = db.config();
    config.chatops.slack_signing_secret = Some(SECRET.into());
    config.chatops.slack_bot_token = Some("xoxb-test-bot-token".into());
    config.chatops.gateway_url = Some(gateway_url.clone());
    config.chatops.gateway_token = Some(token("slack-agent", &["chatops", "operator", "approver"]));
    config.chatops.listen_addr = "127.0.0.1:0".into();
    config.chatops.user_map = [("U_ALICE", "alice"), ("U_BOB", "bob")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    config.chatops.approver_actors = vec!["bob".into()];
    config.chatops.allowed_channels = channels;
    config.chatops.slack_api_base = format!("{}/api", slack.uri());
    config.context.environment = "staging".into();
    config.context.namespace = "web".into();
    let agent = agent::Application::build(config).await.unwrap();
    let agent_url = format!("http://127.0.0.1:{}", agent.port());
    let agent_stop = agent.shutdown_token();
    tokio::spawn(agent.run_until_stopped());
    Env {
        agent: agent_url,
        gateway: gateway_url,
        slack,
        http: reqwest::Client::new(),
        db,
        stops: vec![agent_stop, gw_stop],
        replies: Default::default(),
    }
}

fn sign(ts: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Env {
    async fn post_signed(
        &self,
        route: &str,
        body: &str,
        ts: i64,
        signature: Option<String>,
    ) -> (u16, String) {
        let mut req = self
            .http
            .post(format!("{}/slack/commands{route}", self.agent))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", ts.to_string())
            .body(body.to_owned());
        if let Some(sig) = signature {
            req = req.header("x-slack-signature", sig);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    fn next_reply_path(&self) -> String {
        let n = self
            .replies
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        format!("/respond/{n}")
    }

    /// Sends `/assistant <text>` as `user` and returns the Block Kit reply posted to its response_url.
    async fn command(&self, user: &str, channel: &str, text: &str) -> Value {
        let reply_path = self.next_reply_path();
        let body = format!(
            "token=x&team_id=T1&team_domain=acme&channel_id={channel}&channel_name=ops&user_id={user}&user_name=u&command=%2Fassistant&text={}&response_url={}&trigger_id=1.2.3",
            enc(text),
            enc(&format!("{}{reply_path}", self.slack.uri()))
        );
        let now = chrono::Utc::now().timestamp();
        let (status, ack) = self
            .post_signed("", &body, now, Some(sign(now, &body)))
            .await;
        assert_eq!(status, 200, "{ack}");
        if !ack.contains("Working on it") {
            return serde_json::from_str(&ack).unwrap();
        }
        self.reply(&reply_path).await
    }

    async fn click(&self, user: &str, action_id: &str, plan_id: &str) -> Value {
        let reply_path = self.next_reply_path();
        let payload = json!({
            "type": "block_actions",
            "team": {"id": "T1", "domain": "acme"},
            "user": {"id": user, "username": "u", "team_id": "T1"},
            "api_app_id": "A1",
            "container": {"type": "message", "message_ts": "1.2", "channel_id": "C1", "is_ephemeral": true},
            "trigger_id": "1.2.3",
            "channel": {"id": "C1", "name": "ops"},
            "response_url": format!("{}{reply_path}", self.slack.uri()),
            "actions": [{"type": "button", "action_id": action_id, "block_id": "b1", "value": plan_id, "action_ts": "1.3"}]
        });
        let body = format!("payload={}", enc(&payload.to_string()));
        let now = chrono::Utc::now().timestamp();
        let (status, text) = self
            .post_signed("/interactions", &body, now, Some(sign(now, &body)))
            .await;
        assert_eq!(status, 200, "{text}");
        self.reply(&reply_path).await
    }

    async fn reply(&self, reply_path: &str) -> Value {
        for _ in 0..100 {
            let found = self
                .slack
                .received_requests()
                .await
                .unwrap()
                .into_iter()
                .find(|r| r.url.path() == reply_path);
            if let Some(r) = found {
                return serde_json::from_slice(&r.body).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no reply posted to {reply_path}");
    }

    async fn gateway_get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.gateway))
            .bearer_auth(token("admin", &["admin", "approver"]))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn stop(self) {
        for s in &self.stops {
            s.cancel();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.db.drop_now().await;
    }
}

fn text_of(reply: &Value) -> String {
    reply.to_string()
}

fn button_value(reply: &Value, action: &str) -> Option<String> {
    reply["blocks"].as_array()?.iter().find_map(|b| {
        b["elements"].as_array()?.iter().find_map(|e| {
            (e["action_id"] == action).then(|| e["value"].as_str().unwrap().to_owned())
        })
    })
}

#[tokio::test]
async fn signatures_are_checked_before_anything_else() {
    let env = start(vec![]).await;
    let body = "user_id=U_ALICE&channel_id=C1&text=help&command=%2Fassistant&team_id=T1&response_url=https%3A%2F%2Fhooks.slack.com%2Fx&trigger_id=1";
    let now = chrono::Utc::now().timestamp();
    let (status, _) = env.post_signed("", body, now, None).await;
    assert_eq!(status, 401, "unsigned");
    let (status, _) = env
        .post_signed("", body, now, Some(sign(now, "another body")))
        .await;
    assert_eq!(status, 401, "signature of another body");
    let old = now - 400;
    let (status, text) = env.post_signed("", body, old, Some(sign(old, body))).await;
    assert_eq!(status, 401, "replayed: {text}");
    assert!(text.contains("replay"));
    let (status, _) = env
        .post_signed("/interactions", "payload=%7B%7D", now, Some("v0=00".into()))
        .await;
    assert_eq!(status, 401, "interactions are verified too");
    let huge = format!("{body}&pad={}", "x".repeat(70 * 1024));
    let (status, _) = env
        .post_signed("", &huge, now, Some(sign(now, &huge)))
        .await;
    assert_eq!(status, 413);
    let (status, text) = env.post_signed("", body, now, Some(sign(now, body))).await;
    assert_eq!(status, 200);
    assert!(text.contains("Usage"), "{text}");
    // The same signed request again, inside the timestamp window: a replay, refused.
    let (status, text) = env.post_signed("", body, now, Some(sign(now, body))).await;
    assert_eq!(status, 401, "replayed within the window: {text}");
    assert!(text.contains("already received"), "{text}");
    let metrics = env
        .http
        .get(format!("{}/metrics", env.agent))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("carapulse_agent_refused_signatures_total 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("carapulse_agent_process_resident_memory_bytes "),
        "process metrics on every service: {metrics}"
    );
    let ready = env
        .http
        .get(format!("{}/readyz", env.agent))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    env.stop().await;
}

#[tokio::test]
async fn commands_and_buttons_act_as_the_person() {
    let env = start(vec!["C1".into()]).await;

    // plan: created by alice through the agent.
    let reply = env
        .command("U_ALICE", "C1", "plan scale web to 4 from 2")
        .await;
    let text = text_of(&reply);
    assert!(text.contains("Plan created"), "{text}");
    assert!(text.contains("kubectl scale"), "{text}");
    let plan_id = button_value(&reply, "carapulse_approve").expect("approve button");
    assert_eq!(
        button_value(&reply, "carapulse_deny").as_deref(),
        Some(plan_id.as_str())
    );
    let plan = env.gateway_get(&format!("/v1/plans/{plan_id}")).await;
    assert_eq!(plan["created_by"], "alice");
    assert_eq!(plan["planner"], "rules");
    let events = env
        .gateway_get(&format!("/v1/audit/events?resource_id={plan_id}"))
        .await;
    assert_eq!(events["data"][0]["actor"]["id"], "alice");
    assert_eq!(events["data"][0]["actor"]["via"], "slack-agent", "{events}");

    // alice cannot approve her own plan (and has no approver role through Slack).
    let reply = env
        .command("U_ALICE", "C1", &format!("approve {plan_id}"))
        .await;
    assert!(text_of(&reply).contains(":warning:"), "{reply}");
    assert_eq!(
        env.gateway_get(&format!("/v1/plans/{plan_id}")).await["approval_state"],
        "pending"
    );

    // bob approves with the button.
    let reply = env.click("U_BOB", "carapulse_approve", &plan_id).await;
    assert_eq!(reply["replace_original"], true);
    assert!(text_of(&reply).contains("approved by bob"), "{reply}");
    let approved = env.gateway_get("/v1/approvals?status=approved").await;
    assert_eq!(approved["data"][0]["approver"], "bob");
    assert_eq!(approved["data"][0]["source"], "slack");

    // carol is found by email; bob denies her plan with the command.
    let reply = env.command("U_CAROL", "C1", "plan restart web").await;
    let carol_plan = button_value(&reply, "carapulse_deny").expect("deny button");
    assert_eq!(
        env.gateway_get(&format!("/v1/plans/{carol_plan}")).await["created_by"],
        "carol@example.com"
    );
    let reply = env
        .command(
            "U_BOB",
            "C1",
            &format!("deny {carol_plan} not during the freeze"),
        )
        .await;
    assert!(text_of(&reply).contains("denied by bob"), "{reply}");
    let denied = env.gateway_get("/v1/approvals?status=denied").await;
    assert_eq!(denied["data"][0]["note"], "not during the freeze");

    // status of a real execution, and of an unknown one.
    let exec: Value = env
        .http
        .post(format!("{}/v1/plans/{plan_id}/execute", env.gateway))
        .bearer_auth(token("alice", &["operator"]))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let exec_id = exec["execution_id"]
        .as_str()
        .expect("execution id")
        .to_owned();
    let reply = env
        .command("U_BOB", "C1", &format!("status {exec_id}"))
        .await;
    assert!(
        text_of(&reply).contains(&exec_id) && text_of(&reply).contains("pending"),
        "{reply}"
    );
    let reply = env
        .command("U_BOB", "C1", "status 01929a3e-7c1b-7cc2-9c3e-1b2a3c4d5e6f")
        .await;
    assert!(text_of(&reply).contains(":warning:"), "{reply}");

    // continue/rollback reach the gateway's decision route as the person: this execution has
    // no analysis waiting, which the gateway says.
    let reply = env
        .command(
            "U_BOB",
            "C1",
            &format!("continue {exec_id} checked by hand"),
        )
        .await;
    assert!(
        text_of(&reply).contains("no analysis of it is waiting"),
        "{reply}"
    );
    let decisions = env
        .gateway_get(&format!(
            "/v1/audit/events?action=execution.decision&resource_id={exec_id}"
        ))
        .await;
    assert_eq!(decisions["data"][0]["actor"]["id"], "bob", "{decisions}");

    // audit trail of the plan.
    let reply = env
        .command("U_BOB", "C1", &format!("audit {plan_id}"))
        .await;
    let text = text_of(&reply);
    assert!(
        text.contains("plan.create") && text.contains("approval.approved"),
        "{text}"
    );

    // Refusals: unknown Slack user, wrong channel, malformed ids.
    let reply = env.command("U_ZED", "C1", "plan restart web").await;
    assert!(text_of(&reply).contains("user_not_found"), "{reply}");
    let reply = env.command("U_BOB", "C9", "plan restart web").await;
    assert!(
        text_of(&reply).contains("does not take commands in this channel"),
        "{reply}"
    );
    let reply = env.command("U_BOB", "C1", "status ../../v1/audit").await;
    assert!(
        text_of(&reply).contains("not a valid execution id"),
        "{reply}"
    );
    env.stop().await;
}
