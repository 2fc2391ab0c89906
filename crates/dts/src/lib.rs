//! dts
