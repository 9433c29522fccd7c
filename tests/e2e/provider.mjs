// A real OAuth 2.0 authorization server (oidc-provider) for tokengate's
// end-to-end tests (tests/oidc_e2e.rs). Development only: loopback, fixed
// test secrets, in-memory storage.
//
// Start: `node tests/e2e/provider.mjs`. It listens on 127.0.0.1:0, builds
// the Provider with issuer `http://127.0.0.1:<port>` once the port is known,
// and prints exactly one JSON line on stdout when ready:
//   {"issuer": ..., "jwks_uri": ..., "token_endpoint": ..., ...}
// It exits when stdin closes (so a test that dies cannot leave it behind),
// on SIGTERM/SIGINT, and after MAX_LIFETIME_MS in any case.
//
// Resources (RFC 8707 resource indicators):
//   https://api.test     JWT access tokens, RS256, scopes "orders:read orders:write"
//   https://opaque.test  opaque access tokens (introspection), same scopes
//
// Clients:
//   svc / svc-secret                  client_credentials, client_secret_basic
//   svc-dpop / svc-dpop-secret        client_credentials, DPoP-bound tokens only
//                                     (dpop_bound_access_tokens: a proof is required)
//   svc-mtls / svc-mtls-secret        client_credentials, certificate-bound tokens
//                                     (tls_client_certificate_bound_access_tokens)
//   tokengate / gateway-secret        introspection caller, client_secret_basic
//   tokengate-post / gateway-post-secret  introspection caller, client_secret_post
//   tokengate-upstream / gateway-upstream-secret  the gateway's own client for an
//                                     upstream: client_credentials, client_secret_basic
//   tokengate-exchange / gateway-exchange-secret  the gateway's own client for an
//                                     upstream: token exchange, client_secret_post
//   spa (public, PKCE)                authorization_code + refresh_token,
//                                     redirect_uri http://127.0.0.1:9/cb (nothing listens there)
//
// Sender-constrained tokens: DPoP (RFC 9449) is on, without server nonces;
// a DPoP proof at the token endpoint binds the token to its key (cnf.jkt).
// Certificate-bound tokens (RFC 8705 section 3) are on. The provider speaks
// plain HTTP, so it learns the client certificate the way it would behind
// a TLS-terminating proxy: from the `Client-Cert` request header (RFC 9440,
// `:base64(DER):`), which the tests set as that proxy would. The provider
// copies the certificate's SHA-256 thumbprint into cnf["x5t#S256"]; proving
// possession of its key is then tokengate's job, in its own TLS handshake.
//
// Control API (outside the Provider, on the same listener):
//   GET  /test/stats   {"hits": {"jwks": N, "introspection": N, "token": N, "revocation": N},
//                       "kids": [...]}: requests received per endpoint, the published kids
//   POST /test/rotate  {"kid": NEW}: key rotation, see rotate() below
//
// Token exchange (RFC 8693): oidc-provider has no built-in token exchange;
// it is registered as a custom grant type (registerGrantType, below). The
// subject token must be an active access token this provider issued and
// stores (opaque: https://opaque.test); the new token is a JWT access token
// for the requested resource, for the same subject, with the exchanging
// client as `act` (extraTokenClaims), expiring no later than the subject.
//
// Key rotation: oidc-provider takes its signing keys (`jwks`) at
// construction and offers no way to change them afterwards. A rotation
// therefore builds a second Provider instance for the same issuer with the
// new RS256 key first (so it signs with it) and the previous key second (so
// the published key set still verifies tokens issued before), and swaps the
// request handler that the HTTP server dispatches to. The default in-memory
// adapter keeps its storage at module level, so grants, codes and tokens
// issued by the old instance stay valid across the swap.

import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { createServer } from 'node:http';
import Provider, { errors } from 'oidc-provider';

const MAX_LIFETIME_MS = 5 * 60 * 1000;
const API = 'https://api.test';
const OPAQUE = 'https://opaque.test';
const SCOPES = 'orders:read orders:write';
const REDIRECT_URI = 'http://127.0.0.1:9/cb';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

let keyCounter = 0;
// Requests served per path, for the tests' call-count assertions.
const hits = { jwks: 0, introspection: 0, token: 0, revocation: 0 };
const counted = new Map([
  ['/jwks', 'jwks'],
  ['/token/introspection', 'introspection'],
  ['/token', 'token'],
  ['/token/revocation', 'revocation'],
]);

function newSigningKey() {
  keyCounter += 1;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    ...privateKey.export({ format: 'jwk' }),
    kid: `rsa-${keyCounter}-${Date.now().toString(36)}`,
    alg: 'RS256',
    use: 'sig',
  };
}

async function getResourceServerInfo(_ctx, resourceIndicator) {
  switch (resourceIndicator) {
    case API:
      return {
        scope: SCOPES,
        audience: API,
        accessTokenTTL: 600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      };
    case OPAQUE:
      return {
        scope: SCOPES,
        audience: OPAQUE,
        accessTokenTTL: 600,
        accessTokenFormat: 'opaque',
      };
    default:
      throw new errors.InvalidTarget();
  }
}

// The client certificate a TLS-terminating proxy passed on (RFC 9440), or
// undefined when there is none or it does not parse.
function clientCertificate(ctx) {
  const match = /^:([A-Za-z0-9+/]+={0,2}):$/.exec(ctx.get('client-cert').trim());
  if (!match) return undefined;
  try {
    return new X509Certificate(Buffer.from(match[1], 'base64'));
  } catch {
    return undefined;
  }
}

function configuration(keys) {
  return {
    jwks: { keys },
    clients: [
      {
        client_id: 'svc',
        client_secret: 'svc-secret',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      {
        client_id: 'svc-dpop',
        client_secret: 'svc-dpop-secret',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
        dpop_bound_access_tokens: true,
      },
      {
        client_id: 'svc-mtls',
        client_secret: 'svc-mtls-secret',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
        tls_client_certificate_bound_access_tokens: true,
      },
      {
        client_id: 'tokengate',
        client_secret: 'gateway-secret',
        grant_types: [],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      {
        client_id: 'tokengate-post',
        client_secret: 'gateway-post-secret',
        grant_types: [],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_post',
      },
      {
        client_id: 'tokengate-upstream',
        client_secret: 'gateway-upstream-secret',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      {
        client_id: 'tokengate-exchange',
        client_secret: 'gateway-exchange-secret',
        grant_types: [TOKEN_EXCHANGE],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_post',
      },
      {
        client_id: 'spa',
        application_type: 'web',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [REDIRECT_URI],
      },
    ],
    cookies: { keys: ['tokengate-e2e-cookie-key'] },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      dPoP: { enabled: true },
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        getCertificate: clientCertificate,
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => undefined,
        useGrantedResource: async () => false,
        getResourceServerInfo,
      },
    },
    // The exchanging client acts for the subject (RFC 8693 section 4.1).
    extraTokenClaims: async (_ctx, token) => (token.gty === TOKEN_EXCHANGE
      ? { act: { sub: token.clientId } }
      : undefined),
    pkce: { required: () => true },
    rotateRefreshToken: true,
    // Refresh tokens for clients allowed the grant that asked for offline_access.
    issueRefreshToken: async (_ctx, client, code) =>
      client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
    ttl: {
      AccessToken: 600,
      ClientCredentials: 600,
      AuthorizationCode: 60,
      Interaction: 300,
      Session: 600,
      Grant: 600,
      RefreshToken: 600,
    },
  };
}

// RFC 8693 section 2.1 as a custom grant: the subject token is looked up
// in the provider's own store (opaque access or client-credentials tokens).
async function tokenExchange(ctx) {
  const { client, params, provider } = ctx.oidc;
  if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest('subject_token_type must be an access token');
  }
  const subject = (await provider.AccessToken.find(params.subject_token))
    ?? (await provider.ClientCredentials.find(params.subject_token));
  if (!subject || subject.isExpired) {
    throw new errors.InvalidGrant('subject_token is not an active access token');
  }
  const info = await getResourceServerInfo(ctx, params.resource);
  const allowed = new Set(info.scope.split(' '));
  const requested = (params.scope ?? subject.scope ?? '').split(' ').filter(Boolean);
  if (requested.some((s) => !allowed.has(s) || !subject.scopes.has(s))) {
    throw new errors.InvalidScope('the requested scope exceeds the subject token', params.scope);
  }
  const token = new provider.AccessToken({
    accountId: subject.accountId ?? subject.clientId,
    client,
    gty: TOKEN_EXCHANGE,
    scope: requested.join(' ') || undefined,
    resourceServer: { ...info, identifier: () => params.resource },
  });
  const now = Math.floor(Date.now() / 1000);
  token.expiresIn = Math.max(1, Math.min(info.accessTokenTTL, subject.exp - now));
  const value = await token.save();
  ctx.body = {
    access_token: value,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: token.tokenType,
    expires_in: token.expiration,
    scope: token.scope,
  };
}

function buildProvider(issuer, keys) {
  const provider = new Provider(issuer, configuration(keys));
  provider.registerGrantType(TOKEN_EXCHANGE, tokenExchange, [
    'subject_token', 'subject_token_type', 'resource', 'scope',
  ]);
  // Surface server-side failures on stderr (the test shows stderr on failure).
  provider.on('server_error', (_ctx, err) => console.error('server_error:', err));
  return provider;
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  let keys = [newSigningKey()];
  let handler = buildProvider(issuer, keys).callback();

  function rotate() {
    const next = [newSigningKey(), keys[0]];
    const nextHandler = buildProvider(issuer, next).callback();
    keys = next;
    handler = nextHandler;
    return keys[0].kid;
  }

  server.on('request', (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/test/stats' && req.method === 'GET') {
      json(res, 200, { hits, kids: keys.map((k) => k.kid) });
      return;
    }
    if (path === '/test/rotate' && req.method === 'POST') {
      req.resume();
      req.on('end', () => json(res, 200, { kid: rotate() }));
      return;
    }
    const counter = counted.get(path);
    if (counter) hits[counter] += 1;
    handler(req, res);
  });

  process.stdout.write(`${JSON.stringify({
    issuer,
    port,
    jwks_uri: `${issuer}/jwks`,
    discovery: `${issuer}/.well-known/openid-configuration`,
    authorization_endpoint: `${issuer}/auth`,
    token_endpoint: `${issuer}/token`,
    introspection_endpoint: `${issuer}/token/introspection`,
    revocation_endpoint: `${issuer}/token/revocation`,
    redirect_uri: REDIRECT_URI,
    control: `${issuer}/test`,
  })}\n`);
});

function stop() {
  server.close();
  process.exit(0);
}

process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
setTimeout(() => {
  console.error('provider.mjs: lifetime limit reached, exiting');
  process.exit(3);
}, MAX_LIFETIME_MS).unref();
