//! The AWS adapters against moto over HTTP, and against AWS-shaped mocks where moto falls short.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_codedeploy::config::retry::RetryConfig;
use aws_sdk_ecs::types as ecs;
use aws_sdk_elasticloadbalancingv2::types as elb;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use jiff::Timestamp;
use switchyard::aws::{CloudWatchAlarms, CodeDeployAdapter, EcsAdapter, ElbAdapter, build_ports};
use switchyard::ports::{
    AlarmState, Alarms, AwsErrorKind, CodeDeploy, ContainerDefinition, CreateDeploymentRequest,
    DeploymentControllerType, DeploymentCreator, DeploymentErrorInfo, DeploymentFilter,
    DeploymentGroup, DeploymentStatus, Ecs, LifecycleEventStatus, LoadBalancer,
    LoadBalancerBinding, NetworkConfiguration, ReadyAction, RollbackInfo, StabilityStatus,
    TaskSetStatus, WeightedTargetGroup,
};

use crate::moto::Moto;

const CLUSTER: &str = "prod";
const SERVICE: &str = "web";
const APP: &str = "web-app";
const GROUP: &str = "web-dg";

// ----- a blue/green world in moto ---------------------------------------------------------

/// One moto server holding a cluster, a task definition, a load balancer with two target
/// groups and two listeners, a `CODE_DEPLOY` service, and a CodeDeploy application and
/// deployment group for it.
struct World {
    moto: Moto,
    config: SdkConfig,
    ecs: aws_sdk_ecs::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    subnets: Vec<String>,
    security_group: String,
    task_definition_arn: String,
    target_groups: [String; 2],
    production_listener: String,
    test_listener: String,
}

/// Sends one EC2 query to moto over a plain socket and returns the body. The crate has no
/// EC2 client, and the load balancer needs moto's default subnets.
fn ec2_query(endpoint: &str, body: &str) -> String {
    let address = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("moto accepts a connection");
    // moto routes on the credential scope of the Authorization header; it checks no signature.
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/x-www-form-urlencoded; \
         charset=utf-8\r\nAuthorization: AWS4-HMAC-SHA256 \
         Credential=test/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("request sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response read");
    response
}

/// Every `<tag>value</tag>` in an XML text, in order.
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once(&close).map(|(value, _)| value.to_string()))
        .collect()
}

fn container(name: &str, image: &str, port: i32) -> ecs::ContainerDefinition {
    ecs::ContainerDefinition::builder()
        .name(name)
        .image(image)
        // moto needs memory on each container.
        .memory(512)
        .port_mappings(ecs::PortMapping::builder().container_port(port).build())
        .environment(
            ecs::KeyValuePair::builder()
                .name("MODE")
                .value("blue")
                .build(),
        )
        .build()
}

fn awsvpc(subnets: &[String], security_group: &str) -> ecs::NetworkConfiguration {
    ecs::NetworkConfiguration::builder()
        .awsvpc_configuration(
            ecs::AwsVpcConfiguration::builder()
                .set_subnets(Some(subnets.to_vec()))
                // moto needs security groups in an awsvpc configuration, and real ones.
                .security_groups(security_group)
                .assign_public_ip(ecs::AssignPublicIp::Disabled)
                .build()
                .unwrap(),
        )
        .build()
}

async fn register_web(ecs: &aws_sdk_ecs::Client, image: &str) -> String {
    ecs.register_task_definition()
        .family("web")
        .network_mode(ecs::NetworkMode::Awsvpc)
        .requires_compatibilities(ecs::Compatibility::Fargate)
        .cpu("256")
        .memory("512")
        .container_definitions(container("web", image, 8080))
        .send()
        .await
        .expect("task definition registered")
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .expect("an ARN")
        .to_string()
}

async fn create_service(
    ecs: &aws_sdk_ecs::Client,
    name: &str,
    controller: ecs::DeploymentControllerType,
    task_definition: &str,
    target_group: &str,
    subnets: &[String],
    security_group: &str,
) {
    ecs.create_service()
        .cluster(CLUSTER)
        .service_name(name)
        .task_definition(task_definition)
        .desired_count(2)
        .launch_type(ecs::LaunchType::Fargate)
        .deployment_controller(
            ecs::DeploymentController::builder()
                .r#type(controller)
                .build()
                .unwrap(),
        )
        .load_balancers(
            ecs::LoadBalancer::builder()
                .target_group_arn(target_group)
                .container_name("web")
                .container_port(8080)
                .build(),
        )
        .network_configuration(awsvpc(subnets, security_group))
        .send()
        .await
        .expect("service created");
}

async fn world() -> World {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let ecs = aws_sdk_ecs::Client::new(&config);
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&config);
    let codedeploy = aws_sdk_codedeploy::Client::new(&config);

    let subnets_xml = ec2_query(&moto.endpoint, "Action=DescribeSubnets&Version=2016-11-15");
    let subnets: Vec<String> = xml_values(&subnets_xml, "subnetId")
        .into_iter()
        .take(2)
        .collect();
    let vpc = xml_values(&subnets_xml, "vpcId")
        .into_iter()
        .next()
        .expect("moto has a default VPC");
    assert_eq!(subnets.len(), 2, "moto has default subnets: {subnets_xml}");
    let groups_xml = ec2_query(
        &moto.endpoint,
        "Action=DescribeSecurityGroups&Version=2016-11-15",
    );
    let security_group = xml_values(&groups_xml, "groupId")
        .into_iter()
        .next()
        .expect("moto has a default security group");

    ecs.create_cluster()
        .cluster_name(CLUSTER)
        .send()
        .await
        .expect("cluster created");
    let task_definition_arn = register_web(&ecs, "web:1").await;

    let load_balancer = elb
        .create_load_balancer()
        .name("web")
        .set_subnets(Some(subnets.clone()))
        .r#type(elb::LoadBalancerTypeEnum::Application)
        .send()
        .await
        .expect("load balancer created")
        .load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string();
    let mut target_groups = Vec::new();
    for name in ["web-a", "web-b"] {
        let arn = elb
            .create_target_group()
            .name(name)
            .protocol(elb::ProtocolEnum::Http)
            .port(8080)
            .vpc_id(&vpc)
            .target_type(elb::TargetTypeEnum::Ip)
            .send()
            .await
            .expect("target group created")
            .target_groups()[0]
            .target_group_arn()
            .unwrap()
            .to_string();
        target_groups.push(arn);
    }
    let target_groups: [String; 2] = target_groups.try_into().unwrap();
    let mut listeners = Vec::new();
    for port in [80, 8080] {
        let arn = elb
            .create_listener()
            .load_balancer_arn(&load_balancer)
            .protocol(elb::ProtocolEnum::Http)
            .port(port)
            .default_actions(
                elb::Action::builder()
                    .r#type(elb::ActionTypeEnum::Forward)
                    .target_group_arn(&target_groups[0])
                    .build(),
            )
            .send()
            .await
            .expect("listener created")
            .listeners()[0]
            .listener_arn()
            .unwrap()
            .to_string();
        listeners.push(arn);
    }

    create_service(
        &ecs,
        SERVICE,
        ecs::DeploymentControllerType::CodeDeploy,
        &task_definition_arn,
        &target_groups[0],
        &subnets,
        &security_group,
    )
    .await;

    use aws_sdk_codedeploy::types as cd;
    codedeploy
        .create_application()
        .application_name(APP)
        .compute_platform(cd::ComputePlatform::Ecs)
        .send()
        .await
        .expect("application created");
    codedeploy
        .create_deployment_group()
        .application_name(APP)
        .deployment_group_name(GROUP)
        .service_role_arn("arn:aws:iam::123456789012:role/codedeploy")
        .deployment_config_name("CodeDeployDefault.ECSLinear10PercentEvery1Minutes")
        .ecs_services(
            cd::EcsService::builder()
                .cluster_name(CLUSTER)
                .service_name(SERVICE)
                .build(),
        )
        .deployment_style(
            cd::DeploymentStyle::builder()
                .deployment_type(cd::DeploymentType::BlueGreen)
                .deployment_option(cd::DeploymentOption::WithTrafficControl)
                .build(),
        )
        .blue_green_deployment_configuration(
            cd::BlueGreenDeploymentConfiguration::builder()
                .deployment_ready_option(
                    cd::DeploymentReadyOption::builder()
                        .action_on_timeout(cd::DeploymentReadyAction::StopDeployment)
                        .wait_time_in_minutes(30)
                        .build(),
                )
                .terminate_blue_instances_on_deployment_success(
                    cd::BlueInstanceTerminationOption::builder()
                        .action(cd::InstanceAction::Terminate)
                        .termination_wait_time_in_minutes(5)
                        .build(),
                )
                .build(),
        )
        .load_balancer_info(
            cd::LoadBalancerInfo::builder()
                .target_group_pair_info_list(
                    cd::TargetGroupPairInfo::builder()
                        .target_groups(cd::TargetGroupInfo::builder().name("web-a").build())
                        .target_groups(cd::TargetGroupInfo::builder().name("web-b").build())
                        .prod_traffic_route(
                            cd::TrafficRoute::builder()
                                .listener_arns(&listeners[0])
                                .build(),
                        )
                        .test_traffic_route(
                            cd::TrafficRoute::builder()
                                .listener_arns(&listeners[1])
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("deployment group created");

    World {
        config,
        ecs,
        elb,
        subnets,
        security_group,
        task_definition_arn,
        target_groups,
        production_listener: listeners[0].clone(),
        test_listener: listeners[1].clone(),
        moto,
    }
}

impl World {
    fn ecs_adapter(&self) -> EcsAdapter {
        EcsAdapter::new(self.ecs.clone())
    }

    fn codedeploy_adapter(&self) -> CodeDeployAdapter {
        CodeDeployAdapter::new(aws_sdk_codedeploy::Client::new(&self.config))
    }

    fn elb_adapter(&self) -> ElbAdapter {
        ElbAdapter::new(self.elb.clone())
    }
}

/// Counts the requests a client sends (one per attempt).
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestCounter(Arc<AtomicUsize>);

impl RequestCounter {
    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

// ----- ECS against moto ---------------------------------------------------------------------

#[tokio::test]
async fn describing_services_maps_a_code_deploy_service_and_leaves_out_missing_ones() {
    let w = world().await;
    let services = w
        .ecs_adapter()
        .describe_services(CLUSTER, &names(&[SERVICE, "ghost"]))
        .await
        .expect("described");
    assert_eq!(
        services.len(),
        1,
        "the missing service is absent: {services:?}"
    );
    let web = &services[0];
    assert_eq!(web.cluster, CLUSTER);
    assert_eq!(web.name, SERVICE);
    assert!(
        web.arn.ends_with(&format!("service/{CLUSTER}/{SERVICE}"))
            || web.arn.ends_with(&format!("service/{SERVICE}")),
        "{}",
        web.arn
    );
    assert_eq!(web.status, "ACTIVE");
    assert_eq!(
        web.deployment_controller,
        DeploymentControllerType::CodeDeploy
    );
    assert_eq!(
        web.task_definition.as_deref(),
        Some(w.task_definition_arn.as_str())
    );
    assert_eq!(web.desired_count, 2);
    assert_eq!(
        web.load_balancers,
        vec![LoadBalancerBinding {
            target_group_arn: w.target_groups[0].clone(),
            container_name: "web".into(),
            container_port: 8080,
        }]
    );
    assert_eq!(
        web.network_configuration,
        Some(NetworkConfiguration {
            subnets: w.subnets.clone(),
            security_groups: vec![w.security_group.clone()],
            assign_public_ip: false,
        })
    );
    assert!(web.capacity_provider_strategy.is_empty());
    assert!(web.task_sets.is_empty(), "CodeDeploy has not deployed yet");
}

#[tokio::test]
async fn task_sets_are_mapped_with_their_status_external_id_scale_and_target_groups() {
    let w = world().await;
    // Task sets are created directly only on EXTERNAL services.
    create_service(
        &w.ecs,
        "external",
        ecs::DeploymentControllerType::External,
        &w.task_definition_arn,
        &w.target_groups[1],
        &w.subnets,
        &w.security_group,
    )
    .await;
    let created = w
        .ecs
        .create_task_set()
        .cluster(CLUSTER)
        .service("external")
        .task_definition(&w.task_definition_arn)
        .external_id("d-EXTERNAL1")
        .launch_type(ecs::LaunchType::Fargate)
        .network_configuration(awsvpc(&w.subnets, &w.security_group))
        .load_balancers(
            ecs::LoadBalancer::builder()
                .target_group_arn(&w.target_groups[1])
                .container_name("web")
                .container_port(8080)
                .build(),
        )
        .scale(
            ecs::Scale::builder()
                .value(50.0)
                .unit(ecs::ScaleUnit::Percent)
                .build(),
        )
        .send()
        .await
        .expect("task set created");
    let task_set_arn = created
        .task_set()
        .unwrap()
        .task_set_arn()
        .unwrap()
        .to_string();
    w.ecs
        .update_service_primary_task_set()
        .cluster(CLUSTER)
        .service("external")
        .primary_task_set(&task_set_arn)
        .send()
        .await
        .expect("primary task set set");

    let services = w
        .ecs_adapter()
        .describe_services(CLUSTER, &names(&["external"]))
        .await
        .expect("described");
    let service = &services[0];
    assert_eq!(
        service.deployment_controller,
        DeploymentControllerType::External
    );
    assert_eq!(service.task_sets.len(), 1);
    let task_set = &service.task_sets[0];
    assert_eq!(task_set.arn, task_set_arn);
    assert!(!task_set.id.is_empty());
    assert_eq!(task_set.status, TaskSetStatus::Primary);
    assert_eq!(task_set.task_definition, w.task_definition_arn);
    assert_eq!(task_set.external_id.as_deref(), Some("d-EXTERNAL1"));
    assert_eq!(task_set.scale_percent, 50.0);
    assert_eq!(
        task_set.stability,
        StabilityStatus::SteadyState,
        "moto is steady at once"
    );
    assert_eq!(task_set.target_group_arns, vec![w.target_groups[1].clone()]);
    assert_eq!(
        service.primary_task_set().map(|t| t.id.clone()),
        Some(task_set.id.clone())
    );
    assert_eq!(
        service.live_task_definition(),
        Some(w.task_definition_arn.as_str())
    );
}

#[tokio::test]
async fn a_missing_cluster_is_not_found() {
    let w = world().await;
    let error = w
        .ecs_adapter()
        .describe_services("no-such-cluster", &names(&[SERVICE]))
        .await
        .expect_err("no such cluster");
    assert_eq!(error.kind, AwsErrorKind::NotFound, "{error}");
    assert_eq!(error.code.as_deref(), Some("ClusterNotFoundException"));
}

#[tokio::test]
async fn twelve_services_are_described_in_two_calls_of_at_most_ten() {
    let w = world().await;
    let mut wanted = vec![SERVICE.to_string()];
    for i in 1..12 {
        let name = format!("svc-{i:02}");
        create_service(
            &w.ecs,
            &name,
            ecs::DeploymentControllerType::CodeDeploy,
            &w.task_definition_arn,
            &w.target_groups[0],
            &w.subnets,
            &w.security_group,
        )
        .await;
        wanted.push(name);
    }
    let counter = RequestCounter::default();
    let client = aws_sdk_ecs::Client::from_conf(
        aws_sdk_ecs::config::Builder::from(&w.config)
            .interceptor(counter.clone())
            .build(),
    );
    let services = EcsAdapter::new(client)
        .describe_services(CLUSTER, &wanted)
        .await
        .expect("described");
    // moto would take all twelve in one call; AWS takes ten.
    assert_eq!(
        counter.count(),
        2,
        "12 names take two DescribeServices calls"
    );
    let mut got: Vec<String> = services.into_iter().map(|s| s.name).collect();
    got.sort();
    wanted.sort();
    assert_eq!(got, wanted);
}

#[tokio::test]
async fn task_definitions_are_found_by_family_revision_and_arn_and_a_missing_one_is_not_found() {
    let w = world().await;
    let second = register_web(&w.ecs, "web:2").await;
    let adapter = w.ecs_adapter();

    let latest = adapter
        .describe_task_definition("web")
        .await
        .expect("by family");
    assert_eq!(
        latest.arn, second,
        "the family alone is its latest revision"
    );
    assert_eq!(latest.family, "web");
    assert_eq!(latest.revision, 2);
    assert_eq!(latest.status, "ACTIVE");
    assert_eq!(latest.short_name(), "web:2");
    let web = latest.container("web").expect("the web container");
    assert_eq!(web.image, "web:2");
    assert_eq!(
        web.environment,
        BTreeMap::from([("MODE".to_string(), "blue".to_string())])
    );
    assert_eq!(web.container_ports, vec![8080]);
    assert_eq!(web.other_fields_digest.len(), 64, "a hex SHA-256");

    let first = adapter
        .describe_task_definition("web:1")
        .await
        .expect("by family:rev");
    assert_eq!(first.arn, w.task_definition_arn);
    assert_eq!(first.container("web").unwrap().image, "web:1");
    // Same content but the image: the digests agree, the containers do not.
    assert_eq!(first.other_fields_digest, latest.other_fields_digest);
    assert_eq!(
        first.container("web").unwrap().other_fields_digest,
        web.other_fields_digest
    );
    assert!(!first.has_same_content(&latest));

    let by_arn = adapter
        .describe_task_definition(&w.task_definition_arn)
        .await
        .expect("by ARN");
    assert_eq!(by_arn, first);

    let error = adapter
        .describe_task_definition("no-such-family")
        .await
        .expect_err("missing");
    assert_eq!(error.kind, AwsErrorKind::NotFound, "{error}");
}

#[tokio::test]
async fn registering_with_an_unknown_container_is_an_invalid_request() {
    let w = world().await;
    let adapter = w.ecs_adapter();
    let base = adapter.describe_task_definition("web:1").await.unwrap();
    let error = adapter
        .register_task_definition(
            &base,
            &[ContainerDefinition {
                name: "worker".into(),
                image: "worker:1".into(),
                environment: BTreeMap::new(),
                container_ports: vec![],
                other_fields_digest: String::new(),
            }],
            &BTreeMap::new(),
        )
        .await
        .expect_err("no such container");
    assert_eq!(error.kind, AwsErrorKind::InvalidRequest, "{error}");
    let latest = adapter.describe_task_definition("web").await.unwrap();
    assert_eq!(latest.revision, 1, "nothing was registered");
}

/// A base task definition with most of what ECS accepts, registered directly.
async fn register_rich_base(ecs_client: &aws_sdk_ecs::Client) -> String {
    let log = |group: &str| {
        ecs::LogConfiguration::builder()
            .log_driver(ecs::LogDriver::Awslogs)
            .options("awslogs-group", group)
            .options("awslogs-region", "us-east-1")
            .options("awslogs-stream-prefix", "ecs")
            .options("mode", "non-blocking")
            .build()
            .unwrap()
    };
    let app = ecs::ContainerDefinition::builder()
        .name("app")
        .image("registry.example/app:1.0.0")
        .cpu(256)
        .memory(768)
        .memory_reservation(512)
        .essential(true)
        .port_mappings(
            ecs::PortMapping::builder()
                .container_port(8080)
                .protocol(ecs::TransportProtocol::Tcp)
                .name("http")
                .app_protocol(ecs::ApplicationProtocol::Http)
                .build(),
        )
        .environment(
            ecs::KeyValuePair::builder()
                .name("LOG_LEVEL")
                .value("info")
                .build(),
        )
        .environment(
            ecs::KeyValuePair::builder()
                .name("FEATURE_X")
                .value("on")
                .build(),
        )
        .secrets(
            ecs::Secret::builder()
                .name("DB_PASSWORD")
                .value_from("arn:aws:secretsmanager:us-east-1:123456789012:secret:db")
                .build()
                .unwrap(),
        )
        .log_configuration(log("/ecs/app"))
        .docker_labels("team", "payments")
        .docker_labels("tier", "web")
        .health_check(
            ecs::HealthCheck::builder()
                .command("CMD-SHELL")
                .command("curl -f http://localhost:8080/health || exit 1")
                .interval(15)
                .timeout(5)
                .retries(3)
                .start_period(30)
                .build()
                .unwrap(),
        )
        .depends_on(
            ecs::ContainerDependency::builder()
                .container_name("envoy")
                .condition(ecs::ContainerCondition::Healthy)
                .build()
                .unwrap(),
        )
        .ulimits(
            ecs::Ulimit::builder()
                .name(ecs::UlimitName::Nofile)
                .soft_limit(65536)
                .hard_limit(65536)
                .build()
                .unwrap(),
        )
        .mount_points(
            ecs::MountPoint::builder()
                .source_volume("data")
                .container_path("/data")
                .read_only(false)
                .build(),
        )
        .entry_point("/bin/app")
        .command("serve")
        .command("--port=8080")
        .working_directory("/srv")
        .user("1000")
        .readonly_root_filesystem(true)
        .stop_timeout(30)
        .build();
    let envoy = ecs::ContainerDefinition::builder()
        .name("envoy")
        .image("registry.example/envoy:1.30")
        .memory(256)
        .essential(true)
        .port_mappings(ecs::PortMapping::builder().container_port(9901).build())
        .environment(
            ecs::KeyValuePair::builder()
                .name("ENVOY_LOG_LEVEL")
                .value("warn")
                .build(),
        )
        .log_configuration(log("/ecs/envoy"))
        .health_check(
            ecs::HealthCheck::builder()
                .command("CMD-SHELL")
                .command("curl -f http://localhost:9901/ready || exit 1")
                .build()
                .unwrap(),
        )
        .build();
    ecs_client
        .register_task_definition()
        .family("rich")
        .task_role_arn("arn:aws:iam::123456789012:role/app-task")
        .execution_role_arn("arn:aws:iam::123456789012:role/app-execution")
        .network_mode(ecs::NetworkMode::Awsvpc)
        .requires_compatibilities(ecs::Compatibility::Fargate)
        .cpu("512")
        .memory("1024")
        .container_definitions(app)
        .container_definitions(envoy)
        .volumes(
            ecs::Volume::builder()
                .name("data")
                .efs_volume_configuration(
                    ecs::EfsVolumeConfiguration::builder()
                        .file_system_id("fs-12345678")
                        .root_directory("/")
                        .transit_encryption(ecs::EfsTransitEncryption::Enabled)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .runtime_platform(
            ecs::RuntimePlatform::builder()
                .cpu_architecture(ecs::CpuArchitecture::Arm64)
                .operating_system_family(ecs::OsFamily::Linux)
                .build(),
        )
        .ephemeral_storage(ecs::EphemeralStorage::builder().size_in_gib(40).build())
        .tags(ecs::Tag::builder().key("team").value("payments").build())
        .tags(ecs::Tag::builder().key("cost-center").value("42").build())
        .send()
        .await
        .expect("rich base registered")
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .unwrap()
        .to_string()
}

/// The task definition with the fields ECS sets on registration cleared.
fn without_registration_stamps(mut definition: ecs::TaskDefinition) -> ecs::TaskDefinition {
    definition.task_definition_arn = None;
    definition.revision = 0;
    definition.registered_at = None;
    definition.registered_by = None;
    definition
}

#[tokio::test]
async fn registering_a_copy_keeps_every_field_of_the_base() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let raw = aws_sdk_ecs::Client::new(&config);
    let base_arn = register_rich_base(&raw).await;
    let adapter = EcsAdapter::new(raw.clone());

    let base = adapter
        .describe_task_definition(&base_arn)
        .await
        .expect("base");
    let app = base.container("app").expect("app container");
    let mut environment = app.environment.clone();
    environment.insert("RELEASE".into(), "2".into());
    let changed = ContainerDefinition {
        image: "registry.example/app:2.0.0".into(),
        environment,
        ..app.clone()
    };
    let copy = adapter
        .register_task_definition(&base, std::slice::from_ref(&changed), &Default::default())
        .await
        .expect("copy registered");
    assert_eq!(copy.family, "rich");
    assert_eq!(copy.revision, base.revision + 1);
    assert_eq!(
        copy.container("app"),
        Some(&ContainerDefinition {
            other_fields_digest: app.other_fields_digest.clone(),
            ..changed.clone()
        })
    );

    let describe = |arn: String| {
        let raw = raw.clone();
        async move {
            raw.describe_task_definition()
                .task_definition(arn)
                .include(ecs::TaskDefinitionField::Tags)
                .send()
                .await
                .expect("described")
        }
    };
    let base_raw = describe(base_arn.clone()).await;
    let copy_raw = describe(copy.arn.clone()).await;

    let mut expected = without_registration_stamps(base_raw.task_definition().unwrap().clone());
    let app_raw = expected
        .container_definitions
        .as_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c.name() == Some("app"))
        .unwrap();
    app_raw.image = Some("registry.example/app:2.0.0".into());
    app_raw.environment = Some(
        [("FEATURE_X", "on"), ("LOG_LEVEL", "info"), ("RELEASE", "2")]
            .into_iter()
            .map(|(n, v)| ecs::KeyValuePair::builder().name(n).value(v).build())
            .collect(),
    );
    let actual = without_registration_stamps(copy_raw.task_definition().unwrap().clone());
    assert_eq!(
        actual, expected,
        "the copy differs from the base beyond image and environment"
    );
    let tags = |tags: &[ecs::Tag]| {
        let mut pairs: Vec<(String, String)> = tags
            .iter()
            .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
            .collect();
        pairs.sort();
        pairs
    };
    assert_eq!(tags(copy_raw.tags()), tags(base_raw.tags()));
    assert_eq!(tags(copy_raw.tags()).len(), 2);

    // The port's digests see the copy as the same content.
    assert_eq!(copy.other_fields_digest, base.other_fields_digest);
    assert_eq!(copy.container("envoy"), base.container("envoy"));
    assert_eq!(
        copy.container("app").unwrap().other_fields_digest,
        app.other_fields_digest
    );
}

/// Keeps the body of every `RegisterTaskDefinition` a client really sends.
#[derive(Debug, Clone, Default)]
struct SentRegistrations(Arc<Mutex<Vec<serde_json::Value>>>);

impl Intercept for SentRegistrations {
    fn name(&self) -> &'static str {
        "SentRegistrations"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        if target.ends_with(".RegisterTaskDefinition") {
            let body = request.body().bytes().expect("an in-memory body");
            self.0.lock().unwrap().push(serde_json::from_slice(body)?);
        }
        Ok(())
    }
}

#[tokio::test]
async fn the_registration_input_is_exactly_what_registering_sends_and_registers_nothing() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let raw = aws_sdk_ecs::Client::new(&config);
    let base_arn = register_rich_base(&raw).await;
    let adapter = EcsAdapter::new(raw.clone());
    let base = adapter.describe_task_definition(&base_arn).await.unwrap();
    let mut changed = base.container("app").unwrap().clone();
    changed.image = "registry.example/app:2.0.0".into();
    changed.environment.remove("FEATURE_X");
    let tags = BTreeMap::from([("switchyard.dev/release".to_string(), "rich".to_string())]);

    let input = adapter
        .registration_input(&base, std::slice::from_ref(&changed), &tags)
        .await
        .expect("the input");
    let revisions = || async {
        adapter
            .list_task_definitions("rich", 10)
            .await
            .expect("listed")
    };
    assert_eq!(revisions().await, [base_arn], "nothing registered");
    assert_eq!(input["family"], "rich");
    assert_eq!(
        input["taskRoleArn"],
        "arn:aws:iam::123456789012:role/app-task"
    );
    assert_eq!(input["cpu"], "512");
    let app = &input["containerDefinitions"][0];
    assert_eq!(app["image"], "registry.example/app:2.0.0");
    assert_eq!(
        app["environment"],
        serde_json::json!([{"name": "LOG_LEVEL", "value": "info"}])
    );
    assert_eq!(app["dockerLabels"]["tier"], "web");
    assert_eq!(input["containerDefinitions"][1]["name"], "envoy");
    let mut tag_keys: Vec<&str> = input["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap())
        .collect();
    tag_keys.sort();
    assert_eq!(tag_keys, ["cost-center", "switchyard.dev/release", "team"]);

    // The same registration, really sent: its body is the captured input, byte for byte
    // the same JSON.
    let sent = SentRegistrations::default();
    let recording = EcsAdapter::new(aws_sdk_ecs::Client::from_conf(
        raw.config().to_builder().interceptor(sent.clone()).build(),
    ));
    recording
        .register_task_definition(&base, std::slice::from_ref(&changed), &tags)
        .await
        .expect("registered");
    assert_eq!(sent.0.lock().unwrap().as_slice(), [input]);
    assert_eq!(revisions().await.len(), 2);

    // A revision as a registration of itself; a container the base lacks is refused.
    let itself = adapter
        .registration_input(&base, &[], &BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(
        itself["containerDefinitions"][0]["image"],
        "registry.example/app:1.0.0"
    );
    let mut stranger = changed.clone();
    stranger.name = "worker".into();
    let refused = adapter
        .registration_input(&base, &[stranger], &tags)
        .await
        .unwrap_err();
    assert_eq!(refused.kind, AwsErrorKind::InvalidRequest, "{refused}");
    assert_eq!(revisions().await.len(), 2);
}

// ----- ELB against moto ---------------------------------------------------------------------

#[tokio::test]
async fn a_listener_forwarding_to_one_target_group_has_one_entry_of_weight_one() {
    let w = world().await;
    let listener = w
        .elb_adapter()
        .describe_listener(&w.production_listener)
        .await
        .expect("described");
    assert_eq!(listener.arn, w.production_listener);
    assert_eq!(listener.port, 80);
    assert_eq!(
        listener.forward,
        vec![WeightedTargetGroup {
            target_group_arn: w.target_groups[0].clone(),
            weight: 1,
        }]
    );
    assert_eq!(listener.percent_to("web-a"), Some(100.0));
}

#[tokio::test]
async fn a_weighted_forward_config_is_read_with_its_weights() {
    let w = world().await;
    let tuple = |arn: &str, weight: i32| {
        elb::TargetGroupTuple::builder()
            .target_group_arn(arn)
            .weight(weight)
            .build()
    };
    w.elb
        .modify_listener()
        .listener_arn(&w.test_listener)
        .default_actions(
            elb::Action::builder()
                .r#type(elb::ActionTypeEnum::Forward)
                .forward_config(
                    elb::ForwardActionConfig::builder()
                        .target_groups(tuple(&w.target_groups[0], 0))
                        .target_groups(tuple(&w.target_groups[1], 100))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("listener modified");
    let listener = w
        .elb_adapter()
        .describe_listener(&w.test_listener)
        .await
        .expect("described");
    assert_eq!(listener.port, 8080);
    assert_eq!(
        listener.forward,
        vec![
            WeightedTargetGroup {
                target_group_arn: w.target_groups[0].clone(),
                weight: 0,
            },
            WeightedTargetGroup {
                target_group_arn: w.target_groups[1].clone(),
                weight: 100,
            },
        ]
    );
    assert_eq!(listener.percent_to("web-b"), Some(100.0));
    assert_eq!(listener.percent_to("web-a"), Some(0.0));
}

#[tokio::test]
async fn a_missing_listener_is_not_found() {
    let w = world().await;
    let missing = format!(
        "{}0",
        w.production_listener.trim_end_matches(|c: char| c != '/')
    );
    let error = w
        .elb_adapter()
        .describe_listener(&missing)
        .await
        .expect_err("missing listener");
    assert_eq!(error.kind, AwsErrorKind::NotFound, "{error}");
}

// ----- CodeDeploy against moto --------------------------------------------------------------

#[tokio::test]
async fn the_deployment_group_is_mapped_and_a_missing_one_is_not_found() {
    let w = world().await;
    let adapter = w.codedeploy_adapter();
    let group = adapter
        .get_deployment_group(APP, GROUP)
        .await
        .expect("group");
    assert_eq!(
        group,
        DeploymentGroup {
            application: APP.into(),
            name: GROUP.into(),
            ecs_service: Some((CLUSTER.into(), SERVICE.into())),
            deployment_config: "CodeDeployDefault.ECSLinear10PercentEvery1Minutes".into(),
            ready_action: ReadyAction::StopDeployment { wait_minutes: 30 },
            termination_wait_minutes: 5,
            target_group_names: vec!["web-a".into(), "web-b".into()],
            production_listener_arns: vec![w.production_listener.clone()],
            test_listener_arns: vec![w.test_listener.clone()],
        }
    );

    let error = adapter
        .get_deployment_group(APP, "no-such-group")
        .await
        .expect_err("missing group");
    assert_eq!(error.kind, AwsErrorKind::NotFound, "{error}");
    let error = adapter
        .get_deployment_group("no-such-app", GROUP)
        .await
        .expect_err("missing application");
    assert_eq!(error.kind, AwsErrorKind::NotFound, "{error}");
}

#[tokio::test]
async fn a_created_deployment_is_read_back_and_listed_by_both_filters() {
    let w = world().await;
    let adapter = w.codedeploy_adapter();
    let before = Timestamp::now() - jiff::SignedDuration::from_secs(60);
    let appspec = serde_json::json!({
        "version": 0.0,
        "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": {
            "TaskDefinition": w.task_definition_arn,
            "LoadBalancerInfo": {"ContainerName": "web", "ContainerPort": 8080}
        }}}]
    })
    .to_string();
    let id = adapter
        .create_deployment(&CreateDeploymentRequest {
            application: APP.into(),
            deployment_group: GROUP.into(),
            appspec_content: appspec,
            description: "switchyard release web generation 3".into(),
            deployment_config: Some("CodeDeployDefault.ECSAllAtOnce".into()),
        })
        .await
        .expect("deployment created");
    assert!(!id.is_empty());

    let deployment = adapter.get_deployment(&id).await.expect("deployment");
    assert_eq!(deployment.id, id);
    assert_eq!(deployment.application, APP);
    assert_eq!(deployment.deployment_group, GROUP);
    assert_eq!(
        deployment.status,
        DeploymentStatus::Created,
        "moto never moves on"
    );
    assert_eq!(
        deployment.description.as_deref(),
        Some("switchyard release web generation 3")
    );
    assert_eq!(
        deployment.deployment_config,
        "CodeDeployDefault.ECSAllAtOnce"
    );
    let created = deployment.create_time.expect("a create time");
    assert!(created >= before, "{created} >= {before}");
    assert_eq!(deployment.complete_time, None);
    assert_eq!(deployment.error, None);

    let active = adapter
        .list_deployments(APP, GROUP, DeploymentFilter::Active)
        .await
        .expect("active");
    assert_eq!(active, vec![id.clone()]);
    let recent = adapter
        .list_deployments(APP, GROUP, DeploymentFilter::CreatedSince(before))
        .await
        .expect("recent");
    assert_eq!(recent, vec![id.clone()]);
    let future = Timestamp::now() + jiff::SignedDuration::from_secs(3600);
    let none = adapter
        .list_deployments(APP, GROUP, DeploymentFilter::CreatedSince(future))
        .await
        .expect("none yet");
    assert!(none.is_empty(), "{none:?}");

    let error = adapter
        .get_deployment("d-NOSUCH000")
        .await
        .expect_err("missing deployment");
    assert_eq!(error.kind, AwsErrorKind::NotFound, "{error}");
}

#[tokio::test]
async fn build_ports_wires_every_adapter_to_the_configuration() {
    let w = world().await;
    let ports = build_ports(&w.config);
    let services = ports
        .ecs
        .describe_services(CLUSTER, &names(&[SERVICE]))
        .await
        .expect("ecs");
    assert_eq!(services.len(), 1);
    let group = ports
        .codedeploy
        .get_deployment_group(APP, GROUP)
        .await
        .expect("codedeploy");
    assert_eq!(
        group.production_listener_arns,
        vec![w.production_listener.clone()]
    );
    let listener = ports
        .load_balancer
        .describe_listener(&w.production_listener)
        .await
        .expect("elb");
    assert_eq!(listener.port, 80);
    drop(w.moto);
}

// ----- CodeDeploy with mocked answers (moto lacks these) ---------------------------------

/// An error answer the way CodeDeploy's JSON protocol sends it.
fn codedeploy_error(code: &str, message: &str) -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(400).unwrap(),
        SdkBody::from(serde_json::json!({"__type": code, "message": message}).to_string()),
    )
}

fn codedeploy_ok(body: serde_json::Value) -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(200).unwrap(),
        SdkBody::from(body.to_string()),
    )
}

/// Standard retries with a tiny backoff, so a retried call shows up as extra requests.
fn retrying(builder: aws_sdk_codedeploy::config::Builder) -> aws_sdk_codedeploy::config::Builder {
    builder.retry_config(
        RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(1)),
    )
}

#[tokio::test]
async fn continuing_a_ready_deployment_asks_for_ready_wait_and_too_early_is_a_conflict() {
    use aws_sdk_codedeploy::Client;
    use aws_sdk_codedeploy::types::DeploymentWaitType;
    let ok = mock!(Client::continue_deployment)
        .match_requests(|r| {
            r.deployment_id() == Some("d-READY")
                && r.deployment_wait_type() == Some(&DeploymentWaitType::ReadyWait)
        })
        .then_http_response(|| codedeploy_ok(serde_json::json!({})));
    let early = mock!(Client::continue_deployment)
        .match_requests(|r| r.deployment_id() == Some("d-EARLY"))
        .then_http_response(|| {
            codedeploy_error(
                "DeploymentIsNotInReadyStateException",
                "The deployment d-EARLY is not in a ready state.",
            )
        });
    let client = mock_client!(aws_sdk_codedeploy, RuleMode::MatchAny, [&ok, &early]);
    let adapter = CodeDeployAdapter::new(client);

    adapter
        .continue_deployment("d-READY")
        .await
        .expect("continued");
    assert_eq!(ok.num_calls(), 1);
    let error = adapter
        .continue_deployment("d-EARLY")
        .await
        .expect_err("not ready");
    assert_eq!(error.kind, AwsErrorKind::Conflict, "{error}");
    assert_eq!(
        error.code.as_deref(),
        Some("DeploymentIsNotInReadyStateException")
    );
    assert_eq!(error.operation, "ContinueDeployment");
}

#[tokio::test]
async fn stopping_passes_the_rollback_flag_and_a_completed_deployment_is_a_conflict() {
    use aws_sdk_codedeploy::Client;
    let with_rollback = mock!(Client::stop_deployment)
        .match_requests(|r| {
            r.deployment_id() == Some("d-RUNNING") && r.auto_rollback_enabled() == Some(true)
        })
        .then_http_response(|| {
            codedeploy_ok(serde_json::json!({"status": "Pending", "statusMessage": "Stopping"}))
        });
    let without_rollback = mock!(Client::stop_deployment)
        .match_requests(|r| {
            r.deployment_id() == Some("d-RUNNING") && r.auto_rollback_enabled() == Some(false)
        })
        .then_http_response(|| codedeploy_ok(serde_json::json!({"status": "Succeeded"})));
    let done = mock!(Client::stop_deployment)
        .match_requests(|r| r.deployment_id() == Some("d-DONE"))
        .then_http_response(|| {
            codedeploy_error(
                "DeploymentAlreadyCompletedException",
                "The deployment d-DONE has already completed.",
            )
        });
    let client = mock_client!(
        aws_sdk_codedeploy,
        RuleMode::MatchAny,
        [&with_rollback, &without_rollback, &done]
    );
    let adapter = CodeDeployAdapter::new(client);

    adapter
        .stop_deployment("d-RUNNING", true)
        .await
        .expect("stopped");
    assert_eq!(with_rollback.num_calls(), 1);
    adapter
        .stop_deployment("d-RUNNING", false)
        .await
        .expect("stopped");
    assert_eq!(without_rollback.num_calls(), 1);
    let error = adapter
        .stop_deployment("d-DONE", true)
        .await
        .expect_err("completed");
    assert_eq!(error.kind, AwsErrorKind::Conflict, "{error}");
}

#[tokio::test]
async fn the_deployment_target_maps_lifecycle_events_and_weighted_task_sets() {
    use aws_sdk_codedeploy::Client;
    let target = mock!(Client::get_deployment_target)
        .match_requests(|r| r.deployment_id() == Some("d-1") && r.target_id() == Some("prod:web"))
        .then_http_response(|| {
            codedeploy_ok(serde_json::json!({
                "deploymentTarget": {
                    "deploymentTargetType": "ECSTarget",
                    "ecsTarget": {
                        "deploymentId": "d-1",
                        "targetId": "prod:web",
                        "targetArn": "arn:aws:ecs:us-east-1:123456789012:service/prod/web",
                        "lastUpdatedAt": 1_700_000_300.0,
                        "status": "InProgress",
                        "lifecycleEvents": [
                            {"lifecycleEventName": "BeforeInstall", "status": "Succeeded",
                             "startTime": 1_700_000_000.0, "endTime": 1_700_000_001.5},
                            {"lifecycleEventName": "Install", "status": "Succeeded",
                             "startTime": 1_700_000_002.0, "endTime": 1_700_000_120.0},
                            {"lifecycleEventName": "AllowTraffic", "status": "InProgress",
                             "startTime": 1_700_000_200.0},
                            {"lifecycleEventName": "AfterAllowTraffic", "status": "Pending"}
                        ],
                        "taskSetsInfo": [
                            {"identifer": "ecs-svc/1111", "desiredCount": 2, "pendingCount": 0,
                             "runningCount": 2, "status": "PRIMARY", "trafficWeight": 90.0,
                             "targetGroup": {"name": "web-a"}, "taskSetLabel": "Blue"},
                            {"identifer": "ecs-svc/2222", "desiredCount": 2, "pendingCount": 1,
                             "runningCount": 1, "status": "ACTIVE", "trafficWeight": 10.0,
                             "targetGroup": {"name": "web-b"}, "taskSetLabel": "Green"}
                        ]
                    }
                }
            }))
        });
    let not_started = mock!(Client::get_deployment_target)
        .match_requests(|r| r.deployment_id() == Some("d-NEW"))
        .then_http_response(|| {
            codedeploy_error(
                "DeploymentNotStartedException",
                "The deployment has not started.",
            )
        });
    let client = mock_client!(
        aws_sdk_codedeploy,
        RuleMode::MatchAny,
        [&target, &not_started]
    );
    let adapter = CodeDeployAdapter::new(client);

    let mapped = adapter
        .get_deployment_target("d-1", "prod:web")
        .await
        .expect("target");
    assert_eq!(mapped.status, "InProgress");
    let events: Vec<(&str, LifecycleEventStatus)> = mapped
        .lifecycle_events
        .iter()
        .map(|e| (e.name.as_str(), e.status))
        .collect();
    assert_eq!(
        events,
        vec![
            ("BeforeInstall", LifecycleEventStatus::Succeeded),
            ("Install", LifecycleEventStatus::Succeeded),
            ("AllowTraffic", LifecycleEventStatus::InProgress),
            ("AfterAllowTraffic", LifecycleEventStatus::Pending),
        ]
    );
    assert_eq!(
        mapped.lifecycle_events[0].start_time,
        Some(Timestamp::from_second(1_700_000_000).unwrap())
    );
    assert_eq!(
        mapped.lifecycle_events[0].end_time,
        Some(Timestamp::from_millisecond(1_700_000_001_500).unwrap())
    );
    assert_eq!(mapped.lifecycle_events[3].start_time, None);
    let blue = &mapped.task_sets[0];
    assert_eq!(blue.identifier, "ecs-svc/1111");
    assert_eq!(blue.status, "PRIMARY");
    assert_eq!(blue.traffic_weight, 90.0);
    assert_eq!(
        (blue.desired_count, blue.pending_count, blue.running_count),
        (2, 0, 2)
    );
    assert_eq!(blue.target_group_name.as_deref(), Some("web-a"));
    assert_eq!(blue.label.as_deref(), Some("Blue"));
    let green = &mapped.task_sets[1];
    assert_eq!(green.identifier, "ecs-svc/2222");
    assert_eq!(green.traffic_weight, 10.0);
    assert_eq!(
        (
            green.desired_count,
            green.pending_count,
            green.running_count
        ),
        (2, 1, 1)
    );
    assert_eq!(green.target_group_name.as_deref(), Some("web-b"));
    assert_eq!(green.label.as_deref(), Some("Green"));

    let error = adapter
        .get_deployment_target("d-NEW", "prod:web")
        .await
        .expect_err("not started");
    assert_eq!(error.kind, AwsErrorKind::NotFound, "no target yet: {error}");
}

#[tokio::test]
async fn a_stopped_and_rolled_back_deployment_maps_its_error_rollback_and_creator() {
    use aws_sdk_codedeploy::Client;
    let stopped = mock!(Client::get_deployment)
        .match_requests(|r| r.deployment_id() == Some("d-STOPPED"))
        .then_http_response(|| {
            codedeploy_ok(serde_json::json!({"deploymentInfo": {
                "applicationName": APP, "deploymentGroupName": GROUP,
                "deploymentConfigName": "CodeDeployDefault.ECSCanary10Percent5Minutes",
                "deploymentId": "d-STOPPED", "status": "Stopped", "creator": "user",
                "description": "switchyard web 7",
                "createTime": 1_700_000_000.0, "completeTime": 1_700_000_600.0,
                "errorInformation": {"code": "ALARM_ACTIVE", "message": "Alarm web-5xx fired"},
                "rollbackInfo": {"rollbackDeploymentId": "d-ROLLBACK",
                                 "rollbackMessage": "Rolled back by d-ROLLBACK"},
                "computePlatform": "ECS"
            }}))
        });
    let rollback = mock!(Client::get_deployment)
        .match_requests(|r| r.deployment_id() == Some("d-ROLLBACK"))
        .then_http_response(|| {
            codedeploy_ok(serde_json::json!({"deploymentInfo": {
                "applicationName": APP, "deploymentGroupName": GROUP,
                "deploymentConfigName": "CodeDeployDefault.ECSAllAtOnce",
                "deploymentId": "d-ROLLBACK", "status": "SomethingNew",
                "creator": "codeDeployRollback",
                "rollbackInfo": {"rollbackTriggeringDeploymentId": "d-STOPPED"}
            }}))
        });
    let client = mock_client!(
        aws_sdk_codedeploy,
        RuleMode::MatchAny,
        [&stopped, &rollback]
    );
    let adapter = CodeDeployAdapter::new(client);

    let d = adapter
        .get_deployment("d-STOPPED")
        .await
        .expect("deployment");
    assert_eq!(d.status, DeploymentStatus::Stopped);
    assert_eq!(d.creator, DeploymentCreator::User);
    assert_eq!(
        d.deployment_config,
        "CodeDeployDefault.ECSCanary10Percent5Minutes"
    );
    assert_eq!(d.description.as_deref(), Some("switchyard web 7"));
    assert_eq!(
        d.create_time,
        Some(Timestamp::from_second(1_700_000_000).unwrap())
    );
    assert_eq!(
        d.complete_time,
        Some(Timestamp::from_second(1_700_000_600).unwrap())
    );
    assert_eq!(
        d.error,
        Some(DeploymentErrorInfo {
            code: "ALARM_ACTIVE".into(),
            message: "Alarm web-5xx fired".into()
        })
    );
    assert_eq!(
        d.rollback,
        Some(RollbackInfo {
            rollback_deployment_id: Some("d-ROLLBACK".into()),
            rollback_triggering_deployment_id: None,
            rollback_message: Some("Rolled back by d-ROLLBACK".into()),
        })
    );

    let r = adapter
        .get_deployment("d-ROLLBACK")
        .await
        .expect("rollback");
    assert_eq!(r.creator, DeploymentCreator::CodeDeployRollback);
    assert_eq!(r.status, DeploymentStatus::Other("SomethingNew".into()));
    assert!(!r.status.is_terminal());
    assert_eq!(
        r.rollback
            .and_then(|i| i.rollback_triggering_deployment_id)
            .as_deref(),
        Some("d-STOPPED")
    );
}

fn create_request() -> CreateDeploymentRequest {
    CreateDeploymentRequest {
        application: APP.into(),
        deployment_group: GROUP.into(),
        appspec_content: "{}".into(),
        description: "switchyard web 8".into(),
        deployment_config: None,
    }
}

#[tokio::test]
async fn a_second_deployment_is_refused_with_the_id_of_the_active_one() {
    use aws_sdk_codedeploy::Client;
    use aws_sdk_codedeploy::types::RevisionLocationType;
    let refused = mock!(Client::create_deployment)
        .match_requests(|r| {
            r.revision().and_then(|rev| rev.revision_type())
                == Some(&RevisionLocationType::AppSpecContent)
                && r.revision()
                    .and_then(|rev| rev.app_spec_content())
                    .and_then(|c| c.content())
                    == Some("{}")
                && r.description() == Some("switchyard web 8")
                && r.deployment_config_name().is_none()
        })
        .then_http_response(|| {
            codedeploy_error(
                "DeploymentLimitExceededException",
                "The Deployment Group 'web-dg' already has an active Deployment 'd-ACTIVE42'",
            )
        });
    let client = mock_client!(aws_sdk_codedeploy, RuleMode::MatchAny, [&refused]);
    let error = CodeDeployAdapter::new(client)
        .create_deployment(&create_request())
        .await
        .expect_err("refused");
    assert_eq!(
        error.kind,
        AwsErrorKind::DeploymentLimitExceeded {
            active_deployment_id: Some("d-ACTIVE42".into())
        },
        "{error}"
    );
    assert_eq!(refused.num_calls(), 1);
}

#[tokio::test]
async fn a_throttled_create_deployment_is_sent_exactly_once() {
    use aws_sdk_codedeploy::Client;
    let throttle = || codedeploy_error("ThrottlingException", "Rate exceeded");
    let create = mock!(Client::create_deployment)
        .sequence()
        .http_response(throttle)
        .times(3)
        .build();
    let get = mock!(Client::get_deployment)
        .sequence()
        .http_response(throttle)
        .times(3)
        .build();
    let client = mock_client!(
        aws_sdk_codedeploy,
        RuleMode::MatchAny,
        [&create, &get],
        retrying
    );
    let adapter = CodeDeployAdapter::new(client);

    let error = adapter
        .create_deployment(&create_request())
        .await
        .expect_err("throttled");
    assert_eq!(error.kind, AwsErrorKind::Throttling, "{error}");
    assert_eq!(
        create.num_calls(),
        1,
        "CreateDeployment is never retried by the SDK"
    );

    // The same client retries other calls: the single attempt above is the override's doing.
    let error = adapter.get_deployment("d-1").await.expect_err("throttled");
    assert_eq!(error.kind, AwsErrorKind::Throttling, "{error}");
    assert_eq!(
        get.num_calls(),
        3,
        "GetDeployment is retried up to max attempts"
    );
}

// ----- CloudWatch with mocked answers (moto does not speak its protocol) -------------------

fn alarm_names(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("alarm-{i:03}")).collect()
}

/// One alarm of an account, as the mocked CloudWatch holds it.
#[derive(Clone)]
struct MockAlarm {
    name: String,
    alarm_type: aws_sdk_cloudwatch::types::AlarmType,
    /// `None`: the answer carries no `StateValue` (the model makes every field optional).
    state: Option<aws_sdk_cloudwatch::types::StateValue>,
}

/// Answers one DescribeAlarms of `request.alarm_names()` from `account` as AWS does: each
/// alarm in the list of its type, and only the types the request asks for in `AlarmTypes`
/// (metric alarms only when it names none), so a caller that does not ask for a type never
/// sees its alarms.
fn describe_alarms_like_aws(
    request: &aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsInput,
    account: &[MockAlarm],
) -> aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput {
    use aws_sdk_cloudwatch::types::{AlarmType, CompositeAlarm, LogAlarm, MetricAlarm};
    let asked = request.alarm_types();
    let wanted = |t: &AlarmType| {
        if asked.is_empty() {
            *t == AlarmType::MetricAlarm
        } else {
            asked.contains(t)
        }
    };
    let mut output =
        aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput::builder();
    for name in request.alarm_names() {
        let Some(alarm) = account.iter().find(|a| &a.name == name) else {
            continue;
        };
        if !wanted(&alarm.alarm_type) {
            continue;
        }
        let state = alarm.state.clone();
        output = match alarm.alarm_type {
            AlarmType::MetricAlarm => output.metric_alarms(
                MetricAlarm::builder()
                    .alarm_name(name)
                    .set_state_value(state)
                    .build(),
            ),
            AlarmType::CompositeAlarm => output.composite_alarms(
                CompositeAlarm::builder()
                    .alarm_name(name)
                    .set_state_value(state)
                    .build(),
            ),
            AlarmType::LogAlarm => output.log_alarms(
                LogAlarm::builder()
                    .alarm_name(name)
                    .set_state_value(state)
                    .build(),
            ),
            ref other => panic!("no such alarm type in the model: {other:?}"),
        };
    }
    output.build()
}

/// alarm-NNN exists unless NNN is a multiple of 10; every 7th is in ALARM, every 5th is
/// composite, every 3rd (of the others) a log alarm, the rest are OK metric alarms
/// (alarm-001 lacks data).
fn numbered_alarms(count: usize) -> Vec<MockAlarm> {
    use aws_sdk_cloudwatch::types::{AlarmType, StateValue};
    (0..count)
        .filter(|n| !n.is_multiple_of(10))
        .map(|n| MockAlarm {
            name: format!("alarm-{n:03}"),
            alarm_type: if n.is_multiple_of(5) {
                AlarmType::CompositeAlarm
            } else if n.is_multiple_of(3) {
                AlarmType::LogAlarm
            } else {
                AlarmType::MetricAlarm
            },
            state: Some(if n.is_multiple_of(7) {
                StateValue::Alarm
            } else if n == 1 {
                StateValue::InsufficientData
            } else {
                StateValue::Ok
            }),
        })
        .collect()
}

fn answer(
    request: &aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsInput,
    seen: &Mutex<Vec<usize>>,
) -> aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput {
    seen.lock().unwrap().push(request.alarm_names().len());
    describe_alarms_like_aws(request, &numbered_alarms(150))
}

#[tokio::test]
async fn alarm_states_ask_for_at_most_a_hundred_names_per_call() {
    use aws_sdk_cloudwatch::Client;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (s1, s2) = (seen.clone(), seen.clone());
    let first = mock!(Client::describe_alarms)
        .match_requests(|r| r.alarm_names().iter().any(|n| n == "alarm-000"))
        .then_compute_output(move |r| answer(r, &s1));
    let second = mock!(Client::describe_alarms)
        .match_requests(|r| r.alarm_names().iter().any(|n| n == "alarm-100"))
        .then_compute_output(move |r| answer(r, &s2));
    let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&first, &second]);

    let names = alarm_names(150);
    let states = CloudWatchAlarms::new(client)
        .alarm_states(&names)
        .await
        .expect("states");
    assert_eq!(
        (first.num_calls(), second.num_calls()),
        (1, 1),
        "150 names: two calls"
    );
    assert_eq!(*seen.lock().unwrap(), vec![100, 50]);
    assert_eq!(states.len(), 135, "the 15 missing alarms are absent");
    assert!(!states.contains_key("alarm-010"));
    assert_eq!(
        states["alarm-007"],
        AlarmState::Alarm,
        "metric alarm in ALARM"
    );
    assert_eq!(
        states["alarm-035"],
        AlarmState::Alarm,
        "composite alarm in ALARM"
    );
    assert_eq!(states["alarm-015"], AlarmState::Ok, "composite alarm OK");
    assert_eq!(states["alarm-021"], AlarmState::Alarm, "log alarm in ALARM");
    assert_eq!(states["alarm-003"], AlarmState::Ok, "log alarm OK");
    assert_eq!(states["alarm-001"], AlarmState::InsufficientData);
    assert_eq!(states["alarm-149"], AlarmState::Ok);
}

/// DescribeAlarms returns composite and log alarms only when asked for them: a firing alarm
/// of any type named in `rollback.alarms` must be read, and a name that is no alarm at all
/// must be told apart from an alarm that is OK (absent from the map, not OK).
#[tokio::test]
async fn alarm_states_read_metric_composite_and_log_alarms_and_leave_out_missing_ones() {
    use aws_sdk_cloudwatch::Client;
    use aws_sdk_cloudwatch::types::{AlarmType, StateValue};
    let alarm = |name: &str, alarm_type: AlarmType, state: Option<StateValue>| MockAlarm {
        name: name.to_string(),
        alarm_type,
        state,
    };
    let account = vec![
        alarm("web-latency", AlarmType::MetricAlarm, Some(StateValue::Ok)),
        alarm(
            "web-health",
            AlarmType::CompositeAlarm,
            Some(StateValue::Alarm),
        ),
        alarm(
            "web-errors-in-logs",
            AlarmType::LogAlarm,
            Some(StateValue::Alarm),
        ),
        alarm("web-log-quiet", AlarmType::LogAlarm, Some(StateValue::Ok)),
        // Exists, but the answer carries no state: no evidence either way, yet not missing.
        alarm("web-stateless", AlarmType::MetricAlarm, None),
    ];
    let asked_types = Arc::new(Mutex::new(Vec::new()));
    let (seen, answered) = (asked_types.clone(), account.clone());
    let rule = mock!(Client::describe_alarms).then_compute_output(move |r| {
        seen.lock().unwrap().push(r.alarm_types().to_vec());
        describe_alarms_like_aws(r, &answered)
    });
    let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&rule]);

    let states = CloudWatchAlarms::new(client)
        .alarm_states(&names(&[
            "web-latency",
            "web-health",
            "web-errors-in-logs",
            "web-log-quiet",
            "web-stateless",
            "web-typo",
        ]))
        .await
        .expect("states");
    assert_eq!(
        states,
        BTreeMap::from([
            ("web-latency".to_string(), AlarmState::Ok),
            ("web-health".to_string(), AlarmState::Alarm),
            ("web-errors-in-logs".to_string(), AlarmState::Alarm),
            ("web-log-quiet".to_string(), AlarmState::Ok),
            ("web-stateless".to_string(), AlarmState::InsufficientData),
        ]),
        "every type read; `web-typo` is no alarm and is absent; asked for {:?}",
        asked_types.lock().unwrap()
    );
    assert_eq!(rule.num_calls(), 1, "one call for six names");
}

#[tokio::test]
async fn alarm_states_follow_the_next_token() {
    use aws_sdk_cloudwatch::Client;
    use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
    use aws_sdk_cloudwatch::types::{MetricAlarm, StateValue};
    let alarm = |name: &str, state: StateValue| {
        MetricAlarm::builder()
            .alarm_name(name)
            .state_value(state)
            .build()
    };
    let page1 = mock!(Client::describe_alarms)
        .match_requests(|r| r.next_token().is_none())
        .then_output(move || {
            DescribeAlarmsOutput::builder()
                .metric_alarms(alarm("a", StateValue::Ok))
                .next_token("page-2")
                .build()
        });
    let page2 = mock!(Client::describe_alarms)
        .match_requests(|r| r.next_token() == Some("page-2"))
        .then_output(move || {
            DescribeAlarmsOutput::builder()
                .metric_alarms(alarm("b", StateValue::Alarm))
                .build()
        });
    let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&page1, &page2]);
    let states = CloudWatchAlarms::new(client)
        .alarm_states(&names(&["a", "b"]))
        .await
        .expect("states");
    assert_eq!(
        states,
        BTreeMap::from([
            ("a".to_string(), AlarmState::Ok),
            ("b".to_string(), AlarmState::Alarm),
        ])
    );
    assert_eq!((page1.num_calls(), page2.num_calls()), (1, 1));
}
