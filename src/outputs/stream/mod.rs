//! Streams for headless nodes: JSON lines (stdout or file), UDP datagrams, and an HTTP endpoint.

pub mod http;
pub mod jsonl;
pub mod udp;
