//! `spiral run` as a separate process, and what tests around it share: routing generated
//! lines to topics the way producers key them, and `spiral replay` as the oracle.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `spiral run` in its own process, killed if the test fails before stopping it.
pub struct Running {
    child: Option<Child>,
}

impl Running {
    /// Starts `spiral run` and waits until it is ready.
    pub fn start(config: &Path, addr: SocketAddr) -> Running {
        let running = Running::spawn(config, addr, "warn");
        running.wait_ready(addr, Duration::from_secs(60));
        running
    }

    /// Starts `spiral run` without waiting; logs at `log` level to stderr.
    pub fn spawn(config: &Path, addr: SocketAddr, log: &str) -> Running {
        let child = Command::new(env!("CARGO_BIN_EXE_spiral"))
            .args(["run", "--config"])
            .arg(config)
            .env("SPIRAL_HTTP_LISTEN", addr.to_string())
            .env("RUST_LOG", log)
            .stdin(Stdio::null())
            .spawn()
            .expect("spiral run starts");
        Running { child: Some(child) }
    }

    pub fn wait_ready(&self, addr: SocketAddr, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if std::net::TcpStream::connect(addr).is_ok()
                && super::http_get(addr, "/readyz").0 == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "spiral run never became ready");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("wait").is_none())
    }

    /// `kill -9`: no drain, no checkpoint, no commit.
    pub fn kill9(mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "spiral run did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Keyed messages for one topic.
pub type Keyed = Vec<(Option<String>, Vec<u8>)>;

/// Identify events go to the identity topic, everything else (broken lines too) to the online
/// topic, keyed by whatever id the line carries first, as producers do.
pub fn route(lines: &[Vec<u8>]) -> (Keyed, Keyed) {
    let (mut online, mut identity) = (Vec::new(), Vec::new());
    for line in lines {
        let value: Option<serde_json::Value> = serde_json::from_slice(line).ok();
        let key = value.as_ref().and_then(|v| {
            ["anonymous_id", "contact_id", "account_id"]
                .iter()
                .find_map(|k| v.get(*k)?.as_str().map(str::to_string))
        });
        let is_identify = value
            .as_ref()
            .is_some_and(|v| v.get("type").and_then(|t| t.as_str()) == Some("identify"));
        if is_identify {
            identity.push((key, line.clone()));
        } else {
            online.push((key, line.clone()));
        }
    }
    (online, identity)
}

pub fn run_replay(config: &Path, input: &Path, watermark: &str, dir: &Path) -> serde_json::Value {
    let summary = dir.join("replay.json");
    let out = Command::new(env!("CARGO_BIN_EXE_spiral"))
        .args(["replay", "-q", "--config"])
        .arg(config)
        .args(["--watermark", watermark, "--summary"])
        .arg(&summary)
        .arg(input)
        .output()
        .expect("spiral replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap()
}

pub fn without_late(mut v: serde_json::Value) -> serde_json::Value {
    v["events"]["late"] = 0.into();
    v
}

/// `spiral replay` of `payloads` (written one a line to `messages.jsonl` in `dir`) with
/// outcomes decided at `watermark`: the summary, as JSON.
pub fn replay_payloads<'a>(
    config: &Path,
    payloads: impl IntoIterator<Item = &'a [u8]>,
    watermark: &str,
    dir: &Path,
) -> serde_json::Value {
    use std::io::Write;
    let input = dir.join("messages.jsonl");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    for payload in payloads {
        file.write_all(payload).unwrap();
        file.write_all(b"\n").unwrap();
    }
    file.into_inner().unwrap().sync_all().unwrap();
    run_replay(config, &input, watermark, dir)
}

/// A small deterministic generator for stop times (no dependency on the run's timing).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next_ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        lo + (self.0 >> 33) % (hi - lo)
    }
}
