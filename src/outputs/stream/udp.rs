//! UDP datagrams: one JSON record per datagram, fire and forget, for a receiver on the LAN
//! (a dashboard, a robot controller) that wants the newest pose with the least latency and
//! would rather lose a frame than wait for it.
//!
//! The node must keep running whether or not anyone listens: when the receiver is down the
//! kernel reports `ECONNREFUSED` (from the ICMP "port unreachable" of an earlier datagram) and
//! similar transient errors; those are counted in [`UdpSink::dropped`] and logged at most once
//! per [`WARN_INTERVAL`], never returned. Datagrams lost on the way are not seen at all: UDP
//! has no acknowledgements.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::outputs::sink::{Flow, FrameOutput, Sink};

/// Largest record sent, in bytes.
///
/// A UDP payload can be at most 65,507 bytes over IPv4 (65,535 less the 8-byte UDP and 20-byte
/// IP headers) and a little more over IPv6. 60,000 stays clear of that with room for IP
/// options and IPv6 extension headers. A bigger record is refused rather than cut, since a
/// truncated JSON document is useless to the receiver. A typical 16-joint record is about
/// 2 kB; anything above ~1,470 bytes is split into IP fragments on Ethernet, which a LAN
/// reassembles but which a lossy link drops more often.
pub const MAX_DATAGRAM: usize = 60_000;

/// At most one warning about dropped datagrams per this interval.
pub const WARN_INTERVAL: Duration = Duration::from_secs(30);

/// Sends each record as one datagram to a fixed receiver.
pub struct UdpSink {
    socket: UdpSocket,
    target: String,
    peer: SocketAddr,
    sent: u64,
    dropped: u64,
    /// Drops not yet reported in a warning.
    unreported: u64,
    last_warning: Option<Instant>,
}

impl UdpSink {
    /// Resolves `target` (`HOST:PORT`, e.g. `192.168.1.20:9000` or `dashboard.local:9000`) and
    /// binds an ephemeral local port of the same address family.
    ///
    /// The socket is non-blocking so a full send buffer costs a dropped record, not a stalled
    /// pipeline.
    pub fn connect(target: &str) -> Result<Self> {
        let device = || format!("udp {target}");
        let expected = "give HOST:PORT, e.g. 192.168.1.20:9000 or [::1]:9000";
        let peer = target
            .to_socket_addrs()
            .map_err(|e| Error::device(device(), format!("cannot resolve: {e}; {expected}")))?
            .next()
            .ok_or_else(|| {
                Error::device(device(), format!("resolves to no address; {expected}"))
            })?;
        if peer.port() == 0 {
            return Err(Error::device(
                device(),
                format!("port 0 cannot receive; {expected}"),
            ));
        }
        let local: SocketAddr = if peer.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let socket = UdpSocket::bind(local)
            .map_err(|e| Error::device_from(device(), "cannot bind a local UDP socket", e))?;
        // Connected: the kernel filters by peer and reports ICMP errors on later sends.
        socket.connect(peer).map_err(|e| {
            Error::device(
                device(),
                format!("cannot set {peer} as the receiver: {e}; check the network route"),
            )
        })?;
        socket
            .set_nonblocking(true)
            .map_err(|e| Error::device_from(device(), "cannot make the socket non-blocking", e))?;
        tracing::debug!(%target, %peer, "UDP keypoint stream ready");
        Ok(Self {
            socket,
            target: target.to_string(),
            peer,
            sent: 0,
            dropped: 0,
            unreported: 0,
            last_warning: None,
        })
    }

    /// Sends `json` as one datagram.
    ///
    /// Fails only for a record over [`MAX_DATAGRAM`] bytes or a socket that cannot send at all;
    /// a receiver that is not listening (or a full buffer, or a network that is down for a
    /// moment) counts as a drop and returns `Ok`.
    pub fn send(&mut self, json: &str) -> Result<()> {
        if json.len() > MAX_DATAGRAM {
            return Err(Error::InvalidArgument(format!(
                "record of {} bytes is larger than the {MAX_DATAGRAM}-byte UDP limit for {}; \
                 send fewer fields or use the HTTP or JSON Lines output",
                json.len(),
                self.target
            )));
        }
        match self.socket.send(json.as_bytes()) {
            Ok(n) if n == json.len() => {
                self.sent += 1;
                Ok(())
            }
            Ok(n) => Err(Error::device(
                format!("udp {}", self.target),
                format!("sent {n} of {} bytes; the record was cut", json.len()),
            )),
            Err(e) if is_transient(&e) => {
                self.note_drop(&e);
                Ok(())
            }
            Err(e) => Err(Error::device_from(
                format!("udp {}", self.target),
                "cannot send",
                e,
            )),
        }
    }

    /// Records the OS refused to send, mostly because nobody listened at the receiver.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Records handed to the OS.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The resolved receiver address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn note_drop(&mut self, error: &io::Error) {
        self.dropped += 1;
        self.unreported += 1;
        let due = self
            .last_warning
            .is_none_or(|at| at.elapsed() >= WARN_INTERVAL);
        if due {
            tracing::warn!(
                target = %self.target,
                dropped = self.unreported,
                total_dropped = self.dropped,
                "UDP receiver unreachable ({error}); dropping records until it listens \
                 (next warning in {}s at most)",
                WARN_INTERVAL.as_secs()
            );
            self.unreported = 0;
            self.last_warning = Some(Instant::now());
        }
    }
}

/// The node's `udp` output: each frame's record as one datagram.
impl Sink for UdpSink {
    fn name(&self) -> &str {
        "udp"
    }

    fn publish(&mut self, frame: &FrameOutput<'_>) -> Result<Flow> {
        self.send(frame.json).map(|()| Flow::Continue)
    }
}

/// Errors that say "not now" rather than "never": the receiver is not listening, the route or
/// link is briefly down, or the send buffer is full.
fn is_transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused
            | ConnectionReset
            | WouldBlock
            | HostUnreachable
            | NetworkUnreachable
            | NetworkDown
    ) {
        return true;
    }
    #[cfg(unix)]
    if let Some(code) = e.raw_os_error() {
        return matches!(code, libc::ENOBUFS | libc::EHOSTDOWN);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver() -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        socket
    }

    fn receive(socket: &UdpSocket) -> Vec<u8> {
        let mut buf = vec![0u8; 65_536];
        let n = socket.recv(&mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn receiver_gets_exactly_each_record() {
        let rx = receiver();
        let addr = rx.local_addr().unwrap();
        let mut sink = UdpSink::connect(&addr.to_string()).unwrap();
        assert_eq!(sink.peer(), addr);
        let first = r#"{"frame":1,"keypoints":[{"name":"head","x":1.5}]}"#;
        let second = r#"{"frame":2}"#;
        sink.send(first).unwrap();
        sink.send(second).unwrap();
        assert_eq!(receive(&rx), first.as_bytes());
        assert_eq!(receive(&rx), second.as_bytes());
        assert_eq!((sink.sent(), sink.dropped()), (2, 0));
    }

    #[test]
    fn largest_allowed_record_arrives_whole_and_larger_is_refused() {
        let rx = receiver();
        let mut sink = UdpSink::connect(&rx.local_addr().unwrap().to_string()).unwrap();
        let body = "x".repeat(MAX_DATAGRAM - 8);
        let largest = format!("{{\"p\":\"{body}\"}}");
        assert_eq!(largest.len(), MAX_DATAGRAM);
        sink.send(&largest).unwrap();
        assert_eq!(receive(&rx).len(), MAX_DATAGRAM);

        let too_big = format!("{{\"p\":\"{body}x\"}}");
        let err = sink.send(&too_big).unwrap_err().to_string();
        assert!(err.contains(&MAX_DATAGRAM.to_string()), "{err}");
        assert_eq!(sink.sent(), 1);
    }

    #[test]
    fn closed_port_counts_drops_without_failing() {
        // Take a free port, then close it so nothing listens there.
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut sink = UdpSink::connect(&format!("127.0.0.1:{port}")).unwrap();
        let mut attempts = 0;
        while attempts < 20 && sink.dropped() < 2 {
            sink.send(&format!("{{\"frame\":{attempts}}}")).unwrap();
            attempts += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        // The ICMP "port unreachable" from loopback arrives at once, so later sends are refused.
        assert!(sink.dropped() >= 2, "dropped {}", sink.dropped());
        // The first datagram leaves (and provokes the ICMP reply); every send is accounted for.
        assert!(sink.sent() >= 1);
        assert_eq!(sink.sent() + sink.dropped(), attempts);
    }

    #[test]
    fn bad_targets_say_what_format_is_expected() {
        for bad in ["localhost", "127.0.0.1:notaport", "", "127.0.0.1:0"] {
            let err = match UdpSink::connect(bad) {
                Ok(_) => panic!("{bad:?} was accepted"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains("HOST:PORT"), "{bad:?}: {err}");
            assert!(err.contains(&format!("udp {bad}")), "{bad:?}: {err}");
        }
    }
}
