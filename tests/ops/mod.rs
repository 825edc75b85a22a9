//! Helpers for the operations-pack tests (`ops_*.rs`): paths in the checkout, running a tool
//! and reading YAML.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A path in the checkout.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs a tool to completion; panics with its output unless it exits 0. Returns stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(repo(""))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): ./scripts/deps.sh installs it (Debian packages)")
        });
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{program} {} failed ({}):\n{stdout}\n{stderr}",
        args.join(" "),
        output.status
    );
    stdout
}

/// A YAML file of the checkout.
pub fn yaml(path: &str) -> serde_yaml::Value {
    let text = std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every rule of a Prometheus rule file, across its groups.
pub fn rules(path: &str) -> Vec<serde_yaml::Value> {
    let file = yaml(path);
    file["groups"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{path}: no groups"))
        .iter()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .collect()
}

pub fn str_of<'a>(value: &'a serde_yaml::Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("")
}

/// The rule files of deploy/prometheus, in the order Prometheus should load them.
pub const RULE_FILES: [&str; 3] = [
    "deploy/prometheus/recording_rules.yml",
    "deploy/prometheus/funnel_stages.yml",
    "deploy/prometheus/alerts.yml",
];

/// A child process killed (and reaped) when dropped, also when a test panics.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` over a plain TCP connection (HTTP/1.0: no keep-alive, no chunking expected,
/// though a chunked answer is decoded too). `None` when nothing listens.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.get(9..12)?.parse().ok()?;
    let body_at = text.find("\r\n\r\n")? + 4;
    let headers = text[..body_at].to_ascii_lowercase();
    let body = &text[body_at..];
    if headers.contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = body;
        loop {
            let end = rest.find("\r\n")?;
            let size = usize::from_str_radix(rest[..end].trim(), 16).ok()?;
            if size == 0 {
                break;
            }
            out.push_str(&rest[end + 2..end + 2 + size]);
            rest = &rest[end + 2 + size + 2..];
        }
        return Some((status, out));
    }
    Some((status, body.to_string()))
}

/// Percent-encoding of a query-string value.
pub fn url_encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A port nothing listens on right now, on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
