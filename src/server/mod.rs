//! One module per protocol the broker speaks.
//!
//! - [`framed`]: the framed binary TCP protocol for producers (PolarStreams-compatible).

pub mod conns;
pub mod framed;
