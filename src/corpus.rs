//! A deterministic corpus of records shaped like the Management API's, for the `bench`
//! stages and for tests that need many plausible records. Pure data generation: no I/O,
//! imports nothing from the crate.

/// Deterministic records shaped like the Management API's (docs/management-api.md, Record quirks).
pub fn synthetic_records(n: u64, seed: u64) -> Vec<String> {
    synthetic_iter(n, seed).collect()
}

/// [`synthetic_records`] one at a time (a file of a million of them is written without
/// holding them).
pub fn synthetic_iter(n: u64, seed: u64) -> impl Iterator<Item = String> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let users: Vec<String> = (0..500)
        .map(|i| format!("user{i}@contoso.onmicrosoft.com"))
        .collect();
    let ops = [
        ("AzureActiveDirectory", "UserLoggedIn", 15),
        ("AzureActiveDirectory", "UserLoginFailed", 15),
        ("SharePoint", "FileAccessed", 6),
        ("OneDrive", "FileDownloaded", 6),
        ("Exchange", "MailItemsAccessed", 50),
        ("Exchange", "Send", 2),
        ("MicrosoftTeams", "MessageSent", 25),
    ];
    (0..n)
        .map(move |i| {
            let (wl, op, rt) = ops[rng.random_range(0..ops.len())];
            let user = &users[rng.random_range(0..users.len())];
            let id = uuid::Uuid::from_u128(rng.random());
            let ip = format!("{}.{}.{}.{}", rng.random_range(1..224), rng.random::<u8>(), rng.random::<u8>(), rng.random::<u8>());
            let doc = format!("Strategic_Roadmap_FY{}_{}.docx", rng.random_range(20..30), rng.random_range(0..5000));
            serde_json::json!({
                "CreationTime": format!("2026-11-{:02}T{:02}:{:02}:{:02}", 19 + i % 7, rng.random_range(0..24), rng.random_range(0..60), rng.random_range(0..60)),
                "Id": id.to_string(),
                "Operation": op,
                "OrganizationId": "0b6a3c52-1b7e-4a5e-9f0e-1f2f3a4b5c6d",
                "RecordType": rt,
                "ResultStatus": "Succeeded",
                "UserKey": format!("1003{:012X}", rng.random::<u64>() >> 16),
                "UserType": 0,
                "Version": 1,
                "Workload": wl,
                "ClientIP": ip,
                "ObjectId": format!("https://contoso.sharepoint.com/sites/team{}/Shared Documents/{doc}", rng.random_range(0..40)),
                "UserId": user,
                "AzureActiveDirectoryEventType": 1,
                "ExtendedProperties": [
                    {"Name": "UserAgent", "Value": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"},
                    {"Name": "RequestType", "Value": "OAuth2:Authorize"},
                    {"Name": "ResultStatusDetail", "Value": "Redirect"}
                ],
                "DeviceProperties": [
                    {"Name": "OS", "Value": "Windows 10"},
                    {"Name": "BrowserType", "Value": "Chrome"},
                    {"Name": "SessionId", "Value": uuid::Uuid::from_u128(rng.random()).to_string()}
                ],
                "Actor": [
                    {"ID": uuid::Uuid::from_u128(rng.random()).to_string(), "Type": 0},
                    {"ID": user, "Type": 5}
                ],
                "ActorContextId": "0b6a3c52-1b7e-4a5e-9f0e-1f2f3a4b5c6d",
                "ActorIpAddress": "",
                "InterSystemsId": uuid::Uuid::from_u128(rng.random()).to_string(),
                "IntraSystemId": uuid::Uuid::from_u128(rng.random()).to_string(),
                "Target": [{"ID": "00000003-0000-0ff1-ce00-000000000000", "Type": 0}],
                "TargetContextId": "0b6a3c52-1b7e-4a5e-9f0e-1f2f3a4b5c6d",
                "ApplicationId": "89bee1f7-5e6e-4d8a-9f3d-ecd601259da7",
                "ErrorNumber": if op == "UserLoginFailed" { "50126" } else { "0" }
            })
            .to_string()
        })
}
