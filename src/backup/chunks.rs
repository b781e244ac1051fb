//! Content-addressed chunk store of the `directory` target (being written).
