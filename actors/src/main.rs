//! The `floe` command.

use std::process::ExitCode;

use clap::Parser;
use floe_actors::cli::{Cli, Command, ServeArgs, StunArgs};
use floe_actors::logging::init_logging_as;
use floe_actors::reload::ConfigSource;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Stun(args) => stun(&args),
        Command::Ice(args) => floe_actors::ice::command::run(&args),
        Command::Turn(args) => floe_actors::turn::client::command::run(&args),
    }
}

/// `floe stun HOST:PORT`: print the reflexive address, or why there is none.
fn stun(args: &StunArgs) -> ExitCode {
    let config = match args.client_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("floe stun: {e}");
            return ExitCode::from(2);
        }
    };
    let server = config.session.server;
    match actix_rt::System::new().block_on(floe_actors::turn::client::stun_binding(config)) {
        Ok((mapped, _rtt)) => {
            println!("{mapped}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("floe stun: {server}: {e}");
            ExitCode::FAILURE
        }
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
    if let Err(e) = init_logging_as(&config.log, config.log_format) {
        eprintln!("floe serve: {e}");
        return ExitCode::from(2);
    }
    let generated = config.ensure_credentials();
    if let Some(user) = &generated {
        // Printed once, on stdout, not logged.
        println!("floe: no --user or --auth-secret given; generated a TURN user for this run:");
        println!("  user:     {}", user.name);
        println!("  password: {}", user.password.expose());
    }
    // A reload reads the --config file again and lays the same flags over it.
    let source = ConfigSource::from_args(args.clone(), generated);
    match actix_rt::System::new().block_on(floe_actors::serve::run_reloadable(config, source)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("floe serve: {e}");
            ExitCode::FAILURE
        }
    }
}
