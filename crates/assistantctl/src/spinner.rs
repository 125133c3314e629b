//! A progress spinner on stderr while the CLI waits, shown only on a terminal so scripts and
//! JSON consumers get clean output.

use std::io::{IsTerminal, Write};
use std::time::Instant;

const FRAMES: &[char] = &['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

pub struct Spinner {
    enabled: bool,
    frame: usize,
    started: Instant,
}

impl Spinner {
    pub fn new() -> Self {
        Self {
            enabled: std::io::stderr().is_terminal(),
            frame: 0,
            started: Instant::now(),
        }
    }

    /// Redraws the line with `message`.
    pub fn tick(&mut self, message: &str) {
        if !self.enabled {
            return;
        }
        self.frame = (self.frame + 1) % FRAMES.len();
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r\x1b[2K{} {message} ({}s)",
            FRAMES[self.frame],
            self.started.elapsed().as_secs()
        );
        let _ = err.flush();
    }

    pub fn finish(&mut self) {
        if self.enabled {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            self.enabled = false;
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.finish();
    }
}
