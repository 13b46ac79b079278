//! `m365audit check --config FILE` against the real binary: the guide's broken template,
//! an unknown service and a non-numeric id exit 2 with a clear message; a valid file exits 0
//! and its summary never shows the secret.

use std::process::Command;

const GUIDE_BROKEN: &str = r#"{ "inputs": { "office365": { "credentials": { "client_id": "<CLIENT_ID>", "client_secret": "<CLIENT_SECRET>", "tenant_id": "<TENANT_ID>" }, "enabled": true, "id": "<UNIQUE ID>", "services": { "azure_active_directory": {} "general_audit": {}, "exchange": {}, "sharepoint": {}, "dlp": {} } } } }"#;
const SECRET: &str = "Zq8~known.secret-value_123";

fn filled() -> String {
    GUIDE_BROKEN
        .replace("{} \"general_audit\"", "{}, \"general_audit\"")
        .replace("<CLIENT_ID>", "0d5a1a0c-1111-2222-3333-444455556666")
        .replace("<CLIENT_SECRET>", SECRET)
        .replace("<TENANT_ID>", "4f1c2b7e-9a3d-4c8e-b2f6-7d1e0a9c5b31")
        .replace("<UNIQUE ID>", "12345")
}

/// Runs `check` on `text`; returns (exit code, stdout, stderr).
fn check(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m365audit.json");
    std::fs::write(&path, text).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_m365audit"))
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run m365audit");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn guide_broken_template_exits_2_with_line_column_and_fix() {
    let (code, _out, err) = check(GUIDE_BROKEN);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("line 1, column 222"), "{err}");
    assert!(err.contains("missing comma after line 1"), "{err}");
    assert!(err.contains("\"azure_active_directory\": {}"), "{err}");
}

#[test]
fn unknown_service_and_non_numeric_id_exit_2() {
    let (code, _, err) = check(&filled().replace("\"dlp\"", "\"yammer\""));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("unknown service \"yammer\"") && err.contains("general_audit"),
        "{err}"
    );
    let (code, _, err) = check(&filled().replace("\"12345\"", "\"abcde\""));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("inputs.office365.id"), "{err}");
    assert!(!err.contains(SECRET), "{err}");
}

#[test]
fn valid_config_exits_0_and_hides_the_secret() {
    let (code, out, err) = check(&filled());
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("12345") && out.contains("Audit.Exchange"),
        "{out}"
    );
    assert!(!out.contains(SECRET) && !err.contains(SECRET), "{out}{err}");
}

#[test]
fn missing_file_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_m365audit"))
        .args(["check", "--config", "/nonexistent/m365audit.json"])
        .output()
        .expect("run m365audit");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

/// The first 8-character fragment of `secret` that `text` contains, if any.
fn leaked_fragment(text: &str, secret: &str) -> Option<String> {
    let c: Vec<char> = secret.chars().collect();
    c.windows(8)
        .map(|w| w.iter().collect::<String>())
        .find(|f| text.contains(f.as_str()))
}

/// A secret pasted with typographic, single or no quotes breaks the JSON; neither `check`
/// nor `collect` shows 8 characters of it in the error's excerpt.
#[test]
fn a_secret_pasted_with_any_quotes_never_reaches_the_error() {
    const PASTED: &str = "ahM8Q~gLfySJTollIDSx.k2_Pq9vWz3Rb7mN4dE1";
    for paste in [
        format!("\u{201c}{PASTED}\u{201d}"),
        format!("\u{2018}{PASTED}\u{2019}"),
        format!("'{PASTED}'"),
        PASTED.to_string(),
    ] {
        let text = filled().replace(&format!("\"{SECRET}\""), &paste);
        let (code, out, err) = check(&text);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("invalid JSON"), "{err}");
        assert_eq!(
            leaked_fragment(&format!("{out}{err}"), PASTED),
            None,
            "{err}"
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m365audit.json");
        std::fs::write(&path, &text).expect("write config");
        let out = Command::new(env!("CARGO_BIN_EXE_m365audit"))
            .arg("collect")
            .arg("--once")
            .arg("--config")
            .arg(&path)
            .arg("--data")
            .arg(dir.path().join("data"))
            .output()
            .expect("run m365audit");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(2), "{all}");
        assert!(all.contains("invalid JSON"), "{all}");
        assert_eq!(leaked_fragment(&all, PASTED), None, "{all}");
    }
}
