//! The `floe` command.

use std::process::ExitCode;

use clap::Parser;
use floe_actors::cli::{Cli, Command, ServeArgs};
use floe_actors::logging::init_logging;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Bench(args) => floe_actors::bench::run(args),
    }
}

/// `floe serve`: load the configuration, set up logging, and run the server.
fn serve(args: &ServeArgs) -> ExitCode {
    let mut config = match args.load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("floe serve: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_logging(&config.log) {
        eprintln!("floe serve: {e}");
        return ExitCode::from(2);
    }
    if let Some(user) = config.ensure_credentials() {
        // Printed once, on stdout, not logged.
        println!("floe: no --user or --auth-secret given; generated a TURN user for this run:");
        println!("  user:     {}", user.name);
        println!("  password: {}", user.password.expose());
    }
    match actix_rt::System::new().block_on(floe_actors::serve::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("floe serve: {e}");
            ExitCode::FAILURE
        }
    }
}
