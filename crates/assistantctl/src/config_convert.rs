//! `assistantctl config convert --from-go OLD.json`: the converted file on stdout (or `--out`,
//! written 0600 because it holds generated secrets), the report on stderr so a redirect keeps
//! the file clean. The conversion itself lives in `carapulse_core::config::go_convert`.

use std::io::Write;

use carapulse_core::config::go_convert::{self, ChangeKind};

use crate::client::CliError;
use crate::ConvertArgs;

pub fn run(args: &ConvertArgs) -> Result<(), CliError> {
    let path = args.from_go.display();
    let text = std::fs::read_to_string(&args.from_go)
        .map_err(|e| CliError::Local(format!("{path}: {e}")))?;
    let go: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        CliError::Local(format!(
            "{path}: not JSON (line {} column {}): {e}",
            e.line(),
            e.column()
        ))
    })?;
    let conversion = go_convert::convert(&go, &mut go_convert::random_secret)
        .map_err(|e| CliError::Local(format!("{path}: {e}")))?;
    let mut rendered = serde_json::to_string_pretty(&conversion.config)
        .map_err(|e| CliError::Local(e.to_string()))?;
    rendered.push('\n');
    match &args.out {
        Some(out) => write_private(out, &rendered)
            .map_err(|e| CliError::Local(format!("{}: {e}", out.display())))?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(rendered.as_bytes())
                .map_err(|e| CliError::Local(format!("stdout: {e}")))?;
        }
    }
    let mut stderr = std::io::stderr().lock();
    for change in &conversion.changes {
        // The report goes to a terminal or a log; a failed write there is not worth failing for.
        let _ = writeln!(
            stderr,
            "{:<8} {}: {}",
            change.kind.label(),
            change.key,
            change.note
        );
    }
    let decisions = conversion.decisions().count();
    let _ = writeln!(
        stderr,
        "{} changes; {decisions} decision{} left to you (lines marked {})",
        conversion.changes.len(),
        if decisions == 1 { "" } else { "s" },
        ChangeKind::Decide.label()
    );
    Ok(())
}

/// Creates (or truncates) `path` readable by its owner only, then writes `text`.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its mode on open: narrow it before the secrets go in.
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}
