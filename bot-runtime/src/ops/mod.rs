//! Operations: Prometheus metrics ([`metrics`]), the health/readiness/metrics HTTP
//! endpoint ([`health`]), and the watched reply queue ([`reply_queue`]).

pub mod health;
pub mod metrics;
pub mod reply_queue;

pub use metrics::metrics;
