//! `GET /api/hub`: what an owner's UI shows about this hub, including where the
//! owner token is kept (and a warning when that is a file, not the keychain).
use axum::Json;
use axum::extract::State;
use hapi_protocol::{HubInfo, VERSION};

use crate::AppState;

pub(crate) async fn info(State(state): State<AppState>) -> Json<HubInfo> {
    Json(HubInfo {
        version: VERSION.into(),
        machine_id: state.machine_id().to_owned(),
        credentials: state.credentials().clone(),
    })
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use hapi_protocol::{CredentialStoreKind, HubInfo};
    use tower::ServiceExt as _;

    use crate::auth::{KeychainMode, OWNER_TOKEN, Vault};
    use crate::{AppState, HubConfig};

    async fn get_hub(state: AppState, token: Option<&str>) -> (StatusCode, Vec<u8>) {
        let mut req = Request::get("/api/hub");
        if let Some(token) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = crate::router(state)
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        (
            status,
            axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap()
                .to_vec(),
        )
    }

    #[tokio::test]
    async fn reports_where_the_owner_token_is_kept_to_the_owner_only() {
        let home = tempfile::tempdir().unwrap();
        let vault = Vault::open_with(home.path(), KeychainMode::Off).unwrap();
        let state = AppState::open_with_vault(HubConfig::for_home(home.path()), &vault).unwrap();
        let token = vault.get_or_create(&OWNER_TOKEN).unwrap().value;

        let (status, _) = get_hub(state.clone(), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body) = get_hub(state.clone(), Some(&token)).await;
        assert_eq!(status, StatusCode::OK);
        let info: HubInfo = serde_json::from_slice(&body).unwrap();
        assert_eq!(info.version, hapi_protocol::VERSION);
        assert_eq!(info.machine_id, state.machine_id());
        assert_eq!(info.credentials.store, CredentialStoreKind::File);
        let notice = info.credentials.notice.unwrap();
        assert!(notice.starts_with("HAPI_KEYCHAIN=off"), "{notice}");
    }

    #[tokio::test]
    async fn a_token_from_the_environment_is_reported_as_such() {
        let home = tempfile::tempdir().unwrap();
        let vault = Vault::open_with(home.path(), KeychainMode::Off).unwrap();
        let mut config = HubConfig::for_home(home.path());
        config.owner_token = Some("operator-token".into());
        let state = AppState::open_with_vault(config, &vault).unwrap();
        let (status, body) = get_hub(state, Some("operator-token")).await;
        assert_eq!(status, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["credentials"], serde_json::json!({"store": "environment"}));
        assert!(
            !home.path().join("owner.token").exists(),
            "no token file beside CLI_API_TOKEN"
        );
    }
}
