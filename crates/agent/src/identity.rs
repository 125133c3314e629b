//! Who is typing: a Slack user id becomes a Carapulse actor through `chatops.user_map`, or —
//! when email lookup is on and a bot token is set — through the profile email from Slack's
//! `users.info`. Unknown users are refused; nobody acts as the agent itself.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Mutex;

use carapulse_core::config::ChatOpsConfig;

/// How long a looked-up email is trusted before asking Slack again.
const CACHE_TTL: Duration = Duration::from_secs(600);

/// The person behind a Slack user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub slack_user: String,
    pub actor: String,
    pub email: Option<String>,
    pub roles: Vec<String>,
}

/// Resolves Slack users.
#[derive(Debug)]
pub struct Identities {
    user_map: BTreeMap<String, String>,
    lookup: Option<(String, String)>,
    default_roles: Vec<String>,
    approvers: Vec<String>,
    http: reqwest::Client,
    cache: Mutex<HashMap<String, (String, Instant)>>,
}

impl Identities {
    pub fn new(cfg: &ChatOpsConfig, http: reqwest::Client) -> Self {
        let lookup = match (&cfg.slack_bot_token, cfg.email_lookup) {
            (Some(token), true) if !token.is_empty() => Some((
                cfg.slack_api_base.trim_end_matches('/').to_owned(),
                token.clone(),
            )),
            _ => None,
        };
        Self {
            user_map: cfg.user_map.clone(),
            lookup,
            default_roles: cfg.default_roles.clone(),
            approvers: cfg.approver_actors.clone(),
            http,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn person(&self, slack_user: &str, actor: String, email: Option<String>) -> Person {
        let mut roles = self.default_roles.clone();
        if self.approvers.iter().any(|a| a == &actor) && !roles.iter().any(|r| r == "approver") {
            roles.push("approver".into());
        }
        Person {
            slack_user: slack_user.to_owned(),
            actor,
            email,
            roles,
        }
    }

    /// The person behind `slack_user`, or why they cannot act.
    pub async fn resolve(&self, slack_user: &str) -> Result<Person, String> {
        if let Some(actor) = self.user_map.get(slack_user) {
            return Ok(self.person(slack_user, actor.clone(), None));
        }
        let Some((base, token)) = &self.lookup else {
            return Err(format!(
                "your Slack account ({slack_user}) is not mapped to a Carapulse user; ask an admin to add it to chatops.user_map"
            ));
        };
        if let Some((email, at)) = self.cache.lock().await.get(slack_user) {
            if at.elapsed() < CACHE_TTL {
                return Ok(self.person(slack_user, email.clone(), Some(email.clone())));
            }
        }
        let response = self
            .http
            .get(format!("{base}/users.info"))
            .bearer_auth(token)
            .query(&[("user", slack_user)])
            .send()
            .await
            .map_err(|e| format!("could not ask Slack who you are: {e}"))?;
        let body: Value = response
            .json()
            .await
            .map_err(|e| format!("Slack users.info answer unreadable: {e}"))?;
        if body.get("ok").and_then(Value::as_bool) != Some(true) {
            let err = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown error");
            return Err(format!("Slack users.info failed: {err}"));
        }
        let user = &body["user"];
        if user.get("deleted").and_then(Value::as_bool) == Some(true)
            || user.get("is_bot").and_then(Value::as_bool) == Some(true)
        {
            return Err("deactivated users and bots cannot act".into());
        }
        let email = user
            .pointer("/profile/email")
            .and_then(Value::as_str)
            .map(str::to_lowercase)
            .ok_or("your Slack profile has no email the agent may read (users:read.email scope)")?;
        self.cache
            .lock()
            .await
            .insert(slack_user.to_owned(), (email.clone(), Instant::now()));
        Ok(self.person(slack_user, email.clone(), Some(email)))
    }
}
