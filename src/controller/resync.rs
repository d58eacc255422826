//! The periodic full resync: one listing of the store, then the services of every release
//! described in batches of ten per cluster, so a steady fleet costs the floor: the store's
//! pages plus ceil(n/10) DescribeServices per cluster.
//!
//! Each batch goes to the loop as soon as it is described, and the loop hands its releases
//! to their passes then: the first batch's passes do not wait for the last batch's describe,
//! and the described services held at once are a few batches', not the fleet's (a resync's
//! memory peak grew with the fleet). The places (account and region) are described side by
//! side, each cluster after cluster: a place whose calls are slow (throttled, paced by its
//! budget, far away) holds back only its own releases.

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

impl Snapshot {
    fn new(record: Arc<StoredRelease>, service: Lookup<Service>) -> Self {
        Self {
            record,
            spec: None,
            service,
        }
    }
}

/// The releases to describe, by place, cluster and service name (a service named by two
/// releases is described once).
type ToDescribe = BTreeMap<Placement, BTreeMap<String, BTreeMap<String, Vec<Arc<StoredRelease>>>>>;

/// Lists every release and describes their services in batches, except those of `skip`
/// (releases with a look of their own due before the next resync: their passes describe
/// the service, or follow a deployment that does not need it). Hands every release to
/// `hand_over` once, in parts: first those not described, then each batch as it is
/// described. Returns the names listed (the releases that still exist), or the listing's
/// error, in which case nothing was handed over.
pub async fn take_snapshot(
    ctx: &Context,
    skip: &HashSet<String>,
    hand_over: &(dyn Fn(Vec<Snapshot>) + Sync),
) -> Result<Vec<String>, StoreError> {
    // Page by page, keeping the record already held wherever the listed one is the same: at
    // no point are two copies of the fleet in memory.
    let mut listed: Vec<Arc<StoredRelease>> = Vec::new();
    ctx.store
        .list_pages(&mut |page| {
            for record in page {
                listed.push(match ctx.state.release_shared(&record.name) {
                    Some(held) if *held == record => held,
                    _ => Arc::new(record),
                });
            }
        })
        .await?;
    let names = listed.iter().map(|record| record.name.clone()).collect();

    let mut to_describe = ToDescribe::new();
    let mut not_described = Vec::new();
    for record in listed {
        // With leases, only this replica's releases: the others' services are their owners'.
        // Only valid specs: a bad document never reaches AWS, not even a describe. The spec
        // is parsed to batch the describes, and dropped: each pass parses its own again (a
        // few microseconds), rather than the resync holding the fleet's parsed specs.
        let spec = (ctx.may_act(&record.name).is_ok() && !skip.contains(&record.name))
            .then(|| ctx.parse_spec(&record.spec).ok())
            .flatten();
        match spec {
            Some(spec) => to_describe
                .entry(ctx.aws.place(&spec))
                .or_default()
                .entry(spec.service.cluster)
                .or_default()
                .entry(spec.service.name)
                .or_default()
                .push(record),
            None => not_described.push(Snapshot::new(record, Lookup::NotLookedUp)),
        }
    }
    hand_over(not_described);
    futures::future::join_all(
        to_describe
            .into_iter()
            .map(|(placement, clusters)| describe_place(ctx, placement, clusters, hand_over)),
    )
    .await;
    Ok(names)
}

/// Describes one place's services, cluster after cluster, ten at a time, handing each batch
/// over as soon as it is described (or, when it cannot be, not looked up: its passes
/// describe their services themselves).
async fn describe_place(
    ctx: &Context,
    placement: Placement,
    clusters: BTreeMap<String, BTreeMap<String, Vec<Arc<StoredRelease>>>>,
    hand_over: &(dyn Fn(Vec<Snapshot>) + Sync),
) {
    let ports = match ctx.aws.ports(&placement).await {
        Ok(ports) => Some(ports),
        Err(error) => {
            // A role that cannot be assumed: its releases' passes say so, each.
            debug!(role = ?placement.role_arn, cause = %error, "no ports for the batched DescribeServices");
            None
        }
    };
    for (cluster, services) in clusters {
        let mut services: Vec<(String, Vec<Arc<StoredRelease>>)> = services.into_iter().collect();
        while !services.is_empty() {
            let rest = services.split_off(services.len().min(DESCRIBE_SERVICES_BATCH));
            let batch = std::mem::replace(&mut services, rest);
            let names: Vec<String> = batch.iter().map(|(name, _)| name.clone()).collect();
            let described = match &ports {
                None => None,
                Some(ports) => match ports.ecs.describe_services(&cluster, &names).await {
                    Ok(described) => Some(described),
                    // A missing cluster: every service of the batch is missing.
                    Err(error) if error.is_not_found() => Some(Vec::new()),
                    Err(error) => {
                        debug!(cluster = %cluster, cause = %error, "batched DescribeServices failed");
                        None
                    }
                },
            };
            let mut part = Vec::new();
            for (name, records) in batch {
                let lookup = match &described {
                    None => Lookup::NotLookedUp,
                    Some(described) => match described.iter().find(|s| s.name == name) {
                        Some(service) => Lookup::Found(service.clone()),
                        None => Lookup::Missing,
                    },
                };
                part.extend(
                    records
                        .into_iter()
                        .map(|r| Snapshot::new(r, lookup.clone())),
                );
            }
            hand_over(part);
        }
    }
}
