//! batchwin: validate, map, mask and rewrite vendor files inside a batch window.
pub mod codecs;
