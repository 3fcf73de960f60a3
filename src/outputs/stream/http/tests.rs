use super::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

const TIMEOUT: Duration = Duration::from_secs(5);

fn start(options: HttpOptions) -> HttpServer {
    HttpServer::start("127.0.0.1:0", options).unwrap()
}

fn send_request(addr: SocketAddr, method: &str, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    stream
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Status line and headers up to the blank line.
fn read_head(reader: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let mut parts = line.split_whitespace();
    assert!(parts.next().unwrap().starts_with("HTTP/1."), "{line}");
    let status = parts.next().unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            return (status, headers);
        }
        let (name, value) = trimmed.split_once(':').unwrap();
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
}

fn get_with(addr: SocketAddr, method: &str, path: &str) -> Reply {
    let mut reader = BufReader::new(send_request(addr, method, path));
    let (status, headers) = read_head(&mut reader);
    let mut body = Vec::new();
    reader.read_to_end(&mut body).unwrap();
    let reply = Reply {
        status,
        headers,
        body,
    };
    if method != "HEAD" {
        let length: usize = reply.header("Content-Length").unwrap().parse().unwrap();
        assert_eq!(length, reply.body.len());
    }
    reply
}

fn get(addr: SocketAddr, path: &str) -> Reply {
    get_with(addr, "GET", path)
}

/// A frame with a gradient, so that frames differ and JPEGs are not trivial.
fn frame(width: u32, height: u32, shade: u8) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, shade])
    })
}

fn decode(jpeg: &[u8]) -> image::DynamicImage {
    image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg).unwrap()
}

/// Reads one MJPEG part: boundary line, headers, then exactly Content-Length bytes.
fn read_part(reader: &mut impl BufRead) -> Vec<u8> {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, format!("--{BOUNDARY}\r\n"));
    let mut length = None;
    let mut content_type = None;
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(':').unwrap();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = Some(value.trim().parse::<usize>().unwrap()),
            "content-type" => content_type = Some(value.trim().to_string()),
            _ => {}
        }
    }
    assert_eq!(content_type.as_deref(), Some("image/jpeg"));
    let mut jpeg = vec![0u8; length.unwrap()];
    reader.read_exact(&mut jpeg).unwrap();
    let mut crlf = [0u8; 2];
    reader.read_exact(&mut crlf).unwrap();
    assert_eq!(&crlf, b"\r\n");
    jpeg
}

fn open_preview(addr: SocketAddr) -> (u16, BufReader<TcpStream>, Vec<(String, String)>) {
    let mut reader = BufReader::new(send_request(addr, "GET", "/preview.mjpg"));
    let (status, headers) = read_head(&mut reader);
    (status, reader, headers)
}

#[test]
fn keypoints_are_503_until_published_then_the_latest_record() {
    let server = start(HttpOptions::default());
    let addr = server.local_addr();
    let before = get(addr, "/keypoints");
    assert_eq!(before.status, 503);
    assert_eq!(before.header("Content-Type"), Some("application/json"));
    let error: serde_json::Value = serde_json::from_slice(&before.body).unwrap();
    assert!(error["error"].is_string());

    server.publish(r#"{"frame":1}"#);
    server.publish(r#"{"frame":2,"keypoints":[]}"#);
    let after = get(addr, "/keypoints");
    assert_eq!(after.status, 200);
    assert_eq!(after.header("Content-Type"), Some("application/json"));
    assert_eq!(after.body, br#"{"frame":2,"keypoints":[]}"#);
}

#[test]
fn snapshot_is_a_jpeg_of_the_latest_frame() {
    let server = start(HttpOptions::default());
    let addr = server.local_addr();
    assert_eq!(get(addr, "/snapshot.jpg").status, 503);

    server.publish_frame(&frame(64, 48, 0));
    server.publish_frame(&frame(80, 60, 200));
    let reply = get(addr, "/snapshot.jpg");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("Content-Type"), Some("image/jpeg"));
    let image = decode(&reply.body).to_rgb8();
    assert_eq!(image.dimensions(), (80, 60));
    // The blue channel carries the second frame's shade (JPEG is lossy: allow some error).
    let blue = image.get_pixel(40, 30)[2];
    assert!(blue.abs_diff(200) < 20, "blue {blue}");
}

#[test]
fn jpeg_is_encoded_once_per_frame_and_only_on_demand() {
    let server = start(HttpOptions::default());
    server.publish_frame(&frame(32, 32, 10));
    assert!(server.shared.lock().jpeg.is_none(), "encoded on publish");
    let (first_id, first) = server.shared.latest_jpeg().unwrap();
    let (again_id, again) = server.shared.latest_jpeg().unwrap();
    assert_eq!(first_id, again_id);
    assert!(Arc::ptr_eq(&first, &again), "same frame encoded twice");
    server.publish_frame(&frame(32, 32, 20));
    let (next_id, _) = server.shared.latest_jpeg().unwrap();
    assert_eq!(next_id, first_id + 1);
}

#[test]
fn preview_streams_one_part_per_new_frame() {
    let server = start(HttpOptions::default());
    let addr = server.local_addr();
    server.publish_frame(&frame(40, 30, 0));
    let (status, mut reader, headers) = open_preview(addr);
    assert_eq!(status, 200);
    let content_type = &headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Content-Type"))
        .unwrap()
        .1;
    assert_eq!(
        content_type,
        &format!("multipart/x-mixed-replace; boundary={BOUNDARY}")
    );
    let first = decode(&read_part(&mut reader));
    assert_eq!((first.width(), first.height()), (40, 30));

    server.publish_frame(&frame(50, 20, 0));
    let second = decode(&read_part(&mut reader));
    assert_eq!((second.width(), second.height()), (50, 20));
    server.publish_frame(&frame(24, 24, 0));
    let third = decode(&read_part(&mut reader));
    assert_eq!((third.width(), third.height()), (24, 24));
}

#[test]
fn preview_clients_beyond_the_limit_get_503_until_one_leaves() {
    let server = start(HttpOptions {
        max_preview_clients: 1,
        ..HttpOptions::default()
    });
    let addr = server.local_addr();
    server.publish_frame(&frame(16, 16, 0));
    let (status, mut first, _) = open_preview(addr);
    assert_eq!(status, 200);
    read_part(&mut first);
    assert_eq!(get(addr, "/preview.mjpg").status, 503);

    // The first viewer leaves; its thread notices on a later write and frees the slot.
    drop(first);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        server.publish_frame(&frame(16, 16, 0));
        std::thread::sleep(Duration::from_millis(20));
        let (status, _reader, _) = open_preview(addr);
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
    }
}

#[test]
fn index_health_and_errors() {
    let server = start(HttpOptions::default());
    let addr = server.local_addr();
    let index = get(addr, "/");
    assert_eq!(index.status, 200);
    let html = String::from_utf8(index.body).unwrap();
    for link in ["/preview.mjpg", "/keypoints", "/snapshot.jpg", "/healthz"] {
        assert!(html.contains(link), "index lacks {link}");
    }

    server.publish_frame(&frame(8, 8, 0));
    server.publish_frame(&frame(8, 8, 0));
    server.publish("{}");
    let health = get(addr, "/healthz?verbose=1");
    assert_eq!(health.status, 200);
    let body = String::from_utf8(health.body).unwrap();
    assert!(body.starts_with("ok"), "{body}");
    assert!(body.contains("frames=2"), "{body}");
    assert!(body.contains("records=1"), "{body}");

    assert_eq!(get(addr, "/nope").status, 404);
    let post = get_with(addr, "POST", "/keypoints");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("Allow"), Some("GET"));
    assert_eq!(get_with(addr, "DELETE", "/").status, 405);
}

#[test]
fn shutdown_is_prompt_ends_previews_and_closes_the_port() {
    let mut server = start(HttpOptions::default());
    let addr = server.local_addr();
    server.publish_frame(&frame(16, 16, 0));
    let (status, mut viewer, _) = open_preview(addr);
    assert_eq!(status, 200);
    read_part(&mut viewer);

    let started = Instant::now();
    server.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    server.shutdown(); // twice is harmless

    // The open preview ends with the closing boundary and EOF instead of hanging.
    let mut rest = Vec::new();
    viewer.read_to_end(&mut rest).unwrap();
    let closing = format!("--{BOUNDARY}--\r\n");
    assert!(rest.ends_with(closing.as_bytes()), "{rest:?}");

    // The listener closes once tiny_http's accept thread wakes up; allow it a moment.
    let deadline = Instant::now() + TIMEOUT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "port still accepts after shutdown"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn drop_stops_the_server() {
    let server = start(HttpOptions::default());
    let addr = server.local_addr();
    assert_eq!(get(addr, "/healthz").status, 200);
    drop(server);
    let deadline = Instant::now() + TIMEOUT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
        assert!(Instant::now() < deadline, "port still accepts after drop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn options_from_toml_and_validation() {
    let options: HttpOptions = toml::from_str("jpeg_quality = 60").unwrap();
    assert_eq!(options.jpeg_quality, 60);
    assert_eq!(
        options.max_preview_clients,
        HttpOptions::default().max_preview_clients
    );
    assert!(toml::from_str::<HttpOptions>("jpeg_qualty = 60").is_err());

    let zero = HttpOptions {
        jpeg_quality: 0,
        ..HttpOptions::default()
    };
    let err = HttpServer::start("127.0.0.1:0", zero)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("jpeg_quality"), "{err}");
    let err = HttpServer::start("not an address", HttpOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("not an address") && err.contains("HOST:PORT"),
        "{err}"
    );
}
