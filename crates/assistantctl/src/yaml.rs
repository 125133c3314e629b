//! `--output yaml`: a small emitter for JSON values (block style, strings quoted whenever a
//! plain scalar could be misread), so no YAML library is needed for output only.

use serde_json::Value;

fn needs_quotes(s: &str) -> bool {
    s.is_empty()
        || s.trim() != s
        || matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "~"
        )
        || s.parse::<f64>().is_ok()
        || s.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@`".contains(c))
        || s.contains(": ")
        || s.contains(" #")
        || s.contains('\n')
        || s.chars().any(char::is_control)
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if needs_quotes(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(o) if o.is_empty() => "{}".into(),
        _ => String::new(),
    }
}

fn is_scalar(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => true,
    }
}

fn key(k: &str) -> String {
    if needs_quotes(k) {
        serde_json::to_string(k).unwrap_or_default()
    } else {
        k.to_owned()
    }
}

fn emit(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, item) in map {
                if is_scalar(item) {
                    out.push_str(&format!("{pad}{}: {}\n", key(k), scalar(item)));
                } else {
                    out.push_str(&format!("{pad}{}:\n", key(k)));
                    emit(item, indent + 2, out);
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                if is_scalar(item) {
                    out.push_str(&format!("{pad}- {}\n", scalar(item)));
                } else {
                    let mut inner = String::new();
                    emit(item, indent + 2, &mut inner);
                    // The first line of the nested block goes after the dash.
                    let trimmed = inner.trim_start_matches(' ');
                    out.push_str(&format!("{pad}- {trimmed}"));
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

/// The YAML text of `value`.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    emit(value, 0, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn block_style_with_safe_scalars() {
        let v = json!({
            "plan_id": "abc",
            "risk": "medium",
            "ok": true,
            "n": 3,
            "tricky": ["yes", "1.5", "", "a: b", "- x", "plain"],
            "steps": [{"tool": "kubectl", "input": {"replicas": 4}}, {"tool": "helm", "input": {}}],
            "none": null
        });
        let y = to_yaml(&v);
        assert_eq!(
            y,
            "n: 3\nnone: null\nok: true\nplan_id: abc\nrisk: medium\nsteps:\n  - input:\n      replicas: 4\n    tool: kubectl\n  - input: {}\n    tool: helm\ntricky:\n  - \"yes\"\n  - \"1.5\"\n  - \"\"\n  - \"a: b\"\n  - \"- x\"\n  - plain\n"
        );
    }
}
