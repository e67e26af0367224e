//! The deployment files under `deploy/` are what fleets run: the kustomize base and its example
//! overlay must render with `kubectl kustomize` and validate against Kubernetes' own schemas
//! (`kubernetes-validate`), the ECS template must pass `cfn-lint`, and both must keep the
//! properties SPEC section 12 asks for; so must the Systems Manager template of section 17
//! (its document's shell steps run for real in tests/deb.rs). The validators come from the venv `scripts/test.sh`
//! installs; without it (or without kubectl) these tests fail, they never pass silently.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use common::{repo_path, run, snowflake};

/// Kubernetes versions the manifests are checked against: the oldest still in standard support
/// on EKS when this was written, and the newest `kubernetes-validate` knows.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.32.0", "1.35.0"];

fn venv_tool(name: &str) -> PathBuf {
    let tool = common::venv_python().with_file_name(name);
    assert!(tool.exists(), "{} is missing: scripts/localstack.sh install puts it in the test venv", tool.display());
    tool
}

fn kustomize(dir: &str) -> String {
    let (code, stdout, stderr) = run(Command::new("kubectl").args(["kustomize", &repo_path(dir).to_string_lossy()]));
    assert_eq!(code, 0, "kubectl kustomize {dir} failed (kubectl must be installed, see scripts/deps.sh): {stderr}");
    stdout
}

/// Every document of a YAML stream, as JSON (PyYAML from the test venv does the reading).
fn yaml_documents(yaml: &str) -> Vec<Value> {
    let mut child = Command::new(common::venv_python())
        .args(["-c", "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(yaml.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the rendered YAML does not parse");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Runs `kubernetes-validate --strict` (unknown fields are errors) on `yaml` for each version.
fn kubernetes_validate(yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, yaml).unwrap();
    let mut report = String::new();
    let mut all_passed = true;
    for version in KUBERNETES_VERSIONS {
        let (code, stdout, stderr) = run(Command::new(venv_tool("kubernetes-validate")).args(["--strict", "-k", version]).arg(&file));
        all_passed &= code == 0;
        report.push_str(&format!("--- {version}: exit {code}\n{stdout}{stderr}"));
    }
    (all_passed, report)
}

fn find<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    documents.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind} in {documents:#?}"))
}

fn assert_renders_and_validates(dir: &str) -> Vec<Value> {
    let yaml = kustomize(dir);
    let (passed, report) = kubernetes_validate(&yaml);
    assert!(passed, "{dir} does not validate:\n{report}");
    let documents = yaml_documents(&yaml);
    for kind in ["ServiceAccount", "ConfigMap", "DaemonSet"] {
        let name = find(&documents, kind)["metadata"]["name"].as_str().unwrap().to_string();
        let line = format!("passed for resource {}/{name}", kind.to_lowercase());
        assert!(report.matches(&line).count() == KUBERNETES_VERSIONS.len(), "{line} missing:\n{report}");
    }
    documents
}

#[test]
fn the_kustomize_base_renders_validates_and_runs_the_daemon_as_section_12_says() {
    let documents = assert_renders_and_validates("deploy/kubernetes/base");
    let daemonset = find(&documents, "DaemonSet");
    let pod = &daemonset["spec"]["template"];
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "9731");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    let spec = &pod["spec"];
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(spec["securityContext"]["runAsUser"], 10001, "the image's user");
    assert_eq!(spec["serviceAccountName"], "specialsnowflake");
    assert_eq!(daemonset["spec"]["updateStrategy"]["rollingUpdate"]["maxSurge"], 0, "never two daemons on one state directory");

    let container = spec["containers"].as_array().unwrap().iter().find(|c| c["name"] == "snowflake").unwrap();
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"], "/healthz", "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], "http", "{probe}");
    }
    assert_eq!(container["ports"][0]["containerPort"], 9731);
    for (kind, resource) in [("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory")] {
        assert!(container["resources"][kind][resource].is_string(), "resources.{kind}.{resource} is set");
    }
    let node_name = container["env"].as_array().unwrap().iter().find(|e| e["name"] == "NODE_NAME").expect("NODE_NAME is set");
    assert_eq!(node_name["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName", "from the downward API");

    // State and logs on the node, so nothing is lost when the pod restarts; the rest is read-only.
    let volumes = spec["volumes"].as_array().unwrap();
    let mounted_at = |path: &str| {
        let mount = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"] == path)
            .unwrap_or_else(|| panic!("{path} mounted"));
        volumes.iter().find(|v| v["name"] == mount["name"]).unwrap().clone()
    };
    for path in ["/var/lib/snowflake", "/var/log/snowflake"] {
        assert!(mounted_at(path)["hostPath"]["path"].is_string(), "{path} is a hostPath");
    }
    assert!(mounted_at("/app/flakes")["configMap"]["name"].as_str().unwrap().starts_with("snowflake-flakes-"));
    assert!(mounted_at("/tmp")["emptyDir"].is_object(), "flake commands get a writable /tmp");

    let account = find(&documents, "ServiceAccount");
    assert!(
        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].as_str().unwrap().starts_with("arn:aws:iam::"),
        "ready for IRSA: {account}"
    );
}

#[test]
fn the_base_ships_the_repository_example_flakes_unchanged() {
    let documents = yaml_documents(&kustomize("deploy/kubernetes/base"));
    let data = find(&documents, "ConfigMap")["data"].as_object().unwrap();
    let examples: BTreeSet<String> = std::fs::read_dir(repo_path("flakes"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".json") && !runs_in_its_own_image(name))
        .collect();
    assert_eq!(data.keys().cloned().collect::<BTreeSet<_>>(), examples, "every example flake, nothing else");
    for name in &examples {
        let original = std::fs::read_to_string(repo_path("flakes").join(name)).unwrap();
        assert_eq!(data[name], original.as_str(), "deploy/kubernetes/base/flakes/{name} differs from flakes/{name}: copy it again");
    }
}

#[test]
fn the_example_overlay_renders_validates_and_its_flakes_use_the_node_name() {
    let documents = assert_renders_and_validates("deploy/kubernetes/overlays/example");
    for document in &documents {
        if document["kind"] != "Namespace" {
            assert_eq!(document["metadata"]["namespace"], "monitoring", "{}", document["kind"]);
        }
    }
    let spec = &find(&documents, "DaemonSet")["spec"]["template"]["spec"];
    assert!(spec["containers"][0]["image"].as_str().unwrap().contains(".dkr.ecr."), "the overlay sets the image");

    // The overlay's own flakes replace the examples, and they are valid flakes for the daemon.
    let data = find(&documents, "ConfigMap")["data"].as_object().unwrap();
    assert!(data.keys().all(|name| name.starts_with("node-")), "{:?}", data.keys());
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in data {
        assert!(text.as_str().unwrap().contains("${env:NODE_NAME}"), "{name} shows the per-node dimension");
        std::fs::write(dir.path().join(name), text.as_str().unwrap()).unwrap();
    }
    let (code, stdout, stderr) = run(snowflake()
        .current_dir(repo_path(""))
        .arg("check")
        .arg(dir.path())
        .env("NODE_NAME", "ip-10-0-1-23.eu-west-1.compute.internal"));
    assert_eq!(code, 0, "the overlay's flakes are valid:\n{stdout}{stderr}");
    // Without NODE_NAME, `check` judges the files for the node they will run on (a warning,
    // SPEC 18); `check --resolve` judges as a daemon here would: the placeholder cannot resolve.
    let (code, stdout, _) = run(snowflake().current_dir(repo_path("")).arg("check").arg(dir.path()).env_remove("NODE_NAME"));
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("warning: ${env:NODE_NAME}"), "{stdout}");
    let (code, stdout, _) =
        run(snowflake().current_dir(repo_path("")).args(["check", "--resolve"]).arg(dir.path()).env_remove("NODE_NAME"));
    assert_eq!(code, 1, "without NODE_NAME the placeholder cannot resolve: {stdout}");
    assert!(stdout.contains("NODE_NAME"), "{stdout}");
}

#[test]
fn kubernetes_validate_rejects_what_the_api_server_would() {
    // The validation above is only worth something if it can fail: a misspelt field and a port
    // that is not a number are both refused.
    let yaml = kustomize("deploy/kubernetes/base");
    for (what, broken) in [
        ("an unknown field", yaml.replacen("readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true", 1)),
        ("a port that is not a number", yaml.replacen("containerPort: 9731", "containerPort: ninety", 1)),
    ] {
        assert_ne!(broken, yaml, "the mutation applies");
        let (passed, report) = kubernetes_validate(&broken);
        assert!(!passed, "{what} passed validation:\n{report}");
    }
}

const TEMPLATE: &str = "deploy/ecs/specialsnowflake.yaml";

fn cfn_lint(path: &Path) -> (i32, String) {
    let (code, stdout, stderr) = run(Command::new(venv_tool("cfn-lint")).arg(path));
    (code, format!("{stdout}{stderr}"))
}

/// The template as JSON, read by cfn-lint's own decoder (it knows the `!Sub` and `!Ref` tags).
fn template() -> Value {
    decoded_template(TEMPLATE)
}

fn decoded_template(path: &str) -> Value {
    let (code, stdout, stderr) = run(Command::new(common::venv_python()).args([
        "-c",
        "import json, sys\nfrom cfnlint.decode.decode import decode\ntemplate, problems = decode(sys.argv[1])\n\
         assert not problems, problems\nprint(json.dumps(template))",
        &repo_path(path).to_string_lossy(),
    ]));
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn the_ecs_template_passes_cfn_lint() {
    let (code, report) = cfn_lint(&repo_path(TEMPLATE));
    assert_eq!(code, 0, "cfn-lint {TEMPLATE}:\n{report}");
}

#[test]
fn cfn_lint_rejects_a_broken_template() {
    let text = std::fs::read_to_string(repo_path(TEMPLATE)).unwrap();
    assert_cfn_lint_rejects(
        &text,
        [
            ("an unknown scheduling strategy", text.replacen("SchedulingStrategy: DAEMON", "SchedulingStrategy: EVERYWHERE", 1)),
            ("a reference to nothing", text.replacen("!GetAtt TaskRole.Arn", "!GetAtt TaskRol.Arn", 1)),
        ],
    );
}

/// cfn-lint fails each broken copy of `text` (and each mutation really changed it).
fn assert_cfn_lint_rejects<const N: usize>(text: &str, mutations: [(&str, String); N]) {
    let dir = tempfile::tempdir().unwrap();
    for (what, broken) in mutations {
        assert_ne!(broken, text, "the mutation applies");
        let path = dir.path().join("broken.yaml");
        std::fs::write(&path, broken).unwrap();
        let (code, report) = cfn_lint(&path);
        assert_ne!(code, 0, "cfn-lint accepted {what}:\n{report}");
    }
}

#[test]
fn the_ecs_template_is_a_daemon_service_with_host_state_awslogs_and_a_task_role() {
    let template = template();
    let resources = &template["Resources"];
    let service = &resources["Service"]["Properties"];
    assert_eq!(service["SchedulingStrategy"], "DAEMON");
    assert_eq!(service["DeploymentConfiguration"]["MaximumPercent"], 100, "never two daemons on one state directory");
    let task = &resources["TaskDefinition"]["Properties"];
    assert_eq!(task["TaskRoleArn"]["Fn::GetAtt"], serde_json::json!(["TaskRole", "Arn"]));
    let daemon = task["ContainerDefinitions"].as_array().unwrap().iter().find(|c| c["Name"] == "snowflake").unwrap();
    assert_eq!(daemon["ReadonlyRootFilesystem"], true);
    assert_eq!(daemon["LogConfiguration"]["LogDriver"], "awslogs");
    let state_volume = daemon["MountPoints"].as_array().unwrap().iter().find(|m| m["ContainerPath"] == "/var/lib/snowflake").unwrap();
    let volume = task["Volumes"].as_array().unwrap().iter().find(|v| v["Name"] == state_volume["SourceVolume"]).unwrap();
    assert!(volume["Host"]["SourcePath"].is_string(), "state on a host volume: {volume}");
    assert_eq!(daemon["HealthCheck"]["Command"][1], "curl -fsS http://127.0.0.1:9731/healthz || exit 1");
}

/// The least-privilege policy as docs/operations.md prints it (the first ```json block after the
/// "IAM: least privilege" heading).
fn documented_policy() -> Value {
    let docs = std::fs::read_to_string(repo_path("docs/operations.md")).unwrap();
    let section = docs.split_once("## IAM: least privilege").expect("docs/operations.md has the IAM section").1;
    let block = section.split_once("```json\n").unwrap().1.split_once("```").unwrap().0;
    serde_json::from_str(block).expect("the documented policy is JSON")
}

fn statement_actions(statement: &Value) -> BTreeSet<String> {
    match &statement["Action"] {
        Value::String(one) => BTreeSet::from([one.clone()]),
        many => many.as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect(),
    }
}

fn actions(policy: &Value) -> BTreeSet<String> {
    policy["Statement"].as_array().unwrap().iter().flat_map(statement_actions).collect()
}

fn normalised_statements(policy: &Value) -> BTreeSet<String> {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|statement| {
            let actions = statement_actions(statement);
            let resource = match &statement["Resource"] {
                Value::String(resource) => resource.clone(),
                sub => sub["Fn::Sub"]
                    .as_str()
                    .expect("a plain or !Sub resource")
                    .replace("${AWS::Partition}", "aws")
                    .replace("${AWS::AccountId}", "*"),
            };
            format!("{} {} {:?} {}", statement["Sid"], statement["Effect"], actions, resource)
        })
        .collect()
}

#[test]
fn the_task_role_is_exactly_the_documented_least_privilege_policy() {
    let template = template();
    let policy = &template["Resources"]["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"];
    let documented = documented_policy();
    assert_eq!(normalised_statements(policy), normalised_statements(&documented));
    let actions = actions(&documented);
    // Everything the daemon calls today and what SPEC sections 9-11 add (composites, dashboards).
    for needed in [
        "PutMetricData",
        "DescribeAlarms",
        "PutMetricAlarm",
        "PutCompositeAlarm",
        "DeleteAlarms",
        "TagResource",
        "UntagResource",
        "GetDashboard",
        "PutDashboard",
        "DeleteDashboards",
    ] {
        assert!(actions.contains(&format!("cloudwatch:{needed}")), "{needed} missing from {actions:?}");
    }
    assert!(!actions.iter().any(|a| a.contains('*')), "no wildcard actions: {actions:?}");
}

#[test]
fn flakes_in_a_configmap_volume_load_once_each() {
    // The kubelet mounts a ConfigMap as `name -> ..data/name`, `..data -> ..<timestamp>/`, and
    // swaps `..data` atomically on updates. The hidden directories must not be read as flakes
    // of their own (which would make every flake a duplicate of itself).
    let mount = tempfile::tempdir().unwrap();
    let version = mount.path().join("..2026_12_01_21_00_00.123456789");
    std::fs::create_dir(&version).unwrap();
    let examples: Vec<String> = std::fs::read_dir(repo_path("flakes"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".json") && !runs_in_its_own_image(name))
        .collect();
    for name in &examples {
        std::fs::copy(repo_path("flakes").join(name), version.join(name)).unwrap();
        std::os::unix::fs::symlink(format!("..data/{name}"), mount.path().join(name)).unwrap();
    }
    std::os::unix::fs::symlink(version.file_name().unwrap(), mount.path().join("..data")).unwrap();
    let imds = common::FakeImds::start();
    let (code, stdout, stderr) = run(imds.serve(&mut snowflake()).current_dir(repo_path("")).arg("check").arg(mount.path()));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let summary = format!("{0} file(s) checked: {0} valid, 0 invalid", examples.len());
    assert!(format!("{stdout}{stderr}").contains(&summary), "{stdout}{stderr}");
    let scratch = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(imds
        .serve(&mut snowflake())
        .current_dir(repo_path(""))
        .args(["--dry-run", "once"])
        .env("SNOWFLAKE_FLAKES", mount.path())
        .env("SNOWFLAKE_LOG_DIR", scratch.path().join("logs"))
        .env("SNOWFLAKE_STATE_DIR", scratch.path().join("state")));
    let runs = stdout.lines().filter(|line| line.starts_with("example-") && line.contains(": ")).count();
    assert_eq!(runs, examples.len(), "each flake ran once (exit {code}):\n{stdout}{stderr}");
}

const SSM_TEMPLATE: &str = "deploy/ssm/specialsnowflake.yaml";

#[test]
fn the_ssm_template_passes_cfn_lint_which_checks_its_command_document() {
    let (code, report) = cfn_lint(&repo_path(SSM_TEMPLATE));
    assert_eq!(code, 0, "cfn-lint {SSM_TEMPLATE}:\n{report}");
    let text = std::fs::read_to_string(repo_path(SSM_TEMPLATE)).unwrap();
    assert_cfn_lint_rejects(
        &text,
        [
            ("a document without a schema version", text.replacen("schemaVersion: \"2.2\"", "schemaVerson: \"2.2\"", 1)),
            ("an unknown document type", text.replacen("DocumentType: Command", "DocumentType: Comand", 1)),
            ("a reference to nothing", text.replacen("!Ref InstanceRole", "!Ref InstanceRol", 1)),
        ],
    );
}

#[test]
fn the_ssm_document_downloads_installs_checks_and_places_flakes_and_the_role_is_the_documented_one() {
    let template = decoded_template(SSM_TEMPLATE);
    let document = &template["Resources"]["InstallDocument"]["Properties"];
    assert_eq!(document["DocumentType"], "Command");
    let steps = document["Content"]["mainSteps"].as_array().unwrap();
    // cfn-lint does not know the plugins: only these two exist with these inputs.
    let plan: Vec<(String, String)> =
        steps.iter().map(|s| (s["action"].as_str().unwrap().to_string(), s["name"].as_str().unwrap().to_string())).collect();
    assert_eq!(
        plan,
        [
            ("aws:downloadContent", "DownloadPackage"),
            ("aws:runShellScript", "InstallPackage"),
            ("aws:downloadContent", "DownloadFlakes"),
            ("aws:runShellScript", "PlaceFlakes")
        ]
        .map(|(a, n)| (a.to_string(), n.to_string()))
    );
    for step in steps {
        let inputs = step["inputs"].as_object().unwrap();
        let keys: BTreeSet<&str> = inputs.keys().map(String::as_str).collect();
        match step["action"].as_str().unwrap() {
            "aws:downloadContent" => {
                assert_eq!(keys, BTreeSet::from(["sourceType", "sourceInfo", "destinationPath"]), "{step}");
                let source: Value = serde_json::from_str(inputs["sourceInfo"].as_str().unwrap()).expect("sourceInfo is a JSON string");
                assert!(source["path"].as_str().unwrap().starts_with("{{ "), "{source}");
            }
            _ => assert_eq!(keys, BTreeSet::from(["timeoutSeconds", "runCommand"]), "{step}"),
        }
    }
    let instance_policy = &template["Resources"]["InstanceRole"]["Properties"]["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["PolicyName"] == "specialsnowflake")
        .expect("the daemon's policy")["PolicyDocument"];
    assert_eq!(normalised_statements(instance_policy), normalised_statements(&documented_policy()));
}

/// An example flake with flakeImage or flakeBuild: a Kubernetes pod has no container engine to
/// run it with (docs/operations.md), so the Kubernetes base does not ship it.
fn runs_in_its_own_image(name: &str) -> bool {
    let text = std::fs::read_to_string(repo_path("flakes").join(name)).unwrap();
    let flake: serde_json::Value = serde_json::from_str(&text).unwrap();
    flake.get("flakeImage").is_some() || flake.get("flakeBuild").is_some()
}

// Cluster flakes (SPEC 15): a Kubernetes Deployment overlay and an ECS replica service.

const CLUSTER_TEMPLATE: &str = "deploy/ecs/specialsnowflake-cluster.yaml";

#[test]
fn the_cluster_overlay_renders_validates_and_is_a_deployment_of_cluster_members() {
    let dir = "deploy/kubernetes/overlays/cluster";
    let yaml = kustomize(dir);
    let (passed, report) = kubernetes_validate(&yaml);
    assert!(passed, "{dir} does not validate:\n{report}");
    let documents = yaml_documents(&yaml);
    assert!(documents.iter().all(|document| document["kind"] != "DaemonSet"), "the per-node DaemonSet is left out");
    let deployment = find(&documents, "Deployment");
    let line = format!("passed for resource deployment/{}", deployment["metadata"]["name"].as_str().unwrap());
    assert_eq!(report.matches(&line).count(), KUBERNETES_VERSIONS.len(), "{line} missing:\n{report}");
    assert!(deployment["spec"]["replicas"].as_i64().unwrap() >= 2, "several members");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let env = container["env"].as_array().unwrap();
    let cluster = env.iter().find(|variable| variable["name"] == "SNOWFLAKE_CLUSTER").expect("SNOWFLAKE_CLUSTER is set");
    assert!(cluster["value"].as_str().unwrap().starts_with("s3://"));
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    // Its flakes pass `check` and are cluster flakes.
    let configmap = find(&documents, "ConfigMap");
    let flakes = tempfile::tempdir().unwrap();
    for (name, text) in configmap["data"].as_object().unwrap() {
        let flake: Value = serde_json::from_str(text.as_str().unwrap()).unwrap();
        assert_eq!(flake["flakeScope"], "cluster", "{name}");
        std::fs::write(flakes.path().join(name), text.as_str().unwrap()).unwrap();
    }
    let (code, stdout, stderr) = run(snowflake().env("SNOWFLAKE_CLUSTER", "s3://bucket/prefix").arg("check").arg(flakes.path()));
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn the_cluster_ecs_template_passes_cfn_lint_and_rejects_a_broken_copy() {
    let (code, report) = cfn_lint(&repo_path(CLUSTER_TEMPLATE));
    assert_eq!(code, 0, "cfn-lint {CLUSTER_TEMPLATE}:\n{report}");
    let text = std::fs::read_to_string(repo_path(CLUSTER_TEMPLATE)).unwrap();
    assert_cfn_lint_rejects(
        &text,
        [("an unknown scheduling strategy", text.replacen("SchedulingStrategy: REPLICA", "SchedulingStrategy: SOMETIMES", 1))],
    );
}

/// The statements of the ```json block after `heading` in docs/operations.md.
fn documented_policy_after(heading: &str) -> Value {
    let docs = std::fs::read_to_string(repo_path("docs/operations.md")).unwrap();
    let section = docs.split_once(heading).unwrap_or_else(|| panic!("docs/operations.md has {heading:?}")).1;
    let block = section.split_once("```json\n").unwrap().1.split_once("```").unwrap().0;
    serde_json::from_str(block).expect("the documented policy is JSON")
}

#[test]
fn the_cluster_service_is_a_replica_service_whose_task_role_is_the_documented_policy_plus_its_s3_prefix() {
    let (code, stdout, stderr) = run(Command::new(common::venv_python()).args([
        "-c",
        "import json, sys\nfrom cfnlint.decode.decode import decode\ntemplate, problems = decode(sys.argv[1])\n\
         assert not problems, problems\nprint(json.dumps(template))",
        &repo_path(CLUSTER_TEMPLATE).to_string_lossy(),
    ]));
    assert_eq!(code, 0, "{stderr}");
    let template: Value = serde_json::from_str(&stdout).unwrap();
    let resources = &template["Resources"];
    let service = &resources["Service"]["Properties"];
    assert_eq!(service["SchedulingStrategy"], "REPLICA");
    assert_eq!(service["DesiredCount"]["Ref"], "DesiredCount");
    let container = &resources["TaskDefinition"]["Properties"]["ContainerDefinitions"][0];
    let cluster = container["Environment"].as_array().unwrap().iter().find(|variable| variable["Name"] == "SNOWFLAKE_CLUSTER").unwrap();
    assert_eq!(cluster["Value"]["Fn::Sub"], "s3://${CoordinationBucket}/${CoordinationPrefix}");

    let policy = &resources["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"];
    let in_template: BTreeSet<String> = normalised_statements(policy)
        .into_iter()
        .map(|statement| statement.replace("${CoordinationBucket}", "BUCKET").replace("${CoordinationPrefix}", "PREFIX"))
        .collect();
    let mut documented = normalised_statements(&documented_policy());
    documented.extend(normalised_statements(&documented_policy_after("### Cluster members")));
    assert_eq!(in_template, documented);
    let s3: BTreeSet<String> = actions(&documented_policy_after("### Cluster members"));
    assert_eq!(s3, BTreeSet::from(["s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"].map(String::from)));
    let listing = policy["Statement"].as_array().unwrap().iter().find(|statement| statement["Sid"] == "ListClusterMembers").unwrap();
    assert!(listing["Condition"]["StringLike"]["s3:prefix"].is_object() || listing["Condition"]["StringLike"]["s3:prefix"].is_string());
}
