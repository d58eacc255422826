//! Resource references given as a name or as an ARN, reduced to the name: where an AWS API
//! wants the name (CodeDeploy's deployment target id is `<cluster name>:<service name>`), a
//! reference is normalized once, at the edge, with these pure functions.

/// A reference that is neither a valid name nor an ARN of the expected resource type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reference:?} is not {expected}: {problem}")]
pub struct ReferenceError {
    pub reference: String,
    /// What was expected, e.g. `an ECS cluster name or ARN`.
    pub expected: &'static str,
    pub problem: String,
}

/// The parts of an ARN, `arn:<partition>:<service>:<region>:<account>:<resource>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    /// Everything after the fifth `:` (it may itself contain `:` and `/`).
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// Splits an ARN into its parts, checking the partition (`aws`, `aws-cn`, `aws-us-gov`,
    /// ...), a lower-case region, a 12-digit account and a non-empty service and resource.
    pub fn parse(text: &'a str) -> Result<Arn<'a>, String> {
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        let ["arn", partition, service, region, account, resource] = parts[..] else {
            return Err("an ARN is arn:<partition>:<service>:<region>:<account>:<resource>".into());
        };
        if !is_partition(partition) {
            return Err(format!("{partition:?} is no AWS partition"));
        }
        if service.is_empty() || resource.is_empty() {
            return Err("the service and the resource must not be empty".into());
        }
        let valid_region = !region.is_empty()
            && region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid_region {
            return Err(format!("{region:?} is no region"));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("the account must be 12 digits (got {account:?})"));
        }
        Ok(Arn {
            partition,
            service,
            region,
            account,
            resource,
        })
    }
}

/// How [`is_region`] describes a region, for messages.
pub const REGION_FORM: &str = "an AWS region name such as us-east-1, eu-central-2 or us-gov-west-1";

/// An AWS region name: a two-letter area, one or more lower-case words, and a number of one to
/// three digits (`us-east-1`, `eu-central-2`, `us-gov-west-1`, `us-isob-east-1`). The one
/// check of a region name: the release document and the controller's configuration both use
/// it, so neither accepts what the other refuses (`us-east-1234`, `us-east1-1`).
pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    s.len() <= 50
        && parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The parts of an IAM role ARN, `arn:<partition>:iam::<account>:role/<path/><name>` (IAM's
/// ARNs name no region).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleArn<'a> {
    pub partition: &'a str,
    pub account: &'a str,
    /// `/` or `/a/b/`.
    pub path: &'a str,
    pub name: &'a str,
}

impl<'a> RoleArn<'a> {
    /// Splits an IAM role ARN into its parts, checking each as IAM does: a 12-digit account, a
    /// path of printable characters between slashes, a name of 1 to 64 letters, digits and
    /// `+=,.@_-`.
    pub fn parse(text: &'a str) -> Result<RoleArn<'a>, String> {
        const FORM: &str = "an IAM role ARN is arn:<partition>:iam::<12-digit account>:role/<name> \
                            (or role/<path>/<name>)";
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        let ["arn", partition, service, region, account, resource] = parts[..] else {
            return Err(FORM.into());
        };
        if !is_partition(partition) {
            return Err(format!("{partition:?} is no AWS partition; {FORM}"));
        }
        if service != "iam" {
            return Err(format!(
                "the ARN is of service {service:?}, not \"iam\"; {FORM}"
            ));
        }
        if !region.is_empty() {
            return Err(format!("IAM ARNs name no region (got {region:?}); {FORM}"));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("the account must be 12 digits (got {account:?})"));
        }
        let Some(path_and_name) = resource.strip_prefix("role/") else {
            return Err(format!(
                "the ARN names {resource:?}, not a role/...; {FORM}"
            ));
        };
        let (path, name) = match path_and_name.rfind('/') {
            Some(slash) => (&resource[4..5 + slash + 1], &path_and_name[slash + 1..]),
            None => ("/", path_and_name),
        };
        let valid_name = (1..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
        if !valid_name {
            return Err(format!(
                "a role name is 1 to 64 letters, digits and '+=,.@_-' (got {name:?})"
            ));
        }
        let valid_path = path.len() <= 512
            && !path.contains("//")
            && path.chars().all(|c| ('!'..='~').contains(&c));
        if !valid_path {
            return Err(format!(
                "a role path is '/' or '/<words>/' of printable characters (got {path:?})"
            ));
        }
        Ok(RoleArn {
            partition,
            account,
            path,
            name,
        })
    }
}

fn is_partition(partition: &str) -> bool {
    partition == "aws"
        || partition.strip_prefix("aws-").is_some_and(|rest| {
            !rest.is_empty()
                && !rest.ends_with('-')
                && rest.chars().all(|c| c.is_ascii_lowercase() || c == '-')
        })
}

/// ECS's rule for cluster (and service) names: 1 to 255 letters, digits, `-` and `_`.
fn is_ecs_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// ELB's rule for target group names: 1 to 32 letters, digits and `-`, neither first nor last.
fn is_target_group_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// The resource of an ARN of `service` whose resource starts with `<kind>/`: what follows.
fn resource_after<'a>(
    reference: &'a str,
    service: &str,
    kind: &str,
    expected: &'static str,
) -> Result<&'a str, ReferenceError> {
    let error = |problem: String| ReferenceError {
        reference: reference.to_string(),
        expected,
        problem,
    };
    let arn = Arn::parse(reference).map_err(error)?;
    if arn.service != service {
        return Err(error(format!(
            "the ARN is of service {:?}, not {service:?}",
            arn.service
        )));
    }
    arn.resource
        .strip_prefix(kind)
        .and_then(|rest| rest.strip_prefix('/'))
        .ok_or_else(|| {
            error(format!(
                "the ARN names {:?}, not a {kind}/...",
                arn.resource
            ))
        })
}

/// The name of an ECS cluster given as its name or as its ARN
/// (`arn:aws:ecs:REGION:ACCOUNT:cluster/NAME`). ECS takes either form; CodeDeploy's
/// deployment target id (`<cluster name>:<service name>`) takes only the name.
pub fn cluster_name(reference: &str) -> Result<&str, ReferenceError> {
    const EXPECTED: &str = "an ECS cluster name or cluster ARN";
    let name = if reference.starts_with("arn:") {
        resource_after(reference, "ecs", "cluster", EXPECTED)?
    } else {
        reference
    };
    if is_ecs_name(name) {
        Ok(name)
    } else {
        Err(ReferenceError {
            reference: reference.to_string(),
            expected: EXPECTED,
            problem: format!(
                "a cluster name is 1 to 255 letters, digits, '-' and '_' (got {name:?})"
            ),
        })
    }
}

/// The name of an ELB target group given as its name or as its ARN
/// (`arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID`).
pub fn target_group_name(reference: &str) -> Result<&str, ReferenceError> {
    const EXPECTED: &str = "a target group name or target group ARN";
    let error = |problem: String| ReferenceError {
        reference: reference.to_string(),
        expected: EXPECTED,
        problem,
    };
    let name = if reference.starts_with("arn:") {
        let rest = resource_after(reference, "elasticloadbalancing", "targetgroup", EXPECTED)?;
        let Some((name, id)) = rest.split_once('/') else {
            return Err(error(
                "a target group ARN ends with targetgroup/<name>/<id>".into(),
            ));
        };
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(error(format!(
                "the id after the name must be letters and digits (got {id:?})"
            )));
        }
        name
    } else {
        reference
    };
    if is_target_group_name(name) {
        Ok(name)
    } else {
        Err(error(format!(
            "a target group name is 1 to 32 letters, digits and '-', not first or last \
             (got {name:?})"
        )))
    }
}

/// The cluster's name for a reference the document's validation accepted (a name or a
/// cluster ARN); anything else is returned as it is, so that a key built from it is stable.
pub fn cluster_key(reference: &str) -> &str {
    cluster_name(reference).unwrap_or(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_arn_and_its_name_normalize_to_the_name() {
        for (reference, name) in [
            ("prod", "prod"),
            ("prod_cluster-1", "prod_cluster-1"),
            ("arn:aws:ecs:us-east-1:111122223333:cluster/prod", "prod"),
            (
                "arn:aws-us-gov:ecs:us-gov-west-1:111122223333:cluster/prod_2",
                "prod_2",
            ),
            ("arn:aws-cn:ecs:cn-north-1:111122223333:cluster/p", "p"),
        ] {
            assert_eq!(cluster_name(reference), Ok(name), "{reference}");
        }
        let longest = "c".repeat(255);
        assert_eq!(cluster_name(&longest), Ok(longest.as_str()));
    }

    #[test]
    fn anything_else_is_no_cluster_reference() {
        for reference in [
            "",
            "prod cluster",
            "prod/web",
            "prod:web",
            &"c".repeat(256),
            "arn:aws:ecs:us-east-1:111122223333:cluster/",
            "arn:aws:ecs:us-east-1:111122223333:cluster/prod/web",
            "arn:aws:ecs:us-east-1:111122223333:service/prod/web",
            "arn:aws:ecs:us-east-1:111122223333:clusterprod",
            "arn:aws:ec2:us-east-1:111122223333:cluster/prod",
            "arn:aws:ecs:us-east-1:1111:cluster/prod",
            "arn:aws:ecs:US-EAST-1:111122223333:cluster/prod",
            "arn:gcp:ecs:us-east-1:111122223333:cluster/prod",
            "arn:aws:ecs:us-east-1:cluster/prod",
        ] {
            let error = cluster_name(reference).expect_err(reference);
            assert_eq!(error.reference, reference);
            assert!(
                error
                    .to_string()
                    .contains("an ECS cluster name or cluster ARN"),
                "{error}"
            );
        }
    }

    #[test]
    fn a_target_group_arn_and_its_name_normalize_to_the_name() {
        for (reference, name) in [
            ("web-tg-a", "web-tg-a"),
            (
                "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/web-tg-a/0123456789abcdef",
                "web-tg-a",
            ),
            (
                "arn:aws-cn:elasticloadbalancing:cn-north-1:111122223333:targetgroup/B2/73e2d6bc24d8a067",
                "B2",
            ),
        ] {
            assert_eq!(target_group_name(reference), Ok(name), "{reference}");
        }
    }

    #[test]
    fn anything_else_is_no_target_group_reference() {
        for reference in [
            "",
            "-web",
            "web-",
            "web_tg",
            &"t".repeat(33),
            "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/web-tg-a",
            "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/web-tg-a/",
            "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/web-tg-a/01/23",
            "arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/app/web/0123",
            "arn:aws:ecs:us-east-1:111122223333:targetgroup/web-tg-a/0123456789abcdef",
            "arn:aws:elasticloadbalancing:us-east-1:12:targetgroup/web-tg-a/0123456789abcdef",
        ] {
            let error = target_group_name(reference).expect_err(reference);
            assert!(
                error
                    .to_string()
                    .contains("a target group name or target group ARN"),
                "{error}"
            );
        }
    }

    #[test]
    fn one_region_rule() {
        for (region, ok) in [
            ("us-east-1", true),
            ("eu-central-2", true),
            ("us-gov-west-1", true),
            ("us-isob-east-1", true),
            ("ap-southeast-7", true),
            ("us-east-1234", false),
            ("us-east1-1", false),
            ("US-EAST-1", false),
            ("us-east", false),
            ("useast1", false),
            ("us--1", false),
            ("u-east-1", false),
            ("", false),
        ] {
            assert_eq!(is_region(region), ok, "{region:?}");
        }
    }

    #[test]
    fn role_arns_split_into_account_path_and_name() {
        assert_eq!(
            RoleArn::parse("arn:aws:iam::444455556666:role/switchyard-deployer"),
            Ok(RoleArn {
                partition: "aws",
                account: "444455556666",
                path: "/",
                name: "switchyard-deployer",
            })
        );
        assert_eq!(
            RoleArn::parse("arn:aws-cn:iam::444455556666:role/deploy/ecs/web+ci@x"),
            Ok(RoleArn {
                partition: "aws-cn",
                account: "444455556666",
                path: "/deploy/ecs/",
                name: "web+ci@x",
            })
        );
        for (bad, problem) in [
            ("switchyard-deployer", "an IAM role ARN is"),
            (
                "arn:aws:iam:us-east-1:444455556666:role/x",
                "name no region",
            ),
            ("arn:aws:sts::444455556666:role/x", "not \"iam\""),
            ("arn:aws:iam::4444:role/x", "12 digits"),
            ("arn:aws:iam::444455556666:user/x", "not a role"),
            ("arn:aws:iam::444455556666:role/", "a role name"),
            ("arn:aws:iam::444455556666:role/a b", "a role name"),
            ("arn:aws:iam::444455556666:role//x", "a role path"),
            ("arn:gcp:iam::444455556666:role/x", "no AWS partition"),
        ] {
            let error = RoleArn::parse(bad).expect_err(bad);
            assert!(error.contains(problem), "{bad}: {error}");
        }
        let long = format!("arn:aws:iam::444455556666:role/{}", "r".repeat(65));
        assert!(RoleArn::parse(&long).is_err());
    }

    #[test]
    fn arns_split_into_their_parts() {
        assert_eq!(
            Arn::parse("arn:aws:ecs:eu-west-1:111122223333:task-definition/web:3"),
            Ok(Arn {
                partition: "aws",
                service: "ecs",
                region: "eu-west-1",
                account: "111122223333",
                resource: "task-definition/web:3",
            })
        );
        assert!(Arn::parse("prod").is_err());
        assert!(Arn::parse("arn:aws:ecs:eu-west-1:111122223333:").is_err());
    }
}
