//! vSphere SOAP client (in progress).
