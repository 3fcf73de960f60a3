//! GPIO trigger lines: a button or a robot controller's sync pulse asks for one
//! capture-infer-emit cycle on an edge, for nodes that sample on demand instead of streaming.
//!
//! Edges come from the kernel's line-event interface (gpio character device), which timestamps
//! each edge when it happens; that timestamp travels with the result, so a controller can match
//! the pose to its own pulse even though inference takes a while. Debounce is done here in
//! software (the v1 uAPI has no debounce setting), by ignoring edges that follow an accepted one
//! too closely.

use gpio_cdev::{EventRequestFlags, EventType, LineEventHandle, LineRequestFlags};
use serde::{Deserialize, Serialize};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Error, Result};
use crate::platform::gpio::open_line;

/// Which edges trigger a cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Edge {
    #[default]
    Rising,
    Falling,
    Both,
}

/// `[trigger]` in a board file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerConfig {
    /// GPIO chip; the board's `[gpio] chip` when absent.
    pub chip: Option<String>,
    pub line: u32,
    #[serde(default)]
    pub edge: Edge,
    /// Edges closer than this to the last accepted one are contact bounce, not new triggers.
    #[serde(default = "default_debounce_ms")]
    pub debounce_ms: u64,
}

fn default_debounce_ms() -> u64 {
    20
}

/// One accepted trigger edge.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TriggerEvent {
    /// Kernel timestamp of the edge, nanoseconds (CLOCK_MONOTONIC on Linux >= 5.7).
    pub kernel_timestamp_ns: u64,
    /// Wall-clock time when hgpose read the edge.
    #[serde(with = "unix_seconds")]
    pub received: SystemTime,
    pub rising: bool,
    /// Accepted triggers so far, from 1.
    pub count: u64,
    /// Monotonic time hgpose read the edge: the first frame captured after it answers it.
    #[serde(skip)]
    pub at: Instant,
}

mod unix_seconds {
    use serde::Serializer;
    use std::time::{SystemTime, UNIX_EPOCH};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let secs = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        s.serialize_f64(secs)
    }
}

/// Accepts an edge at `t_ns` unless it follows the last accepted one within `debounce`.
#[derive(Debug, Clone)]
pub struct Debouncer {
    debounce_ns: u64,
    last_accepted_ns: Option<u64>,
}

impl Debouncer {
    pub fn new(debounce: Duration) -> Self {
        Debouncer {
            debounce_ns: debounce.as_nanos().min(u64::MAX as u128) as u64,
            last_accepted_ns: None,
        }
    }

    pub fn accept(&mut self, t_ns: u64) -> bool {
        match self.last_accepted_ns {
            Some(last) if t_ns.saturating_sub(last) < self.debounce_ns => false,
            _ => {
                self.last_accepted_ns = Some(t_ns);
                true
            }
        }
    }
}

/// An input line watched for edges.
pub struct TriggerLine {
    events: LineEventHandle,
    debouncer: Debouncer,
    name: String,
    count: u64,
}

impl TriggerLine {
    pub fn open(config: &TriggerConfig, default_chip: &str) -> Result<Self> {
        let chip_path = config.chip.as_deref().unwrap_or(default_chip);
        let name = format!("{chip_path} line {} (trigger)", config.line);
        let line = open_line(chip_path, config.line, &name)?;
        let edges = match config.edge {
            Edge::Rising => EventRequestFlags::RISING_EDGE,
            Edge::Falling => EventRequestFlags::FALLING_EDGE,
            Edge::Both => EventRequestFlags::BOTH_EDGES,
        };
        let events = line
            .events(LineRequestFlags::INPUT, edges, "hgpose-trigger")
            .map_err(|e| {
                Error::device(
                    &name,
                    format!("cannot watch it for edges ({e}); is another program holding it?"),
                )
            })?;
        Ok(TriggerLine {
            events,
            debouncer: Debouncer::new(Duration::from_millis(config.debounce_ms)),
            name,
            count: 0,
        })
    }

    /// Waits up to `timeout` for the next accepted edge; `Ok(None)` on timeout, so the caller can
    /// check for shutdown between waits.
    pub fn wait(&mut self, timeout: Duration) -> Result<Option<TriggerEvent>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if !self.readable_within(left)? {
                return Ok(None);
            }
            let event = self
                .events
                .get_event()
                .map_err(|e| Error::device(&self.name, format!("reading an edge failed ({e})")))?;
            if self.debouncer.accept(event.timestamp()) {
                self.count += 1;
                return Ok(Some(TriggerEvent {
                    kernel_timestamp_ns: event.timestamp(),
                    received: SystemTime::now(),
                    at: Instant::now(),
                    rising: event.event_type() == EventType::RisingEdge,
                    count: self.count,
                }));
            }
        }
    }

    /// poll(2) on the event file, so waiting never blocks shutdown for longer than `timeout`.
    fn readable_within(&self, timeout: Duration) -> Result<bool> {
        let mut fd = libc::pollfd {
            fd: self.events.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd for an fd owned by `self.events`, which outlives the call.
        let n = unsafe { libc::poll(&mut fd, 1, ms) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(Error::device(&self.name, format!("poll failed ({err})")));
        }
        Ok(n > 0 && fd.revents & libc::POLLIN != 0)
    }

    pub fn describe(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debouncer_drops_bounces_and_accepts_later_edges() {
        let mut d = Debouncer::new(Duration::from_millis(20));
        let ms = 1_000_000u64;
        assert!(d.accept(100 * ms));
        assert!(!d.accept(101 * ms), "bounce 1 ms later");
        assert!(
            !d.accept(119 * ms),
            "still within 20 ms of the accepted edge"
        );
        assert!(d.accept(120 * ms), "20 ms after: a new press");
        assert!(!d.accept(125 * ms));
    }

    #[test]
    fn zero_debounce_accepts_everything() {
        let mut d = Debouncer::new(Duration::ZERO);
        assert!(d.accept(5));
        assert!(d.accept(5));
    }

    #[test]
    fn trigger_config_reads_from_toml_with_defaults() {
        let c: TriggerConfig = toml::from_str("line = 17\nedge = \"both\"").unwrap();
        assert_eq!(c.line, 17);
        assert_eq!(c.edge, Edge::Both);
        assert_eq!(c.debounce_ms, 20);
        let bad = toml::from_str::<TriggerConfig>("line = 1\nedge = \"up\"");
        assert!(bad.is_err());
    }

    #[test]
    fn a_missing_chip_fails_with_its_name() {
        let c = TriggerConfig {
            chip: Some("/dev/gpiochip-none".into()),
            line: 0,
            edge: Edge::Rising,
            debounce_ms: 0,
        };
        let err = TriggerLine::open(&c, "/dev/gpiochip0").err().unwrap();
        assert!(err.to_string().contains("/dev/gpiochip-none"));
    }
}
