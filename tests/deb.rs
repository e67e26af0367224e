//! The Debian package (SPEC section 17), built and installed for real. `scripts/deb.sh` packages
//! the binary this test run already built (cargo-deb strips it; no release build of the AWS SDK),
//! `apt-get install ./snowflake_*.deb` puts it into a clean Debian bookworm root made with
//! mmdebstrap (`scripts/debian-base.sh`, the image tests' base), `systemd-analyze verify` accepts
//! the packaged unit (byte for byte `deploy/snowflake.service`) and `systemd-analyze security`
//! scores it, `snowflake check` passes there, and the daemon, started as the unit's user with the
//! unit's settings (its environment and environment files, working directory, state and log
//! directories, no new privileges, no capabilities), publishes an example flake to LocalStack.
//! An upgrade to a rebuilt package keeps a changed conffile; `apt-get remove` keeps the
//! configuration, `apt-get purge` takes the user, state and logs but not the operator's flakes.
//! The Systems Manager document's shell steps (deploy/ssm) install the package and place flakes
//! in such a root too, all or nothing.
//!
//! No systemd runs here (a chroot in a private mount namespace), so the unit's settings are read
//! from the unit file and applied the way systemd would, with `setpriv`. Runs as root. Needs
//! mmdebstrap and systemd-analyze (scripts/deps.sh), cargo to install cargo-deb the first time
//! (scripts/cargo-deb.sh) and LocalStack (scripts/test.sh); without them it fails, it never
//! passes silently.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{endpoint, free_port, repo_path, run, unique};

const UNIT: &str = "/usr/lib/systemd/system/snowflake.service";
const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The exposure `systemd-analyze security` gives the unit, as docs/operations.md reports it.
const DOCUMENTED_EXPOSURE: f64 = 1.6;

/// Builds the package from the binary under test with scripts/deb.sh; returns the .deb's path.
fn build_package(out: &Path, revision: u32) -> PathBuf {
    let started = Instant::now();
    let (code, stdout, stderr) = run(Command::new(repo_path("scripts/deb.sh"))
        .args(["--binary", env!("CARGO_BIN_EXE_snowflake")])
        .arg(out)
        .args(["--fast", "--deb-revision", &revision.to_string()]));
    assert_eq!(code, 0, "scripts/deb.sh failed (cargo-deb comes from scripts/cargo-deb.sh):\n{stdout}{stderr}");
    let deb = PathBuf::from(stdout.trim());
    assert!(deb.is_file(), "scripts/deb.sh printed {stdout:?}, not a package");
    assert_eq!(deb.file_name().unwrap().to_string_lossy(), format!("snowflake_0.1.0-{revision}_amd64.deb"));
    eprintln!("built {} in {:?}", deb.display(), started.elapsed());
    deb
}

/// A clean Debian root from the cached mmdebstrap tarball, removed when dropped. Commands run in
/// it with `chroot`, inside a mount namespace of their own with /proc mounted, so nothing stays
/// mounted on the host whatever happens.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new() -> Root {
        let (code, tarball, stderr) = run(&mut Command::new(repo_path("scripts/debian-base.sh")));
        assert_eq!(code, 0, "no Debian base (scripts/deps.sh installs mmdebstrap): {stderr}");
        let dir = tempfile::tempdir().unwrap();
        let (code, _, stderr) = run(Command::new("tar").arg("-xf").arg(tarball.trim()).arg("-C").arg(dir.path()));
        assert_eq!(code, 0, "extracting {}: {stderr}", tarball.trim());
        Root { dir }
    }

    fn path(&self, inside: &str) -> PathBuf {
        self.dir.path().join(inside.trim_start_matches('/'))
    }

    /// `args` run in the root with a clean environment.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--fork", "--kill-child"])
            .arg(format!("--mount-proc={}", self.path("/proc").display()))
            .arg("chroot")
            .arg(self.dir.path())
            .args(["env", "-i", PATH, "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C.UTF-8"])
            .args(args);
        command
    }

    /// Runs a shell script in the root; fails the test unless it exits 0. Returns its stdout.
    fn ok(&self, script: &str) -> String {
        let (code, stdout, stderr) = run(&mut self.command(&["sh", "-c", script]));
        assert_eq!(code, 0, "in the Debian root, `{script}` failed:\n{stdout}{stderr}");
        stdout
    }

    fn exists(&self, inside: &str) -> bool {
        self.path(inside).symlink_metadata().is_ok()
    }

    fn read(&self, inside: &str) -> String {
        std::fs::read_to_string(self.path(inside)).unwrap_or_else(|e| panic!("{inside}: {e}"))
    }

    fn write(&self, inside: &str, text: &str) {
        std::fs::write(self.path(inside), text).unwrap_or_else(|e| panic!("{inside}: {e}"));
    }

    /// `apt-get install` of a package file, as an operator would.
    fn install(&self, deb: &Path) {
        let name = deb.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::copy(deb, self.path("/tmp").join(&name)).unwrap();
        self.ok(&format!("apt-get install -y /tmp/{name}; status=$?; rm -f /tmp/{name}; exit $status"));
    }

    fn version(&self) -> String {
        let (_, stdout, _) = run(&mut self.command(&["dpkg-query", "--show", "--showformat=${Version} ${db:Status-Abbrev}", "snowflake"]));
        stdout.trim().to_string()
    }

    fn has_user(&self, name: &str) -> bool {
        run(&mut self.command(&["getent", "passwd", name])).0 == 0
    }

    fn has_group(&self, name: &str) -> bool {
        run(&mut self.command(&["getent", "group", name])).0 == 0
    }
}

/// The `[Service]` settings of a unit file, in order (a key may repeat).
fn service_settings(unit: &str) -> Vec<(String, String)> {
    let mut section = "";
    let mut settings = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]" {
            let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("not a setting: {line}"));
            settings.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    settings
}

fn setting<'s>(settings: &'s [(String, String)], key: &str) -> Vec<&'s str> {
    settings.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
}

fn one<'s>(settings: &'s [(String, String)], key: &str) -> &'s str {
    match setting(settings, key)[..] {
        [value] => value,
        ref values => panic!("the unit sets {key} {} times: {values:?}", values.len()),
    }
}

/// VARIABLE=value lines of an environment file, as systemd reads them (comments, blank lines and
/// quotes around the value).
fn environment_file(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with(';'))
        .map(|line| {
            let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("not VARIABLE=value: {line}"));
            let value = value.trim();
            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
            format!("{}={value}", key.trim())
        })
        .collect()
}

/// `argv` started the way systemd starts the unit's service: as User=/Group= with their
/// supplementary groups, NoNewPrivileges= and an empty CapabilityBoundingSet= applied (setpriv),
/// UMask=, WorkingDirectory=, Environment= and then the EnvironmentFile=s (which win), and the
/// StateDirectory= and LogsDirectory= made and owned by the user first.
fn as_the_unit_starts(root: &Root, argv: &[&str]) -> Command {
    let settings = service_settings(&root.read(UNIT));
    let (user, group) = (one(&settings, "User"), one(&settings, "Group"));
    for (directory, base) in [("StateDirectory", "/var/lib"), ("LogsDirectory", "/var/log")] {
        let mode = one(&settings, &format!("{directory}Mode"));
        root.ok(&format!("install -d -o {user} -g {group} -m {mode} {base}/{}", one(&settings, directory)));
    }
    let mut environment: Vec<String> = setting(&settings, "Environment").iter().map(|e| e.to_string()).collect();
    for file in setting(&settings, "EnvironmentFile") {
        let (optional, file) = file.strip_prefix('-').map_or((false, file), |f| (true, f));
        match std::fs::read_to_string(root.path(file)) {
            Ok(text) => environment.extend(environment_file(&text)),
            Err(_) if optional => {}
            Err(error) => panic!("EnvironmentFile={file}: {error}"),
        }
    }
    assert_eq!(one(&settings, "NoNewPrivileges"), "yes");
    assert_eq!(one(&settings, "CapabilityBoundingSet"), "", "no capabilities at all");
    let mut args = vec![
        "setpriv".to_string(),
        format!("--reuid={user}"),
        format!("--regid={group}"),
        "--init-groups".into(),
        "--no-new-privs".into(),
        "--bounding-set=-all".into(),
        "--inh-caps=-all".into(),
        "--".into(),
        "sh".into(),
        "-c".into(),
        r#"umask "$0" && exec "$@""#.into(),
        one(&settings, "UMask").into(),
        "env".into(),
        "-i".into(),
        "-C".into(),
        one(&settings, "WorkingDirectory").into(),
        PATH.into(),
    ];
    args.extend(environment);
    args.extend(argv.iter().map(|a| a.to_string()));
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--fork", "--kill-child"])
        .arg(format!("--mount-proc={}", root.path("/proc").display()))
        .arg("chroot")
        .arg(root.dir.path())
        .args(&args);
    command
}

/// A process started in the root, killed if the test fails while it runs (unshare's
/// --kill-child takes the daemon with it).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The process `unshare` started (after chroot, setpriv, sh and env all exec'd: the daemon).
fn child_of(pid: u32) -> u32 {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    children.split_whitespace().next().and_then(|p| p.parse().ok()).unwrap_or(0)
}

fn proc_status(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|line| line.strip_prefix(&format!("{field}:"))).unwrap().trim().to_string()
}

/// Datapoints of a metric over the last ten minutes in LocalStack.
fn samples(endpoint: &str, namespace: &str, metric: &str) -> f64 {
    let now = chrono::Utc::now();
    let start = (now - chrono::TimeDelta::minutes(10)).to_rfc3339();
    let end = (now + chrono::TimeDelta::minutes(2)).to_rfc3339();
    let answer = common::aws(
        endpoint,
        &[
            "cloudwatch",
            "get-metric-statistics",
            "--namespace",
            namespace,
            "--metric-name",
            metric,
            "--start-time",
            &start,
            "--end-time",
            &end,
            "--period",
            "60",
            "--statistics",
            "SampleCount",
        ],
    );
    answer["Datapoints"].as_array().unwrap().iter().map(|p| p["SampleCount"].as_f64().unwrap()).sum()
}

/// Whether an alarm on a metric of `namespace` exists in LocalStack.
fn alarm_created(endpoint: &str, namespace: &str) -> bool {
    let alarms = common::aws(endpoint, &["cloudwatch", "describe-alarms", "--alarm-name-prefix", "FL-"]);
    alarms["MetricAlarms"].as_array().unwrap().iter().any(|alarm| alarm["Namespace"] == namespace)
}

/// `systemd-analyze ARGS` with the root's /usr/bin laid under the host's (an overlay in a mount
/// namespace of its own), so the unit's ExecStart=/usr/bin/snowflake is the packaged binary while
/// systemd's own units are the host's (the root has no systemd).
fn systemd_analyze(root: &Root, args: &[&str]) -> (i32, String) {
    assert!(Path::new("/usr/bin/systemd-analyze").exists(), "systemd-analyze is missing: scripts/deps.sh installs the systemd package");
    let script = format!(
        "mount -t overlay overlay -o lowerdir=/usr/bin:{}/usr/bin /usr/bin && exec systemd-analyze \"$@\"",
        root.dir.path().display()
    );
    let (code, stdout, stderr) = run(Command::new("unshare").args(["--mount", "sh", "-c", &script, "sh"]).args(args));
    (code, format!("{stdout}{stderr}"))
}

fn has_debug_info(binary: &Path) -> bool {
    let (code, sections, stderr) = run(Command::new("readelf").args(["--section-headers", "--wide"]).arg(binary));
    assert_eq!(code, 0, "readelf (binutils) on {}: {stderr}", binary.display());
    sections.contains(".debug_info")
}

#[test]
fn the_package_installs_runs_the_daemon_as_its_unit_says_upgrades_and_purges() {
    let endpoint = endpoint();
    let packages = tempfile::tempdir().unwrap();
    let first = build_package(packages.path(), 1);
    let root = Root::new();

    // Installed with apt-get into a clean root: the binary (stripped), the one unit, the user.
    root.install(&first);
    assert_eq!(root.version(), "0.1.0-1 ii");
    assert!(has_debug_info(Path::new(env!("CARGO_BIN_EXE_snowflake"))), "the binary under test has debug info to strip");
    assert!(!has_debug_info(&root.path("/usr/bin/snowflake")), "the packaged binary is stripped");
    assert_eq!(
        root.read(UNIT),
        std::fs::read_to_string(repo_path("deploy/snowflake.service")).unwrap(),
        "one unit: deploy/snowflake.service"
    );
    assert!(root.exists("/etc/systemd/system/multi-user.target.wants/snowflake.service"), "enabled at boot");
    assert!(root.has_user("snowflake") && root.has_group("snowflake"));
    let shell = root.ok("getent passwd snowflake | cut -d: -f7");
    assert_eq!(shell.trim(), "/usr/sbin/nologin", "a system user nobody logs in as");
    let conffiles = root.ok("dpkg-query --show --showformat='${Conffiles}' snowflake");
    for conffile in ["/etc/default/snowflake", "/etc/snowflake/flakes/README", "/etc/snowflake/res/loadavg.sh"] {
        assert!(conffiles.contains(conffile), "{conffile} is a conffile: {conffiles}");
    }
    assert!(root.path("/etc/snowflake/flakes").is_dir());

    // systemd accepts the unit as packaged, and its sandbox scores as documented; verify would
    // refuse a broken unit (so its passing means something).
    let (code, report) = systemd_analyze(&root, &["verify", &root.path(UNIT).to_string_lossy()]);
    assert_eq!(code, 0, "systemd-analyze verify {UNIT}:\n{report}");
    let broken_dir = tempfile::tempdir().unwrap();
    let broken = broken_dir.path().join("snowflake.service");
    std::fs::write(&broken, root.read(UNIT).replace("ExecStart=/usr/bin/snowflake run", "ExecStart=/usr/bin/snowflak run")).unwrap();
    let (code, report) = systemd_analyze(&root, &["verify", &broken.to_string_lossy()]);
    assert_ne!(code, 0, "verify accepted a unit whose ExecStart does not exist:\n{report}");
    let (code, report) = systemd_analyze(&root, &["security", "--offline=yes", &root.path(UNIT).to_string_lossy()]);
    assert_eq!(code, 0, "{report}");
    let exposure: f64 = report
        .lines()
        .find_map(|line| line.split("Overall exposure level for snowflake.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|score| score.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{report}"));
    assert!(exposure <= DOCUMENTED_EXPOSURE, "exposure {exposure} is above the documented {DOCUMENTED_EXPOSURE}:\n{report}");

    // An example flake, on a short schedule and in a namespace of this run, placed as an
    // operator would; LocalStack's address and credentials in the unit's environment files.
    let namespace = unique("DebPackage");
    let mut flake: Value =
        serde_json::from_str(&root.read("/usr/share/doc/snowflake/examples/flakes/example-perminute.flake.json")).unwrap();
    flake["flakeCronstring"] = "@every 2s".into();
    flake["flakeMetricNamespace"] = namespace.clone().into();
    root.write("/etc/snowflake/flakes/example-perminute.json", &serde_json::to_string_pretty(&flake).unwrap());
    let port = free_port();
    let defaults = format!(
        "{}\n# tests/deb.rs\nSNOWFLAKE_LISTEN=127.0.0.1:{port}\nSNOWFLAKE_TIMEZONE=UTC\nAWS_REGION=us-east-1\n\
         AWS_ENDPOINT_URL={endpoint}\nAWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9\n",
        root.read("/etc/default/snowflake")
    );
    root.write("/etc/default/snowflake", &defaults);
    root.ok("umask 077 && printf 'AWS_ACCESS_KEY_ID=test\\nAWS_SECRET_ACCESS_KEY=\"test\"\\n' > /etc/snowflake/aws.env");

    let (code, stdout, stderr) = run(&mut as_the_unit_starts(&root, &["/usr/bin/snowflake", "check"]));
    assert_eq!(code, 0, "snowflake check in the installed root:\n{stdout}{stderr}");

    // The daemon, started as the unit starts it, publishes the flake to LocalStack.
    let settings = service_settings(&root.read(UNIT));
    let exec_start: Vec<&str> = one(&settings, "ExecStart").split_whitespace().collect();
    let journal = tempfile::NamedTempFile::new().unwrap();
    let mut daemon = Running(
        as_the_unit_starts(&root, &exec_start).stdout(journal.reopen().unwrap()).stderr(journal.reopen().unwrap()).spawn().unwrap(),
    );
    let journal_text = || std::fs::read_to_string(journal.path()).unwrap_or_default();
    let started = Instant::now();
    let mut pid = 0;
    while started.elapsed() < Duration::from_secs(90) {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            panic!("the daemon exited ({status}):\n{}", journal_text());
        }
        pid = child_of(daemon.0.id());
        if pid != 0 && samples(&endpoint, &namespace, "example-perminute") >= 1.0 && alarm_created(&endpoint, &namespace) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(samples(&endpoint, &namespace, "example-perminute") >= 1.0, "nothing published in 90 s:\n{}", journal_text());
    let uid = root.ok("id -u snowflake").trim().to_string();
    assert_eq!(proc_status(pid, "Uid").split_whitespace().collect::<Vec<_>>(), [uid.as_str(); 4], "runs as snowflake");
    assert_eq!(proc_status(pid, "NoNewPrivs"), "1");
    assert_eq!(proc_status(pid, "CapBnd"), "0000000000000000");
    let flake_log = std::fs::metadata(root.path("/var/log/snowflake/example-perminute.log")).expect("the flake's log");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&flake_log).to_string(), uid);
    assert!(alarm_created(&endpoint, &namespace), "the example's alarm was created:\n{}", journal_text());

    // SIGTERM, as `systemctl stop` sends it: a clean exit.
    run(Command::new("kill").args(["-TERM", &pid.to_string()]));
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            break status;
        }
        assert!(stopping.elapsed() < Duration::from_secs(30), "the daemon did not stop on SIGTERM:\n{}", journal_text());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "the daemon's exit on SIGTERM: {status}\n{}", journal_text());

    // Upgrade to a rebuilt package: the changed conffile, the operator's files and the state stay.
    let second = build_package(packages.path(), 2);
    root.install(&second);
    assert_eq!(root.version(), "0.1.0-2 ii");
    assert_eq!(root.read("/etc/default/snowflake"), defaults, "the changed conffile is kept on upgrade");
    assert!(!root.exists("/etc/default/snowflake.dpkg-new") && !root.exists("/etc/default/snowflake.dpkg-dist"));
    assert!(root.exists("/etc/snowflake/flakes/example-perminute.json") && root.exists("/etc/snowflake/aws.env"));
    assert!(root.exists("/var/lib/snowflake") && root.has_user("snowflake"));

    // Remove: the program goes, configuration, state and user stay (a reinstall carries on).
    root.ok("apt-get remove -y snowflake");
    assert_eq!(root.version(), "0.1.0-2 rc");
    assert!(!root.exists("/usr/bin/snowflake") && !root.exists(UNIT));
    assert_eq!(root.read("/etc/default/snowflake"), defaults);
    assert!(root.exists("/var/lib/snowflake") && root.exists("/var/log/snowflake/example-perminute.log"));
    assert!(root.has_user("snowflake"));

    // Purge: the package's configuration, the state, the logs, the user and its group go; the
    // flake and credentials the operator put in /etc/snowflake are not the package's and stay.
    root.ok("apt-get purge -y snowflake");
    let (code, status, _) = run(&mut root.command(&["dpkg-query", "--show", "--showformat=${db:Status-Abbrev}", "snowflake"]));
    assert!(code != 0 || status.trim() == "un", "purged: {status}");
    for gone in ["/etc/default/snowflake", "/etc/snowflake/res", "/etc/snowflake/flakes/README", "/var/lib/snowflake", "/var/log/snowflake"]
    {
        assert!(!root.exists(gone), "{gone} is left after purge");
    }
    assert!(!root.exists("/etc/systemd/system/multi-user.target.wants/snowflake.service"));
    assert!(!root.has_user("snowflake") && !root.has_group("snowflake"), "the user and group are removed on purge");
    assert!(root.exists("/etc/snowflake/flakes/example-perminute.json"), "the operator's flake is kept");
    assert!(root.exists("/etc/snowflake/aws.env"), "the operator's credentials are kept");
}

/// The shell lines of one `aws:runShellScript` step of the Systems Manager document, read with
/// cfn-lint's decoder, with the document's `{{ Parameter }}`s filled in as Run Command would.
fn ssm_step(name: &str, parameters: &[(&str, &str)]) -> String {
    let (code, stdout, stderr) = run(Command::new(common::venv_python()).args([
        "-c",
        "import json, sys\nfrom cfnlint.decode.decode import decode\ntemplate, problems = decode(sys.argv[1])\n\
         assert not problems, problems\nprint(json.dumps(template))",
        &repo_path("deploy/ssm/specialsnowflake.yaml").to_string_lossy(),
    ]));
    assert_eq!(code, 0, "{stderr}");
    let template: Value = serde_json::from_str(&stdout).unwrap();
    let steps = template["Resources"]["InstallDocument"]["Properties"]["Content"]["mainSteps"].as_array().unwrap();
    let step = steps.iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no step {name}"));
    let mut script: String =
        step["inputs"]["runCommand"].as_array().unwrap().iter().map(|line| format!("{}\n", line.as_str().unwrap())).collect();
    for (parameter, value) in parameters {
        script = script.replace(&format!("{{{{ {parameter} }}}}"), value);
    }
    assert!(!script.contains("{{"), "a parameter is left unfilled in {name}:\n{script}");
    script
}

/// Stages a flake folder where the document's DownloadFlakes step puts it.
fn stage_flakes(root: &Root, flakes: &[(&str, String)]) {
    let staged = root.path("/var/tmp/snowflake-ssm/flakes");
    std::fs::create_dir_all(staged.join("res")).unwrap();
    for (name, text) in flakes {
        std::fs::write(staged.join(name), text).unwrap();
    }
    std::fs::copy(repo_path("res/loadavg.sh"), staged.join("res/site-load.sh")).unwrap();
}

fn placed_flakes(root: &Root) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.path("/etc/snowflake/flakes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

#[test]
fn the_ssm_document_installs_the_package_and_places_only_flakes_that_pass_check() {
    let packages = tempfile::tempdir().unwrap();
    let deb = build_package(packages.path(), 1);
    let root = Root::new();

    // DownloadPackage leaves the .deb under its destinationPath; InstallPackage installs it.
    let download = root.path("/var/tmp/snowflake-ssm/package");
    std::fs::create_dir_all(&download).unwrap();
    std::fs::copy(&deb, download.join(deb.file_name().unwrap())).unwrap();
    let output = root.ok(&ssm_step("InstallPackage", &[]));
    assert_eq!(root.version(), "0.1.0-1 ii");
    assert!(output.contains("snowflake"), "{output}");
    assert!(!root.exists("/var/tmp/snowflake-ssm/package"), "the download is cleaned up");

    let flake = |name: &str, schedule: &str| {
        format!(
            r#"{{"flakeName": "{name}", "flakeCronstring": "{schedule}", "flakeCommand": "./res/site-load.sh", "flakeMetricNamespace": "Site"}}"#
        )
    };
    let keep = [("RemoveOtherFlakes", "false")];
    let replace = [("RemoveOtherFlakes", "true")];

    // A valid folder is placed, with its scripts; the staging folder goes.
    stage_flakes(&root, &[("load.json", flake("load", "* * * * *"))]);
    root.ok(&ssm_step("PlaceFlakes", &keep));
    assert_eq!(placed_flakes(&root), ["load.json"]);
    assert!(root.exists("/etc/snowflake/res/site-load.sh"));
    assert!(!root.exists("/var/tmp/snowflake-ssm/flakes"));

    // One invalid flake and nothing changes, even with RemoveOtherFlakes; the error names it.
    stage_flakes(&root, &[("load2.json", flake("load2", "*/5 * * * *")), ("broken.json", flake("broken", "* * *"))]);
    let (code, stdout, stderr) = run(&mut root.command(&["sh", "-c", &ssm_step("PlaceFlakes", &replace)]));
    assert_ne!(code, 0, "an invalid flake was accepted:\n{stdout}{stderr}");
    assert!(format!("{stdout}{stderr}").contains("broken.json"), "the error names the file:\n{stdout}{stderr}");
    assert_eq!(placed_flakes(&root), ["load.json"], "the running set is untouched");
    assert!(!root.exists("/var/tmp/snowflake-ssm/flakes"));

    // RemoveOtherFlakes=true: the folder is the whole set; false: it adds to what is there.
    stage_flakes(&root, &[("load2.json", flake("load2", "*/5 * * * *"))]);
    root.ok(&ssm_step("PlaceFlakes", &replace));
    assert_eq!(placed_flakes(&root), ["load2.json"]);
    stage_flakes(&root, &[("load3.json", flake("load3", "@every 30s"))]);
    root.ok(&ssm_step("PlaceFlakes", &keep));
    assert_eq!(placed_flakes(&root), ["load2.json", "load3.json"]);
}
