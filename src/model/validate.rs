//! Validation of release documents: every rule a document must satisfy before it may reach AWS.

use std::collections::BTreeMap;

use super::document::{
    API_VERSION, CodeDeployStrategy, ContainerChange, KIND, Metadata, ReleaseDocument, ReleaseSpec,
    RollbackSpec, ServiceRef, TaskDefinitionSpec,
};

/// The deployment configs CodeDeploy predefines for ECS. Any other `CodeDeployDefault.*` name is
/// either misspelled or meant for EC2/on-premises or Lambda, and CodeDeploy would reject it
/// only when the deployment is created; we reject it up front.
pub const PREDEFINED_ECS_DEPLOYMENT_CONFIGS: [&str; 5] = [
    "CodeDeployDefault.ECSAllAtOnce",
    "CodeDeployDefault.ECSCanary10Percent5Minutes",
    "CodeDeployDefault.ECSCanary10Percent15Minutes",
    "CodeDeployDefault.ECSLinear10PercentEvery1Minutes",
    "CodeDeployDefault.ECSLinear10PercentEvery3Minutes",
];

/// The known name nearest to `name` for a "did you mean" hint: at most 2 edits away
/// (Levenshtein, ignoring case), the nearest first; none for names over 64 bytes, which are
/// not typos of a field name and not worth comparing.
pub(crate) fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    const MAX_EDITS: usize = 2;
    const MAX_LEN: usize = 64;
    if name.len() > MAX_LEN {
        return None;
    }
    let name = name.to_ascii_lowercase();
    known
        .iter()
        .filter(|k| k.len() <= MAX_LEN)
        .map(|k| (strsim::levenshtein(&name, &k.to_ascii_lowercase()), *k))
        .filter(|(edits, _)| *edits <= MAX_EDITS)
        .min_by_key(|(edits, _)| *edits)
        .map(|(_, k)| k)
}

/// CodeDeploy accepts at most this many alarms in a deployment group's alarm configuration.
pub const MAX_ROLLBACK_ALARMS: usize = 10;

pub use super::field_error::FieldError;

/// Every problem of a whole document, in document order (an empty list means it is valid).
pub fn validate_document(doc: &ReleaseDocument) -> Vec<FieldError> {
    let mut v = Validator::default();
    if doc.api_version != API_VERSION {
        v.error(
            "apiVersion",
            format!(
                "must be {API_VERSION:?} (got {}); it is the only version switchyard reads",
                quoted(&doc.api_version)
            ),
        );
    }
    if doc.kind != KIND {
        v.error(
            "kind",
            format!(
                "must be {KIND:?} (got {}); it is the only kind switchyard reads",
                quoted(&doc.kind)
            ),
        );
    }
    v.metadata(&doc.metadata);
    v.spec("spec", &doc.spec);
    v.errors
}

/// Every problem of a spec, in document order; paths start with `spec.`.
pub fn validate_spec(spec: &ReleaseSpec) -> Vec<FieldError> {
    let mut v = Validator::default();
    v.spec("spec", spec);
    v.errors
}

// `field_path` and `key_path` live with `FieldError`, so that every section of the model can
// name its fields without importing the validator.
pub(crate) use super::field_error::{field_path, key_path};

/// `base[i]`, for a list item.
pub(crate) fn index_path(base: &str, index: usize) -> String {
    format!("{base}[{index}]")
}

/// A user's value, quoted and cut short so that one huge value cannot flood the message.
fn quoted(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}...")
    }
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(path, message));
    }

    fn metadata(&mut self, metadata: &Metadata) {
        if let Err(message) = check_release_name(&metadata.name) {
            self.error("metadata.name", message);
        }
        for (key, value) in &metadata.labels {
            let path = key_path("metadata.labels", key);
            if let Err(message) = check_label_key(key) {
                self.error(path.clone(), message);
            }
            if let Err(message) = check_label_value(value) {
                self.error(path, message);
            }
        }
    }

    fn spec(&mut self, base: &str, spec: &ReleaseSpec) {
        self.service(&field_path(base, "service"), &spec.service);
        self.task_definition(&field_path(base, "taskDefinition"), &spec.task_definition);
        let strategy = field_path(base, "strategy");
        let set = spec.strategy.all_set();
        if set.len() != 1 {
            let names = crate::model::Strategy::NAMES.join(", ");
            let got: Vec<&str> = set.iter().map(|s| s.name()).collect();
            self.error(
                strategy.clone(),
                if got.is_empty() {
                    format!("must set exactly one strategy ({names})")
                } else {
                    format!(
                        "must set exactly one strategy ({names}), not {}",
                        got.join(" and ")
                    )
                },
            );
        }
        if let Some(code_deploy) = &spec.strategy.code_deploy {
            self.code_deploy(&field_path(&strategy, "codeDeploy"), code_deploy);
        }
        if let Some(ecs) = &spec.strategy.ecs {
            crate::model::ecs::validate(&field_path(&strategy, "ecs"), ecs, &mut self.errors);
        }
        if let Some(task_sets) = &spec.strategy.task_sets {
            crate::model::task_sets::validate(
                &field_path(&strategy, "taskSets"),
                task_sets,
                &mut self.errors,
            );
        }
        if let Some(rollback) = &spec.rollback {
            self.rollback(&field_path(base, "rollback"), rollback);
        }
        if let Some(destinations) = &spec.notifications {
            crate::model::notifications::validate(
                &field_path(base, "notifications"),
                destinations,
                &mut self.errors,
            );
        }
        super::placement::validate(spec, &mut self.errors);
    }

    fn service(&mut self, base: &str, service: &ServiceRef) {
        if let Err(message) = check_cluster(&service.cluster) {
            self.error(field_path(base, "cluster"), message);
        }
        if let Err(message) = check_resource_name(&service.name, "the service name") {
            self.error(field_path(base, "name"), message);
        }
        if let Some(region) = service.region.as_deref().filter(|r| !is_region(r)) {
            self.error(
                field_path(base, "region"),
                format!(
                    "must be {} (got {}); leave it out to use the controller's region",
                    super::names::REGION_FORM,
                    quoted(region)
                ),
            );
        }
        if let Some(Err(problem)) = service
            .role_arn
            .as_deref()
            .map(super::names::RoleArn::parse)
        {
            self.error(
                field_path(base, "roleArn"),
                format!(
                    "must be the IAM role the controller assumes to act in the service's account \
                     (got {}): {problem}; leave it out to act with the controller's own role",
                    quoted(service.role_arn.as_deref().unwrap_or_default())
                ),
            );
        }
    }

    fn task_definition(&mut self, base: &str, td: &TaskDefinitionSpec) {
        if let Err(message) = check_task_definition_from(&td.from) {
            self.error(field_path(base, "from"), message);
        }
        let containers = field_path(base, "containers");
        if td.containers.is_empty() {
            self.error(
                containers.clone(),
                "must name at least one container to change",
            );
        }
        for (name, change) in &td.containers {
            let path = key_path(&containers, name);
            if let Err(message) = check_resource_name(name, "a container name") {
                self.error(path.clone(), message);
            }
            self.container(&path, change);
        }
    }

    fn container(&mut self, base: &str, change: &ContainerChange) {
        if change.image.is_none() && change.environment.is_empty() {
            self.error(
                base,
                "must change the image or the environment (set image, environment, or both)",
            );
        }
        if let Some(Err(message)) = change.image.as_deref().map(check_image) {
            self.error(field_path(base, "image"), message);
        }
        self.environment(&field_path(base, "environment"), &change.environment);
    }

    fn environment(&mut self, base: &str, environment: &BTreeMap<String, String>) {
        const MAX_NAME: usize = 255;
        const MAX_VALUE: usize = 32_768;
        for (name, value) in environment {
            let path = key_path(base, name);
            let valid_name = name.len() <= MAX_NAME
                && name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_name {
                self.error(
                    path.clone(),
                    format!(
                        "environment variable names must start with a letter or '_' and hold \
                         only letters, digits and '_', at most {MAX_NAME} characters (got {})",
                        quoted(name)
                    ),
                );
            }
            // The value itself is never echoed: environments often carry secrets.
            let len = char_len(value);
            if len > MAX_VALUE {
                self.error(
                    path,
                    format!("must be at most {MAX_VALUE} characters (got {len})"),
                );
            }
        }
    }

    fn code_deploy(&mut self, base: &str, cd: &CodeDeployStrategy) {
        if let Err(message) = check_codedeploy_name(&cd.application, "the CodeDeploy application") {
            self.error(field_path(base, "application"), message);
        }
        if let Err(message) =
            check_codedeploy_name(&cd.deployment_group, "the CodeDeploy deployment group")
        {
            self.error(field_path(base, "deploymentGroup"), message);
        }
        if let Some(Err(message)) = cd.deployment_config.as_deref().map(check_deployment_config) {
            self.error(field_path(base, "deploymentConfig"), message);
        }
        if let Some(analysis) = &cd.analysis {
            crate::model::analysis::validate(
                &field_path(base, "analysis"),
                analysis,
                &mut self.errors,
            );
        }
    }

    fn rollback(&mut self, base: &str, rollback: &RollbackSpec) {
        const MAX_NAME: usize = 255;
        let alarms = field_path(base, "alarms");
        if rollback.alarms.len() > MAX_ROLLBACK_ALARMS {
            self.error(
                alarms.clone(),
                format!(
                    "must list at most {MAX_ROLLBACK_ALARMS} alarms, CodeDeploy's limit (got {}); \
                     combine alarms into a CloudWatch composite alarm",
                    rollback.alarms.len()
                ),
            );
        }
        let mut first_seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, alarm) in rollback.alarms.iter().enumerate() {
            let path = index_path(&alarms, i);
            let len = char_len(alarm);
            if alarm.is_empty() {
                self.error(path, "must not be empty; give a CloudWatch alarm name");
            } else if len > MAX_NAME {
                self.error(
                    path,
                    format!("CloudWatch alarm names are at most {MAX_NAME} characters (got {len})"),
                );
            } else if alarm.chars().any(char::is_control) {
                self.error(path, "must not contain control characters");
            } else if let Some(first) = first_seen.get(alarm.as_str()) {
                self.error(
                    path,
                    format!(
                        "duplicates {} ({}); list each alarm once",
                        index_path(&alarms, *first),
                        quoted(alarm)
                    ),
                );
            } else {
                first_seen.insert(alarm, i);
            }
        }
    }
}

fn check_release_name(name: &str) -> Result<(), String> {
    const RULE: &str = "1 to 63 lower-case letters, digits and '-', starting and ending with a \
                        letter or digit";
    if name.is_empty() {
        return Err(format!("must not be empty; use {RULE}"));
    }
    let len = char_len(name);
    if len > 63 {
        return Err(format!(
            "must be at most 63 characters (got {len}); use {RULE}"
        ));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let valid = name.chars().all(|c| allowed(c) || c == '-')
        && name.starts_with(allowed)
        && name.ends_with(allowed);
    if valid {
        Ok(())
    } else {
        Err(format!("must be {RULE} (got {})", quoted(name)))
    }
}

fn check_label_key(key: &str) -> Result<(), String> {
    let valid = (1..=63).contains(&char_len(key))
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "label keys must be 1 to 63 letters, digits, '.', '_', '/' and '-' (got {})",
            quoted(key)
        ))
    }
}

fn check_label_value(value: &str) -> Result<(), String> {
    let valid = char_len(value) <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "label values must be at most 63 letters, digits, '.', '_' and '-', or empty (got {})",
            quoted(value)
        ))
    }
}

/// The ECS naming rule for clusters, services, task definition families and containers.
fn is_resource_name(s: &str) -> bool {
    (1..=255).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn check_resource_name(s: &str, what: &str) -> Result<(), String> {
    if s.is_empty() {
        Err(format!(
            "must not be empty; give {what}: 1 to 255 letters, digits, '-' and '_'"
        ))
    } else if is_resource_name(s) {
        Ok(())
    } else {
        Err(format!(
            "{what} must be 1 to 255 letters, digits, '-' and '_' (got {})",
            quoted(s)
        ))
    }
}

fn check_cluster(cluster: &str) -> Result<(), String> {
    const FORMS: &str = "a cluster name (1 to 255 letters, digits, '-' and '_') or a cluster ARN \
                         (arn:<partition>:ecs:<region>:<12-digit account>:cluster/<name>)";
    if cluster.is_empty() {
        return Err(format!("must not be empty; give {FORMS}"));
    }
    if cluster.starts_with("arn:") {
        let problem = match parse_ecs_arn(cluster) {
            Ok(("cluster", name)) if is_resource_name(name) => return Ok(()),
            Ok(("cluster", name)) => format!(
                "the cluster name in the ARN must be 1 to 255 letters, digits, '-' and '_' \
                 (got {})",
                quoted(name)
            ),
            Ok((kind, _)) => format!("the ARN names a {kind}, not a cluster"),
            Err(problem) => problem,
        };
        return Err(format!("must be {FORMS}; {problem}"));
    }
    if is_resource_name(cluster) {
        Ok(())
    } else {
        Err(format!("must be {FORMS} (got {})", quoted(cluster)))
    }
}

fn check_task_definition_from(from: &str) -> Result<(), String> {
    const FORMS: &str = "a task definition family (1 to 255 letters, digits, '-' and '_'; its \
                         latest ACTIVE revision is deployed) or a full task definition ARN \
                         (arn:<partition>:ecs:<region>:<12-digit account>:task-definition/\
                         <family>:<revision>)";
    if from.is_empty() {
        return Err(format!("must not be empty; give {FORMS}"));
    }
    if from.starts_with("arn:") {
        let problem = match parse_ecs_arn(from) {
            Ok(("task-definition", resource)) => match resource.rsplit_once(':') {
                Some((family, revision)) if is_resource_name(family) && is_revision(revision) => {
                    return Ok(());
                }
                Some((family, _)) if !is_resource_name(family) => format!(
                    "the family in the ARN must be 1 to 255 letters, digits, '-' and '_' (got {})",
                    quoted(family)
                ),
                Some((_, revision)) => format!(
                    "the revision after the family must be a positive whole number (got {})",
                    quoted(revision)
                ),
                None => "the ARN must end with <family>:<revision>".to_owned(),
            },
            Ok((kind, _)) => format!("the ARN names a {kind}, not a task definition"),
            Err(problem) => problem,
        };
        return Err(format!("must be {FORMS}; {problem}"));
    }
    if let Some((family, revision)) = from
        .rsplit_once(':')
        .filter(|(family, revision)| is_resource_name(family) && is_revision(revision))
    {
        // ECS itself accepts "family:revision", but pinning a revision without its account and
        // region is ambiguous across accounts; the document asks for one of the two clear forms.
        return Err(format!(
            "{} is a family and a revision; use the family alone ({}, whose latest ACTIVE \
             revision is deployed) or the full task definition ARN \
             (arn:<partition>:ecs:<region>:<12-digit account>:task-definition/{family}:{revision})",
            quoted(from),
            quoted(family)
        ));
    }
    if is_resource_name(from) {
        Ok(())
    } else {
        Err(format!("must be {FORMS} (got {})", quoted(from)))
    }
}

fn is_revision(s: &str) -> bool {
    (1..=10).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_digit())
        && s.parse::<u64>().is_ok_and(|n| n > 0)
}

/// Splits `arn:<partition>:ecs:<region>:<account>:<type>/<rest>` into `(type, rest)`, or says
/// which part is wrong.
fn parse_ecs_arn(arn: &str) -> Result<(&str, &str), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_arn, partition, service, region, account, resource] = parts[..] else {
        return Err(format!("{} has too few ':'-separated parts", quoted(arn)));
    };
    let valid_partition = partition == "aws"
        || partition.strip_prefix("aws-").is_some_and(|rest| {
            !rest.is_empty()
                && !rest.ends_with('-')
                && rest.chars().all(|c| c.is_ascii_lowercase() || c == '-')
        });
    if !valid_partition {
        return Err(format!(
            "the partition must be aws, aws-cn, aws-us-gov or another AWS partition (got {})",
            quoted(partition)
        ));
    }
    if service != "ecs" {
        return Err(format!(
            "the service part must be ecs (got {})",
            quoted(service)
        ));
    }
    if !is_region(region) {
        return Err(format!(
            "the region must be an AWS region name such as us-east-1 (got {})",
            quoted(region)
        ));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "the account must be 12 digits (got {})",
            quoted(account)
        ));
    }
    match resource.split_once('/') {
        Some((kind, rest)) => Ok((kind, rest)),
        None => Err(format!(
            "the resource part must be <type>/<name> (got {})",
            quoted(resource)
        )),
    }
}

use super::names::is_region;

/// An OCI/Docker image reference: `[host[:port]/]path[:tag][@sha256:<64 hex>]`.
fn check_image(image: &str) -> Result<(), String> {
    const MAX_LEN: usize = 1024;
    const FORM: &str = "[registry/]repository[:tag][@sha256:digest], such as \
                        111122223333.dkr.ecr.us-east-1.amazonaws.com/web:1.4.2";
    if image.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if image.chars().any(char::is_whitespace) {
        return Err(format!(
            "must not contain whitespace (got {}); an image reference is {FORM}",
            quoted(image)
        ));
    }
    let len = char_len(image);
    if len > MAX_LEN {
        return Err(format!("must be at most {MAX_LEN} characters (got {len})"));
    }
    let (name_and_tag, digest) = match image.split_once('@') {
        Some((name_and_tag, digest)) => (name_and_tag, Some(digest)),
        None => (image, None),
    };
    if let Some(digest) = digest {
        let valid = digest.strip_prefix("sha256:").is_some_and(|hex| {
            hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if !valid {
            return Err(format!(
                "the digest after '@' must be sha256: followed by 64 lower-case hex digits \
                 (got {})",
                quoted(digest)
            ));
        }
    }
    // A ':' after the last '/' starts the tag; one before it is a registry port.
    let last_slash = name_and_tag.rfind('/');
    let (name, tag) = match name_and_tag.rfind(':') {
        Some(i) if last_slash.is_none_or(|slash| i > slash) => {
            (&name_and_tag[..i], Some(&name_and_tag[i + 1..]))
        }
        _ => (name_and_tag, None),
    };
    if let Some(tag) = tag {
        if tag.is_empty() {
            return Err(format!(
                "the tag after ':' must not be empty (got {}); give a tag such as 1.4.2 or \
                 remove the ':'",
                quoted(image)
            ));
        }
        let valid = tag.len() <= 128
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            return Err(format!(
                "the tag must be 1 to 128 letters, digits, '_', '.' and '-', not starting with \
                 '.' or '-' (got {})",
                quoted(tag)
            ));
        }
    }
    if name.is_empty() {
        return Err(format!(
            "must start with a repository before the ':' tag or '@' digest (got {}); an image \
             reference is {FORM}",
            quoted(image)
        ));
    }
    let mut components: Vec<&str> = name.split('/').collect();
    // Docker's rule: the first of several components is a registry host when it looks like one.
    let host = if components.len() > 1
        && (components[0].contains(['.', ':']) || components[0] == "localhost")
    {
        Some(components.remove(0))
    } else {
        None
    };
    if let Some(host) = host.filter(|h| !is_registry_host(h)) {
        return Err(format!(
            "the registry {} must be a host name with an optional :port, such as \
             registry.example.com:5000",
            quoted(host)
        ));
    }
    let path_len = name.len() - host.map_or(0, |h| h.len() + 1);
    if path_len > 255 {
        return Err(format!(
            "the repository path must be at most 255 characters (got {path_len})"
        ));
    }
    for component in components {
        if component.is_empty() {
            return Err(format!(
                "the repository path must not have empty parts ('//', or a '/' at either end) \
                 (got {})",
                quoted(image)
            ));
        }
        if component.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(format!(
                "repository names must be lower case (got {})",
                quoted(component)
            ));
        }
        if !is_path_component(component) {
            return Err(format!(
                "each part of the repository path must be lower-case letters and digits, \
                 joined by single '.', '_' or '-' (also '__' or '--'), not at either end \
                 (got {})",
                quoted(component)
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*`: the reference grammar of docker/distribution, a small
/// superset of ECR's `[a-z0-9]+([._-][a-z0-9]+)*` so that no image Docker can pull is refused.
fn is_path_component(s: &str) -> bool {
    let bytes = s.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        match bytes[i] {
            b'.' => i += 1,
            b'_' if bytes.get(i + 1) == Some(&b'_') => i += 2,
            b'_' => i += 1,
            b'-' => {
                while i < bytes.len() && bytes[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

fn is_registry_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let valid_port =
        port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    valid_port && name.len() <= 253 && name.split('.').all(valid_label)
}

fn check_codedeploy_name(s: &str, what: &str) -> Result<(), String> {
    let len = char_len(s);
    if s.is_empty() {
        Err(format!("must not be empty; give the name of {what}"))
    } else if len > 100 {
        Err(format!(
            "must be at most 100 characters, CodeDeploy's limit (got {len})"
        ))
    } else if s.chars().any(char::is_control) {
        Err("must not contain control characters".to_owned())
    } else {
        Ok(())
    }
}

fn check_deployment_config(config: &str) -> Result<(), String> {
    const PREFIX: &str = "CodeDeployDefault.";
    let len = char_len(config);
    if config.is_empty() {
        return Err(
            "must not be empty; leave it out to use the deployment group's own config".to_owned(),
        );
    }
    if len > 100 {
        return Err(format!(
            "must be at most 100 characters, CodeDeploy's limit (got {len})"
        ));
    }
    if let Some(rest) = config.strip_prefix(PREFIX) {
        if PREDEFINED_ECS_DEPLOYMENT_CONFIGS.contains(&config) {
            return Ok(());
        }
        let near = closest(config, &PREDEFINED_ECS_DEPLOYMENT_CONFIGS).or_else(|| {
            PREDEFINED_ECS_DEPLOYMENT_CONFIGS
                .into_iter()
                .find(|known| known.starts_with(config))
        });
        let hint = if let Some(near) = near {
            format!(" (did you mean {near}?)")
        } else if !rest.starts_with("ECS") {
            " (it is not an ECS config: CodeDeployDefault configs without ECS in their name are \
             for EC2/on-premises or Lambda deployments)"
                .to_owned()
        } else {
            String::new()
        };
        return Err(format!(
            "{} is not a predefined ECS deployment config{hint}; use one of {}, or the name of \
             a custom deployment config",
            quoted(config),
            PREDEFINED_ECS_DEPLOYMENT_CONFIGS.join(", ")
        ));
    }
    if config
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        Ok(())
    } else {
        Err(format!(
            "must be one of {} or a custom deployment config name of letters, digits, '.', '_' \
             and '-' (got {})",
            PREDEFINED_ECS_DEPLOYMENT_CONFIGS.join(", "),
            quoted(config)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{OnDrift, Promotion, Strategy};

    fn valid_doc() -> ReleaseDocument {
        ReleaseDocument {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            metadata: Metadata {
                name: "web".to_owned(),
                labels: BTreeMap::from([("team".to_owned(), "storefront".to_owned())]),
            },
            spec: ReleaseSpec {
                service: ServiceRef {
                    cluster: "prod".to_owned(),
                    name: "web".to_owned(),
                    region: Some("us-east-1".to_owned()),
                    role_arn: None,
                },
                task_definition: TaskDefinitionSpec {
                    from: "web".to_owned(),
                    containers: BTreeMap::from([(
                        "web".to_owned(),
                        ContainerChange {
                            image: Some(
                                "111122223333.dkr.ecr.us-east-1.amazonaws.com/web:1.4.2".to_owned(),
                            ),
                            environment: BTreeMap::from([(
                                "FEATURE_X".to_owned(),
                                "on".to_owned(),
                            )]),
                        },
                    )]),
                },
                strategy: Strategy {
                    code_deploy: Some(CodeDeployStrategy {
                        application: "web".to_owned(),
                        deployment_group: "web-prod".to_owned(),
                        deployment_config: Some(
                            "CodeDeployDefault.ECSCanary10Percent5Minutes".to_owned(),
                        ),
                        promotion: Promotion::Auto,
                        analysis: None,
                    }),
                    ..Strategy::default()
                },
                rollback: Some(RollbackSpec {
                    alarms: vec!["web-5xx".to_owned()],
                }),
                paused: false,
                on_drift: OnDrift::Report,
                notifications: None,
            },
        }
    }

    fn web(doc: &mut ReleaseDocument) -> &mut ContainerChange {
        doc.spec
            .task_definition
            .containers
            .get_mut("web")
            .expect("the valid document has a web container")
    }

    fn paths(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn accepts_the_product_example() {
        assert_eq!(validate_document(&valid_doc()), vec![]);
    }

    #[test]
    fn field_error_displays_path_then_message() {
        let e = FieldError::new(
            "spec.taskDefinition.containers.web.image",
            "must not be empty",
        );
        assert_eq!(
            e.to_string(),
            "spec.taskDefinition.containers.web.image: must not be empty"
        );
    }

    #[test]
    fn accepts_and_rejects_image_references() {
        let digest = "a".repeat(64);
        let good = [
            "111122223333.dkr.ecr.us-east-1.amazonaws.com/web:1.4.2".to_owned(),
            "nginx".to_owned(),
            "nginx:1.27".to_owned(),
            "public.ecr.aws/nginx/nginx:1.27-alpine".to_owned(),
            format!("localhost:5000/a/b@sha256:{digest}"),
            "ghcr.io/org/app:v1.2.3".to_owned(),
            format!("web:1@sha256:{digest}"),
            "registry.example.com:5000/team/web".to_owned(),
            "a__b/c--d/e.f_g:_tag".to_owned(),
            "localhost:5000".to_owned(), // repository "localhost", tag "5000", as Docker reads it
        ];
        for image in &good {
            assert_eq!(check_image(image), Ok(()), "{image} should be accepted");
        }
        let bad: [(String, &str); 16] = [
            ("Web:1".into(), "lower case"),
            ("web:".into(), "tag after ':' must not be empty"),
            ("web:1 2".into(), "whitespace"),
            (":1.0".into(), "repository before"),
            ("web@sha256:abc".into(), "64 lower-case hex"),
            ("".into(), "must not be empty"),
            (
                format!("web@sha256:{}", "A".repeat(64)),
                "64 lower-case hex",
            ),
            ("web@md5:abc".into(), "sha256"),
            ("web:.1".into(), "not starting with '.'"),
            (format!("web:{}", "a".repeat(129)), "1 to 128"),
            ("a//b".into(), "empty parts"),
            ("web/".into(), "empty parts"),
            ("we..b".into(), "joined by single"),
            ("-web".into(), "joined by single"),
            ("bad_host.:5000/web".into(), "registry"),
            (format!("web:{}", "1".repeat(1030)), "at most 1024"),
        ];
        for (image, expected) in &bad {
            let message = check_image(image).expect_err(image);
            assert!(
                message.contains(expected),
                "{image}: {message:?} should mention {expected:?}"
            );
        }
    }

    #[test]
    fn closest_suggests_names_at_most_two_edits_away_ignoring_case() {
        assert_eq!(
            closest("deploymentgroupp", &["application", "deploymentGroup"]),
            Some("deploymentGroup")
        );
        assert_eq!(closest("Aplication", &["application"]), Some("application"));
        assert_eq!(closest("zzz", &["application"]), None);
        assert_eq!(closest(&"a".repeat(65), &["a"]), None);
    }

    #[test]
    fn rejects_unknown_codedeploy_default_config() {
        let cases = [
            (
                "CodeDeployDefault.ECSLinear10PercentEvery1Minute",
                "did you mean CodeDeployDefault.ECSLinear10PercentEvery1Minutes?",
            ),
            ("CodeDeployDefault.OneAtATime", "not an ECS config"),
            ("CodeDeployDefault.ECSCanary50Percent5Minutes", "use one of"),
            (
                "CodeDeployDefault.ecsallatonce",
                "did you mean CodeDeployDefault.ECSAllAtOnce?",
            ),
        ];
        for (config, expected) in cases {
            let mut doc = valid_doc();
            doc.spec
                .strategy
                .code_deploy
                .as_mut()
                .expect("codeDeploy is set")
                .deployment_config = Some(config.to_owned());
            let errors = validate_document(&doc);
            assert_eq!(
                paths(&errors),
                ["spec.strategy.codeDeploy.deploymentConfig"],
                "{config}"
            );
            assert!(errors[0].message.contains(expected), "{}", errors[0]);
            for known in PREDEFINED_ECS_DEPLOYMENT_CONFIGS {
                assert!(errors[0].message.contains(known), "{}", errors[0]);
            }
        }
    }

    #[test]
    fn accepts_predefined_and_custom_deployment_configs() {
        for config in PREDEFINED_ECS_DEPLOYMENT_CONFIGS
            .iter()
            .copied()
            .chain(["my-canary.25_percent", "Custom1"])
        {
            assert_eq!(check_deployment_config(config), Ok(()), "{config}");
        }
        for config in ["", "has space", "ünïcode", &"x".repeat(101)] {
            assert!(check_deployment_config(config).is_err(), "{config}");
        }
    }

    #[test]
    fn validates_metadata_names_and_labels() {
        let names = [
            ("web", true),
            ("a", true),
            ("web-2", true),
            ("0web", true),
            (&*"a".repeat(63), true),
            (&*"a".repeat(64), false),
            ("", false),
            ("Web", false),
            ("-web", false),
            ("web-", false),
            ("web_2", false),
            ("web.2", false),
        ];
        for (name, ok) in names {
            assert_eq!(check_release_name(name).is_ok(), ok, "{name:?}");
        }
        let mut doc = valid_doc();
        doc.metadata.labels = BTreeMap::from([
            ("app.kubernetes.io/name".to_owned(), "web".to_owned()),
            ("empty".to_owned(), String::new()),
            ("bad key".to_owned(), "x".to_owned()),
            ("team".to_owned(), "store front".to_owned()),
            ("long".to_owned(), "v".repeat(64)),
        ]);
        let errors = validate_document(&doc);
        assert_eq!(
            paths(&errors),
            [
                r#"metadata.labels["bad key"]"#,
                "metadata.labels.long",
                "metadata.labels.team",
            ]
        );
    }

    #[test]
    fn validates_service_clusters_names_and_regions() {
        let clusters = [
            ("prod", true),
            ("prod_cluster-1", true),
            ("arn:aws:ecs:us-east-1:111122223333:cluster/prod", true),
            (
                "arn:aws-us-gov:ecs:us-gov-west-1:111122223333:cluster/prod",
                true,
            ),
            ("", false),
            ("prod cluster", false),
            ("arn:aws:ecs:us-east-1:1111:cluster/prod", false),
            ("arn:aws:ec2:us-east-1:111122223333:cluster/prod", false),
            ("arn:aws:ecs:us-east-1:111122223333:service/prod/web", false),
            ("arn:aws:ecs:us-east-1:111122223333:cluster/", false),
        ];
        for (cluster, ok) in clusters {
            assert_eq!(check_cluster(cluster).is_ok(), ok, "{cluster:?}");
        }
        let regions = [
            ("us-east-1", true),
            ("eu-central-2", true),
            ("us-gov-west-1", true),
            ("us-isob-east-1", true),
            ("US-EAST-1", false),
            ("us-east", false),
            ("useast1", false),
            ("us--1", false),
            ("", false),
        ];
        for (region, ok) in regions {
            assert_eq!(is_region(region), ok, "{region:?}");
        }
        let mut doc = valid_doc();
        doc.spec.service.cluster = String::new();
        doc.spec.service.name = "web service".to_owned();
        doc.spec.service.region = Some("Frankfurt".to_owned());
        let errors = validate_document(&doc);
        assert_eq!(
            paths(&errors),
            [
                "spec.service.cluster",
                "spec.service.name",
                "spec.service.region"
            ]
        );
        assert!(errors[0].message.starts_with("must not be empty"));
    }

    #[test]
    fn validates_task_definition_from() {
        let ok = [
            "web",
            "web_2-x",
            "arn:aws:ecs:us-east-1:111122223333:task-definition/web:12",
            "arn:aws-cn:ecs:cn-north-1:111122223333:task-definition/web:1",
        ];
        for from in ok {
            assert_eq!(check_task_definition_from(from), Ok(()), "{from}");
        }
        let bad = [
            ("", "must not be empty"),
            ("web:12", "use the family alone"),
            ("web.v2", "must be a task definition family"),
            (
                "arn:aws:ecs:us-east-1:111122223333:task-definition/web",
                "must end with <family>:<revision>",
            ),
            (
                "arn:aws:ecs:us-east-1:111122223333:task-definition/web:0",
                "positive whole number",
            ),
            (
                "arn:aws:ecs:us-east-1:111122223333:task-definition/web:latest",
                "positive whole number",
            ),
            (
                "arn:aws:ecs:us-east-1:111122223333:cluster/web",
                "not a task definition",
            ),
            ("arn:aws:ecs:us-east-1", "too few"),
            (
                "arn:aws:ecs:useast1:111122223333:task-definition/web:1",
                "the region",
            ),
            (
                "arn:azure:ecs:us-east-1:111122223333:task-definition/web:1",
                "the partition",
            ),
        ];
        for (from, expected) in bad {
            let message = check_task_definition_from(from).expect_err(from);
            assert!(message.contains(expected), "{from}: {message}");
        }
    }

    #[test]
    fn containers_need_a_change() {
        let mut doc = valid_doc();
        doc.spec.task_definition.containers.clear();
        let errors = validate_document(&doc);
        assert_eq!(
            errors,
            [FieldError::new(
                "spec.taskDefinition.containers",
                "must name at least one container to change"
            )]
        );

        let mut doc = valid_doc();
        doc.spec.task_definition.containers.insert(
            "sidecar".to_owned(),
            ContainerChange {
                image: None,
                environment: BTreeMap::new(),
            },
        );
        doc.spec.task_definition.containers.insert(
            "bad name".to_owned(),
            ContainerChange {
                image: Some("nginx".to_owned()),
                environment: BTreeMap::new(),
            },
        );
        let errors = validate_document(&doc);
        assert_eq!(
            paths(&errors),
            [
                r#"spec.taskDefinition.containers["bad name"]"#,
                "spec.taskDefinition.containers.sidecar",
            ]
        );
        assert!(
            errors[1]
                .message
                .starts_with("must change the image or the environment")
        );
    }

    #[test]
    fn environment_alone_is_a_change() {
        let mut doc = valid_doc();
        web(&mut doc).image = None;
        assert_eq!(validate_document(&doc), vec![]);
    }

    #[test]
    fn validates_environment_names_and_values() {
        let mut doc = valid_doc();
        web(&mut doc).environment = BTreeMap::from([
            ("_OK_1".to_owned(), String::new()),
            ("1BAD".to_owned(), "x".to_owned()),
            ("BAD-NAME".to_owned(), "x".to_owned()),
            ("LONG".to_owned(), "s".repeat(32_769)),
            ("MAX".to_owned(), "s".repeat(32_768)),
            ("N".repeat(256), "x".to_owned()),
        ]);
        let errors = validate_document(&doc);
        assert_eq!(
            paths(&errors),
            [
                "spec.taskDefinition.containers.web.environment.1BAD",
                "spec.taskDefinition.containers.web.environment.BAD-NAME",
                "spec.taskDefinition.containers.web.environment.LONG",
                &format!(
                    "spec.taskDefinition.containers.web.environment.{}",
                    "N".repeat(256)
                ),
            ]
        );
        // Values may be secrets: a message never repeats one.
        assert!(!errors[2].message.contains("sss"), "{}", errors[2]);
    }

    #[test]
    fn empty_image_says_must_not_be_empty() {
        let mut doc = valid_doc();
        web(&mut doc).image = Some(String::new());
        let errors = validate_document(&doc);
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["spec.taskDefinition.containers.web.image: must not be empty"]
        );
    }

    #[test]
    fn strategy_must_be_set() {
        let mut doc = valid_doc();
        doc.spec.strategy.code_deploy = None;
        assert_eq!(
            validate_document(&doc)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["spec.strategy: must set exactly one strategy (codeDeploy, taskSets, ecs)"]
        );
    }

    #[test]
    fn validates_codedeploy_names() {
        let mut doc = valid_doc();
        let cd = doc
            .spec
            .strategy
            .code_deploy
            .as_mut()
            .expect("codeDeploy is set");
        cd.application = String::new();
        cd.deployment_group = "a\u{7}b".to_owned();
        let errors = validate_document(&doc);
        assert_eq!(
            paths(&errors),
            [
                "spec.strategy.codeDeploy.application",
                "spec.strategy.codeDeploy.deploymentGroup"
            ]
        );
        assert!(check_codedeploy_name(&"x".repeat(100), "x").is_ok());
        assert!(check_codedeploy_name(&"x".repeat(101), "x").is_err());
        assert!(check_codedeploy_name("ünïcödé is fine", "x").is_ok());
    }

    #[test]
    fn validates_rollback_alarms() {
        let mut doc = valid_doc();
        let mut alarms: Vec<String> = (0..10).map(|i| format!("alarm-{i}")).collect();
        alarms[2] = "alarm-0".to_owned();
        alarms.push(String::new());
        alarms.push("x".repeat(256));
        doc.spec.rollback = Some(RollbackSpec { alarms });
        let errors = validate_document(&doc);
        assert_eq!(
            paths(&errors),
            [
                "spec.rollback.alarms",
                "spec.rollback.alarms[2]",
                "spec.rollback.alarms[10]",
                "spec.rollback.alarms[11]",
            ]
        );
        assert!(errors[0].message.contains("at most 10"), "{}", errors[0]);
        assert!(
            errors[1]
                .message
                .contains("duplicates spec.rollback.alarms[0]"),
            "{}",
            errors[1]
        );
    }

    #[test]
    fn reports_every_problem_in_document_order() {
        let mut doc = valid_doc();
        doc.api_version = "switchyard.dev/v2".to_owned();
        doc.kind = "Deployment".to_owned();
        doc.metadata.name = "Web".to_owned();
        doc.spec.service.cluster = "prod cluster".to_owned();
        doc.spec.task_definition.from = "web:3".to_owned();
        web(&mut doc).image = Some("Web:1".to_owned());
        doc.spec.strategy.code_deploy = None;
        doc.spec.rollback = Some(RollbackSpec {
            alarms: vec![String::new()],
        });
        let errors = validate_document(&doc);
        assert_eq!(
            paths(&errors),
            [
                "apiVersion",
                "kind",
                "metadata.name",
                "spec.service.cluster",
                "spec.taskDefinition.from",
                "spec.taskDefinition.containers.web.image",
                "spec.strategy",
                "spec.rollback.alarms[0]",
            ]
        );
        assert!(errors.iter().all(|e| !e.message.is_empty()));
        // The spec alone reports the same spec problems.
        assert_eq!(validate_spec(&doc.spec), errors[3..].to_vec());
    }

    #[test]
    fn messages_cut_long_values_short() {
        let mut doc = valid_doc();
        doc.metadata.name = "X".repeat(10_000);
        let errors = validate_document(&doc);
        assert!(errors[0].message.len() < 300, "{}", errors[0]);
    }

    #[test]
    fn path_helpers_quote_keys_that_are_not_plain() {
        assert_eq!(key_path("a", "web"), "a.web");
        assert_eq!(key_path("a", "x.y"), r#"a["x.y"]"#);
        assert_eq!(key_path("a", ""), r#"a[""]"#);
        assert_eq!(key_path("a", "q\""), r#"a["q\""]"#);
        assert_eq!(index_path("a", 3), "a[3]");
        assert_eq!(field_path("", "spec"), "spec");
    }
}
