//! IP address management: pools, and the deterministic, stable allocation of addresses to VM
//! network adapters. Pure; no I/O.
