//! The packaging in `deploy/` against the real `floe serve`: every config file (and every
//! TOML block of the READMEs) loads with floe's own config loader, the Kubernetes manifests
//! parse and agree with the config they carry (probe ports, drain grace, hardening), the
//! systemd unit passes `systemd-analyze verify` and waits out the drain, and the Dockerfile's
//! HEALTHCHECK command is run against a real `floe serve`.
//!
//! What it cannot check here: that Kubernetes accepts the manifests (kubeconform and a
//! cluster are not available offline; the test checks structure and key facts, not the API
//! schema), and the image build, which runs only with `docker` on PATH and
//! `FLOE_DOCKER_BUILD=1`.
//!
//! No YAML crate is in the workspace. The manifests keep to a plain block-style subset of
//! YAML (mappings, sequences, `|` literals, plain or quoted scalars; no flow collections,
//! anchors, tags or YAML 1.1 booleans), which [`yaml`] (`deploy_files/yaml.rs`) parses and refuses to go beyond.
//! When `python3` with PyYAML is installed, every manifest is also parsed by PyYAML and the
//! two results must be equal, so the subset parser cannot silently read a file differently.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use floe_actors::config::ServeConfig;
use serde_json::Value;
use support::{repo_root, FloeServe, ServeOpts};

fn deploy() -> PathBuf {
    repo_root().join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Parses and validates TOML the way `floe serve --config` does.
fn load_config(text: &str, what: &str) -> ServeConfig {
    let config = ServeConfig::from_toml_str(text).unwrap_or_else(|e| panic!("{what}: {e}"));
    config
        .validate()
        .unwrap_or_else(|e| panic!("{what} does not validate: {e}"));
    config
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

// ---------------------------------------------------------------- TOML

#[test]
fn config_files_load_with_floes_loader() {
    let floe = load_config(&read(&deploy().join("floe.toml")), "deploy/floe.toml");
    assert!(
        floe.admin.is_some() && floe.admin_token.is_some(),
        "deploy/floe.toml: admin API with a token"
    );
    assert!(
        !floe.auth_secrets.is_empty(),
        "deploy/floe.toml: REST API secrets"
    );

    let image = load_config(&read(&deploy().join("image.toml")), "deploy/image.toml");
    let admin = image
        .admin
        .expect("deploy/image.toml sets admin (the HEALTHCHECK uses it)");
    assert!(
        admin.ip().is_loopback(),
        "the image's admin API has no token: loopback only"
    );
    assert!(!image.has_credentials(), "the image ships no credentials");
}

/// The ```toml blocks of README.md and deploy/README.md: a renamed key breaks them here.
#[test]
fn readme_toml_blocks_load_with_floes_loader() {
    let mut blocks = 0;
    for file in [repo_root().join("README.md"), deploy().join("README.md")] {
        let text = read(&file);
        let mut lines = text.lines().enumerate();
        while let Some((no, line)) = lines.next() {
            if line.trim_start() != "```toml" {
                continue;
            }
            let block: Vec<&str> = lines
                .by_ref()
                .map(|(_, l)| l)
                .take_while(|l| l.trim_start() != "```")
                .collect();
            load_config(&block.join("\n"), &format!("{}:{}", file.display(), no + 1));
            blocks += 1;
        }
    }
    assert!(blocks >= 4, "only {blocks} toml blocks in the READMEs");
}

// ---------------------------------------------------------------- Kubernetes

/// Every manifest of deploy/kubernetes, parsed: file name → document.
fn manifests() -> Vec<(String, Value)> {
    let dir = deploy().join("kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let pyyaml = pyyaml_available();
    if !pyyaml {
        println!(
            "python3 with PyYAML not found: the manifests are checked with the subset parser only"
        );
    }
    files
        .iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let doc = yaml::parse(&read(path)).unwrap_or_else(|e| panic!("{name}: {e}"));
            if pyyaml {
                let theirs = pyyaml_parse(path);
                assert_eq!(doc, theirs, "{name}: the subset parser and PyYAML disagree");
            }
            (name, doc)
        })
        .collect()
}

fn pyyaml_available() -> bool {
    Command::new("python3")
        .args(["-c", "import yaml"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn pyyaml_parse(path: &Path) -> Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(path)
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "PyYAML cannot parse {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("PyYAML's JSON")
}

fn kind<'a>(docs: &'a [(String, Value)], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "one {kind} in deploy/kubernetes");
    found[0]
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {v}"))
}

#[test]
fn kubernetes_manifests_agree_with_floes_config() {
    let docs = manifests();

    // kustomization.yaml lists every other manifest, once.
    let kustomization = kind(&docs, "Kustomization");
    let mut listed: Vec<&str> = kustomization["resources"]
        .as_array()
        .expect("kustomization resources")
        .iter()
        .map(|r| str_of(r, "a resource"))
        .collect();
    listed.sort();
    let mut files: Vec<&str> = docs
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| *n != "kustomization.yaml")
        .collect();
    files.sort();
    assert_eq!(listed, files, "kustomization.yaml resources");

    // The config floe runs with: the ConfigMap's floe.toml, then the Secret's secrets.toml.
    let configmap = kind(&docs, "ConfigMap");
    let secret = kind(&docs, "Secret");
    let settings = str_of(&configmap["data"]["floe.toml"], "ConfigMap floe.toml");
    let secrets = str_of(&secret["stringData"]["secrets.toml"], "Secret secrets.toml");
    load_config(settings, "the ConfigMap's floe.toml alone");
    let config = load_config(
        &format!("{settings}{secrets}"),
        "ConfigMap floe.toml + Secret secrets.toml",
    );
    let admin = config
        .admin
        .expect("the Kubernetes config serves the admin API");
    let token = config
        .admin_token
        .as_ref()
        .expect("the Kubernetes config has an admin token");
    assert_eq!(
        str_of(&secret["stringData"]["admin-token"], "Secret admin-token"),
        token.expose(),
        "the Secret's admin-token (for the ServiceMonitor) is the one in secrets.toml"
    );
    assert!(
        !config.auth_secrets.is_empty(),
        "REST API secrets in the Secret"
    );

    let deployment = kind(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["hostNetwork"], true,
        "hostNetwork (relays need a UDP port range)"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "runAsNonRoot");
    assert_ne!(pod["securityContext"]["runAsUser"], 0, "runAsUser");

    // SIGTERM drains for up to drain-timeout: Kubernetes must wait at least as long.
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds");
    assert!(
        grace >= config.drain_timeout,
        "terminationGracePeriodSeconds {grace} < drain-timeout {}",
        config.drain_timeout
    );

    // Every container hardened; the init container writes the file floe is told to read.
    let containers = pod["containers"].as_array().expect("containers");
    let inits = pod["initContainers"].as_array().expect("initContainers");
    for c in containers.iter().chain(inits) {
        let name = str_of(&c["name"], "container name");
        let sc = &c["securityContext"];
        assert_eq!(
            sc["readOnlyRootFilesystem"], true,
            "{name}: readOnlyRootFilesystem"
        );
        assert_eq!(
            sc["allowPrivilegeEscalation"], false,
            "{name}: allowPrivilegeEscalation"
        );
        assert_eq!(
            sc["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{name}: drop ALL"
        );
        assert!(
            sc["capabilities"].get("add").is_none(),
            "{name}: no capabilities added (ports > 1023)"
        );
    }
    assert!(config
        .listen
        .iter()
        .chain([&admin])
        .all(|a| a.port() > 1023));
    let floe = containers
        .iter()
        .find(|c| c["name"] == "floe")
        .expect("a container named floe");
    let args: Vec<&str> = floe["args"]
        .as_array()
        .expect("floe's args")
        .iter()
        .map(|a| str_of(a, "an arg"))
        .collect();
    assert_eq!(args[..2], ["serve", "--config"], "floe's args");
    let config_path = args[2];
    let script = inits[0]["command"]
        .as_array()
        .and_then(|c| c.last())
        .map(|s| str_of(s, "the init script"))
        .expect("the init container's script");
    let mount = |container: &Value, volume: &str| -> String {
        container["volumeMounts"]
            .as_array()
            .expect("volumeMounts")
            .iter()
            .find(|m| m["name"] == volume)
            .map(|m| str_of(&m["mountPath"], "mountPath").to_owned())
            .unwrap_or_else(|| panic!("no mount of volume {volume}"))
    };
    let volume = |name: &str| -> &Value {
        pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    assert_eq!(
        volume("config")["configMap"]["name"],
        configmap["metadata"]["name"]
    );
    assert_eq!(
        volume("secret")["secret"]["secretName"],
        secret["metadata"]["name"]
    );
    let expected = format!(
        "cat {}/floe.toml {}/secrets.toml > {config_path}",
        mount(&inits[0], "config"),
        mount(&inits[0], "secret")
    );
    assert!(
        script.contains(&expected),
        "the init script {script:?} should run {expected:?}"
    );
    assert!(config_path.starts_with(&format!("{}/", mount(floe, "run"))));
    assert!(config_path.starts_with(&format!("{}/", mount(&inits[0], "run"))));

    // Probes on the admin port the config sets.
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &floe[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe} path");
        assert_eq!(
            get["port"],
            admin.port(),
            "{probe} port: the config's admin port"
        );
    }
    let ports = floe["ports"].as_array().expect("floe's ports");
    for (port, protocol) in [
        (config.listen[0].port(), "UDP"),
        (config.listen[0].port(), "TCP"),
        (admin.port(), "TCP"),
    ] {
        assert!(
            ports
                .iter()
                .any(|p| p["containerPort"] == port && p["protocol"] == protocol),
            "floe declares {port}/{protocol}"
        );
    }

    // The Service and the ServiceMonitor reach /metrics on the admin port, with the token.
    let service = kind(&docs, "Service");
    let service_port = service["spec"]["ports"]
        .as_array()
        .expect("Service ports")
        .iter()
        .find(|p| p["port"] == admin.port())
        .expect("the Service exposes the admin port");
    assert_eq!(
        service["spec"]["publishNotReadyAddresses"], true,
        "draining pods stay scraped"
    );
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    let monitor = kind(&docs, "ServiceMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(
        endpoint["port"], service_port["name"],
        "ServiceMonitor port name"
    );
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(
        endpoint["authorization"]["credentials"]["name"],
        secret["metadata"]["name"]
    );
    assert_eq!(
        endpoint["authorization"]["credentials"]["key"],
        "admin-token"
    );
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels")
    {
        assert_eq!(
            &service["metadata"]["labels"][k], v,
            "ServiceMonitor selects the Service"
        );
    }
}

// ---------------------------------------------------------------- systemd

#[test]
fn systemd_unit_waits_for_the_drain_and_verifies() {
    let path = deploy().join("systemd").join("floe.service");
    let unit = read(&path);
    let value = |key: &str| -> Vec<&str> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .collect()
    };
    let one = |key: &str| -> &str {
        let v = value(key);
        assert_eq!(v.len(), 1, "one {key}= in floe.service");
        v[0]
    };
    let exec = one("ExecStart");
    let config_path = exec
        .strip_prefix("/usr/local/bin/floe serve --config ")
        .expect("ExecStart runs floe serve --config FILE");
    assert_eq!(config_path, "/etc/floe/floe.toml");
    let config = load_config(&read(&deploy().join("floe.toml")), "deploy/floe.toml");
    let timeout: u64 = one("TimeoutStopSec")
        .parse()
        .expect("TimeoutStopSec in seconds");
    assert!(
        timeout >= config.drain_timeout,
        "TimeoutStopSec {timeout} < deploy/floe.toml's drain-timeout {}",
        config.drain_timeout
    );
    assert_eq!(one("KillSignal"), "SIGTERM", "SIGTERM drains");
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("CapabilityBoundingSet"), "");
    let families = one("RestrictAddressFamilies");
    for family in ["AF_INET", "AF_INET6", "AF_NETLINK"] {
        assert!(
            families.split(' ').any(|f| f == family),
            "RestrictAddressFamilies has {family}"
        );
    }
    let nofile: u64 = one("LimitNOFILE").parse().expect("LimitNOFILE");
    assert!(nofile >= 65536, "LimitNOFILE {nofile}");

    let Some(analyze) = on_path("systemd-analyze") else {
        println!("skipped: systemd-analyze not installed (the unit's key lines are checked above)");
        return;
    };
    // verify wants ExecStart's program to exist: point it at the binary this test built.
    let dir = support::TempDir::new("floe-unit");
    let copy = dir.path().join("floe.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/floe", env!("CARGO_BIN_EXE_floe")),
    )
    .unwrap();
    let mut cmd = Command::new(analyze);
    cmd.arg("verify").arg(&copy);
    let run = support::run(cmd, Duration::from_secs(60));
    // It warns about unknown keys and bad values on stderr, and still exits 0.
    assert!(
        run.success() && run.stdout.trim().is_empty() && run.stderr.trim().is_empty(),
        "systemd-analyze verify: {}",
        run.describe()
    );
}

// ---------------------------------------------------------------- Dockerfile

/// The Dockerfile's instructions, continuation lines joined: (INSTRUCTION, arguments).
fn dockerfile() -> Vec<(String, String)> {
    let text = read(&deploy().join("Dockerfile"));
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (op, args) = current
            .split_once(' ')
            .expect("an instruction with arguments");
        out.push((op.to_uppercase(), args.trim().to_owned()));
        current.clear();
    }
    out
}

#[test]
fn dockerfile_builds_floe_and_runs_it_unprivileged() {
    let instructions = dockerfile();
    let all = |op: &str| -> Vec<&str> {
        instructions
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, a)| a.as_str())
            .collect()
    };
    let from = all("FROM");
    assert_eq!(from.len(), 2, "two stages: {from:?}");
    assert!(
        from[0].starts_with("rust:1-bookworm "),
        "builder: {}",
        from[0]
    );
    assert_eq!(from[1], "debian:bookworm-slim", "runtime");
    assert!(
        all("RUN")
            .iter()
            .any(|r| r.contains("cargo build --release --locked -p floe-actors --bin floe")),
        "the builder builds the floe binary"
    );
    let user = all("USER");
    let user = user.last().expect("USER");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric USER (runAsNonRoot)");
    assert_ne!(uid, 0);

    // The default config in the image is deploy/image.toml, and CMD reads it.
    let image = load_config(&read(&deploy().join("image.toml")), "deploy/image.toml");
    let copies = all("COPY");
    let target = copies
        .iter()
        .find_map(|c| c.strip_prefix("deploy/image.toml "))
        .expect("COPY deploy/image.toml");
    for c in &copies {
        if !c.starts_with("--from=") && *c != ". ." {
            let source = c.split(' ').next().unwrap();
            assert!(repo_root().join(source).exists(), "COPY source {source}");
        }
    }
    let cmd = all("CMD");
    assert_eq!(
        cmd.last().copied(),
        Some(format!(r#"["serve", "--config", "{target}"]"#).as_str()),
        "CMD serves with the image's config"
    );
    assert_eq!(all("ENTRYPOINT"), [r#"["/usr/local/bin/floe"]"#]);

    let admin = image.admin.expect("image.toml sets admin");
    let expose = all("EXPOSE").join(" ");
    let exposed: Vec<&str> = expose.split(' ').collect();
    for port in [
        "3478/udp",
        "3478/tcp",
        "5349/tcp",
        &format!("{}/tcp", admin.port()),
    ] {
        assert!(exposed.contains(&port), "EXPOSE {port}");
    }
    assert!(
        all("ENV").contains(&format!("FLOE_ADMIN_PORT={}", admin.port()).as_str()),
        "ENV FLOE_ADMIN_PORT is image.toml's admin port"
    );
    let ignore = read(&repo_root().join(".dockerignore"));
    for path in ["target", ".venv", "fuzz/target", ".git"] {
        assert!(
            ignore.lines().any(|l| l.trim() == path),
            ".dockerignore has {path}"
        );
    }

    // The HEALTHCHECK command, as Docker runs it (`/bin/sh -c`), against a real floe serve
    // started from the image's config (listen and admin moved to free loopback ports).
    let healthcheck = all("HEALTHCHECK");
    let check = healthcheck
        .last()
        .and_then(|h| h.split_once(" CMD ").map(|(_, c)| c.trim().to_owned()))
        .expect("HEALTHCHECK ... CMD command");
    assert!(!check.starts_with('['), "the check is in shell form");
    let config = deploy().join("image.toml");
    let floe = FloeServe::start(
        ServeOpts::default()
            .admin()
            .arg("--config")
            .arg(config.to_str().unwrap()),
    );
    let port = floe.admin_addr().expect("admin").port();
    let probe = || {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &check])
            .env("FLOE_ADMIN_PORT", port.to_string());
        support::run(cmd, Duration::from_secs(30))
    };
    let healthy = probe();
    assert!(
        healthy.success(),
        "HEALTHCHECK against a running floe: {}\n--- floe's log\n{}",
        healthy.describe(),
        floe.log()
    );
    drop(floe);
    let gone = probe();
    assert!(
        !gone.success() && !gone.timed_out(),
        "HEALTHCHECK with floe stopped: {}",
        gone.describe()
    );
}

/// Builds the image, with `docker` on PATH and `FLOE_DOCKER_BUILD=1` only: it downloads the
/// base images and crates and compiles floe in release mode.
#[test]
fn docker_image_builds() {
    let Some(docker) = on_path("docker") else {
        println!("skipped: docker not installed");
        return;
    };
    if std::env::var("FLOE_DOCKER_BUILD").as_deref() != Ok("1") {
        println!(
            "skipped: set FLOE_DOCKER_BUILD=1 to build deploy/Dockerfile with {}",
            docker.display()
        );
        return;
    }
    let mut cmd = Command::new(docker);
    cmd.current_dir(repo_root()).args([
        "build",
        "-f",
        "deploy/Dockerfile",
        "-t",
        "floe:deploy-test",
        ".",
    ]);
    let run = support::run(cmd, Duration::from_secs(3600));
    assert!(run.success(), "docker build: {}", run.describe());
}

// ---------------------------------------------------------------- the YAML subset

#[path = "deploy_files/yaml.rs"]
mod yaml;
