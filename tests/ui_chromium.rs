//! The UI in real headless Chromium over the fake backend: every page renders, hostile
//! record values (the XSS corpus) stay inert text, and screenshots of the main pages land
//! in `target/test-output/ui-fake/`. The same checks against `demo` and the practice
//! tenant are in `tests/e2e_demo.rs`.

mod support;

use m365audit::ui::{self, AppState};
use std::sync::Arc;
use std::time::Duration;
use support::chromium::{Canary, Chromium, assert_no_payload_ran, output_dir, xss_payloads};
use support::fake::Fake;

/// Serves the router over a fake whose every record value is the whole XSS corpus.
async fn serve(evil: String) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let state = AppState::new(Arc::new(Fake { evil }));
    tokio::spawn(ui::serve_on(listener, state, async {
        let _ = rx.await;
    }));
    (format!("http://{addr}"), tx)
}

const PAGES: &[(&str, &str)] = &[
    ("dashboard", "/"),
    ("detection", "/detections/onedrive_exfiltration"),
    ("drill", "/detections/onedrive_exfiltration/records"),
    ("record", "/records/rec-1"),
    ("user", "/user?id=alice%40contoso.com"),
    ("ip", "/ip?addr=203.0.113.7"),
    ("search", "/search?q=strategic"),
    ("query", "/query?jq=.UserId"),
    ("status", "/status"),
    ("not_found", "/records/nope"),
    ("bad_request", "/search?q=x&from=never"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xss_corpus_stays_inert_in_chromium_on_every_page() {
    let Some(chrome) = Chromium::find() else {
        return;
    };
    let canary = Canary::start();
    let evil = xss_payloads(&canary).join(" ");
    let (base, _stop) = serve(evil).await;

    // Positive control: the browser does reach the canary when a page asks it to.
    let control = canary.url("/control-page");
    let c2 = control.clone();
    let chrome = Arc::new(chrome);
    let ch = chrome.clone();
    tokio::task::spawn_blocking(move || ch.dump_dom(&c2))
        .await
        .unwrap();
    assert!(
        canary.wait_for("/control-hit", Duration::from_secs(10)),
        "the canary never saw the control request: {:?}",
        canary.seen()
    );

    let out = output_dir("ui-fake");
    for (name, path) in PAGES {
        let url = format!("{base}{path}");
        let ch = chrome.clone();
        let shot = out.join(format!("{name}.png"));
        let dom = tokio::task::spawn_blocking(move || {
            let dom = ch.dump_dom(&url);
            ch.screenshot(&url, &shot);
            dom
        })
        .await
        .unwrap();
        assert!(
            dom.contains("m365audit"),
            "{name}: page did not render:\n{dom}"
        );
        // The payload is on the page as text, and no element came out of it.
        if !["not_found", "bad_request"].contains(name) {
            assert!(
                dom.contains("&lt;script&gt;fetch("),
                "{name}: payload not shown as text"
            );
        }
        assert_eq!(
            dom.matches("<script").count(),
            1,
            "{name}: an injected script element"
        );
        assert!(!dom.contains("<iframe"), "{name}: an injected frame");
        assert!(!dom.contains("id=\"xss\""), "{name}: an injected link");
        assert_no_payload_ran(&canary, name);
    }
    assert_no_payload_ran(&canary, "all pages");
}
