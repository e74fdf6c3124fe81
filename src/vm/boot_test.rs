//! `bake test`: build each recipe into a temporary folder, boot the image under QEMU, and judge
//! the boot against the recipe's `[test]`. With `--twice`, build a second time under other
//! conditions (as `bake verify` does: a copy of the inputs, another folder, umask, time zone,
//! locale and worker count, in a separate process), require the same bytes, boot that image
//! too and require the same transcript.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::expect::{DiskStart, Expectations, KernelSource, expectations};
use super::probe::{self, ProbeResult};
use super::qemu::{self, Accel, Boot, Forward, Machine, Start, Verdict};
use super::transcript;
use crate::base::error::{Error, IoContext, Result};
use crate::base::hash::{Digest, hex};
use crate::base::progress::{Event, Reporter};
use crate::check::verify;
use crate::output::Built;
use crate::output::build::{self, Options};
use crate::output::{Output, OutputKind};
use crate::plan::Settings;
use crate::recipe::RecipeFile;

pub struct TestOptions {
    /// `--kernel`.
    pub kernel: Option<PathBuf>,
    /// The kernel when neither `--kernel` nor the recipe names one (`BAKE_KERNEL`).
    pub default_kernel: Option<PathBuf>,
    pub twice: bool,
    /// Compression threads for the builds.
    pub threads: u32,
    pub settings: Settings,
    /// Whether builds (other than `--twice`'s, which never do) may use the build cache.
    pub use_cache: bool,
    /// `--console DIR`: where each boot's whole console is kept, as the guest wrote it.
    pub console_dir: Option<PathBuf>,
}

/// One booted image.
#[derive(Debug, Clone)]
pub struct BootRecord {
    /// sha256 of the image booted.
    pub image_sha256: String,
    pub verdict: Verdict,
    pub seconds: f64,
    /// The lines user space printed on the console, then those on the transcript channel.
    pub transcript: Vec<String>,
    /// The last console lines, for failure reports.
    pub console_tail: Vec<String>,
    /// What became of each `[[test.http]]` check.
    pub probes: Vec<ProbeResult>,
    /// Seconds into the boot when bake pressed the power button (after every check passed).
    pub power_button: Option<f64>,
    /// With `--console DIR`: the file holding the whole console, escape sequences and all.
    pub console_file: Option<PathBuf>,
}

/// The result for one recipe.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub recipe: PathBuf,
    pub name: String,
    pub passed: bool,
    /// Why it failed (empty when it passed).
    pub reason: String,
    pub accel: &'static str,
    pub command: String,
    pub boots: Vec<BootRecord>,
    pub seconds: f64,
}

/// Chooses KVM only where it really works; otherwise TCG. Says why.
/// Without a `kernel` to probe with (a disk the firmware boots), KVM is taken on the host's word.
pub fn detect_accel(kernel: Option<&Path>, scratch: &Path) -> (Accel, String) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let usable = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok();
    let (accel, why) = qemu::choose_accel(&cpuinfo, usable);
    let Some(kernel) = kernel.filter(|_| accel == Accel::Kvm) else {
        return (accel, why.to_string());
    };
    // Probe: a kernel with an empty initramfs panics at once (no init) on real KVM. A software
    // /dev/kvm takes far longer, or fails.
    let probe = scratch.join("probe");
    let empty = probe.join("empty.cpio");
    let made = std::fs::create_dir_all(&probe).and_then(|_| {
        std::fs::write(&empty, crate::format::cpio::Writer::new(Vec::new()).finish().unwrap_or_default())
    });
    if made.is_err() {
        return (Accel::Tcg, "could not prepare the KVM probe".to_string());
    }
    let machine = Machine {
        start: Start::Kernel { kernel: kernel.to_path_buf(), initrd: empty, cmdline: qemu::cmdline(Some("quiet")) },
        memory_mib: 128,
        root_disks: Vec::new(),
        disks: Vec::new(),
        accel: Accel::Kvm,
        console: probe.join("console.log"),
        transcript: probe.join("transcript.log"),
        forwards: Vec::new(),
        qmp: None,
    };
    // With panic=-1 and -no-reboot QEMU may exit before the panic is seen while it runs:
    // what counts is that the console shows it.
    match qemu::boot(&machine, Duration::from_secs(15), &[]) {
        Ok(Boot { console, elapsed, .. }) if transcript::panic_line(&console).is_some() => {
            (Accel::Kvm, format!("a KVM probe boot reached the kernel's end in {:.1} s", elapsed.as_secs_f64()))
        }
        _ => {
            (Accel::Tcg, "a KVM probe boot did not reach the kernel's end in 15 s: /dev/kvm is not usable".to_string())
        }
    }
}

/// Runs `bake test` on every recipe. Bad input (a missing recipe, no kernel) is an error; a boot
/// that fails is a failed [`CaseResult`].
pub fn run(recipes: &[PathBuf], options: &TestOptions, reporter: &dyn Reporter) -> Result<Vec<CaseResult>> {
    // Check every recipe before booting anything.
    let loaded: Vec<(RecipeFile, Expectations)> = recipes
        .iter()
        .map(|path| {
            let recipe = RecipeFile::load(path)?;
            let expect = expectations(&recipe, options.kernel.as_deref(), options.default_kernel.as_deref())?;
            Ok((recipe, expect))
        })
        .collect::<Result<_>>()?;
    let scratch = tempfile::Builder::new()
        .prefix("bake-test-")
        .tempdir()
        .map_err(|e| Error::failure(format!("cannot make a temporary folder: {e}")))?;
    // Chosen at the first boot, with its kernel (the KVM probe boots it).
    let accel = std::cell::OnceCell::new();
    let choose = |kernel: Option<&Path>| {
        *accel.get_or_init(|| {
            let (accel, why) = detect_accel(kernel, scratch.path());
            reporter.report(Event::Info(format!("booting with {} ({why})", accel.name())));
            accel
        })
    };
    let mut results = Vec::new();
    for (index, (recipe, expect)) in loaded.iter().enumerate() {
        let case = Case { recipe, expect, dir: scratch.path().join(format!("case-{index}")), options, reporter };
        results.push(case.run(&choose)?);
    }
    Ok(results)
}

/// One recipe being tested.
struct Case<'a> {
    recipe: &'a RecipeFile,
    expect: &'a Expectations,
    /// Its scratch folder.
    dir: PathBuf,
    options: &'a TestOptions,
    reporter: &'a dyn Reporter,
}

/// The second build of `--twice`.
struct SecondBuild {
    dir: PathBuf,
    /// Its digest of the image booted (`None` when it did not make that file).
    image_sha256: Option<Digest>,
    /// Whether every output of the two builds is identical.
    identical: bool,
}

/// What a case boots, built.
struct Images {
    name: String,
    /// What is booted: the initramfs, or for a disk, the disk (`NAME.img`, else `NAME.erofs`).
    image: Output,
    /// For a dm-verity disk: the hash tree (`NAME.verity`), with its root hash.
    tree: Option<Output>,
    /// Where the (first) build put it.
    first_dir: PathBuf,
    /// With `--twice`: the second build.
    second: Option<SecondBuild>,
    /// For a disk: the build of the recipe whose initramfs boots it.
    boot: Option<Built>,
}

impl Case<'_> {
    fn build_options(&self, out_dir: PathBuf) -> Options {
        let o = self.options;
        Options { out_dir, threads: o.threads, settings: o.settings.clone(), use_cache: o.use_cache, remote: None }
    }

    fn run(&self, choose_accel: &dyn Fn(Option<&Path>) -> Accel) -> Result<CaseResult> {
        let started = Instant::now();
        let images = self.build()?;
        let accel = choose_accel(self.kernel(&images, &images.first_dir).as_deref());
        let first = self.machine(&images, &images.first_dir, "a", accel)?;
        let command = qemu::shell_line(&qemu::args(&first));
        self.reporter.report(Event::Detail(format!("{}: {command}", images.name)));
        let mut boots = vec![self.boot(&first, hex(&images.image.sha256))?];
        boots[0].console_file = self.keep_console(&first, &images.name, "")?;
        let mut reason = failure_reason(&boots[0]);
        if images.second.is_some() {
            let (second, why) = self.boot_second(&images, &boots[0], accel)?;
            reason = reason.or(why);
            boots.extend(second);
        }
        Ok(CaseResult {
            recipe: self.recipe.path.clone(),
            name: images.name,
            passed: reason.is_none(),
            reason: reason.unwrap_or_default(),
            accel: accel.name(),
            command,
            boots,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Builds what is booted (twice with `--twice`) and, for a disk, its boot recipe, and checks
    /// the guest's memory can hold the initramfs.
    fn build(&self) -> Result<Images> {
        let booted = |outputs: &[&Output]| -> (Output, Option<Output>) {
            let pick = |kind| outputs.iter().find(|o| o.kind == kind).copied();
            let found = match self.expect.boot {
                Some(_) => pick(OutputKind::Disk).or_else(|| pick(OutputKind::FileSystem)),
                None => pick(OutputKind::Initramfs),
            };
            let image = found.expect("the recipe was checked to have what is booted").clone();
            (image, pick(OutputKind::Verity).cloned())
        };
        let (images, data_bytes) = if self.options.twice {
            let (o, scratch) = (self.options, self.dir.join("twice"));
            let twice = verify::build_twice(&self.recipe.path, &scratch, o.threads, &o.settings, self.reporter)?;
            let (image, tree) = booted(&twice.outputs.iter().map(|(o, _)| o).collect::<Vec<_>>());
            let sha_b = twice.outputs.iter().find(|(o, _)| o.file == image.file).and_then(|(_, d)| *d);
            let second =
                Some(SecondBuild { dir: twice.second_dir.clone(), image_sha256: sha_b, identical: twice.identical() });
            let (name, first_dir) = (twice.name, twice.first_dir);
            (Images { name, image, tree, first_dir, second, boot: None }, twice.data_bytes)
        } else {
            let built = build::build(&self.recipe.path, &self.build_options(self.dir.join("a")), self.reporter)?;
            let (image, tree) = booted(&built.outputs.iter().collect::<Vec<_>>());
            let (name, first_dir) = (built.name, built.out_dir);
            (Images { name, image, tree, first_dir, second: None, boot: None }, built.data_bytes)
        };
        match self.expect.boot.as_ref().map(|b| &b.start) {
            // A disk boots with the initramfs of its boot recipe, built once: the kernel comes
            // from it.
            Some(DiskStart::Stage1(stage1)) => {
                let options = self.build_options(self.dir.join("boot"));
                let built = build::build(&stage1.recipe.path, &options, self.reporter)?;
                let initrd = built.output(OutputKind::Initramfs).expect("the boot recipe was checked to have one");
                check_memory(&stage1.recipe, self.expect, initrd.size, built.data_bytes)?;
                Ok(Images { boot: Some(built), ..images })
            }
            // The firmware loads the unified kernel image from the disk: its initramfs is in it.
            Some(DiskStart::Firmware) => Ok(images),
            None => {
                check_memory(self.recipe, self.expect, images.image.size, data_bytes)?;
                Ok(images)
            }
        }
    }

    /// The kernel that boots the build in `out`: the one given, the boot recipe's, or the
    /// build's own (`--twice` boots each build's).
    fn kernel(&self, images: &Images, out: &Path) -> Option<PathBuf> {
        match (&self.expect.kernel, &images.boot) {
            (KernelSource::Given(path), _) => Some(path.clone()),
            (KernelSource::Built, Some(boot)) => Some(boot.out_dir.join(format!("{}.vmlinuz", boot.name))),
            (KernelSource::Built, None) => Some(out.join(format!("{}.vmlinuz", images.name))),
            (KernelSource::InImage, _) => None,
        }
    }

    /// The machine that boots the build in `out`; `tag` tells its files from another boot's.
    fn machine(&self, images: &Images, out: &Path, tag: &str, accel: Accel) -> Result<Machine> {
        let extra = self.expect.cmdline.as_deref().unwrap_or("quiet");
        let start = |initrd: PathBuf, cmdline: &str| {
            let kernel = self.kernel(images, out).expect("a boot with an initramfs has a kernel");
            Start::Kernel { kernel, initrd, cmdline: qemu::cmdline(Some(cmdline)) }
        };
        let (start, root_disks) = match (&images.boot, self.expect.boot.as_ref().map(|b| &b.start)) {
            (Some(built), Some(DiskStart::Stage1(stage1))) => {
                let initrd = built.output(OutputKind::Initramfs).expect("checked when it was built");
                let root_hash = images.tree.as_ref().and_then(|t| t.root_hash).map(|h| hex(&h));
                let root = stage1.root_arguments(root_hash.as_deref());
                let initrd = built.out_dir.join(&initrd.file);
                (start(initrd, &format!("{extra} {root}")), self.root_disks(images, out, tag)?)
            }
            (_, Some(DiskStart::Firmware)) => {
                // A fresh variable store for every boot: one left by an earlier boot can keep
                // the firmware at its shell.
                let vars = self.dir.join(format!("ovmf-vars-{tag}.fd"));
                std::fs::copy(qemu::OVMF_VARS, &vars).map_err(|e| {
                    Error::input(format!(
                        "cannot copy the UEFI firmware's variable store `{}`: {e} (install the `ovmf` package)",
                        qemu::OVMF_VARS
                    ))
                })?;
                let code = PathBuf::from(qemu::OVMF_CODE);
                if !code.is_file() {
                    return Err(Error::input(format!(
                        "no UEFI firmware at `{}`: install the `ovmf` package",
                        code.display()
                    )));
                }
                (Start::Firmware { code, vars }, self.root_disks(images, out, tag)?)
            }
            _ => (start(out.join(&images.image.file), extra), Vec::new()),
        };
        Ok(Machine {
            start,
            memory_mib: self.expect.memory,
            root_disks,
            disks: self.scratch_disks(tag)?,
            accel,
            console: self.dir.join(format!("console-{tag}.log")),
            transcript: self.dir.join(format!("transcript-{tag}.log")),
            forwards: self.forwards()?,
            qmp: (!self.expect.http.is_empty()).then(|| self.dir.join(format!("qmp-{tag}.sock"))),
        })
    }

    /// A free host port for each guest port the `[[test.http]]` checks use.
    fn forwards(&self) -> Result<Vec<Forward>> {
        let mut guest: Vec<u16> = self.expect.http.iter().map(|p| p.port).collect();
        guest.sort_unstable();
        guest.dedup();
        guest.into_iter().map(|guest| Ok(Forward { host: probe::free_port()?, guest })).collect()
    }

    /// The disk of the build in `out`, and for a dm-verity file system without a partition
    /// table its hash tree beside it. With `[test] tamper`, the disk is a copy of the one built
    /// with the first byte of that file changed.
    fn root_disks(&self, images: &Images, out: &Path, tag: &str) -> Result<Vec<PathBuf>> {
        let mut disk = out.join(&images.image.file);
        if let Some(path) = self.expect.boot.as_ref().and_then(|b| b.tamper.as_ref()) {
            let copy = self.dir.join(format!("tampered-{tag}-{}", images.image.file));
            std::fs::copy(&disk, &copy).writing(&copy)?;
            let at = crate::check::image::tamper(&copy, path)?;
            let name = &images.name;
            self.reporter
                .report(Event::Info(format!("{name}: changed the first byte of `{path}` (byte {at} of a copy)")));
            disk = copy;
        }
        let bare_tree = images.tree.as_ref().filter(|_| images.image.kind == OutputKind::FileSystem);
        Ok(std::iter::once(disk).chain(bare_tree.map(|t| out.join(&t.file))).collect())
    }

    /// Each boot gets its own blank disk, so the second boot of `--twice` starts the same.
    fn scratch_disks(&self, tag: &str) -> Result<Vec<PathBuf>> {
        let Some(mib) = self.expect.scratch_disk else { return Ok(Vec::new()) };
        let disk = self.dir.join(format!("scratch-{tag}.img"));
        let file = std::fs::File::create(&disk)
            .map_err(|e| Error::failure(format!("cannot create `{}`: {e}", disk.display())))?;
        file.set_len(u64::from(mib) << 20)
            .map_err(|e| Error::failure(format!("cannot size `{}`: {e}", disk.display())))?;
        Ok(vec![disk])
    }

    fn boot(&self, machine: &Machine, image_sha256: String) -> Result<BootRecord> {
        boot_and_judge(machine, self.expect, image_sha256)
    }

    /// With `--console DIR`, copies the boot's console to `DIR/NAME{suffix}.console` (the
    /// bytes the guest wrote: escape sequences are kept there, and stripped only in what bake
    /// prints).
    fn keep_console(&self, machine: &Machine, name: &str, suffix: &str) -> Result<Option<PathBuf>> {
        let Some(dir) = &self.options.console_dir else { return Ok(None) };
        std::fs::create_dir_all(dir).map_err(|e| Error::failure(format!("cannot make `{}`: {e}", dir.display())))?;
        let kept = dir.join(format!("{name}{suffix}.console"));
        std::fs::copy(&machine.console, &kept)
            .map_err(|e| Error::failure(format!("cannot keep the console in `{}`: {e}", kept.display())))?;
        Ok(Some(kept))
    }

    /// `--twice`: the second build must have the same bytes; then it boots too, and must print
    /// the same transcript as the `first` boot. Returns its boot, if any, and why the case
    /// fails, if it does.
    fn boot_second(
        &self,
        images: &Images,
        first: &BootRecord,
        accel: Accel,
    ) -> Result<(Option<BootRecord>, Option<String>)> {
        let Some(SecondBuild { dir: out_b, image_sha256: sha_b, identical }) = &images.second else {
            return Ok((None, None));
        };
        let (name, sha_a) = (&images.name, hex(&images.image.sha256));
        let sha_b = sha_b.map(|d| hex(&d)).unwrap_or_else(|| "(missing)".to_string());
        let say = |text: String| self.reporter.report(Event::Info(text));
        say(format!("{name}: first build sha256 {sha_a}, second build sha256 {sha_b}"));
        if !identical {
            let why = format!("the two builds differ (image sha256 {sha_a} and {sha_b}): run `bake verify` to see how");
            return Ok((None, Some(why)));
        }
        let machine = self.machine(images, out_b, "b", accel)?;
        let mut second = self.boot(&machine, sha_b)?;
        second.console_file = self.keep_console(&machine, name, ".second")?;
        let reason = failure_reason(&second)
            .map(|r| format!("second boot: {r}"))
            .or_else(|| compare_transcripts(&first.transcript, &second.transcript));
        if reason.is_none() && failure_reason(first).is_none() {
            say(format!("{name}: the two boots' transcripts are identical ({} lines)", second.transcript.len()));
        }
        Ok((Some(second), reason))
    }
}

/// Memory the kernel needs beside the initramfs, roughly, for a small guest.
const KERNEL_MIB: u64 = 48;

/// Refuses, before booting, an image the guest's memory cannot hold: the kernel keeps the
/// compressed archive (`compressed` bytes) in memory while it unpacks every file (`unpacked`
/// bytes of data) into RAM, and would otherwise fail with an obscure unpacking error or an
/// out-of-memory panic.
fn check_memory(recipe: &RecipeFile, expect: &Expectations, compressed: u64, unpacked: u64) -> Result<()> {
    let mib = |bytes: u64| bytes.div_ceil(1 << 20);
    let needed = mib(compressed) + mib(unpacked) + KERNEL_MIB;
    if needed > u64::from(expect.memory) {
        let message = format!(
            "the image needs about {needed} MiB of guest memory ({} MiB compressed, {} MiB unpacked, \
             {KERNEL_MIB} MiB for the kernel), but `[test] memory` is {} MiB: raise it",
            mib(compressed),
            mib(unpacked),
            expect.memory
        );
        let at = recipe.recipe.test.as_ref().map(|t| t.get_ref().memory.as_ref().map_or(t.span(), |m| m.span()));
        return Err(match at {
            Some(span) => Error::input(format!("{}: {message}", recipe.at(span.start))),
            None => Error::input(message),
        });
    }
    Ok(())
}

fn boot_and_judge(machine: &Machine, expect: &Expectations, image_sha256: String) -> Result<BootRecord> {
    let boot = qemu::boot(machine, expect.timeout, &expect.http)?;
    let mut verdict = qemu::verdict(&boot, &expect.expect, expect.timeout);
    if let (Verdict::Fail(reason), Start::Firmware { .. }) = (&mut verdict, &machine.start)
        && let Some(hint) = transcript::silent_after_firmware(&boot.console)
    {
        reason.push_str("; ");
        reason.push_str(hint);
    }
    let mut lines = transcript::user_lines(&boot.console);
    lines.extend(boot.transcript.iter().map(|l| l.text.clone()));
    Ok(BootRecord {
        image_sha256,
        verdict,
        seconds: boot.elapsed.as_secs_f64(),
        transcript: lines,
        console_tail: transcript::tail(&boot.console, 15),
        power_button: boot.power_button.map(|d| d.as_secs_f64()),
        probes: boot.probes,
        console_file: None,
    })
}

fn failure_reason(boot: &BootRecord) -> Option<String> {
    match &boot.verdict {
        Verdict::Pass => None,
        Verdict::Fail(reason) => Some(reason.clone()),
    }
}

/// The first difference between two transcripts, if any.
pub fn compare_transcripts(a: &[String], b: &[String]) -> Option<String> {
    let differs = a.iter().zip(b).position(|(x, y)| x != y);
    match differs {
        Some(i) => Some(format!("the two boots' transcripts differ at line {}: `{}` and `{}`", i + 1, a[i], b[i])),
        None if a.len() != b.len() => {
            Some(format!("the two boots' transcripts differ in length: {} and {} lines", a.len(), b.len()))
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcripts_must_match_line_for_line() {
        let a = vec!["hello".to_string(), "2 CPUs".to_string()];
        assert_eq!(compare_transcripts(&a, &a.clone()), None);
        let b = vec!["hello".to_string(), "1 CPU".to_string()];
        assert!(compare_transcripts(&a, &b).unwrap().contains("line 2: `2 CPUs` and `1 CPU`"));
        assert!(compare_transcripts(&a, &a[..1]).unwrap().contains("2 and 1 lines"));
    }
}
