st2bot::bot!("missing-backend-setting-login.yaml");
