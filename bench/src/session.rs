//! One client connection and one whole session of the hostinfod line protocol.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where the server listens.
#[derive(Debug, Clone)]
pub enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp(a) => write!(f, "tcp:{a}"),
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A connected stream of either family.
#[derive(Debug)]
pub enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    /// Connects with `timeout` and sets it as the read timeout. Writes are a
    /// few bytes into an empty socket buffer and need none.
    ///
    /// A Unix connect to a full backlog blocks without a timeout (std offers
    /// none); the caller's watchdog bounds that case.
    pub fn connect(target: &Target, timeout: Duration) -> io::Result<Conn> {
        let conn = match target {
            Target::Tcp(addr) => {
                // No TCP_NODELAY: each write follows a reply that acked the
                // previous one, so Nagle never delays it.
                Conn::Tcp(TcpStream::connect_timeout(addr, timeout)?)
            }
            Target::Unix(path) => Conn::Unix(UnixStream::connect(path)?),
        };
        conn.set_read_timeout(Some(timeout))?;
        Ok(conn)
    }

    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_read_timeout(t),
            Conn::Unix(s) => s.set_read_timeout(t),
        }
    }

    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_nonblocking(on),
            Conn::Unix(s) => s.set_nonblocking(on),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why a session did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// connect(2) failed.
    Refused,
    /// The server answered with its `Server busy` refusal line.
    Busy,
    /// I/O error, timeout or unexpected EOF.
    Failed,
    /// The server answered, but not as the protocol says.
    Bad,
}

/// What one session expects and sends.
#[derive(Debug, Clone)]
pub struct Script {
    pub prompt: Vec<u8>,
    pub command: Vec<u8>,
    /// Require a digit in the reply (a date has one).
    pub want_digit: bool,
    /// Accept a reply of several lines (`who`, `cookie`, `motd`); otherwise
    /// the reply must be exactly one line.
    pub multi_line: bool,
    pub timeout: Duration,
}

/// Reads until the buffer (from `from`) holds a line end and, when a prompt
/// is configured, ends with the prompt. Returns false on EOF.
fn read_until_prompt(
    conn: &mut Conn,
    buf: &mut Vec<u8>,
    from: usize,
    prompt: &[u8],
    deadline: Instant,
) -> io::Result<bool> {
    loop {
        let tail = &buf[from..];
        let done = if prompt.is_empty() {
            tail.ends_with(b"\n")
        } else {
            tail.ends_with(prompt) && tail[..tail.len() - prompt.len()].contains(&b'\n')
        };
        if done {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Err(io::ErrorKind::TimedOut.into());
        }
        if read_some(conn, buf)? == 0 {
            return Ok(false);
        }
    }
}

/// One read(2) appended to `buf`.
fn read_some(conn: &mut Conn, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 4096];
    loop {
        match conn.read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

fn trim_line(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r' | b'\n' | b'\0'] = s {
        s = rest;
    }
    s
}

fn is_busy(greeting: &[u8]) -> bool {
    greeting.starts_with(b"Server busy")
}

/// Connects and reads the greeting line and the prompt. Used for held idle
/// sessions and by the probe; returns the connection and the greeting line.
pub fn greet(
    target: &Target,
    script: &Script,
    buf: &mut Vec<u8>,
) -> Result<Conn, (Outcome, String)> {
    let deadline = Instant::now() + script.timeout;
    let mut conn =
        Conn::connect(target, script.timeout).map_err(|e| (Outcome::Refused, e.to_string()))?;
    buf.clear();
    match read_until_prompt(&mut conn, buf, 0, &script.prompt, deadline) {
        Ok(true) => Ok(conn),
        Ok(false) if is_busy(buf) => Err((Outcome::Busy, lossy(buf))),
        Ok(false) => Err((
            Outcome::Failed,
            format!("EOF before prompt: {:?}", lossy(buf)),
        )),
        Err(e) => Err((Outcome::Failed, e.to_string())),
    }
}

pub fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// One whole session: connect, greeting and prompt, the command, its reply and
/// the prompt, `quit`, `Goodbye.`, EOF. `buf` is scratch space reused between
/// sessions. On error, says what went wrong.
pub fn session(
    target: &Target,
    script: &Script,
    buf: &mut Vec<u8>,
) -> Result<(), (Outcome, String)> {
    let fail = |e: io::Error| (Outcome::Failed, e.to_string());
    let deadline = Instant::now() + script.timeout;
    let mut conn = greet(target, script, buf)?;

    conn.write_all(&script.command).map_err(fail)?;
    buf.clear();
    match read_until_prompt(&mut conn, buf, 0, &script.prompt, deadline) {
        Ok(true) => {}
        Ok(false) => {
            return Err((
                Outcome::Failed,
                format!("EOF before reply: {:?}", lossy(buf)),
            ));
        }
        Err(e) => return Err(fail(e)),
    }
    let reply = trim_line(&buf[..buf.len() - script.prompt.len()]);
    let reply_ok = !reply.is_empty()
        && (script.multi_line || !reply.contains(&b'\n'))
        && (!script.want_digit || reply.iter().any(u8::is_ascii_digit));
    if !reply_ok {
        return Err((Outcome::Bad, format!("reply {:?}", lossy(reply))));
    }

    conn.write_all(b"quit\n").map_err(fail)?;
    buf.clear();
    loop {
        if Instant::now() >= deadline {
            return Err(fail(io::ErrorKind::TimedOut.into()));
        }
        if read_some(&mut conn, buf).map_err(fail)? == 0 {
            break;
        }
    }
    if trim_line(buf) != b"Goodbye." {
        return Err((Outcome::Bad, format!("after quit {:?}", lossy(buf))));
    }
    Ok(())
}

/// Whether a held session is still open (no EOF, no error, nothing pending
/// but possibly data we ignore).
pub fn still_open(conn: &mut Conn) -> bool {
    if conn.set_nonblocking(true).is_err() {
        return false;
    }
    let mut b = [0u8; 256];
    loop {
        match conn.read(&mut b) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}
