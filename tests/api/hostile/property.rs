//! The property, checked for one request.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use sea_orm::DatabaseConnection;
use serde_json::Value;

use super::problems::{check_problem, nul_not_refused};
use super::request::{Hostile, Route, shown};
use super::snapshot::Snapshot;
use crate::helpers::TestApp;

pub(super) struct Context<'a> {
    pub(super) app: &'a TestApp,
    pub(super) db: &'a DatabaseConnection,
    /// How many answers of each (route, status, code), printed at the end.
    pub(super) seen: std::sync::Mutex<BTreeMap<String, usize>>,
}

pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) text: String,
}

impl Context<'_> {
    pub(super) async fn check(&self, request: &Hostile) -> Result<(), String> {
        let before = Snapshot::take(self.db).await;
        let toss_before = self.toss_requests().await;
        let answer = self.send(request).await?;
        let after = Snapshot::take(self.db).await;
        let toss_after = self.toss_requests().await;
        let shown_answer = || {
            format!(
                "answer: {} content-type={:?}\n{}",
                answer.status,
                answer.headers.get("content-type"),
                shown(answer.text.as_bytes())
            )
        };

        let body = serde_json::from_str::<Value>(&answer.text).unwrap_or(Value::Null);
        if std::env::var("HOSTILE_VERBOSE").is_ok() {
            eprintln!(
                "{request:?}  -> {} {}\n",
                answer.status,
                shown(answer.text.as_bytes())
            );
        }
        if answer.status.is_server_error() {
            return Err(format!("a 5xx\n{}", shown_answer()));
        }
        if answer.status.is_client_error() {
            check_problem(request, &answer).map_err(|e| format!("{e}\n{}", shown_answer()))?;
        }

        let route = request.route();
        if let Some(refusal) = nul_not_refused(request, route, answer.status) {
            return Err(format!("{refusal}\n{}", shown_answer()));
        }
        let code = body["code"].as_str().map(str::to_owned);
        *self
            .seen
            .lock()
            .unwrap()
            .entry(format!(
                "{route:?} {} {}",
                answer.status.as_u16(),
                code.as_deref().unwrap_or("-")
            ))
            .or_default() += 1;
        let accepted = answer.status.is_success() && route != Route::ReadOnly;
        let declined_by_toss =
            answer.status == StatusCode::PAYMENT_REQUIRED && code.as_deref() == Some("PG_DECLINED");

        // Toss is called only by a request that got that far: accepted, or declined by Toss.
        let may_call_toss = matches!(
            route,
            Route::Confirm | Route::Refund | Route::Success | Route::Webhook
        ) && (accepted || declined_by_toss);
        if !may_call_toss && toss_after.len() != toss_before.len() {
            let new: Vec<String> = toss_after[toss_before.len()..]
                .iter()
                .map(|r| format!("{} {}", r.method, r.url.path()))
                .collect();
            return Err(format!(
                "the fake Toss was called by a request that was not accepted: {new:?}\n{}",
                shown_answer()
            ));
        }

        let changes = before.diff(
            &after,
            request.may_store_idempotency_key().then_some(answer.status),
        );
        if changes.is_empty() || accepted {
            return Ok(());
        }
        // A confirm that Toss declined records the failure on the payment, and its event.
        if declined_by_toss
            && matches!(route, Route::Confirm | Route::Success)
            && changes
                .iter()
                .all(|c| c.table == "payments" || c.table == "events")
            && changes.iter().filter(|c| c.table == "payments").count() == 1
            && changes
                .iter()
                .filter(|c| c.table == "events")
                .all(|c| c.added_event_type() == Some("payment.failed"))
        {
            return Ok(());
        }
        Err(format!(
            "a refused request changed the database:\n{}\n{}",
            changes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            shown_answer()
        ))
    }

    async fn send(&self, request: &Hostile) -> Result<Answer, String> {
        let method = Method::from_bytes(request.method.as_bytes()).expect("generated method");
        let mut builder = self
            .app
            .client
            .request(method, format!("{}{}", self.app.address, request.target));
        for (name, value) in &request.headers {
            builder = builder.header(
                HeaderName::from_static(name),
                HeaderValue::from_bytes(value).expect("generated header value"),
            );
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let response = tokio::time::timeout(Duration::from_secs(30), builder.send())
            .await
            .map_err(|_| "no answer within 30 s".to_owned())?
            .map_err(|e| format!("the request failed: {:?}", e.without_url()))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("reading the body failed: {e}"))?;
        Ok(Answer {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    async fn toss_requests(&self) -> Vec<wiremock::Request> {
        self.app
            .toss_server
            .received_requests()
            .await
            .unwrap_or_default()
    }
}
