//! The progress line on stderr: rewritten in place on a terminal, one line per phase in a
//! log (so that CI output stays readable).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::poller::Budget;

const REDRAW_EVERY: Duration = Duration::from_millis(150);

pub struct Progress {
    enabled: bool,
    terminal: bool,
    started: Instant,
    last_draw: Option<Instant>,
    budget: Option<std::sync::Arc<Budget>>,
}

impl Progress {
    pub fn new(enabled: bool, budget: Option<std::sync::Arc<Budget>>) -> Progress {
        Progress {
            enabled,
            terminal: std::io::stderr().is_terminal(),
            started: Instant::now(),
            last_draw: None,
            budget,
        }
    }

    fn line(&self, what: &str) -> String {
        let requests = self.budget.as_ref().map_or(0, |b| b.used());
        format!(
            "verify: {what} [{requests} requests, {:.1} s]",
            self.started.elapsed().as_secs_f64()
        )
    }

    /// A frequent update: drawn on a terminal only, at most every 150 ms.
    pub fn tick(&mut self, what: &str) {
        if !self.enabled || !self.terminal {
            return;
        }
        if self.last_draw.is_some_and(|t| t.elapsed() < REDRAW_EVERY) {
            return;
        }
        self.last_draw = Some(Instant::now());
        let mut stderr = std::io::stderr();
        let _ = write!(stderr, "\r\x1b[2K{}", self.line(what));
        let _ = stderr.flush();
    }

    /// A new phase: always shown.
    pub fn phase(&mut self, what: &str) {
        if !self.enabled {
            return;
        }
        let mut stderr = std::io::stderr();
        if self.terminal {
            self.last_draw = Some(Instant::now());
            let _ = write!(stderr, "\r\x1b[2K{}", self.line(what));
            let _ = stderr.flush();
        } else {
            let _ = writeln!(stderr, "{}", self.line(what));
        }
    }

    /// Clears the line before the report is printed.
    pub fn finish(&mut self) {
        if self.enabled && self.terminal {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}
