//! `model/list`: the models the configured provider lists
//! (`GET {base_url}/models`), the configured model first among them; when
//! the provider has no list (or cannot be reached), the configured model
//! alone. Each in Codex's `Model` shape, with what tiller knows of it.

use serde_json::{Value, json};
use tiller_app_server_protocol::{ErrorCode, JsonRpcError, ModelListParams};
use tiller_core::client::models::list_models;
use tiller_core::config::{Config, ConfigOverrides};

use crate::hub::AppServerOptions;
use crate::pages::page;

/// The reasoning efforts offered for every model (what the Responses API
/// takes; the model may refuse some).
const EFFORTS: [(&str, &str); 3] = [
    ("low", "Fast answers, light reasoning"),
    ("medium", "Balanced reasoning"),
    ("high", "Deep reasoning for hard problems"),
];

/// The answer to `model/list` with `params`.
pub(crate) async fn list(
    options: &AppServerOptions,
    params: ModelListParams,
) -> Result<Value, JsonRpcError> {
    let home = options.tiller_home.clone();
    let overrides = ConfigOverrides {
        provider: params.model_provider.clone(),
        cli_overrides: options.cli_overrides.clone(),
        ..ConfigOverrides::default()
    };
    let internal = |message: String| JsonRpcError::new(ErrorCode::InternalError, message);
    let config = tokio::task::spawn_blocking(move || Config::load(&home, overrides))
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(|e| internal(e.to_string()))?
        .config;
    let api_key = config
        .provider
        .api_key()
        .map_err(|e| internal(e.to_string()))?;
    let mut ids = match list_models(&config.provider, api_key).await {
        Ok(models) => models.into_iter().map(|m| m.id).collect::<Vec<_>>(),
        Err(e) => {
            tracing::warn!(
                provider = %config.provider.id,
                "the provider lists no models ({e}); model/list shows the configured one"
            );
            Vec::new()
        }
    };
    ids.retain(|id| *id != config.model);
    ids.insert(0, config.model.clone());
    let limit = params.limit.map_or(ids.len(), |l| l as usize);
    let page = page(&ids, String::as_str, params.cursor.as_deref(), limit)?;
    let data: Vec<Value> = page
        .items
        .iter()
        .map(|id| model(id, *id == config.model, &config.provider.id))
        .collect();
    Ok(json!({"data": data, "nextCursor": page.next}))
}

/// One model in Codex's shape.
fn model(id: &str, is_default: bool, provider: &str) -> Value {
    let efforts: Vec<Value> = EFFORTS
        .iter()
        .map(|(effort, description)| json!({"reasoningEffort": effort, "description": description}))
        .collect();
    json!({
        "id": id,
        "model": id,
        "upgrade": null,
        "upgradeInfo": null,
        "availabilityNux": null,
        "displayName": id,
        "description": if is_default {
            format!("{id} from {provider} (the configured model)")
        } else {
            format!("{id} from {provider}")
        },
        "modelSpecialty": null,
        "hidden": false,
        "supportedReasoningEfforts": efforts,
        "defaultReasoningEffort": "medium",
        "inputModalities": ["text"],
        "supportsPersonality": false,
        "multiAgentVersion": null,
        "additionalSpeedTiers": [],
        "serviceTiers": [],
        "defaultServiceTier": null,
        "availableAccessPrograms": null,
        "isDefault": is_default,
    })
}
