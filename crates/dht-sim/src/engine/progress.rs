//! Progress on stderr while a run goes: a bar on a terminal, otherwise a line every tenth.

use std::io::IsTerminal;

/// Progress on stderr: a bar on a terminal, otherwise a line every tenth of the run.
pub(super) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    lines: bool,
    end_us: u64,
    next_us: u64,
    step_us: u64,
}

impl Progress {
    pub(super) fn new(on: bool, end_us: u64) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = (on && tty).then(|| {
            let b = indicatif::ProgressBar::new(1000);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {percent:>3}% virtual {msg} [{elapsed_precise} wall]",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
        let parts = if bar.is_some() { 1000 } else { 10 };
        let step_us = (end_us / parts).max(1);
        Progress {
            bar,
            lines: on && !tty,
            end_us,
            next_us: step_us,
            step_us,
        }
    }

    pub(super) fn tick(&mut self, now_us: u64, live: usize) {
        if now_us < self.next_us {
            return;
        }
        self.next_us = now_us + self.step_us;
        let msg = format!(
            "{:.0}/{:.0} s, {live} live",
            now_us as f64 / 1e6,
            self.end_us as f64 / 1e6
        );
        if let Some(b) = &self.bar {
            b.set_position(now_us * 1000 / self.end_us.max(1));
            b.set_message(msg);
        } else if self.lines {
            eprintln!(
                "progress: {:>3}% virtual {msg}",
                now_us * 100 / self.end_us.max(1)
            );
        }
    }

    pub(super) fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
