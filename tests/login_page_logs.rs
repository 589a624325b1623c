//! The login page logs refused requests in aggregate (issue 12, item 14). Alone in its test
//! binary: the captured subscriber is per thread, and tests running beside it in the same
//! process would change what `tracing` caches about its call sites.

use st2bot_testkit::sessions as harness;

use harness::{LogBuffer, Page, sim, specs};
use st2bot::runtime::stackstorm::St2Client;
use st2bot_testkit::{TempDir, free_port};

/// A flood of refused requests leaves one log line at once; the count comes later, once a
/// minute (the old page logged a WARN per refused request).
#[tokio::test]
async fn refusals_are_logged_in_aggregate() {
    let logs = LogBuffer::default();
    let _guard = logs.capture();
    let sim = sim().await;
    let dir = TempDir::new("refusal-logs");
    let (st2_spec, auth) = specs(&sim, dir.path(), free_port(), "http");
    let page = Page::start(&auth, St2Client::new(&st2_spec).unwrap(), None).await;
    let addr = &auth.listen;
    let url = format!("http://{addr}/login?id=00");
    let mut refused = 0;
    for _ in 0..300 {
        let response = page.http.get(&url).send().await.unwrap();
        refused += usize::from(response.status().as_u16() == 429);
    }
    assert!(refused >= 250, "{refused}");
    let text = logs.text();
    let warnings = text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("login page: refus"))
        .count();
    assert_eq!(warnings, 1, "{text}");
    assert!(text.contains("further refusals are counted"), "{text}");
}
