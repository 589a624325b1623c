//! Playing the user on the bot's login page: fetch the form behind a login link, then post
//! the StackStorm password with the form's hidden `id` and `csrf` fields.

/// The value of the hidden input `name` in the login form's HTML.
pub fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// Opens `link` and submits `username`/`password` (kind `password`); the HTTP status of
/// the submission.
pub async fn submit_password(link: &str, username: &str, password: &str) -> u16 {
    let http = reqwest::Client::new();
    let form = http.get(link).send().await.unwrap().text().await.unwrap();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id", &field(&form, "id"))
        .append_pair("csrf", &field(&form, "csrf"))
        .append_pair("kind", "password")
        .append_pair("username", username)
        .append_pair("password", password)
        .finish();
    http.post(link)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
