//! Progress as events. Core code never prints: it tells a [`Reporter`] what it is doing, and the
//! command line decides whether that becomes a progress bar, a plain line or nothing.

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

/// A reporter that drops every event.
pub struct Silent;

impl Reporter for Silent {
    fn report(&self, _event: Event) {}
}
