//! Thin shell over the library: parse the command line, run it, exit with its code.

use clap::Parser;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = m365audit::cli::Cli::parse();
    std::process::exit(m365audit::cli::run(cli));
}
