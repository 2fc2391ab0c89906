//! dts-typemap
