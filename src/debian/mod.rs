//! What bake reads from Debian's own files, never from what is installed on the host:
//! [`version`] orders versions and parses relationships, [`index`] holds what apt's Packages
//! lists offer for one architecture, [`resolve`] turns the packages a recipe names into every
//! package to install, in dependency order, and [`copyright`] reads the licences a package's
//! machine-readable copyright file declares.

pub mod copyright;
pub mod index;
pub mod resolve;
pub mod version;
