//! The configuration loader on arbitrary text, as `-t`, start-up and SIGHUP
//! see it.
//!
//! Checked besides "no panic": an error is located at a line and column
//! inside the text; an accepted configuration, printed as `--print-config`
//! does, parses back to the same configuration (the printed file is itself a
//! valid configuration file).
#![no_main]

use std::path::Path;

use hostinfod::config::{Config, Env};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("/etc/hostinfod/fuzz.toml");
    for env in [
        Env {
            euid: 1000,
            xdg_runtime_dir: None,
        },
        Env {
            euid: 0,
            xdg_runtime_dir: Some("/run/user/0".into()),
        },
    ] {
        match Config::parse(text, file, &env) {
            Err(e) => {
                let lines = text.split('\n').count();
                assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}", e.line);
                assert!(e.col >= 1);
                let _ = e.to_string();
            }
            Ok(c) => {
                let printed = c.to_toml();
                let again = Config::parse(&printed, file, &env)
                    .unwrap_or_else(|e| panic!("--print-config output rejected: {e}\n{printed}"));
                assert_eq!(again.to_toml(), printed, "print-config not a fixed point");
                assert_eq!(again.limits, c.limits);
                assert_eq!(again.commands, c.commands);
                assert_eq!(again.protocol, c.protocol);
                assert_eq!(again.daemon, c.daemon);
            }
        }
    }
});
