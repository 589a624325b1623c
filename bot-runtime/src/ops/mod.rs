//! Operations: Prometheus metrics ([`metrics`]) and the health/readiness/metrics HTTP
//! endpoint ([`health`]).

pub mod health;
pub mod metrics;

pub use metrics::metrics;
