//! `--oss`: run against whichever local model server is up.
//!
//! Which one is up only the network can say, so it is asked at start: each
//! candidate's `GET {base_url}/models`, all at once, each within
//! [`PROBE_DEADLINE`]. A local server answers that in milliseconds and a
//! port nobody listens on refuses at once, so the deadline is only ever
//! spent on something that accepted and then hung. The answer says more
//! than "up": a local server serves only the models pulled into it, so
//! without `-m` the model is one it lists rather than a default it lacks.
//!
//! The candidates are the provider `oss_provider` names, then the built-in
//! [`OSS_PROVIDERS`], at their URLs as configured: `-c
//! model_providers.ollama.base_url=…` moves where Ollama is looked for.
//! The choice goes back through the ordinary options (`--provider`, `-m`),
//! so the run itself knows nothing of `--oss`.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use tiller_core::client::models::{ModelInfo, list_models};
use tiller_core::config::{
    Config, ConfigOverrides, OSS_PROVIDERS, ProviderConfig, default_tiller_home, parse_cli_override,
};

/// How long a candidate may take to list its models.
const PROBE_DEADLINE: Duration = Duration::from_millis(1500);

/// What the run asked for, as typed on the command line.
pub struct OssRequest<'a> {
    /// The `-c key=value` overrides: they may move a server's URL.
    pub config: &'a [String],
    /// The `-m` model, if one was given: used whatever the server lists.
    pub model: Option<&'a str>,
    /// The `--cd` folder, if given (the config is read as the run will read it).
    pub cwd: Option<&'a Path>,
}

/// The local server chosen and the model to ask it for.
#[derive(Debug)]
pub struct OssChoice {
    /// The provider id, for `--provider`.
    pub provider: String,
    /// The model, for `-m`.
    pub model: String,
}

/// Probes the local servers and picks one (see the module docs), saying
/// on stderr which. The model is `-m` if given, else the configured
/// `model` when the server lists it, else the first model it lists. Fails
/// naming every server tried when none can serve.
pub async fn choose(request: OssRequest<'_>) -> anyhow::Result<OssChoice> {
    let cli_overrides = request
        .config
        .iter()
        .map(|pair| parse_cli_override(pair))
        .collect::<Result<Vec<_>, _>>()?;
    // A built-in provider chosen, so a `model_provider` that --oss replaces
    // cannot fail the read.
    let overrides = ConfigOverrides {
        provider: Some(OSS_PROVIDERS[0].to_owned()),
        cwd: request.cwd.map(Path::to_owned),
        cli_overrides,
        ..ConfigOverrides::default()
    };
    let loaded = Config::load(&default_tiller_home()?, overrides)?;
    let candidates: Vec<ProviderConfig> = candidate_ids(loaded.config.oss_provider.as_deref())
        .into_iter()
        .filter_map(|id| loaded.providers.get(id).cloned())
        .collect();

    // Every probe at once: the slowest, not the sum, bounds the wait.
    let probes: Vec<_> = candidates
        .iter()
        .map(|provider| tokio::spawn(probe(provider.clone())))
        .collect();
    let mut tried = Vec::new();
    for (provider, probe) in candidates.into_iter().zip(probes) {
        let answer = probe
            .await
            .unwrap_or_else(|e| Err(format!("the probe failed: {e}")));
        match pick_model(answer, request.model, &loaded.config.model) {
            Ok(model) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "--oss: using {} at {}, model {model}",
                    provider.id,
                    provider.base_url
                );
                return Ok(OssChoice {
                    provider: provider.id,
                    model,
                });
            }
            Err(why) => tried.push(format!("  {} at {}: {why}", provider.id, provider.base_url)),
        }
    }
    anyhow::bail!(
        "--oss found no local model server to use:\n{}\n\
         Start one (e.g. `ollama serve`), or say where yours listens, e.g. \
         -c model_providers.ollama.base_url=http://HOST:11434/v1",
        tried.join("\n")
    )
}

/// The ids to probe, in the order they are preferred: `oss_provider`
/// first, then the built-in local servers.
fn candidate_ids(preferred: Option<&str>) -> Vec<&str> {
    let mut ids: Vec<&str> = preferred.into_iter().collect();
    ids.extend(OSS_PROVIDERS.iter().filter(|id| Some(**id) != preferred));
    ids
}

/// The models `provider` lists, or why it did not say within [`PROBE_DEADLINE`].
async fn probe(provider: ProviderConfig) -> Result<Vec<ModelInfo>, String> {
    // The built-in servers name no key; a provider of the file may.
    let api_key = provider.api_key().map_err(|e| e.to_string())?;
    match tokio::time::timeout(PROBE_DEADLINE, list_models(&provider, api_key)).await {
        Ok(Ok(models)) => Ok(models),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer within {:.1} s",
            PROBE_DEADLINE.as_secs_f64()
        )),
    }
}

/// The model to use on a server that gave `answer`: `flag` (`-m`) if
/// given; else `configured` if the server lists it; else the first it lists.
fn pick_model(
    answer: Result<Vec<ModelInfo>, String>,
    flag: Option<&str>,
    configured: &str,
) -> Result<String, String> {
    let models = answer?;
    if let Some(model) = flag {
        return Ok(model.to_owned());
    }

    if models.iter().any(|m| m.id == configured) {
        return Ok(configured.to_owned());
    }
    models
        .into_iter()
        .next()
        .map(|m| m.id)
        .ok_or_else(|| "it lists no models: load or pull one, or name one with -m".to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn listed(ids: &[&str]) -> Result<Vec<ModelInfo>, String> {
        Ok(ids
            .iter()
            .map(|id| ModelInfo {
                id: (*id).to_owned(),
                context_window: None,
            })
            .collect())
    }

    #[test]
    fn oss_provider_is_probed_first_and_only_once() {
        assert_eq!(candidate_ids(None), ["ollama", "lmstudio", "vllm"]);
        assert_eq!(candidate_ids(Some("vllm")), ["vllm", "ollama", "lmstudio"]);
        assert_eq!(
            candidate_ids(Some("mine")),
            ["mine", "ollama", "lmstudio", "vllm"]
        );
    }

    #[test]
    fn the_model_is_the_flag_then_the_configured_one_if_served_then_the_first_listed() {
        assert_eq!(
            pick_model(listed(&["a", "b"]), Some("c"), "b").unwrap(),
            "c"
        );
        assert_eq!(pick_model(listed(&["a", "b"]), None, "b").unwrap(), "b");
        assert_eq!(
            pick_model(listed(&["a", "b"]), None, "gpt-5-codex").unwrap(),
            "a"
        );
        assert_eq!(pick_model(listed(&[]), Some("c"), "b").unwrap(), "c");
        assert!(
            pick_model(listed(&[]), None, "b")
                .unwrap_err()
                .contains("lists no models")
        );
        assert_eq!(
            pick_model(Err("refused".to_owned()), Some("c"), "b").unwrap_err(),
            "refused"
        );
    }
}
