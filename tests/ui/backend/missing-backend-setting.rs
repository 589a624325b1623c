st2bot::bot!("missing-backend-setting.yaml");
