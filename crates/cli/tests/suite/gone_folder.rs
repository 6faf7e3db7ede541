//! A saved session whose folder has been deleted: every front end resumes it
//! in another folder and says so (the session builder decides, once).

use serde_json::json;

use super::app_server::support::Fixture;
use super::support::{run, text_step, thread_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_folder_is_gone_resumes_elsewhere_with_a_warning() {
    let fixture = Fixture::new(Vec::new()).await;
    let scratch = &fixture.scratch;
    let gone = scratch.work().join("project");
    std::fs::create_dir(&gone).unwrap();
    let script = scratch.script(json!([text_step("first"), text_step("again from exec"),]));
    let first = run(&mut scratch.tiller(&[
        "exec",
        "--json",
        "--cd",
        gone.to_str().unwrap(),
        "--script",
        script.to_str().unwrap(),
        "start here",
    ]))
    .await;
    first.assert_exit(0);
    let id = thread_id(&first.json());
    std::fs::remove_dir(&gone).unwrap();
    let warning = format!("the session's folder {} is gone", gone.display());

    // exec: on stderr, and the turn runs.
    let resumed = run(&mut scratch.tiller(&[
        "exec",
        "--json",
        "--script",
        script.to_str().unwrap(),
        "resume",
        &id,
        "go on",
    ]))
    .await;
    resumed.assert_exit(0);
    assert!(
        resumed.stderr.contains(&warning),
        "exec did not warn: {}",
        resumed.stderr
    );

    // app-server: a `warning` notification about the thread, after the
    // response, and the thread works in another folder.
    let mut server = fixture.spawn();
    server.initialize().await;
    let response = server.call("thread/resume", json!({"threadId": id})).await;
    assert_ne!(response["cwd"], gone.to_str().unwrap(), "{response:#}");
    let thread = id.clone();
    let at = server
        .wait_for("the warning", move |l| {
            l["method"] == "warning" && l["params"]["threadId"] == thread.as_str()
        })
        .await;
    let message = server.log[at]["params"]["message"].as_str().unwrap();
    assert!(message.contains(&warning), "{message}");
    server.close().await.assert_success();
    fixture.finish().await;
}
