use super::*;

#[test]
fn defaults_follow_the_issue() {
    let c = ServeConfig::default();
    assert_eq!(c.listen, vec!["0.0.0.0:3478".parse().unwrap()]);
    assert_eq!(c.realm, "floe");
    assert_eq!(c.port_range(), 49152..=65535);
    assert_eq!(c.max_lifetime(), Duration::from_secs(3600));
    assert!(c.threads >= 1);
    assert!(!c.allow_loopback_peers);
    assert!(c.metrics.is_none());
    assert!(c.tls_listen().is_empty());
    // Issue 13: limits on by default where they cost a legitimate client nothing.
    assert_eq!((c.max_permissions, c.max_channels), (64, 64));
    assert_eq!((c.max_bps, c.total_bps), (0, 0));
    assert_eq!(c.unauth_rate, 20);
    assert_eq!(c.secret_grace, 3600);
    assert_eq!(
        (
            c.max_tcp_per_ip,
            c.max_tcp_connections,
            c.tcp_message_timeout,
            c.tcp_write_queue
        ),
        (64, 4096, 30, 256 * 1024)
    );
    c.validate().unwrap();
}

#[test]
fn empty_toml_is_the_default() {
    assert_eq!(
        ServeConfig::from_toml_str("").unwrap(),
        ServeConfig::default()
    );
}

#[test]
fn every_setting_loads_from_toml() {
    let c = ServeConfig::from_toml_str(
        r#"
        listen = ["127.0.0.1:3478", "[::1]:3478"]
        realm = "example.org"
        user = ["alice:wonder:land", "bob:builder"]
        auth-secret = ["s1", "s2"]
        secret-grace = 600
        relay-ip = "127.0.0.1"
        external-ip = "203.0.113.7"
        min-port = 50000
        max-port = 50100
        allow-loopback-peers = true
        allow-peer = ["10.1.0.0/16"]
        deny-peer = ["198.51.100.0/24", "2001:db8::/32"]
        user-quota = 10
        total-quota = 1000
        max-permissions = 32
        max-channels = 16
        max-bps = 250000
        total-bps = 100000000
        unauth-rate = 50
        max-lifetime = 1800
        threads = 2
        max-tcp-per-ip = 8
        max-tcp-connections = 100
        tcp-message-timeout = 5
        tcp-write-queue = 1048576
        metrics = "127.0.0.1:9641"
        admin = "127.0.0.1:9642"
        admin-token = "t0k"
        alternate-server = "198.51.100.2:3478"
        drain-timeout = 120
        log = "floe=debug,info"
        log-format = "json"
        usage-top-users = 3
        tls-cert = "/etc/floe/cert.pem"
        tls-key = "/etc/floe/key.pem"
        "#,
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.listen.len(), 2);
    assert_eq!(c.users[0].name, "alice");
    assert_eq!(c.users[0].password.expose(), "wonder:land");
    assert_eq!(c.auth_secrets[1].expose(), "s2");
    assert_eq!(c.secret_grace, 600);
    assert_eq!(c.port_range(), 50000..=50100);
    assert!(c.allow_loopback_peers);
    assert_eq!(c.allow_peers, vec!["10.1.0.0/16".parse().unwrap()]);
    assert_eq!(c.deny_peers[1].to_string(), "2001:db8::/32");
    assert_eq!(
        (c.user_quota, c.total_quota, c.max_lifetime),
        (10, 1000, 1800)
    );
    assert_eq!(
        (c.max_permissions, c.max_channels, c.unauth_rate),
        (32, 16, 50)
    );
    assert_eq!((c.max_bps, c.total_bps), (250_000, 100_000_000));
    assert_eq!(c.threads, 2);
    assert_eq!(
        (c.log_format, c.usage_top_users),
        (crate::logging::LogFormat::Json, 3)
    );
    assert_eq!(
        (
            c.max_tcp_per_ip,
            c.max_tcp_connections,
            c.tcp_message_timeout,
            c.tcp_write_queue
        ),
        (8, 100, 5, 1 << 20)
    );
    assert_eq!(c.metrics, Some("127.0.0.1:9641".parse().unwrap()));
    assert_eq!(c.admin, Some("127.0.0.1:9642".parse().unwrap()));
    assert_eq!(c.admin_token.as_ref().map(Secret::expose), Some("t0k"));
    assert_eq!(
        c.alternate_server,
        Some("198.51.100.2:3478".parse().unwrap())
    );
    assert_eq!(c.drain_timeout, 120);
    let empty_token = ServeConfig::from_toml_str("admin-token = \"\"").unwrap();
    assert!(matches!(
        empty_token.validate(),
        Err(ConfigError::EmptyAdminToken)
    ));
    assert_eq!(
        c.tls_listen(),
        vec![
            "127.0.0.1:5349".parse::<SocketAddr>().unwrap(),
            "[::1]:5349".parse().unwrap()
        ]
    );
    let with_port = ServeConfig::from_toml_str(
        "tls-cert = \"c.pem\"\ntls-key = \"k.pem\"\ntls-listen = [\"127.0.0.1:15349\"]\n",
    )
    .unwrap();
    with_port.validate().unwrap();
    assert_eq!(
        with_port.tls_listen(),
        vec!["127.0.0.1:15349".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(
        ServeConfig::from_toml_str(&with_port.to_toml().unwrap()).unwrap(),
        with_port
    );
    assert_eq!(with_port.tls_cert, vec![PathBuf::from("c.pem")]);
    assert_eq!(
        with_port.tls_watch_interval(),
        Some(Duration::from_secs(10))
    );

    // Several pairs, in order; the SNI chooses among them.
    let pairs = ServeConfig::from_toml_str(
        "tls-cert = [\"a.pem\", \"b.pem\"]\ntls-key = [\"a.key\", \"b.key\"]\n\
         tls-watch-interval = 0\n",
    )
    .unwrap();
    pairs.validate().unwrap();
    let files = pairs.tls_files();
    assert_eq!(files.len(), 2);
    assert_eq!(
        (files[1].cert(), files[1].key()),
        (Path::new("b.pem"), Path::new("b.key"))
    );
    assert_eq!(pairs.tls_watch_interval(), None);
    assert_eq!(
        ServeConfig::from_toml_str(&pairs.to_toml().unwrap()).unwrap(),
        pairs
    );

    // And back again.
    let text = c.to_toml().unwrap();
    assert_eq!(ServeConfig::from_toml_str(&text).unwrap(), c);
}

#[test]
fn toml_errors_are_clear() {
    let err = ServeConfig::from_toml_str("lissten = []").unwrap_err();
    assert!(err.to_string().contains("lissten"), "{err}");
    let err = ServeConfig::from_toml_str("deny-peer = [\"10.0.0.0/40\"]").unwrap_err();
    assert!(err.to_string().contains("10.0.0.0/40"), "{err}");
    let err = ServeConfig::from_toml_str("user = [\"nocolon\"]").unwrap_err();
    assert!(err.to_string().contains("NAME:PASS"), "{err}");
    let err = ServeConfig::from_file(Path::new("/nonexistent/floe.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err}");
}

#[test]
fn validation_catches_mistakes() {
    let bad = |f: fn(&mut ServeConfig)| {
        let mut c = ServeConfig::default();
        f(&mut c);
        c.validate().unwrap_err()
    };
    assert!(matches!(
        bad(|c| (c.min_port, c.max_port) = (60000, 50000)),
        ConfigError::PortRange {
            min: 60000,
            max: 50000
        }
    ));
    assert!(matches!(
        bad(|c| c.min_port = 0),
        ConfigError::PortRange { .. }
    ));
    assert!(matches!(bad(|c| c.listen.clear()), ConfigError::NoListen));
    assert!(matches!(bad(|c| c.realm.clear()), ConfigError::Realm(0)));
    assert!(matches!(bad(|c| c.threads = 0), ConfigError::Threads));
    assert!(matches!(
        bad(|c| c.max_lifetime = 0),
        ConfigError::MaxLifetime
    ));
    for (f, name) in [
        (
            (|c: &mut ServeConfig| c.max_tcp_per_ip = 0) as fn(&mut ServeConfig),
            "max-tcp-per-ip",
        ),
        (|c| c.max_permissions = 0, "max-permissions"),
        (|c| c.max_channels = 0, "max-channels"),
        (|c| c.max_tcp_connections = 0, "max-tcp-connections"),
        (|c| c.tcp_message_timeout = 0, "tcp-message-timeout"),
        (|c| c.tcp_write_queue = 0, "tcp-write-queue"),
        (|c| c.tcp_write_queue = 65_536, "tcp-write-queue"),
    ] {
        let err = bad(f);
        assert!(
            matches!(err, ConfigError::TooSmall { setting, .. } if setting == name),
            "{err}"
        );
        assert!(err.to_string().starts_with(name), "{err}");
    }
    let smallest = ServeConfig {
        tcp_write_queue: MIN_TCP_WRITE_QUEUE,
        ..ServeConfig::default()
    };
    smallest.validate().unwrap();
    assert!(matches!(
        bad(|c| c.tls_cert = vec!["c.pem".into()]),
        ConfigError::TlsPairs { certs: 1, keys: 0 }
    ));
    let err = bad(|c| {
        c.tls_cert = vec!["a.pem".into(), "b.pem".into()];
        c.tls_key = vec!["a.key".into()];
    });
    assert!(matches!(err, ConfigError::TlsPairs { certs: 2, keys: 1 }));
    assert!(
        err.to_string()
            .contains("one --tls-key for each --tls-cert"),
        "{err}"
    );
    assert!(matches!(
        bad(|c| c.tls_listen = vec!["127.0.0.1:5349".parse().unwrap()]),
        ConfigError::TlsListenWithoutCertificate
    ));
    assert!(matches!(
        bad(|c| c.users = vec!["a:1".parse().unwrap(), "a:2".parse().unwrap()]),
        ConfigError::DuplicateUser(_)
    ));
    assert!(matches!(
        bad(|c| c.auth_secrets = vec![Secret::new("")]),
        ConfigError::EmptySecret
    ));
    assert!(matches!(
        bad(|c| c.relay_ip = Some("0.0.0.0".parse().unwrap())),
        ConfigError::UnusableAddress { .. }
    ));
    assert!(matches!(
        bad(|c| c.log = "floe=loud=yes".into()),
        ConfigError::LogFilter { .. }
    ));
}

#[test]
fn users_parse_as_name_colon_password() {
    let u: UserCredential = "alice:p:w".parse().unwrap();
    assert_eq!((u.name.as_str(), u.password.expose()), ("alice", "p:w"));
    assert_eq!(
        "alice".parse::<UserCredential>(),
        Err(UserCredentialError::MissingColon)
    );
    assert_eq!(
        ":pw".parse::<UserCredential>(),
        Err(UserCredentialError::EmptyName)
    );
    assert_eq!(
        "alice:".parse::<UserCredential>(),
        Err(UserCredentialError::EmptyPassword)
    );
    // Debug output never shows secrets.
    assert_eq!(format!("{u:?}"), "alice:***");
    assert!(!format!("{:?}", Secret::new("hunter2")).contains("hunter2"));
}

#[test]
fn credentials_are_generated_only_when_none_are_configured() {
    let mut c = ServeConfig::default();
    let user = c.ensure_credentials().expect("generated");
    assert_eq!(user.password.expose().len(), GENERATED_PASSWORD_LEN);
    assert!(user
        .password
        .expose()
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric()));
    assert!(user.name.starts_with("floe-"));
    assert_eq!(c.users, vec![user.clone()]);
    c.validate().unwrap();
    // Once there are credentials, nothing more is generated.
    assert!(c.ensure_credentials().is_none());

    let mut other = ServeConfig::default();
    let second = other.ensure_credentials().unwrap();
    assert_ne!(second.password, user.password);

    let mut with_secret = ServeConfig {
        auth_secrets: vec![Secret::new("s")],
        ..ServeConfig::default()
    };
    assert!(with_secret.ensure_credentials().is_none());
    assert!(with_secret.users.is_empty());
}

#[test]
fn external_ip_is_one_string_or_an_array_and_checked() {
    let one = ServeConfig::from_toml_str("external-ip = \"203.0.113.7\"").unwrap();
    one.validate().unwrap();
    assert_eq!(
        one.external_ip,
        vec![ExternalIp::public("203.0.113.7".parse().unwrap())]
    );
    let many = ServeConfig::from_toml_str(
        "external-ip = [\"203.0.113.7/10.0.0.7\", \"2001:db8:ff::7\", \"auto\"]\n\
         external-ip-stun = [\"127.0.0.1:3478\", \"stun.example.org:3478\"]",
    )
    .unwrap();
    many.validate().unwrap();
    assert_eq!(many.external_ip.len(), 3);
    assert_eq!(many.external_ip[2], ExternalIp::Auto);
    let ext = many.external_addresses().unwrap();
    assert_eq!(
        ext.public_for("10.0.0.7".parse().unwrap()),
        Some("203.0.113.7".parse().unwrap())
    );
    // Written back as an array, read again the same.
    let again = ServeConfig::from_toml_str(&many.to_toml().unwrap()).unwrap();
    assert_eq!(again, many);
    // A cloud is the IPv4 default: a mapping per private address, and IPv6's own
    // default, go with it.
    let cloud = ServeConfig::from_toml_str(
        "external-ip = [\"aws\", \"203.0.113.7/10.0.0.7\", \"2001:db8:ff::7\"]",
    )
    .unwrap();
    cloud.validate().unwrap();
    assert_eq!(
        cloud.external_ip[0],
        ExternalIp::Cloud(crate::config::Cloud::Aws)
    );
    assert_eq!(
        ServeConfig::from_toml_str(&cloud.to_toml().unwrap()).unwrap(),
        cloud
    );

    let err = |text: &str| match ServeConfig::from_toml_str(text) {
        Ok(c) => c.validate().unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    assert!(err("external-ip = \"bogus\"").contains("`bogus` is not PUBLIC"));
    assert!(err("external-ip = [\"203.0.113.7\", \"203.0.113.8\"]")
        .contains("one mapping without /PRIVATE per address family (IPv4)"));
    assert!(err("external-ip = \"203.0.113.7/2001:db8::1\"").contains("same family"));
    assert!(err("external-ip = \"auto\"").contains("needs at least one --external-ip-stun"));
    assert!(
        err("external-ip = [\"auto\", \"aws\"]\nexternal-ip-stun = \"127.0.0.1:3478\"")
            .contains("auto and aws both discover the public address")
    );
    assert!(err("external-ip = [\"gcp\", \"azure\"]").contains("gcp and azure both"));
    assert!(err("external-ip = [\"aws\", \"aws\"]").contains("aws and aws both"));
    assert!(err("external-ip = [\"aws\", \"203.0.113.7\"]").contains(
        "aws gives the IPv4 address every relay is advertised as, and so does 203.0.113.7"
    ));
    assert!(
        err("external-ip = \"gcp\"\nexternal-ip-stun = \"127.0.0.1:3478\"")
            .contains("only used with external-ip auto")
    );
    assert!(
        err("external-ip-stun = \"127.0.0.1:3478\"").contains("only used with external-ip auto")
    );
    assert!(
        err("external-ip = \"auto\"\nexternal-ip-stun = \"127.0.0.1\"").contains("not HOST:PORT")
    );
}
