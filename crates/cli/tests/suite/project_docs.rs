//! Project instructions through the real `tiller exec`: the `AGENTS.md`
//! files of `$TILLER_HOME`, the repository's root and the folders down to the
//! working folder reach the model first, in that order, with their paths;
//! `-v` says which were loaded; `instructions` in the config replaces the
//! base prompt; a cap cuts what is too long, with a warning.

use tiller_mock_model::{MockModel, Script, Step};

use super::support::{Scratch, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_md_files_reach_the_model_first_in_order_and_exec_v_names_them() {
    let scratch = Scratch::new();
    let mock = MockModel::start(Script::new(vec![Step::text("ok"), Step::text("ok")]))
        .await
        .unwrap();
    // Top-level keys first: what follows the provider's table is in it.
    let provider = tiller_test_support::mock_provider_config(&mock.base_url(), "");
    scratch.config(&format!(
        "instructions = \"You are a careful test agent.\"\n{provider}"
    ));
    let repo = scratch.work();
    std::fs::create_dir(repo.join(".git")).unwrap();
    let sub = repo.join("crates").join("core");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(scratch.home().join("AGENTS.md"), "HOME-RULE: be brief").unwrap();
    std::fs::write(repo.join("AGENTS.md"), "ROOT-RULE: run cargo test").unwrap();
    std::fs::write(sub.join("AGENTS.md"), "SUB-RULE: no unsafe").unwrap();
    let done =
        run(&mut scratch.tiller(&["exec", "-v", "--cd", sub.to_str().unwrap(), "hello"])).await;
    done.assert_exit(0);
    let named: Vec<&str> = done
        .stderr
        .lines()
        .filter_map(|l| l.split("project instructions: ").nth(1))
        .collect();
    let expected = [
        scratch.home().join("AGENTS.md"),
        repo.join("AGENTS.md"),
        sub.join("AGENTS.md"),
    ];
    let expected: Vec<String> = expected.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(named, expected, "{}", done.stderr);

    let requests = mock.requests();
    let body = &requests[0].body;
    assert_eq!(body["instructions"], "You are a careful test agent.");
    let first = body["input"][0]["content"][0]["text"].as_str().unwrap();
    let at = |text: &str| {
        first
            .find(text)
            .unwrap_or_else(|| panic!("{text} not in {first}"))
    };
    assert!(at("HOME-RULE") < at("ROOT-RULE") && at("ROOT-RULE") < at("SUB-RULE"));
    assert!(
        first.contains(&format!("instructions for {}", sub.display())),
        "{first}"
    );
    let prompt = body["input"][1]["content"][0]["text"].as_str().unwrap();
    assert_eq!(prompt, "hello");

    // A cap: the second file is cut, the third left out, each with a warning.
    scratch.config(&format!("project_doc_max_bytes = 24\n{provider}"));
    let done = run(&mut scratch.tiller(&["exec", "--cd", sub.to_str().unwrap(), "again"])).await;
    done.assert_exit(0);
    assert!(
        done.stderr.contains("was cut at project_doc_max_bytes"),
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains("is not sent"), "{}", done.stderr);
    let requests = mock.requests();
    let first = requests[1].body["input"][0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(first.contains("HOME-RULE"), "{first}");
    assert!(!first.contains("SUB-RULE"), "{first}");
    assert!(!first.contains("cargo test"), "{first}");
}
