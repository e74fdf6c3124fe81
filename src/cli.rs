//! The command line: parses arguments, reads the environment once, runs a command, prints its
//! result or its one error, and picks the exit status (0 done, 1 failure, 2 bad recipe or
//! input; see `docs/cli.md`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::base::env::Environment;
use crate::base::error::Result;
use crate::commands;
use crate::output::build::{self, Options};
use crate::plan::Settings;
use crate::registry::artifact::Access;
use crate::source::packages::{LockPolicy, PackageSettings};
use crate::ui::{Ui, Verbosity, print};

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
    /// List every entry of an image (cpio, compressed or not, one or several archives; EROFS,
    /// bare or in a GPT disk).
    Inspect(InspectArgs),
    /// Explain, entry by entry, how two images differ (exit 0 same content, 1 different).
    Diff(DiffArgs),
    /// Build a recipe twice under different conditions and check the outputs are identical.
    Verify(VerifyArgs),
    /// Resolve and pin every input of a recipe (packages, archives, files) in NAME.lock.
    Lock(LockArgs),
    /// Copy every pinned input of a locked recipe into a folder, by sha256, for builds with
    /// `--inputs DIR` that need neither network nor apt.
    Vendor(VendorArgs),
    /// Upload a build's outputs (a folder `bake build` wrote, or a recipe, built first) to an
    /// OCI registry as one artifact; prints REF@sha256:DIGEST.
    Push(PushArgs),
    /// Fetch an artifact `bake push` stored, by tag or digest, checked, into a folder; prints
    /// REF@sha256:DIGEST.
    Pull(PullArgs),
}

/// Where Debian packages are cached.
#[derive(Args, Debug)]
struct CacheArg {
    /// bake's cache folder: Debian packages, earlier builds, file digests and the input store (default:
    /// $XDG_CACHE_HOME/bake, else ~/.cache/bake).
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
    /// Take pinned packages from this folder (written by `bake vendor`) before asking apt
    /// (default: $BAKE_INPUTS).
    #[arg(long, value_name = "DIR")]
    inputs: Option<PathBuf>,
    /// Fetch a pinned package no other source has by its sha256 from this registry
    /// repository (where `bake push --inputs` put it).
    #[arg(long, value_name = "REGISTRY/REPO")]
    inputs_from: Option<String>,
    /// Plain HTTP to a registry that is not on this machine (`--inputs-from`,
    /// `--remote-cache`; loopback registries always get it).
    #[arg(long)]
    plain_http: bool,
}

impl PackageArgs {
    /// The build settings: the environment's, with what the flags say.
    fn settings(self, env: &Environment) -> Result<Settings> {
        let policy = if self.locked { LockPolicy::Require } else { LockPolicy::Honour };
        let cache = self.cache.cache.or_else(|| env.cache_dir.clone());
        let packages = PackageSettings {
            cache,
            policy,
            // Absolute, so that `verify`'s second build, run from elsewhere, finds it too.
            inputs: self.inputs.or_else(|| env.inputs.clone()).map(|p| std::path::absolute(&p).unwrap_or(p)),
            snapshot_mirror: env.snapshot_mirror.clone(),
            store: match &self.inputs_from {
                Some(repository) => Some(std::sync::Arc::new(commands::registry::RegistryInputs::new(
                    repository,
                    self.plain_http,
                    env.docker_config.as_deref(),
                )?)),
                None => None,
            },
        };
        Ok(Settings { source_date_epoch: env.source_date_epoch.clone(), packages })
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
struct VendorArgs {
    /// The recipe; it must have a lock file.
    recipe: PathBuf,
    /// Where to put the inputs (default: `vendor/` beside the recipe).
    dir: Option<PathBuf>,
    #[command(flatten)]
    packages: PackageArgs,
}

#[derive(Args, Debug)]
struct PushArgs {
    /// A folder `bake build` wrote, or a recipe to build first.
    #[arg(value_name = "DIR-or-RECIPE")]
    source: PathBuf,
    /// HOST[:PORT]/REPO[:TAG] (default tag `latest`).
    #[arg(value_name = "REF")]
    reference: String,
    /// Push the pinned inputs of the locked recipe (packages, kernel, archives), by their
    /// sha256, instead of its outputs: a store for `bake build --inputs-from`.
    #[arg(long)]
    inputs: bool,
    /// Plain HTTP to a registry that is not on this machine (loopback registries always get it).
    #[arg(long)]
    plain_http: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Compression threads when building a recipe.
    #[arg(short, long, value_parser = clap::value_parser!(u32).range(1..=256))]
    jobs: Option<u32>,
    #[command(flatten)]
    cache: CacheArg,
    /// Refuse to build unless the recipe's lock file exists and pins every input.
    #[arg(long)]
    locked: bool,
    /// Fetch a pinned package no other source has from this registry repository.
    #[arg(long, value_name = "REGISTRY/REPO")]
    inputs_from: Option<String>,
}

#[derive(Args, Debug)]
struct PullArgs {
    /// HOST[:PORT]/REPO[:TAG][@sha256:DIGEST] (no tag and no digest: `latest`).
    #[arg(value_name = "REF")]
    reference: String,
    /// Output folder (created when missing).
    #[arg(short, long, default_value = "out")]
    out: PathBuf,
    /// Plain HTTP to a registry that is not on this machine (loopback registries always get it).
    #[arg(long)]
    plain_http: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
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
    /// Build for real, reading every input again, even when the cache has the outputs (also:
    /// BAKE_NO_CACHE=1).
    #[arg(long)]
    no_cache: bool,
    /// Print the results as JSON on standard output.
    #[arg(long)]
    json: bool,
    /// Keep each boot's whole console, as the guest wrote it, in DIR/NAME.console
    /// (NAME.second.console for the second boot of --twice).
    #[arg(long, value_name = "DIR")]
    console: Option<PathBuf>,
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
    /// Build for real, reading every input again, even when the cache has the outputs (also:
    /// BAKE_NO_CACHE=1).
    #[arg(long)]
    no_cache: bool,
    /// Print the result as JSON on standard output.
    #[arg(long)]
    json: bool,
    /// Share the build cache through a registry repository: take the outputs from there when
    /// it has this build's key, send them there after building.
    #[arg(long, value_name = "REGISTRY/REPO")]
    remote_cache: Option<String>,
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
    match run(cli.command, &Environment::from_process(), &ui) {
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

fn default_threads() -> u32 {
    std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1)
}

/// Runs a command; returns its exit status when it is not an error.
fn run(command: Command, env: &Environment, ui: &Ui) -> Result<i32> {
    // Builds may use the build cache: not with `--no-cache`, nor with `BAKE_NO_CACHE=1`.
    let use_cache = |no_cache: bool| !no_cache && !env.no_cache;
    match command {
        Command::Inspect(args) => print(&commands::inspect(&args.image, args.json)?).map(|_| 0),
        Command::Diff(args) => {
            let (text, code) = commands::diff(&args.a, &args.b, args.json)?;
            print(&text).map(|_| code)
        }
        Command::Verify(args) => {
            let (threads, settings) = (args.jobs.unwrap_or_else(default_threads), args.packages.settings(env)?);
            let verified = commands::verify::verify(&args.recipe, threads, &settings, ui)?;
            let text = if args.json { commands::verify::json(&verified) } else { commands::verify::text(&verified) };
            print(&text).map(|_| verified.code())
        }
        Command::Lock(args) => {
            let settings =
                PackageArgs { cache: args.cache, locked: false, inputs: None, inputs_from: None, plain_http: false }
                    .settings(env)?;
            let locked = commands::lock::lock(&args.recipe, args.update, &settings, ui)?;
            print(&locked.summary()).map(|_| 0)
        }
        Command::Push(args) => {
            let packages = PackageArgs {
                cache: args.cache,
                locked: args.locked,
                inputs: None,
                inputs_from: args.inputs_from,
                plain_http: args.plain_http,
            };
            let options = Options {
                out_dir: std::path::PathBuf::new(),
                threads: args.jobs.unwrap_or_else(default_threads),
                settings: packages.settings(env)?,
                use_cache: use_cache(false),
                remote: None,
            };
            let access = Access { plain_http: args.plain_http, docker_config: env.docker_config.as_deref() };
            let pushed = if args.inputs {
                commands::registry::push_inputs(&args.source, &args.reference, &access, &options.settings, ui)?
            } else {
                commands::registry::push(&args.source, &args.reference, &access, &options, ui)?
            };
            print(&if args.json { commands::registry::json(&pushed) } else { commands::registry::text(&pushed) })
                .map(|_| 0)
        }
        Command::Pull(args) => {
            let access = Access { plain_http: args.plain_http, docker_config: env.docker_config.as_deref() };
            let pulled = commands::registry::pull(&args.reference, &args.out, &access, ui)?;
            print(&if args.json { commands::registry::json(&pulled) } else { commands::registry::text(&pulled) })
                .map(|_| 0)
        }
        Command::Vendor(args) => {
            let settings = args.packages.settings(env)?;
            let vendored = commands::vendor::vendor(&args.recipe, args.dir.as_deref(), &settings, ui)?;
            print(&vendored.summary()).map(|_| 0)
        }
        Command::Test(args) => {
            let options = crate::vm::boot_test::TestOptions {
                kernel: args.kernel,
                default_kernel: env.kernel.clone(),
                twice: args.twice,
                threads: args.jobs.unwrap_or_else(default_threads),
                settings: args.packages.settings(env)?,
                use_cache: use_cache(args.no_cache),
                console_dir: args.console,
            };
            let results = crate::vm::boot_test::run(&args.recipes, &options, ui)?;
            let text = if args.json { commands::test::json(&results) } else { commands::test::text(&results) };
            print(&text).map(|_| commands::test::code(&results))
        }
        Command::Build(args) => {
            let remote = match &args.remote_cache {
                Some(repository) => Some(std::sync::Arc::new(commands::registry::RegistryCache::new(
                    repository,
                    args.packages.plain_http,
                    env.docker_config.as_deref(),
                )?)
                    as std::sync::Arc<dyn crate::output::cache::RemoteCache + Send + Sync>),
                None => None,
            };
            let options = Options {
                out_dir: args.out,
                threads: args.jobs.unwrap_or_else(default_threads),
                settings: args.packages.settings(env)?,
                use_cache: use_cache(args.no_cache),
                remote,
            };
            let built = build::build(&args.recipe, &options, ui)?;
            if args.json {
                return print(&commands::build::summary_json(&built)).map(|_| 0);
            }
            if ui.verbosity() >= Verbosity::Verbose {
                commands::build::details(&built).iter().for_each(|line| ui.line(line));
            }
            print(&commands::build::summary(&built)).map(|_| 0)
        }
    }
}
