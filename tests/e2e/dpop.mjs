// DPoP proofs (RFC 9449) for tokengate's end-to-end tests
// (tests/oidc_e2e/bound_tokens.rs), made by the `dpop` package: the proof
// JWT, its header (typ, alg, jwk), jti, iat and ath are the package's, not
// ours. This script only carries a key pair between invocations, as a
// private JWK, so that the token request and the later resource requests
// are signed by the same key.
//
//   node tests/e2e/dpop.mjs keygen
//     {"jwk": <private ES256 JWK>, "jkt": <RFC 7638 thumbprint, by the package>}
//   node tests/e2e/dpop.mjs proofs JWK ACCESS_TOKEN METHOD URL [METHOD URL]...
//     {"proofs": ["<proof for METHOD URL>", ...]}, each with a fresh jti;
//     ACCESS_TOKEN "-" means none (a proof for the token endpoint, no ath)
//
// Exits 0 after printing exactly one JSON line; on anything unexpected it
// prints the reason on stderr and exits 1.

import { calculateThumbprint, generateKeyPair, generateProof } from 'dpop';

const ALG = 'ES256';
const CURVE = { name: 'ECDSA', namedCurve: 'P-256' };

function fail(reason) {
  console.error(`dpop.mjs: ${reason}`);
  process.exit(1);
}

function usage() {
  fail('usage: dpop.mjs keygen | dpop.mjs proofs JWK ACCESS_TOKEN|- METHOD URL [METHOD URL]...');
}

function print(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

// The pair the package generated, back from its private JWK.
async function importKeyPair(text) {
  let jwk;
  try {
    jwk = JSON.parse(text);
  } catch (err) {
    fail(`JWK is not JSON: ${err.message}`);
  }
  const { kty, crv, x, y, d } = jwk;
  if (kty !== 'EC' || crv !== 'P-256' || !d) fail('expected a private P-256 JWK');
  const privateKey = await crypto.subtle.importKey('jwk', { kty, crv, x, y, d }, CURVE, false, ['sign']);
  // Extractable: the package puts the public key in the proof's header.
  const publicKey = await crypto.subtle.importKey('jwk', { kty, crv, x, y }, CURVE, true, ['verify']);
  return { privateKey, publicKey };
}

async function keygen() {
  const pair = await generateKeyPair(ALG, { extractable: true });
  const jwk = await crypto.subtle.exportKey('jwk', pair.privateKey);
  print({ jwk, jkt: await calculateThumbprint(pair.publicKey) });
}

async function proofs([jwk, accessToken, ...requests]) {
  if (!jwk || !accessToken || requests.length === 0 || requests.length % 2 !== 0) usage();
  const pair = await importKeyPair(jwk);
  const token = accessToken === '-' ? undefined : accessToken;
  const out = [];
  for (let i = 0; i < requests.length; i += 2) {
    const [method, url] = [requests[i], requests[i + 1]];
    // eslint-disable-next-line no-await-in-loop
    out.push(await generateProof(pair, url, method, undefined, token));
  }
  print({ proofs: out });
}

const [command, ...args] = process.argv.slice(2);
try {
  switch (command) {
    case 'keygen':
      await keygen();
      break;
    case 'proofs':
      await proofs(args);
      break;
    default:
      usage();
  }
} catch (err) {
  fail(err?.stack ?? String(err));
}
