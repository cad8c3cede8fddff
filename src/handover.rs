//! The hand-over: everything one image of the daemon gives the next across
//! the reload's `execve`, as one type with one encoding.
//!
//! The listeners themselves cross as file descriptors, by the systemd
//! convention (fds 3, 4, … with `LISTEN_FDS` and `LISTEN_PID`), so that the
//! new image adopts them with the code that serves socket activation; the
//! pidfile's locked fd follows them. Everything else — generation and
//! counters, the live sessions, the binary and configuration paths, which
//! socket files are ours — is encoded by [`Handover::encode`] into a memfd
//! whose number is the one environment variable [`FD_VAR`]. A memfd has no
//! size limit but memory: ten thousand live sessions are a few hundred
//! kilobytes, far beyond what `execve` accepts in its environment (about
//! 4,850 sessions fitted there).
//!
//! The encoding keeps bytes: paths are not required to be UTF-8. It is a
//! magic and version, then the fields in a fixed order, integers as
//! little-endian u64 and byte strings as a u32 length and the bytes; a
//! hand-over that does not decode completely is refused as a whole.

use std::ffi::OsString;
use std::io::{Read as _, Seek as _, Write as _};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use crate::counters::Counters;
use crate::peer::Source;
use crate::reaper::Child;

/// The environment variable that names the hand-over's fd.
pub const FD_VAR: &str = "HOSTINFOD_HANDOVER_FD";
const MAGIC: &[u8; 8] = b"hid-hov2";
/// Refused beyond this: a corrupt length must not allocate without bound.
const MAX_BYTES: u64 = 256 << 20;

/// One listener handed over, in fd order from 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandedListener {
    /// This daemon created the socket file and removes it at exit.
    pub owns_path: bool,
}

/// What crosses a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    /// The binary path resolved at the first start.
    pub exe: PathBuf,
    /// The configuration file in force (absolute), if any.
    pub config: Option<PathBuf>,
    /// Generation of the next image (the previous one's plus one).
    pub generation: u64,
    /// SIGHUPs acted upon, this one included.
    pub reload_seq: u64,
    /// Unix time of the first start.
    pub started: i64,
    /// CLOCK_MONOTONIC µs when the SIGHUP was read.
    pub hup_at_us: u64,
    /// The effective uid whose defaults apply: after a privilege drop the
    /// next image must resolve default paths as the first one did.
    pub defaults_uid: u32,
    /// The listeners came from systemd's socket activation.
    pub activated: bool,
    /// The listeners on fds 3, 4, …
    pub listeners: Vec<HandedListener>,
    /// The locked pidfile's fd follows the listeners.
    pub pidfile: bool,
    /// The live sessions.
    pub children: Vec<(i32, Child)>,
    /// Files of the previous configuration the next image removes once it
    /// serves (socket files of dropped listeners; the pidfile and status
    /// file when `pid_file = ""`). Removing them before the exec would
    /// leave an image whose exec failed without them.
    pub leftovers: Vec<PathBuf>,
    /// The counters, reloads included (this one counted).
    pub counters: Counters,
}

impl Handover {
    /// The bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(256 + self.children.len() * 32);
        w.extend_from_slice(MAGIC);
        put_bytes(&mut w, self.exe.as_os_str().as_bytes());
        match &self.config {
            Some(c) => {
                put_u64(&mut w, 1);
                put_bytes(&mut w, c.as_os_str().as_bytes());
            }
            None => put_u64(&mut w, 0),
        }
        put_u64(&mut w, self.generation);
        put_u64(&mut w, self.reload_seq);
        put_u64(&mut w, self.started as u64);
        put_u64(&mut w, self.hup_at_us);
        put_u64(&mut w, u64::from(self.defaults_uid));
        put_u64(&mut w, u64::from(self.activated));
        put_u64(&mut w, self.listeners.len() as u64);
        for l in &self.listeners {
            put_u64(&mut w, u64::from(l.owns_path));
        }
        put_u64(&mut w, u64::from(self.pidfile));
        put_u64(&mut w, self.children.len() as u64);
        for (pid, c) in &self.children {
            put_u64(&mut w, *pid as u32 as u64);
            put_u64(&mut w, c.started_us);
            match c.source {
                Source::Uid(uid) => {
                    put_u64(&mut w, 0);
                    put_u64(&mut w, u64::from(uid));
                }
                Source::Ip(ip) => {
                    put_u64(&mut w, 1);
                    put_bytes(&mut w, ip.to_string().as_bytes());
                }
            }
        }
        put_u64(&mut w, self.leftovers.len() as u64);
        for p in &self.leftovers {
            put_bytes(&mut w, p.as_os_str().as_bytes());
        }
        // A fixed number of them: the magic's version changes with the set.
        for v in self.counters.values {
            put_u64(&mut w, v);
        }
        w
    }

    /// Parses [`Handover::encode`]'s bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err("not a hand-over (bad magic)".into());
        }
        let exe = r.path()?;
        let config = match r.u64()? {
            0 => None,
            1 => Some(r.path()?),
            _ => return Err("bad config flag".into()),
        };
        let generation = r.u64()?;
        let reload_seq = r.u64()?;
        let started = r.u64()? as i64;
        let hup_at_us = r.u64()?;
        let defaults_uid =
            u32::try_from(r.u64()?).map_err(|_| "defaults uid out of range".to_string())?;
        let activated = r.flag()?;
        let n = r.count(8)?;
        let mut listeners = Vec::with_capacity(n);
        for _ in 0..n {
            listeners.push(HandedListener {
                owns_path: r.flag()?,
            });
        }
        let pidfile = r.flag()?;
        let n = r.count(24)?;
        let mut children = Vec::with_capacity(n);
        for _ in 0..n {
            let pid = i32::try_from(r.u64()?).map_err(|_| "pid out of range".to_string())?;
            let started_us = r.u64()?;
            let source = match r.u64()? {
                0 => Source::Uid(u32::try_from(r.u64()?).map_err(|_| "uid out of range")?),
                1 => std::str::from_utf8(r.bytes()?)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .map(Source::Ip)
                    .ok_or("bad source address")?,
                _ => return Err("bad source kind".into()),
            };
            children.push((pid, Child { source, started_us }));
        }
        let n = r.count(4)?;
        let mut leftovers = Vec::with_capacity(n);
        for _ in 0..n {
            leftovers.push(r.path()?);
        }
        let mut counters = Counters::default();
        for v in &mut counters.values {
            *v = r.u64()?;
        }
        if r.at != bytes.len() {
            return Err("trailing bytes".into());
        }
        Ok(Handover {
            exe,
            config,
            generation,
            reload_seq,
            started,
            hup_at_us,
            defaults_uid,
            activated,
            listeners,
            pidfile,
            children,
            leftovers,
            counters,
        })
    }

    /// The encoded hand-over in a fresh memfd, positioned at its start and
    /// close-on-exec (the exec's fd placement clears that on its copy).
    pub fn to_memfd(&self) -> std::io::Result<OwnedFd> {
        let fd = nix::sys::memfd::memfd_create(
            c"hostinfod-handover",
            nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
        )?;
        let mut f = std::fs::File::from(fd);
        f.write_all(&self.encode())?;
        f.rewind()?;
        Ok(OwnedFd::from(f))
    }
}

/// The hand-over, when this image was started by a reload: read from the
/// fd [`FD_VAR`] names (only when `LISTEN_PID` is this process, as for the
/// listeners), which is then closed.
pub fn receive() -> Result<Option<Handover>, String> {
    let Some(fd) = std::env::var(FD_VAR)
        .ok()
        .and_then(|v| v.parse::<RawFd>().ok())
    else {
        return Ok(None);
    };
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        == Some(std::process::id());
    if !ours || fd < 3 {
        return Ok(None);
    }
    // SAFETY: the previous image of this process placed the hand-over on
    // this fd for us to own (LISTEN_PID names us).
    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut bytes = Vec::new();
    file.take(MAX_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the hand-over on fd {fd}: {e}"))?;
    Handover::decode(&bytes)
        .map(Some)
        .map_err(|e| format!("hand-over on fd {fd}: {e}"))
}

fn put_u64(w: &mut Vec<u8>, v: u64) {
    w.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(w: &mut Vec<u8>, b: &[u8]) {
    w.extend_from_slice(&(b.len() as u32).to_le_bytes());
    w.extend_from_slice(b);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or("truncated")?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn flag(&mut self) -> Result<bool, String> {
        match self.u64()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("bad flag".into()),
        }
    }

    /// A count of items each at least `min_bytes` long: a count the rest of
    /// the bytes cannot hold is refused before anything is allocated.
    fn count(&mut self, min_bytes: usize) -> Result<usize, String> {
        let n = usize::try_from(self.u64()?).map_err(|_| "count out of range")?;
        if n.saturating_mul(min_bytes) > self.bytes.len() - self.at {
            return Err("count beyond the data".into());
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let b = self.take(4)?;
        let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        self.take(n)
    }

    fn path(&mut self) -> Result<PathBuf, String> {
        Ok(PathBuf::from(OsString::from_vec(self.bytes()?.to_vec())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(children: usize) -> Handover {
        Handover {
            exe: PathBuf::from(OsString::from_vec(b"/usr/sbin/host\xffinfod".to_vec())),
            config: Some(PathBuf::from(OsString::from_vec(
                b"/etc/h:x\n\xfe.toml".to_vec(),
            ))),
            generation: 3,
            reload_seq: 5,
            started: 1_790_000_000,
            hup_at_us: 123_456,
            defaults_uid: 0,
            activated: false,
            listeners: vec![
                HandedListener { owns_path: false },
                HandedListener { owns_path: true },
            ],
            pidfile: true,
            children: (0..children)
                .map(|i| {
                    let source = if i % 3 == 0 {
                        Source::Uid(i as u32)
                    } else if i % 3 == 1 {
                        Source::Ip(
                            format!("10.0.{}.{}", i / 256 % 256, i % 256)
                                .parse()
                                .expect("ip"),
                        )
                    } else {
                        Source::Ip("2001:db8::1".parse().expect("ip"))
                    };
                    (
                        i as i32 + 100,
                        Child {
                            source,
                            started_us: i as u64,
                        },
                    )
                })
                .collect(),
            leftovers: vec![PathBuf::from("/run/old.sock")],
            counters: Counters {
                values: std::array::from_fn(|i| i as u64 * 1_000_003 + 1),
            },
        }
    }

    #[test]
    fn round_trips_bytes_and_ten_thousand_sessions() {
        let h = sample(10_000);
        let bytes = h.encode();
        assert_eq!(Handover::decode(&bytes), Ok(h));
        let h = sample(0);
        assert_eq!(Handover::decode(&h.encode()), Ok(h));
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        let bytes = sample(3).encode();
        for n in 0..bytes.len() {
            assert!(Handover::decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Handover::decode(&longer).is_err());
    }

    #[test]
    fn huge_counts_allocate_nothing() {
        let mut bytes = sample(0).encode();
        // The children count sits before the leftovers: make it enormous.
        let h = sample(0);
        let at = bytes.len()
            - 8 * h.counters.values.len()
            - 8
            - (4 + h.leftovers[0].as_os_str().len())
            - 8;
        bytes[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Handover::decode(&bytes).is_err());
    }

    #[test]
    fn travels_through_a_memfd() {
        let h = sample(50);
        let fd = h.to_memfd().expect("memfd");
        let mut bytes = Vec::new();
        std::fs::File::from(fd)
            .read_to_end(&mut bytes)
            .expect("read");
        assert_eq!(Handover::decode(&bytes), Ok(h));
    }
}
