//! The one integration-test binary: scenario tests of the controller loop against the
//! simulated AWS, adapter tests against moto server, and end-to-end runs of the binary.

mod aws_adapters;
mod aws_ecs_deployments;
mod aws_store;
mod aws_task_sets;
mod cli;
mod cli_apply;
mod cli_diff;
mod cli_files;
mod cli_get_watch;
mod cli_release;
mod cli_support;
mod daemon;
mod daemon_edges;
mod daemon_identity;
mod ecs_strategy;
mod edges;
mod fault_proxy;
mod fuzz_props;
mod harness;
mod http;
mod identity;
mod invariants;
mod leases;
mod moto;
mod port_wrappers;
mod regions;
mod regions_scenarios;
mod scenarios;
mod simulation;
mod task_sets_strategy;
mod terraform;
