//! Progress as events. Core code never prints: it tells a [`Reporter`] what it is doing, and the
//! command line decides whether that becomes a progress bar, a plain line or nothing.

use std::io::Read;

/// Something worth telling the user while a build runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Reading input `index` of `total` (1-based).
    Input { index: usize, total: usize, label: String },
    /// Not an error, but probably not what the recipe meant.
    Warning(String),
    /// A step worth a line (`booting with tcg`, the digests of two builds).
    Info(String),
    /// A detail for `--verbose` only (a full QEMU command line).
    Detail(String),
    /// Writing `output`, which will hold `entries` entries and `bytes` bytes of file data.
    WriteStart { output: String, entries: u64, bytes: u64 },
    /// So far `entries` entries and `bytes` bytes of file data of the current output are written.
    WriteProgress { entries: u64, bytes: u64 },
    /// The current output is complete.
    WriteDone { output: String },
}

pub trait Reporter {
    fn report(&self, event: Event);
}

/// Reports progress every few MiB while a large file's data is copied, so the bar moves, and
/// stops the copy when the user interrupts the build.
pub struct Counted<'a, R> {
    pub inner: R,
    /// Entries written before this file.
    pub entries: u64,
    /// Bytes of file data written so far.
    pub bytes: u64,
    pub reporter: &'a dyn Reporter,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        const STEP: u64 = 4 << 20;
        crate::base::interrupt::check()?;
        let n = self.inner.read(buf)?;
        let before = self.bytes;
        self.bytes += n as u64;
        if before / STEP != self.bytes / STEP {
            self.reporter.report(Event::WriteProgress { entries: self.entries, bytes: self.bytes });
        }
        Ok(n)
    }
}

/// A reporter that drops every event.
pub struct Silent;

impl Reporter for Silent {
    fn report(&self, _event: Event) {}
}
