//! The periodic full resync: one listing of the store, then the services of every release
//! described in batches of ten per cluster, so a steady fleet costs the floor: the store's
//! pages plus ceil(n/10) DescribeServices per cluster.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use tracing::debug;

use super::Context;
use crate::model::validate::FieldError;
use crate::model::{Placement, ReleaseSpec};
use crate::ports::{Service, StoreError, StoredRelease};
use crate::reconcile::Lookup;

/// AWS's limit of services per DescribeServices call.
pub const DESCRIBE_SERVICES_BATCH: usize = 10;

/// One release as the resync saw it: its record, its parsed spec, and its service.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Shared with the controller's state: a resync does not copy the fleet.
    pub record: Arc<StoredRelease>,
    /// The parsed spec; `None`: the pass parses it.
    pub spec: Option<Result<ReleaseSpec, Vec<FieldError>>>,
    /// `NotLookedUp` when the spec is invalid or the batch describing it failed.
    pub service: Lookup<Service>,
}

/// Lists every release and describes their services in batches, except those of `skip`
/// (releases with a look of their own due before the next resync: their passes describe
/// the service, or follow a deployment that does not need it).
pub async fn take_snapshot(
    ctx: &Context,
    skip: &HashSet<String>,
) -> Result<Vec<Snapshot>, StoreError> {
    // Page by page, keeping the record already held wherever the listed one is the same: at
    // no point are two copies of the fleet in memory.
    let mut snapshots: Vec<Snapshot> = Vec::new();
    ctx.store
        .list_pages(&mut |page| {
            for listed in page {
                let record = match ctx.state.release_shared(&listed.name) {
                    Some(held) if *held == listed => held,
                    _ => Arc::new(listed),
                };
                // The spec is parsed below to batch the describes, and dropped: a fleet's
                // parsed specs held until every pass has run were most of a resync's peak
                // (BENCHMARKS 2b); each pass parses its own again (a few microseconds).
                snapshots.push(Snapshot {
                    spec: None,
                    record,
                    service: Lookup::NotLookedUp,
                });
            }
        })
        .await?;

    // Group the services to describe by (place, cluster), each name once.
    let mut by_cluster: BTreeMap<(Placement, String), BTreeMap<String, Vec<usize>>> =
        BTreeMap::new();
    for (index, snapshot) in snapshots.iter().enumerate() {
        // With leases, only this replica's releases: the others' services are their owners'.
        if ctx.may_act(&snapshot.record.name).is_err() || skip.contains(&snapshot.record.name) {
            continue;
        }
        // Only valid specs: a bad document never reaches AWS, not even a describe.
        if let Ok(spec) = ctx.parse_spec(&snapshot.record.spec) {
            by_cluster
                .entry((ctx.aws.place(&spec), spec.service.cluster.clone()))
                .or_default()
                .entry(spec.service.name.clone())
                .or_default()
                .push(index);
        }
    }
    for ((placement, cluster), services) in by_cluster {
        let ports = match ctx.aws.ports(&placement).await {
            Ok(ports) => ports,
            Err(error) => {
                // A role that cannot be assumed: its releases' passes say so, each.
                debug!(role = ?placement.role_arn, cause = %error, "no ports for the batched DescribeServices");
                continue;
            }
        };
        let names: Vec<String> = services.keys().cloned().collect();
        for batch in names.chunks(DESCRIBE_SERVICES_BATCH) {
            let described = match ports.ecs.describe_services(&cluster, batch).await {
                Ok(described) => described,
                // A missing cluster: every service of the batch is missing.
                Err(error) if error.is_not_found() => Vec::new(),
                Err(error) => {
                    // The passes describe their services themselves.
                    debug!(cluster = %cluster, cause = %error, "batched DescribeServices failed");
                    continue;
                }
            };
            for name in batch {
                let lookup = match described.iter().find(|s| &s.name == name) {
                    Some(service) => Lookup::Found(service.clone()),
                    None => Lookup::Missing,
                };
                for &index in &services[name] {
                    snapshots[index].service = lookup.clone();
                }
            }
        }
    }
    Ok(snapshots)
}
