//! The Terraform in `deploy/terraform`, checked with the real Terraform CLI, offline: the AWS
//! provider comes from the filesystem mirror in `/opt/tf-plugins`, and the AWS APIs are a
//! moto server. Formatting, validation of every module and the example, plans of the example
//! (CodeDeploy resources can be planned but not applied against moto), an apply of the
//! controller module whose table the `switchyard` binary then uses, an apply of the
//! external-service and ecs-service modules (their rendered releases, the bootstrap of the
//! first task set, and plans showing that Terraform leaves what releases change alone), a
//! plan of the service modules from a state of their layout before `service-core` (nothing
//! destroyed, created or changed), and the controller's IAM policy compared with the actions
//! the code calls.
//!
//! Terraform is expected on these machines (test-world.md) but is not installable from the
//! package registries: without it (or without the provider mirror) these tests fail, saying
//! what is missing, unless `SWITCHYARD_SKIP_TERRAFORM` asks to skip them; then each says so
//! loudly on stderr. `./scripts/test.sh` sets it when Terraform is missing, with a banner
//! before and after the run, so an absent Terraform is never a silent pass. Every test works on its own copy of
//! `deploy/terraform` in a temporary directory, so no `.terraform` directory, lock file or
//! state ever lands in the repository. There is no shared plugin cache: nextest runs every
//! test in its own process, and concurrent inits through one cache raced (a plan found its
//! provider missing while another init rewrote the cache entry). The mirror is in the unpacked
//! layout, so each init just symlinks the provider from it: nothing is copied, nothing shared
//! is written.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard::aws::STORE_ACTIONS;
use switchyard::aws::actions::{
    ASSUME_ROLE_ACTIONS, CONTROLLER_AWS_ACTIONS, GITOPS_APPLY_ACTIONS, GITOPS_PULL_REQUEST_ACTIONS,
    NOTIFICATION_ACTIONS,
};

use crate::moto::Moto;

/// The provider mirror (test-world.md, section 3); `SWITCHYARD_TF_PLUGIN_MIRROR` overrides it.
const DEFAULT_MIRROR: &str = "/opt/tf-plugins";

/// Any single Terraform command gets this long before the test fails.
const COMMAND_LIMIT: Duration = Duration::from_secs(240);

/// A listener whose forward action the controller may weight, in the policy tests.
const LISTENER: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2";

/// Actions that the IAM Service Authorization Reference lists without a resource type: they
/// take `"Resource": "*"` or nothing. A statement with `"*"` may hold only these.
const UNSCOPABLE_ACTIONS: &[&str] = &[
    "ecs:DescribeTaskDefinition",
    "ecs:ListTaskDefinitions",
    "codedeploy:ContinueDeployment",
    "codedeploy:GetDeploymentTarget",
    "codedeploy:StopDeployment",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "cloudwatch:GetMetricData",
    "dynamodb:ListStreams",
    "ecr:GetAuthorizationToken",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Set (to anything but empty or `0`) to skip the Terraform tests where Terraform is missing.
const SKIP_VARIABLE: &str = "SWITCHYARD_SKIP_TERRAFORM";

fn skip_requested() -> bool {
    std::env::var(SKIP_VARIABLE).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Terraform or its provider mirror is missing. The test fails saying what to do, unless
/// skipping was asked for: then it says loudly that it is skipped, on the process's stderr
/// directly (the test harness swallows `eprintln!` of passing tests).
fn missing(reason: &str) {
    if !skip_requested() {
        panic!(
            "{reason}: the Terraform tests need Terraform 1.11 and the AWS provider mirror in \
             {DEFAULT_MIRROR} (test-world.md, section 3), which cannot be installed from the \
             package registries. Install them, or set {SKIP_VARIABLE}=1 to skip these tests \
             (./scripts/test.sh does so when Terraform is missing, and says so)"
        );
    }
    use std::io::Write;
    let message = format!(
        "\n==================================================================\n\
         {reason}: Terraform test SKIPPED ({SKIP_VARIABLE} is set); Terraform is not \
         installable from the package registries\n\
         ==================================================================\n"
    );
    let _ = std::io::stderr().lock().write_all(message.as_bytes());
}

/// A private copy of `deploy/terraform` with a CLI configuration that installs the AWS
/// provider from the mirror only; removed on drop.
struct Terraform {
    binary: PathBuf,
    /// The copy of `deploy/terraform` and the CLI configuration, removed when dropped.
    root: tempfile::TempDir,
    cli_config: PathBuf,
}

impl Terraform {
    /// Terraform with its provider mirror. When either is missing: a failure, or `None`
    /// after a loud message when skipping was asked for (see [`missing`]).
    fn new() -> Option<Terraform> {
        let Some(binary) = which("terraform") else {
            missing("terraform is not on PATH");
            return None;
        };
        let mirror = std::env::var("SWITCHYARD_TF_PLUGIN_MIRROR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(DEFAULT_MIRROR));
        if !mirror.is_dir() {
            missing(&format!(
                "terraform provider mirror {} missing (set SWITCHYARD_TF_PLUGIN_MIRROR)",
                mirror.display()
            ));
            return None;
        }
        let root = tempfile::Builder::new()
            .prefix("switchyard-terraform-")
            .tempdir()
            .expect("a scratch directory");
        copy_tree(
            &repo().join("deploy/terraform"),
            &root.path().join("terraform"),
        );
        let cli_config = root.path().join("terraform.rc");
        std::fs::write(
            &cli_config,
            format!(
                "disable_checkpoint = true\n\
                 provider_installation {{\n\
                 \x20 filesystem_mirror {{\n\
                 \x20   path    = {mirror:?}\n\
                 \x20   include = [\"registry.terraform.io/*/*\"]\n\
                 \x20 }}\n\
                 \x20 direct {{\n\
                 \x20   exclude = [\"registry.terraform.io/*/*\"]\n\
                 \x20 }}\n\
                 }}\n",
                mirror = mirror.display().to_string(),
            ),
        )
        .unwrap();
        Some(Terraform {
            binary,
            root,
            cli_config,
        })
    }

    /// A directory of the copy, relative to `deploy/terraform`.
    fn dir(&self, relative: &str) -> PathBuf {
        self.root.path().join("terraform").join(relative)
    }

    fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .current_dir(dir)
            .args(args)
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1")
            .env_remove("TF_DATA_DIR")
            .env_remove("TF_WORKSPACE")
            .env_remove("TF_LOG");
        // Never real credentials or endpoints: the provider gets test ones explicitly.
        for (key, _) in std::env::vars() {
            if key.starts_with("AWS_") || key.starts_with("TF_VAR_") {
                command.env_remove(key);
            }
        }
        command
    }

    /// Runs `terraform ARGS` in `dir`, panicking with its output unless it succeeds.
    fn run(&self, dir: &Path, args: &[&str]) -> String {
        let output = run_with_limit(self.command(dir, args), COMMAND_LIMIT);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "terraform {} in {} failed ({}):\n{}\n{}",
            args.join(" "),
            dir.display(),
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    fn init(&self, dir: &Path) {
        self.run(
            dir,
            &["init", "-backend=false", "-input=false", "-no-color"],
        );
    }

    /// Plans with `vars` and returns `terraform show -json` of the plan.
    fn plan_json(&self, dir: &Path, vars: &[String]) -> Value {
        let mut args = vec!["plan", "-input=false", "-no-color", "-out=test.tfplan"];
        args.extend(vars.iter().map(String::as_str));
        self.run(dir, &args);
        let json = self.run(dir, &["show", "-json", "-no-color", "test.tfplan"]);
        serde_json::from_str(&json).expect("terraform show -json prints JSON")
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // Leftovers of a manual run in the repository are not part of the configuration.
        if name == ".terraform" || name == ".terraform.lock.hcl" || name.ends_with(".tfstate") {
            continue;
        }
        let target = to.join(&*name);
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Runs a command to completion, reading its output as it comes; kills it after `limit`.
fn run_with_limit(mut command: Command, limit: Duration) -> Output {
    let description = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{description} starts: {e}"));
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{description} did not finish within {limit:?}:\n{}\n{}",
                String::from_utf8_lossy(&stdout.join().unwrap()),
                String::from_utf8_lossy(&stderr.join().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = pipe.read_to_end(&mut buffer);
        buffer
    })
}

/// A provider configuration pointing every AWS service the configurations use at moto.
fn moto_provider(moto: &Moto, region: bool) -> String {
    let endpoint = &moto.endpoint;
    let services = [
        "cloudwatch",
        "codedeploy",
        "dynamodb",
        "ec2",
        "ecs",
        "elbv2",
        "iam",
        "kms",
        "logs",
        "sts",
    ];
    let endpoints: String = services
        .iter()
        .map(|s| format!("    {s} = \"{endpoint}\"\n"))
        .collect();
    format!(
        "provider \"aws\" {{\n\
         {region}\
         \x20 access_key                  = \"test\"\n\
         \x20 secret_key                  = \"test\"\n\
         \x20 skip_credentials_validation = true\n\
         \x20 skip_metadata_api_check     = true\n\
         \x20 skip_requesting_account_id  = true\n\
         \x20 endpoints {{\n{endpoints}  }}\n\
         }}\n",
        region = if region {
            "  region = \"us-east-1\"\n"
        } else {
            ""
        },
    )
}

/// A root configuration that instantiates the controller module against moto's default VPC.
fn controller_root(moto: &Moto, extra_inputs: &str) -> String {
    format!(
        r#"{provider}
data "aws_vpc" "default" {{
  default = true
}}

data "aws_subnets" "default" {{
  filter {{
    name   = "vpc-id"
    values = [data.aws_vpc.default.id]
  }}
}}

resource "aws_ecs_cluster" "test" {{
  name = "switchyard-test"
}}

module "controller" {{
  source = "../modules/controller"

  table_name                   = "switchyard-terraform-test"
  table_deletion_protection    = false
  image                        = "registry.example.com/switchyard:test"
  cluster_arn                  = aws_ecs_cluster.test.arn
  vpc_id                       = data.aws_vpc.default.id
  subnet_ids                   = data.aws_subnets.default.ids
  ecs_services                 = ["prod/web", "prod/search"]
  task_definition_families     = ["web", "search"]
  codedeploy_deployment_groups = ["web/web-prod", "search/search-prod"]
  alarm_names                  = ["web-5xx", "search-5xx"]
  notification_topic_arns      = ["arn:aws:sns:eu-west-1:123456789012:releases"]
  notification_event_buses     = ["default"]
  passable_role_arns           = ["arn:aws:iam::123456789012:role/web-task", "arn:aws:iam::123456789012:role/web-execution"]
  metrics_ingress_cidr_blocks  = ["10.0.0.0/8"]
{extra_inputs}}}

output "table_name" {{
  value = module.controller.table_name
}}
"#,
        provider = moto_provider(moto, true),
    )
}

/// Full-line comments and trailing blank lines removed: the document as YAML sees it.
fn without_comments(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect();
    let mut text = lines.join("\n");
    text.truncate(text.trim_end().len());
    text
}

#[test]
fn the_terraform_is_formatted() {
    let Some(tf) = Terraform::new() else { return };
    let dir = repo().join("deploy/terraform");
    let output = run_with_limit(
        tf.command(&dir, &["fmt", "-check", "-recursive", "-diff", "-no-color"]),
        COMMAND_LIMIT,
    );
    assert!(
        output.status.success(),
        "run `terraform fmt -recursive deploy/terraform`:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_module_and_the_example_validate_without_warnings() {
    let Some(tf) = Terraform::new() else { return };
    for relative in [
        "modules/controller",
        "modules/deploy-permissions",
        "modules/deployer-role",
        "modules/bluegreen-service",
        "modules/gitops",
        "modules/external-service",
        "modules/ecs-service",
        "modules/service-core",
        "examples/complete",
    ] {
        let dir = tf.dir(relative);
        tf.init(&dir);
        let json = tf.run(&dir, &["validate", "-json", "-no-color"]);
        let result: Value = serde_json::from_str(&json).expect("validate -json prints JSON");
        assert_eq!(result["valid"], true, "{relative}: {result:#}");
        assert_eq!(result["warning_count"], 0, "{relative}: {result:#}");
    }
}

/// Every resource of a plan's planned values, by address.
fn planned_resources(plan: &Value) -> BTreeMap<String, Value> {
    module_resources(&plan["planned_values"]["root_module"])
}

/// Every resource of a module of `terraform show -json` (a plan's planned values, or the
/// state's values), its child modules' included, by address.
fn module_resources(root: &Value) -> BTreeMap<String, Value> {
    fn walk(module: &Value, into: &mut BTreeMap<String, Value>) {
        for resource in module["resources"].as_array().into_iter().flatten() {
            into.insert(
                resource["address"].as_str().unwrap().to_string(),
                resource.clone(),
            );
        }
        for child in module["child_modules"].as_array().into_iter().flatten() {
            walk(child, into);
        }
    }
    let mut resources = BTreeMap::new();
    walk(root, &mut resources);
    resources
}

fn values<'a>(resources: &'a BTreeMap<String, Value>, address: &str) -> &'a Value {
    &resources.get(address).unwrap_or_else(|| {
        panic!(
            "{address} is not planned; planned: {:?}",
            resources.keys().collect::<Vec<_>>()
        )
    })["values"]
}

#[test]
fn the_example_plans_against_moto_and_renders_its_release_yaml() {
    let Some(tf) = Terraform::new() else { return };
    let moto = Moto::start();
    let dir = tf.dir("examples/complete");
    // An override file merges into the example's provider block (region from the example).
    std::fs::write(dir.join("moto_override.tf"), moto_provider(&moto, false)).unwrap();
    tf.init(&dir);
    let plan = tf.plan_json(
        &dir,
        &[
            "-var=vpc_id=vpc-0123456789abcdef0".into(),
            r#"-var=public_subnet_ids=["subnet-0aaaaaaaaaaaaaaa1","subnet-0aaaaaaaaaaaaaaa2"]"#
                .into(),
            r#"-var=private_subnet_ids=["subnet-0bbbbbbbbbbbbbbb1","subnet-0bbbbbbbbbbbbbbb2"]"#
                .into(),
            "-var=switchyard_image=registry.example.com/switchyard:test".into(),
        ],
    );
    let resources = planned_resources(&plan);

    // The rendered release document is the example's release.yaml, and it is valid.
    let rendered = plan["planned_values"]["outputs"]["release_yaml"]["value"]
        .as_str()
        .expect("release_yaml is known at plan time")
        .to_string();
    let file =
        std::fs::read_to_string(repo().join("deploy/terraform/examples/complete/release.yaml"))
            .unwrap();
    assert_eq!(
        without_comments(&file),
        without_comments(&rendered),
        "examples/complete/release.yaml differs from `terraform output -raw release_yaml`"
    );
    let rendered_path = tf.root.path().join("rendered-release.yaml");
    std::fs::write(&rendered_path, &rendered).unwrap();
    let validated = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["validate", "-f"])
        .arg(&rendered_path)
        .output()
        .unwrap();
    assert!(
        validated.status.success(),
        "the rendered release is invalid: {}",
        String::from_utf8_lossy(&validated.stderr)
    );

    // The service is CodeDeploy's, and Terraform leaves what CodeDeploy changes alone
    // (lifecycle blocks are not in the plan; their effect is checked on the configuration).
    let service = values(&resources, "module.web.aws_ecs_service.this[0]");
    assert_eq!(service["deployment_controller"][0]["type"], "CODE_DEPLOY");
    assert_eq!(service["launch_type"], "FARGATE");
    assert!(!resources.contains_key("module.web.aws_ecs_service.autoscaled[0]"));
    let source = std::fs::read_to_string(tf.dir("modules/bluegreen-service/main.tf")).unwrap();
    assert!(source.contains("ignore_changes = [task_definition, load_balancer]\n"));
    assert!(source.contains("ignore_changes = [task_definition, load_balancer, desired_count]\n"));
    // Both listeners are the shared core's handed-over ones, whose forward action Terraform
    // ignores; the module makes no listener of its own that could escape the ignore.
    assert_handed_over_listeners_only(&tf, "bluegreen-service");

    for color in ["blue", "green"] {
        let group = values(
            &resources,
            &format!("module.web.module.core.aws_lb_target_group.this[\"{color}\"]"),
        );
        assert_eq!(group["target_type"], "ip", "{color}");
        assert_eq!(group["name"], format!("web-{color}"));
    }
    assert_eq!(
        values(
            &resources,
            "module.web.module.core.aws_lb_listener.handed_over[\"production\"]"
        )["port"],
        80
    );
    assert_eq!(
        values(
            &resources,
            "module.web.module.core.aws_lb_listener.handed_over[\"test\"]"
        )["port"],
        8080
    );

    assert_eq!(
        values(&resources, "module.web.aws_codedeploy_app.this")["compute_platform"],
        "ECS"
    );
    let group = values(
        &resources,
        "module.web.aws_codedeploy_deployment_group.this",
    );
    assert_eq!(group["deployment_group_name"], "web-prod");
    assert_eq!(
        group["deployment_style"][0]["deployment_type"],
        "BLUE_GREEN"
    );
    assert_eq!(
        group["deployment_style"][0]["deployment_option"],
        "WITH_TRAFFIC_CONTROL"
    );
    let blue_green = &group["blue_green_deployment_config"][0];
    assert_eq!(
        blue_green["deployment_ready_option"][0]["action_on_timeout"],
        "STOP_DEPLOYMENT"
    );
    assert_eq!(
        blue_green["deployment_ready_option"][0]["wait_time_in_minutes"],
        60
    );
    assert_eq!(
        blue_green["terminate_blue_instances_on_deployment_success"][0]["action"],
        "TERMINATE"
    );
    let rollback = &group["auto_rollback_configuration"][0];
    assert_eq!(rollback["enabled"], true);
    let events: BTreeSet<&str> = rollback["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        BTreeSet::from(["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"])
    );
    assert_eq!(group["alarm_configuration"][0]["enabled"], true);
    assert_eq!(
        group["alarm_configuration"][0]["alarms"],
        serde_json::json!(["web-5xx"])
    );
    let pair = &group["load_balancer_info"][0]["target_group_pair_info"][0];
    assert_eq!(pair["target_group"].as_array().unwrap().len(), 2);
    assert_eq!(
        values(
            &resources,
            "module.web.aws_iam_role_policy_attachment.codedeploy"
        )["policy_arn"],
        "arn:aws:iam::aws:policy/AWSCodeDeployRoleForECS"
    );
    let alarm = values(
        &resources,
        "module.web.module.core.aws_cloudwatch_metric_alarm.target_5xx[0]",
    );
    assert_eq!(alarm["alarm_name"], "web-5xx");
    let metrics: BTreeSet<&str> = alarm["metric_query"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|q| q["metric"][0]["metric_name"].as_str())
        .collect();
    assert_eq!(metrics, BTreeSet::from(["HTTPCode_Target_5XX_Count"]));

    // The controller runs next to it, on the table the CLI uses by default. (Its policy
    // names the application roles, unknown until they exist: the policy test plans the
    // controller module alone.)
    let controller = values(
        &resources,
        "module.switchyard.aws_ecs_task_definition.controller",
    );
    let controller_env = container_environment(controller);
    assert_eq!(controller_env["SWITCHYARD_TABLE"], "switchyard-releases");
    assert_eq!(controller_env["SWITCHYARD_REGION"], "us-east-1");
    // Two replicas by default: they share the releases through leases.
    assert_eq!(
        values(&resources, "module.switchyard.aws_ecs_service.controller")["desired_count"],
        2
    );
}

/// Runs `switchyard validate` on `text` (written to `dir/name`), failing with its complaint.
fn assert_valid_release(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let validated = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["validate", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        validated.status.success(),
        "{name} is not a valid release: {}\n{text}",
        String::from_utf8_lossy(&validated.stderr)
    );
}

/// The only document of a release text, as JSON (the document's own field names).
fn release_json(text: &str) -> Value {
    let documents = switchyard::model::parse_documents(text)
        .unwrap_or_else(|errors| panic!("{errors:?}\n{text}"));
    assert_eq!(documents.len(), 1, "{text}");
    serde_json::to_value(&documents[0]).unwrap()
}

/// The ```yaml blocks of a Markdown text.
fn yaml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        let fence = line.trim_start();
        if let Some(block) = current.as_mut() {
            if fence == "```" {
                blocks.extend(current.take());
            } else {
                block.push_str(line);
                block.push('\n');
            }
        } else if fence == "```yaml" {
            current = Some(String::new());
        }
    }
    blocks
}

#[test]
fn the_release_documents_in_the_module_readmes_are_valid() {
    let dir = tempfile::tempdir().unwrap();
    for (module, strategy) in [("external-service", "taskSets"), ("ecs-service", "ecs")] {
        let readme = std::fs::read_to_string(
            repo().join(format!("deploy/terraform/modules/{module}/README.md")),
        )
        .unwrap();
        let releases: Vec<String> = yaml_blocks(&readme)
            .into_iter()
            .filter(|b| b.contains("kind: Release"))
            .collect();
        assert_eq!(releases.len(), 1, "{module}/README.md: one release example");
        assert_valid_release(dir.path(), &format!("{module}.yaml"), &releases[0]);
        let json = release_json(&releases[0]);
        assert!(json["spec"]["strategy"][strategy].is_object(), "{json:#}");
    }
    // The ECS example is the one the brief of the module promises: blue/green, a PAUSE hook
    // after the test traffic shift, manual promotion.
    let readme =
        std::fs::read_to_string(repo().join("deploy/terraform/modules/ecs-service/README.md"))
            .unwrap();
    let ecs = release_json(&yaml_blocks(&readme)[0])["spec"]["strategy"]["ecs"].clone();
    assert_eq!(ecs["promotion"], "manual");
    assert_eq!(ecs["deployment"]["type"], "blueGreen");
    assert_eq!(
        ecs["deployment"]["pauseAt"],
        serde_json::json!(["postTestTrafficShift"])
    );
}

/// What the source of a module says of its lifecycle (plans do not show `lifecycle`).
fn module_source(tf: &Terraform, module: &str) -> String {
    std::fs::read_to_string(tf.dir(&format!("modules/{module}/main.tf"))).unwrap()
}

/// `module` makes no listener of its own: its listeners are service-core's handed-over ones,
/// whose one resource block ignores the forward action (CodeDeploy's or switchyard's).
fn assert_handed_over_listeners_only(tf: &Terraform, module: &str) {
    assert!(
        !module_source(tf, module).contains("resource \"aws_lb_listener\""),
        "{module} makes a listener outside service-core's handed-over ones"
    );
    let core = module_source(tf, "service-core");
    assert_eq!(core.matches("resource \"aws_lb_listener\"").count(), 1);
    let listener = &core[core
        .find("resource \"aws_lb_listener\" \"handed_over\"")
        .unwrap()..];
    let listener = &listener[..listener.find("\n}\n").unwrap()];
    assert!(
        listener.contains("ignore_changes = [default_action]\n"),
        "{listener}"
    );
}

#[test]
fn the_example_plans_its_task_set_and_ecs_services_against_moto() {
    let Some(tf) = Terraform::new() else { return };
    let moto = Moto::start();
    let dir = tf.dir("examples/complete");
    std::fs::write(dir.join("moto_override.tf"), moto_provider(&moto, false)).unwrap();
    tf.init(&dir);
    let plan = tf.plan_json(
        &dir,
        &[
            "-var=vpc_id=vpc-0123456789abcdef0".into(),
            r#"-var=public_subnet_ids=["subnet-0aaaaaaaaaaaaaaa1","subnet-0aaaaaaaaaaaaaaa2"]"#
                .into(),
            r#"-var=private_subnet_ids=["subnet-0bbbbbbbbbbbbbbb1","subnet-0bbbbbbbbbbbbbbb2"]"#
                .into(),
            "-var=switchyard_image=registry.example.com/switchyard:test".into(),
            "-var=canary_service=true".into(),
            "-var=ecs_service=true".into(),
        ],
    );
    let resources = planned_resources(&plan);
    // The bluegreen service is still there, unchanged.
    assert_eq!(
        values(&resources, "module.web.aws_ecs_service.this[0]")["deployment_controller"][0]["type"],
        "CODE_DEPLOY"
    );

    // taskSets: an EXTERNAL service that names nothing a task set carries.
    let canary = values(&resources, "module.web_canary[0].aws_ecs_service.this[0]");
    assert_eq!(canary["deployment_controller"][0]["type"], "EXTERNAL");
    assert_eq!(canary["task_definition"], Value::Null, "{canary:#}");
    assert_eq!(canary["load_balancer"], serde_json::json!([]), "{canary:#}");
    assert_eq!(
        canary["network_configuration"],
        serde_json::json!([]),
        "{canary:#}"
    );
    assert_eq!(canary["desired_count"], 2);
    for group in ["a", "b"] {
        let target_group = values(
            &resources,
            &format!("module.web_canary[0].module.core.aws_lb_target_group.this[\"{group}\"]"),
        );
        assert_eq!(target_group["name"], format!("web-canary-{group}"));
        assert_eq!(target_group["target_type"], "ip");
    }
    for (listener, port) in [("production", 81), ("test", 8081)] {
        let listener = values(
            &resources,
            &format!(
                "module.web_canary[0].module.core.aws_lb_listener.handed_over[\"{listener}\"]"
            ),
        );
        assert_eq!(listener["port"], port);
        assert_eq!(listener["default_action"][0]["type"], "forward");
    }
    // The first task set is the bootstrap's, never a Terraform resource (README.md says why),
    // and the bootstrap runs from Terraform only when asked to.
    assert!(
        !resources.keys().any(|a| a.contains("aws_ecs_task_set")),
        "no aws_ecs_task_set: {:?}",
        resources.keys().collect::<Vec<_>>()
    );
    assert!(
        !resources
            .keys()
            .any(|a| a.starts_with("module.web_canary[0].terraform_data.bootstrap")),
    );
    let external = module_source(&tf, "external-service");
    assert!(!external.contains("resource \"aws_ecs_task_set\""));
    // Both listeners leave their forward action to switchyard.
    assert_handed_over_listeners_only(&tf, "external-service");
    assert!(external.contains(
        "ignore_changes = [task_definition, load_balancer, network_configuration, capacity_provider_strategy]\n"
    ));
    assert!(external.contains(
        "ignore_changes = [task_definition, load_balancer, network_configuration, capacity_provider_strategy, desired_count]\n"
    ));

    // ecs: the ECS controller with what provider 5.100 has (circuit breaker and deployment
    // alarms, both rolling back), and what ECS-native blue/green needs.
    let service = values(&resources, "module.web_ecs[0].aws_ecs_service.this[0]");
    assert_eq!(service["deployment_controller"][0]["type"], "ECS");
    assert_eq!(
        service["deployment_circuit_breaker"],
        serde_json::json!([{"enable": true, "rollback": true}])
    );
    assert_eq!(
        service["alarms"],
        serde_json::json!([{"alarm_names": ["web-ecs-5xx"], "enable": true, "rollback": true}])
    );
    assert_eq!(service["deployment_minimum_healthy_percent"], 100);
    assert_eq!(service["deployment_maximum_percent"], 200);
    assert_eq!(service["launch_type"], "FARGATE");
    assert_eq!(service["load_balancer"][0]["container_name"], "web-ecs");
    for group in ["a", "b"] {
        assert_eq!(
            values(
                &resources,
                &format!("module.web_ecs[0].module.core.aws_lb_target_group.this[\"{group}\"]"),
            )["name"],
            format!("web-ecs-{group}")
        );
    }
    for rule in ["production[0]", "test[0]"] {
        let rule = values(
            &resources,
            &format!("module.web_ecs[0].aws_lb_listener_rule.{rule}"),
        );
        let weights: BTreeSet<i64> = rule["action"][0]["forward"][0]["target_group"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["weight"].as_i64().unwrap())
            .collect();
        assert_eq!(weights, BTreeSet::from([0, 100]), "{rule:#}");
        assert_eq!(
            rule["condition"][0]["path_pattern"][0]["values"],
            serde_json::json!(["/*"])
        );
    }
    assert_eq!(
        values(&resources, "module.web_ecs[0].aws_lb_listener.test[0]")["port"],
        8082
    );
    let role = values(
        &resources,
        "module.web_ecs[0].aws_iam_role.load_balancers[0]",
    );
    assert_eq!(role["name"], "web-ecs-ecs-load-balancers");
    let trust: Value = serde_json::from_str(role["assume_role_policy"].as_str().unwrap()).unwrap();
    assert_eq!(
        trust["Statement"][0]["Principal"]["Service"],
        "ecs.amazonaws.com"
    );
    assert_eq!(
        values(
            &resources,
            "module.web_ecs[0].aws_iam_role_policy_attachment.load_balancers[0]"
        )["policy_arn"],
        "arn:aws:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers"
    );
    let ecs = module_source(&tf, "ecs-service");
    assert!(ecs.contains("ignore_changes = [task_definition, load_balancer]\n"));
    assert!(ecs.contains("ignore_changes = [task_definition, load_balancer, desired_count]\n"));
    assert_eq!(ecs.matches("ignore_changes = [action]\n").count(), 2);
    assert!(
        !ecs.contains("deployment_configuration {"),
        "provider 5.100 has no deployment_configuration block"
    );
}

/// The address of every object of a Terraform state (`terraform.tfstate`, version 4).
fn state_addresses(state: &Value) -> BTreeSet<String> {
    let mut addresses = BTreeSet::new();
    for resource in state["resources"].as_array().unwrap() {
        let module = resource["module"]
            .as_str()
            .map(|m| format!("{m}."))
            .unwrap_or_default();
        let base = format!(
            "{module}{}.{}",
            resource["type"].as_str().unwrap(),
            resource["name"].as_str().unwrap()
        );
        for instance in resource["instances"].as_array().unwrap() {
            addresses.insert(match &instance["index_key"] {
                Value::Null => base.clone(),
                Value::String(key) => format!("{base}[\"{key}\"]"),
                key => format!("{base}[{key}]"),
            });
        }
    }
    addresses
}

/// Upgrading keeps every object: the service modules, given the state their configurations
/// had before they shared `modules/service-core` (`tests/fixtures/terraform_upgrade`: the
/// three modules in the variants whose addresses differ, and `old_layout_state.json`, made
/// from that layout by `make_old_layout_state.py`, which the old modules plan as unchanged),
/// plan no change at all: every object of the old state is planned no-op, at its old address
/// or, through the modules' `moved` blocks, at its new one under `module.core`. Without the
/// moved blocks the plan destroys and recreates each moved object; with a shared resource
/// that is not exactly what it was (a description, a container definition), it updates it.
/// And the release documents the modules render (the root's output) are the old ones.
#[test]
fn the_service_modules_plan_no_change_from_a_state_of_their_layout_before_service_core() {
    let Some(tf) = Terraform::new() else { return };
    let moto = Moto::start();
    let fixtures = repo().join("tests/fixtures/terraform_upgrade");
    let dir = tf.dir("upgrade");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixtures.join("main.tf"), dir.join("main.tf")).unwrap();
    // The data sources (caller identity, region) ask moto; nothing else is read or written.
    std::fs::write(dir.join("provider.tf"), moto_provider(&moto, true)).unwrap();
    let old_state = std::fs::read_to_string(fixtures.join("old_layout_state.json")).unwrap();
    std::fs::write(dir.join("terraform.tfstate"), &old_state).unwrap();
    let old_state: Value = serde_json::from_str(&old_state).unwrap();
    let old_addresses = state_addresses(&old_state);
    tf.init(&dir);
    let plan = tf.plan_json(&dir, &["-refresh=false".into()]);

    let mut changed = Vec::new();
    let mut not_moved = Vec::new();
    let mut kept = BTreeSet::new();
    for change in plan["resource_changes"].as_array().unwrap() {
        if change["mode"] != "managed" {
            continue;
        }
        let address = change["address"].as_str().unwrap();
        let actions = strings(&change["change"]["actions"]);
        if actions != ["no-op"] {
            changed.push(format!("{address}: {actions:?}"));
        }
        let previous = change["previous_address"].as_str();
        // What the core holds now was each module's own before: only moved blocks bring it.
        if address.contains(".module.core.") != previous.is_some() {
            not_moved.push(format!("{address} (moved from {previous:?})"));
        }
        kept.insert(previous.unwrap_or(address).to_string());
    }
    assert!(
        changed.is_empty(),
        "upgrading would change these objects:\n{}",
        changed.join("\n")
    );
    assert!(
        not_moved.is_empty(),
        "in service-core, and not moved there (or moved, and not in it):\n{}",
        not_moved.join("\n")
    );
    assert_eq!(
        kept, old_addresses,
        "the objects planned (by their old addresses) are exactly the old state's"
    );

    // The release documents the modules render are, to the byte, what they rendered before.
    let documents = &plan["planned_values"]["outputs"]["release_yaml"]["value"];
    let old_documents = old_state["outputs"]["release_yaml"]["value"]
        .as_object()
        .unwrap();
    assert_eq!(old_documents.len(), 6, "{old_documents:?}");
    for (service, old) in old_documents {
        assert_eq!(&documents[service], old, "{service}");
    }
}

/// The AWS CLI, for the external-service module's bootstrap script: on the PATH, or in the
/// repository's `.venv-awscli` (`./scripts/test.sh` installs it there when it is missing).
fn aws_cli() -> PathBuf {
    let venv = repo().join(".venv-awscli/bin/aws");
    if venv.is_file() {
        return venv;
    }
    which("aws").unwrap_or_else(|| {
        panic!(
            "the AWS CLI is not on PATH: the bootstrap script of the external-service module \
             runs with it. Run ./scripts/test.sh (which installs it into .venv-awscli), or \
             `python3 -m pip install awscli`"
        )
    })
}

/// A root configuration with the external-service and ecs-service modules (blue/green with
/// manual promotion, and rolling with an autoscaled desired count) on one load balancer in
/// moto's default VPC, and their rendered outputs kept in the state by `terraform_data`.
fn services_root(moto: &Moto) -> String {
    format!(
        r#"{provider}
data "aws_vpc" "default" {{
  default = true
}}

data "aws_subnets" "default" {{
  filter {{
    name   = "vpc-id"
    values = [data.aws_vpc.default.id]
  }}
}}

resource "aws_ecs_cluster" "prod" {{
  name = "prod"
}}

resource "aws_security_group" "alb" {{
  name   = "shared-alb"
  vpc_id = data.aws_vpc.default.id
}}

resource "aws_lb" "shared" {{
  name               = "shared"
  load_balancer_type = "application"
  subnets            = data.aws_subnets.default.ids
  security_groups    = [aws_security_group.alb.id]
}}

# moto loads no AWS managed policies, so the ECS load balancer role comes from here (the
# example's plan checks the module's own role and its managed policy).
resource "aws_iam_role" "load_balancers" {{
  name = "ecs-load-balancers"
  assume_role_policy = jsonencode({{
    Version   = "2012-10-17"
    Statement = [{{ Effect = "Allow", Action = "sts:AssumeRole", Principal = {{ Service = "ecs.amazonaws.com" }} }}]
  }})
}}

locals {{
  common = {{
    cluster_name                    = aws_ecs_cluster.prod.name
    container_image                 = "public.ecr.aws/nginx/nginx:1.27"
    container_port                  = 80
    execution_role_arn              = "arn:aws:iam::123456789012:role/web-execution"
    vpc_id                          = data.aws_vpc.default.id
    subnet_ids                      = data.aws_subnets.default.ids
    load_balancer_arn               = aws_lb.shared.arn
    load_balancer_security_group_id = aws_security_group.alb.id
  }}
}}

module "canary" {{
  source = "../modules/external-service"

  name                            = "web-canary"
  cluster_name                    = local.common.cluster_name
  container_image                 = local.common.container_image
  container_port                  = local.common.container_port
  execution_role_arn              = local.common.execution_role_arn
  vpc_id                          = local.common.vpc_id
  subnet_ids                      = local.common.subnet_ids
  load_balancer_arn               = local.common.load_balancer_arn
  load_balancer_security_group_id = local.common.load_balancer_security_group_id
  production_listener_port        = 81
  test_listener_port              = 8081
  release_canary_pause            = null
}}

module "ecs" {{
  source = "../modules/ecs-service"

  name                            = "web-ecs"
  cluster_name                    = local.common.cluster_name
  container_image                 = local.common.container_image
  container_port                  = local.common.container_port
  execution_role_arn              = local.common.execution_role_arn
  vpc_id                          = local.common.vpc_id
  subnet_ids                      = local.common.subnet_ids
  load_balancer_arn               = local.common.load_balancer_arn
  load_balancer_security_group_id = local.common.load_balancer_security_group_id
  production_listener_port        = 82
  test_listener_port              = 8082
  create_load_balancer_role       = false
  load_balancer_role_arn          = aws_iam_role.load_balancers.arn
  release_promotion               = "manual"
}}

module "rolling" {{
  source = "../modules/ecs-service"

  name                            = "web-rolling"
  cluster_name                    = local.common.cluster_name
  container_image                 = local.common.container_image
  container_port                  = local.common.container_port
  execution_role_arn              = local.common.execution_role_arn
  vpc_id                          = local.common.vpc_id
  subnet_ids                      = local.common.subnet_ids
  load_balancer_arn               = local.common.load_balancer_arn
  load_balancer_security_group_id = local.common.load_balancer_security_group_id
  production_listener_port        = 83
  deployment_type                 = "rolling"
  ignore_desired_count            = true
}}

# Root outputs are not updated by a targeted apply; the state keeps these.
resource "terraform_data" "rendered" {{
  input = {{
    canary_release   = module.canary.release_yaml
    canary_bootstrap = module.canary.bootstrap_script
    ecs_release      = module.ecs.release_yaml
    rolling_release  = module.rolling.release_yaml
  }}
}}
"#,
        provider = moto_provider(moto, true),
    )
}

/// The planned change of each resource of `terraform plan` in `dir`, by address: its actions,
/// and the attributes that would change (before and after).
fn planned_changes(tf: &Terraform, dir: &Path) -> BTreeMap<String, (Vec<String>, Value)> {
    let plan = tf.plan_json(dir, &[]);
    plan["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|resource| {
            let change = &resource["change"];
            let before = change["before"].as_object().cloned().unwrap_or_default();
            let after = change["after"].as_object().cloned().unwrap_or_default();
            let differences: serde_json::Map<String, Value> = after
                .iter()
                .filter(|(key, value)| before.get(*key) != Some(value))
                .map(|(key, value)| {
                    (
                        key.clone(),
                        serde_json::json!({"before": before.get(key), "after": value}),
                    )
                })
                .collect();
            (
                resource["address"].as_str().unwrap().to_string(),
                (strings(&change["actions"]), Value::Object(differences)),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_task_set_and_ecs_modules_apply_against_moto_and_terraform_leaves_releases_alone() {
    let Some(tf) = Terraform::new() else { return };
    let aws = aws_cli();
    let moto = Moto::start();
    let dir = tf.dir("moto-services");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.tf"), services_root(&moto)).unwrap();
    tf.init(&dir);
    // Everything but the EXTERNAL service: moto answers DescribeServices for it with an empty
    // networkConfiguration, which the provider's read of aws_ecs_service dereferences and
    // crashes on (real ECS leaves it out). The test creates that service itself below, with
    // the arguments the module gives it. The second apply: moto's CreateService drops the
    // grace period, managed tags and zone rebalancing, which the provider then sets again
    // with UpdateService, so that the plan below shows only what the releases changed.
    let apply = [
        "apply",
        "-auto-approve",
        "-input=false",
        "-no-color",
        "-target=terraform_data.rendered",
        "-target=module.ecs",
        "-target=module.rolling",
    ];
    tf.run(&dir, &apply);
    tf.run(&dir, &apply);
    let state: Value =
        serde_json::from_str(&tf.run(&dir, &["show", "-json", "-no-color"])).unwrap();
    let resources = module_resources(&state["values"]["root_module"]);
    let rendered = &values(&resources, "terraform_data.rendered")["output"];
    let text = |key: &str| rendered[key].as_str().unwrap().to_string();
    let arn = |address: &str| {
        values(&resources, address)["arn"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // The rendered releases are valid, and name what Terraform created.
    let scratch = tf.root.path();
    assert_valid_release(scratch, "canary.yaml", &text("canary_release"));
    assert_valid_release(scratch, "ecs.yaml", &text("ecs_release"));
    assert_valid_release(scratch, "rolling.yaml", &text("rolling_release"));
    let canary = release_json(&text("canary_release"));
    let task_sets = &canary["spec"]["strategy"]["taskSets"];
    assert_eq!(
        task_sets["targetGroups"],
        serde_json::json!(["web-canary-a", "web-canary-b"])
    );
    assert_eq!(
        task_sets["listeners"],
        serde_json::json!([arn(
            "module.canary.module.core.aws_lb_listener.handed_over[\"production\"]"
        )])
    );
    assert_eq!(
        task_sets["testListeners"],
        serde_json::json!([arn(
            "module.canary.module.core.aws_lb_listener.handed_over[\"test\"]"
        )])
    );
    assert_eq!(
        task_sets["container"],
        serde_json::json!({"name": "web-canary", "port": 80})
    );
    assert_eq!(
        task_sets["steps"],
        serde_json::json!([{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}])
    );
    assert_eq!(
        canary["spec"]["rollback"]["alarms"],
        serde_json::json!(["web-canary-5xx"])
    );
    let ecs = release_json(&text("ecs_release"));
    let strategy = &ecs["spec"]["strategy"]["ecs"];
    assert_eq!(strategy["promotion"], "manual");
    let deployment = &strategy["deployment"];
    assert_eq!(deployment["type"], "blueGreen");
    assert_eq!(deployment["bakeTime"], "5m");
    assert_eq!(
        deployment["pauseAt"],
        serde_json::json!(["postTestTrafficShift"])
    );
    assert_eq!(
        deployment["loadBalancer"],
        serde_json::json!({
            "alternateTargetGroup": "web-ecs-b",
            "productionListenerRule": arn("module.ecs.aws_lb_listener_rule.production[0]"),
            "testListenerRule": arn("module.ecs.aws_lb_listener_rule.test[0]"),
            "roleArn": arn("aws_iam_role.load_balancers"),
        })
    );
    let rolling = release_json(&text("rolling_release"));
    assert_eq!(
        rolling["spec"]["strategy"]["ecs"],
        serde_json::json!({}),
        "rolling with automatic promotion: the service's own settings decide"
    );

    // The EXTERNAL service, as the module creates it (see above), then its bootstrap: the
    // first task set, primary, on group a; a second run changes nothing.
    let sdk = moto.sdk_config().await;
    let ecs_client = aws_sdk_ecs::Client::new(&sdk);
    ecs_client
        .create_service()
        .cluster("prod")
        .service_name("web-canary")
        .desired_count(2)
        .deployment_controller(
            aws_sdk_ecs::types::DeploymentController::builder()
                .r#type(aws_sdk_ecs::types::DeploymentControllerType::External)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let script = scratch.join("bootstrap.sh");
    std::fs::write(&script, text("canary_bootstrap")).unwrap();
    let bootstrap = || {
        let mut command = Command::new("sh");
        command
            .arg(&script)
            .env("PATH", {
                let mut paths = vec![aws.parent().unwrap().to_path_buf()];
                paths.extend(std::env::split_paths(
                    &std::env::var_os("PATH").unwrap_or_default(),
                ));
                std::env::join_paths(paths).unwrap()
            })
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env_remove("AWS_PROFILE");
        for (key, value) in moto.env() {
            command.env(key, value);
        }
        let output = run_with_limit(command, COMMAND_LIMIT);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "the bootstrap failed:\n{stderr}");
        stderr
    };
    let first = bootstrap();
    assert!(first.contains("created task set"), "{first}");
    let again = bootstrap();
    assert!(again.contains("nothing to do"), "{again}");
    let described = ecs_client
        .describe_services()
        .cluster("prod")
        .services("web-canary")
        .send()
        .await
        .unwrap();
    let service = &described.services()[0];
    let task_sets = service.task_sets();
    assert_eq!(task_sets.len(), 1, "{task_sets:#?}");
    let first_task_set = &task_sets[0];
    assert_eq!(first_task_set.status(), Some("PRIMARY"));
    assert_eq!(
        first_task_set.task_definition(),
        Some(arn("module.canary.module.core.aws_ecs_task_definition.initial").as_str())
    );
    assert_eq!(
        first_task_set.load_balancers()[0].target_group_arn(),
        Some(arn("module.canary.module.core.aws_lb_target_group.this[\"a\"]").as_str())
    );
    assert_eq!(
        first_task_set.load_balancers()[0].container_port(),
        Some(80)
    );
    assert_eq!(first_task_set.external_id(), Some("terraform-bootstrap"));
    let scale = first_task_set.scale().unwrap();
    assert!((scale.value() - 100.0).abs() < 1e-9, "{scale:?}");

    // What releases change, Terraform then leaves alone: the task definition ECS deploys,
    // the weights of the listener rules ECS shifts, the listener weights switchyard sets, and
    // a desired count autoscaling owns.
    let initial = ecs_client
        .describe_task_definition()
        .task_definition("web-ecs")
        .send()
        .await
        .unwrap()
        .task_definition()
        .cloned()
        .unwrap();
    let mut container = initial.container_definitions()[0].clone();
    container.image = Some("public.ecr.aws/nginx/nginx:1.28".into());
    let candidate = ecs_client
        .register_task_definition()
        .family("web-ecs")
        .container_definitions(container)
        .set_cpu(initial.cpu().map(str::to_string))
        .set_memory(initial.memory().map(str::to_string))
        .set_network_mode(initial.network_mode().cloned())
        .set_requires_compatibilities(Some(initial.requires_compatibilities().to_vec()))
        .set_execution_role_arn(initial.execution_role_arn().map(str::to_string))
        .send()
        .await
        .unwrap()
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .unwrap()
        .to_string();
    ecs_client
        .update_service()
        .cluster("prod")
        .service("web-ecs")
        .task_definition(&candidate)
        .send()
        .await
        .unwrap();
    ecs_client
        .update_service()
        .cluster("prod")
        .service("web-rolling")
        .desired_count(5)
        .send()
        .await
        .unwrap();
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
    let weighted = |a: u8, b: u8, prefix: &str| {
        use aws_sdk_elasticloadbalancingv2::types as elb;
        let group = |key: &str, weight: u8| {
            elb::TargetGroupTuple::builder()
                .target_group_arn(arn(&format!(
                    "module.{prefix}.module.core.aws_lb_target_group.this[\"{key}\"]"
                )))
                .weight(i32::from(weight))
                .build()
        };
        elb::Action::builder()
            .r#type(elb::ActionTypeEnum::Forward)
            .forward_config(
                elb::ForwardActionConfig::builder()
                    .target_groups(group("a", a))
                    .target_groups(group("b", b))
                    .build(),
            )
            .build()
    };
    elb.modify_rule()
        .rule_arn(arn("module.ecs.aws_lb_listener_rule.production[0]"))
        .actions(weighted(0, 100, "ecs"))
        .send()
        .await
        .unwrap();
    elb.modify_listener()
        .listener_arn(arn(
            "module.canary.module.core.aws_lb_listener.handed_over[\"production\"]",
        ))
        .default_actions(weighted(90, 10, "canary"))
        .send()
        .await
        .unwrap();
    let changes = planned_changes(&tf, &dir);
    for address in [
        "module.ecs.aws_ecs_service.this[0]",
        "module.ecs.aws_lb_listener_rule.production[0]",
        "module.ecs.aws_lb_listener_rule.test[0]",
        "module.rolling.aws_ecs_service.autoscaled[0]",
        "module.canary.module.core.aws_lb_listener.handed_over[\"production\"]",
        "module.canary.module.core.aws_lb_listener.handed_over[\"test\"]",
        "module.canary.module.core.aws_ecs_task_definition.initial",
    ] {
        let (actions, differences) = changes
            .get(address)
            .unwrap_or_else(|| panic!("{address} is not in the plan"));
        assert_eq!(
            actions,
            &["no-op"],
            "{address} would change: {differences:#}"
        );
    }
}

/// The environment of the only container of a planned task definition.
fn container_environment(task_definition: &Value) -> BTreeMap<String, String> {
    let containers: Value =
        serde_json::from_str(task_definition["container_definitions"].as_str().unwrap()).unwrap();
    containers[0]["environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            (
                kv["name"].as_str().unwrap().to_string(),
                kv["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The policy document of a planned `aws_iam_role_policy`.
fn policy_of(role_policy: &Value) -> Value {
    serde_json::from_str(
        role_policy["policy"]
            .as_str()
            .expect("the policy is known at plan time"),
    )
    .expect("the policy is JSON")
}

/// A string-or-list policy element as a list.
fn strings(element: &Value) -> Vec<String> {
    match element {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().unwrap().to_string())
            .collect(),
        Value::Null => vec![],
        other => panic!("not a string or a list of strings: {other}"),
    }
}

fn statements(policy: &Value) -> &Vec<Value> {
    policy["Statement"].as_array().expect("Statement is a list")
}

fn statement<'a>(policy: &'a Value, sid: &str) -> &'a Value {
    statements(policy)
        .iter()
        .find(|s| s["Sid"] == sid)
        .unwrap_or_else(|| panic!("no statement {sid} in {policy:#}"))
}

fn resources_of(policy: &Value, sid: &str) -> Vec<String> {
    strings(&statement(policy, sid)["Resource"])
}

/// The comment line directly above each `statement` block of a Terraform file, by the block's
/// sid.
fn statement_comments(source: &str) -> BTreeMap<String, String> {
    let mut comments = BTreeMap::new();
    let mut last_comment: Option<String> = None;
    let mut pending: Option<Option<String>> = None;
    for line in source.lines() {
        let trimmed = line.trim();
        if trimmed == "statement {" || trimmed == "dynamic \"statement\" {" {
            pending = Some(last_comment.take());
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            last_comment = Some(comment.trim().to_string());
            continue;
        }
        last_comment = None;
        if let Some(rest) = trimmed.strip_prefix("sid")
            && let Some(sid) = rest.split('"').nth(1)
            && let Some(comment) = pending.take()
        {
            comments.insert(
                sid.to_string(),
                comment.unwrap_or_else(|| panic!("statement {sid} has no comment above it")),
            );
        }
    }
    comments
}

/// Checks every statement of `policy`: no action wildcard, no Not* elements, and a Resource
/// wildcard only where the comment above the statement says why (and `"*"` only for actions
/// that accept no resource-level scoping).
fn check_statements(name: &str, policy: &Value, comments: &BTreeMap<String, String>) {
    for statement in statements(policy) {
        let sid = statement["Sid"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: every statement has a Sid: {statement}"));
        assert_eq!(statement["Effect"], "Allow", "{name}/{sid}");
        for element in ["NotAction", "NotResource", "NotPrincipal"] {
            assert!(statement.get(element).is_none(), "{name}/{sid}: {element}");
        }
        let actions = strings(&statement["Action"]);
        for action in &actions {
            assert!(
                !action.contains('*') && !action.contains('?'),
                "{name}/{sid}: wildcard action {action}"
            );
        }
        let comment = comments
            .get(sid)
            .unwrap_or_else(|| panic!("{name}/{sid}: no comment found above the statement"));
        let resources = strings(&statement["Resource"]);
        assert!(!resources.is_empty(), "{name}/{sid}: no Resource");
        if resources.iter().any(|r| r == "*") {
            assert_eq!(resources, ["*"], "{name}/{sid}");
            assert!(
                comment.starts_with("Resource \"*\":"),
                "{name}/{sid}: Resource \"*\" without a comment saying why: {comment}"
            );
            for action in &actions {
                assert!(
                    UNSCOPABLE_ACTIONS.contains(&action.as_str()),
                    "{name}/{sid}: {action} accepts resource-level scoping; do not grant it on \"*\""
                );
            }
        } else if resources.iter().any(|r| r.contains('*')) {
            assert!(
                comment.starts_with("Resource wildcard:"),
                "{name}/{sid}: a wildcard in {resources:?} without a comment saying why: {comment}"
            );
        } else {
            assert!(
                comment.starts_with("Resource:"),
                "{name}/{sid}: the comment must start with `Resource:`: {comment}"
            );
        }
    }
}

#[test]
fn the_controller_policy_grants_exactly_the_actions_the_code_calls() {
    let Some(tf) = Terraform::new() else { return };
    let moto = Moto::start();
    let dir = tf.dir("moto-root");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("main.tf"),
        controller_root(
            &moto,
            &format!(
                "  table_kms_key_arn            = \"arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555\"\n  image_repository_arn         = \"arn:aws:ecr:us-east-1:123456789012:repository/switchyard\"\n  ecs_load_balancer_role_arns  = [\"arn:aws:iam::123456789012:role/ecsInfrastructureRoleForLoadBalancers\"]\n  traffic_listener_arns        = [\"{LISTENER}\"]\n  deployer_role_arns           = [\"{DEPLOYER}\"]\n  external_id                  = \"switchyard-fleet-1\"\n"
            ),
        ),
    )
    .unwrap();
    tf.init(&dir);
    let plan = tf.plan_json(&dir, &[]);
    let resources = planned_resources(&plan);
    let comments = deploy_comments(&tf, "modules/controller/iam.tf");

    // The task role's policy: exactly what the code calls.
    let policy = policy_of(values(
        &resources,
        "module.controller.aws_iam_role_policy.controller",
    ));
    let granted: BTreeSet<String> = statements(&policy)
        .iter()
        .flat_map(|s| strings(&s["Action"]))
        .collect();
    let called: BTreeSet<String> = CONTROLLER_AWS_ACTIONS
        .iter()
        .chain(STORE_ACTIONS)
        .chain(ASSUME_ROLE_ACTIONS)
        .chain(NOTIFICATION_ACTIONS)
        .filter(|a| **a != "dynamodb:CreateTable")
        .map(|a| a.to_string())
        .collect();
    let missing: Vec<_> = called.difference(&granted).collect();
    let extra: Vec<_> = granted.difference(&called).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the controller policy must grant exactly CONTROLLER_AWS_ACTIONS ∪ STORE_ACTIONS ∪ \
         ASSUME_ROLE_ACTIONS (with deployer roles) ∪ NOTIFICATION_ACTIONS (with topics and buses)\n\
         called by the code but not granted: {missing:?}\n\
         granted but not called by the code: {extra:?}"
    );
    check_statements("controller", &policy, &comments);

    // iam:PassRole: the application roles only, to ECS tasks only.
    let pass_role = statement(&policy, "PassApplicationRoles");
    assert_eq!(strings(&pass_role["Action"]), ["iam:PassRole"]);
    assert_eq!(
        pass_role["Condition"]["StringEquals"]["iam:PassedToService"], "ecs-tasks.amazonaws.com",
        "{pass_role:#}"
    );
    assert_eq!(
        strings(&pass_role["Resource"]),
        [
            "arn:aws:iam::123456789012:role/web-task",
            "arn:aws:iam::123456789012:role/web-execution"
        ]
    );
    // ECS's own deployments: the managed services, their deployments and revisions only; the
    // load balancers' infrastructure roles only to ECS.
    assert_eq!(
        resources_of(&policy, "EcsDeploymentsOfManagedServices"),
        [
            "arn:aws:ecs:us-east-1:123456789012:service/prod/web",
            "arn:aws:ecs:us-east-1:123456789012:service/prod/search"
        ]
    );
    assert_eq!(
        resources_of(&policy, "ServiceDeploymentsOfManagedServices"),
        [
            "arn:aws:ecs:us-east-1:123456789012:service-deployment/prod/web/*",
            "arn:aws:ecs:us-east-1:123456789012:service-deployment/prod/search/*"
        ]
    );
    assert_eq!(
        resources_of(&policy, "ServiceRevisionsOfManagedServices"),
        [
            "arn:aws:ecs:us-east-1:123456789012:service-revision/prod/web/*",
            "arn:aws:ecs:us-east-1:123456789012:service-revision/prod/search/*"
        ]
    );
    // Notifications: the configured topics (in their own region) and buses only.
    assert_eq!(
        resources_of(&policy, "NotificationTopics"),
        ["arn:aws:sns:eu-west-1:123456789012:releases"]
    );
    assert_eq!(
        resources_of(&policy, "NotificationEventBuses"),
        ["arn:aws:events:us-east-1:123456789012:event-bus/default"]
    );
    let pass_load_balancer_roles = statement(&policy, "PassLoadBalancerRoles");
    assert_eq!(
        pass_load_balancer_roles["Condition"]["StringEquals"]["iam:PassedToService"],
        "ecs.amazonaws.com",
        "{pass_load_balancer_roles:#}"
    );
    assert_eq!(
        resources_of(&policy, "PassLoadBalancerRoles"),
        ["arn:aws:iam::123456789012:role/ecsInfrastructureRoleForLoadBalancers"]
    );
    let tag = statement(&policy, "TagNewRevisionsOnRegister");
    assert_eq!(
        tag["Condition"]["StringEquals"]["ecs:CreateAction"],
        "RegisterTaskDefinition"
    );
    assert_eq!(
        resources_of(&policy, "ReleaseTable"),
        ["arn:aws:dynamodb:us-east-1:123456789012:table/switchyard-terraform-test"]
    );
    assert_eq!(
        resources_of(&policy, "ReleaseTableStream"),
        ["arn:aws:dynamodb:us-east-1:123456789012:table/switchyard-terraform-test/stream/*"]
    );
    assert_eq!(
        resources_of(&policy, "RegisterManagedFamilies"),
        [
            "arn:aws:ecs:us-east-1:123456789012:task-definition/web:*",
            "arn:aws:ecs:us-east-1:123456789012:task-definition/search:*"
        ]
    );
    assert_eq!(
        resources_of(&policy, "RollbackAlarms"),
        [
            "arn:aws:cloudwatch:us-east-1:123456789012:alarm:web-5xx",
            "arn:aws:cloudwatch:us-east-1:123456789012:alarm:search-5xx"
        ]
    );
    assert_eq!(
        resources_of(&policy, "ManagedServicesTaskSets"),
        [
            "arn:aws:ecs:us-east-1:123456789012:task-set/prod/web/*",
            "arn:aws:ecs:us-east-1:123456789012:task-set/prod/search/*"
        ]
    );
    assert_eq!(
        resources_of(&policy, "ManagedServicesPrimaryTaskSet"),
        [
            "arn:aws:ecs:us-east-1:123456789012:service/prod/web",
            "arn:aws:ecs:us-east-1:123456789012:service/prod/search"
        ]
    );
    assert_eq!(
        resources_of(&policy, "TrafficListeners"),
        [
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2"
        ]
    );
    assert_eq!(
        resources_of(&policy, "TrafficListenerRules"),
        [
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2/*"
        ]
    );
    assert_eq!(
        resources_of(&policy, "ManagedApplications"),
        [
            "arn:aws:codedeploy:us-east-1:123456789012:application:web",
            "arn:aws:codedeploy:us-east-1:123456789012:application:search"
        ]
    );

    // The table's KMS key, through DynamoDB only; the execution role's pull and logs.
    let kms = policy_of(values(
        &resources,
        "module.controller.aws_iam_role_policy.table_kms[0]",
    ));
    check_statements("table_kms", &kms, &comments);
    for s in statements(&kms) {
        assert_eq!(
            s["Condition"]["StringEquals"]["kms:ViaService"],
            "dynamodb.us-east-1.amazonaws.com"
        );
    }
    let execution = policy_of(values(
        &resources,
        "module.controller.aws_iam_role_policy.execution",
    ));
    check_statements("execution", &execution, &comments);
    assert_eq!(
        resources_of(&execution, "PullControllerImage"),
        ["arn:aws:ecr:us-east-1:123456789012:repository/switchyard"]
    );

    // Two replicas share the releases through leases; deployments overlap old and new tasks.
    let service = values(&resources, "module.controller.aws_ecs_service.controller");
    assert_eq!(service["desired_count"], 2);
    assert_eq!(service["deployment_maximum_percent"], 200);
    assert_eq!(service["deployment_minimum_healthy_percent"], 100);
    let task_definition = values(
        &resources,
        "module.controller.aws_ecs_task_definition.controller",
    );
    let containers: Value =
        serde_json::from_str(task_definition["container_definitions"].as_str().unwrap()).unwrap();
    assert_eq!(
        containers[0]["healthCheck"]["command"],
        serde_json::json!(["CMD", "/usr/local/bin/switchyard", "healthcheck"])
    );
    assert_eq!(containers[0]["logConfiguration"]["logDriver"], "awslogs");
    let env = container_environment(task_definition);
    assert_eq!(env["SWITCHYARD_TABLE"], "switchyard-terraform-test");
    assert_eq!(env["SWITCHYARD_REGION"], "us-east-1");
    assert_eq!(env["SWITCHYARD_LISTEN"], "0.0.0.0:8080");
    assert_eq!(env["SWITCHYARD_LOG_FORMAT"], "json");
    // The roles of other accounts: exactly those listed, with the fleet's external id.
    assert_eq!(resources_of(&policy, "AssumeDeployerRoles"), [DEPLOYER]);
    assert_eq!(env["SWITCHYARD_EXTERNAL_ID"], "switchyard-fleet-1");
}

/// A role of another account that releases name in `spec.service.roleArn`.
const DEPLOYER: &str = "arn:aws:iam::444455556666:role/switchyard-deployer";

/// The comments above the statements of `file` and of the deploy-permissions module, whose
/// statements every policy that deploys includes.
fn deploy_comments(tf: &Terraform, file: &str) -> BTreeMap<String, String> {
    let mut comments = statement_comments(&std::fs::read_to_string(tf.dir(file)).unwrap());
    comments.extend(statement_comments(
        &std::fs::read_to_string(tf.dir("modules/deploy-permissions/main.tf")).unwrap(),
    ));
    comments
}

#[test]
fn the_deployer_role_trusts_only_the_controller_with_the_external_id_and_may_only_deploy() {
    let Some(tf) = Terraform::new() else { return };
    let moto = Moto::start();
    let dir = tf.dir("moto-root");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("main.tf"),
        format!(
            r#"{provider}
module "deployer" {{
  source = "../modules/deployer-role"

  controller_role_arns         = ["arn:aws:iam::111122223333:role/switchyard-task"]
  external_id                  = "switchyard-fleet-1"
  ecs_services                 = ["prod/pay"]
  task_definition_families     = ["pay"]
  codedeploy_deployment_groups = ["pay/pay-prod"]
  alarm_names                  = ["pay-5xx"]
  passable_role_arns           = ["arn:aws:iam::123456789012:role/pay-task"]
  traffic_listener_arns        = ["{LISTENER}"]
}}
"#,
            provider = moto_provider(&moto, true),
        ),
    )
    .unwrap();
    tf.init(&dir);
    let plan = tf.plan_json(&dir, &[]);
    let resources = planned_resources(&plan);

    let role = values(&resources, "module.deployer.aws_iam_role.deployer");
    assert_eq!(role["name"], "switchyard-deployer");
    assert_eq!(role["max_session_duration"], 3600);
    let trust: Value = serde_json::from_str(role["assume_role_policy"].as_str().unwrap()).unwrap();
    let trusted = statements(&trust);
    assert_eq!(trusted.len(), 1, "{trust:#}");
    assert_eq!(strings(&trusted[0]["Action"]), ["sts:AssumeRole"]);
    assert_eq!(
        strings(&trusted[0]["Principal"]["AWS"]),
        ["arn:aws:iam::111122223333:role/switchyard-task"]
    );
    assert_eq!(
        trusted[0]["Condition"]["StringEquals"]["sts:ExternalId"],
        "switchyard-fleet-1"
    );

    // Its policy: exactly the deploy actions (no table, no AssumeRole), scoped to this
    // account's resources.
    let policy = policy_of(values(
        &resources,
        "module.deployer.aws_iam_role_policy.deploy",
    ));
    check_statements(
        "deployer",
        &policy,
        &deploy_comments(&tf, "modules/deployer-role/main.tf"),
    );
    let granted: BTreeSet<String> = statements(&policy)
        .iter()
        .flat_map(|s| strings(&s["Action"]))
        .collect();
    let deploy: BTreeSet<String> = CONTROLLER_AWS_ACTIONS
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(granted, deploy);
    assert_eq!(
        resources_of(&policy, "ManagedServices"),
        ["arn:aws:ecs:us-east-1:123456789012:service/prod/pay"]
    );
    assert_eq!(
        resources_of(&policy, "ManagedDeploymentGroups"),
        ["arn:aws:codedeploy:us-east-1:123456789012:deploymentgroup:pay/pay-prod"]
    );
}

/// The actions a planned policy grants, KMS left out (DynamoDB's calls on the caller's behalf,
/// not the code's).
fn granted_actions(policy: &Value) -> BTreeSet<String> {
    statements(policy)
        .iter()
        .flat_map(|s| strings(&s["Action"]))
        .filter(|a| !a.starts_with("kms:"))
        .collect()
}

#[test]
fn the_gitops_roles_grant_exactly_what_diff_and_apply_call_to_one_repository_each() {
    let Some(tf) = Terraform::new() else { return };
    let moto = Moto::start();
    let dir = tf.dir("moto-root");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("main.tf"),
        format!(
            r#"{provider}
module "gitops" {{
  source = "../modules/gitops"

  github_repository = "example/releases"
  oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
  table_name        = "switchyard-terraform-test"
  table_kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
  ecs_services      = ["prod/web", "arn:aws:ecs:eu-west-1:123456789012:service/prod/search"]
}}
"#,
            provider = moto_provider(&moto, true),
        ),
    )
    .unwrap();
    tf.init(&dir);
    let plan = tf.plan_json(&dir, &[]);
    let resources = planned_resources(&plan);
    let comments =
        statement_comments(&std::fs::read_to_string(tf.dir("modules/gitops/main.tf")).unwrap());
    let expected =
        |actions: &[&str]| -> BTreeSet<String> { actions.iter().map(|a| a.to_string()).collect() };

    // Pull requests: what `diff` and `apply --dry-run --prune` call, reads only.
    let pull_request = policy_of(values(
        &resources,
        "module.gitops.aws_iam_role_policy.pull_request",
    ));
    assert_eq!(
        granted_actions(&pull_request),
        expected(GITOPS_PULL_REQUEST_ACTIONS),
        "{pull_request:#}"
    );
    check_statements("gitops pull request", &pull_request, &comments);
    assert_eq!(
        resources_of(&pull_request, "ReadReleases"),
        ["arn:aws:dynamodb:us-east-1:123456789012:table/switchyard-terraform-test"]
    );
    assert_eq!(
        resources_of(&pull_request, "ManagedServices"),
        [
            "arn:aws:ecs:us-east-1:123456789012:service/prod/web",
            "arn:aws:ecs:eu-west-1:123456789012:service/prod/search"
        ]
    );

    // After merge: what `apply --prune` calls.
    let apply = policy_of(values(
        &resources,
        "module.gitops.aws_iam_role_policy.apply",
    ));
    assert_eq!(
        granted_actions(&apply),
        expected(GITOPS_APPLY_ACTIONS),
        "{apply:#}"
    );
    check_statements("gitops apply", &apply, &comments);
    for policy in [&pull_request, &apply] {
        let kms = statement(policy, "TableKeyThroughDynamoDB");
        assert_eq!(
            kms["Condition"]["StringEquals"]["kms:ViaService"],
            "dynamodb.us-east-1.amazonaws.com"
        );
    }

    // Each role trusts one kind of job of one repository, through GitHub's OIDC provider.
    for (role, subject) in [
        ("pull_request", "repo:example/releases:pull_request"),
        ("apply", "repo:example/releases:environment:production"),
    ] {
        let trust: Value = serde_json::from_str(
            values(&resources, &format!("module.gitops.aws_iam_role.{role}"))["assume_role_policy"]
                .as_str()
                .expect("the trust policy is known at plan time"),
        )
        .unwrap();
        let statement = &statements(&trust)[0];
        assert_eq!(statement["Action"], "sts:AssumeRoleWithWebIdentity");
        assert_eq!(
            statement["Principal"]["Federated"],
            "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
        );
        let equals = &statement["Condition"]["StringEquals"];
        assert_eq!(equals["token.actions.githubusercontent.com:sub"], subject);
        assert_eq!(
            equals["token.actions.githubusercontent.com:aud"],
            "sts.amazonaws.com"
        );
    }
}

#[test]
fn a_rule_given_as_a_traffic_listener_is_refused() {
    let Some(tf) = Terraform::new() else { return };
    let moto = Moto::start();
    let dir = tf.dir("moto-root");
    std::fs::create_dir_all(&dir).unwrap();
    let rule = LISTENER.replace(":listener/", ":listener-rule/") + "/9683b2d02a6cabee";
    std::fs::write(
        dir.join("main.tf"),
        controller_root(&moto, &format!("  traffic_listener_arns = [\"{rule}\"]\n")),
    )
    .unwrap();
    tf.init(&dir);
    let plan = run_with_limit(
        tf.command(&dir, &["plan", "-input=false", "-no-color"]),
        COMMAND_LIMIT,
    );
    let stderr = String::from_utf8_lossy(&plan.stderr);
    assert!(!plan.status.success(), "a plan with a rule ARN must fail");
    let words: Vec<&str> = stderr.split_whitespace().collect();
    assert!(
        words
            .join(" ")
            .contains("the rules of each listed listener are included"),
        "{stderr}"
    );
}

#[test]
fn more_controller_replicas_than_lease_shards_are_refused() {
    let Some(tf) = Terraform::new() else { return };
    let moto = Moto::start();
    let dir = tf.dir("moto-root");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("main.tf"),
        controller_root(&moto, "  desired_count = 17\n"),
    )
    .unwrap();
    tf.init(&dir);
    let plan = run_with_limit(
        tf.command(&dir, &["plan", "-input=false", "-no-color"]),
        COMMAND_LIMIT,
    );
    let stderr = String::from_utf8_lossy(&plan.stderr);
    assert!(
        !plan.status.success(),
        "a plan with desired_count = 17 must fail"
    );
    let words: Vec<&str> = stderr.split_whitespace().collect();
    assert!(
        words
            .join(" ")
            .contains("more replicas than shards would idle"),
        "{stderr}"
    );
}

/// Runs the `switchyard` binary against moto with `table`.
fn switchyard(moto: &Moto, table: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    command
        .env("SWITCHYARD_TABLE", table)
        .env_remove("RUST_LOG")
        .env_remove("AWS_PROFILE");
    for (key, value) in moto.env() {
        command.env(key, value);
    }
    command
}

fn stop(mut daemon: Child, limit: Duration) -> (std::process::ExitStatus, String) {
    let pid = daemon.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let stderr = drain(daemon.stderr.take().unwrap());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = daemon.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = daemon.kill();
            panic!("switchyard run did not exit within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (
        status,
        String::from_utf8_lossy(&stderr.join().unwrap()).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_module_applies_against_moto_and_the_binary_uses_its_table() {
    let Some(tf) = Terraform::new() else { return };
    let moto = Moto::start();
    let dir = tf.dir("moto-root");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.tf"), controller_root(&moto, "")).unwrap();
    tf.init(&dir);
    tf.run(
        &dir,
        &["apply", "-auto-approve", "-input=false", "-no-color"],
    );
    let outputs: Value =
        serde_json::from_str(&tf.run(&dir, &["output", "-json", "-no-color"])).unwrap();
    let table = outputs["table_name"]["value"].as_str().unwrap().to_string();
    assert_eq!(table, "switchyard-terraform-test");

    // The table is the one src/aws/store.rs documents.
    let sdk = moto.sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let described = dynamodb
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let description = described.table().unwrap();
    let keys: Vec<(String, String)> = description
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_string(),
                k.key_type().as_str().to_string(),
            )
        })
        .collect();
    assert_eq!(keys, [("pk".to_string(), "HASH".to_string())]);
    let attributes: Vec<(String, String)> = description
        .attribute_definitions()
        .iter()
        .map(|a| {
            (
                a.attribute_name().to_string(),
                a.attribute_type().as_str().to_string(),
            )
        })
        .collect();
    assert_eq!(attributes, [("pk".to_string(), "S".to_string())]);
    assert_eq!(
        description
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|m| m.as_str()),
        Some("PAY_PER_REQUEST")
    );
    let stream = description.stream_specification().expect("a stream");
    assert!(stream.stream_enabled());
    assert_eq!(
        stream.stream_view_type().map(|v| v.as_str()),
        Some("NEW_AND_OLD_IMAGES")
    );
    let backups = dynamodb
        .describe_continuous_backups()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let recovery = backups
        .continuous_backups_description()
        .and_then(|d| d.point_in_time_recovery_description())
        .and_then(|p| p.point_in_time_recovery_status())
        .map(|s| s.as_str().to_string());
    assert_eq!(recovery.as_deref(), Some("ENABLED"));

    // The CLI writes and reads releases in it.
    let release = repo().join("deploy/terraform/examples/complete/release.yaml");
    let applied = switchyard(&moto, &table)
        .arg("apply")
        .arg("-f")
        .arg(&release)
        .output()
        .unwrap();
    assert!(
        applied.status.success(),
        "apply: {}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let got = switchyard(&moto, &table)
        .args(["get", "web", "-o", "json"])
        .output()
        .unwrap();
    assert!(
        got.status.success(),
        "get: {}",
        String::from_utf8_lossy(&got.stderr)
    );
    let view: Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(view["metadata"]["generation"], 1);
    let missing = switchyard(&moto, &table)
        .args(["get", "missing"])
        .output()
        .unwrap();
    assert_eq!(
        missing.status.code(),
        Some(3),
        "a missing release is exit code 3: {}",
        String::from_utf8_lossy(&missing.stderr)
    );

    // The daemon runs on it and stops cleanly.
    let daemon = switchyard(&moto, &table)
        .arg("run")
        .env("SWITCHYARD_LISTEN", "127.0.0.1:0")
        .env("SWITCHYARD_LOG_FORMAT", "json")
        .env("SWITCHYARD_RESYNC_PERIOD", "1s")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let (status, log) = stop(daemon, Duration::from_secs(20));
    assert!(
        status.success(),
        "switchyard run exited with {status}:\n{log}"
    );
    for line in log.lines() {
        let lower = line.to_ascii_lowercase();
        let complaint =
            lower.contains("\"level\":\"error\"") || lower.contains("\"level\":\"warn\"");
        let about_the_table = lower.contains("dynamodb")
            || lower.contains(&table)
            || lower.contains("resourcenotfound")
            || lower.contains("stream");
        assert!(
            !(complaint && about_the_table),
            "the controller complained about its table: {line}\n{log}"
        );
        assert!(
            !lower.contains("\"level\":\"error\""),
            "error logged: {line}\n{log}"
        );
    }
}

#[test]
fn the_image_runs_the_binary_where_the_task_definition_health_check_expects_it() {
    // No Docker engine here: the Dockerfile is checked as text against the Terraform and the
    // binary, which is what keeps them from drifting apart.
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let instructions: Vec<String> = dockerfile
        .replace("\\\n", " ")
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let has = |line: &str| instructions.iter().any(|i| i == line);
    assert!(
        has("COPY --from=build /out/switchyard /usr/local/bin/switchyard"),
        "{instructions:#?}"
    );
    assert!(has(
        "COPY config/controller.yaml /etc/switchyard/controller.yaml"
    ));
    assert!(has("ENTRYPOINT [\"switchyard\"]"));
    assert!(has(
        "CMD [\"run\", \"--config\", \"/etc/switchyard/controller.yaml\"]"
    ));
    assert!(has("EXPOSE 8080"));
    assert!(
        instructions.iter().any(|i| i.starts_with("HEALTHCHECK ")
            && i.ends_with("CMD [\"switchyard\", \"healthcheck\"]")),
        "{instructions:#?}"
    );
    let user = instructions
        .iter()
        .rfind(|i| i.starts_with("USER "))
        .expect("a USER");
    assert!(!user.contains("root") && !user.contains(" 0"), "{user}");
    let rust = instructions
        .iter()
        .find(|i| i.starts_with("ARG RUST_VERSION="))
        .expect("the Rust version is an ARG");
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let rust_version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("Cargo.toml has a rust-version")
        .trim_matches('"');
    assert_eq!(rust, &format!("ARG RUST_VERSION={rust_version}"));

    let task_definition =
        std::fs::read_to_string(repo().join("deploy/terraform/modules/controller/ecs.tf")).unwrap();
    assert!(
        task_definition
            .contains(r#"command     = ["CMD", "/usr/local/bin/switchyard", "healthcheck"]"#)
    );

    // The file the image runs with is valid configuration with the image's environment, and
    // the binary has the command both health checks run.
    assert!(has("ENV SWITCHYARD_LISTEN=0.0.0.0:8080"));
    let image_env = BTreeMap::from([("SWITCHYARD_LISTEN".to_string(), "0.0.0.0:8080".to_string())]);
    let settings =
        switchyard::config::load(Some(&repo().join("config/controller.yaml")), &image_env)
            .expect("config/controller.yaml is valid");
    assert_eq!(settings.listen.to_string(), "0.0.0.0:8080");
    let healthcheck = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["healthcheck", "--help"])
        .output()
        .unwrap();
    assert!(
        healthcheck.status.success(),
        "switchyard healthcheck: {}",
        String::from_utf8_lossy(&healthcheck.stderr)
    );
}
