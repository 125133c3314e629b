//! Text that people read or that lands in Postgres: refused at the edge when it carries control
//! characters, bidirectional overrides or invisible characters.
//!
//! Why here: every JSON body and query string of the gateway and the tool router passes through
//! the extractors of this crate, so checking once here covers every field — including ones added
//! later — instead of one validator per field. Postgres cannot store NUL in `text` or `jsonb`, so
//! without this a NUL became a 500 (or a failed audit batch); bidi overrides and zero-width
//! characters make a plan or a note read differently from what runs (the "Trojan Source" trick).
//! Tab, line feed and carriage return stay allowed: notes, runbooks and specs are multi-line.

use serde_json::Value;

/// Why a character is refused, or `None` when it is acceptable.
pub fn refused_char(c: char) -> Option<&'static str> {
    match c {
        '\t' | '\n' | '\r' => None,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => Some("a control character"),
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{61c}' => {
            Some("a bidirectional override")
        }
        '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}' | '\u{180e}' => {
            Some("an invisible (zero-width) character")
        }
        _ => None,
    }
}

/// Checks one string; the error names the field, the offending code point and its position.
pub fn check_text(field: &str, text: &str) -> Result<(), String> {
    for (i, c) in text.chars().enumerate() {
        if let Some(why) = refused_char(c) {
            return Err(format!(
                "{field}: contains {why} (U+{:04X} at character {i}); remove it",
                c as u32
            ));
        }
    }
    Ok(())
}

/// Checks every string and object key in `value`; `path` names the root (`body`, `query`).
pub fn check_value(path: &str, value: &Value) -> Result<(), String> {
    match value {
        Value::String(s) => check_text(path, s),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_value(&format!("{path}[{i}]"), v)),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            let here = format!("{path}.{k}");
            check_text(&format!("{path} key {k:?}"), k)?;
            check_value(&here, v)
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refuses_controls_bidi_and_invisible_characters() {
        for bad in [
            "a\u{0}b",
            "bell\u{7}",
            "esc\u{1b}[31m",
            "del\u{7f}",
            "c1\u{85}",
            "rtl\u{202e}gpj.exe",
            "iso\u{2067}x",
            "zw\u{200b}sp",
            "bom\u{feff}",
            "wj\u{2060}",
        ] {
            assert!(check_text("f", bad).is_err(), "{bad:?} accepted");
        }
        for good in ["plain", "two\nlines\r\n\tindented", "émoji ✓ 日本", ""] {
            assert!(check_text("f", good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn walks_nested_values_and_keys() {
        let err = check_value("body", &json!({"a": [1, {"b": "x\u{0}"}]})).unwrap_err();
        assert!(err.starts_with("body.a[1].b:"), "{err}");
        assert!(check_value("body", &json!({"k\u{202e}": 1})).is_err());
        assert!(check_value("body", &json!({"ok": ["fine", 2, null, true]})).is_ok());
    }
}
