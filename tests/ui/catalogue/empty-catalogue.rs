st2bot::bot!("empty-catalogue.yaml");
