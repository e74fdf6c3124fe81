//! `[[test.http]]`: checks of a guest's services from the host while it runs.
//!
//! Each check waits until the console shows its `after` line, then fetches its path through the
//! host port QEMU forwards to the guest's port, again every half second, until the body holds
//! the expected text or the boot's time runs out. The checks run one after another, in recipe
//! order; `Prober` is that state machine, fed the console lines as they arrive.
//!
//! The client is a few lines of HTTP/1.0 over a `TcpStream` rather than `ureq`: it must speak to
//! exactly `127.0.0.1:PORT` whatever proxy the environment names, and tell apart the ways a
//! guest that is not ready fails (QEMU's user-mode network accepts every connection on the host
//! side and closes it when nothing listens in the guest).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::vm::transcript::Line;

/// How often a check is tried again.
const RETRY: Duration = Duration::from_millis(500);
/// The longest one try may take: under software emulation a guest answers slowly.
const TRY_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an answer that is read; a health check answers in a few bytes.
const MAX_ANSWER: u64 = 64 << 10;
/// The most of a body a report shows.
const SHOWN_BODY: usize = 200;

/// One `[[test.http]]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProbe {
    /// The guest's port.
    pub port: u16,
    /// The path, starting with `/`, without spaces or control characters.
    pub path: String,
    /// Text the body must hold.
    pub expect: String,
    /// Text of the console line that starts the check; `None`: from the start.
    pub after: Option<String>,
}

impl HttpProbe {
    /// `GET /health on port 8080 expecting `ok``: how reports name the check.
    pub fn describe(&self) -> String {
        format!("GET {} on port {} expecting `{}`", self.path, self.port, self.expect)
    }
}

/// What became of one check in one boot.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    pub probe: HttpProbe,
    /// Whether its `after` line appeared (always, without one).
    pub started: bool,
    /// Seconds into the boot when it passed.
    pub passed_at: Option<f64>,
    /// How many times it was tried.
    pub tries: u32,
    /// The last answer or connection error, as a report shows it.
    pub last: Option<String>,
}

impl ProbeResult {
    pub fn passed(&self) -> bool {
        self.passed_at.is_some()
    }

    /// Why it did not pass, naming the check; `None` when it passed.
    pub fn failure(&self) -> Option<String> {
        if self.passed() {
            return None;
        }
        let name = self.probe.describe();
        Some(match (&self.probe.after, self.started, &self.last) {
            (Some(after), false, _) => format!("{name}: never tried, the console never showed `{after}`"),
            (_, _, None) => format!("{name}: never tried, the guest stopped first"),
            (_, _, Some(last)) => {
                let tries = if self.tries == 1 { "1 try".to_string() } else { format!("{} tries", self.tries) };
                format!("{name} failed ({tries}); the last: {last}")
            }
        })
    }
}

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// Whether it is what `probe` waits for: a 2xx status and the expected text in the body.
    fn satisfies(&self, probe: &HttpProbe) -> bool {
        (200..300).contains(&self.status) && self.body.contains(&probe.expect)
    }

    /// `status 200, body `wrong\n``, the body cut short when long.
    fn describe(&self) -> String {
        let mut body: String = self.body.chars().take(SHOWN_BODY).collect();
        if body.len() < self.body.len() {
            body.push_str("...");
        }
        format!("status {}, body `{}`", self.status, body.escape_debug())
    }
}

/// `GET path` from `127.0.0.1:port` with HTTP/1.0, each step within `timeout`. The error is a
/// short phrase for a report.
pub fn get(port: u16, path: &str, timeout: Duration) -> Result<Answer, String> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, timeout).map_err(|e| format!("cannot connect: {e}"))?;
    stream.set_read_timeout(Some(timeout)).and_then(|_| stream.set_write_timeout(Some(timeout))).ok();
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| format!("cannot send the request: {e}"))?;
    let mut raw = Vec::new();
    stream.take(MAX_ANSWER).read_to_end(&mut raw).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            format!("no answer within {} s", timeout.as_secs())
        }
        _ => format!("cannot read the answer: {e}"),
    })?;
    parse_answer(&raw)
}

/// An HTTP/1.x answer read to its end: the status line's code and the body after the headers.
pub fn parse_answer(raw: &[u8]) -> Result<Answer, String> {
    if raw.is_empty() {
        // What QEMU's user-mode network does when nothing listens on the guest's port.
        return Err("the connection closed without an answer (is anything listening?)".to_string());
    }
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, i + 4));
    let head_end = head_end.or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, i + 2)));
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let Some((head, body)) = head_end else {
        return Err(format!("an answer that is not HTTP: `{}`", text(&raw[..raw.len().min(80)]).escape_debug()));
    };
    let status_line = text(&raw[..head]).lines().next().unwrap_or_default().to_string();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("an answer that is not HTTP: `{}`", status_line.escape_debug()))?;
    Ok(Answer { status, body: text(&raw[body..]) })
}

/// A TCP port of the host's loopback address that nothing listens on now, for QEMU to forward:
/// the system picks it, and it is free again once the listener is closed. Another program could
/// take it before QEMU does; QEMU then fails to start, naming the forwarding rule.
pub fn free_port() -> crate::base::error::Result<u16> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| crate::base::error::Error::failure(format!("cannot find a free port on 127.0.0.1: {e}")))?;
    Ok(listener.port())
}

/// One check and where it stands.
struct Check {
    result: ProbeResult,
    /// The host port forwarded to the guest's.
    host_port: u16,
}

/// Runs the checks of one boot in order, as the console shows their `after` lines.
pub(super) struct Prober {
    checks: Vec<Check>,
    /// The check being tried.
    next: usize,
    last_try: Option<Instant>,
}

impl Prober {
    /// The checks of `probes`, each reaching its guest port through the host port `host_port`
    /// gives.
    pub fn new(probes: &[HttpProbe], host_port: impl Fn(u16) -> Option<u16>) -> Prober {
        let checks = probes
            .iter()
            .map(|probe| Check {
                result: ProbeResult {
                    probe: probe.clone(),
                    started: probe.after.is_none(),
                    passed_at: None,
                    tries: 0,
                    last: None,
                },
                host_port: host_port(probe.port).expect("every probed port is forwarded"),
            })
            .collect();
        Prober { checks, next: 0, last_try: None }
    }

    /// Notes console lines: a check whose `after` text one holds may start (when its turn comes).
    pub fn saw(&mut self, lines: &[Line]) {
        for check in self.checks.iter_mut().filter(|c| !c.result.started) {
            let after = check.result.probe.after.as_deref().unwrap_or_default();
            check.result.started = lines.iter().any(|l| l.text.contains(after));
        }
    }

    /// Tries the current check when it is due, with at most `remaining` for the try; `at` is the
    /// time into the boot. True once every check has passed.
    pub fn poll(&mut self, at: Duration, remaining: Duration) -> bool {
        let Some(check) = self.checks.get_mut(self.next) else { return true };
        if !check.result.started || self.last_try.is_some_and(|t| t.elapsed() < RETRY) || remaining.is_zero() {
            return false;
        }
        self.last_try = Some(Instant::now());
        let probe = &check.result.probe;
        let answer = get(check.host_port, &probe.path, TRY_TIMEOUT.min(remaining));
        check.result.tries += 1;
        let passed = answer.as_ref().is_ok_and(|a| a.satisfies(probe));
        check.result.last = Some(match answer {
            Ok(answer) => answer.describe(),
            Err(error) => error,
        });
        if passed {
            check.result.passed_at = Some(at.as_secs_f64());
            self.next += 1;
            self.last_try = None;
        }
        self.next == self.checks.len()
    }

    pub fn results(self) -> Vec<ProbeResult> {
        self.checks.into_iter().map(|c| c.result).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::transcript::normalise;

    fn probe(after: Option<&str>) -> HttpProbe {
        HttpProbe { port: 8080, path: "/health".into(), expect: "ok".into(), after: after.map(str::to_string) }
    }

    #[test]
    fn answers_are_read_as_status_and_body() {
        let answer = parse_answer(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nok\n").unwrap();
        assert_eq!(answer, Answer { status: 200, body: "ok\n".into() });
        assert!(answer.satisfies(&probe(None)));
        let missing = parse_answer(b"HTTP/1.1 404 Not Found\r\n\r\n<h1>404 ok?</h1>").unwrap();
        assert_eq!(missing.status, 404);
        assert!(!missing.satisfies(&probe(None)), "an error page holding the text is not a pass");
        assert!(parse_answer(b"").unwrap_err().contains("without an answer"));
        assert!(parse_answer(b"SSH-2.0-OpenSSH\r\n").unwrap_err().contains("not HTTP"));
        assert!(parse_answer(b"garbage\r\n\r\nok").unwrap_err().contains("not HTTP: `garbage`"));
    }

    #[test]
    fn long_bodies_are_cut_short_in_reports() {
        let answer = Answer { status: 200, body: "x".repeat(1000) };
        let shown = answer.describe();
        assert!(shown.starts_with("status 200, body `xxx") && shown.ends_with("...`"), "{shown}");
        assert!(shown.len() < 300);
        assert_eq!(Answer { status: 500, body: "a\nb".into() }.describe(), "status 500, body `a\\nb`");
    }

    #[test]
    fn a_failure_names_the_check_and_what_it_saw_last() {
        let mut result =
            ProbeResult { probe: probe(Some("web: up")), started: false, passed_at: None, tries: 0, last: None };
        assert_eq!(
            result.failure().unwrap(),
            "GET /health on port 8080 expecting `ok`: never tried, the console never showed `web: up`"
        );
        result.started = true;
        result.tries = 3;
        result.last = Some("status 200, body `wrong`".into());
        assert_eq!(
            result.failure().unwrap(),
            "GET /health on port 8080 expecting `ok` failed (3 tries); the last: status 200, body `wrong`"
        );
        result.passed_at = Some(4.0);
        assert_eq!(result.failure(), None);
    }

    #[test]
    fn a_check_waits_for_its_line_then_fetches_until_the_body_is_right() {
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let answers = ["HTTP/1.0 200 OK\r\n\r\nstarting", "HTTP/1.0 200 OK\r\n\r\nok"];
        let serving = std::thread::spawn(move || {
            for answer in answers {
                let (mut stream, _) = server.accept().unwrap();
                let mut request = [0u8; 512];
                let n = stream.read(&mut request).unwrap();
                assert!(request[..n].starts_with(b"GET /health HTTP/1.0\r\n"));
                stream.write_all(answer.as_bytes()).unwrap();
            }
        });
        let mut prober = Prober::new(&[probe(Some("web: up"))], |p| (p == 8080).then_some(port));
        let long = Duration::from_secs(30);
        assert!(!prober.poll(Duration::ZERO, long), "not before its line");
        prober.saw(&normalise(b"[    1.0] kernel: web: up\nweb: starting\n"));
        assert!(!prober.poll(Duration::ZERO, long), "a kernel line counts as a console line too");
        assert_eq!(prober.checks[0].result.tries, 1);
        std::thread::sleep(RETRY);
        assert!(prober.poll(Duration::from_secs(2), long));
        serving.join().unwrap();
        let results = prober.results();
        assert_eq!(results[0].tries, 2);
        assert_eq!(results[0].passed_at, Some(2.0));
        assert_eq!(results[0].last.as_deref(), Some("status 200, body `ok`"));
    }
}
