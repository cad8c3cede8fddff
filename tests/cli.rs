//! The command line and the configuration as an operator meets them:
//! `-t`, `--print-config`, usage errors, `--version`.

mod common;

use common::*;

#[test]
fn check_config_ok() {
    let s = Setup::new("[limits]\nmax_children = 10\n");
    let (code, out, err) = s.run(&["-t"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "configuration OK\n", "")
    );
}

#[test]
fn shipped_default_config_passes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/hostinfod.toml");
    let out = std::process::Command::new(BIN)
        .args(["-t", "-c", path])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"configuration OK\n");
}

#[test]
fn broken_value_names_key_and_line_exit_78() {
    let s = Setup::new("");
    s.write_raw("# comment\n[limits]\nmax_children = 0\n");
    let (code, out, err) = s.run(&["-t"]);
    assert_eq!(code, 78);
    assert!(out.is_empty());
    let want = format!(
        "{}:3:1: limits.max_children: must be at least 1\n",
        s.config.display()
    );
    assert_eq!(err, want);
}

#[test]
fn unknown_key_and_section_exit_78() {
    let s = Setup::new("");
    s.write_raw("[listen]\nbacklog = 10\nport = 99\n");
    let (code, _, err) = s.run(&["-t"]);
    assert_eq!(code, 78);
    assert!(
        err.starts_with(&format!("{}:3:1: ", s.config.display())),
        "{err}"
    );
    assert!(err.contains("port"), "{err}");

    s.write_raw("[listen]\n\n[extras]\nx = 1\n");
    let (code, _, err) = s.run(&["-t"]);
    assert_eq!(code, 78);
    assert!(err.contains(":3:") && err.contains("extras"), "{err}");
}

#[test]
fn syntax_and_type_errors_exit_78() {
    let s = Setup::new("");
    s.write_raw("[listen\n");
    let (code, _, err) = s.run(&["-t"]);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.starts_with(&format!("{}:1:", s.config.display())),
        "{err}"
    );

    s.write_raw("[protocol]\ngreeting = 5\n");
    let (code, _, err) = s.run(&["-t"]);
    assert_eq!(code, 78);
    assert!(
        err.contains(":2:") && err.contains("protocol.greeting"),
        "{err}"
    );
}

#[test]
fn missing_config_file_is_a_config_error() {
    let out = std::process::Command::new(BIN)
        .args(["-t", "-c", "/nonexistent/hostinfod.toml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/hostinfod.toml"), "{err}");
}

#[test]
fn invalid_config_refuses_to_start() {
    let s = Setup::new("[log]\nlevel = \"chatty\"\n");
    let (code, _, err) = s.run(&["-f"]);
    assert_eq!(code, 78);
    assert!(err.contains("log.level"), "{err}");
}

#[test]
fn print_config_fills_defaults_and_round_trips() {
    let s = Setup::new("[limits]\nmax_per_source = 3\n");
    let (code, out, _) = s.run(&["--print-config"]);
    assert_eq!(code, 0);
    assert!(out.contains("max_per_source = 3"), "{out}");
    assert!(out.contains("idle_timeout_secs = 300"), "{out}");
    assert!(
        out.contains("date_format = \"%a %b %e %H:%M:%S %Y\""),
        "{out}"
    );
    // What it prints is itself a valid configuration.
    let again = s.path("printed.toml");
    std::fs::write(&again, &out).expect("write");
    let st = std::process::Command::new(BIN)
        .args(["-t", "-c"])
        .arg(&again)
        .output()
        .expect("run");
    assert_eq!(
        st.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [&["--bogus"][..], &["-s", "restart"], &["-f", "-t"], &["-s"]] {
        let out = std::process::Command::new(BIN)
            .args(args)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn version_and_help() {
    let out = std::process::Command::new(BIN)
        .arg("-V")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("hostinfod {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--foreground",
        "--check-config",
        "--print-config",
        "-s",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn occupied_address_is_a_start_failure() {
    let s = Setup::new("");
    let _hold = std::net::TcpListener::bind(("127.0.0.1", s.port)).expect("bind");
    let (code, _, err) = s.run(&["-f"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("127.0.0.1:{}", s.port)) && err.contains("in use"),
        "{err}"
    );
}

#[test]
fn non_socket_file_at_unix_path_is_refused_and_kept() {
    let s = Setup::new("");
    std::fs::write(&s.sock, "precious").expect("write");
    let (code, _, err) = s.run(&["-f"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&s.sock).expect("kept"), "precious");
}

#[test]
fn stale_socket_file_is_replaced_live_one_is_not() {
    let s = Setup::new("");
    // A socket file nobody listens on: bind then drop the listener.
    drop(std::os::unix::net::UnixListener::bind(&s.sock).expect("bind"));
    assert!(exists(&s.sock));
    let d = s.start();
    let mut c = d.unix();
    assert!(c.greeting().starts_with("Welcome"));
    drop(c);
    // A second daemon on another port but the same live socket path is refused.
    let other = Setup::new("");
    other.write_raw(&format!(
        "[listen]\ntcp = [\"127.0.0.1:{}\"]\nunix = [{:?}]\n[daemon]\npid_file = {:?}\n",
        other.port, s.sock, other.pid_file
    ));
    let (code, _, err) = other.run(&["-f"]);
    assert_eq!(code, 1);
    assert!(err.contains("another process is listening"), "{err}");
    // The first daemon still serves on it.
    let mut c = d.unix();
    assert!(c.greeting().starts_with("Welcome"));
}

#[test]
fn unix_mode_is_applied() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::new("");
    let text = format!(
        "[listen]\ntcp = [\"127.0.0.1:{}\"]\nunix = [{:?}]\nunix_mode = \"0600\"\n[daemon]\npid_file = {:?}\n",
        s.port, s.sock, s.pid_file
    );
    s.write_raw(&text);
    let _d = s.start();
    let mode = std::fs::metadata(&s.sock)
        .expect("sock")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
