//! The slash command grammar: `plan <intent>`, `approve <plan_id> [note]`,
//! `deny <plan_id> [note]`, `status <execution_id>`, `audit <plan_id>`, `help`.
//! Ids are parsed as UUIDs here, so nothing a user types travels into a URL path.

use uuid::Uuid;

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Plan {
        intent: String,
    },
    Decide {
        plan_id: Uuid,
        approve: bool,
        note: Option<String>,
    },
    Status {
        execution_id: Uuid,
    },
    /// Answer an inconclusive analysis: continue or roll back.
    Analysis {
        execution_id: Uuid,
        proceed: bool,
        note: Option<String>,
    },
    Audit {
        plan_id: Uuid,
    },
    Help,
}

/// What to tell the user when the text does not parse.
pub const USAGE: &str = "Usage: `/assistant plan <intent>` · `/assistant approve <plan_id> [note]` · `/assistant deny <plan_id> [note]` · `/assistant status <execution_id>` · `/assistant continue <execution_id> [note]` · `/assistant rollback <execution_id> [note]` · `/assistant audit <plan_id>`";

fn id(word: Option<&str>, what: &str) -> Result<Uuid, String> {
    let word = word.ok_or_else(|| format!("missing {what}. {USAGE}"))?;
    Uuid::parse_str(word.trim()).map_err(|_| format!("{word:?} is not a valid {what}"))
}

/// Parses the text after the slash command.
pub fn parse(text: &str) -> Result<Command, String> {
    let text = text.trim();
    let (head, rest) = match text.split_once(char::is_whitespace) {
        Some((h, r)) => (h, r.trim()),
        None => (text, ""),
    };
    let mut words = rest.split_whitespace();
    match head.to_ascii_lowercase().as_str() {
        "" | "help" => Ok(Command::Help),
        "plan" => {
            if rest.is_empty() {
                return Err(format!("missing intent. {USAGE}"));
            }
            if rest.chars().count() > 2000 {
                return Err("the intent is longer than 2000 characters".into());
            }
            Ok(Command::Plan {
                intent: rest.to_owned(),
            })
        }
        verb @ ("approve" | "deny") => {
            let plan_id = id(words.next(), "plan id")?;
            let note: Vec<&str> = words.collect();
            Ok(Command::Decide {
                plan_id,
                approve: verb == "approve",
                note: (!note.is_empty()).then(|| note.join(" ")),
            })
        }
        verb @ ("continue" | "rollback") => {
            let execution_id = id(words.next(), "execution id")?;
            let note: Vec<&str> = words.collect();
            let note = (!note.is_empty()).then(|| note.join(" "));
            if note.as_ref().is_some_and(|n| n.chars().count() > 500) {
                return Err("the note is longer than 500 characters".into());
            }
            Ok(Command::Analysis {
                execution_id,
                proceed: verb == "continue",
                note,
            })
        }
        "status" => Ok(Command::Status {
            execution_id: id(words.next(), "execution id")?,
        }),
        "audit" => Ok(Command::Audit {
            plan_id: id(words.next(), "plan id")?,
        }),
        other => Err(format!("unknown command {other:?}. {USAGE}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        let pid = "01929a3e-7c1b-7cc2-9c3e-1b2a3c4d5e6f";
        assert_eq!(
            parse("plan scale web to 4 from 2").unwrap(),
            Command::Plan {
                intent: "scale web to 4 from 2".into()
            }
        );
        assert_eq!(
            parse(&format!("approve {pid} looks fine")).unwrap(),
            Command::Decide {
                plan_id: pid.parse().unwrap(),
                approve: true,
                note: Some("looks fine".into())
            }
        );
        assert_eq!(
            parse(&format!("DENY {pid}")).unwrap(),
            Command::Decide {
                plan_id: pid.parse().unwrap(),
                approve: false,
                note: None
            }
        );
        assert!(matches!(
            parse(&format!("status {pid}")).unwrap(),
            Command::Status { .. }
        ));
        assert_eq!(
            parse(&format!("rollback {pid} error budget burning")).unwrap(),
            Command::Analysis {
                execution_id: pid.parse().unwrap(),
                proceed: false,
                note: Some("error budget burning".into())
            }
        );
        assert!(matches!(
            parse(&format!("continue {pid}")).unwrap(),
            Command::Analysis {
                proceed: true,
                note: None,
                ..
            }
        ));
        assert!(parse("continue not-an-id").is_err());
        assert!(matches!(
            parse(&format!("audit {pid}")).unwrap(),
            Command::Audit { .. }
        ));
        assert_eq!(parse("  ").unwrap(), Command::Help);
        assert!(parse("plan").unwrap_err().contains("missing intent"));
        assert!(parse("approve").unwrap_err().contains("missing plan id"));
        assert!(parse("status ../../v1/audit?x=1")
            .unwrap_err()
            .contains("not a valid execution id"));
        assert!(parse("reboot everything")
            .unwrap_err()
            .contains("unknown command"));
    }
}
