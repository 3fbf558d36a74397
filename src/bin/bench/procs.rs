//! Child processes (the server, the ceiling, the Bolt peer), CPU pinning with
//! `taskset`, and what /proc says about memory and CPU time.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub fn taskset_available() -> bool {
    Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Pins every thread of this process (and so every thread it starts later) to `cpu`.
pub fn pin_self(cpu: usize) -> anyhow::Result<()> {
    let out = Command::new("taskset")
        .args(["-a", "-cp", &cpu.to_string(), &std::process::id().to_string()])
        .output()
        .context("running taskset")?;
    if !out.status.success() {
        bail!("taskset -a -cp {cpu} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// A child process, killed when dropped.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `program args…` with exactly `env` (plus PATH and HOME), pinned to CPU 0 when `pin`;
    /// stdout and stderr go to `log`. `taskset` execs the program, so the pid is the program's.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        pin: bool,
        log: &Path,
    ) -> anyhow::Result<Proc> {
        let mut cmd = if pin {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        cmd.args(args).env_clear();
        for k in ["PATH", "HOME", "LANG"] {
            if let Ok(v) = std::env::var(k) {
                cmd.env(k, v);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdout(file.try_clone()?).stderr(file).stdin(Stdio::null());
        let child = cmd.spawn().with_context(|| format!("starting {}", program.display()))?;
        Ok(Proc { name: name.to_string(), child, log: log.to_path_buf() })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of the log (for errors).
    pub fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Fails (with the log) if the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}); last lines of {}:\n{}", self.name, self.log.display(), self.tail());
        }
        Ok(())
    }

    /// Waits until `addr` accepts TCP connections (and, with `probe`, answers it 2xx).
    pub async fn wait_ready(&mut self, addr: std::net::SocketAddr, probe: Option<&str>) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            self.check_alive()?;
            let up = match probe {
                Some(path) => {
                    http.get(format!("http://{addr}{path}")).send().await.is_ok_and(|r| r.status().is_success())
                }
                None => tokio::net::TcpStream::connect(addr).await.is_ok(),
            };
            if up {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("{} did not become ready within 60 s; last lines of {}:\n{}", self.name, self.log.display(), self.tail())
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!("warning: {} did not stop within {grace:?} of SIGTERM; killing it", self.name);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Clock ticks per second of /proc/<pid>/stat's CPU times.
fn clk_tck() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// (ppid, user + system CPU seconds) of a process.
fn stat(pid: u32) -> Option<(u32, f64)> {
    stat_named(pid).map(|(_, ppid, t)| (ppid, t))
}

/// (command name, ppid, user + system CPU seconds) of a process.
fn stat_named(pid: u32) -> Option<(String, u32, f64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields after it are fixed.
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let name = s.get(open + 1..close)?.to_string();
    let rest = s.get(close + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ppid = f.get(1)?.parse().ok()?;
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((name, ppid, (utime + stime) / clk_tck()))
}

/// CPU seconds used so far by every process named `name` (e.g. the PostgreSQL server's).
pub fn cpu_seconds_named(name: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0.0 };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter_map(stat_named)
        .filter(|(n, _, _)| n == name)
        .map(|(_, _, t)| t)
        .sum()
}

/// CPU seconds used so far by `pid` and its direct children (gunicorn's workers).
pub fn cpu_seconds(pid: u32) -> f64 {
    let mut total = stat(pid).map(|(_, t)| t).unwrap_or(0.0);
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            if let Some((ppid, t)) = stat(child) {
                if ppid == pid {
                    total += t;
                }
            }
        }
    }
    total
}

/// Context switches (voluntary and not) of every live thread of `pid` so far.
pub fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    let mut total = 0;
    for t in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(t.path().join("status")) else { continue };
        for line in status.lines() {
            if line.starts_with("voluntary_ctxt_switches:") || line.starts_with("nonvoluntary_ctxt_switches:") {
                total += line.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            }
        }
    }
    total
}

/// CPU seconds used so far by this process.
pub fn own_cpu_seconds() -> f64 {
    stat(std::process::id()).map(|(_, t)| t).unwrap_or(0.0)
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A scratch directory for configs, logs and the peer's database; removed when dropped
/// unless `BENCH_KEEP` is set.
pub struct WorkDir(pub PathBuf);

impl WorkDir {
    pub fn new(tag: &str) -> anyhow::Result<WorkDir> {
        let dir = std::env::temp_dir().join(format!("accessbot_bench_{tag}_{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        Ok(WorkDir(dir))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::env::var_os("BENCH_KEEP").is_some() {
            eprintln!("kept {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// `perf record` of one process for a while (CPU-clock samples with DWARF call graphs).
pub struct Perf {
    child: Child,
    pub data: PathBuf,
}

impl Perf {
    pub fn start(pid: u32, data: &Path, seconds: f64) -> anyhow::Result<Perf> {
        let child = Command::new("perf")
            .args(["record", "-q", "-e", "cpu-clock", "-F", "499", "--call-graph", "dwarf,16384", "-p"])
            .arg(pid.to_string())
            .arg("-o")
            .arg(data)
            .args(["--", "sleep", &format!("{seconds:.1}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting perf (apt-get install linux-perf)")?;
        Ok(Perf { child, data: data.to_path_buf() })
    }

    /// Waits for the recording, then summarizes it: the top `n` symbols by self time
    /// and by inclusive time.
    pub async fn finish(mut self, n: usize) -> String {
        while matches!(self.child.try_wait(), Ok(None)) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let report = |children: bool| -> String {
            let mut cmd = Command::new("perf");
            cmd.args(["report", "--stdio", "-q", "-g", "none", "--sort", "sym", "--percent-limit", "0.5", "-i"])
                .arg(&self.data)
                .arg(if children { "--children" } else { "--no-children" });
            let out = cmd.stderr(Stdio::null()).output().map(|o| String::from_utf8_lossy(&o.stdout).to_string());
            out.unwrap_or_default()
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .take(n)
                .map(|l| format!("      {}", l.trim_end()))
                .collect::<Vec<_>>()
                .join("\n")
        };
        format!(
            "   perf data: {}\n   top symbols by self time:\n{}\n   top symbols by inclusive time (children):\n{}",
            self.data.display(),
            report(false),
            report(true)
        )
    }
}
