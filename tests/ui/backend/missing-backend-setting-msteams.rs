st2bot::bot!("missing-backend-setting-msteams.yaml");
