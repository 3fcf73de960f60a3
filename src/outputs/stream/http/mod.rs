//! A small HTTP endpoint for headless nodes: the latest keypoints as JSON, the latest annotated
//! frame as a JPEG snapshot or an MJPEG preview, and a health check.
//!
//! The pipeline only hands over data ([`HttpServer::publish`], [`HttpServer::publish_frame`]):
//! a short lock and one copy of the frame, no JPEG. Frames are encoded by the request threads,
//! only when a snapshot is asked for or a preview is open, at most once per frame however many
//! viewers there are. Preview clients wait on a condition variable for the next frame.
//!
//! Endpoints: `GET /` (HTML page), `/keypoints`, `/snapshot.jpg`, `/preview.mjpg`, `/healthz`.

mod preview;
mod routes;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use image::RgbImage;
use serde::Deserialize;
use tiny_http::Server;

use crate::error::{Error, Result};
use crate::outputs::sink::{Flow, FrameOutput, Sink};

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
            .map_err(|e| Error::device_from(device(), "cannot read the bound address", e))?;
        set_send_timeout(&listener, SEND_TIMEOUT);
        let server = Server::from_listener(listener, None)
            .map(Arc::new)
            .map_err(|e| Error::device_from(device(), "cannot start the server", e))?;

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
                    return Err(Error::device_from(device(), "cannot start a thread", e));
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

/// The node's `http` output: each frame's record becomes the answer of `/keypoints`. (The
/// annotated frame reaches `/snapshot.jpg` and the preview through the view's sink.)
pub struct HttpRecords(pub Arc<HttpServer>);

impl Sink for HttpRecords {
    fn name(&self) -> &str {
        "http"
    }

    fn publish(&mut self, frame: &FrameOutput<'_>) -> Result<Flow> {
        self.0.publish(frame.json);
        Ok(Flow::Continue)
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
            Ok(request) => routes::handle(request, shared),
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

#[cfg(test)]
mod tests;
