//! dts-testkit
