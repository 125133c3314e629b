//! Redaction of secrets from text before it is logged, stored, returned or sent to a model.
//!
//! Built-in families (always on): AWS access key ids and secret keys, `Authorization: Bearer`
//! values, PEM private keys, passwords in URLs/DSNs, Vault tokens, Slack tokens, GitHub tokens,
//! JWTs, and `password=`/`secret=`/`token=`/`api_key=` style assignments. Extra patterns from
//! config are added on top; an invalid extra pattern is a configuration error, not silently
//! dropped.

use std::borrow::Cow;

use regex::Regex;

/// What a secret is replaced with.
pub const MASK: &str = "[REDACTED]";

/// A compiled set of redaction rules.
#[derive(Debug, Clone)]
pub struct Redactor {
    rules: Vec<(Regex, Replace)>,
}

#[derive(Debug, Clone, Copy)]
enum Replace {
    /// Replace the whole match.
    Whole,
    /// Keep capture group 1 (a prefix such as `password=`) and mask the rest.
    KeepPrefix,
}

/// An extra pattern that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("redaction pattern {index} ({pattern:?}) is invalid: {message}")]
pub struct PatternError {
    pub index: usize,
    pub pattern: String,
    pub message: String,
}

const BUILTIN: &[(&str, Replace)] = &[
    // PEM private keys (any type), across lines.
    (
        r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?-----END [A-Z0-9 ]*PRIVATE KEY-----",
        Replace::Whole,
    ),
    // JWTs: three base64url segments, the first two starting with '{"' encoded (eyJ).
    (
        r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}",
        Replace::Whole,
    ),
    // AWS access key ids.
    (
        r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b",
        Replace::Whole,
    ),
    // AWS secret access keys in assignments.
    (
        r#"(?i)(aws_secret_access_key["']?\s*[:=]\s*["']?)[A-Za-z0-9/+=]{40}"#,
        Replace::KeepPrefix,
    ),
    // Bearer/Basic credentials in headers or text.
    (
        r"(?i)(\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}",
        Replace::KeepPrefix,
    ),
    // Passwords in URLs and DSNs: scheme://user:password@host
    (
        r"([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:)[^@\s/]+(@)",
        Replace::KeepPrefix,
    ),
    // Vault tokens.
    (r"\b(?:hvs|hvb|hvr)\.[A-Za-z0-9_-]{20,}", Replace::Whole),
    (r"\bs\.[A-Za-z0-9]{24}\b", Replace::Whole),
    // Slack tokens.
    (r"\bxox[abposr]-[A-Za-z0-9-]{10,}", Replace::Whole),
    (
        r"https://hooks\.slack\.com/services/[A-Za-z0-9/]+",
        Replace::Whole,
    ),
    // GitHub tokens.
    (
        r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}",
        Replace::Whole,
    ),
    (r"\bgithub_pat_[A-Za-z0-9_]{40,}", Replace::Whole),
    // GitLab personal tokens.
    (r"\bglpat-[A-Za-z0-9_-]{20,}", Replace::Whole),
    // Generic assignments: password=..., secret: ..., token=..., api_key=...
    (
        r#"(?i)(\b(?:password|passwd|secret|client_secret|token|api[_-]?key|access[_-]?key|private[_-]?key)["']?\s*[:=]\s*["']?)[^\s"',;&]{4,}"#,
        Replace::KeepPrefix,
    ),
];

impl Redactor {
    /// The built-in rules plus `extra` patterns (each replaced whole).
    pub fn new(extra: &[String]) -> Result<Self, PatternError> {
        let mut rules = Vec::with_capacity(BUILTIN.len() + extra.len());
        for (pattern, mode) in BUILTIN {
            // Built-in patterns are tested; a failure here is a programming error surfaced as a
            // pattern error rather than a panic.
            let re = Regex::new(pattern).map_err(|e| PatternError {
                index: 0,
                pattern: (*pattern).to_owned(),
                message: e.to_string(),
            })?;
            rules.push((re, *mode));
        }
        for (index, pattern) in extra.iter().enumerate() {
            if pattern.trim().is_empty() {
                continue;
            }
            let re = Regex::new(pattern).map_err(|e| PatternError {
                index,
                pattern: pattern.clone(),
                message: e.to_string(),
            })?;
            rules.push((re, Replace::Whole));
        }
        Ok(Self { rules })
    }

    /// A redactor with no rules, for content that is passed on verbatim and never shown.
    pub fn verbatim() -> Self {
        Self { rules: Vec::new() }
    }

    /// Masks every secret in `text`.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for (re, mode) in &self.rules {
            if !re.is_match(&out) {
                continue;
            }
            let replaced = match mode {
                Replace::Whole => re.replace_all(&out, MASK).into_owned(),
                Replace::KeepPrefix => re
                    .replace_all(&out, |caps: &regex::Captures<'_>| {
                        let prefix = caps.get(1).map(|m| m.as_str()).unwrap_or("");
                        let suffix = caps.get(2).map(|m| m.as_str()).unwrap_or("");
                        format!("{prefix}{MASK}{suffix}")
                    })
                    .into_owned(),
            };
            out = Cow::Owned(replaced);
        }
        out
    }

    /// Masks secrets in possibly non-UTF-8 output (invalid bytes become U+FFFD).
    pub fn redact_bytes(&self, bytes: &[u8]) -> String {
        self.redact(&String::from_utf8_lossy(bytes)).into_owned()
    }
}

impl Default for Redactor {
    fn default() -> Self {
        // Not unwrap_or_default: that would be this function calling itself.
        Self::new(&[]).unwrap_or_else(|_| Self::verbatim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> String {
        Redactor::new(&[]).unwrap().redact(text).into_owned()
    }

    #[test]
    fn builtins_compile() {
        assert_eq!(Redactor::new(&[]).unwrap().rules.len(), BUILTIN.len());
    }

    #[test]
    fn each_family_is_masked() {
        let cases = [
            ("key AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE"),
            (
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ),
            (
                "Authorization: Bearer abcdef0123456789xyz",
                "abcdef0123456789xyz",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY-----",
                "MIIEow",
            ),
            ("dsn postgres://app:s3cr3tP4ss@db:5432/x", "s3cr3tP4ss"),
            (
                "VAULT_TOKEN=hvs.CAESIJmYzYWQ1ZDU0LWVkYTAtNDc",
                "hvs.CAESIJmYzYWQ1ZDU0LWVkYTAtNDc",
            ),
            (
                "token s.abcdefghijklmnopqrstuvwx done",
                "s.abcdefghijklmnopqrstuvwx",
            ),
            (
                "slack xoxb-123456789012-abcdefghijkl",
                "xoxb-123456789012-abcdefghijkl",
            ),
            (
                "gh ghp_abcdefghijklmnopqrstuvwxyz0123456789",
                "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            ),
            (
                "pat github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789",
                "github_pat_11ABCDEFG",
            ),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJlLXZhbHVl",
                "eyJzdWIiOiJhIn0",
            ),
            ("password=hunter2hunter2 next", "hunter2hunter2"),
            ("{\"client_secret\": \"abcd1234efgh\"}", "abcd1234efgh"),
            ("api-key: 0123456789abcdef", "0123456789abcdef"),
        ];
        for (text, secret) in cases {
            let out = r(text);
            assert!(!out.contains(secret), "{text:?} -> {out:?}");
            assert!(out.contains(MASK), "{text:?} -> {out:?}");
        }
    }

    #[test]
    fn keeps_context_and_plain_text() {
        assert_eq!(r("password=hunter2hunter2"), format!("password={MASK}"));
        assert_eq!(
            r("postgres://app:pw1234@db/x"),
            format!("postgres://app:{MASK}@db/x")
        );
        let plain = "deployment.apps/web scaled to 3 replicas (token bucket refilled)";
        assert_eq!(r(plain), plain);
    }

    #[test]
    fn extra_patterns_and_invalid_ones() {
        let red = Redactor::new(&["internal-[0-9]{6}".into()]).unwrap();
        assert_eq!(red.redact("id internal-123456 ok"), format!("id {MASK} ok"));
        let err = Redactor::new(&["(".into()]).unwrap_err();
        assert_eq!(err.index, 0);
    }
}
