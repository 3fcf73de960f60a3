//! A small HTTP endpoint for headless nodes: the latest keypoints as JSON, the latest annotated
//! frame as a JPEG snapshot or an MJPEG preview, and a health check.
//!
//! The pipeline only hands over data ([`HttpServer::publish`], [`HttpServer::publish_frame`]):
//! a short lock and one copy of the frame, no JPEG. Frames are encoded by the request threads,
//! only when a snapshot is asked for or a preview is open, at most once per frame however many
//! viewers there are. Preview clients wait on a condition variable for the next frame.
//!
//! Endpoints: `GET /` (HTML page), `/keypoints`, `/snapshot.jpg`, `/preview.mjpg`, `/healthz`.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use image::RgbImage;
use serde::Deserialize;
use tiny_http::{Header, Method, Request, Response, Server, StatusCode};

use crate::error::{Error, Result};

/// Settings of the HTTP output (the `[http]` table of a board file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpOptions {
    /// JPEG quality for snapshots and the preview, 1-100.
    pub jpeg_quality: u8,
    /// Preview streams served at once; more get 503. Each one costs a thread and bandwidth.
    pub max_preview_clients: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            jpeg_quality: 80,
            max_preview_clients: 4,
        }
    }
}

/// Threads answering requests (the preview streams get their own threads).
const WORKERS: usize = 2;
/// A preview with no new frame re-sends the last one this often, so that a viewer that went
/// away is noticed (the write fails) and its slot freed even when the pipeline is idle.
const PREVIEW_KEEPALIVE: Duration = Duration::from_secs(5);
/// Give up on a client that stops reading for this long (set on the listening socket, which
/// Linux copies to accepted sockets), so a frozen viewer cannot pin a thread forever.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
const BOUNDARY: &str = "hgposeframe";

/// The running server; stops on [`shutdown`](Self::shutdown) or when dropped.
pub struct HttpServer {
    shared: Arc<Shared>,
    server: Option<Arc<Server>>,
    workers: Vec<JoinHandle<()>>,
    local_addr: SocketAddr,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled on every new frame and on shutdown.
    changed: Condvar,
    /// Held while encoding, so concurrent viewers wait for one encode instead of repeating it.
    encoding: Mutex<()>,
    preview_clients: AtomicUsize,
    options: HttpOptions,
}

#[derive(Default)]
struct State {
    record: Option<Arc<str>>,
    records: u64,
    /// Latest frame; shared with an encoder while it works, otherwise overwritten in place.
    frame: Option<Arc<RgbImage>>,
    /// Frames published so far; also the id of the latest frame.
    frames: u64,
    /// JPEG of frame number `.0`.
    jpeg: Option<(u64, Arc<Vec<u8>>)>,
    stopping: bool,
}

impl HttpServer {
    /// Listens on `bind` (`HOST:PORT`, e.g. `0.0.0.0:8080`; port 0 picks a free one) and serves
    /// on background threads.
    pub fn start(bind: &str, options: HttpOptions) -> Result<Self> {
        if !(1..=100).contains(&options.jpeg_quality) {
            return Err(Error::InvalidArgument(format!(
                "http jpeg_quality {} is outside 1-100; 80 is a good default",
                options.jpeg_quality
            )));
        }
        let device = || format!("http {bind}");
        let listener = TcpListener::bind(bind).map_err(|e| {
            Error::device(
                device(),
                format!("cannot listen: {e}; give HOST:PORT such as 0.0.0.0:8080 with a free port"),
            )
        })?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::device(device(), format!("cannot read the bound address: {e}")))?;
        set_send_timeout(&listener, SEND_TIMEOUT);
        let server = Server::from_listener(listener, None)
            .map(Arc::new)
            .map_err(|e| Error::device(device(), format!("cannot start the server: {e}")))?;

        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            encoding: Mutex::new(()),
            preview_clients: AtomicUsize::new(0),
            options,
        });
        let mut workers = Vec::with_capacity(WORKERS);
        for i in 0..WORKERS {
            let (worker_server, worker_shared) = (Arc::clone(&server), Arc::clone(&shared));
            let spawned = std::thread::Builder::new()
                .name(format!("hgpose-http-{i}"))
                .spawn(move || serve(&worker_server, &worker_shared));
            match spawned {
                Ok(handle) => workers.push(handle),
                Err(e) => {
                    let mut partial = Self {
                        shared,
                        server: Some(server),
                        workers,
                        local_addr,
                    };
                    partial.shutdown();
                    return Err(Error::device(
                        device(),
                        format!("cannot start a thread: {e}"),
                    ));
                }
            }
        }
        tracing::info!("HTTP output on http://{local_addr}/");
        Ok(Self {
            shared,
            server: Some(server),
            workers,
            local_addr,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Makes `json` (one record) the answer of `/keypoints`.
    pub fn publish(&self, json: &str) {
        let record: Arc<str> = Arc::from(json);
        let mut state = self.shared.lock();
        state.record = Some(record);
        state.records += 1;
    }

    /// Makes `frame` the latest annotated frame. Costs one copy; no JPEG is made here.
    pub fn publish_frame(&self, frame: &RgbImage) {
        let mut state = self.shared.lock();
        match state.frame.as_mut().and_then(Arc::get_mut) {
            // Nobody is encoding the previous frame: reuse its buffer.
            Some(old) if old.dimensions() == frame.dimensions() => {
                old.copy_from_slice(frame.as_raw());
            }
            _ => state.frame = Some(Arc::new(frame.clone())),
        }
        state.frames += 1;
        drop(state);
        self.shared.changed.notify_all();
    }

    /// Stops accepting and ends the request threads; open previews end at their next wake-up.
    /// Returns promptly; calling it again does nothing.
    pub fn shutdown(&mut self) {
        let Some(server) = self.server.take() else {
            return;
        };
        self.shared.lock().stopping = true;
        self.shared.changed.notify_all();
        for _ in 0..self.workers.len() {
            server.unblock();
        }
        for worker in self.workers.drain(..) {
            if worker.join().is_err() {
                tracing::warn!("an HTTP request thread panicked");
            }
        }
        // Last reference: tiny_http's drop wakes its accept thread, which closes the socket.
        drop(server);
        tracing::debug!(addr = %self.local_addr, "HTTP output stopped");
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave State inconsistent (plain assignments), so go on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// JPEG of the latest frame, encoded now if not yet; `None` before the first frame.
    fn latest_jpeg(&self) -> Option<(u64, Arc<Vec<u8>>)> {
        let _one_encoder = self.encoding.lock().unwrap_or_else(|p| p.into_inner());
        let (id, frame) = {
            let state = self.lock();
            match &state.jpeg {
                Some((id, jpeg)) if *id == state.frames => return Some((*id, Arc::clone(jpeg))),
                _ => (state.frames, Arc::clone(state.frame.as_ref()?)),
            }
        };
        let jpeg = match encode_jpeg(&frame, self.options.jpeg_quality) {
            Ok(bytes) => Arc::new(bytes),
            Err(e) => {
                tracing::warn!("cannot encode the preview frame as JPEG: {e}");
                return None;
            }
        };
        drop(frame);
        self.lock().jpeg = Some((id, Arc::clone(&jpeg)));
        Some((id, jpeg))
    }
}

fn encode_jpeg(frame: &RgbImage, quality: u8) -> image::ImageResult<Vec<u8>> {
    let mut out = Vec::with_capacity(frame.as_raw().len() / 8);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(frame)?;
    Ok(out)
}

/// Worker loop: answer requests until shutdown unblocks us.
fn serve(server: &Server, shared: &Arc<Shared>) {
    loop {
        match server.recv() {
            Ok(request) => handle(request, shared),
            Err(e) => {
                if shared.lock().stopping {
                    return;
                }
                tracing::warn!("HTTP server: {e}");
                // The accept thread reports its failure once and ends; wait for shutdown.
            }
        }
    }
}

fn handle(request: Request, shared: &Arc<Shared>) {
    if *request.method() != Method::Get {
        let body = format!("method {} not allowed; use GET\n", request.method());
        let response = with_header(text(405, "text/plain; charset=utf-8", body), "Allow", "GET");
        return respond(request, response);
    }
    let path = request.url().split(['?', '#']).next().unwrap_or("");
    match path {
        "/" => {
            let html = INDEX_HTML.replace("{quality}", &shared.options.jpeg_quality.to_string());
            respond(request, text(200, "text/html; charset=utf-8", html));
        }
        "/keypoints" => {
            let record = shared.lock().record.clone();
            let response = match record {
                Some(json) => text(200, "application/json", json.as_bytes().to_vec()),
                None => text(
                    503,
                    "application/json",
                    r#"{"error":"no keypoints yet: no frame has been processed; retry shortly"}"#,
                ),
            };
            respond(request, response);
        }
        "/snapshot.jpg" => {
            let response = match shared.latest_jpeg() {
                Some((_, jpeg)) => text(200, "image/jpeg", jpeg.as_slice().to_vec()),
                None => text(
                    503,
                    "text/plain; charset=utf-8",
                    "no frame yet (or it could not be encoded); retry shortly\n",
                ),
            };
            respond(request, response);
        }
        "/preview.mjpg" => start_preview(request, shared),
        "/healthz" => {
            let (frames, records) = {
                let state = shared.lock();
                (state.frames, state.records)
            };
            let body = format!("ok frames={frames} records={records}\n");
            respond(request, text(200, "text/plain; charset=utf-8", body));
        }
        _ => {
            let body = format!(
                "not found: {path}; try / /keypoints /snapshot.jpg /preview.mjpg /healthz\n"
            );
            respond(request, text(404, "text/plain; charset=utf-8", body));
        }
    }
}

/// Counts an open preview; the slot is given back when the stream's thread ends.
struct PreviewSlot(Arc<Shared>);

impl Drop for PreviewSlot {
    fn drop(&mut self) {
        self.0.preview_clients.fetch_sub(1, Ordering::AcqRel);
    }
}

fn start_preview(request: Request, shared: &Arc<Shared>) {
    let max = shared.options.max_preview_clients;
    let open = shared.preview_clients.fetch_add(1, Ordering::AcqRel);
    let slot = PreviewSlot(Arc::clone(shared));
    if open >= max {
        drop(slot);
        let body =
            format!("{max} preview streams are already open; close one or use /snapshot.jpg\n");
        return respond(request, text(503, "text/plain; charset=utf-8", body));
    }
    let peer = request.remote_addr().copied();
    let spawned = std::thread::Builder::new()
        .name("hgpose-preview".into())
        .spawn(move || {
            let writer = request.into_writer();
            match stream_preview(writer, &slot.0) {
                Ok(()) => tracing::debug!(?peer, "preview stream ended by shutdown"),
                Err(e) => tracing::debug!(?peer, "preview viewer went away: {e}"),
            }
        });
    if let Err(e) = spawned {
        // The request moved into the failed closure and was dropped: tiny_http answered 500.
        tracing::warn!("cannot start a preview thread: {e}");
    }
}

/// Writes the multipart MJPEG stream: one part per new frame until the viewer goes away or the
/// server stops.
fn stream_preview(mut out: Box<dyn Write + Send>, shared: &Shared) -> io::Result<()> {
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary={BOUNDARY}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n"
    )?;
    out.flush()?;
    let mut sent: u64 = 0;
    loop {
        let latest = {
            let mut state = shared.lock();
            while state.frames == sent && !state.stopping {
                let (next, waited) = shared
                    .changed
                    .wait_timeout(state, PREVIEW_KEEPALIVE)
                    .unwrap_or_else(|p| p.into_inner());
                state = next;
                if waited.timed_out() {
                    break; // re-send the current frame as a keep-alive
                }
            }
            if state.stopping {
                // Close the multipart body so the viewer sees a clean end.
                drop(state);
                write!(out, "--{BOUNDARY}--\r\n")?;
                return out.flush();
            }
            state.frames
        };
        let Some((id, jpeg)) = shared.latest_jpeg() else {
            // No frame yet, or this one cannot be encoded: wait for the next.
            sent = latest;
            continue;
        };
        write!(
            out,
            "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            jpeg.len()
        )?;
        out.write_all(&jpeg)?;
        out.write_all(b"\r\n")?;
        out.flush()?;
        sent = id;
    }
}

type Body = io::Cursor<Vec<u8>>;

fn text(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response<Body> {
    let response = Response::from_data(body)
        .with_status_code(StatusCode(status))
        // Always send Content-Length, never chunked: simpler for small clients.
        .with_chunked_threshold(usize::MAX);
    let response = with_header(response, "Content-Type", content_type);
    with_header(response, "Cache-Control", "no-store")
}

fn with_header(mut response: Response<Body>, name: &str, value: &str) -> Response<Body> {
    // Names and values here are constants, always valid header bytes.
    if let Ok(header) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
        response.add_header(header);
    }
    response
}

fn respond(request: Request, response: Response<Body>) {
    if let Err(e) = request.respond(response) {
        tracing::debug!("HTTP response not delivered: {e}");
    }
}

/// Sets `SO_SNDTIMEO` on the listening socket; accepted connections inherit it on Linux.
/// Best effort: without it a stalled viewer is dropped by TCP's own retransmission limit.
#[cfg(unix)]
fn set_send_timeout(listener: &TcpListener, timeout: Duration) {
    use std::os::fd::AsRawFd;
    let value = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: valid socket fd owned by `listener`, and a pointer/length to a live timeval.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&value as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!("cannot set a send timeout: {}", io::Error::last_os_error());
    }
}

#[cfg(not(unix))]
fn set_send_timeout(_listener: &TcpListener, _timeout: Duration) {}

const INDEX_HTML: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>hgpose</title>
<style>body{font-family:sans-serif;margin:1em;background:#111;color:#eee}
img{max-width:100%;border:1px solid #444}a{color:#8cf}</style></head>
<body>
<h1>hgpose</h1>
<p><img src="/preview.mjpg" alt="live preview (JPEG quality {quality})"></p>
<ul>
<li><a href="/keypoints">/keypoints</a> latest keypoints as JSON</li>
<li><a href="/snapshot.jpg">/snapshot.jpg</a> latest annotated frame</li>
<li><a href="/preview.mjpg">/preview.mjpg</a> MJPEG stream</li>
<li><a href="/healthz">/healthz</a> health and counters</li>
</ul>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read};
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
}
