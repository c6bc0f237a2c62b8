//! One way to call a KMS started in-process: Basic credentials, a method, a path under
//! `/api/v1`, an optional JSON body; the status and the JSON answer (`Null` when none).

use kms::service::RunningKms;
use serde_json::Value;
use test_support::Running;

pub async fn call(
    kms: &Running<RunningKms>,
    user: (&str, &str),
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("https://{}:{}/api/v1{path}", test_support::kms::HOST, kms.service.server.addr.port());
    let mut request = kms.client.request(method.parse().unwrap(), url).basic_auth(user.0, Some(user.1));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}
