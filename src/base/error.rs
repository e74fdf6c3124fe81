//! The one error type of bake.
//!
//! Every error carries a complete, human-readable message that names what it is about (the
//! recipe file and line, the input path, the image path) and a class that decides the exit
//! status: bad input is the user's to fix (exit 2), anything else is a failure of the build
//! itself (exit 1). Messages are lower-case, with values in backticks and the cause chained
//! after a colon, so one place (the command line) can print them as they are.

use std::fmt;
use std::path::Path;

/// Whose problem an error is, and so which exit status it gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The recipe or one of its inputs is wrong: exit status 2.
    Input,
    /// Something failed while building (an output could not be written, ...): exit status 1.
    Failure,
}

#[derive(Debug)]
pub struct Error {
    class: Class,
    message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error in the recipe or an input.
    pub fn input(message: impl Into<String>) -> Error {
        Error { class: Class::Input, message: message.into() }
    }

    /// A failure of the build itself.
    pub fn failure(message: impl Into<String>) -> Error {
        Error { class: Class::Failure, message: message.into() }
    }

    pub fn class(&self) -> Class {
        self.class
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The exit status this error gives: 2 for bad input, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self.class {
            Class::Input => 2,
            Class::Failure => 1,
        }
    }

    /// Puts `context` in front of the message: `context: message`.
    pub fn context(self, context: impl fmt::Display) -> Error {
        Error { class: self.class, message: format!("{context}: {}", self.message) }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Attaches the path an I/O error is about, and whether it was reading an input or writing an
/// output, which decides the exit status.
pub trait IoContext<T> {
    /// An I/O error while reading an input: `cannot read `path`: cause` (exit status 2).
    fn reading(self, path: &Path) -> Result<T>;
    /// An I/O error while writing an output: `cannot write `path`: cause` (exit status 1).
    fn writing(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn reading(self, path: &Path) -> Result<T> {
        self.map_err(|e| Error::input(format!("cannot read `{}`: {}", path.display(), io_cause(&e))))
    }

    fn writing(self, path: &Path) -> Result<T> {
        self.map_err(|e| Error::failure(format!("cannot write `{}`: {}", path.display(), io_cause(&e))))
    }
}

/// An I/O error's message without the `(os error N)` suffix, lower-cased like ours.
pub fn io_cause(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_name_the_path_and_lose_the_os_error_number() {
        let e = std::io::Error::from_raw_os_error(2);
        let err = Err::<(), _>(e).reading(Path::new("rootfs/init")).unwrap_err();
        assert_eq!(err.message(), "cannot read `rootfs/init`: no such file or directory");
        assert_eq!(err.exit_code(), 2);
    }
}
