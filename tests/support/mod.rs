//! Shared test support: drive a compiled bot executable over its Text backend (stdin in,
//! stdout out) against the StackStorm simulator.
#![allow(dead_code, unreachable_pub)]

pub mod bot;
