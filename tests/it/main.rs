//! The one integration-test binary: scenario tests of the controller loop against the
//! simulated AWS, and end-to-end runs of the `switchyard` binary.

mod cli;
mod harness;
mod scenarios;
