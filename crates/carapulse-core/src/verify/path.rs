//! Paths into a tool's JSON result.
//!
//! Why a syntax of our own: captures and expectations are written by people and language models
//! and evaluated by the orchestrator at 3 a.m.; they must be checkable at plan creation and
//! unable to run code. The grammar is deliberately small:
//!
//! ```text
//! path    := "." | segment+
//! segment := "." key | "[" index "]" | "[*]" | "[\"" quoted "\"]"
//! key     := [A-Za-z0-9_-]+          index := -?[0-9]+ (at most 6 digits)
//! ```
//!
//! A negative index counts from the end (`.status.history[-1].id` is the newest entry).
//!
//! `[*]` fans out over every element of an array (or value of an object), so one path can
//! select a series; everything else selects at most one value.

use serde_json::Value;

use super::SpecError;

/// Longest path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 256;
/// Most segments in one path.
pub const MAX_SEGMENTS: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
    /// Counted from the end: `[-1]` is stored as 1.
    FromEnd(usize),
    All,
}

/// A parsed path; construct with [`ValuePath::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuePath {
    text: String,
    segments: Vec<Segment>,
}

impl ValuePath {
    /// Parses `text`; `field` names it in errors.
    pub fn parse(text: &str, field: &str) -> Result<Self, SpecError> {
        let err = |m: String| SpecError::new(field, m);
        if text.is_empty() {
            return Err(err("a path is required (\".\" for the whole result)".into()));
        }
        if text.len() > MAX_PATH_LEN {
            return Err(err(format!("at most {MAX_PATH_LEN} bytes")));
        }
        if text == "." {
            return Ok(Self {
                text: text.to_owned(),
                segments: Vec::new(),
            });
        }
        let bytes = text.as_bytes();
        let mut segments = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'.' => {
                    let start = i + 1;
                    let mut end = start;
                    while end < bytes.len()
                        && (bytes[end].is_ascii_alphanumeric() || matches!(bytes[end], b'_' | b'-'))
                    {
                        end += 1;
                    }
                    if end == start {
                        return Err(err(format!(
                            "expected a key after '.' at byte {i} of {text:?} (keys are letters, digits, '_' and '-'; quote others as [\"key\"])"
                        )));
                    }
                    segments.push(Segment::Key(text[start..end].to_owned()));
                    i = end;
                }
                b'[' => {
                    let close = text[i..]
                        .find(']')
                        .map(|p| p + i)
                        .ok_or_else(|| err(format!("unclosed '[' at byte {i} of {text:?}")))?;
                    let inner = &text[i + 1..close];
                    let segment = if inner == "*" {
                        Segment::All
                    } else if let Some(quoted) =
                        inner.strip_prefix('"').and_then(|s| s.strip_suffix('"'))
                    {
                        if quoted.is_empty() || quoted.contains('"') || quoted.contains('\\') {
                            return Err(err(format!(
                                "a quoted key must be non-empty without '\"' or '\\\\': {inner}"
                            )));
                        }
                        Segment::Key(quoted.to_owned())
                    } else if !inner.is_empty()
                        && inner.len() <= 6
                        && inner.bytes().all(|b| b.is_ascii_digit())
                    {
                        Segment::Index(inner.parse().map_err(|_| err("bad index".into()))?)
                    } else if let Some(back) = inner.strip_prefix('-').filter(|d| {
                        !d.is_empty() && d.len() <= 6 && d.bytes().all(|b| b.is_ascii_digit())
                    }) {
                        match back.parse::<usize>() {
                            Ok(n) if n > 0 => Segment::FromEnd(n),
                            _ => return Err(err(format!("[{inner}]: -0 is not an index"))),
                        }
                    } else {
                        return Err(err(format!(
                            "[{inner}] is not an index, [*] or a quoted key"
                        )));
                    };
                    segments.push(segment);
                    i = close + 1;
                }
                other => {
                    return Err(err(format!(
                        "unexpected {:?} at byte {i} of {text:?}: a path starts with '.' or '['",
                        other as char
                    )))
                }
            }
            if segments.len() > MAX_SEGMENTS {
                return Err(err(format!("at most {MAX_SEGMENTS} segments")));
            }
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The key the path starts with (`.replicas_before.x` -> `replicas_before`).
    pub fn first_key(&self) -> Option<&str> {
        match self.segments.first() {
            Some(Segment::Key(k)) => Some(k),
            _ => None,
        }
    }

    /// Whether the path can select more than one value (`[*]`).
    pub fn fans_out(&self) -> bool {
        self.segments.contains(&Segment::All)
    }

    /// Every value the path selects in `root`, in document order; empty when nothing matches.
    pub fn select<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        let mut current = vec![root];
        for segment in &self.segments {
            let mut next = Vec::new();
            for value in current {
                match (segment, value) {
                    (Segment::Key(k), Value::Object(map)) => next.extend(map.get(k)),
                    (Segment::Index(n), Value::Array(items)) => next.extend(items.get(*n)),
                    (Segment::FromEnd(n), Value::Array(items)) => {
                        next.extend(items.len().checked_sub(*n).and_then(|i| items.get(i)))
                    }
                    (Segment::All, Value::Array(items)) => next.extend(items.iter()),
                    (Segment::All, Value::Object(map)) => next.extend(map.values()),
                    _ => {}
                }
            }
            current = next;
            if current.is_empty() {
                break;
            }
        }
        current
    }

    /// The single value the path selects, when there is exactly one.
    pub fn select_one<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        match self.select(root).as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }
}

impl std::fmt::Display for ValuePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(text: &str) -> ValuePath {
        ValuePath::parse(text, "path").unwrap()
    }

    #[test]
    fn selects_keys_indexes_and_series() {
        let doc = json!({
            "spec": {"replicas": 3},
            "metadata": {"annotations": {"deployment.kubernetes.io/revision": "7"}},
            "data": {"result": [
                {"metric": {"pod": "a"}, "value": [1700000000.0, "0.31"]},
                {"metric": {"pod": "b"}, "value": [1700000000.0, "0.02"]}
            ]},
            "status": {"sync": {"revision": "abc123"}}
        });
        assert_eq!(p(".spec.replicas").select_one(&doc), Some(&json!(3)));
        assert_eq!(
            p(".data.result[-1].metric.pod").select_one(&doc),
            Some(&json!("b")),
            "negative indexes count from the end"
        );
        assert_eq!(p(".data.result[-3]").select_one(&doc), None);
        assert!(ValuePath::parse(".data.result[-0]", "f").is_err());
        assert_eq!(
            p(".data.result[0].value[1]").select_one(&doc),
            Some(&json!("0.31"))
        );
        assert_eq!(
            p(".data.result[*].value[1]").select(&doc),
            vec![&json!("0.31"), &json!("0.02")]
        );
        assert_eq!(
            p(".metadata.annotations[\"deployment.kubernetes.io/revision\"]").select_one(&doc),
            Some(&json!("7"))
        );
        assert_eq!(
            p(".status.sync.revision").select_one(&doc),
            Some(&json!("abc123"))
        );
        assert_eq!(p(".").select_one(&doc), Some(&doc));
        assert!(p(".spec.missing").select(&doc).is_empty());
        assert!(p(".data.result[9]").select(&doc).is_empty());
        assert!(
            p(".spec.replicas[0]").select(&doc).is_empty(),
            "index into a number"
        );
        assert!(p(".data.result[*].value[1]").fans_out());
        assert!(!p(".spec.replicas").fans_out());
        assert_eq!(
            p(".data.result[*]").select_one(&doc),
            None,
            "two values are not one"
        );
    }

    #[test]
    fn refuses_what_is_not_the_grammar() {
        for bad in [
            "",
            "spec.replicas",
            ".",
            "..a",
            ".a.",
            ".a[",
            ".a[]",
            ".a[-x]",
            ".a[1234567]",
            ".a[x]",
            ".a[\"\"]",
            ".a[\"b\\\"c\"]",
            ".a b",
            "$.a",
            ".a|b",
        ] {
            if bad == "." {
                continue;
            }
            let e = ValuePath::parse(bad, "steps[0].capture.replicas").unwrap_err();
            assert_eq!(e.field, "steps[0].capture.replicas", "{bad}");
        }
        let long = format!(".{}", "a".repeat(MAX_PATH_LEN));
        assert!(ValuePath::parse(&long, "p").is_err());
        let deep = ".a".repeat(MAX_SEGMENTS + 1);
        assert!(ValuePath::parse(&deep, "p").is_err());
    }
}
