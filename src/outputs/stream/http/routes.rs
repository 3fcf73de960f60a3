//! What each address answers: the index page, `/keypoints`, `/snapshot.jpg`, `/healthz`, and
//! the errors; `/preview.mjpg` is handed to the preview module.

use std::io;
use std::sync::Arc;

use tiny_http::{Header, Method, Request, Response, StatusCode};

use super::preview::start_preview;
use super::Shared;

/// Answers one request.
pub(super) fn handle(request: Request, shared: &Arc<Shared>) {
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

pub(super) type Body = io::Cursor<Vec<u8>>;

pub(super) fn text(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response<Body> {
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

pub(super) fn respond(request: Request, response: Response<Body>) {
    if let Err(e) = request.respond(response) {
        tracing::debug!("HTTP response not delivered: {e}");
    }
}

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
