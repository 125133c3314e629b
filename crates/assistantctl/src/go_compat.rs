//! The Go `assistantctl`'s spellings, rewritten to this one's before parsing so scripts written
//! for it keep working: `--gateway URL` (for `--url`), `plan approve --plan-id ID --status
//! approved|denied` (for `approve ID [--deny]`), `--plan-id`/`--execution-id`/`--playbook-id`/
//! `--runbook-id` flags (for the positional id), `version` (for `--version`) and `context
//! snapshot` (for `context snapshots`). Each rewrite prints a notice naming the new spelling.

/// The id flags the Go CLI used where this one takes a positional id.
const ID_FLAGS: &[&str] = &[
    "--plan-id",
    "--execution-id",
    "--playbook-id",
    "--runbook-id",
];

/// `args` (program name first) with the Go spellings rewritten, and one notice per rewrite.
pub fn rewrite(args: Vec<String>) -> (Vec<String>, Vec<String>) {
    let mut notices = Vec::new();
    let mut out: Vec<String> = Vec::with_capacity(args.len());
    let mut iter = args.into_iter().peekable();
    if let Some(program) = iter.next() {
        out.push(program);
    }
    let mut ids: Vec<String> = Vec::new();
    while let Some(arg) = iter.next() {
        // `--flag value` and `--flag=value` alike.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let value = |iter: &mut std::iter::Peekable<std::vec::IntoIter<String>>| {
            inline.clone().or_else(|| iter.next())
        };
        match flag.as_str() {
            "--gateway" => {
                notices.push("--gateway is deprecated; use --url (or CARAPULSE_URL)".to_owned());
                out.push("--url".to_owned());
                if let Some(v) = value(&mut iter) {
                    out.push(v);
                }
            }
            f if ID_FLAGS.contains(&f) => {
                notices.push(format!("{f} is deprecated; give the id as an argument"));
                if let Some(v) = value(&mut iter) {
                    ids.push(v);
                }
            }
            "--status" if is_go_approve(&out) => match value(&mut iter).as_deref() {
                Some("approved") | None => {}
                Some(other) => {
                    if other == "denied" {
                        out.push("--deny".to_owned());
                    } else {
                        // Not a decision this CLI takes: let the parser say so.
                        out.push("--status".to_owned());
                        out.push(other.to_owned());
                    }
                }
            },
            "version" if out.len() == 1 => {
                notices.push("`version` is deprecated; use --version".to_owned());
                out.push("--version".to_owned());
            }
            _ => out.push(arg),
        }
        // `plan approve` -> `approve`; `context snapshot` -> `context snapshots`.
        let n = out.len();
        if n >= 2 && out[n - 2] == "plan" && out[n - 1] == "approve" {
            notices.push("`plan approve` is deprecated; use `approve PLAN_ID [--deny]`".to_owned());
            out.truncate(n - 2);
            out.push("approve".to_owned());
        } else if n >= 2 && out[n - 2] == "context" && out[n - 1] == "snapshot" {
            notices.push("`context snapshot` is deprecated; use `context snapshots`".to_owned());
            out[n - 1] = "snapshots".to_owned();
        }
    }
    out.extend(ids);
    (out, notices)
}

/// Whether the rewritten command so far is `approve` (from `plan approve`).
fn is_go_approve(out: &[String]) -> bool {
    out.iter().any(|a| a == "approve")
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    fn args(s: &str) -> Vec<String> {
        std::iter::once("assistantctl")
            .chain(s.split_whitespace())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn go_spellings_become_current_ones_with_notices() {
        let (out, notices) = rewrite(args(
            "plan approve --gateway http://gw:8080 --plan-id 0196-abc --status denied --note late",
        ));
        assert_eq!(
            out,
            args("approve --url http://gw:8080 --deny --note late 0196-abc")
        );
        assert_eq!(notices.len(), 3, "{notices:?}");
        let (out, _) = rewrite(args("plan approve --plan-id=P1 --status=approved"));
        assert_eq!(out, args("approve P1"));
        let (out, _) = rewrite(args("plan get --plan-id P2"));
        assert_eq!(out, args("plan get P2"));
        let (out, _) = rewrite(args("exec logs --execution-id E1 --follow"));
        assert_eq!(out, args("exec logs --follow E1"));
        let (out, notices) = rewrite(args("version"));
        assert_eq!((out, notices.len()), (args("--version"), 1));
        let (out, _) = rewrite(args("context snapshot"));
        assert_eq!(out, args("context snapshots"));
        // Current spellings pass untouched, without notices.
        let current = args("approve P3 --deny --url http://x -o json");
        assert_eq!(rewrite(current.clone()), (current, Vec::new()));
        // `version` only as the command, not as a value.
        let value =
            args("workflow start helm_release --input {\"version\":\"1\"} --summary version");
        assert_eq!(rewrite(value.clone()).0, value);
    }
}
