//! What an entry of an image is, as every format and every listing names it: the file type
//! bits of `st_mode` (`S_IFDIR`, `S_IFREG`, ...; POSIX `<sys/stat.h>`, the values Linux, cpio
//! and EROFS store), the word manifests and `--json` use, and the letter `ls -l` shows.

/// The kind of an image entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileType {
    Dir,
    File,
    Symlink,
    Char,
    Block,
    Fifo,
    /// Never written by bake, but images made by others may hold one.
    Socket,
}

impl FileType {
    /// The bits of `st_mode` that hold the file type.
    pub const MASK: u32 = 0o170000;

    /// Every file type, for lookups by bits or by name.
    const ALL: [FileType; 7] = [
        FileType::Dir,
        FileType::File,
        FileType::Symlink,
        FileType::Char,
        FileType::Block,
        FileType::Fifo,
        FileType::Socket,
    ];

    /// The type's `S_IF*` bits.
    pub const fn bits(self) -> u32 {
        match self {
            FileType::Dir => 0o040000,
            FileType::File => 0o100000,
            FileType::Symlink => 0o120000,
            FileType::Char => 0o020000,
            FileType::Block => 0o060000,
            FileType::Fifo => 0o010000,
            FileType::Socket => 0o140000,
        }
    }

    /// The type a full `st_mode` holds, or `None` for bits that name no type.
    pub fn from_mode(mode: u32) -> Option<FileType> {
        Self::ALL.into_iter().find(|t| t.bits() == mode & Self::MASK)
    }

    /// The word of manifests, listings and `--json`: `dir`, `file`, `symlink`, `char`, `block`,
    /// `fifo`, `socket`.
    pub const fn name(self) -> &'static str {
        match self {
            FileType::Dir => "dir",
            FileType::File => "file",
            FileType::Symlink => "symlink",
            FileType::Char => "char",
            FileType::Block => "block",
            FileType::Fifo => "fifo",
            FileType::Socket => "socket",
        }
    }

    /// What the entry is, in words, for messages.
    pub const fn noun(self) -> &'static str {
        match self {
            FileType::Dir => "directory",
            FileType::File => "regular file",
            FileType::Symlink => "symlink",
            FileType::Char => "character device",
            FileType::Block => "block device",
            FileType::Fifo => "fifo",
            FileType::Socket => "socket",
        }
    }

    /// The type letter of `ls -l`.
    pub const fn letter(self) -> char {
        match self {
            FileType::Dir => 'd',
            FileType::File => '-',
            FileType::Symlink => 'l',
            FileType::Char => 'c',
            FileType::Block => 'b',
            FileType::Fifo => 'p',
            FileType::Socket => 's',
        }
    }

    /// Whether the entry has device numbers.
    pub const fn is_device(self) -> bool {
        matches!(self, FileType::Char | FileType::Block)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_its_bits() {
        for t in FileType::ALL {
            assert_eq!(FileType::from_mode(t.bits() | 0o7777), Some(t));
        }
        assert_eq!(FileType::from_mode(0o755), None);
        assert_eq!(FileType::from_mode(0o030000), None);
    }
}
