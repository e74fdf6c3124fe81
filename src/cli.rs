//! The command line: parses arguments, runs a command, prints its result or its one error, and
//! picks the exit status (0 done, 1 failure, 2 bad recipe or input; see `../shared/CONTRACT.md`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::base::error::Result;
use crate::base::hash::hex;
use crate::output::build::{self, Options};
use crate::plan::Environment;
use crate::source::packages::LockPolicy;
use crate::ui::{Ui, Verbosity, human_size};

/// bake: a minimal, bit-for-bit reproducible VM image baker.
#[derive(Parser, Debug)]
#[command(name = "bake", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct Global {
    /// Print nothing but errors and the result.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Say more about what is being done.
    #[arg(short, long, global = true)]
    verbose: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build the images a recipe describes, with a manifest and SHA256SUMS.
    Build(BuildArgs),
    /// Build each recipe, boot it under QEMU and check its `[test]` expectations.
    Test(TestArgs),
    /// List every entry of an image (cpio, compressed or not, one or several archives).
    Inspect(InspectArgs),
    /// Explain, entry by entry, how two images differ (exit 0 same content, 1 different).
    Diff(DiffArgs),
    /// Build a recipe twice under different conditions and check the outputs are identical.
    Verify(VerifyArgs),
    /// Resolve and pin every input of a recipe (packages, archives, files) in NAME.lock.
    Lock(LockArgs),
}

/// Where Debian packages are cached.
#[derive(Args, Debug)]
struct CacheArg {
    /// Cache folder for Debian packages (default: $XDG_CACHE_HOME/bake, else ~/.cache/bake).
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
}

/// Where Debian packages are cached, and how the lock file is used.
#[derive(Args, Debug)]
struct PackageArgs {
    #[command(flatten)]
    cache: CacheArg,
    /// Refuse to build unless the recipe's lock file exists and pins every input (for CI).
    #[arg(long)]
    locked: bool,
}

impl PackageArgs {
    fn environment(self) -> Environment {
        let mut env = Environment::from_process();
        if let Some(cache) = self.cache.cache {
            env.packages.cache = Some(cache);
        }
        if self.locked {
            env.packages.policy = LockPolicy::Require;
        }
        env
    }
}

#[derive(Args, Debug)]
struct LockArgs {
    /// The recipe; the lock is written beside it (`hello.lock` for `hello.toml`).
    recipe: PathBuf,
    /// Resolve every package again from apt's current lists, instead of keeping the versions
    /// the lock already pins.
    #[arg(long)]
    update: bool,
    #[command(flatten)]
    cache: CacheArg,
}

#[derive(Args, Debug)]
struct InspectArgs {
    /// The image.
    image: PathBuf,
    /// Print the entries as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct DiffArgs {
    a: PathBuf,
    b: PathBuf,
    /// Print the differences as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// The recipe.
    recipe: PathBuf,
    /// Compression threads for the first build (the second uses one).
    #[arg(short, long, value_parser = clap::value_parser!(u32).range(1..=256))]
    jobs: Option<u32>,
    /// Print the result as JSON: every output's two digests, and the diff of differing images.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    packages: PackageArgs,
}

#[derive(Args, Debug)]
struct TestArgs {
    /// Recipes with a `[test]` section.
    #[arg(required = true)]
    recipes: Vec<PathBuf>,
    /// The kernel to boot (default: the recipe's `[kernel]`, else $BAKE_KERNEL).
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Build twice under different conditions, boot both, and require the same image bytes
    /// and the same transcript.
    #[arg(long)]
    twice: bool,
    /// Compression threads for the builds.
    #[arg(short, long, value_parser = clap::value_parser!(u32).range(1..=256))]
    jobs: Option<u32>,
    /// Build for real even when the build cache has the outputs (also: BAKE_NO_CACHE=1).
    #[arg(long)]
    no_cache: bool,
    /// Print the results as JSON on standard output.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    packages: PackageArgs,
}

#[derive(Args, Debug)]
struct BuildArgs {
    /// The recipe (TOML).
    recipe: PathBuf,
    /// Output folder (created when missing).
    #[arg(short, long, default_value = "out")]
    out: PathBuf,
    /// Compression threads (default: all cores). Never changes the output bytes.
    #[arg(short, long, value_parser = clap::value_parser!(u32).range(1..=256))]
    jobs: Option<u32>,
    /// Build for real even when the build cache has the outputs (also: BAKE_NO_CACHE=1).
    #[arg(long)]
    no_cache: bool,
    /// Print the result as JSON on standard output.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    packages: PackageArgs,
}

/// Runs bake with the process's arguments and returns the exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap's usage errors are bad input too; --help and --version are not errors.
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let verbosity = if cli.global.quiet {
        Verbosity::Quiet
    } else if cli.global.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    crate::base::interrupt::install();
    let ui = Ui::new(verbosity);
    match run(cli.command, &ui) {
        Ok(code) => code,
        Err(e) => {
            drop(ui);
            // Whatever was cut short by a signal, say only that.
            match crate::base::interrupt::check() {
                Err(stop) => {
                    eprintln!("error: {stop}");
                    1
                }
                Ok(()) => {
                    eprintln!("error: {e}");
                    e.exit_code()
                }
            }
        }
    }
}

/// Whether builds may use the build cache: not with `--no-cache`, nor with `BAKE_NO_CACHE=1`.
fn use_cache(no_cache: bool) -> bool {
    !no_cache && std::env::var_os("BAKE_NO_CACHE").is_none_or(|v| v != "1")
}

fn default_jobs() -> u32 {
    std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1)
}

/// Runs a command; returns its exit status when it is not an error.
fn run(command: Command, ui: &Ui) -> Result<i32> {
    match command {
        Command::Inspect(args) => {
            let segments = crate::check::image::read_file(&args.image)?;
            let text = if args.json {
                crate::check::inspect::listing_json(&segments)
            } else {
                crate::check::inspect::listing(&segments)
            };
            build::print(&text).map(|_| 0)
        }
        Command::Diff(args) => {
            let report = crate::check::diff::compare_files(&args.a, &args.b)?;
            let text = if args.json {
                crate::check::diff::json(&report)
            } else {
                crate::check::diff::text(&report, &args.a.display().to_string(), &args.b.display().to_string())
            };
            build::print(&text)?;
            Ok(if report.same_content() { 0 } else { 1 })
        }
        Command::Verify(args) => verify(args, ui),
        Command::Lock(args) => {
            let env = PackageArgs { cache: args.cache, locked: false }.environment();
            let locked = crate::lockfile::lock_recipe(&args.recipe, args.update, &env, ui)?;
            let state = if locked.changed { "written" } else { "unchanged" };
            build::print(&format!(
                "{}: {state}: {} packages, {} other inputs pinned\n",
                locked.path.display(),
                locked.packages,
                locked.inputs
            ))
            .map(|_| 0)
        }
        Command::Test(args) => {
            let options = crate::vm::boot_test::TestOptions {
                kernel: args.kernel,
                twice: args.twice,
                jobs: args.jobs.unwrap_or_else(default_jobs),
                env: args.packages.environment(),
                use_cache: use_cache(args.no_cache),
            };
            let results = crate::vm::boot_test::run(&args.recipes, &options, ui)?;
            if args.json {
                build::print(&crate::vm::boot_test::results_json(&results))?;
            } else {
                for r in &results {
                    let boot: f64 = r.boots.iter().map(|b| b.seconds).sum();
                    let head = format!(
                        "{} {} ({}) in {:.1} s ({:.1} s booting, {})",
                        if r.passed { "PASS" } else { "FAIL" },
                        r.name,
                        r.recipe.display(),
                        r.seconds,
                        boot,
                        r.accel
                    );
                    if r.passed {
                        build::print(&format!("{head}\n"))?;
                    } else {
                        let tail = r.boots.last().map(|b| b.console_tail.join("\n    ")).unwrap_or_default();
                        build::print(&format!("{head}: {}\n  last console lines:\n    {tail}\n", r.reason))?;
                    }
                }
                let passed = results.iter().filter(|r| r.passed).count();
                build::print(&format!("{passed} passed, {} failed\n", results.len() - passed))?;
            }
            Ok(if results.iter().all(|r| r.passed) { 0 } else { 1 })
        }
        Command::Build(args) => {
            let jobs = args.jobs.unwrap_or_else(default_jobs);
            let options = Options {
                out_dir: args.out,
                jobs,
                env: args.packages.environment(),
                use_cache: use_cache(args.no_cache),
            };
            let built = build::build(&args.recipe, &options, ui)?;
            if args.json {
                return build::print(&build::summary_json(&built)).map(|_| 0);
            }
            if ui.verbosity() >= Verbosity::Verbose {
                for output in &built.outputs {
                    ui.line(&format!("  {}  {}", hex(&output.sha256), built.out_dir.join(&output.file).display()));
                }
            }
            let images: Vec<String> = built
                .outputs
                .iter()
                .filter(|o| crate::check::image::is_image_file(&o.file))
                .map(|o| {
                    let path = built.out_dir.join(&o.file);
                    format!("{} ({}, sha256 {})", path.display(), human_size(o.size), hex(&o.sha256))
                })
                .collect();
            if images.is_empty() {
                return build::print(&format!(
                    "{}: {} entries, no image asked for -> {}\n",
                    built.name,
                    built.entries,
                    built.out_dir.join(&built.outputs[0].file).display()
                ))
                .map(|_| 0);
            }
            build::print(&format!(
                "{}: {} entries -> {} in {:.2} s{}\n",
                built.name,
                built.entries,
                images.join(", "),
                built.elapsed.as_secs_f64(),
                if built.cached { " (unchanged: from the build cache)" } else { "" }
            ))
            .map(|_| 0)
        }
    }
}

fn verify(args: VerifyArgs, ui: &Ui) -> Result<i32> {
    let scratch = tempfile::Builder::new()
        .prefix("bake-verify-")
        .tempdir()
        .map_err(|e| crate::base::error::Error::failure(format!("cannot make a temporary folder: {e}")))?;
    let jobs = args.jobs.unwrap_or_else(default_jobs);
    let twice =
        crate::check::verify::build_twice(&args.recipe, scratch.path(), jobs, &args.packages.environment(), ui)?;
    // The images that differ, with how.
    let mut reports = Vec::new();
    for (output, second) in &twice.outputs {
        if second.is_some_and(|d| d != output.sha256) && crate::check::image::is_image_file(&output.file) {
            let (a, b) = (twice.first_dir.join(&output.file), twice.second_dir.join(&output.file));
            reports.push((output.file.clone(), crate::check::diff::compare_files(&a, &b)?));
        }
    }
    let code = if twice.identical() { 0 } else { 1 };
    if args.json {
        let outputs: Vec<serde_json::Value> = twice
            .outputs
            .iter()
            .map(|(o, second)| {
                serde_json::json!({
                    "file": o.file,
                    "first_sha256": hex(&o.sha256),
                    "second_sha256": second.map(|d| hex(&d)),
                    "identical": *second == Some(o.sha256),
                })
            })
            .collect();
        let diffs: serde_json::Map<String, serde_json::Value> = reports
            .iter()
            .map(|(file, report)| {
                (file.clone(), serde_json::from_str(&crate::check::diff::json(report)).unwrap_or_default())
            })
            .collect();
        let value = serde_json::json!({
            "name": twice.name,
            "reproducible": twice.identical(),
            "outputs": outputs,
            "diffs": diffs,
        });
        build::print(&format!("{}\n", serde_json::to_string_pretty(&value).expect("plain data")))?;
        return Ok(code);
    }
    let mut text = format!(
        "first build:  {jobs} workers, here\nsecond build: 1 worker, from a copy of the inputs made in reverse \
         order with other mtimes, umask 077, TZ=Pacific/Chatham, LC_ALL=C.UTF-8, another TMPDIR\n"
    );
    let width = twice.outputs.iter().map(|(o, _)| o.file.len()).max().unwrap_or(0);
    for (output, second) in &twice.outputs {
        let verdict = match second {
            Some(d) if *d == output.sha256 => "identical".to_string(),
            Some(d) => format!("DIFFERENT: second build {}", hex(d)),
            None => "MISSING from the second build".to_string(),
        };
        text.push_str(&format!("  {:<width$}  {}  {verdict}\n", output.file, hex(&output.sha256)));
    }
    if twice.identical() {
        text.push_str(&format!("reproducible: {}, {} outputs identical\n", twice.name, twice.outputs.len()));
        build::print(&text)?;
        return Ok(0);
    }
    for (file, report) in &reports {
        text.push_str(&format!("bake diff of the two `{file}`:\n"));
        text.push_str(&crate::check::diff::text(report, "first", "second"));
    }
    let differ = twice.outputs.iter().filter(|(o, d)| *d != Some(o.sha256)).count();
    text.push_str(&format!("not reproducible: {}, {differ} of {} outputs differ\n", twice.name, twice.outputs.len()));
    build::print(&text)?;
    Ok(code)
}
