//! Portable code: what runs where no native kernel does, and the reference each native kernel
//! is checked against on the same shapes ([`crate::native`]).

pub mod conv_f32;
pub mod conv_i8;
pub mod elementwise;
pub mod interleave;
