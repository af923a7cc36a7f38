// A real OpenID Provider for the owner-portal tests: panva/oidc-provider (OpenID Certified),
// configured from the environment by the pytest fixture (tests/oidc_provider/__init__.py).
//
//   OIDC_PORT      the port to listen on (127.0.0.1; default 9400)
//   OIDC_ISSUER    the issuer identifier (default http://127.0.0.1:PORT)
//   OIDC_JWKS      {"keys": [...]}: the private signing keys the provider publishes (the
//                  fixture makes them, so a test can also sign with a published key); without
//                  it, a new RSA key is made at start
//   OIDC_CLIENTS   [{client_id, client_secret, redirect_uris}]: the relying parties; without it,
//                  one client from OIDC_CLIENT_ID, OIDC_CLIENT_SECRET and OIDC_REDIRECT_URI
//                  (for a local `make run`: the redirect URI is PUBLIC_BASE_URL/owner/idp/callback/)
//
// No development interactions: the person "signs in" at /interaction/<uid>/login with the
// subject, amr and acr given as query parameters, so each test chooses who signed in and how
// (a password alone, or with an authenticator already bound). GET /interaction/<uid> shows a
// small form doing the same, for a browser. Never a production identity provider.

import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

function localKeys() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'local-1', use: 'sig', alg: 'RS256' }] };
}

function localClients() {
  const id = process.env.OIDC_CLIENT_ID;
  const secret = process.env.OIDC_CLIENT_SECRET;
  const redirect = process.env.OIDC_REDIRECT_URI;
  if (!id || !secret || !redirect) {
    throw new Error('Set OIDC_CLIENTS, or OIDC_CLIENT_ID, OIDC_CLIENT_SECRET and OIDC_REDIRECT_URI');
  }
  return [{ client_id: id, client_secret: secret, redirect_uris: [redirect] }];
}

const port = Number(process.env.OIDC_PORT || 9400);
const issuer = process.env.OIDC_ISSUER || `http://127.0.0.1:${port}`;
const jwks = process.env.OIDC_JWKS ? JSON.parse(process.env.OIDC_JWKS) : localKeys();
const configured = process.env.OIDC_CLIENTS ? JSON.parse(process.env.OIDC_CLIENTS) : localClients();
const clients = configured.map((client) => ({
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
  id_token_signed_response_alg: 'RS256',
  ...client,
}));

const provider = new Provider(issuer, {
  clients,
  jwks,
  cookies: { keys: ['test-only-cookie-key-of-the-oidc-provider'] },
  claims: { openid: ['sub', 'acr', 'amr', 'auth_time'], sid: null },
  findAccount: async (_ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub }),
  }),
  features: {
    devInteractions: { enabled: false },
    // The relying party sends PKCE S256 whatever the client type: require it.
  },
  pkce: { required: () => true },
  ttl: {
    AccessToken: 300, AuthorizationCode: 60, Grant: 600, IdToken: 300, Interaction: 600, Session: 600,
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  renderError: async (ctx, out) => {
    ctx.type = 'json';
    ctx.body = out;
  },
});
provider.proxy = false;
for (const event of ['server_error', 'authorization.error', 'grant.error']) {
  provider.on(event, (_ctx, error) => process.stderr.write(`${event}: ${error.stack || error}\n`));
}

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function finishLogin(req, res, uid, query) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  const sub = query.get('sub');
  if (!sub) throw new Error('sub is required');
  const amr = (query.get('amr') || 'pwd').split(',').map((v) => v.trim()).filter(Boolean);
  const acr = query.get('acr') || undefined;
  const grant = new provider.Grant({ accountId: sub, clientId: details.params.client_id });
  grant.addOIDCScope(String(details.params.scope || 'openid'));
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, {
    login: { accountId: sub, amr, acr, remember: false },
    consent: { grantId },
  }, { mergeWithLastSubmission: false });
}

function loginForm(res, uid) {
  const action = `/interaction/${escape(uid)}/login`;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Test IdP</title></head>
<body><main><h1>Test identity provider</h1>
<form method="get" action="${action}">
<label>Subject <input name="sub" required></label>
<label>amr <input name="amr" value="pwd,mfa"></label>
<label>acr <input name="acr" value=""></label>
<button type="submit">Sign in</button></form></main></body></html>`);
}

const oidc = provider.callback();
const server = createServer(async (req, res) => {
  const url = new URL(req.url, issuer);
  const match = url.pathname.match(/^\/interaction\/([\w-]+)(\/login)?\/?$/);
  if (!match) {
    oidc(req, res);
    return;
  }
  try {
    if (match[2]) {
      await finishLogin(req, res, match[1], url.searchParams);
    } else {
      await provider.interactionDetails(req, res);
      loginForm(res, match[1]);
    }
  } catch (error) {
    res.statusCode = 400;
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ error: 'interaction_failed', detail: String(error.message || error) }));
  }
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`oidc-provider listening on ${issuer}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
