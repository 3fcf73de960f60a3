//! Tests on real (virtual) devices under a real Linux kernel: they run inside the test bed VM
//! (`.ci/testbed/run-hardware x86_64|aarch64`), whose `/init` loads vivid (camera), bochs
//! (framebuffer) and gpio-sim (GPIO lines) and describes them in `HGPOSE_HW_*` variables.
//! Outside the VM (`HGPOSE_HW` unset) every test says it was skipped and passes.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

/// The test bed's description of one device, or a failure naming the variable the VM did not set.
fn hw_path(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!("{var} is not set: the test bed's init could not bring that device up (see its 'testbed: warning' lines)"),
    }
}

/// True inside the VM; outside it, prints why the test did nothing.
fn in_test_bed(test: &str) -> bool {
    if std::env::var_os("HGPOSE_HW").is_some() {
        return true;
    }
    eprintln!(
        "SKIPPED: hardware tests run inside the VM: .ci/testbed/run-hardware <arch> ({test})"
    );
    false
}

fn assert_char_device(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        meta.file_type().is_char_device(),
        "{} is not a character device",
        path.display()
    );
}

#[test]
fn devices_exist_in_vm() {
    if !in_test_bed("devices_exist_in_vm") {
        return;
    }

    let video = hw_path("HGPOSE_HW_VIDEO");
    assert_char_device(&video);
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(&video)
        .unwrap_or_else(|e| panic!("cannot open the vivid camera {}: {e}", video.display()));

    let fb = hw_path("HGPOSE_HW_FB");
    assert_char_device(&fb);
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fb)
        .unwrap_or_else(|e| panic!("cannot open the bochs framebuffer {}: {e}", fb.display()));

    let chip = hw_path("HGPOSE_HW_GPIOCHIP");
    assert_char_device(&chip);
    OpenOptions::new()
        .read(true)
        .open(&chip)
        .unwrap_or_else(|e| panic!("cannot open the gpio-sim chip {}: {e}", chip.display()));

    // gpio-sim exposes one sysfs directory per simulated line: the bank must have all 8.
    let sim = hw_path("HGPOSE_HW_GPIOSIM_SYSFS");
    for line in 0..8 {
        let value = sim.join(format!("sim_gpio{line}/value"));
        assert!(value.exists(), "{} is missing", value.display());
    }

    // run-hardware passes the hgpose binary in; a plain vm-run may not.
    if let Some(bin) = std::env::var_os("HGPOSE_BIN") {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "HGPOSE_BIN={} is not in the VM",
            bin.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The node's parts on the real devices.

use hgpose::capture::camera::{Camera, CameraConfig};
use hgpose::capture::convert::PixelFormat;
use hgpose::capture::trigger::{Edge, TriggerConfig, TriggerLine};
use hgpose::capture::FrameSource;
use hgpose::model::JointSet;
use hgpose::outputs::display::framebuffer::Framebuffer;
use hgpose::outputs::display::Display;
use hgpose::outputs::gpio::{GpioOutputs, OutputLineSpec};
use hgpose::outputs::rules::{RuleConfig, RuleEngine};
use hgpose::outputs::{Hud, ViewRenderer};
use hgpose::pose::{Keypoint, Pose};
use std::time::{Duration, Instant};

fn chip() -> String {
    hw_path("HGPOSE_HW_GPIOCHIP").display().to_string()
}

/// The simulated line's level as the outside world sees it (what hgpose drove).
fn sim_value(line: u32) -> String {
    let p = hw_path("HGPOSE_HW_GPIOSIM_SYSFS").join(format!("sim_gpio{line}/value"));
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

/// Drives an input line from outside, as a button or a controller would.
fn sim_pull(line: u32, up: bool) {
    let p = hw_path("HGPOSE_HW_GPIOSIM_SYSFS").join(format!("sim_gpio{line}/pull"));
    std::fs::write(&p, if up { "pull-up" } else { "pull-down" })
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
}

/// vivid's default picture is 75% colour bars: white, yellow, cyan, green, magenta, red, blue,
/// black, left to right. Which channels are lit in each bar says the conversion put the right
/// colours in the right places (swapped chroma or channels would show here).
const BARS: [[bool; 3]; 8] = [
    [true, true, true],
    [true, true, false],
    [false, true, true],
    [false, true, false],
    [true, false, true],
    [true, false, false],
    [false, false, true],
    [false, false, false],
];

fn check_colour_bars(image: &image::RgbImage, format: PixelFormat) {
    let (w, h) = image.dimensions();
    for (i, lit) in BARS.iter().enumerate() {
        let x = (w as usize * (2 * i + 1) / 16) as u32;
        let p = image.get_pixel(x, h * 3 / 4).0;
        for c in 0..3 {
            let ok = if lit[c] { p[c] > 140 } else { p[c] < 60 };
            assert!(
                ok,
                "{format}: bar {i} at x={x} is {p:?}, expected lit channels {lit:?}"
            );
        }
    }
}

#[test]
fn vivid_frames_convert_right_in_every_format() {
    if !in_test_bed("vivid_frames_convert_right_in_every_format") {
        return;
    }
    let device = hw_path("HGPOSE_HW_VIDEO");
    let mut tested = Vec::new();
    for format in [
        PixelFormat::Yuyv,
        PixelFormat::Uyvy,
        PixelFormat::Nv12,
        PixelFormat::Rgb24,
        PixelFormat::Bgr24,
    ] {
        let config = CameraConfig {
            device: device.clone(),
            width: 640,
            height: 480,
            format: Some(format),
            ..Default::default()
        };
        let mut camera = Camera::open(&config).unwrap_or_else(|e| panic!("{format}: {e}"));
        if camera.format() != format {
            eprintln!("vivid did not offer {format}; got {}", camera.format());
            continue;
        }
        let mut last = None;
        for _ in 0..3 {
            last = camera
                .next_frame()
                .unwrap_or_else(|e| panic!("{format}: {e}"));
        }
        let frame = last.expect("a camera never ends");
        assert_eq!(frame.image.dimensions(), camera.size());
        check_colour_bars(&frame.image, format);
        tested.push(format);
    }
    assert!(
        tested.contains(&PixelFormat::Yuyv) && tested.len() >= 3,
        "too few formats tested: {tested:?}"
    );
    eprintln!("vivid colour bars right in {tested:?}");
}

#[test]
fn framebuffer_shows_the_view_and_reads_it_back() {
    if !in_test_bed("framebuffer_shows_the_view_and_reads_it_back") {
        return;
    }
    let mut fb = Framebuffer::open(&hw_path("HGPOSE_HW_FB")).unwrap();
    let (w, h) = fb.size();
    assert!(w >= 640 && h >= 480, "{}", fb.describe());
    let frame = image::RgbImage::from_fn(320, 240, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let joints = JointSet::mpii16();
    let pose = Pose {
        keypoints: joints
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| Keypoint {
                name: n.clone(),
                x: 60.0 + 12.0 * i as f32,
                y: 40.0 + 10.0 * i as f32,
                confidence: 0.9,
            })
            .collect(),
    };
    let mut renderer = ViewRenderer::new(w, h, 0.1);
    let mut view = image::RgbImage::new(1, 1);
    renderer
        .render(&frame, Some(&pose), &joints, &Hud::default(), &mut view)
        .unwrap();
    fb.show(&view).unwrap();
    let back = fb.read_rgb().unwrap();
    assert_eq!(back.dimensions(), view.dimensions());
    let exact = fb.layout().bytes_per_pixel >= 3;
    let mismatched = back
        .pixels()
        .zip(view.pixels())
        .filter(|(a, b)| {
            a.0.iter()
                .zip(b.0.iter())
                .any(|(x, y)| (*x as i32 - *y as i32).abs() > if exact { 0 } else { 8 })
        })
        .count();
    assert_eq!(mismatched, 0, "{} read back differently", fb.describe());
    eprintln!("{}: view written and read back identical", fb.describe());
}

fn always_present_rule(line: u32, active_low: bool) -> RuleConfig {
    toml::from_str(&format!(
        "name = \"present\"\nline = {line}\nactive_low = {active_low}\n\
         when = {{ kind = \"person_present\", min_confidence = 0.5, min_joints = 1 }}"
    ))
    .unwrap()
}

fn confident_pose() -> Pose {
    Pose {
        keypoints: JointSet::mpii16()
            .names
            .iter()
            .map(|n| Keypoint {
                name: n.clone(),
                x: 10.0,
                y: 10.0,
                confidence: 0.9,
            })
            .collect(),
    }
}

#[test]
fn gpio_lines_follow_the_rules() {
    if !in_test_bed("gpio_lines_follow_the_rules") {
        return;
    }
    let chip = chip();
    let names = JointSet::mpii16().names;
    for (line, active_low) in [(2u32, false), (3, true)] {
        let mut rules =
            RuleEngine::new(vec![always_present_rule(line, active_low)], &names).unwrap();
        let idle = rules.idle_commands();
        let specs: Vec<OutputLineSpec> = idle
            .iter()
            .map(|c| OutputLineSpec {
                chip: chip.clone(),
                line: c.line,
                initial_level: c.level,
            })
            .collect();
        let mut gpio = GpioOutputs::open(&specs, &chip).unwrap();
        let (on, off) = if active_low { ("0", "1") } else { ("1", "0") };
        assert_eq!(sim_value(line), off, "line {line} idle");
        let fired = rules.update(Some(&confident_pose()), 100, 100, Duration::from_millis(10));
        gpio.apply(&fired).unwrap();
        assert_eq!(sim_value(line), on, "line {line} after the rule fired");
        let cleared = rules.update(None, 100, 100, Duration::from_millis(20));
        gpio.apply(&cleared).unwrap();
        assert_eq!(sim_value(line), off, "line {line} after the rule cleared");
    }
}

#[test]
fn trigger_edges_are_seen_once_per_press() {
    if !in_test_bed("trigger_edges_are_seen_once_per_press") {
        return;
    }
    let line = 5;
    sim_pull(line, false);
    let config = TriggerConfig {
        chip: Some(chip()),
        line,
        edge: Edge::Rising,
        debounce_ms: 200,
    };
    let mut trigger = TriggerLine::open(&config, "/dev/null").unwrap();
    assert!(
        trigger.wait(Duration::from_millis(100)).unwrap().is_none(),
        "no edge yet"
    );
    sim_pull(line, true);
    let first = trigger
        .wait(Duration::from_secs(5))
        .unwrap()
        .expect("the rising edge");
    assert!(first.rising && first.count == 1);
    // A bounce: down and up again at once, inside the debounce time.
    sim_pull(line, false);
    sim_pull(line, true);
    assert!(
        trigger.wait(Duration::from_millis(100)).unwrap().is_none(),
        "a bounce within 200 ms must not trigger"
    );
    std::thread::sleep(Duration::from_millis(250));
    sim_pull(line, false);
    sim_pull(line, true);
    let second = trigger
        .wait(Duration::from_secs(5))
        .unwrap()
        .expect("a second press after the debounce time");
    assert_eq!(second.count, 2);
    assert!(second.kernel_timestamp_ns > first.kernel_timestamp_ns);
    sim_pull(line, false);
}

/// The whole node as a user runs it: `hgpose run` on the vivid camera, drawing on the
/// framebuffer, sampling when the test presses the trigger line, driving a rule's line and
/// writing JSON lines, then stopping cleanly on SIGTERM with the rule's line back at idle.
#[test]
fn node_answers_a_trigger_with_a_pose_on_every_output() {
    if !in_test_bed("node_answers_a_trigger_with_a_pose_on_every_output") {
        return;
    }
    let bin = hw_path("HGPOSE_BIN");
    let (video, fb, chip) = (hw_path("HGPOSE_HW_VIDEO"), hw_path("HGPOSE_HW_FB"), chip());
    let (rule_line, trigger_line) = (4u32, 6u32);
    sim_pull(trigger_line, false);
    let scratch = tempfile::Builder::new()
        .prefix("hgpose-node-")
        .tempdir()
        .unwrap();
    let dir = scratch.path();
    let json = dir.join("poses.jsonl");
    let board = dir.join("board.toml");
    std::fs::write(
        &board,
        format!(
            r#"
[source]
kind = "camera"
device = "{video}"
width = 640
height = 480
format = "yuyv"

[model]
precision = "f32"
threads = 0

[display]
kind = "framebuffer"
device = "{fb}"

[gpio]
chip = "{chip}"

[trigger]
line = {trigger_line}
edge = "rising"

[[rules]]
name = "anyone"
line = {rule_line}
when = {{ kind = "person_present", min_confidence = 0.0, min_joints = 1 }}

[outputs]
json = "{json}"
"#,
            video = video.display(),
            fb = fb.display(),
            json = json.display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(&bin)
        .args(["run", "--board"])
        .arg(&board)
        .args(["--stats-every", "0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let log = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            eprintln!("  hgpose: {line}");
            if line.contains("sampling on trigger") {
                let _ = ready_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    ready_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("hgpose run did not get ready (no 'sampling on trigger' log line)");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sim_value(rule_line), "0", "rule line idle before any pose");
    assert!(
        std::fs::read_to_string(&json)
            .unwrap_or_default()
            .is_empty(),
        "no pose before the trigger"
    );
    sim_pull(trigger_line, true);
    let pressed = Instant::now();
    let record = loop {
        let text = std::fs::read_to_string(&json).unwrap_or_default();
        if let Some(line) = text.lines().next() {
            break serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
        assert!(
            pressed.elapsed() < Duration::from_secs(300),
            "no JSON record within 300 s of the trigger"
        );
        assert!(child.try_wait().unwrap().is_none(), "hgpose exited early");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(record["width"], 640);
    assert_eq!(record["keypoints"].as_array().unwrap().len(), 16);
    assert_eq!(record["trigger"]["count"], 1, "{record}");
    assert_eq!(record["trigger"]["rising"], true);
    assert_eq!(record["active_rules"][0], "anyone");
    // The outputs thread drives GPIO before it writes JSON, and the display right after.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sim_value(rule_line), "1", "the rule's line is driven");
    let screen = Framebuffer::open(&fb).unwrap().read_rgb().unwrap();
    let lit = screen.pixels().filter(|p| p.0 != [0, 0, 0]).count();
    assert!(
        lit > (screen.width() * screen.height() / 4) as usize,
        "the framebuffer shows no camera view ({lit} lit pixels)"
    );
    // Still one record: sampling is on demand.
    std::thread::sleep(Duration::from_secs(1));
    let records = std::fs::read_to_string(&json).unwrap().lines().count();
    assert_eq!(records, 1, "frames were emitted without a trigger");

    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "hgpose did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = log.join().unwrap();
    assert!(status.success(), "exit {status:?}; log:\n{log}");
    assert_eq!(
        sim_value(rule_line),
        "0",
        "the rule's line is idle after exit"
    );
    sim_pull(trigger_line, false);
}

/// A camera that goes away (a USB cable pulled: here vivid's device is unbound from its driver,
/// which removes /dev/video0 under an open stream) and comes back is reopened, not a crash.
#[test]
fn an_unplugged_camera_is_reopened_when_it_returns() {
    if !in_test_bed("an_unplugged_camera_is_reopened_when_it_returns") {
        return;
    }
    use hgpose::capture::camera::ReconnectingCamera;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    let driver = Path::new("/sys/bus/platform/drivers/vivid");
    let device = std::fs::read_dir(driver)
        .expect("vivid's platform driver in sysfs")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("vivid."))
        .expect("a bound vivid device");
    let config = CameraConfig {
        device: hw_path("HGPOSE_HW_VIDEO"),
        width: 640,
        height: 480,
        ..Default::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut camera = ReconnectingCamera::open(config, stop).unwrap();
    let before = camera
        .next_frame()
        .unwrap()
        .expect("a frame before the unplug");

    std::fs::write(driver.join("unbind"), &device).expect("unbind vivid");
    let replug = std::thread::spawn({
        let (driver, device) = (driver.to_path_buf(), device.clone());
        move || {
            std::thread::sleep(Duration::from_secs(2));
            std::fs::write(driver.join("bind"), &device).expect("bind vivid again");
        }
    });
    let unplugged = Instant::now();
    let after = loop {
        match camera.next_frame() {
            Ok(Some(frame)) if frame.captured > unplugged + Duration::from_millis(1500) => {
                break frame
            }
            // Frames still queued from before the unplug, or errors for the bad frames.
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => panic!("the camera source ended"),
        }
        assert!(
            unplugged.elapsed() < Duration::from_secs(60),
            "no frame within 60 s of the camera coming back"
        );
    };
    replug.join().unwrap();
    assert!(after.sequence > before.sequence, "frame numbers continue");
    check_colour_bars(&after.image, PixelFormat::Yuyv);
    eprintln!(
        "camera back after {:.1} s (frame {})",
        unplugged.elapsed().as_secs_f32(),
        after.sequence
    );
}

// ---------------------------------------------------------------------------------------------
// The DRM dumb-buffer display on the bochs card (the card behind $HGPOSE_HW_FB).

use hgpose::outputs::display::drm_dumb::DrmDisplay;

/// The bochs card node: its PCI device's drm/cardN, the card whose fbdev the framebuffer test uses.
fn drm_card() -> PathBuf {
    let fb = hw_path("HGPOSE_HW_FB");
    let fb_name = fb.file_name().expect("HGPOSE_HW_FB names a device");
    let drm_dir = Path::new("/sys/class/graphics")
        .join(fb_name)
        .join("device/drm");
    let cards =
        std::fs::read_dir(&drm_dir).unwrap_or_else(|e| panic!("{}: {e}", drm_dir.display()));
    cards
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("card"))
        .map(|n| Path::new("/dev/dri").join(n))
        .unwrap_or_else(|| panic!("no cardN under {}", drm_dir.display()))
}

/// A second, independent client of the card, to see what the kernel scans out.
struct DrmProbe(std::fs::File);
impl std::os::fd::AsFd for DrmProbe {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}
impl drm::Device for DrmProbe {}
impl drm::control::Device for DrmProbe {}

#[test]
fn drm_dumb_buffer_shows_the_view() {
    use drm::control::{crtc, framebuffer, from_u32, Device as _};
    if !in_test_bed("drm_dumb_buffer_shows_the_view") {
        return;
    }
    let card = drm_card();
    assert_char_device(&card);
    let mut display = DrmDisplay::open(&card, None).unwrap_or_else(|e| panic!("{e}"));
    let (w, h) = display.size();
    assert!(w >= 640 && h >= 480, "{}", display.describe());
    let frame = image::RgbImage::from_fn(320, 240, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 200])
    });
    let mut view = image::RgbImage::new(1, 1);
    ViewRenderer::new(w, h, 0.1)
        .render(
            &frame,
            Some(&confident_pose()),
            &JointSet::mpii16(),
            &Hud::default(),
            &mut view,
        )
        .unwrap();
    display.show(&view).unwrap();
    let back = display.read_rgb().unwrap();
    assert!(back == view, "{} read back differently", display.describe());
    let busy = DrmDisplay::open(&card, None)
        .err()
        .expect("a second master");
    assert!(busy.to_string().contains("another program"), "{busy}");

    let probe = DrmProbe(
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&card)
            .unwrap(),
    );
    let crtc: crtc::Handle = from_u32(display.crtc_id()).expect("a CRTC id is never 0");
    let fb_id = display.framebuffer_id();
    let scanned = probe.get_crtc(crtc).unwrap().framebuffer().map(u32::from);
    assert_eq!(
        scanned,
        Some(fb_id),
        "the CRTC does not scan out the display's buffer"
    );
    assert_eq!(
        probe.get_crtc(crtc).unwrap().mode().map(|m| m.size()),
        Some((w as u16, h as u16))
    );
    let description = display.describe();
    drop(display);

    let fb: framebuffer::Handle = from_u32(fb_id).unwrap();
    assert!(
        probe.get_framebuffer(fb).is_err(),
        "framebuffer {fb_id} outlived the display"
    );
    let after = probe.get_crtc(crtc).unwrap().framebuffer().map(u32::from);
    assert_ne!(after, Some(fb_id));
    eprintln!("{description}: view shown, read back identical, scanned out as fb {fb_id}; CRTC back on {after:?}");
}

/// `hgpose doctor` on a board lists its camera with the formats it offers, its framebuffer and
/// its GPIO chip.
#[test]
fn doctor_lists_the_camera_formats_framebuffer_and_gpio_chip() {
    if !in_test_bed("doctor_lists_the_camera_formats_framebuffer_and_gpio_chip") {
        return;
    }
    let out = std::process::Command::new(hw_path("HGPOSE_BIN"))
        .arg("doctor")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let video = hw_path("HGPOSE_HW_VIDEO").display().to_string();
    let camera = text
        .lines()
        .find(|l| l.starts_with("camera") && l.contains(&video))
        .unwrap_or_else(|| panic!("no camera line for {video}:\n{text}"));
    assert!(
        camera.contains("YUYV") && camera.contains("vivid"),
        "{camera}"
    );
    assert!(
        text.contains(&hw_path("HGPOSE_HW_FB").display().to_string()),
        "{text}"
    );
    assert!(text.contains(&chip()), "{text}");
}
