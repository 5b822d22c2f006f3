// A real OpenID Connect provider for the SSO tests (the npm package oidc-provider, dev interactions on).
//
// Usage: node provider.mjs CONFIG.json
// CONFIG: {"port": 4000, "issuer": "http://127.0.0.1:4000",
//          "clients": [{client_id, client_secret, redirect_uris, token_endpoint_auth_method}],
//          "accounts": {"<login>": {"claims": {...}, "id_token_only": {...}}}}
// Claims under "claims" go to both the ID token and userinfo; "id_token_only" claims go only into the
// ID token, which is how Cognito hands out `cognito:groups`. Any password is accepted at the login form.
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const accounts = config.accounts || {};

const provider = new Provider(config.issuer, {
  clients: config.clients,
  features: {
    devInteractions: { enabled: true },
  },
  // The tests read group claims from the ID token as well as from userinfo, so both carry them.
  conformIdTokenClaims: false,
  claims: {
    // As Cognito does, the openid scope alone releases the e-mail address and the Cognito claims.
    openid: ['sub', 'groups', 'cognito:groups', 'cognito:username', 'roles', 'email'],
    profile: ['preferred_username', 'name', 'username'],
    email: ['email', 'email_verified'],
  },
  pkce: { required: () => false },
  cookies: { keys: ['pipeportal-test-cookie-key'] },
  async findAccount(ctx, id) {
    const account = accounts[id];
    if (!account) {
      return undefined;
    }
    return {
      accountId: id,
      async claims(use) {
        const claims = { sub: id, ...(account.claims || {}) };
        if (use === 'id_token') {
          Object.assign(claims, account.id_token_only || {});
        }
        return claims;
      },
    };
  },
});
// The portal reaches the provider over plain HTTP on 127.0.0.1.
provider.proxy = false;

const server = provider.listen(config.port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${config.issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
