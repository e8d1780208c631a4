use std::path::Path;

use super::*;

fn write(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn errors(file: Option<&Path>, vars: &[(&str, &str)]) -> Vec<String> {
    Config::load(file, env(vars)).unwrap_err().0.iter().map(ToString::to_string).collect()
}

#[test]
fn no_file_no_env_gives_the_defaults() {
    let c = Config::load(None, env(&[])).unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.database.url, "sqlite://webcare.db");
    assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
    assert!(c.telegram.token.is_none() && c.discord.token.is_none());
}

#[test]
fn the_example_file_is_the_defaults_and_mentions_every_key() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("webcare.example.toml");
    assert_eq!(Config::load(Some(&example), env(&[])).unwrap(), Config::default());
    let text = std::fs::read_to_string(&example).unwrap();
    let mut section = String::new();
    let mut mentioned = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_owned();
        } else if let Some((key, _)) = line.trim_start_matches('#').trim().split_once(" = ")
            && !key.contains(' ')
        {
            mentioned.push(format!("{section}.{key}"));
        }
    }
    for key in known_keys() {
        assert!(mentioned.contains(&key), "config/webcare.example.toml does not mention `{key}`");
    }
}

#[test]
fn an_unknown_key_is_named_with_the_file() {
    let f = write("[http]\nlisen = \"127.0.0.1:1\"\n");
    let errs = errors(Some(f.path()), &[]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with(&f.path().display().to_string()), "{}", errs[0]);
    assert!(errs[0].contains("`http.lisen`"), "{}", errs[0]);
    assert!(errs[0].contains("unknown key"), "{}", errs[0]);
}

#[test]
fn an_unknown_section_is_named() {
    let f = write("[telegramm]\ntoken = \"1:a\"\n");
    let errs = errors(Some(f.path()), &[]);
    assert!(errs[0].contains("`telegramm`") && errs[0].contains("unknown key"), "{errs:?}");
}

#[test]
fn a_wrong_type_names_the_key_and_the_expectation() {
    let f = write("[database]\nmax_connections = \"many\"\n");
    let errs = errors(Some(f.path()), &[]);
    assert!(errs[0].contains("`database.max_connections`"), "{errs:?}");
    assert!(errs[0].contains("u32") || errs[0].contains("integer"), "{errs:?}");
}

#[test]
fn impossible_values_are_all_reported_at_once() {
    let f = write(
        "[database]\nurl = \"mysql://x\"\nmax_connections = 0\n[telegram]\napi_url = \"ftp://x\"\ntoken = \"nope\"\n\
         [http]\nwebchat_messages_per_minute = 0\n",
    );
    let errs = errors(Some(f.path()), &[]);
    let all = errs.join("\n");
    for key in [
        "database.url",
        "database.max_connections",
        "telegram.api_url",
        "telegram.token",
        "http.webchat_messages_per_minute",
    ] {
        assert!(all.contains(&format!("`{key}`")), "missing {key} in {all}");
    }
    assert!(!all.contains("nope"), "a token must never be echoed: {all}");
}

#[test]
fn a_bad_listen_address_is_explained() {
    let f = write("[http]\nlisten = \"localhost\"\n");
    let errs = errors(Some(f.path()), &[]);
    assert!(errs[0].contains("`http.listen`") && errs[0].contains("socket address"), "{errs:?}");
}

#[test]
fn invalid_toml_names_the_file_and_line() {
    let f = write("[http\nlisten = 1\n");
    let errs = errors(Some(f.path()), &[]);
    assert!(errs[0].contains("not valid TOML") && errs[0].contains("line 1"), "{errs:?}");
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let errs = errors(Some(Path::new("/nonexistent/webcare.toml")), &[]);
    assert!(errs[0].starts_with("/nonexistent/webcare.toml: cannot read"), "{errs:?}");
}

#[test]
fn environment_overrides_the_file_with_typed_values() {
    let f = write("[database]\nurl = \"sqlite://a.db\"\nmax_connections = 2\n");
    let c = Config::load(
        Some(f.path()),
        env(&[
            ("WEBCARE_DATABASE__URL", "postgres://u@h/db"),
            ("WEBCARE_DATABASE__MAX_CONNECTIONS", "16"),
            ("WEBCARE_DISCORD__TOKEN", "12345"),
            ("WEBCARE_DISCORD__SUPPORT_CHANNELS", "11, 22"),
            ("WEBCARE_CONFIG", "ignored.toml"),
            ("WEBCARE_TEST_POSTGRES_URL", "ignored"),
            ("PATH", "/bin"),
        ]),
    )
    .unwrap();
    assert_eq!(c.database.url, "postgres://u@h/db");
    assert_eq!(c.database.max_connections, 16);
    assert_eq!(c.discord.token.as_ref().unwrap().expose(), "12345");
    assert_eq!(c.discord.support_channels, vec![11, 22]);
}

#[test]
fn a_bad_environment_value_blames_the_variable() {
    let errs = errors(None, &[("WEBCARE_DATABASE__MAX_CONNECTIONS", "lots"), ("WEBCARE_HTTP__LISTNE", "x")]);
    let all = errs.join("\n");
    assert!(all.contains("environment variable WEBCARE_DATABASE__MAX_CONNECTIONS: key `database.max_connections`"));
    assert!(all.contains("environment variable WEBCARE_HTTP__LISTNE: key `http.listne`: unknown key"), "{all}");
    let errs = errors(None, &[("WEBCARE_DATABASE__MAX_CONNECTIONS", "0")]);
    assert!(errs[0].starts_with("environment variable WEBCARE_DATABASE__MAX_CONNECTIONS"), "{errs:?}");
}

#[test]
fn secrets_never_print() {
    let c = Config::load(
        None,
        env(&[("WEBCARE_TELEGRAM__TOKEN", "123:supersecret"), ("WEBCARE_DISCORD__TOKEN", "discordsecret")]),
    )
    .unwrap();
    let printed = c.to_toml();
    let debugged = format!("{c:?}");
    for text in [&printed, &debugged] {
        assert!(!text.contains("supersecret") && !text.contains("discordsecret"), "{text}");
        assert!(text.contains(secret::MASK), "{text}");
    }
}

#[test]
fn printed_configuration_reads_back() {
    let c = Config::default();
    let f = write(&c.to_toml());
    assert_eq!(Config::load(Some(f.path()), env(&[])).unwrap(), c);
}

#[test]
fn alert_webhooks_are_read_per_service_and_never_print_their_secret() {
    let f = write(
        "[alerts]\ntimeout_secs = 5\n[alerts.webhooks]\ninternet = \"https://hooks.slack.com/services/T0/B0/s3cr3t\"\n\
         default = \"http://user:pw@noc.example.com:8080/alerts?token=s3cr3t\"\n",
    );
    let c = Config::load(Some(f.path()), env(&[("WEBCARE_ALERTS__WEBHOOKS__TV", "https://tv.example.com/h/s3cr3t")]))
        .unwrap();
    assert_eq!(c.alerts.timeout_secs, 5);
    let hooks = c.alerts.webhooks.all();
    let names: Vec<&str> = hooks.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["internet", "tv", "default"]);
    assert_eq!(hooks[0].1.expose(), "https://hooks.slack.com/services/T0/B0/s3cr3t");
    assert_eq!(hooks[0].1.masked(), "https://hooks.slack.com/********");
    assert_eq!(hooks[2].1.masked(), "http://********@noc.example.com:8080/********");
    assert!(c.alerts.webhooks.mobile.is_none());
    for text in [c.to_toml(), format!("{c:?}"), format!("{}", hooks[1].1)] {
        assert!(!text.contains("s3cr3t") && !text.contains("pw@"), "{text}");
    }
    assert!(c.to_toml().contains("internet = \"https://hooks.slack.com/********\""), "{}", c.to_toml());
}

#[test]
fn a_bad_webhook_url_is_named_without_repeating_it() {
    let f = write(
        "[alerts.webhooks]\ninternet = \"hooks.slack.com/services/s3cr3t\"\ntv = \"ftp://tv.example.com/s3cr3t\"\n\
         mobile = \"https:///s3cr3t\"\nlandline = \"https://ok.example.com/x\"\n",
    );
    let errs = errors(Some(f.path()), &[]);
    assert_eq!(errs.len(), 3, "{errs:?}");
    for (err, key) in errs.iter().zip(["alerts.webhooks.internet", "alerts.webhooks.tv", "alerts.webhooks.mobile"]) {
        assert!(err.starts_with(&f.path().display().to_string()), "{err}");
        assert!(err.contains(&format!("`{key}`")) && err.contains("http:// or https:// URL"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
    }
    let errs = errors(None, &[("WEBCARE_ALERTS__WEBHOOKS__DEFAULT", "nope")]);
    assert!(
        errs[0].starts_with("environment variable WEBCARE_ALERTS__WEBHOOKS__DEFAULT: key `alerts.webhooks.default`"),
        "{errs:?}"
    );
}

#[test]
fn an_unknown_service_in_alert_webhooks_is_named() {
    let f = write("[alerts.webhooks]\nradio = \"https://radio.example.com/hook\"\n");
    let errs = errors(Some(f.path()), &[]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("`alerts.webhooks.radio`") && errs[0].contains("unknown key"), "{errs:?}");
    assert!(errs[0].contains("internet") && errs[0].contains("default"), "the known services are listed: {errs:?}");
    let errs = errors(None, &[("WEBCARE_ALERTS__WEBHOOKS__RADIO", "https://radio.example.com/hook")]);
    assert!(errs[0].contains("`alerts.webhooks.radio`: unknown key"), "{errs:?}");
    let f = write("[alerts]\ntimeout_secs = 0\ngive_up_after_secs = 1\n");
    let all = errors(Some(f.path()), &[]).join("\n");
    assert!(all.contains("`alerts.timeout_secs`") && all.contains("`alerts.give_up_after_secs`"), "{all}");
}

#[test]
fn discord_shards_are_a_range_this_instance_runs() {
    let c = Config::load(None, env(&[])).unwrap();
    assert_eq!((c.discord.shards, c.discord.shard_span()), (1, (0, 0)), "one shard, run here");
    let c = Config::load(None, env(&[("WEBCARE_DISCORD__SHARDS", "4")])).unwrap();
    assert_eq!(c.discord.shard_span(), (0, 3), "all four by default");
    let c =
        Config::load(None, env(&[("WEBCARE_DISCORD__SHARDS", "4"), ("WEBCARE_DISCORD__SHARD_IDS", "2, 3")])).unwrap();
    assert_eq!(c.discord.shard_span(), (2, 3));
    for (shards, ids) in [("0", ""), ("2", "2"), ("4", "1, 3"), ("4", "3, 2")] {
        let errs = errors(None, &[("WEBCARE_DISCORD__SHARDS", shards), ("WEBCARE_DISCORD__SHARD_IDS", ids)]);
        let key = if shards == "0" { "`discord.shards`" } else { "`discord.shard_ids`" };
        assert!(errs.iter().any(|e| e.contains(key)), "{shards} {ids}: {errs:?}");
    }
}

#[test]
fn the_operators_countries_are_nl_and_be_its_own_first() {
    assert!(Config::load(None, env(&[])).unwrap().bridge.countries.is_empty(), "the data files' order by default");
    let c = Config::load(None, env(&[("WEBCARE_BRIDGE__COUNTRIES", "be,nl")])).unwrap();
    assert_eq!(c.bridge.countries, ["be", "nl"]);
    let file = write("[bridge]\ncountries = [\"be\"]\n");
    assert_eq!(Config::load(Some(file.path()), env(&[])).unwrap().bridge.countries, ["be"]);
    for bad in ["de", "nl,nl", "NL", "be,nl,fr"] {
        let errs = errors(None, &[("WEBCARE_BRIDGE__COUNTRIES", bad)]);
        assert!(errs.iter().any(|e| e.contains("`bridge.countries`") && e.contains("\"be\"")), "{bad}: {errs:?}");
    }
}
