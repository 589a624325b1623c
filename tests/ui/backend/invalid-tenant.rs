st2bot::bot!("invalid-tenant.yaml");
