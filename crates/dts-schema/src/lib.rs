//! dts-schema
