use super::stream::frame_timeout;
use super::*;
use crate::capture::FrameSource;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use PixelFormat::*;

#[test]
fn format_choice_follows_preference_and_size() {
    let webcam = [Mjpeg, Yuyv];
    assert_eq!(choose_format(&webcam, None, 640, 480), Some(Yuyv));
    assert_eq!(choose_format(&webcam, None, 1280, 720), Some(Mjpeg));
    assert_eq!(choose_format(&webcam, Some(Yuyv), 1920, 1080), Some(Yuyv));
    // A preferred format the camera lacks falls back to the list.
    assert_eq!(choose_format(&webcam, Some(Nv12), 320, 240), Some(Yuyv));
    assert_eq!(choose_format(&[Grey, Nv12], None, 1280, 720), Some(Nv12));
    assert_eq!(choose_format(&[Grey, Rgb565], None, 320, 240), Some(Rgb565));
    assert_eq!(choose_format(&[], Some(Yuyv), 640, 480), None);
    // Every convertible format is somewhere in both orders, once.
    for (w, h) in [(320, 240), (1920, 1080)] {
        let order = preference_order(w, h);
        for f in crate::capture::convert::ALL_FORMATS {
            assert_eq!(
                order.iter().filter(|g| **g == f).count(),
                1,
                "{f} at {w}x{h}"
            );
        }
    }
}

#[test]
fn missing_device_error_says_where_to_look() {
    let config = CameraConfig {
        device: PathBuf::from("/dev/video-hgpose-missing"),
        ..CameraConfig::default()
    };
    let err = Camera::open(&config).err().unwrap().to_string();
    assert!(
        err.contains("/dev/video-hgpose-missing")
            && err.contains("ls /dev/video*")
            && err.contains("hgpose doctor"),
        "{err}"
    );
    let err = list_formats(&config.device).unwrap_err().to_string();
    assert!(err.contains("/dev/video-hgpose-missing"), "{err}");
}

#[test]
fn a_regular_file_is_not_a_camera() {
    let file = crate::scratch::file("not-a-camera");
    let path = file.path().to_path_buf();
    std::fs::write(&path, b"plain file").unwrap();
    let config = CameraConfig {
        device: path.clone(),
        ..CameraConfig::default()
    };
    let err = Camera::open(&config).err().unwrap().to_string();
    assert!(err.contains("not a V4L2 video device"), "{err}");
}

#[test]
fn config_parses_with_defaults_and_rejects_typos() {
    let c: CameraConfig =
        toml::from_str("device = \"/dev/video2\"\nwidth = 1280\nheight = 720\nformat = \"MJPG\"")
            .unwrap();
    assert_eq!(c.device, PathBuf::from("/dev/video2"));
    assert_eq!((c.width, c.height, c.format), (1280, 720, Some(Mjpeg)));
    assert_eq!((c.fps, c.buffers), (None, 4));
    assert!(toml::from_str::<CameraConfig>("widht = 5").is_err());
    assert!(toml::from_str::<CameraConfig>("format = \"h264\"").is_err());
    let zero = CameraConfig {
        width: 0,
        ..CameraConfig::default()
    };
    let err = Camera::open(&zero).err().unwrap().to_string();
    assert!(err.contains("0x480"), "{err}");
    let round: CameraConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
    assert_eq!(round, c);
}

#[test]
fn backoff_doubles_to_the_cap_and_resets() {
    let mut b = Backoff::default();
    let ms: Vec<u128> = (0..7).map(|_| b.next_delay().as_millis()).collect();
    assert_eq!(ms, [500, 1000, 2000, 4000, 8000, 10000, 10000]);
    b.reset();
    assert_eq!(b.next_delay(), Duration::from_millis(500));
}

#[test]
fn reconnecting_camera_reports_or_stops_promptly() {
    let config = CameraConfig {
        device: PathBuf::from("/dev/video-hgpose-missing"),
        ..CameraConfig::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let fast = Backoff::new(Duration::from_millis(10), Duration::from_millis(40));
    let mut cam = ReconnectingCamera::new(config.clone(), stop.clone())
        .report_failures(true)
        .with_backoff(fast);
    for _ in 0..3 {
        let err = cam.next_frame().unwrap_err().to_string();
        assert!(err.contains("/dev/video-hgpose-missing"), "{err}");
    }
    assert!(cam.describe().contains("disconnected"));
    assert!(ReconnectingCamera::open(config.clone(), stop.clone()).is_err());

    // Silent mode blocks retrying until stop is set, then ends promptly.
    let mut cam = ReconnectingCamera::new(config, stop.clone());
    let setter = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::Relaxed);
        })
    };
    let start = Instant::now();
    assert!(cam.next_frame().unwrap().is_none());
    let waited = start.elapsed();
    setter.join().unwrap();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[test]
fn frame_timeout_is_at_least_five_seconds() {
    assert_eq!(frame_timeout(None), Duration::from_secs(5));
    assert_eq!(frame_timeout(Some(30.0)), Duration::from_secs(5));
    assert_eq!(frame_timeout(Some(0.1)), Duration::from_secs(30));
}
