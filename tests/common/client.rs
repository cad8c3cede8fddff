//! Talking to the daemon: a line-protocol [`Client`] that panics with what
//! it got on EOF or timeout, and whole sessions that report instead of
//! panicking (for load tests that count failures).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::{IO_TIMEOUT, PROMPT};

/// Sockets we can talk through with timeouts.
pub trait Stream: Read + Write {
    fn set_timeout(&self, t: Option<Duration>);
}

impl Stream for TcpStream {
    fn set_timeout(&self, t: Option<Duration>) {
        self.set_read_timeout(t).expect("timeout");
    }
}

impl Stream for UnixStream {
    fn set_timeout(&self, t: Option<Duration>) {
        self.set_read_timeout(t).expect("timeout");
    }
}

/// Sends `batch` again and again over a TCP client's socket without
/// reading, until writes have blocked for `settle` (every buffer between
/// the two ends is full: the server waits for room to write), `max` bytes
/// have gone, or 20 s have passed. Returns the bytes sent; the socket is
/// left non-blocking.
pub fn send_until_blocked(
    c: &mut Client<TcpStream>,
    batch: &[u8],
    max: usize,
    settle: Duration,
) -> usize {
    c.s.set_nonblocking(true).expect("nonblocking");
    let (mut sent, mut blocked_since) = (0usize, None::<std::time::Instant>);
    let t0 = std::time::Instant::now();
    while sent < max && t0.elapsed() < Duration::from_secs(20) {
        match c.s.write(batch) {
            Ok(n) => {
                sent += n;
                blocked_since = None;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let since = *blocked_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > settle {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    sent
}

/// A line-protocol client.
pub struct Client<S: Stream> {
    pub s: S,
    buf: Vec<u8>,
}

impl<S: Stream> Client<S> {
    pub fn new(s: S) -> Self {
        s.set_timeout(Some(IO_TIMEOUT));
        Client { s, buf: Vec::new() }
    }

    /// Reads until `needle` has been received; returns everything up to and
    /// including it. Panics on EOF or timeout.
    pub fn read_until(&mut self, needle: &[u8]) -> Vec<u8> {
        loop {
            if let Some(i) = find(&self.buf, needle) {
                let rest = self.buf.split_off(i + needle.len());
                return std::mem::replace(&mut self.buf, rest);
            }
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) => panic!(
                    "EOF while waiting for {:?}; got {:?}",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(&self.buf)
                ),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!(
                    "read error {e} while waiting for {:?}; got {:?}",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        }
    }

    /// Reads the greeting and first prompt; returns the greeting text.
    pub fn greeting(&mut self) -> String {
        let g = self.read_until(PROMPT.as_bytes());
        String::from_utf8_lossy(&g).into_owned()
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("write");
    }

    /// Sends `line` + LF and returns the reply up to the next prompt (without it).
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\n").as_bytes());
        let r = self.read_until(PROMPT.as_bytes());
        String::from_utf8_lossy(&r[..r.len() - PROMPT.len()]).into_owned()
    }

    /// Reads everything until EOF (bounded by the read timeout).
    pub fn read_to_end(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        let mut chunk = [0u8; 4096];
        loop {
            match self.s.read(&mut chunk) {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
                Err(e) => panic!("read error {e}; got {:?}", String::from_utf8_lossy(&out)),
            }
        }
    }

    /// True if nothing at all arrives within `within` (the connection stays
    /// open and silent). Data or EOF in that time gives false.
    pub fn silent_for(&mut self, within: Duration) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        self.s.set_timeout(Some(within));
        let mut chunk = [0u8; 4096];
        let silent = match self.s.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                false
            }
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        self.s.set_timeout(Some(IO_TIMEOUT));
        silent
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One whole session: greeting, `cmd`, quit; returns the reply to `cmd`.
pub fn one_shot_tcp(port: u16, cmd: &str) -> String {
    let mut c = Client::new(TcpStream::connect(("127.0.0.1", port)).expect("connect"));
    c.greeting();
    let r = c.cmd(cmd);
    c.send(b"quit\n");
    c.read_to_end();
    r
}

/// One whole session that never panics: greeting, `cmd`, quit. Returns the
/// greeting and the reply, or what went wrong.
pub fn try_session_tcp(port: u16, cmd: &str) -> Result<(String, String), String> {
    let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    try_session(s, cmd, "\r\n")
}

/// The same over a Unix socket.
pub fn try_session_unix(path: &Path, cmd: &str) -> Result<(String, String), String> {
    let s = UnixStream::connect(path).map_err(|e| format!("connect: {e}"))?;
    try_session(s, cmd, "\n")
}

fn try_session<S: Stream>(mut s: S, cmd: &str, eol: &str) -> Result<(String, String), String> {
    s.set_timeout(Some(IO_TIMEOUT));
    let mut buf = Vec::new();
    let read_until = |s: &mut S, buf: &mut Vec<u8>, needle: &[u8]| -> Result<Vec<u8>, String> {
        loop {
            if let Some(i) = find(buf, needle) {
                let rest = buf.split_off(i + needle.len());
                return Ok(std::mem::replace(buf, rest));
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) => {
                    return Err(format!(
                        "EOF waiting for {:?}; got {:?}",
                        String::from_utf8_lossy(needle),
                        String::from_utf8_lossy(buf)
                    ));
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("read: {e}; got {:?}", String::from_utf8_lossy(buf))),
            }
        }
    };
    let g = read_until(&mut s, &mut buf, PROMPT.as_bytes())?;
    s.write_all(format!("{cmd}\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let r = read_until(&mut s, &mut buf, PROMPT.as_bytes())?;
    s.write_all(b"quit\n").map_err(|e| format!("write: {e}"))?;
    let bye = read_until(&mut s, &mut buf, format!("Goodbye.{eol}").as_bytes())?;
    if !bye.starts_with(b"Goodbye.") {
        return Err(format!("after quit: {:?}", String::from_utf8_lossy(&bye)));
    }
    Ok((
        String::from_utf8_lossy(&g[..g.len() - PROMPT.len()]).into_owned(),
        String::from_utf8_lossy(&r[..r.len() - PROMPT.len()]).into_owned(),
    ))
}
