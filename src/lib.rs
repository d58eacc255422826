//! switchyard: a reconciling release controller for blue/green releases of Amazon ECS services.
//!
//! See `ARCHITECTURE.md` for the map. In short: [`reconcile`] is the pure core, [`controller`]
//! the imperative shell around it, [`ports`] the traits for the outside world, [`sim`] a
//! simulated AWS implementing them, and [`demo`] the whole thing in one command. (Many
//! replicas against the simulated AWS under seeded faults is the `switchyard-simulation`
//! crate, in `simulation/`: test code, outside this library.)

#![forbid(unsafe_code)]

pub mod access;
pub mod aws;
pub mod cli;
pub mod clock;
pub mod config;
pub mod controller;
pub mod demo;
pub mod http;
pub mod lease;
pub mod model;
pub mod ports;
pub mod probe;
pub mod reconcile;
pub mod retry;
pub mod sim;
pub mod state;
pub mod terminal;
pub mod view;
pub mod webhook;
