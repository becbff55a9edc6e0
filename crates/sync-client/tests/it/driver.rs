//! The HTTP driver against small fake servers.
