//! Names and ARNs of AWS resources a release refers to, normalized once at the edge, so that
//! spelling a resource as its name or as its ARN never makes a different target.

/// The cluster's name, from its name or its ARN (`arn:aws:ecs:REGION:ACCOUNT:cluster/NAME`).
pub fn cluster_name(cluster: &str) -> &str {
    match cluster.strip_prefix("arn:") {
        Some(rest) if rest.contains(":cluster/") => cluster
            .rsplit_once(":cluster/")
            .map_or(cluster, |(_, name)| name),
        _ => cluster,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_arn_and_its_name_are_one_cluster() {
        assert_eq!(
            cluster_name("arn:aws:ecs:us-east-1:111122223333:cluster/prod"),
            "prod"
        );
        assert_eq!(cluster_name("prod"), "prod");
    }
}
