//! Turns progress [`Event`]s into what the user sees on standard error: indicatif bars on a
//! terminal, plain lines otherwise (logs, CI), nothing with `--quiet`.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::base::error::{Error, Result};
use crate::base::progress::{Event, Reporter};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

pub struct Ui {
    verbosity: Verbosity,
    terminal: bool,
    bar: Mutex<Option<(ProgressBar, u64)>>,
}

impl Ui {
    pub fn new(verbosity: Verbosity) -> Ui {
        Ui { verbosity, terminal: std::io::stderr().is_terminal(), bar: Mutex::new(None) }
    }

    pub fn verbosity(&self) -> Verbosity {
        self.verbosity
    }

    /// A line on standard error, above any bar.
    pub fn line(&self, text: &str) {
        match self.bar.lock().expect("ui lock").as_ref() {
            Some((bar, _)) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn bars(&self) -> bool {
        self.terminal && self.verbosity > Verbosity::Quiet
    }
}

impl Reporter for Ui {
    fn report(&self, event: Event) {
        if self.verbosity == Verbosity::Quiet {
            return;
        }
        match event {
            Event::Input { index, total, label } => {
                if self.bars() {
                    let spinner = ProgressBar::new_spinner();
                    spinner.set_draw_target(ProgressDrawTarget::stderr());
                    spinner.set_message(format!("reading {label} [{index}/{total}]"));
                    spinner.tick();
                    if let Some((old, _)) = self.bar.lock().expect("ui lock").replace((spinner, 0)) {
                        old.finish_and_clear();
                    }
                } else {
                    self.line(&format!("reading {label} [{index}/{total}]"));
                }
            }
            Event::Warning(text) => self.line(&format!("warning: {text}")),
            Event::Info(text) => self.line(&text),
            Event::Detail(text) => {
                if self.verbosity >= Verbosity::Verbose {
                    self.line(&text);
                }
            }
            Event::WriteStart { output, entries, bytes } => {
                if self.bars() {
                    let bar = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stderr());
                    bar.set_style(
                        ProgressStyle::with_template("writing {prefix} {wide_bar} {bytes}/{total_bytes} {msg}")
                            .expect("valid template"),
                    );
                    bar.set_prefix(output);
                    if let Some((old, _)) = self.bar.lock().expect("ui lock").replace((bar, entries)) {
                        old.finish_and_clear();
                    }
                } else {
                    self.line(&format!("writing {output}: {entries} entries, {bytes} bytes of file data"));
                }
            }
            Event::WriteProgress { entries, bytes } => {
                if let Some((bar, total)) = self.bar.lock().expect("ui lock").as_ref() {
                    bar.set_position(bytes);
                    bar.set_message(format!("{entries}/{total} entries"));
                }
            }
            Event::WriteDone { output } => {
                if let Some((bar, _)) = self.bar.lock().expect("ui lock").take() {
                    bar.finish_and_clear();
                }
                if self.verbosity >= Verbosity::Verbose {
                    self.line(&format!("wrote {output}"));
                }
            }
        }
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        if let Ok(mut bar) = self.bar.lock()
            && let Some((bar, _)) = bar.take()
        {
            bar.finish_and_clear();
        }
    }
}

/// Writes `text` to standard output, reporting a closed pipe as an error rather than a panic.
pub fn print(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
        .map_err(|e| Error::failure(format!("cannot write to standard output: {e}")))
}
