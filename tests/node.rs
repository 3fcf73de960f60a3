//! `hgpose run` end to end on this machine (no camera needed): a folder source through the
//! threads to JSON lines, UDP on loopback, the HTTP endpoint and PNG snapshots; clean stop on
//! SIGTERM; and clear errors for bad board files and missing devices. The same node on real
//! devices is tests/hardware.rs, inside the test-bed VM.

mod common;

use common::*;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

fn default_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default/hourglass.onnx")
}

fn write_board(dir: &Path, body: &str) -> PathBuf {
    let board = dir.join("board.toml");
    std::fs::write(&board, body).unwrap();
    board
}

fn run(board: &Path, extra: &[&str]) -> Output {
    hgpose_command()
        .args(["run", "--board"])
        .arg(board)
        .args(["--stats-every", "0"])
        .args(extra)
        .env("HGPOSE_LOG", "warn")
        .output()
        .expect("run hgpose")
}

fn samples_folder(dir: &Path, n: usize) -> PathBuf {
    let frames = dir.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    for i in 0..n {
        std::fs::copy(
            sample("astronaut.jpg"),
            frames.join(format!("frame{i:03}.jpg")),
        )
        .unwrap();
    }
    frames
}

#[test]
fn a_folder_runs_through_every_output() {
    let scratch_dir = scratch("node-outputs");
    let dir = scratch_dir.path();
    let frames = samples_folder(dir, 3);
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let json = dir.join("poses.jsonl");
    let view = dir.join("view.png");
    let board = write_board(
        dir,
        &format!(
            r#"
[source]
kind = "files"
path = "{frames}"

[model]
path = "{model}"
threads = 2

[display]
kind = "png"
path = "{view}"
width = 320
height = 240

[outputs]
json = "{json}"
udp = "{udp}"
"#,
            frames = frames.display(),
            model = default_model().display(),
            view = view.display(),
            json = json.display(),
            udp = receiver.local_addr().unwrap()
        ),
    );
    let summary = dir.join("summary.json");
    let out = run(&board, &["--summary", summary.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Recorded sources lose no frame: one record per image, in order.
    let text = std::fs::read_to_string(&json).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["sequence"], i as u64);
        assert_eq!(r["keypoints"].as_array().unwrap().len(), 16);
        assert_eq!(r["width"], 512);
        assert!(r["latency_ms"].as_f64().unwrap() > 0.0);
        assert!(r["timestamp"].as_f64().unwrap() > 1.7e9);
        assert!(r["source"]
            .as_str()
            .unwrap()
            .ends_with(&format!("frame{i:03}.jpg")));
    }
    // The same records arrived over UDP, one datagram each.
    let mut buf = vec![0u8; 65536];
    let n = receiver.recv(&mut buf).unwrap();
    let first: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
    assert_eq!(first, records[0]);
    // The view was drawn at the display's size.
    let png = image::open(&view).unwrap();
    assert_eq!((png.width(), png.height()), (320, 240));
    // The summary accounts for every frame.
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["frames_emitted"], 3);
    assert_eq!(s["frames_captured"], 3);
    assert_eq!(s["frames_skipped"], 0);
    assert_eq!(s["threads"], 2);
    assert!(s["max_waiting"].as_u64().unwrap() <= 1);
    assert!(s["peak_rss_kib"].as_u64().unwrap() > 0);
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = Vec::new();
    stream.read_to_end(&mut body).ok()?;
    Some(String::from_utf8_lossy(&body).into_owned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `hgpose run --board BOARD --summary SUMMARY EXTRA...` in the background, quiet but for warnings.
fn start_node(board: &Path, summary: &Path, extra: &[&std::ffi::OsStr]) -> Child {
    hgpose_command()
        .args(["run", "--stats-every", "0", "--board"])
        .arg(board)
        .arg("--summary")
        .arg(summary)
        .args(extra)
        .env("HGPOSE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Sends `signal` to a node started by [`start_node`], checks it exits 0, and returns its summary.
fn stop_node(mut child: Child, signal: i32, summary: &Path) -> serde_json::Value {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, signal) };
    let status = wait_for_exit(&mut child, Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    serde_json::from_str(&std::fs::read_to_string(summary).unwrap()).unwrap()
}

fn wait_for_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "hgpose did not stop in {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_looping_node_serves_http_and_stops_cleanly_on_sigterm() {
    let scratch_dir = scratch("node-http");
    let dir = scratch_dir.path();
    let frames = samples_folder(dir, 1);
    let addr = format!("127.0.0.1:{}", free_port());
    let board = write_board(
        dir,
        &format!(
            r#"
[source]
kind = "files"
path = "{frames}"
loop = true
fps = 20

[model]
path = "{model}"

[outputs]
json = "none"
http = "{addr}"
"#,
            frames = frames.display(),
            model = default_model().display()
        ),
    );
    let summary = dir.join("summary.json");
    let mut child = start_node(&board, &summary, &[]);
    // The latest record appears on /keypoints once the first frame is through (slow under qemu).
    let deadline = Instant::now() + Duration::from_secs(120);
    let record = loop {
        if let Some(response) = http_get(&addr, "/keypoints") {
            if response.starts_with("HTTP/1.1 200") {
                let body = response.split("\r\n\r\n").nth(1).unwrap().to_string();
                break serde_json::from_str::<serde_json::Value>(&body).unwrap();
            }
        }
        assert!(Instant::now() < deadline, "no record on /keypoints");
        assert!(child.try_wait().unwrap().is_none(), "hgpose exited early");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(record["keypoints"].as_array().unwrap().len(), 16);
    let health = http_get(&addr, "/healthz").unwrap();
    assert!(health.contains("ok"), "{health}");

    let s = stop_node(child, libc::SIGTERM, &summary);
    assert!(s["frames_emitted"].as_u64().unwrap() >= 1);
    assert!(
        http_get(&addr, "/healthz").is_none(),
        "the HTTP port is still open after exit"
    );
}

fn assert_fails_with(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks {n:?}: {stderr}");
    }
}

#[test]
fn board_mistakes_are_named_by_key() {
    let scratch_dir = scratch("node-bad-board");
    let dir = scratch_dir.path();
    let board = write_board(
        dir,
        "[source]\nkind = \"files\"\npath = \"x\"\n[display]\nkind = \"framebuffer\"\ndevcie = \"/dev/fb1\"\n",
    );
    assert_fails_with(
        &run(&board, &["--check"]),
        &["board.toml", "display", "devcie"],
    );

    let board = write_board(
        dir,
        "[source]\nkind = \"files\"\npath = \"x\"\n[[rules]]\nname = \"r\"\nline = 3\nwhen = { kind = \"joint_in_zone\", joint = \"l_elbow\", zone = [0.5, 0.0, 0.2, 1.0] }\n",
    );
    assert_fails_with(&run(&board, &["--check"]), &["rules[0].when.zone"]);

    assert_fails_with(
        &run(&dir.join("missing.toml"), &["--check"]),
        &["missing.toml"],
    );
}

#[test]
fn missing_devices_are_named_with_what_to_do() {
    let scratch_dir = scratch("node-missing-devices");
    let dir = scratch_dir.path();
    let frames = samples_folder(dir, 1);
    let model = default_model();
    let base = format!(
        "[source]\nkind = \"files\"\npath = \"{}\"\n[model]\npath = \"{}\"\n",
        frames.display(),
        model.display()
    );
    let board = write_board(
        dir,
        &format!("{base}[display]\nkind = \"framebuffer\"\ndevice = \"/dev/fb-none\"\n"),
    );
    assert_fails_with(&run(&board, &[]), &["/dev/fb-none", "hgpose doctor"]);

    let board = write_board(
        dir,
        &format!("{base}[gpio]\nchip = \"/dev/gpiochip-none\"\n[[rules]]\nname = \"r\"\nline = 3\nwhen = {{ kind = \"person_present\" }}\n"),
    );
    assert_fails_with(&run(&board, &[]), &["/dev/gpiochip-none"]);

    let board = write_board(dir, &base);
    assert_fails_with(
        &run(&board, &["--source", "/dev/video-none"]),
        &["/dev/video-none"],
    );
    assert_fails_with(
        &run(
            &board,
            &["--model", dir.join("nope.onnx").to_str().unwrap()],
        ),
        &["nope.onnx"],
    );
}

/// SIGHUP (a closing ssh session) stops the node through its shutdown path, as SIGTERM does: it
/// exits 0 and writes its summary.
#[test]
fn sighup_stops_the_node_cleanly() {
    let scratch_dir = scratch("node-sighup");
    let dir = scratch_dir.path();
    let (records, summary) = (dir.join("records.jsonl"), dir.join("summary.json"));
    let board = sample_board(dir);
    let mut child = start_node(
        &board,
        &summary,
        &["--loop".as_ref(), "--json".as_ref(), records.as_os_str()],
    );
    // Records flow only after the handlers are in place (slow under qemu).
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::metadata(&records).map_or(0, |m| m.len()) == 0 {
        assert!(Instant::now() < deadline, "no record written");
        assert!(child.try_wait().unwrap().is_none(), "hgpose exited early");
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = stop_node(child, libc::SIGHUP, &summary);
    assert!(s["frames_emitted"].as_u64().unwrap() >= 1, "{s}");
}
