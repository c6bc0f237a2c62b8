//! Every step id of `demo kms|identity|all`, in one place: steps and their dependencies name
//! these constants, so a misspelt dependency does not compile (the engine would otherwise skip
//! the step at run time as "not part of this run").

use crate::engine::StepId;

/// `config.identity`
pub const CONFIG_IDENTITY: StepId = StepId::new("config.identity");
/// `config.kms`
pub const CONFIG_KMS: StepId = StepId::new("config.kms");
/// `flow.apikey.kms`
pub const FLOW_APIKEY_KMS: StepId = StepId::new("flow.apikey.kms");
/// `flow.apikey.lifecycle`
pub const FLOW_APIKEY_LIFECYCLE: StepId = StepId::new("flow.apikey.lifecycle");
/// `flow.apikey.pool-scoped`
pub const FLOW_APIKEY_POOL_SCOPED: StepId = StepId::new("flow.apikey.pool-scoped");
/// `flow.basic.kms.encrypt`
pub const FLOW_BASIC_KMS_ENCRYPT: StepId = StepId::new("flow.basic.kms.encrypt");
/// `flow.basic.kms.forbidden`
pub const FLOW_BASIC_KMS_FORBIDDEN: StepId = StepId::new("flow.basic.kms.forbidden");
/// `flow.basic.kms.sign`
pub const FLOW_BASIC_KMS_SIGN: StepId = StepId::new("flow.basic.kms.sign");
/// `flow.basic.kms.tenant-isolation`
pub const FLOW_BASIC_KMS_TENANT_ISOLATION: StepId = StepId::new("flow.basic.kms.tenant-isolation");
/// `flow.basic.kms.unauthenticated`
pub const FLOW_BASIC_KMS_UNAUTHENTICATED: StepId = StepId::new("flow.basic.kms.unauthenticated");
/// `flow.bearer.kms.encrypt-decrypt`
pub const FLOW_BEARER_KMS_ENCRYPT_DECRYPT: StepId = StepId::new("flow.bearer.kms.encrypt-decrypt");
/// `flow.bearer.kms.missing-scope`
pub const FLOW_BEARER_KMS_MISSING_SCOPE: StepId = StepId::new("flow.bearer.kms.missing-scope");
/// `flow.bearer.kms.no-token`
pub const FLOW_BEARER_KMS_NO_TOKEN: StepId = StepId::new("flow.bearer.kms.no-token");
/// `flow.bearer.kms.revoked-token`
pub const FLOW_BEARER_KMS_REVOKED_TOKEN: StepId = StepId::new("flow.bearer.kms.revoked-token");
/// `flow.bearer.kms.tampered-token`
pub const FLOW_BEARER_KMS_TAMPERED_TOKEN: StepId = StepId::new("flow.bearer.kms.tampered-token");
/// `flow.bearer.kms.user-token`
pub const FLOW_BEARER_KMS_USER_TOKEN: StepId = StepId::new("flow.bearer.kms.user-token");
/// `flow.exchange.txn-token.kms`
pub const FLOW_EXCHANGE_TXN_TOKEN_KMS: StepId = StepId::new("flow.exchange.txn-token.kms");
/// `flow.exchange.unpermitted-actor`
pub const FLOW_EXCHANGE_UNPERMITTED_ACTOR: StepId = StepId::new("flow.exchange.unpermitted-actor");
/// `flow.exchange.wider-scope`
pub const FLOW_EXCHANGE_WIDER_SCOPE: StepId = StepId::new("flow.exchange.wider-scope");
/// `flow.federation.not-authority`
pub const FLOW_FEDERATION_NOT_AUTHORITY: StepId = StepId::new("flow.federation.not-authority");
/// `flow.federation.partner-token`
pub const FLOW_FEDERATION_PARTNER_TOKEN: StepId = StepId::new("flow.federation.partner-token");
/// `flow.federation.trust-reload`
pub const FLOW_FEDERATION_TRUST_RELOAD: StepId = StepId::new("flow.federation.trust-reload");
/// `flow.identity.client-credentials`
pub const FLOW_IDENTITY_CLIENT_CREDENTIALS: StepId = StepId::new("flow.identity.client-credentials");
/// `flow.identity.code-pkce`
pub const FLOW_IDENTITY_CODE_PKCE: StepId = StepId::new("flow.identity.code-pkce");
/// `flow.identity.introspection`
pub const FLOW_IDENTITY_INTROSPECTION: StepId = StepId::new("flow.identity.introspection");
/// `flow.identity.refresh-reuse`
pub const FLOW_IDENTITY_REFRESH_REUSE: StepId = StepId::new("flow.identity.refresh-reuse");
/// `flow.identity.refresh-rotation`
pub const FLOW_IDENTITY_REFRESH_ROTATION: StepId = StepId::new("flow.identity.refresh-rotation");
/// `flow.identity.revocation`
pub const FLOW_IDENTITY_REVOCATION: StepId = StepId::new("flow.identity.revocation");
/// `flow.identity.userinfo`
pub const FLOW_IDENTITY_USERINFO: StepId = StepId::new("flow.identity.userinfo");
/// `health.identity`
pub const HEALTH_IDENTITY: StepId = StepId::new("health.identity");
/// `health.postgres` (the dev profile's database, first in the health chain)
pub const HEALTH_POSTGRES: StepId = StepId::new("health.postgres");
/// `health.kms`
pub const HEALTH_KMS: StepId = StepId::new("health.kms");
/// `image.build`
pub const IMAGE_BUILD: StepId = StepId::new("image.build");
/// `stack.down`
pub const STACK_DOWN: StepId = StepId::new("stack.down");
/// `stack.rollback`
pub const STACK_ROLLBACK: StepId = StepId::new("stack.rollback");
/// `stack.up`
pub const STACK_UP: StepId = StepId::new("stack.up");
/// `stack.up.identity`
pub const STACK_UP_IDENTITY: StepId = StepId::new("stack.up.identity");
/// `stack.up.kms`
pub const STACK_UP_KMS: StepId = StepId::new("stack.up.kms");
/// `stack.up.partner`
pub const STACK_UP_PARTNER: StepId = StepId::new("stack.up.partner");
/// `stack.up.postgres` (embedded dev profile)
pub const STACK_UP_POSTGRES: StepId = StepId::new("stack.up.postgres");
/// `state.prepare`
pub const STATE_PREPARE: StepId = StepId::new("state.prepare");
/// `verify.identity.clients`
pub const VERIFY_IDENTITY_CLIENTS: StepId = StepId::new("verify.identity.clients");
/// `verify.identity.discovery`
pub const VERIFY_IDENTITY_DISCOVERY: StepId = StepId::new("verify.identity.discovery");
/// `verify.identity.users`
pub const VERIFY_IDENTITY_USERS: StepId = StepId::new("verify.identity.users");
/// `verify.kms.pools`
pub const VERIFY_KMS_POOLS: StepId = StepId::new("verify.kms.pools");
/// `verify.prod.identity.no-demo-clients`
pub const VERIFY_PROD_IDENTITY_NO_DEMO_CLIENTS: StepId = StepId::new("verify.prod.identity.no-demo-clients");
/// `verify.prod.kms.no-demo-accounts`
pub const VERIFY_PROD_KMS_NO_DEMO_ACCOUNTS: StepId = StepId::new("verify.prod.kms.no-demo-accounts");
/// `verify.docker.healthchecks`
pub const VERIFY_DOCKER_HEALTHCHECKS: StepId = StepId::new("verify.docker.healthchecks");
