// The user agent for tokengate's authorization-code end-to-end test
// (tests/oidc_e2e.rs): a minimal "browser" for oidc-provider's
// devInteractions. It knows nothing about OAuth; the test builds the
// authorization request (PKCE challenge, resource indicator, state) and
// exchanges the code itself.
//
//   node tests/e2e/authorize.mjs AUTHORIZATION_URL REDIRECT_URI [LOGIN]
//
// It follows redirects by hand (`redirect: 'manual'`), keeps cookies in a
// small path-aware jar, submits every form it is shown (the login form with
// LOGIN and any password, then the consent form), and stops at the first
// redirect whose Location starts with REDIRECT_URI, without contacting it
// (nothing listens there). It prints {"location": "<that URL>"} on stdout
// and exits 0; on anything unexpected it prints the reason on stderr and
// exits 1. Every request and the whole dance are bounded in time.

const MAX_STEPS = 16;
const REQUEST_TIMEOUT_MS = 5000;
const TOTAL_TIMEOUT_MS = 15000;

const [authorizationUrl, redirectUri, login = 'alice'] = process.argv.slice(2);
if (!authorizationUrl || !redirectUri) {
  console.error('usage: authorize.mjs AUTHORIZATION_URL REDIRECT_URI [LOGIN]');
  process.exit(2);
}

function fail(reason) {
  console.error(`authorize.mjs: ${reason}`);
  process.exit(1);
}

setTimeout(() => fail(`no redirect to ${redirectUri} within ${TOTAL_TIMEOUT_MS} ms`), TOTAL_TIMEOUT_MS).unref();

// name + path -> { name, value, path }
const jar = new Map();

function storeCookies(response, url) {
  for (const line of response.headers.getSetCookie()) {
    const [pair, ...attributes] = line.split(';').map((s) => s.trim());
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    const name = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    let path = new URL(url).pathname.replace(/\/[^/]*$/, '') || '/';
    let expired = false;
    for (const attribute of attributes) {
      const [key, val = ''] = attribute.split('=');
      switch (key.toLowerCase()) {
        case 'path':
          path = val || '/';
          break;
        case 'max-age':
          expired ||= Number(val) <= 0;
          break;
        case 'expires':
          expired ||= Date.parse(val) <= Date.now();
          break;
        default:
      }
    }
    const key = `${name}\n${path}`;
    if (expired) jar.delete(key);
    else jar.set(key, { name, value, path });
  }
}

function cookieHeader(url) {
  const { pathname } = new URL(url);
  const matches = [...jar.values()].filter(({ path }) => pathname === path
    || pathname.startsWith(path.endsWith('/') ? path : `${path}/`));
  return matches.map(({ name, value }) => `${name}=${value}`).join('; ');
}

async function send(method, url, body) {
  const headers = { accept: 'text/html' };
  const cookie = cookieHeader(url);
  if (cookie) headers.cookie = cookie;
  if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
  const response = await fetch(url, {
    method,
    headers,
    body,
    redirect: 'manual',
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  storeCookies(response, url);
  return response;
}

function decodeEntities(text) {
  return text
    .replaceAll('&quot;', '"')
    .replaceAll('&#39;', "'")
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&amp;', '&');
}

function attribute(tag, name) {
  const match = tag.match(new RegExp(`\\b${name}="([^"]*)"`, 'i'));
  return match ? decodeEntities(match[1]) : undefined;
}

// The first POST form on the page: its action and the fields a person would send.
function fillForm(html, pageUrl) {
  const form = html.match(/<form\b([^>]*)>([\s\S]*?)<\/form>/i);
  if (!form || (attribute(form[1], 'method') ?? '').toLowerCase() !== 'post') return undefined;
  const fields = new URLSearchParams();
  for (const [, tag] of form[2].matchAll(/<input\b([^>]*)>/gi)) {
    const name = attribute(tag, 'name');
    if (!name) continue;
    const type = (attribute(tag, 'type') ?? 'text').toLowerCase();
    if (type === 'hidden') fields.append(name, attribute(tag, 'value') ?? '');
    else if (type === 'password') fields.append(name, 'any-password');
    else if (name === 'login') fields.append(name, login);
  }
  return { action: new URL(attribute(form[1], 'action') ?? pageUrl, pageUrl).href, body: fields.toString() };
}

let method = 'GET';
let url = authorizationUrl;
let body;
for (let step = 0; step < MAX_STEPS; step += 1) {
  // eslint-disable-next-line no-await-in-loop
  const response = await send(method, url, body);
  if (response.status >= 300 && response.status < 400) {
    const location = response.headers.get('location');
    if (!location) fail(`${response.status} without Location at ${url}`);
    const next = new URL(location, url).href;
    if (next.startsWith(redirectUri)) {
      process.stdout.write(`${JSON.stringify({ location: next })}\n`);
      process.exit(0);
    }
    method = 'GET';
    url = next;
    body = undefined;
  } else {
    // eslint-disable-next-line no-await-in-loop
    const html = await response.text();
    if (response.status !== 200) fail(`HTTP ${response.status} at ${url}: ${html.slice(0, 800)}`);
    const form = fillForm(html, url);
    if (!form) fail(`no POST form at ${url}: ${html.slice(0, 800)}`);
    method = 'POST';
    ({ action: url, body } = form);
  }
}
fail(`no redirect to ${redirectUri} after ${MAX_STEPS} steps`);
