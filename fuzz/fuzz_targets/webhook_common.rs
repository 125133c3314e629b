// Shared by the webhook targets: the invariants every parsed event keeps.
use carapulse_core::webhooks::{parse_webhook, MAX_ALERTS};

pub fn check(source: &str, data: &[u8]) {
    // The first byte picks which delivery headers are present (GitHub, GitLab, none).
    let (selector, body) = data.split_first().map_or((0, data), |(s, b)| (*s, b));
    let header = |name: &str| match (selector % 3, name) {
        (1, "x-github-event") => Some("push".to_owned()),
        (1, "x-github-delivery") => Some("72d3162e-cc78-11e3-81ab-4c9367dc0958".to_owned()),
        (2, "x-gitlab-event") => Some("Push Hook".to_owned()),
        _ => None,
    };
    if let Ok(events) = parse_webhook(source, header, body, "body-hash") {
        assert!(events.len() <= MAX_ALERTS.max(1));
        for e in events {
            assert!(!e.fingerprint.is_empty());
            assert!(e.fingerprint.chars().count() <= 200);
            assert!(e.status.chars().count() <= 64);
            if source == "alertmanager" {
                assert!(e.status == "firing" || e.status == "resolved");
                assert!(e.alert.is_some());
            }
        }
    }
}
