st2bot::bot!("msteams-password-not-secret.yaml");
