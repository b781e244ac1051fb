//! Builds small Ubuntu-cloud-image-like OVAs for tests (qemu-img streamOptimized VMDK + OVF).
