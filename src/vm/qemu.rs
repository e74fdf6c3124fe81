//! Booting an image under `qemu-system-x86_64` and watching what it prints.
//!
//! Command lines come from small pure functions ([`args`], [`choose_accel`]) so they can be
//! tested without QEMU. The console (first serial port) goes to a file that is read while the
//! guest runs: a kernel panic stops the boot at once, and a hard timeout kills QEMU's whole
//! process group. A second serial port is free for the guest as a clean transcript channel
//! (`/dev/ttyS1`), and `isa-debug-exit` at port 0xf4 lets a guest report a real status: writing
//! 0 means success (QEMU exits with status 1), writing N > 0 means failure N (status 2N+1).
//!
//! A guest is cut off from any network unless its recipe checks a service (`[[test.http]]`):
//! then it gets a virtio-net card on QEMU's user-mode network, with host ports forwarded to the
//! guest's, and QEMU listens for QMP, through which bake presses the power button once every
//! check passed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::base::error::{Error, Result};
use crate::base::process::{self, Waited};
use crate::vm::probe::{HttpProbe, ProbeResult, Prober};
use crate::vm::qmp;
use crate::vm::transcript::{self, Line};

pub const QEMU: &str = "qemu-system-x86_64";

/// How the guest's CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// One boot.
#[derive(Debug, Clone)]
pub struct Machine {
    /// What the machine starts.
    pub start: Start,
    pub memory_mib: u32,
    /// Disk images attached read-only as the first virtio-blk devices (`/dev/vda`, `/dev/vdb`):
    /// the root, and a hash tree kept beside it.
    pub root_disks: Vec<PathBuf>,
    /// Raw disk images attached as further virtio-blk devices, writable (`/dev/vda` without a
    /// root disk, else the next).
    pub disks: Vec<PathBuf>,
    pub accel: Accel,
    /// File receiving the console (ttyS0).
    pub console: PathBuf,
    /// File receiving the guest's transcript channel (ttyS1).
    pub transcript: PathBuf,
    /// Host ports (on 127.0.0.1) forwarded to guest ports. Empty: the guest has no network card.
    pub forwards: Vec<Forward>,
    /// The Unix socket QEMU listens on for QMP. `None`: no QMP.
    pub qmp: Option<PathBuf>,
}

/// A TCP port of the host's loopback address forwarded to one of the guest's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub host: u16,
    pub guest: u16,
}

/// What a machine starts: a kernel QEMU loads itself, or UEFI firmware that boots the first
/// disk as a real machine would.
#[derive(Debug, Clone)]
pub enum Start {
    Kernel {
        kernel: PathBuf,
        initrd: PathBuf,
        cmdline: String,
    },
    /// OVMF: its code, read-only, and a copy of its variable store made for this boot (a store
    /// reused between boots can keep the firmware at its shell).
    Firmware {
        code: PathBuf,
        vars: PathBuf,
    },
}

/// The OVMF firmware Debian's `ovmf` package installs, without Secure Boot (the `.secboot` and
/// `.ms` builds refuse an unsigned image), and its empty variable store.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// The kernel command line for a test boot: the console on the first serial port, and a panic
/// ends the boot at once (QEMU runs with `-no-reboot`) instead of waiting for the timeout;
/// then `extra` (the recipe's, or `quiet`).
/// Arguments `extra` already has are not repeated.
pub fn cmdline(extra: Option<&str>) -> String {
    let extra = extra.unwrap_or_default().trim();
    let given: Vec<&str> = extra.split_whitespace().collect();
    let mut words: Vec<&str> = ["console=ttyS0", "panic=-1"].into_iter().filter(|a| !given.contains(a)).collect();
    words.extend(given);
    words.join(" ")
}

/// QEMU's arguments for `machine`.
pub fn args(machine: &Machine) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| out.extend(items.iter().map(OsString::from));
    push(&["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"]);
    match machine.accel {
        Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg => push(&["-accel", "tcg", "-cpu", "max"]),
    }
    push(&["-m", &machine.memory_mib.to_string(), "-smp", "1"]);
    if let Start::Firmware { code, vars } = &machine.start {
        // OVMF's 4 MiB builds expect the q35 machine; each flash is a raw file.
        push(&["-machine", "q35"]);
        for (unit, file, mode) in [(0, code, ",readonly=on"), (1, vars, "")] {
            let spec =
                format!("if=pflash,format=raw,unit={unit},file={}{mode}", file.to_string_lossy().replace(',', ",,"));
            push(&["-drive", &spec]);
        }
    }
    push(&["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    let mut serial = |path: &Path| {
        out.push("-serial".into());
        let mut spec = OsString::from("file:");
        spec.push(path);
        out.push(spec);
    };
    serial(&machine.console);
    serial(&machine.transcript);
    let root = machine.root_disks.iter().enumerate().map(|(i, d)| (d, format!("root{i}"), ",readonly=on"));
    let scratch = machine.disks.iter().enumerate().map(|(i, d)| (d, format!("disk{i}"), ""));
    for (disk, id, mode) in root.chain(scratch) {
        let mut spec = OsString::from("file=");
        // QEMU's option syntax doubles commas inside values.
        spec.push(disk.to_string_lossy().replace(',', ",,"));
        spec.push(format!(",format=raw,if=none,id={id}{mode}"));
        out.push("-drive".into());
        out.push(spec);
        out.push("-device".into());
        out.push(format!("virtio-blk-pci,drive={id}").into());
    }
    if !machine.forwards.is_empty() {
        // User-mode networking: the guest's DHCP client gets 10.0.2.15, and QEMU accepts
        // connections on the host's loopback ports and passes them on to the guest's.
        let forwards: String =
            machine.forwards.iter().map(|f| format!(",hostfwd=tcp:127.0.0.1:{}-:{}", f.host, f.guest)).collect();
        out.push("-netdev".into());
        out.push(format!("user,id=net0{forwards}").into());
        out.push("-device".into());
        out.push("virtio-net-pci,netdev=net0".into());
    }
    if let Some(socket) = &machine.qmp {
        let mut spec = OsString::from("unix:");
        spec.push(socket.to_string_lossy().replace(',', ",,"));
        spec.push(",server=on,wait=off");
        out.push("-qmp".into());
        out.push(spec);
    }
    if let Start::Kernel { kernel, initrd, cmdline } = &machine.start {
        out.push("-kernel".into());
        out.push(kernel.clone().into());
        out.push("-initrd".into());
        out.push(initrd.clone().into());
        out.push("-append".into());
        out.push(cmdline.clone().into());
    }
    out
}

/// The whole command, quoted for a shell, for `-v` and failure reports.
pub fn shell_line(args: &[OsString]) -> String {
    let quote = |s: &str| {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+".contains(&b)) {
            s.to_string()
        } else {
            format!("'{}'", s.replace('\'', "'\\''"))
        }
    };
    std::iter::once(QEMU.to_string())
        .chain(args.iter().map(|a| quote(&a.to_string_lossy())))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Decides between KVM and TCG from what the host offers. `cpuinfo` is `/proc/cpuinfo`'s text,
/// `kvm_usable` whether `/dev/kvm` opens for reading and writing. The caller still confirms a
/// `Kvm` answer with a probe boot: a `/dev/kvm` can exist and open and yet be a slow software
/// device on which guests crawl and then fail.
pub fn choose_accel(cpuinfo: &str, kvm_usable: bool) -> (Accel, &'static str) {
    let virt = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|flag| flag == "vmx" || flag == "svm"));
    match (virt, kvm_usable) {
        (false, _) => (Accel::Tcg, "the CPU has no vmx or svm flag"),
        (true, false) => (Accel::Tcg, "/dev/kvm cannot be opened for reading and writing"),
        (true, true) => (Accel::Kvm, "vmx/svm and /dev/kvm are present"),
    }
}

/// How a boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// QEMU exited by itself with this status (`None`: killed by a signal).
    Exited(Option<i32>),
    /// The kernel panicked; QEMU was stopped.
    Panicked,
    /// The firmware stopped with nothing to boot (OVMF's shell, or its "No bootable option"):
    /// the line that says so. QEMU was stopped.
    NothingToBoot(String),
    /// The time ran out; QEMU was killed.
    TimedOut,
    /// Every `[[test.http]]` check passed, but the power button could not be pressed (why);
    /// QEMU was stopped.
    NoPowerButton(String),
}

/// A finished boot: how it ended, what the console and transcript channel showed, how long.
#[derive(Debug, Clone)]
pub struct Boot {
    pub ending: Ending,
    pub console: Vec<Line>,
    pub transcript: Vec<Line>,
    pub elapsed: Duration,
    /// What became of each `[[test.http]]` check.
    pub probes: Vec<ProbeResult>,
    /// When the power button was pressed, into the boot.
    pub power_button: Option<Duration>,
}

/// Boots `machine` and waits for it to end, at most `timeout`. With `probes`, checks them while
/// the guest runs (each guest port must be forwarded, and the machine needs QMP) and once every
/// one has passed, presses the power button.
pub fn boot(machine: &Machine, timeout: Duration, probes: &[HttpProbe]) -> Result<Boot> {
    use std::os::unix::process::CommandExt;
    for path in [&machine.console, &machine.transcript] {
        std::fs::write(path, b"").map_err(|e| Error::failure(format!("cannot create `{}`: {e}", path.display())))?;
    }
    let started = Instant::now();
    let mut command = Command::new(QEMU);
    command.args(args(machine)).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).process_group(0);
    // SAFETY: prctl(2) is async-signal-safe; it makes the kernel kill QEMU if bake dies, so no
    // guest outlives a killed test run.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = command.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::input(format!("`{QEMU}` is not installed: install the `qemu-system-x86` package"))
        }
        _ => Error::failure(format!("cannot start `{QEMU}`: {e}")),
    })?;
    let mut guest = Guest { child };
    // QEMU's messages are read on the side, so a chatty QEMU never blocks on a full pipe.
    let stderr = process::drain(guest.child.stderr.take());
    let firmware = matches!(machine.start, Start::Firmware { .. });
    let mut console = ConsoleWatch { firmware, ..ConsoleWatch::default() };
    let host_port = |guest: u16| machine.forwards.iter().find(|f| f.guest == guest).map(|f| f.host);
    let mut prober = (!probes.is_empty()).then(|| Prober::new(probes, host_port));
    let mut power_button = None;
    let watch = || {
        if let Some(ending) = console.look(&machine.console) {
            // Let the message finish printing, then stop.
            std::thread::sleep(Duration::from_millis(300));
            return Some(ending);
        }
        let fresh = std::mem::take(&mut console.fresh);
        let elapsed = started.elapsed();
        if elapsed >= timeout {
            return Some(Ending::TimedOut);
        }
        let prober = prober.as_mut().filter(|_| power_button.is_none())?;
        prober.saw(&fresh);
        if prober.poll(elapsed, timeout - elapsed) {
            let socket = machine.qmp.as_deref().expect("a machine with probes has QMP");
            if let Err(why) = qmp::power_button(socket) {
                return Some(Ending::NoPowerButton(why));
            }
            power_button = Some(started.elapsed());
        }
        None
    };
    let ending = match process::wait(&mut guest.child, "QEMU", watch)? {
        Waited::Exited(status) => Ending::Exited(status.code()),
        Waited::Stopped(ending) => {
            guest.stop();
            ending
        }
        Waited::Interrupted => {
            guest.stop();
            crate::base::interrupt::stop_point()?;
            return Err(Error::failure("stopped"));
        }
    };
    let elapsed = started.elapsed();
    let stderr = stderr.join().unwrap_or_default();
    let read = |path: &Path| transcript::normalise(&std::fs::read(path).unwrap_or_default());
    let boot = Boot {
        ending,
        console: read(&machine.console),
        transcript: read(&machine.transcript),
        elapsed,
        probes: prober.map(Prober::results).unwrap_or_default(),
        power_button,
    };
    // QEMU's own failures (a bad option, a missing file) exit 1, as a guest's isa-debug-exit
    // success does; they differ in that the guest never printed anything.
    if boot.ending == Ending::Exited(Some(1)) && boot.console.is_empty() {
        return Err(Error::input(format!("QEMU failed before the guest started: {}", stderr.trim())));
    }
    Ok(boot)
}

/// QEMU, killed with its whole process group when dropped: no guest outlives an error.
struct Guest {
    child: std::process::Child,
}

impl Guest {
    fn stop(&mut self) {
        // SAFETY: kill(2) with a negative pid signals the process group QEMU leads (it was
        // started with process_group(0)); it touches no memory of ours.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// Reads the console file as it grows, looking only at what is new.
#[derive(Default)]
struct ConsoleWatch {
    offset: u64,
    tail: Vec<u8>,
    /// Whether firmware is still in charge: the boot started from firmware, and the kernel's
    /// EFI stub has not spoken yet. Only then is a shell prompt the firmware's.
    firmware: bool,
    /// Whole lines read since the caller last took them.
    fresh: Vec<Line>,
}

impl ConsoleWatch {
    /// Whether the boot has come to an end that cannot change any more: a kernel panic, or
    /// firmware with nothing to boot.
    fn look(&mut self, path: &Path) -> Option<Ending> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = std::fs::File::open(path).ok()?;
        file.seek(SeekFrom::Start(self.offset)).ok()?;
        let mut new = Vec::new();
        let n = file.read_to_end(&mut new).ok()?;
        self.offset += n as u64;
        // Keep the last unfinished line: a message may arrive in pieces. The firmware's shell
        // prompt never ends its line, so it is looked for in the unfinished part too.
        self.tail.extend_from_slice(&new);
        if self.firmware {
            if let Some(stop) = transcript::firmware_stop(&self.tail) {
                return Some(Ending::NothingToBoot(stop.to_string()));
            }
            self.firmware = !self.tail.windows(9).any(|w| w == b"EFI stub:");
        }
        let done = self.tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let lines = transcript::normalise(&self.tail.drain(..done).collect::<Vec<u8>>());
        let panicked = transcript::panic_line(&lines).is_some();
        self.fresh.extend(lines);
        panicked.then_some(Ending::Panicked)
    }
}

/// Whether a boot passed, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail(String),
}

/// Judges a boot against the `[test]` expectations: every `[[test.http]]` check passed, every
/// expected line in order, and a clean ending (the kernel's power-off, or success through
/// isa-debug-exit). QEMU's exit status 0 alone proves nothing: a panic or a reboot with
/// `-no-reboot` exits 0 as well.
pub fn verdict(boot: &Boot, expect: &[String], timeout: Duration) -> Verdict {
    let probes: Vec<String> = boot.probes.iter().filter_map(ProbeResult::failure).collect();
    let unmet = transcript::first_unmet(&boot.console, expect)
        .map(|i| format!("expected line {} `{}` never appeared", i + 1, expect[i]));
    // With `panic=-1` QEMU may exit before the panic is noticed while it runs: look again.
    let panic = transcript::panic_line(&boot.console);
    let ending = match &boot.ending {
        Ending::Panicked => Some(format!("kernel panic: {}", panic.unwrap_or("Kernel panic"))),
        _ if panic.is_some() => Some(format!("kernel panic: {}", panic.unwrap_or_default())),
        Ending::TimedOut => Some(match boot.power_button {
            Some(pressed) => format!(
                "timed out after {} s: the guest did not power off after the ACPI power button was pressed at {:.1} s",
                timeout.as_secs(),
                pressed.as_secs_f64()
            ),
            None => format!("timed out after {} s", timeout.as_secs()),
        }),
        Ending::NoPowerButton(why) => Some(format!("cannot press the guest's power button: {why}")),
        Ending::NothingToBoot(line) => Some(format!("the firmware found nothing to boot (`{line}`)")),
        Ending::Exited(Some(0)) if transcript::powered_off(&boot.console) => None,
        Ending::Exited(Some(0)) => Some("the guest stopped without powering off (reboot or halt?)".to_string()),
        Ending::Exited(Some(1)) => None, // isa-debug-exit: the guest wrote 0
        Ending::Exited(Some(code)) if code % 2 == 1 => {
            Some(format!("the guest reported failure {} through isa-debug-exit", code >> 1))
        }
        Ending::Exited(code) => Some(format!("QEMU ended with status {code:?}")),
    };
    // The checks first: when one failed, the rest (the timeout it ran into) follows from it.
    let reasons: Vec<String> = probes.into_iter().chain(ending).chain(unmet).collect();
    if reasons.is_empty() { Verdict::Pass } else { Verdict::Fail(reasons.join("; ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(accel: Accel) -> Machine {
        Machine {
            start: Start::Kernel {
                kernel: "/k/vmlinuz".into(),
                initrd: "/o/hello.cpio.zst".into(),
                cmdline: cmdline(Some("quiet init=/init")),
            },
            memory_mib: 256,
            root_disks: Vec::new(),
            disks: vec!["/t/scratch,1.img".into()],
            accel,
            console: "/t/console.log".into(),
            transcript: "/t/transcript.log".into(),
            forwards: Vec::new(),
            qmp: None,
        }
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn the_command_line_isolates_the_guest_and_wires_both_serial_ports() {
        let a = strings(&args(&machine(Accel::Tcg)));
        for flag in ["-nodefaults", "-no-user-config", "-no-reboot"] {
            assert!(a.contains(&flag.to_string()), "{flag} missing from {a:?}");
        }
        let joined = a.join(" ");
        assert!(joined.contains("-display none"));
        assert!(joined.contains("-accel tcg -cpu max"));
        assert!(joined.contains("-m 256"));
        assert!(joined.contains("-device isa-debug-exit,iobase=0xf4,iosize=0x04"));
        assert!(joined.contains("-serial file:/t/console.log -serial file:/t/transcript.log"));
        assert!(joined.contains("-kernel /k/vmlinuz -initrd /o/hello.cpio.zst"));
        assert_eq!(a.last().unwrap(), "console=ttyS0 panic=-1 quiet init=/init");
        assert!(
            joined.contains(
                "-drive file=/t/scratch,,1.img,format=raw,if=none,id=disk0 -device virtio-blk-pci,drive=disk0"
            )
        );
        let kvm = strings(&args(&machine(Accel::Kvm))).join(" ");
        assert!(kvm.contains("-accel kvm -cpu host"));
        // No network card, no QMP: -nodefaults leaves the guest without either.
        assert!(!joined.contains("-netdev") && !joined.contains("-nic") && !joined.contains("-qmp"), "{joined}");
    }

    #[test]
    fn a_checked_service_gets_a_network_card_forwarded_ports_and_qmp() {
        let mut m = machine(Accel::Tcg);
        m.forwards = vec![Forward { host: 40001, guest: 8080 }, Forward { host: 40002, guest: 80 }];
        m.qmp = Some("/t/q,mp.sock".into());
        let joined = strings(&args(&m)).join(" ");
        assert!(
            joined.contains(
                "-netdev user,id=net0,hostfwd=tcp:127.0.0.1:40001-:8080,hostfwd=tcp:127.0.0.1:40002-:80 \
                 -device virtio-net-pci,netdev=net0"
            ),
            "{joined}"
        );
        assert!(joined.contains("-qmp unix:/t/q,,mp.sock,server=on,wait=off"), "{joined}");
        assert!(joined.find("-qmp") < joined.find("-kernel"), "{joined}");
    }

    #[test]
    fn root_disks_come_first_and_read_only() {
        let mut m = machine(Accel::Tcg);
        m.root_disks = vec!["/o/root.erofs".into(), "/o/root.verity".into()];
        let joined = strings(&args(&m)).join(" ");
        let root =
            "-drive file=/o/root.erofs,format=raw,if=none,id=root0,readonly=on -device virtio-blk-pci,drive=root0";
        let tree =
            "-drive file=/o/root.verity,format=raw,if=none,id=root1,readonly=on -device virtio-blk-pci,drive=root1";
        let scratch = "-drive file=/t/scratch,,1.img,format=raw,if=none,id=disk0";
        assert!(joined.contains(root) && joined.contains(tree), "{joined}");
        assert!(joined.find(root) < joined.find(tree), "the root disk must be /dev/vda: {joined}");
        assert!(joined.find(tree) < joined.find(scratch), "the hash tree must be /dev/vdb: {joined}");
    }

    #[test]
    fn firmware_boots_a_q35_machine_from_read_only_code_and_its_own_variables() {
        let mut m = machine(Accel::Tcg);
        m.start = Start::Firmware { code: OVMF_CODE.into(), vars: "/t/vars.fd".into() };
        m.root_disks = vec!["/o/disk.img".into()];
        let a = strings(&args(&m));
        let joined = a.join(" ");
        assert!(joined.contains("-machine q35"), "{joined}");
        assert!(
            joined.contains(&format!("-drive if=pflash,format=raw,unit=0,file={OVMF_CODE},readonly=on")),
            "{joined}"
        );
        assert!(joined.contains("-drive if=pflash,format=raw,unit=1,file=/t/vars.fd"), "{joined}");
        assert!(!joined.contains("-kernel") && !joined.contains("-append"), "{joined}");
        assert!(joined.contains("-drive file=/o/disk.img,format=raw,if=none,id=root0,readonly=on"), "{joined}");
    }

    #[test]
    fn shell_lines_quote_what_needs_quoting() {
        let line = shell_line(&[OsString::from("-append"), OsString::from("console=ttyS0 quiet")]);
        assert_eq!(line, "qemu-system-x86_64 -append 'console=ttyS0 quiet'");
    }

    #[test]
    fn kvm_needs_the_cpu_flag_and_a_usable_device() {
        let with = "processor : 0\nflags : fpu vme vmx sse\n";
        let without = "processor : 0\nflags : fpu vme sse hypervisor\n";
        assert_eq!(choose_accel(with, true).0, Accel::Kvm);
        assert_eq!(choose_accel(with, false).0, Accel::Tcg);
        assert_eq!(choose_accel(without, true).0, Accel::Tcg);
        // A flag's name inside another word does not count.
        assert_eq!(choose_accel("flags : vmxnet\n", true).0, Accel::Tcg);
    }

    fn boot_with(ending: Ending, console: &[u8]) -> Boot {
        Boot {
            ending,
            console: transcript::normalise(console),
            transcript: Vec::new(),
            elapsed: Duration::ZERO,
            probes: Vec::new(),
            power_button: None,
        }
    }

    #[test]
    fn only_expected_lines_and_a_clean_ending_pass() {
        let expect = vec!["hello".to_string()];
        let t = Duration::from_secs(9);
        let good = b"hello\n[    2.0] reboot: Power down\n";
        assert_eq!(verdict(&boot_with(Ending::Exited(Some(0)), good), &expect, t), Verdict::Pass);
        // Status 0 without the power-off message is a reboot, halt or panic.
        let v = verdict(&boot_with(Ending::Exited(Some(0)), b"hello\n"), &expect, t);
        assert!(matches!(v, Verdict::Fail(ref r) if r.contains("without powering off")), "{v:?}");
        let v = verdict(&boot_with(Ending::Exited(Some(0)), b"[    2.0] reboot: Power down\n"), &expect, t);
        assert!(matches!(v, Verdict::Fail(ref r) if r.contains("`hello` never appeared")), "{v:?}");
        let v = verdict(&boot_with(Ending::Panicked, b"hello\n[    1.0] Kernel panic - not syncing: x\n"), &expect, t);
        assert!(
            matches!(v, Verdict::Fail(ref r) if r.starts_with("kernel panic: Kernel panic - not syncing: x")),
            "{v:?}"
        );
        // QEMU can exit (panic=-1, -no-reboot) before the panic is seen while it runs.
        let v = verdict(&boot_with(Ending::Exited(Some(0)), b"[    1.0] Kernel panic - not syncing: y\n"), &expect, t);
        assert!(
            matches!(v, Verdict::Fail(ref r) if r.starts_with("kernel panic: Kernel panic - not syncing: y")),
            "{v:?}"
        );
        let v = verdict(&boot_with(Ending::TimedOut, b""), &expect, t);
        assert!(matches!(v, Verdict::Fail(ref r) if r.contains("timed out after 9 s") && r.contains("never appeared")));
        assert_eq!(verdict(&boot_with(Ending::Exited(Some(1)), b"hello\n"), &expect, t), Verdict::Pass);
        let v = verdict(&boot_with(Ending::Exited(Some(7)), b"hello\n"), &expect, t);
        assert!(matches!(v, Verdict::Fail(ref r) if r.contains("failure 3 through isa-debug-exit")), "{v:?}");
    }

    #[test]
    fn a_failed_check_comes_first_and_an_ignored_power_button_is_a_hang() {
        let probe = HttpProbe { port: 8080, path: "/health".into(), expect: "ok".into(), after: None };
        let result =
            ProbeResult { probe, started: true, passed_at: None, tries: 9, last: Some("status 200, body `no`".into()) };
        let expect = vec!["web: up".to_string()];
        let t = Duration::from_secs(30);
        let mut boot = boot_with(Ending::TimedOut, b"web: up\n");
        boot.probes = vec![result.clone()];
        let v = verdict(&boot, &expect, t);
        assert_eq!(
            v,
            Verdict::Fail(
                "GET /health on port 8080 expecting `ok` failed (9 tries); the last: status 200, body `no`; timed out \
                 after 30 s"
                    .into()
            )
        );
        boot.probes[0].passed_at = Some(3.0);
        boot.power_button = Some(Duration::from_millis(3500));
        let v = verdict(&boot, &expect, t);
        assert_eq!(
            v,
            Verdict::Fail(
                "timed out after 30 s: the guest did not power off after the ACPI power button was pressed at 3.5 s"
                    .into()
            )
        );
        let clean = boot_with(Ending::Exited(Some(0)), b"web: up\n[    9.0] reboot: Power down\n");
        assert_eq!(verdict(&Boot { probes: boot.probes.clone(), ..clean }, &expect, t), Verdict::Pass);
    }
}
