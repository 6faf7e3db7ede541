//! Shutdown on stdin EOF and on SIGTERM: running turns are interrupted (the
//! tool's processes killed, the rollout has the turn's `turn_aborted`), and
//! the server exits 0 within a second.

use nix::sys::signal::Signal;
use tiller_mock_model::Step;
use tiller_test_support::pid_alive;

use super::support::{EXIT_LIMIT, Fixture, positions, shell};
use crate::suite::support::{DEADLINE, lifecycle_events, read_pids_when_ready, rollout_lines};

/// How the test ends the server.
enum Stop {
    Eof,
    Sigterm,
}

async fn shutdown_interrupts_a_running_turn(stop: Stop) {
    let fixture = Fixture::new(vec![shell(
        "call_sleep",
        "echo $$ > pids; sleep 60 & echo $! >> pids; wait",
    )])
    .await;
    let (mut server, thread) = fixture.started().await;
    let turn = server.start_turn(&thread, "sleep", None).await;
    let pids = read_pids_when_ready(&fixture.scratch.work_file("pids"), 2, DEADLINE).await;

    let ended = match stop {
        Stop::Eof => server.close_within(EXIT_LIMIT).await,
        Stop::Sigterm => {
            server.signal(Signal::SIGTERM);
            server.wait_exit(EXIT_LIMIT).await
        }
    };
    ended.assert_success();
    assert!(ended.took < EXIT_LIMIT, "took {:?}", ended.took);
    let alive: Vec<i32> = pids.iter().copied().filter(|p| pid_alive(*p)).collect();
    assert!(alive.is_empty(), "the tool outlived the server: {alive:?}");

    let completed = positions(&ended.log, "turn/completed", &turn);
    assert_eq!(completed.len(), 1);
    assert_eq!(
        ended.log[completed[0]]["params"]["turn"]["status"],
        "interrupted"
    );
    let rollout = rollout_lines(&fixture.scratch.rollout_of(&thread));
    let events = lifecycle_events(&rollout);
    assert!(
        events.contains(&("turn_aborted".to_string(), turn.clone())),
        "no turn_aborted for {turn} in the rollout: {events:?}"
    );
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_eof_interrupts_running_turns_and_exits_0_within_a_second() {
    shutdown_interrupts_a_running_turn(Stop::Eof).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_interrupts_running_turns_and_exits_0_within_a_second() {
    shutdown_interrupts_a_running_turn(Stop::Sigterm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_server_exits_0_at_once_on_eof() {
    let fixture = Fixture::new(vec![Step::text("done")]).await;
    let (mut server, thread) = fixture.started().await;
    let turn = server.start_turn(&thread, "hello", None).await;
    server.wait_completed(&turn).await;
    let ended = server.close_within(EXIT_LIMIT).await;
    ended.assert_success();
    fixture.finish().await;
}
