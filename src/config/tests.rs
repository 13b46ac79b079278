//! Parsing, validation, error messages and the summary, from config text.

use super::*;

/// The guide's template verbatim (000_06875b0c9cd36591.txt, "Run It"), comma missing.
const GUIDE_BROKEN: &str = r#"{ "inputs": { "office365": { "credentials": { "client_id": "<CLIENT_ID>", "client_secret": "<CLIENT_SECRET>", "tenant_id": "<TENANT_ID>" }, "enabled": true, "id": "<UNIQUE ID>", "services": { "azure_active_directory": {} "general_audit": {}, "exchange": {}, "sharepoint": {}, "dlp": {} } } } }"#;
const TENANT: &str = "4f1c2b7e-9a3d-4c8e-b2f6-7d1e0a9c5b31";
const SECRET: &str = "s3cr3t~Value.with-chars_XYZ";

fn filled() -> String {
    GUIDE_BROKEN
        .replace("{} \"general_audit\"", "{}, \"general_audit\"")
        .replace("<CLIENT_ID>", "0d5a1a0c-1111-2222-3333-444455556666")
        .replace("<CLIENT_SECRET>", SECRET)
        .replace("<TENANT_ID>", TENANT)
        .replace("<UNIQUE ID>", "12345")
}

fn err_of(text: &str) -> String {
    let e = parse(text, "t.json").expect_err("should fail");
    assert!(
        e.chain().any(|c| c.is::<UsageError>()),
        "not a UsageError: {e:#}"
    );
    format!("{e:#}")
}

#[test]
fn guide_template_broken_names_line_column_and_fix() {
    let msg = err_of(GUIDE_BROKEN);
    assert!(msg.contains("line 1, column"), "{msg}");
    assert!(msg.contains("missing comma after line 1"), "{msg}");
    assert!(
        msg.contains("after `\"azure_active_directory\": {}`"),
        "{msg}"
    );
    // the caret sits under the token that follows the missing comma
    let col: usize = msg
        .split("column ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .and_then(|s| s.parse().ok())
        .expect("column");
    let at = GUIDE_BROKEN.find("\"general_audit\"").expect("key") + 1;
    assert_eq!(col, at, "{msg}");
}

#[test]
fn broken_multiline_template_points_at_the_previous_line() {
    let pretty = "{ \"inputs\": { \"office365\": {\n  \"services\": {\n    \"azure_active_directory\": {}\n    \"general_audit\": {}\n  } } } }\n";
    let msg = err_of(pretty);
    assert!(msg.contains("line 4, column 5"), "{msg}");
    assert!(msg.contains("missing comma after line 3"), "{msg}");
}

#[test]
fn guide_template_fixed_but_unfilled_names_each_placeholder() {
    let fixed = GUIDE_BROKEN.replace("{} \"general_audit\"", "{}, \"general_audit\"");
    let msg = err_of(&fixed);
    for key in [
        "client_id",
        "client_secret",
        "tenant_id",
        "inputs.office365.id",
    ] {
        assert!(msg.contains(key), "{key} missing from: {msg}");
    }
    assert!(msg.contains("placeholder"), "{msg}");
}

#[test]
fn guide_template_fixed_and_filled_parses() {
    let cfg = parse(&filled(), "t.json").expect("valid");
    let o = &cfg.office365;
    assert_eq!(o.collector_id, "12345");
    assert!(o.enabled);
    assert_eq!(o.tenant_id, TENANT);
    assert_eq!(o.client_secret.expose(), SECRET);
    assert_eq!(o.content_types, ContentType::ALL.to_vec());
    assert_eq!(o.cloud, Cloud::Commercial);
    assert_eq!(o.login_url, "https://login.microsoftonline.com");
    assert_eq!(o.api_url, "https://manage.office.com");
    assert_eq!(o.resource, "https://manage.office.com");
    assert_eq!(o.auth_version, AuthVersion::V2);
    assert_eq!(o.publisher_identifier, TENANT);
    assert_eq!(o.backfill_hours, 168);
    assert_eq!(cfg.ui.listen.to_string(), "127.0.0.1:8365");
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    assert!(cfg.summary().contains("12345"));
}

#[test]
fn secret_never_in_debug_display_summary_or_errors() {
    let cfg = parse(&filled(), "t.json").expect("valid");
    assert!(!format!("{cfg:?}").contains(SECRET));
    assert!(!cfg.summary().contains(SECRET));
    assert_eq!(format!("{}", cfg.office365.client_secret), "<redacted>");
    // an error elsewhere in a file that holds the secret does not echo it
    let bad = filled().replace("\"12345\"", "\"abc\"");
    assert!(!err_of(&bad).contains(SECRET));
    let bad = filled().replace(SECRET, &format!("{SECRET}\" \"x"));
    assert!(!err_of(&bad).contains(SECRET));
}

#[test]
fn unknown_service_names_the_valid_ones() {
    let msg = err_of(&filled().replace("\"dlp\"", "\"teams\""));
    assert!(msg.contains("unknown service \"teams\""), "{msg}");
    for s in [
        "azure_active_directory",
        "general_audit",
        "exchange",
        "sharepoint",
        "dlp",
    ] {
        assert!(msg.contains(s), "{msg}");
    }
}

#[test]
fn non_numeric_id_is_an_error_and_odd_length_a_warning() {
    let msg = err_of(&filled().replace("\"12345\"", "\"collector-a\""));
    assert!(msg.contains("inputs.office365.id"), "{msg}");
    assert!(msg.contains("five digits"), "{msg}");
    let cfg = parse(&filled().replace("\"12345\"", "123"), "t").expect("numeric ok");
    assert_eq!(cfg.office365.collector_id, "123");
    assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
}

#[test]
fn tenant_must_be_a_guid() {
    let msg = err_of(&filled().replace(TENANT, "contoso.onmicrosoft.com"));
    assert!(msg.contains("tenant_id must be the tenant's GUID"), "{msg}");
}

fn with_ext(ext: &str) -> String {
    filled().replace("\"enabled\": true,", &format!("\"enabled\": true, {ext},"))
}

#[test]
fn extensions_parse_and_sovereign_clouds_resolve() {
    let cfg = parse(
            &with_ext(
                r#""cloud": "gcc_high", "backfill_hours": 24, "poll_interval_secs": 30, "overlap_secs": 600,
                "max_concurrency": 4, "requests_per_minute": 500, "auth_version": "v1",
                "client_secret_expires": "2099-01-31""#,
            ),
            "t",
        )
        .expect("valid");
    let o = &cfg.office365;
    assert_eq!(o.cloud, Cloud::GccHigh);
    assert_eq!(o.login_url, "https://login.microsoftonline.us");
    assert_eq!(o.api_url, "https://manage.office365.us");
    assert_eq!(o.resource, "https://manage.office365.us");
    assert_eq!(o.auth_version, AuthVersion::V1);
    assert_eq!(
        (o.backfill_hours, o.poll_interval_secs, o.overlap_secs),
        (24, 30, 600)
    );
    assert_eq!((o.max_concurrency, o.requests_per_minute), (4, 500));
    assert!(o.days_until_secret_expires(Utc::now()).unwrap_or(0) > 1000);

    for (cloud, api) in [
        ("commercial", "https://manage.office.com"),
        ("gcc", "https://manage-gcc.office.com"),
        ("dod", "https://manage.protection.apps.mil"),
    ] {
        let c = parse(&with_ext(&format!("\"cloud\": \"{cloud}\"")), "t").expect("cloud");
        assert_eq!(c.office365.api_url, api);
    }
}

#[test]
fn url_overrides_keep_the_cloud_resource_and_refuse_cleartext_to_remote_hosts() {
    let cfg = parse(
        &with_ext(r#""login_url": "http://127.0.0.1:9001/", "api_url": "http://127.0.0.1:9002""#),
        "t",
    )
    .expect("valid");
    assert_eq!(cfg.office365.login_url, "http://127.0.0.1:9001");
    assert_eq!(cfg.office365.api_url, "http://127.0.0.1:9002");
    assert_eq!(cfg.office365.resource, "https://manage.office.com");
    let msg = err_of(&with_ext(r#""api_url": "http://example.com""#));
    assert!(
        msg.contains("plain http is only allowed for a loopback host"),
        "{msg}"
    );
    let msg = err_of(&with_ext(r#""api_url": "not a url""#));
    assert!(msg.contains("api_url: not a URL"), "{msg}");
}

#[test]
fn extension_limits_are_enforced() {
    let msg = err_of(&with_ext(r#""backfill_hours": 200"#));
    assert!(
        msg.contains("backfill_hours must be a whole number from 1 to 168"),
        "{msg}"
    );
    let msg = err_of(&with_ext(r#""max_concurrency": 0"#));
    assert!(msg.contains("max_concurrency"), "{msg}");
    let msg = err_of(&with_ext(r#""cloud": "china""#));
    assert!(
        msg.contains("unknown cloud") && msg.contains("gcc_high"),
        "{msg}"
    );
    let msg = err_of(&with_ext(r#""backfil_hours": 2"#));
    assert!(msg.contains("unknown key \"backfil_hours\""), "{msg}");
    let msg = err_of(&with_ext(r#""auth_version": "v3""#));
    assert!(msg.contains("auth_version"), "{msg}");
}

#[test]
fn several_problems_are_reported_together() {
    let text = filled()
        .replace("\"12345\"", "\"abc\"")
        .replace("\"dlp\"", "\"teams\"");
    let msg = err_of(&text);
    assert!(msg.contains("2 problems"), "{msg}");
}

#[test]
fn secrets_from_env_and_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("secret.txt"), "from-file-secret\n").expect("write");
    let text = filled().replace(&format!("\"{SECRET}\""), "{\"file\": \"secret.txt\"}");
    let path = dir.path().join("c.json");
    std::fs::write(&path, &text).expect("write");
    let cfg = load(&path).expect("file secret");
    assert_eq!(cfg.office365.client_secret.expose(), "from-file-secret");

    let text = filled().replace(
        &format!("\"{SECRET}\""),
        "{\"env\": \"M365AUDIT_TEST_SURELY_UNSET_VAR\"}",
    );
    let msg = err_of(&text);
    assert!(
        msg.contains("environment variable M365AUDIT_TEST_SURELY_UNSET_VAR is not set"),
        "{msg}"
    );
    let text = filled().replace(&format!("\"{SECRET}\""), "{\"file\": \"/nonexistent/x\"}");
    assert!(err_of(&text).contains("cannot read secret file"));
    let text = filled().replace(&format!("\"{SECRET}\""), "42");
    assert!(err_of(&text).contains("{\"env\": \"VAR\"}"));
}

#[test]
fn ui_and_outputs_are_parsed_and_kept() {
    let text = filled().replacen(
            "{ \"inputs\"",
            r#"{ "ui": {"listen": "127.0.0.1:9999", "token": "ui-token-value"},
                 "outputs": {"devo": {"mode": "http", "endpoint": "https://http-eu.devo.io", "domain": "acme", "token": "devo-key-value"}},
                 "inputs""#,
            1,
        );
    let cfg = parse(&text, "t").expect("valid");
    assert_eq!(cfg.ui.listen.to_string(), "127.0.0.1:9999");
    assert_eq!(
        cfg.ui.token.as_ref().map(Secret::expose),
        Some("ui-token-value")
    );
    let devo = cfg.outputs.devo.as_ref().expect("devo kept");
    assert!(devo.describe().starts_with("http https://http-eu.devo.io"));
    let dbg = format!("{cfg:?}");
    assert!(
        !dbg.contains("ui-token-value") && !dbg.contains("devo-key-value"),
        "{dbg}"
    );
    let msg = err_of(&text.replace("127.0.0.1:9999", "nowhere"));
    assert!(msg.contains("ui.listen"), "{msg}");
}

#[test]
fn a_byte_order_mark_and_crlf_are_accepted() {
    let text = format!("\u{feff}{}", filled().replace(", ", ",\r\n"));
    assert!(parse(&text, "t").is_ok());
    let msg = err_of("");
    assert!(msg.contains("line 1"), "{msg}");
}

#[test]
fn unreadable_file_is_a_usage_error() {
    let e = load(Path::new("/nonexistent/m365audit.json")).expect_err("fails");
    assert!(e.chain().any(|c| c.is::<UsageError>()));
    assert!(format!("{e:#}").contains("cannot read"));
}

#[test]
fn trailing_comma_and_unquoted_placeholder_get_hints() {
    let msg = err_of(r#"{"inputs": {"office365": {"services": {"dlp": {},}}}}"#);
    assert!(
        msg.contains("trailing comma") || msg.contains("likely fix"),
        "{msg}"
    );
    let msg = err_of(r#"{"inputs": {"office365": {"id": <UNIQUE ID>}}}"#);
    assert!(msg.contains("inside double quotes"), "{msg}");
}

#[test]
fn token_auth_and_max_window_secs_parse_with_defaults_and_limits() {
    let o = parse(&filled(), "t").expect("valid").office365;
    assert_eq!((o.token_auth, o.max_window_secs), (TokenAuth::Post, 86_400));
    let o = parse(
        &with_ext(r#""token_auth": "basic", "max_window_secs": 3600"#),
        "t",
    )
    .expect("valid")
    .office365;
    assert_eq!((o.token_auth, o.max_window_secs), (TokenAuth::Basic, 3600));
    let msg = err_of(&with_ext(r#""token_auth": "header""#));
    assert!(msg.contains("token_auth must be \"post\""), "{msg}");
    let msg = err_of(&with_ext(r#""max_window_secs": 90000"#));
    assert!(
        msg.contains("max_window_secs must be a whole number from 60 to 86400"),
        "{msg}"
    );
}

/// The first 8-character fragment of `secret` that `text` contains, if any.
fn leaked_fragment(text: &str, secret: &str) -> Option<String> {
    let c: Vec<char> = secret.chars().collect();
    c.windows(8)
        .map(|w| w.iter().collect::<String>())
        .find(|f| text.contains(f.as_str()))
}

/// Every way a hurried operator pastes a secret that breaks the JSON: typographic,
/// single or no quotes, on one line or pretty-printed, as client secret, UI token or a
/// Devo key; the excerpt of the syntax error shows no 8 characters of it.
#[test]
fn a_secret_pasted_with_any_quotes_is_masked_in_the_error_excerpt() {
    const S: &str = "ahM8Q~gLfySJTollIDSx.k2_Pq9vWz3Rb7mN4dE1";
    let pastes = [
        format!("\u{201c}{S}\u{201d}"),
        format!("\u{2018}{S}\u{2019}"),
        format!("'{S}'"),
        S.to_string(),
        format!("\u{201c}{S}"),
        format!("`{S}`"),
    ];
    for paste in &pastes {
        let one_line = filled().replace(&format!("\"{SECRET}\""), paste);
        let pretty =
            serde_json::to_string_pretty(&serde_json::from_str::<Value>(&filled()).expect("valid"))
                .expect("pretty")
                .replace(&format!("\"{SECRET}\""), paste);
        let token = filled().replacen('{', &format!("{{ \"ui\": {{ \"token\": {paste} }}, "), 1);
        let devo = filled().replacen(
            '{',
            &format!(
                "{{ \"outputs\": {{ \"devo\": {{ \"key\": {paste}, \"address\": \"x\" }} }},\n "
            ),
            1,
        );
        let unquoted_key = pretty.replace("\"client_secret\"", "client_secret");
        for text in [&one_line, &pretty, &token, &devo, &unquoted_key] {
            let err = err_of(text);
            assert!(err.contains("invalid JSON"), "{err}");
            assert_eq!(leaked_fragment(&err, S), None, "{err}");
        }
    }
}

/// Property: whatever a secret looks like (the characters of Azure client secrets and
/// tokens) and however it is pasted (typographic, single, back or no quotes; one-line or
/// pretty config; client secret, UI token or Devo key), the JSON error shows no 8
/// characters of it. `PROPTEST_CASES` sets the number of cases.
mod proptest_masking {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn no_secret_fragment_in_any_json_error(
            secret in "[A-Za-z0-9~._!#$%&*+/=?^|-]{12,48}",
            open in prop::sample::select(vec!["", "\u{201c}", "\u{2018}", "'", "`", "\u{201e}"]),
            close in prop::sample::select(vec!["", "\u{201d}", "\u{2019}", "'", "`", "\""]),
            place in 0..3usize,
            pretty in any::<bool>(),
        ) {
            let paste = format!("{open}{secret}{close}");
            let base = filled();
            let base = if pretty {
                serde_json::to_string_pretty(&serde_json::from_str::<Value>(&base).unwrap()).unwrap()
            } else {
                base
            };
            let text = match place {
                0 => base.replace(&format!("\"{SECRET}\""), &paste),
                1 => base.replacen('{', &format!("{{ \"ui\": {{ \"token\": {paste} }},\n"), 1),
                _ => base.replacen(
                    '{',
                    &format!("{{ \"outputs\": {{ \"devo\": {{ \"key\": {paste}, \"address\": \"x\" }} }}, "),
                    1,
                ),
            };
            if let Err(e) = parse(&text, "t.json") {
                let err = format!("{e:#}");
                prop_assert_eq!(leaked_fragment(&err, &secret), None, "{}", err);
            }
        }
    }
}
