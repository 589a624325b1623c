st2bot::bot!("missing-backend-setting-mattermost-actions.yaml");
