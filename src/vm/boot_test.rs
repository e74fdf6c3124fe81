//! `bake test`: build each recipe into a temporary folder, boot the image under QEMU, and judge
//! the boot against the recipe's `[test]`. With `--twice`, build a second time under other
//! conditions (as `bake verify` does: a copy of the inputs, another folder, umask, time zone,
//! locale and worker count, in a separate process), require the same bytes, boot that image
//! too and require the same transcript.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::base::error::{Error, Result};
use crate::base::hash::hex;
use crate::base::progress::{Event, Reporter};
use crate::output::build::{self, Options};
use crate::output::manifest::Output;
use crate::plan::Environment;
use crate::recipe::RecipeFile;
use crate::vm::qemu::{self, Accel, Boot, Machine, Verdict};
use crate::vm::transcript;

/// Default and allowed `[test]` values.
const DEFAULT_TIMEOUT: u64 = 60;
const DEFAULT_MEMORY: u32 = 256;

pub struct TestOptions {
    /// `--kernel`, else `BAKE_KERNEL`.
    pub kernel: Option<PathBuf>,
    pub twice: bool,
    pub jobs: u32,
    pub env: Environment,
    /// Whether builds (other than `--twice`'s, which never do) may use the build cache.
    pub use_cache: bool,
}

/// The `[test]` of a recipe, checked.
struct Expectations {
    expect: Vec<String>,
    timeout: Duration,
    memory: u32,
    /// MiB of blank virtio disk to attach.
    scratch_disk: Option<u32>,
    /// Extra kernel command line (`[kernel] cmdline`).
    cmdline: Option<String>,
    kernel: KernelSource,
    /// For a disk: the recipe of the initramfs that boots it, and the `root=` for the kernel
    /// command line.
    boot: Option<(RecipeFile, &'static str)>,
}

/// Where the kernel to boot comes from.
#[derive(Debug, Clone)]
enum KernelSource {
    /// `--kernel`, or BAKE_KERNEL.
    Given(PathBuf),
    /// The recipe's `[kernel]` (or its boot recipe's): the `NAME.vmlinuz` its build writes.
    Built,
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

/// Finds the kernel: `--kernel`, else the recipe's `[kernel]` (its modules are built for that
/// kernel, so it beats the environment), else `BAKE_KERNEL`.
fn kernel_source(options: &TestOptions, recipe: &RecipeFile) -> Result<KernelSource> {
    let given = |path: PathBuf| {
        if path.is_file() {
            Ok(KernelSource::Given(path))
        } else {
            Err(Error::input(format!("kernel `{}` is not a file", path.display())))
        }
    };
    if let Some(path) = &options.kernel {
        return given(path.clone());
    }
    if recipe.recipe.kernel.is_some() {
        return Ok(KernelSource::Built);
    }
    match std::env::var_os("BAKE_KERNEL") {
        Some(path) => given(PathBuf::from(path)),
        None => Err(Error::input(format!(
            "no kernel to boot `{}`: pass `--kernel PATH`, set BAKE_KERNEL, or add a `[kernel]` to the \
             recipe (`scripts/fetch-kernel.sh` fetches Debian's cloud kernel and prints its path)",
            recipe.path.display()
        ))),
    }
}

fn expectations(recipe: &RecipeFile, options: &TestOptions) -> Result<Expectations> {
    let Some(test) = &recipe.recipe.test else {
        return Err(Error::input(format!(
            "`{}` has no `[test]` section: there is nothing to check after booting it",
            recipe.path.display()
        )));
    };
    let t = test.get_ref();
    let boot = match (&t.boot_recipe, &recipe.recipe.disk) {
        (Some(path), Some(disk)) => {
            let boot = RecipeFile::load(&recipe.host_path(path.get_ref())).map_err(|e| recipe.error(path, e))?;
            if boot.recipe.initramfs.is_none() {
                return Err(recipe.error(path, format!("`{}` has no `[initramfs]` to boot with", path.get_ref())));
            }
            // bake test attaches the disk as the first virtio-blk device.
            let root = match disk.get_ref().partition_table {
                crate::recipe::PartitionTable::Gpt => "root=/dev/vda1",
                crate::recipe::PartitionTable::None => "root=/dev/vda",
            };
            Some((boot, root))
        }
        (Some(path), None) => {
            return Err(recipe.error(path, "`boot-recipe` boots a `[disk]`, and this recipe has none"));
        }
        (None, _) if recipe.recipe.initramfs.is_none() => {
            return Err(recipe.error(
                test,
                "`bake test` boots the initramfs, but the recipe has no `[initramfs]` (a `[disk]` boots with \
                 `boot-recipe`)",
            ));
        }
        (None, _) => None,
    };
    // The kernel, its modules and its command line come with the initramfs that boots.
    let booting = boot.as_ref().map_or(recipe, |(b, _)| b);
    let timeout = match &t.timeout {
        Some(v) if !(1..=3600).contains(v.get_ref()) => {
            return Err(recipe.error(v, "`timeout` is in seconds, from 1 to 3600"));
        }
        Some(v) => *v.get_ref(),
        None => DEFAULT_TIMEOUT,
    };
    let memory = match &t.memory {
        Some(v) if !(64..=65536).contains(v.get_ref()) => {
            return Err(recipe.error(v, "`memory` is in MiB, from 64 to 65536"));
        }
        Some(v) => *v.get_ref(),
        None => DEFAULT_MEMORY,
    };
    let scratch_disk = match &t.scratch_disk {
        Some(v) if !(1..=65536).contains(v.get_ref()) => {
            return Err(recipe.error(v, "`scratch-disk` is in MiB, from 1 to 65536"));
        }
        Some(v) => Some(*v.get_ref()),
        None => None,
    };
    Ok(Expectations {
        expect: t.expect.clone(),
        timeout: Duration::from_secs(timeout),
        memory,
        scratch_disk,
        cmdline: booting.recipe.kernel.as_ref().and_then(|k| k.get_ref().cmdline.clone()),
        kernel: kernel_source(options, booting)?,
        boot,
    })
}

/// Chooses KVM only where it really works; otherwise TCG. Says why.
pub fn detect_accel(kernel: &Path, scratch: &Path) -> (Accel, String) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let usable = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok();
    let (accel, why) = qemu::choose_accel(&cpuinfo, usable);
    if accel == Accel::Tcg {
        return (Accel::Tcg, why.to_string());
    }
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
        kernel: kernel.to_path_buf(),
        initrd: empty,
        cmdline: qemu::cmdline(Some("quiet")),
        memory_mib: 128,
        root_disk: None,
        disks: Vec::new(),
        accel: Accel::Kvm,
        console: probe.join("console.log"),
        transcript: probe.join("transcript.log"),
    };
    // With panic=-1 and -no-reboot QEMU may exit before the panic is seen while it runs:
    // what counts is that the console shows it.
    match qemu::boot(&machine, Duration::from_secs(15)) {
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
            let expect = expectations(&recipe, options)?;
            Ok((recipe, expect))
        })
        .collect::<Result<_>>()?;
    let scratch = tempfile::Builder::new()
        .prefix("bake-test-")
        .tempdir()
        .map_err(|e| Error::failure(format!("cannot make a temporary folder: {e}")))?;
    // Chosen at the first boot, with its kernel (the KVM probe boots it).
    let accel = std::cell::OnceCell::new();
    let choose = |kernel: &Path| {
        *accel.get_or_init(|| {
            let (accel, why) = detect_accel(kernel, scratch.path());
            reporter.report(Event::Info(format!("booting with {} ({why})", accel.name())));
            accel
        })
    };
    let mut results = Vec::new();
    for (index, (recipe, expect)) in loaded.iter().enumerate() {
        let case = scratch.path().join(format!("case-{index}"));
        results.push(run_case(recipe, expect, &choose, &case, options, reporter)?);
    }
    Ok(results)
}

fn run_case(
    recipe: &RecipeFile,
    expect: &Expectations,
    choose_accel: &dyn Fn(&Path) -> Accel,
    dir: &Path,
    options: &TestOptions,
    reporter: &dyn Reporter,
) -> Result<CaseResult> {
    let say = |text: String| reporter.report(Event::Info(text));
    let started = Instant::now();
    let build_options =
        Options { out_dir: dir.join("a"), jobs: options.jobs, env: options.env.clone(), use_cache: options.use_cache };
    // What is booted: the initramfs, or for a disk, the disk (`NAME.img`, else `NAME.erofs`).
    let disk = expect.boot.is_some();
    let booted = |files: &[&Output]| -> Output {
        let pick = |suffix: &str| files.iter().find(|o| o.file.ends_with(suffix)).copied();
        let found = if disk { pick(".img").or_else(|| pick(".erofs")) } else { pick_initramfs(files) };
        found.expect("the recipe was checked to have what is booted").clone()
    };
    let (name, image, out_a, second) = if options.twice {
        let twice =
            crate::check::verify::build_twice(&recipe.path, &dir.join("twice"), options.jobs, &options.env, reporter)?;
        let image = booted(&twice.outputs.iter().map(|(o, _)| o).collect::<Vec<_>>());
        let sha_b = twice.outputs.iter().find(|(o, _)| o.file == image.file).and_then(|(_, d)| *d);
        let second = (twice.second_dir.clone(), sha_b, twice.identical());
        (twice.name.clone(), image, twice.first_dir.clone(), Some(second))
    } else {
        let built = build::build(&recipe.path, &build_options, reporter)?;
        let image = booted(&built.outputs.iter().collect::<Vec<_>>());
        (built.name.clone(), image, build_options.out_dir.clone(), None)
    };
    // A disk boots with the initramfs of its boot recipe, built once: the kernel comes from it.
    let (boot_dir, boot_name, initrd) = match &expect.boot {
        Some((boot, _)) => {
            let boot_dir = dir.join("boot");
            let options = Options {
                out_dir: boot_dir.clone(),
                jobs: options.jobs,
                env: options.env.clone(),
                use_cache: options.use_cache,
            };
            let built = build::build(&boot.path, &options, reporter)?;
            let initrd = pick_initramfs(&built.outputs.iter().collect::<Vec<_>>()).map(|o| (*o).clone());
            let initrd = initrd.expect("the boot recipe was checked to have an initramfs");
            check_memory(boot, expect, &boot_dir, &built.name, initrd.size)?;
            (boot_dir, built.name, Some(initrd))
        }
        None => {
            check_memory(recipe, expect, &out_a, &name, image.size)?;
            (out_a.clone(), name.clone(), None)
        }
    };
    let kernel = match &expect.kernel {
        KernelSource::Given(path) => path.clone(),
        KernelSource::Built => boot_dir.join(format!("{boot_name}.vmlinuz")),
    };
    let accel = choose_accel(&kernel);
    // Each boot gets its own blank disk, so the second boot of `--twice` starts the same.
    let disks = |tag: &str| -> Result<Vec<PathBuf>> {
        let Some(mib) = expect.scratch_disk else { return Ok(Vec::new()) };
        let disk = dir.join(format!("scratch-{tag}.img"));
        let file = std::fs::File::create(&disk)
            .map_err(|e| Error::failure(format!("cannot create `{}`: {e}", disk.display())))?;
        file.set_len(u64::from(mib) << 20)
            .map_err(|e| Error::failure(format!("cannot size `{}`: {e}", disk.display())))?;
        Ok(vec![disk])
    };
    let machine = |out: &Path, tag: &str| -> Result<Machine> {
        let extra = expect.cmdline.as_deref().unwrap_or("quiet");
        let (initrd, root_disk, cmdline) = match (&initrd, &expect.boot) {
            (Some(initrd), Some((_, root))) => {
                (boot_dir.join(&initrd.file), Some(out.join(&image.file)), format!("{extra} {root}"))
            }
            _ => (out.join(&image.file), None, extra.to_string()),
        };
        Ok(Machine {
            kernel: match &expect.kernel {
                KernelSource::Given(path) => path.clone(),
                // The boot recipe's, else each build's own (`--twice` boots both).
                KernelSource::Built if disk => kernel.clone(),
                KernelSource::Built => out.join(format!("{name}.vmlinuz")),
            },
            initrd,
            cmdline: qemu::cmdline(Some(&cmdline)),
            memory_mib: expect.memory,
            root_disk,
            disks: disks(tag)?,
            accel,
            console: dir.join(format!("console-{tag}.log")),
            transcript: dir.join(format!("transcript-{tag}.log")),
        })
    };
    let first = machine(&out_a, "a")?;
    let command = qemu::shell_line(&qemu::args(&first));
    reporter.report(Event::Detail(format!("{name}: {command}")));
    let mut boots = vec![boot_and_judge(&first, expect, hex(&image.sha256))?];
    let mut reason = failure_reason(&boots[0]);

    if let Some((out_b, sha_b, identical)) = second {
        let sha_b = sha_b.map(|d| hex(&d)).unwrap_or_else(|| "(missing)".to_string());
        say(format!("{name}: first build sha256 {}, second build sha256 {sha_b}", hex(&image.sha256)));
        if !identical {
            reason.get_or_insert_with(|| {
                format!(
                    "the two builds differ (image sha256 {} and {sha_b}): run `bake verify` to see how",
                    hex(&image.sha256)
                )
            });
        } else {
            let second = boot_and_judge(&machine(&out_b, "b")?, expect, sha_b)?;
            if reason.is_none() {
                reason = failure_reason(&second).map(|r| format!("second boot: {r}"));
            }
            if reason.is_none() {
                reason = compare_transcripts(&boots[0].transcript, &second.transcript);
            }
            if reason.is_none() {
                say(format!("{name}: the two boots' transcripts are identical ({} lines)", second.transcript.len()));
            }
            boots.push(second);
        }
    }
    Ok(CaseResult {
        recipe: recipe.path.clone(),
        name,
        passed: reason.is_none(),
        reason: reason.unwrap_or_default(),
        accel: accel.name(),
        command,
        boots,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The initramfs among a build's outputs.
fn pick_initramfs<'a>(files: &[&'a Output]) -> Option<&'a Output> {
    files.iter().find(|o| o.file.contains(".cpio")).copied()
}

/// Memory the kernel needs beside the initramfs, roughly, for a small guest.
const KERNEL_MIB: u64 = 48;

/// Refuses, before booting, an image the guest's memory cannot hold: the kernel keeps the
/// compressed archive in memory while it unpacks every file into RAM, and would otherwise fail
/// with an obscure unpacking error or an out-of-memory panic.
fn check_memory(recipe: &RecipeFile, expect: &Expectations, out: &Path, name: &str, compressed: u64) -> Result<()> {
    let manifest_path = out.join(format!("{name}.manifest.json"));
    let manifest: serde_json::Value = std::fs::read(&manifest_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| Error::failure(format!("cannot read `{}`", manifest_path.display())))?;
    // Hard links share their data: count each file's bytes once.
    let unpacked: u64 = manifest["entries"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["type"] == "file" && e["hardlink"].is_null())
                .filter_map(|e| e["size"].as_u64())
                .sum()
        })
        .unwrap_or(0);
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
    let boot = qemu::boot(machine, expect.timeout)?;
    let verdict = qemu::verdict(&boot, &expect.expect, expect.timeout);
    let mut lines = transcript::user_lines(&boot.console);
    lines.extend(boot.transcript.iter().map(|l| l.text.clone()));
    Ok(BootRecord {
        image_sha256,
        verdict,
        seconds: boot.elapsed.as_secs_f64(),
        transcript: lines,
        console_tail: transcript::tail(&boot.console, 15),
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

/// The results as JSON (for `--json`).
pub fn results_json(results: &[CaseResult]) -> String {
    let cases: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            serde_json::json!({
                "recipe": r.recipe.display().to_string(),
                "name": r.name,
                "result": if r.passed { "pass" } else { "fail" },
                "reason": r.reason,
                "accel": r.accel,
                "seconds": r.seconds,
                "command": r.command,
                "boots": r.boots.iter().map(|b| serde_json::json!({
                    "image_sha256": b.image_sha256,
                    "seconds": b.seconds,
                    "transcript": b.transcript,
                    "console_tail": b.console_tail,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&serde_json::json!({ "cases": cases })).expect("plain data");
    text.push('\n');
    text
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
