//! What bake reads from Debian's own files, never from what is installed on the host:
//! [`version`] orders versions and parses relationships, [`index`] holds what apt's Packages
//! lists offer for one architecture, [`resolve`] turns the packages a recipe names into every
//! package to install, in dependency order, and [`copyright`] reads the licences a package's
//! machine-readable copyright file declares, [`snapshot`] says where a package can be found
//! again once the archive has moved on, [`dpkg`] writes the database dpkg keeps of what is
//! installed, and [`accounts`] makes the users and groups maintainer scripts would, as
//! [`alternatives`] and [`shells`] make the alternatives links and `/etc/shells`.

pub mod accounts;
pub mod alternatives;
pub mod copyright;
pub mod dpkg;
pub mod index;
pub mod pam;
pub mod resolve;
pub mod shells;
pub mod snapshot;
pub mod version;

/// Why a piece of Debian metadata (a relationship field, a package stanza) could not be read:
/// the words of the message; where it is (the list and line) is part of them or added by the
/// caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
