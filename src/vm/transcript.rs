//! What a guest printed, made comparable: line endings and kernel timestamps removed, and the
//! rules for deciding whether a boot did what its recipe's `[test]` expects.

/// The console output as lines: CR removed, the kernel's `[    1.234567] ` timestamps removed,
/// invalid UTF-8 replaced. Kernel lines stay (they explain failures), marked by `kernel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    /// Whether the line came from the kernel (it had a printk timestamp).
    pub kernel: bool,
}

/// Splits and normalises raw serial output. A user line that did not end before the kernel
/// printed (no newline) is split from the kernel's message.
pub fn normalise(raw: &[u8]) -> Vec<Line> {
    let text = String::from_utf8_lossy(raw);
    let mut out = Vec::new();
    for line in text.split('\n') {
        let line = without_escapes(&line.replace('\r', ""));
        let mut rest = line.as_str();
        while !rest.is_empty() {
            match find_timestamp(rest) {
                Some(0) => {
                    let after = strip_timestamp(rest).unwrap_or(rest);
                    // A later timestamp on the same line starts another kernel message.
                    let end = find_timestamp(after).unwrap_or(after.len());
                    out.push(Line { text: after[..end].to_string(), kernel: true });
                    rest = &after[end..];
                }
                Some(at) => {
                    out.push(Line { text: rest[..at].to_string(), kernel: false });
                    rest = &rest[at..];
                }
                None => {
                    out.push(Line { text: rest.to_string(), kernel: false });
                    rest = "";
                }
            }
        }
    }
    out.retain(|l| !l.text.is_empty());
    out
}

/// `line` without terminal control sequences, so that they neither hide an expected line nor
/// clutter a report: control sequences (`ESC [ ... letter`: UEFI firmware clearing the screen,
/// systemd colouring `[  OK  ]` and `[ TIME ]`), operating system commands (`ESC ] ... BEL` or
/// `ESC ] ... ESC \`: window titles, hyperlinks) and two-character escapes (`ESC 7`, `ESC c`).
/// ECMA-48 sections 5.3 and 5.6. The console file itself keeps them.
fn without_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                // Parameters and intermediates, then one final byte from `@` to `~`.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                // A string ended by BEL or by ESC `\`.
                while let Some(c) = chars.next() {
                    if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            // An intermediate byte (`ESC ( B` picks a character set) takes one more.
            Some(' '..='/') => {
                chars.next();
            }
            _ => {}
        }
    }
    out
}

/// `[    1.234567] message` -> `message`; `None` when the text does not start with a printk
/// timestamp.
fn strip_timestamp(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('[')?;
    let end = rest.find(']')?;
    let stamp = rest[..end].trim_start();
    let (secs, micros) = stamp.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(secs) || !digits(micros) {
        return None;
    }
    Some(rest[end + 1..].strip_prefix(' ').unwrap_or(&rest[end + 1..]))
}

/// Where the first printk timestamp (`[    1.234567]`) in `text` starts.
fn find_timestamp(text: &str) -> Option<usize> {
    text.match_indices('[').map(|(i, _)| i).find(|&i| strip_timestamp(&text[i..]).is_some())
}

/// The lines that user space printed, which must be the same on every boot of the same image
/// (kernel lines carry timings and addresses that legitimately vary).
pub fn user_lines(lines: &[Line]) -> Vec<String> {
    lines.iter().filter(|l| !l.kernel).map(|l| l.text.clone()).collect()
}

/// Checks that each of `expect` appears, in order, each within one line (as a substring), and
/// returns the index of the first one that never did.
pub fn first_unmet(lines: &[Line], expect: &[String]) -> Option<usize> {
    let mut next = 0;
    for line in lines {
        if next < expect.len() && line.text.contains(&expect[next]) {
            next += 1;
        }
    }
    (next < expect.len()).then_some(next)
}

/// The kernel's panic line, if it panicked (a user line saying "Kernel panic" does not count).
pub fn panic_line(lines: &[Line]) -> Option<&str> {
    lines.iter().find(|l| l.kernel && l.text.starts_with("Kernel panic")).map(|l| l.text.as_str())
}

/// What UEFI firmware (OVMF) prints when it has nothing to boot: its shell's prompt, or its
/// boot manager giving up. Either stays so until the timeout, so it ends a boot at once.
pub fn firmware_stop(console: &[u8]) -> Option<&'static str> {
    const STOPS: [&str; 2] = ["Shell> ", "No bootable option"];
    STOPS.into_iter().find(|stop| console.windows(stop.len()).any(|w| w == stop.as_bytes()))
}

/// For a boot that UEFI firmware started and that failed: what the console says of where it
/// went silent, when it did. Nothing adds `console=` to a unified kernel image's command line at
/// boot, so a silent console after the kernel's EFI stub most often means it lacks one.
pub fn silent_after_firmware(console: &[Line]) -> Option<&'static str> {
    let started = console.iter().rposition(|l| l.text.contains("BdsDxe: starting"));
    let Some(started) = started else {
        return Some("the firmware never started a boot option (no `BdsDxe: starting` line)");
    };
    let after = &console[started + 1..];
    after.iter().all(|l| l.text.trim().is_empty() || l.text.starts_with("EFI stub:")).then_some(
        "the console stayed silent after the firmware started the unified kernel image: its command line (the \
         stage-1's `[kernel] cmdline`) needs `console=ttyS0`, since nothing is added to it at boot",
    )
}

/// Whether the kernel reports a power-off (what `poweroff` leads to), the only clean ending of a
/// boot test without `isa-debug-exit`: a reboot, a halt and a panic with `-no-reboot` all make
/// QEMU exit with status 0 too.
pub fn powered_off(lines: &[Line]) -> bool {
    lines.iter().any(|l| l.kernel && l.text.contains("reboot: Power down"))
}

/// The last `n` lines, for failure reports.
pub fn tail(lines: &[Line], n: usize) -> Vec<String> {
    lines[lines.len().saturating_sub(n)..].iter().map(|l| l.text.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE: &[u8] = b"[    0.000000] Linux version 6.1.0\r\n\
        [    1.910082] Run /init as init process\r\n\
        hello from bake\r\n\
        running Linux on 1 CPU(s)\r\n\
        [    2.044684] reboot: Power down\r\n";

    #[test]
    fn normalising_removes_carriage_returns_and_timestamps() {
        let lines = normalise(CONSOLE);
        assert_eq!(lines[1], Line { text: "Run /init as init process".into(), kernel: true });
        assert_eq!(lines[2], Line { text: "hello from bake".into(), kernel: false });
        assert_eq!(user_lines(&lines), ["hello from bake", "running Linux on 1 CPU(s)"]);
        assert!(powered_off(&lines));
        assert_eq!(panic_line(&lines), None);
    }

    #[test]
    fn firmware_with_nothing_to_boot_and_a_silent_image_are_told_apart() {
        assert_eq!(firmware_stop(b"BdsDxe: No bootable option or device was found.\r\n"), Some("No bootable option"));
        assert_eq!(firmware_stop(b"UEFI Interactive Shell v2.2\r\nShell> "), Some("Shell> "));
        assert_eq!(firmware_stop(b"BdsDxe: starting Boot0001\r\nEFI stub: Loaded initrd\r\n"), None);
        let silent = normalise(b"BdsDxe: starting Boot0001 \"UEFI Misc Device\"\r\nEFI stub: Loaded initrd\r\n");
        assert!(silent_after_firmware(&silent).unwrap().contains("needs `console=ttyS0`"));
        let spoke = normalise(b"BdsDxe: starting Boot0001\r\n[    0.000000] Linux version 6.1\r\n");
        assert_eq!(silent_after_firmware(&spoke), None);
        assert!(silent_after_firmware(&normalise(b"")).unwrap().contains("never started a boot option"));
    }

    #[test]
    fn terminal_escapes_of_the_firmware_are_removed() {
        let lines = normalise(b"\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01HBdsDxe: starting Boot0001\r\n");
        assert_eq!(lines, [Line { text: "BdsDxe: starting Boot0001".into(), kernel: false }]);
    }

    /// Regression: systemd's coloured status lines (`[[0;1;31m TIME [0m]`) were shown raw.
    #[test]
    fn systemds_colours_and_other_terminal_escapes_are_removed() {
        let lines = normalise(
            b"[\x1b[0;1;31m TIME \x1b[0m] Timed out waiting for device \x1b[0;1;39mdev-ttyS0.device\x1b[0m.\r\n\
              [\x1b[0;32m  OK  \x1b[0m] Started web.service.\r\n\
              \x1b]8;;file://host/etc\x07link\x1b]8;;\x1b\\ and \x1b(Bcharset\x1b7\r\n",
        );
        let text: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            text,
            [
                "[ TIME ] Timed out waiting for device dev-ttyS0.device.",
                "[  OK  ] Started web.service.",
                "link and charset"
            ]
        );
    }

    /// Regression: output without a final newline ran into the kernel's next message.
    #[test]
    fn a_kernel_message_after_unfinished_output_is_still_the_kernels() {
        let lines = normalise(b"no newline here[    2.0] reboot: Power down\n");
        assert_eq!(lines[0], Line { text: "no newline here".into(), kernel: false });
        assert_eq!(lines[1], Line { text: "reboot: Power down".into(), kernel: true });
        assert!(powered_off(&lines));
        assert_eq!(panic_line(&normalise(b"echo: no Kernel panic here\n")), None);
    }

    #[test]
    fn a_bracketed_line_that_is_not_a_timestamp_is_user_output() {
        let lines = normalise(b"[ok] started\n[ 12.5x] nope\n");
        assert!(lines.iter().all(|l| !l.kernel), "{lines:?}");
    }

    #[test]
    fn expectations_must_appear_in_order() {
        let lines = normalise(CONSOLE);
        let expect = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(first_unmet(&lines, &expect(&["hello", "1 CPU"])), None);
        assert_eq!(first_unmet(&lines, &expect(&["1 CPU", "hello"])), Some(1));
        assert_eq!(first_unmet(&lines, &expect(&["goodbye"])), Some(0));
        assert_eq!(first_unmet(&lines, &[]), None);
    }

    #[test]
    fn panics_and_reboots_are_not_clean_endings() {
        let lines = normalise(
            b"[    3.1] Kernel panic - not syncing: Attempted to kill init!\n[    3.2] reboot: Restarting system\n",
        );
        assert_eq!(panic_line(&lines), Some("Kernel panic - not syncing: Attempted to kill init!"));
        assert!(!powered_off(&lines));
        // A user line cannot fake the kernel's power-off message.
        assert!(!powered_off(&normalise(b"reboot: Power down\n")));
    }
}
