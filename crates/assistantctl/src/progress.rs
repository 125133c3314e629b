//! A progress bar on stderr for long operations whose size is known (a Go import, a policy
//! impact run), drawn only on a terminal so scripts and JSON consumers get clean output.

use std::io::{IsTerminal, Write};

/// Draws `label [#####.....] done/total extra` in place.
pub struct ProgressBar {
    terminal: bool,
}

/// Characters of the bar itself.
const WIDTH: u64 = 30;

impl ProgressBar {
    pub fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Redraws the line (nothing off a terminal).
    pub fn draw(&mut self, label: &str, done: u64, total: u64, extra: &str) {
        if !self.terminal {
            return;
        }
        let filled = (done.min(total) * WIDTH)
            .checked_div(total)
            .unwrap_or(WIDTH) as usize;
        let _ = write!(
            std::io::stderr(),
            "\r{label:<17} [{}{}] {done}/{total}{extra}\x1b[K",
            "#".repeat(filled),
            ".".repeat(WIDTH as usize - filled),
        );
        let _ = std::io::stderr().flush();
    }

    /// Ends the bar with `line` (on its own line off a terminal).
    pub fn finish(&mut self, line: &str) {
        if self.terminal {
            let _ = writeln!(std::io::stderr(), "\r{line}\x1b[K");
        } else if !line.is_empty() {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }

    /// Clears the line without a message (a terminal only).
    pub fn clear(&mut self) {
        if self.terminal {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}
