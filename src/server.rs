//! The parent: start-up, the poll loop, accept → fork, reaping, reload, stop.
//!
//! The parent is one thread, always: it forks for every client, and fork in a
//! multi-threaded process is unsafe. It waits in one `poll` over the
//! signalfd and the listeners, and only the signalfd when `max_children`
//! sessions are live (new clients then wait in the kernel's backlog, as with
//! tcpserver, rather than being refused).
//!
//! Work per connection in the parent is kept to what only the parent can do:
//! accept, the per-source check, fork, close, one table insert; and at the
//! end one waitpid, one table removal and (at log level info) the EXIT
//! record, which needs the exit status only the parent sees. Everything that
//! could be done once is done once before the first fork (the greeting
//! bytes, the hostname, the time zone), and the session's START record is
//! logged by the child.

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{Signal, kill};
use nix::unistd::{ForkResult, Pid, fork};

use crate::children::{Child, Children, Ended, ExitPipe, Source, monotonic_us};
use crate::config::{Config, Env};
use crate::daemon::Readiness;
use crate::error::{Error, Result};
use crate::listen::{self, Addr, Listener};
use crate::notify::Notifier;
use crate::pidfile::Pidfile;
use crate::privileges;
use crate::reload;
use crate::session;
use crate::signals::Signals;
use crate::status::{ReloadResult, Status};

/// How the daemon was asked to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// `-c FILE`.
    pub config: Option<PathBuf>,
    /// `-f`.
    pub foreground: bool,
}

/// Most connections taken from one listener per wake-up, so one busy
/// listener cannot starve the others or the signalfd.
const ACCEPT_BATCH: usize = 64;
/// Pause after fd exhaustion or a failed fork.
const BACKOFF: Duration = Duration::from_millis(100);
/// From this many live sessions on, the parent reaps the children that
/// announced their exit by PID; below it, waitpid(-1) has few children to
/// walk and the pipe is read only before a refusal. (Every child announces:
/// one write, which also keeps a client that reconnects at once from being
/// refused for its ended session.)
const ANNOUNCE_FROM: usize = 32;
/// Half of a pipe's 64 KiB in 4-byte PIDs (see [`Server::unread`]).
const UNREAD_MAX: usize = 8192;
/// Longest a child that ended without announcing it (crashed, killed) and
/// whose SIGCHLD merged into another's stays a zombie.
const SCAN_INTERVAL: Duration = Duration::from_millis(100);
/// Said to a client we cannot fork for.
const BUSY_RETRY: &str = "Server busy, try again later.";

/// The running daemon.
#[derive(Debug)]
pub struct Server {
    cfg: Config,
    env: Env,
    opts: Options,
    exe: PathBuf,
    args: Vec<OsString>,
    listeners: Vec<Listener>,
    activated: bool,
    children: Children,
    signals: Signals,
    notifier: Notifier,
    pidfile: Option<Pidfile>,
    status_path: PathBuf,
    status: Status,
    /// Greeting + line end + prompt, per transport, rendered once.
    hello_tcp: Vec<u8>,
    hello_unix: Vec<u8>,
    /// A reserved descriptor, given up to accept-and-close a connection when
    /// the fd table is full, so the backlog drains instead of spinning poll.
    spare: Option<OwnedFd>,
    emfile_logged: bool,
    paused_until: Option<Instant>,
    next_watchdog: Option<Instant>,
    /// When the next full reaping pass is owed (see [`Server::on_sigchld`]).
    scan_due: Option<Instant>,
    /// Where children announce their exit (see [`crate::children::ExitPipe`]).
    exits: Option<ExitPipe>,
    /// Children forked since the exit pipe was last read. Below
    /// ANNOUNCE_FROM sessions the pipe is read only before a refusal, or
    /// once this many announcements could fill half of it, so that an
    /// announcement always finds room.
    unread: usize,
    /// The session's buffers, allocated once here and used by each child.
    session_bufs: session::Buffers,
    // [fifo wiring] the FIFO endpoints and their writer children.
    fifos: crate::fifo::Fifos,
}

/// Starts hostinfod as `opts` says and runs until it is stopped. Returns the
/// process exit status.
pub fn run(mut opts: Options) -> Result<()> {
    let env = Env::current();
    let inherited = reload::inherited();
    // Like the binary path, the configuration path is made absolute before
    // chdir("/"), so every reload (and the next image) reads the same file.
    match inherited.as_ref().and_then(|i| i.config.clone()) {
        Some(p) => opts.config = Some(p),
        None => {
            if let Some(p) = opts.config.take() {
                let abs = std::path::absolute(&p)
                    .map_err(|source| Error::ConfigRead { path: p, source })?;
                opts.config = Some(abs);
            }
        }
    }
    let cfg = Config::load(opts.config.as_deref(), &env)?;
    // The binary path is taken before chdir("/") so a relative argv[0]
    // cannot change meaning; /proc/self/exe gives it absolute.
    let exe = match &inherited {
        Some(i) => i.exe.clone(),
        None => std::env::current_exe().map_err(|e| Error::file("/proc/self/exe", e))?,
    };
    let daemonized = !opts.foreground;
    let mut readiness = if daemonized && inherited.is_none() {
        crate::daemon::daemonize(cfg.umask(), &reload::listen_fds())?
    } else {
        Readiness::none()
    };
    crate::log::init(&cfg, !daemonized);
    match Server::start(cfg, env, opts, exe, inherited) {
        Ok(mut server) => {
            readiness.ok();
            server.serve()
        }
        Err(e) => {
            // In the foreground main prints the error on stderr itself.
            if daemonized {
                log::error!("{e}");
            }
            readiness.fail(&e);
            Err(e)
        }
    }
}

fn render_hello(cfg: &Config, hostname: &str, eol: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(128);
    v.extend_from_slice(
        cfg.protocol
            .greeting
            .replace("{hostname}", hostname)
            .as_bytes(),
    );
    v.extend_from_slice(eol);
    v.extend_from_slice(cfg.protocol.prompt.as_bytes());
    v
}

fn open_spare() -> Option<OwnedFd> {
    std::fs::File::open("/dev/null").ok().map(OwnedFd::from)
}

impl Server {
    fn start(
        cfg: Config,
        env: Env,
        opts: Options,
        exe: PathBuf,
        inherited: Option<reload::Inherited>,
    ) -> Result<Self> {
        let signals = Signals::install()?;
        let notifier = Notifier::from_env();
        // Privileges are dropped once, by the first image; a reloaded image
        // runs as whoever that made it (prepare_reload warns about a change).
        let target = match inherited {
            None => privileges::resolve(&cfg)?,
            Some(_) => None,
        };
        let hostname = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into());
        crate::commands::date::warm_up();

        // Directories we create are ours to hand to the unprivileged user.
        let mut created_dirs: Vec<PathBuf> = Vec::new();
        let mut note_dir = |p: &Path| {
            if let Some(d) = p.parent()
                && !d.exists()
                && !created_dirs.iter().any(|c| c == d)
            {
                created_dirs.push(d.to_path_buf());
            }
        };

        // Pidfile first: a second instance must say "already running", not
        // fail on an address the first one holds.
        let handed_pidfile = inherited.as_ref().and_then(|i| i.pidfile_fd);
        let pidfile = match (handed_pidfile, cfg.daemon.pid_file.as_os_str().is_empty()) {
            // SAFETY: the previous image passed this fd for us to own.
            (Some(fd), _) => Some(unsafe { Pidfile::adopt(fd, &cfg.daemon.pid_file) }?),
            (None, true) => None,
            (None, false) => {
                note_dir(&cfg.daemon.pid_file);
                Some(Pidfile::acquire(&cfg.daemon.pid_file)?)
            }
        };

        // Listeners: handed over by the previous image, passed by systemd,
        // or bound from the configuration.
        let passed = reload::listen_fds();
        let names = reload::listen_names(passed.len());
        let mut listeners = Vec::with_capacity(passed.len().max(cfg.listen.tcp.len() + 1));
        let activated = match &inherited {
            Some(i) => i.activated,
            None => !passed.is_empty(),
        };
        for (fd, name) in passed.iter().zip(&names) {
            // SAFETY: LISTEN_PID names us, so these fds were passed to us to own.
            let mut l = unsafe { listen::adopt(*fd) }?;
            // Socket files we bound ourselves (handed over by a reload) are
            // ours to remove at exit; systemd's belong to the socket unit.
            l.owns_path = !activated && matches!(l.addr, Addr::Unix(_));
            if inherited.is_none() {
                log::info!("socket activation: using {} (name {name:?})", l.addr);
            }
            listeners.push(l);
        }
        if !activated && inherited.is_none() {
            for p in &cfg.listen.unix {
                note_dir(p);
            }
            listeners = listen::bind_configured(&cfg, &[])?;
        }
        if listeners.is_empty() {
            log::warn!("no listening address configured: serving nobody");
        }

        if let Some(t) = &target {
            let files = listeners
                .iter()
                .filter_map(|l| l.owned_path().map(Path::to_path_buf));
            for p in created_dirs
                .iter()
                .cloned()
                .chain(pidfile.iter().map(|p| p.path().to_path_buf()))
                .chain(files)
            {
                privileges::chown(&p, t);
            }
            privileges::drop_to(t)?;
            log::info!("running as user {} (uid {}, gid {})", t.name, t.uid, t.gid);
        }
        // [fifo wiring] prepared as the user the writers run as.
        let fifos = crate::fifo::Fifos::prepare(&cfg)?;

        let generation = inherited.as_ref().map_or(0, |i| i.generation);
        let inherited_leftovers = inherited.as_ref().map(|i| i.leftovers.clone());
        let mut children = Children::decode(
            inherited.as_ref().map_or("", |i| i.children.as_str()),
            cfg.limits.max_children as usize,
        );
        children.forget_strangers();
        // SIGCHLDs that arrived while the exec ran were collapsed into at
        // most one pending signal; reap now rather than wait for the next.
        children.reap(log_exit);

        let reload_ms = inherited
            .as_ref()
            .and_then(|i| i.hup_at_us)
            .map(|t0| monotonic_us().saturating_sub(t0) as f64 / 1000.0);
        let status = Status {
            pid: std::process::id(),
            generation,
            reload_seq: inherited.as_ref().map_or(0, |i| i.reload_seq),
            started: inherited
                .as_ref()
                .map_or_else(crate::commands::date::now, |i| i.started),
            last_reload: if inherited.is_some() {
                crate::commands::date::now()
            } else {
                0
            },
            result: if inherited.is_some() {
                ReloadResult::Ok
            } else {
                ReloadResult::None
            },
            last_reload_ms: reload_ms,
            listeners: listeners.iter().map(|l| l.addr.to_string()).collect(),
        };
        let status_path = cfg.status_file(&env);
        let args: Vec<OsString> = std::env::args_os().collect();
        // Allocated once here, before any fork (see session::Buffers).
        let session_bufs = session::Buffers::new(cfg.limits.max_line_bytes as usize);
        let mut server = Server {
            hello_tcp: render_hello(&cfg, &hostname, b"\r\n"),
            hello_unix: render_hello(&cfg, &hostname, b"\n"),
            children,
            cfg,
            env,
            opts,
            exe,
            args,
            listeners,
            activated,
            signals,
            notifier,
            pidfile,
            status_path,
            status,
            spare: open_spare(),
            emfile_logged: false,
            paused_until: None,
            next_watchdog: None,
            scan_due: None,
            exits: ExitPipe::new()
                .map_err(|e| log::warn!("exit pipe: {e}; reaping by full passes only"))
                .ok(),
            unread: 0,
            session_bufs,
            fifos, // [fifo wiring]
        };
        let fds = server.parent_fds(); // [fifo wiring]
        server.fifos.start_due(&fds); // [fifo wiring]
        server.write_status();
        if let Some(left) = &inherited_leftovers {
            // Never what this image itself uses (the default status file of
            // "no pidfile" can be the old one's path).
            let in_use = |p: &&PathBuf| {
                **p == server.status_path || server.pidfile.as_ref().is_some_and(|f| f.path() == *p)
            };
            let left: Vec<PathBuf> = left.iter().filter(|p| !in_use(p)).cloned().collect();
            remove_leftovers(&left);
        }
        for l in &server.listeners {
            log::info!("listening on {}", l.addr);
        }
        match reload_ms {
            Some(ms) => {
                log::info!("reloaded (generation {generation}) in {ms:.1} ms");
            }
            None => log::info!(
                "hostinfod {} started (pid {})",
                env!("CARGO_PKG_VERSION"),
                std::process::id()
            ),
        }
        server.notifier.ready(&server.status_line());
        // Last before serving: give back the pages start-up ran, then run the
        // self-test session, so the pages the parent keeps mapped are those
        // of the serving loop and of a session, which children share.
        let ctx = session::Context {
            cfg: &server.cfg,
            hello_tcp: &server.hello_tcp,
            hello_unix: &server.hello_unix,
        };
        let rehearsal = session::Rehearsal::prepare(&ctx);
        let trimmed = crate::memory::trim();
        log::debug!("gave back {trimmed} kB of start-up code pages");
        if let Err(e) = rehearsal.and_then(|r| r.run(&ctx)) {
            log::warn!("start-up self-test session failed: {e}");
        }
        server.next_watchdog = server
            .notifier
            .watchdog_interval()
            .map(|d| Instant::now() + d);
        Ok(server)
    }

    // [fifo wiring] every descriptor of the parent a FIFO writer must not keep.
    fn parent_fds(&self) -> Vec<RawFd> {
        self.listeners
            .iter()
            .map(Listener::raw)
            .chain(self.pidfile.as_ref().map(Pidfile::raw))
            .chain(self.spare.as_ref().map(AsRawFd::as_raw_fd))
            .chain(self.notifier.raw())
            .chain(self.exits.as_ref().map(ExitPipe::read_fd))
            .chain(std::iter::once(self.signals.raw()))
            .collect()
    }

    fn status_line(&self) -> String {
        format!(
            "serving {} listener(s), generation {}, {} session(s)",
            self.listeners.len(),
            self.status.generation,
            self.children.len()
        )
    }

    fn write_status(&mut self) {
        self.status.listeners = self.listeners.iter().map(|l| l.addr.to_string()).collect();
        self.status.listeners.extend(self.fifos.listeners()); // [fifo wiring]
        if let Err(e) = self.status.write(&self.status_path) {
            log::warn!(
                "cannot write status file {}: {e}",
                self.status_path.display()
            );
        }
    }

    /// The poll loop. Returns when the daemon has stopped.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn serve(&mut self) -> Result<()> {
        // The poll set lives on the stack when it fits: after each fork every
        // page the parent writes is copied, and the stack page is written
        // anyway, so this saves the heap page a Vec would dirty (poll writes
        // `revents` back). Many listeners spill into the Vec.
        const ON_STACK: usize = 16;
        let idle = libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        };
        // Built once: the listeners do not change within an image (a reload
        // that succeeds execs, one that fails keeps them). Not accepting
        // (max_children reached, or backing off) polls the signalfd alone.
        let mut stack = [idle; ON_STACK];
        let mut spill = Vec::new();
        let all: &mut [libc::pollfd] = if self.listeners.len() < ON_STACK {
            &mut stack[..1 + self.listeners.len()]
        } else {
            spill.resize(1 + self.listeners.len(), idle);
            &mut spill
        };
        all[0] = libc::pollfd {
            fd: self.signals.raw(),
            events: libc::POLLIN,
            revents: 0,
        };
        for (slot, l) in all[1..].iter_mut().zip(&self.listeners) {
            *slot = libc::pollfd {
                fd: l.raw(),
                events: libc::POLLIN,
                revents: 0,
            };
        }
        loop {
            let accepting = self.children.len() < self.cfg.limits.max_children as usize
                && self.paused_until.is_none_or(|t| Instant::now() >= t);
            if accepting {
                self.paused_until = None;
            }
            let fds = if accepting {
                &mut all[..]
            } else {
                &mut all[..1]
            };
            let timeout = self.poll_timeout();
            // SAFETY: fds is a valid, initialised array of its length.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                if Errno::last() != Errno::EINTR {
                    log::error!("poll: {}", Errno::last());
                    std::thread::sleep(BACKOFF);
                }
                continue;
            }
            self.tick_watchdog();
            if self.fifos.next_due().is_some_and(|t| Instant::now() >= t) {
                // [fifo wiring] restart the writers that are due
                let fds = self.parent_fds(); // [fifo wiring]
                self.fifos.start_due(&fds); // [fifo wiring]
            }
            if self.scan_due.is_some_and(|t| Instant::now() >= t) {
                self.reap_all();
            }
            if fds[0].revents != 0 {
                let p = self.signals.drain();
                if p.child {
                    self.on_sigchld(p.exited);
                    self.fifos.on_sigchld(); // [fifo wiring]
                }
                if p.terminate {
                    return self.shutdown();
                }
                if p.hangup {
                    // Returns only if the reload was rejected.
                    self.reload();
                    continue;
                }
            }
            for (i, fd) in fds.iter().enumerate().skip(1) {
                if fd.revents != 0 {
                    self.accept_on(i - 1);
                }
            }
        }
    }

    /// Reaps after a SIGCHLD.
    ///
    /// With few sessions, one full waitpid(-1) pass: it has few children to
    /// walk, and reaps the child the signal names with the others (standard
    /// signals merge, so the name is not all that ended). With many (from
    /// [`ANNOUNCE_FROM`] on, where children announce their exit through the
    /// [`ExitPipe`]) the named child and every announced one are reaped by
    /// PID, and the full pass still owed for children that ended without a
    /// word runs at once when every slot is taken (a zombie then holds a slot
    /// a client waits for), otherwise within [`SCAN_INTERVAL`]. Counts are
    /// only ever decremented by a waitpid of that PID.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn on_sigchld(&mut self, exited: Option<i32>) {
        let many = self.children.len() >= ANNOUNCE_FROM && self.exits.is_some();
        if many || self.unread >= UNREAD_MAX {
            if let Some(pid) = exited {
                self.children.reap_pid(pid, log_exit);
            }
            if let Some(x) = self.exits.as_mut() {
                x.reap_announced(&mut self.children, log_exit);
            }
            self.unread = 0;
        }
        if !many || self.children.len() >= self.cfg.limits.max_children as usize {
            self.reap_all();
        } else if self.scan_due.is_none() {
            self.scan_due = Some(Instant::now() + SCAN_INTERVAL);
        }
    }

    /// The full reaping pass: waitpid(-1, WNOHANG) until nothing is left.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn reap_all(&mut self) {
        self.scan_due = None;
        self.children.reap(log_exit);
    }

    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn poll_timeout(&self) -> i32 {
        let now = Instant::now();
        let mut deadline: Option<Instant> = self.next_watchdog;
        for t in [self.paused_until, self.scan_due, self.fifos.next_due()] // [fifo wiring]
            .into_iter()
            .flatten()
        {
            deadline = Some(deadline.map_or(t, |d| d.min(t)));
        }
        match deadline {
            None => -1,
            // Rounded up, so poll does not wake just before the deadline
            // and go round once more for the remaining fraction.
            Some(d) => d
                .saturating_duration_since(now)
                .as_micros()
                .div_ceil(1000)
                .clamp(1, i32::MAX as u128) as i32,
        }
    }

    fn tick_watchdog(&mut self) {
        if let (Some(next), Some(every)) = (self.next_watchdog, self.notifier.watchdog_interval())
            && Instant::now() >= next
        {
            self.notifier.watchdog();
            self.next_watchdog = Some(Instant::now() + every);
        }
    }

    /// Accepts and forks for up to a batch of pending clients on listener `idx`.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn accept_on(&mut self, idx: usize) {
        let Some(listener) = self.listeners.get(idx) else {
            return;
        };
        let lfd = listener.raw();
        let tcp = listener.addr.is_tcp();
        for _ in 0..ACCEPT_BATCH {
            // A failed fork set a back-off: the rest of the batch waits in
            // the backlog instead of being forked for (and failed) at once.
            if self.children.len() >= self.cfg.limits.max_children as usize
                || self.paused_until.is_some()
            {
                return;
            }
            let mut ss: libc::sockaddr_storage = unsafe_zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: ss and len describe a writable sockaddr_storage; accept4
            // returns a new fd that we take ownership of below.
            let fd = unsafe {
                libc::accept4(
                    lfd,
                    (&raw mut ss).cast(),
                    &mut len,
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd < 0 {
                match Errno::last() {
                    Errno::EAGAIN => return,
                    Errno::EINTR | Errno::ECONNABORTED | Errno::EPROTO => continue,
                    Errno::EMFILE | Errno::ENFILE => {
                        self.fd_exhausted(lfd, Errno::last());
                        return;
                    }
                    e => {
                        log::warn!("accept on {}: {e}", self.listeners[idx].addr);
                        self.paused_until = Some(Instant::now() + BACKOFF);
                        return;
                    }
                }
            }
            self.emfile_logged = false;
            // SAFETY: accept4 just returned this fd and nothing else owns it.
            let client = unsafe { OwnedFd::from_raw_fd(fd) };
            let Some(peer) = peer_of(&ss, tcp, &client) else {
                continue;
            };
            // Each refusal reaps first: once per batch was tried, and 16
            // clients from one address under max_per_source = 32 then got
            // 197 false refusals in 3 s (children that had ended but were
            // not yet reaped still counted).
            let max = self.cfg.limits.max_per_source;
            if self.children.count(&peer.source) >= max && self.recount(&peer.source) >= max {
                log::info!("REFUSED: too many sessions from {}", peer.source);
                send_line(
                    &client,
                    tcp,
                    format_args!("Server busy: too many sessions from {}.", peer.source),
                );
                continue;
            }
            self.spawn(client, idx, tcp, peer);
        }
    }

    /// The count for `source` after a full reaping pass: a client that got
    /// its `Goodbye.` may reconnect before its old session's child has been
    /// reaped, and must not be refused for a session that has ended.
    /// Children that have announced their end but are not reapable yet
    /// (still exiting) are left out too: their clients have had EOF.
    fn recount(&mut self, source: &Source) -> u32 {
        self.reap_all();
        let Some(x) = self.exits.as_mut() else {
            return self.children.count(source);
        };
        x.reap_announced(&mut self.children, log_exit);
        self.unread = 0;
        let ending = x.ending(&self.children, source);
        self.children.count(source).saturating_sub(ending)
    }

    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn spawn(&mut self, client: OwnedFd, idx: usize, tcp: bool, peer: Peer) {
        self.unread += 1;
        // SAFETY: the parent is single-threaded, so the child starts with a
        // consistent heap and no lock held by a vanished thread.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => self.child(client, idx, tcp, peer),
            Ok(ForkResult::Parent { child }) => {
                self.children.insert(
                    child.as_raw(),
                    Child {
                        source: peer.source,
                        started_us: monotonic_us(),
                    },
                );
                drop(client);
            }
            Err(e) => {
                log::error!("fork for {}: {e}; backing off", peer.source);
                send_line(&client, tcp, format_args!("{BUSY_RETRY}"));
                self.paused_until = Some(Instant::now() + BACKOFF);
            }
        }
    }

    /// The child's whole life: close what belongs to the parent, serve, exit.
    #[unsafe(link_section = ".text.hot.hostinfod")]
    fn child(&mut self, client: OwnedFd, idx: usize, tcp: bool, peer: Peer) -> ! {
        // The listeners, the pidfile lock, the spare fd and the notify socket
        // are the parent's. Closing raw numbers (and never running their
        // destructors) matters for the pidfile: dropping its Flock would
        // unlock the description the parent shares.
        close_all(
            self.listeners
                .iter()
                .map(Listener::raw)
                .chain(self.pidfile.as_ref().map(Pidfile::raw))
                .chain(self.spare.as_ref().map(AsRawFd::as_raw_fd))
                .chain(self.notifier.raw())
                .chain(self.exits.as_ref().map(ExitPipe::read_fd)),
        );
        crate::log::forked();
        if let Some(via) = self.listeners.get(idx).map(|l| &l.addr) {
            // Display values formatted straight into the record: no String.
            log::info!(
                "START: {} pid={}{} via {}",
                peer,
                crate::log::pid(),
                PeerPid(peer.pid),
                via
            );
        }
        let ctx = session::Context {
            cfg: &self.cfg,
            hello_tcp: &self.hello_tcp,
            hello_unix: &self.hello_unix,
        };
        // SAFETY: a bitwise copy of the buffers' Vec headers, where `take()`
        // would write into `self` and so copy the page that holds it. This
        // process never returns from here and never drops `self`, so the
        // two copies are never both dropped.
        let bufs = unsafe { std::ptr::read(&self.session_bufs) };
        let end = session::serve(&client, tcp, &ctx, &self.signals, bufs);
        // Announced before the client can see EOF: a client that connects
        // again at once must not be refused by max_per_source for this
        // session, whose child is still exiting and not yet reapable (the
        // parent's recount leaves announced children out). Every child
        // announces; the parent reads the pipe on SIGCHLD only from
        // ANNOUNCE_FROM sessions on, and before a refusal.
        if let Some(x) = &self.exits {
            x.announce(std::process::id() as i32);
        }
        // Closed here, not by _exit: _exit tears the address space down
        // before it closes files, so the client would wait for that teardown
        // to see EOF. Closing first lets it go on (and connect again) while
        // this process unmaps, on the other CPU: one system call that takes
        // the teardown out of every session's latency.
        drop(client);
        // _exit: no destructors, no atexit handlers, no stdio flush of
        // buffers that are the parent's.
        crate::daemon::exit_now(end.exit_code())
    }

    fn fd_exhausted(&mut self, lfd: RawFd, e: Errno) {
        if !self.emfile_logged {
            log::warn!("accept: {e}; shedding pending connections until fds free up");
            self.emfile_logged = true;
        }
        // Give up the spare fd to accept one pending connection and close it,
        // so the listener does not stay readable forever; then back off.
        self.spare = None;
        // SAFETY: accept4 with null address; the fd, if any, is closed at once.
        let fd = unsafe {
            libc::accept4(
                lfd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        if fd >= 0 {
            // SAFETY: we own the fd just accepted.
            unsafe { libc::close(fd) };
        }
        self.spare = open_spare();
        self.paused_until = Some(Instant::now() + BACKOFF);
    }

    /// SIGHUP: validate, then re-execute in place; or keep running and say why not.
    fn reload(&mut self) {
        let hup_at = monotonic_us();
        self.status.reload_seq += 1;
        self.status.last_reload = crate::commands::date::now();
        log::info!("SIGHUP: reloading configuration");
        match self.prepare_reload(hup_at) {
            Ok(()) => {} // execve returned: prepare_reload only returns on failure
            Err(reason) => {
                log::error!(
                    "reload rejected, still serving generation {}: {reason}",
                    self.status.generation
                );
                self.status.result = ReloadResult::Rejected(reason.clone());
                self.write_status();
                self.notifier.send(&format!(
                    "READY=1\nSTATUS=reload rejected: {}",
                    reason.replace('\n', " ")
                ));
            }
        }
    }

    /// Returns Err with the reason when the reload cannot happen. On success
    /// it does not return: the process is the next image.
    fn prepare_reload(&mut self, hup_at: u64) -> std::result::Result<(), String> {
        let new =
            Config::load(self.opts.config.as_deref(), &self.env).map_err(|e| e.to_string())?;
        // [fifo wiring] a FIFO path that cannot be set up rejects the reload.
        crate::fifo::Fifos::prepare(&new).map_err(|e| e.to_string())?;
        if (&new.daemon.user, &new.daemon.group) != (&self.cfg.daemon.user, &self.cfg.daemon.group)
        {
            log::warn!(
                "daemon.user/daemon.group changed: privileges are set at start, so this takes \
                 effect at the next start, not on reload"
            );
        }
        // The next image's listeners: kept ones (same address) and new ones,
        // bound now, so that an address that cannot be bound rejects the
        // reload while this image still serves.
        let mut handed: Vec<(RawFd, String)> = Vec::new();
        let mut fresh: Vec<Listener> = Vec::new();
        let mut dropped: Vec<usize> = Vec::new();
        if self.activated {
            handed = self
                .listeners
                .iter()
                .map(|l| {
                    (
                        l.raw(),
                        if l.owns_path {
                            "hostinfod"
                        } else {
                            "activated"
                        }
                        .to_string(),
                    )
                })
                .collect();
        } else {
            let want = listen::configured(&new);
            for (i, l) in self.listeners.iter().enumerate() {
                if want.contains(&l.addr) {
                    listen::reconfigure(l, new.listen.backlog, new.unix_mode());
                } else {
                    dropped.push(i);
                }
            }
            let have: Vec<Addr> = self.listeners.iter().map(|l| l.addr.clone()).collect();
            fresh = listen::bind_configured(&new, &have).map_err(|e| e.to_string())?;
            for a in &want {
                if let Some(l) = self
                    .listeners
                    .iter()
                    .chain(fresh.iter())
                    .find(|l| &l.addr == a)
                {
                    let name = if l.owns_path { "hostinfod" } else { "tcp" };
                    handed.push((l.raw(), name.to_string()));
                }
            }
        }
        // Socket files of listeners the new configuration drops are removed
        // by the next image once it serves (the sockets close on exec).
        let mut leftovers: Vec<PathBuf> = dropped
            .iter()
            .filter_map(|&i| self.listeners.get(i)?.owned_path().map(Path::to_path_buf))
            .collect();
        // A changed daemon.pid_file: move the locked pidfile (and the status
        // file beside it) now, so a path we cannot take rejects the reload.
        // Set to "": the pidfile's fd is not handed over (it closes on exec,
        // which releases the lock) and the next image removes both files.
        let mut keep_pidfile = true;
        if let Some(pf) = self.pidfile.as_mut() {
            let want = &new.daemon.pid_file;
            if want.as_os_str().is_empty() {
                keep_pidfile = false;
                leftovers.push(pf.path().to_path_buf());
                leftovers.push(self.status_path.clone());
            } else if pf.path() != want.as_path() {
                if let Err(e) = pf.relocate(want) {
                    listen::remove_socket_files(&fresh);
                    return Err(e.to_string());
                }
                let _ = std::fs::remove_file(&self.status_path);
                self.status_path = new.status_file(&self.env);
            }
        }
        // [fifo wiring] FIFOs no longer configured are removed by the next image; the
        // writers end here and the next image starts its own.
        leftovers.extend(
            self.fifos
                .paths()
                .filter(|p| !new.listen.fifo.iter().any(|q| q == p))
                .map(Path::to_path_buf),
        );
        self.fifos.stop(); // [fifo wiring]
        self.notifier.reloading();
        let h = reload::Handover {
            exe: &self.exe,
            args: &self.args,
            listeners: handed,
            pidfile_fd: self
                .pidfile
                .as_ref()
                .filter(|_| keep_pidfile)
                .map(Pidfile::raw),
            generation: self.status.generation + 1,
            reload_seq: self.status.reload_seq,
            started: self.status.started,
            children: self.children.encode(),
            activated: self.activated,
            hup_at_us: hup_at,
            defaults_uid: self.env.euid,
            config: self.opts.config.as_deref(),
            leftovers,
        };
        let err = reload::exec(&h);
        // Still here: the exec failed and this image serves on, unchanged:
        // every listener, socket file and the pidfile are as they were; only
        // the freshly bound listeners go.
        listen::remove_socket_files(&fresh);
        drop(fresh);
        Err(format!("cannot execute {}: {err}", self.exe.display()))
    }

    /// SIGTERM/SIGINT: stop accepting, tell the children, wait, exit.
    fn shutdown(&mut self) -> Result<()> {
        log::info!("stopping: {} session(s) to end", self.children.len());
        self.notifier.stopping();
        listen::remove_socket_files(&self.listeners);
        self.listeners.clear();
        self.fifos.stop(); // [fifo wiring]
        self.fifos.remove_files(); // [fifo wiring]
        let _ = std::fs::remove_file(&self.status_path);
        if let Some(p) = self.pidfile.take() {
            p.remove();
        }
        for pid in self.children.pids().collect::<Vec<_>>() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(self.cfg.limits.shutdown_grace_secs);
        while !self.children.is_empty() {
            self.children.reap(log_exit);
            if self.children.is_empty() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                for pid in self.children.pids().collect::<Vec<_>>() {
                    log::warn!("pid {pid} still running after the grace period: SIGKILL");
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
                // Bounded: SIGKILL cannot be caught, so each waitpid returns.
                for pid in self.children.pids().collect::<Vec<_>>() {
                    if !self.children.wait_pid(pid, log_exit) {
                        self.children.remove(pid);
                    }
                }
                break;
            }
            let mut pfd = [libc::pollfd {
                fd: self.signals.raw(),
                events: libc::POLLIN,
                revents: 0,
            }];
            // SAFETY: a valid array of one pollfd.
            unsafe { libc::poll(pfd.as_mut_ptr(), 1, left.as_millis().clamp(1, 1000) as i32) };
            let _ = self.signals.drain();
        }
        log::info!("stopped");
        Ok(())
    }
}

/// Closes the given fds in as few system calls as the numbering allows: the
/// parent opens its own fds one after another at start-up, so they usually
/// form one run that a single close_range(2) closes. No allocation (this
/// runs in a fresh child, where malloc would dirty shared pages).
#[unsafe(link_section = ".text.hot.hostinfod")]
fn close_all(fds: impl Iterator<Item = RawFd>) {
    const MAX: usize = 32;
    let mut set = [0 as RawFd; MAX];
    let mut n = 0;
    for fd in fds {
        if n < MAX {
            set[n] = fd;
            n += 1;
        } else {
            // SAFETY: closing the child's copy of a parent-owned fd.
            unsafe { libc::close(fd) };
        }
    }
    let set = &mut set[..n];
    set.sort_unstable();
    let mut i = 0;
    while i < set.len() {
        let mut j = i;
        while j + 1 < set.len() && set[j + 1] <= set[j] + 1 {
            j += 1;
        }
        // SAFETY: every fd in the run is one of the parent's, whose owning
        // objects are never used or dropped in this child.
        let r = unsafe { libc::close_range(set[i] as u32, set[j] as u32, 0) };
        if r != 0 {
            for &fd in &set[i..=j] {
                // SAFETY: as above; close_range is missing on old kernels.
                unsafe { libc::close(fd) };
            }
        }
        i = j + 1;
    }
}

/// Removes the files the previous image's configuration left (see
/// [`reload::Handover::leftovers`]), each only if it is what we think it is:
/// a socket file, or a pidfile or status file that names this process.
fn remove_leftovers(paths: &[PathBuf]) {
    use std::os::unix::fs::FileTypeExt as _;
    let me = std::process::id();
    for p in paths {
        let Ok(meta) = std::fs::symlink_metadata(p) else {
            continue;
        };
        let ours = if meta.file_type().is_socket() || meta.file_type().is_fifo() {
            // [fifo wiring] a FIFO endpoint the new configuration dropped
            true
        } else if meta.is_file() {
            crate::pidfile::read_pid(p) == Some(me as i32)
                || crate::status::read(p)
                    .and_then(|m| m.get("pid").cloned())
                    .is_some_and(|v| v == me.to_string())
        } else {
            false
        };
        if ours {
            match std::fs::remove_file(p) {
                Ok(()) => log::info!("removed {} (no longer configured)", p.display()),
                Err(e) => log::warn!("cannot remove {}: {e}", p.display()),
            }
        }
    }
}

#[unsafe(link_section = ".text.hot.hostinfod")]
fn log_exit(pid: i32, child: Option<Child>, how: Ended) {
    if !log::log_enabled!(log::Level::Info) {
        return;
    }
    match child {
        Some(c) => {
            let ms = monotonic_us().saturating_sub(c.started_us) as f64 / 1000.0;
            log::info!("EXIT: pid={pid} {how} duration={ms:.1}ms from {}", c.source);
        }
        None => log::info!("EXIT: pid={pid} {how} (not a session)"),
    }
}

/// Who is on the other end of an accepted connection.
#[derive(Debug, Clone, Copy)]
struct Peer {
    source: Source,
    port: u16,
    /// For Unix peers, SO_PEERCRED's pid.
    pid: Option<i32>,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.source {
            Source::Ip(ip) => write!(f, "{}", SocketAddr::new(ip, self.port)),
            Source::Uid(uid) => write!(f, "unix peer uid={uid}"),
        }
    }
}

/// ` peer_pid=N` for a Unix peer, nothing for TCP.
struct PeerPid(Option<i32>);

impl std::fmt::Display for PeerPid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(p) => write!(f, " peer_pid={p}"),
            None => Ok(()),
        }
    }
}

fn unsafe_zeroed() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

#[unsafe(link_section = ".text.hot.hostinfod")]
fn peer_of(ss: &libc::sockaddr_storage, tcp: bool, client: &OwnedFd) -> Option<Peer> {
    if !tcp {
        let cred = nix::sys::socket::getsockopt(client, nix::sys::socket::sockopt::PeerCredentials)
            .ok()?;
        return Some(Peer {
            source: Source::Uid(cred.uid()),
            port: 0,
            pid: Some(cred.pid()),
        });
    }
    match ss.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let sin: &libc::sockaddr_in = unsafe { &*(ss as *const libc::sockaddr_storage).cast() };
            let ip = IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes());
            Some(Peer {
                source: Source::Ip(ip),
                port: u16::from_be(sin.sin_port),
                pid: None,
            })
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let sin6: &libc::sockaddr_in6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast() };
            let ip = IpAddr::from(sin6.sin6_addr.s6_addr).to_canonical();
            Some(Peer {
                source: Source::Ip(ip),
                port: u16::from_be(sin6.sin6_port),
                pid: None,
            })
        }
        _ => None,
    }
}

/// One line to a client the parent will not serve: formatted on the stack
/// (this runs in the accept loop, under a flood of refusals too) and sent
/// with the transport's line end in one non-blocking write; whatever does
/// not fit is dropped (the client must not be able to stall the parent).
fn send_line(fd: &OwnedFd, tcp: bool, line: std::fmt::Arguments<'_>) {
    use std::fmt::Write as _;
    let mut buf = [0u8; 256];
    let mut w = crate::text::Fixed::new(&mut buf[..254]);
    let _ = w.write_fmt(line);
    let n = w.as_bytes().len();
    let eol: &[u8] = if tcp { b"\r\n" } else { b"\n" };
    buf[n..n + eol.len()].copy_from_slice(eol);
    let bytes = &buf[..n + eol.len()];
    // SAFETY: a valid buffer of the given length; MSG_DONTWAIT never blocks,
    // MSG_NOSIGNAL avoids SIGPIPE for a peer that already left.
    unsafe {
        libc::send(
            fd.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
}
