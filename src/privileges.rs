//! Dropping root after binding: `daemon.user` and `daemon.group`.
//!
//! The order is the one that cannot leave a process half-privileged:
//! supplementary groups first (`initgroups`, which needs root), then the gid,
//! then the uid; afterwards `setuid(0)` must fail, or we refuse to run. The
//! user and group are resolved before anything is bound, so a typo is a
//! start-up error with a clear message, not a daemon that serves as root.
//!
//! The release build is linked statically (static-pie; see
//! `.cargo/config.toml`), and a static glibc cannot load NSS modules: it
//! would `dlopen` a shared `libnss_systemd.so.2` that brings in a second,
//! shared libc, and the process dies in it. So a static build tells glibc to
//! answer the `passwd`, `group` and `initgroups` lookups from its built-in
//! `files` service, /etc/passwd and /etc/group, before it makes any.
//! System users made by systemd-sysusers or useradd live there; a user known
//! only to LDAP, SSSD or systemd-homed is reported as unknown. A dynamic build
//! (RUSTFLAGS set, or a non-glibc target) keeps the full nsswitch.conf.

use std::ffi::CString;

use nix::unistd::{Gid, Group, Uid, User, initgroups, setgid, setuid};

use crate::config::Config;
use crate::error::{Error, Result};

/// Whom to become.
#[derive(Debug, Clone)]
pub struct Target {
    /// The user name.
    pub name: String,
    /// Its uid.
    pub uid: Uid,
    /// The group: `daemon.group`, or the user's primary group.
    pub gid: Gid,
}

/// Resolves `daemon.user`/`daemon.group`. None when no user is configured or
/// we are not root (then there is nothing to drop; a warning says so).
pub fn resolve(cfg: &Config) -> Result<Option<Target>> {
    let name = &cfg.daemon.user;
    if name.is_empty() {
        return Ok(None);
    }
    if !nix::unistd::geteuid().is_root() {
        log::warn!("daemon.user = {name:?} ignored: not running as root");
        return Ok(None);
    }
    files_only_lookups();
    let unknown = |kind, name: &str| Error::UnknownId {
        kind,
        name: name.to_string(),
    };
    let user = match User::from_name(name) {
        Ok(Some(u)) => u,
        Ok(None) => return Err(unknown("user", name)),
        Err(e) => return Err(Error::sys(format!("getpwnam {name}"), e)),
    };
    let gid = if cfg.daemon.group.is_empty() {
        user.gid
    } else {
        match Group::from_name(&cfg.daemon.group) {
            Ok(Some(g)) => g.gid,
            Ok(None) => return Err(unknown("group", &cfg.daemon.group)),
            Err(e) => return Err(Error::sys(format!("getgrnam {}", cfg.daemon.group), e)),
        }
    };
    Ok(Some(Target {
        name: user.name,
        uid: user.uid,
        gid,
    }))
}

/// In a static glibc build, makes the user and group lookups use glibc's
/// built-in `files` service instead of the modules nsswitch.conf names (see
/// the module notes). Idempotent; does nothing in other builds.
pub fn files_only_lookups() {
    #[cfg(all(target_env = "gnu", target_feature = "crt-static"))]
    {
        unsafe extern "C" {
            // <nss.h>: overrides nsswitch.conf for one database.
            fn __nss_configure_lookup(
                db: *const std::ffi::c_char,
                service: *const std::ffi::c_char,
            ) -> std::ffi::c_int;
        }
        for db in [c"passwd", c"group", c"initgroups"] {
            // SAFETY: both arguments are NUL-terminated constants, and the
            // parent is single-threaded, so no lookup runs concurrently.
            let r = unsafe { __nss_configure_lookup(db.as_ptr(), c"files".as_ptr()) };
            if r != 0 {
                log::warn!("cannot restrict {db:?} lookups to files");
            }
        }
    }
}

/// Becomes `t` for good. `t` comes from [`resolve`], which has already
/// configured the lookups `initgroups` makes.
pub fn drop_to(t: &Target) -> Result<()> {
    let cname = CString::new(t.name.as_str())
        .map_err(|_| Error::sys(format!("initgroups {}", t.name), nix::errno::Errno::EINVAL))?;
    initgroups(&cname, t.gid).map_err(|e| Error::sys(format!("initgroups {}", t.name), e))?;
    setgid(t.gid).map_err(|e| Error::sys(format!("setgid {}", t.gid), e))?;
    setuid(t.uid).map_err(|e| Error::sys(format!("setuid {}", t.uid), e))?;
    if t.uid.as_raw() != 0 && setuid(Uid::from_raw(0)).is_ok() {
        return Err(Error::sys(
            "privilege drop: root could be regained",
            nix::errno::Errno::EPERM,
        ));
    }
    Ok(())
}
