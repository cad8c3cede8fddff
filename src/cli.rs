//! The command line: flags as hostinfod(8) documents them, dispatched to the server or
//! to a control command, with the exit status contract applied.

use std::path::PathBuf;

use clap::Parser;

use crate::config::{Config, Env};
use crate::error::Error;

/// hostinfod — a forking daemon serving date, who, a fortune cookie and the motd.
#[derive(Debug, Parser)]
#[command(
    name = "hostinfod",
    version,
    about = "A classic forking Unix daemon: date, who, a fortune cookie and the motd over TCP and Unix sockets",
    after_help = "Signals: HUP reloads in place (same pid), TERM/INT stop, CHLD reaps.\n\
                  Exit status: 0 ok, 1 start failure, 2 usage, 3 not running (-s status), 78 configuration error."
)]
pub struct Cli {
    /// Configuration file [default: /etc/hostinfod/hostinfod.toml if it exists, else built-in defaults]
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Do not daemonize; log to stderr (unless log.destination is "syslog")
    #[arg(short = 'f', long = "foreground", conflicts_with_all = ["signal", "check_config", "print_config"])]
    pub foreground: bool,
    /// Parse and validate the configuration, print "configuration OK" and exit
    #[arg(short = 't', long = "check-config", conflicts_with_all = ["signal", "print_config"])]
    pub check_config: bool,
    /// Print the effective configuration (defaults filled in) as TOML and exit
    #[arg(long = "print-config", conflicts_with = "signal")]
    pub print_config: bool,
    /// Serve one session on the connected socket at fd 0 and exit (inetd, xinetd, tcpserver, systemd Accept=yes)
    #[arg(short = 'i', long = "inetd", conflicts_with_all = ["signal", "check_config", "print_config", "foreground"])]
    pub inetd: bool,
    /// Control the running daemon: reload, stop or status
    #[arg(short = 's', value_name = "SIGNAL", value_parser = ["reload", "stop", "status"])]
    pub signal: Option<String>,
    /// With -s status: print one JSON object
    #[arg(long = "json", requires = "signal")]
    pub json: bool,
}

/// Parses the command line, runs, and returns the process exit status.
pub fn main() -> i32 {
    let cli = Cli::parse();
    if cli.inetd {
        return crate::inetd::main(cli.config.as_deref());
    }
    let env = Env::current();
    let result = if cli.check_config {
        Config::load_for_start(cli.config.as_deref(), &env).map(|_| println!("configuration OK"))
    } else if cli.print_config {
        Config::load(cli.config.as_deref(), &env).map(|c| print!("{}", c.to_toml()))
    } else if let Some(cmd) = cli.signal.as_deref() {
        if cli.json && cmd != "status" {
            Err(Error::Usage("--json goes with -s status only".into()))
        } else {
            crate::control::run(cmd, cli.config.as_deref(), &env, cli.json)
        }
    } else {
        crate::server::run(crate::server::Options {
            config: cli.config,
            foreground: cli.foreground,
        })
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            report(&e);
            e.exit_code()
        }
    }
}

fn report(e: &Error) {
    match e {
        // FILE:LINE:COL: message, exactly, so editors can jump to it.
        Error::Config(c) => eprintln!("{c}"),
        // Already said.
        Error::Exit(_) => {}
        _ => eprintln!("hostinfod: {e}"),
    }
}
