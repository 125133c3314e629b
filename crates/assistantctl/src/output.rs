//! Human tables (the default) and JSON output.

use serde_json::Value;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

impl OutputFormat {
    /// JSON or YAML: the whole document, for scripts.
    pub fn structured(self) -> bool {
        self != Self::Table
    }
}

/// Prints `value` as JSON or YAML (tables are rendered by each command).
pub fn print_value(fmt: OutputFormat, value: &Value) {
    match fmt {
        OutputFormat::Yaml => print!("{}", crate::yaml::to_yaml(value)),
        _ => print_json(value),
    }
}

/// Renders rows under headers with columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:<width$}", c, width = widths.get(i).copied().unwrap_or(0)))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(headers.iter().map(|h| h.to_string()).collect(), &mut out);
    for row in rows {
        line(row.clone(), &mut out);
    }
    out
}

/// A JSON field as display text ("" for null).
pub fn cell(value: &Value, path: &[&str]) -> String {
    let mut cur = value;
    for key in path {
        cur = &cur[*key];
    }
    match cur {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Key/value lines for one object.
pub fn details(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_columns() {
        let t = table(
            &["ID", "STATUS"],
            &[
                vec!["a".into(), "pending".into()],
                vec!["long-id".into(), "ok".into()],
            ],
        );
        assert_eq!(t, "ID       STATUS\na        pending\nlong-id  ok\n");
    }
}
