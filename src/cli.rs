//! The command line: parses arguments, runs a command, prints its result or its one error, and
//! picks the exit status (0 done, 1 failure, 2 bad recipe or input; see `../shared/CONTRACT.md`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::build::{self, Options};
use crate::error::Result;
use crate::hash::hex;
use crate::plan::Environment;
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
    /// Print the result as JSON on standard output.
    #[arg(long)]
    json: bool,
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
    let ui = Ui::new(verbosity);
    match run(cli.command, &ui) {
        Ok(()) => 0,
        Err(e) => {
            drop(ui);
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

fn run(command: Command, ui: &Ui) -> Result<()> {
    match command {
        Command::Build(args) => {
            let jobs =
                args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1));
            let options = Options { out_dir: args.out, jobs, env: Environment::from_process() };
            let built = build::build(&args.recipe, &options, ui)?;
            if args.json {
                return build::print(&build::summary_json(&built));
            }
            if ui.verbosity() >= Verbosity::Verbose {
                for output in &built.outputs {
                    ui.line(&format!("  {}  {}", hex(&output.sha256), built.out_dir.join(&output.file).display()));
                }
            }
            let image = &built.outputs[0];
            if !image.file.contains(".cpio") {
                return build::print(&format!(
                    "{}: {} entries, no image asked for -> {}\n",
                    built.name,
                    built.entries,
                    built.out_dir.join(&image.file).display()
                ));
            }
            build::print(&format!(
                "{}: {} entries -> {} ({}, sha256 {}) in {:.2} s\n",
                built.name,
                built.entries,
                built.out_dir.join(&image.file).display(),
                human_size(image.size),
                hex(&image.sha256),
                built.elapsed.as_secs_f64()
            ))
        }
    }
}
