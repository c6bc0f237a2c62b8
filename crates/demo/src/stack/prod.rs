//! The prod profile's checks (Docker only): the stack came up healthy and holds no demo data —
//! a demo account and a demo client are refused. No flows: there is nothing to run them with.

use std::sync::Arc;

use super::{Ctx, Stack, id};
use crate::engine::{Phase, Plan, Step, StepError};

/// Checks for the prod profile: the stack is healthy and holds no demo data.
pub(crate) fn checks(plan: Plan<Ctx>, stack: Stack) -> Plan<Ctx> {
    let mut plan = plan;
    if matches!(stack, Stack::Kms | Stack::All) {
        plan = plan.step(
            Step::new(id::VERIFY_PROD_KMS_NO_DEMO_ACCOUNTS, Phase::Verify, |c: Arc<Ctx>| async move {
                let resp = c
                    .kms
                    .client()?
                    .get(c.kms.url("/pools")?)
                    .basic_auth("acme-admin", Some("acme-admin-demo"))
                    .send()
                    .await
                    .map_err(|e| StepError::from_error("GET /pools failed", &e))?;
                super::kms::expect(resp, "/pools with a demo account", 401).await.map(drop)
            })
            .after(&[id::HEALTH_KMS])
            .verifies("a demo account is refused (401): no demo data in prod"),
        );
    }
    if matches!(stack, Stack::Identity | Stack::All) {
        plan = plan.step(
            Step::new(id::VERIFY_PROD_IDENTITY_NO_DEMO_CLIENTS, Phase::Verify, |c: Arc<Ctx>| async move {
                let secret = super::identity::secret(&c.state()?.client_secret("demo-confidential"))?;
                let answer = super::identity::post_form(
                    &c,
                    "/token",
                    Some(("demo-confidential", &secret)),
                    &[("grant_type", "client_credentials")],
                )
                .await?;
                super::identity::expect_status("client_credentials for the demo client", answer, 401)
                    .map(drop)
            })
            .after(&[id::HEALTH_IDENTITY])
            .verifies("a demo client is refused (401): no demo data in prod"),
        );
    }
    plan
}
