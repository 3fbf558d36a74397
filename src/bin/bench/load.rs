//! The load generator: a minimal HTTP/1.1 client over raw TCP (keep-alive,
//! Content-Length and chunked bodies, `Connection: close`), so the generator's
//! own cost per request stays small next to the server's; an open loop that
//! sends on a fixed schedule and measures each latency from the *scheduled*
//! send time (a server that stalls is charged for every request that should
//! have gone out meanwhile: no coordinated omission); and a closed loop of N
//! connections for saturation throughput.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Builds the bytes of request number `i` (signed when it is called), or `None`
/// when there is nothing left to send.
pub type MakeReq = Arc<dyn Fn(usize) -> Option<Vec<u8>> + Send + Sync>;
/// Judges a response (status, body): `Err` names the kind of failure.
pub type Check = Arc<dyn Fn(u16, &[u8]) -> Result<(), String> + Send + Sync>;

/// A signed Slack-style POST, timestamped now.
pub fn signed_post(addr: SocketAddr, path: &str, secret: &str, body: &[u8]) -> Vec<u8> {
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = accessbot::slack::verify::sign(secret, &ts, body);
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: Slackbot 1.0 (+https://api.slack.com/robots)\r\n\
         Accept: application/json,*/*\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nX-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: {sig}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    pub close: bool,
}

pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn { stream, buf: Vec::with_capacity(8192) })
    }

    async fn fill(&mut self) -> io::Result<()> {
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-response"));
        }
        Ok(())
    }

    /// Writes one request and reads its whole response.
    pub async fn roundtrip(&mut self, request: &[u8]) -> io::Result<Response> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        let head_end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                break p + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).map_err(|_| bad("non-UTF-8 response head"))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.split_whitespace();
        let version = parts.next().unwrap_or_default();
        let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| bad("no status code"))?;
        let (mut len, mut chunked, mut close) = (None, false, version == "HTTP/1.0");
        for line in lines {
            let Some((k, v)) = line.split_once(':') else { continue };
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("content-length") {
                len = Some(v.parse::<usize>().map_err(|_| bad("bad content-length"))?);
            } else if k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            } else if k.eq_ignore_ascii_case("connection") {
                close = v.eq_ignore_ascii_case("close");
            }
        }
        let body = if chunked {
            let mut pos = head_end;
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(p) = find(&self.buf[pos..], b"\r\n") {
                        break pos + p;
                    }
                    self.fill().await?;
                };
                let size_text = std::str::from_utf8(&self.buf[pos..line_end]).map_err(|_| bad("bad chunk size"))?;
                let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| bad("bad chunk size"))?;
                pos = line_end + 2;
                while self.buf.len() < pos + size + 2 {
                    self.fill().await?;
                }
                if size == 0 {
                    break body;
                }
                body.extend_from_slice(&self.buf[pos..pos + size]);
                pos += size + 2;
            }
        } else if let Some(n) = len {
            while self.buf.len() < head_end + n {
                self.fill().await?;
            }
            self.buf[head_end..head_end + n].to_vec()
        } else if status == 204 || status == 304 || (100..200).contains(&status) {
            Vec::new()
        } else {
            // No length: the body runs to the end of the connection.
            close = true;
            while self.stream.read_buf(&mut self.buf).await? > 0 {}
            self.buf[head_end..].to_vec()
        };
        Ok(Response { status, body, close })
    }
}

/// Idle keep-alive connections to one address.
#[derive(Clone)]
pub struct Pool {
    addr: SocketAddr,
    idle: Arc<Mutex<Vec<Conn>>>,
    opened: Arc<AtomicUsize>,
}

impl Pool {
    pub fn new(addr: SocketAddr) -> Pool {
        Pool { addr, idle: Arc::new(Mutex::new(Vec::new())), opened: Arc::new(AtomicUsize::new(0)) }
    }

    fn take(&self) -> Option<Conn> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn give(&self, c: Conn) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(c);
    }

    pub fn opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }

    async fn open(&self) -> io::Result<Conn> {
        self.opened.fetch_add(1, Ordering::Relaxed);
        Conn::connect(self.addr).await
    }

    /// One request on an idle connection (or a new one). A reused connection the
    /// peer had closed while idle is retried once on a fresh one.
    pub async fn send(&self, request: &[u8]) -> io::Result<Response> {
        let (mut conn, reused) = match self.take() {
            Some(c) => (c, true),
            None => (self.open().await?, false),
        };
        let res = match conn.roundtrip(request).await {
            Ok(r) => r,
            Err(_) if reused => {
                conn = self.open().await?;
                conn.roundtrip(request).await?
            }
            Err(e) => return Err(e),
        };
        if !res.close {
            self.give(conn);
        }
        Ok(res)
    }
}

/// What one run measured.
#[derive(Default)]
pub struct Outcome {
    /// Latencies of answered requests: from the scheduled send time (open loop) or
    /// from the send (closed loop) to the complete response.
    pub latencies: Vec<Duration>,
    /// Open loop: how late the generator actually sent, behind schedule.
    pub send_lag: Vec<Duration>,
    pub ok: usize,
    /// Failures by kind (HTTP status, a reply that is not the expected one, I/O errors).
    pub errors: BTreeMap<String, usize>,
    /// From the first scheduled send to the last response.
    pub wall: Duration,
    pub sent: usize,
    pub connections: usize,
}

impl Outcome {
    pub fn achieved(&self) -> f64 {
        self.ok as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub fn error_count(&self) -> usize {
        self.errors.values().sum()
    }

    pub fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return "-".into();
        }
        self.errors.iter().map(|(k, v)| format!("{v}× {k}")).collect::<Vec<_>>().join(", ")
    }

    /// Nearest-rank percentile of the latencies (`q` in 0..=1).
    pub fn pct(&self, q: f64) -> Duration {
        pct(&self.latencies, q)
    }

    pub fn lag(&self, q: f64) -> Duration {
        pct(&self.send_lag, q)
    }

    fn finish(&mut self) {
        self.latencies.sort_unstable();
        self.send_lag.sort_unstable();
    }
}

/// Nearest-rank percentile of a sorted slice.
pub fn pct(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

struct Sample {
    latency: Option<Duration>,
    lag: Duration,
    result: Result<(), String>,
    done: Instant,
}

fn judge(res: io::Result<Response>, check: &Check) -> Result<(), String> {
    match res {
        Ok(r) => check(r.status, &r.body),
        Err(e) => Err(format!("io: {}", e.kind())),
    }
}

/// Sends `count` requests at `rate` per second on a fixed schedule, each on its
/// own task (at most `max_in_flight` at once; a request waiting for a slot is
/// still timed from its scheduled send time). Requests unanswered `give_up`
/// after their scheduled time count as errors.
pub async fn open_loop(
    pool: &Pool,
    rate: f64,
    count: usize,
    make: MakeReq,
    check: Check,
    max_in_flight: usize,
    give_up: Duration,
) -> Outcome {
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let start = Instant::now() + Duration::from_millis(20);
    let mut tasks = Vec::with_capacity(count);
    let opened_before = pool.opened();
    for i in 0..count {
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(at.into()).await;
        let (pool, make, check, slots) = (pool.clone(), make.clone(), check.clone(), slots.clone());
        tasks.push(tokio::spawn(async move {
            let work = async {
                let _slot = slots.acquire_owned().await.ok();
                let sent = Instant::now();
                let Some(request) = make(i) else {
                    return (sent, Err("nothing left to send".to_string()), false);
                };
                let r = judge(pool.send(&request).await, &check);
                (sent, r, true)
            };
            match tokio::time::timeout_at((at + give_up).into(), work).await {
                Ok((sent, result, answered)) => {
                    let done = Instant::now();
                    Sample {
                        latency: answered.then(|| done - at),
                        lag: sent.saturating_duration_since(at),
                        result,
                        done,
                    }
                }
                Err(_) => Sample {
                    latency: None,
                    lag: Duration::ZERO,
                    result: Err(format!("no answer within {give_up:?}")),
                    done: Instant::now(),
                },
            }
        }));
    }
    let mut out = Outcome { sent: count, ..Outcome::default() };
    let mut last = start;
    for t in tasks {
        let Ok(s) = t.await else {
            *out.errors.entry("task panicked".into()).or_default() += 1;
            continue;
        };
        last = last.max(s.done);
        out.send_lag.push(s.lag);
        if let Some(l) = s.latency {
            out.latencies.push(l);
        }
        match s.result {
            Ok(()) => out.ok += 1,
            Err(e) => *out.errors.entry(e).or_default() += 1,
        }
    }
    out.wall = last.saturating_duration_since(start);
    out.connections = pool.opened() - opened_before;
    out.finish();
    out
}

/// `connections` loops of send → wait for the answer → send, for `duration` (or
/// until `make` has nothing left). Latency is each request's own round trip.
pub async fn closed_loop(pool: &Pool, connections: usize, duration: Duration, make: MakeReq, check: Check) -> Outcome {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let opened_before = pool.opened();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (pool, make, check, next) = (pool.clone(), make.clone(), check.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(request) = make(i) else { break };
                let t0 = Instant::now();
                let r = pool.send(&request).await;
                let done = Instant::now();
                let answered = r.is_ok();
                let result = judge(r, &check);
                samples.push(Sample { latency: answered.then(|| done - t0), lag: Duration::ZERO, result, done });
            }
            samples
        }));
    }
    let mut out = Outcome::default();
    let mut last = start;
    for t in tasks {
        let Ok(samples) = t.await else {
            *out.errors.entry("task panicked".into()).or_default() += 1;
            continue;
        };
        for s in samples {
            out.sent += 1;
            last = last.max(s.done);
            if let Some(l) = s.latency {
                out.latencies.push(l);
            }
            match s.result {
                Ok(()) => out.ok += 1,
                Err(e) => *out.errors.entry(e).or_default() += 1,
            }
        }
    }
    out.wall = last.saturating_duration_since(start);
    out.connections = pool.opened() - opened_before;
    out.finish();
    out
}
