//! The MJPEG preview (`/preview.mjpg`): one thread per viewer, up to
//! `max_preview_clients`, each sending a part per new frame until the viewer goes away or the
//! server stops.

use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tiny_http::Request;

use super::routes::{respond, text};
use super::{Shared, BOUNDARY, PREVIEW_KEEPALIVE};

/// Counts an open preview; the slot is given back when the stream's thread ends.
struct PreviewSlot(Arc<Shared>);

impl Drop for PreviewSlot {
    fn drop(&mut self) {
        self.0.preview_clients.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(super) fn start_preview(request: Request, shared: &Arc<Shared>) {
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
