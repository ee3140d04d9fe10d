// The web panel in a real headless Chromium (Debian's), driven by playwright-core,
// against the `cng` binary and the fake upstream (tests/browser/fixtures). Run by
// tests/browser/run, which sets CNG_URL, CNG_ADMIN_KEY, CNG_FAKE_URL, CNG_SHOTS.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { chromium } = require('playwright-core');

const BASE = process.env.CNG_URL;
const ADMIN = process.env.CNG_ADMIN_KEY;
const FAKE = process.env.CNG_FAKE_URL;
const SHOTS = process.env.CNG_SHOTS || 'target/e2e';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

let browser;
let page;
let secret; // the key created in the panel
const pageErrors = [];

before(async () => {
  assert.ok(BASE && ADMIN && FAKE, 'run through tests/browser/run');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  // Any Content-Security-Policy violation on the page is a failure.
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on('pageerror', (e) => pageErrors.push(e.message));
});

after(async () => {
  if (browser) await browser.close();
});

/** A full-page screenshot that must show `mustShow` and be more than a blank page. */
async function shot(name, mustShow) {
  const text = await page.evaluate(() => document.body.innerText);
  assert.ok(text.includes(mustShow), `${name}: the page does not show ${JSON.stringify(mustShow)}`);
  const file = path.join(SHOTS, name);
  await page.screenshot({ path: file, fullPage: true });
  const size = fs.statSync(file).size;
  assert.ok(size > 10000, `${name} is only ${size} bytes: a blank page?`);
}

async function fakeRequests() {
  return (await fetch(`${FAKE}/__requests`)).json();
}

async function clearFake() {
  await fetch(`${FAKE}/__requests`, { method: 'DELETE' });
}

async function textOf(sel) {
  return (await page.textContent(sel)) || '';
}

test('sign in with an admin key (kept in sessionStorage, no cookie)', async () => {
  await page.goto(`${BASE}/`);
  await page.fill('#signin-key', 'cng-not-a-real-key');
  await page.click('#signin-btn');
  await page.waitForFunction(() => document.getElementById('signin-error').textContent.length > 0);
  assert.match(await textOf('#signin-error'), /Incorrect API key/);
  await page.fill('#signin-key', ADMIN);
  await page.click('#signin-btn');
  await page.waitForSelector('#nav', { state: 'visible' });
  assert.equal(await textOf('#whoami'), 'admin key');
  const [stored, local, cookie] = await page.evaluate(() => [sessionStorage.getItem('cng.key'), localStorage.length, document.cookie]);
  assert.equal(stored, ADMIN);
  assert.equal(local, 0);
  assert.equal(cookie, '');
  await page.waitForSelector('#keys-table tbody tr');
  await shot('01-signed-in.png', 'No stored keys yet');
});

test('create a key and see it once', async () => {
  await page.click('nav button[data-tab=keys]');
  await page.fill('#key-name', 'browser-bot');
  await page.fill('#key-models', 'gpt-4o-mini');
  await page.click('#key-create');
  await page.waitForSelector('#new-key-box', { state: 'visible' });
  secret = await textOf('#new-key-value');
  assert.match(secret, /^cng-[A-Za-z0-9_-]{43}$/);
  await page.waitForSelector('#keys-table tr[data-name="browser-bot"]');
  await shot('02-key-created.png', secret);
  const r = await fetch(`${BASE}/v1/models`, { headers: { authorization: `Bearer ${secret}` } });
  assert.equal(r.status, 200, 'the new key works');
  await page.click('#new-key-dismiss');
  assert.equal(await textOf('#new-key-value'), '');
  // Reloaded (signed in again from sessionStorage): listed, never shown again.
  await page.reload();
  await page.waitForSelector('#keys-table tr[data-name="browser-bot"]');
  assert.ok(!(await page.content()).includes(secret), 'the page shows the secret again');
  const list = await (await fetch(`${BASE}/api/keys`, { headers: { authorization: `Bearer ${ADMIN}` } })).text();
  assert.ok(list.includes('browser-bot') && !list.includes(secret));
});

test('edit an alias (validation names the field) and see it applied to a chat request', async () => {
  await page.click('nav button[data-tab=config]');
  await page.waitForSelector('#alias-table tbody tr');
  await page.fill('#alias-new-name', 'browser-alias');
  await page.fill('#alias-new-target', 'no-such-model');
  await page.click('#alias-add');
  await page.click('#config-save');
  await page.waitForFunction(() => document.getElementById('config-error').textContent.includes('aliases.browser-alias'));
  assert.ok(await page.$eval('input[data-alias="browser-alias"]', (e) => e.classList.contains('invalid')));
  await shot('03-config-invalid.png', 'aliases.browser-alias');
  await page.fill('input[data-alias="browser-alias"]', '@cf/meta/llama-3.1-8b-instruct');
  await page.click('#config-save');
  await page.waitForFunction(() => document.getElementById('config-status').textContent.startsWith('Saved'));
  await shot('04-config-saved.png', 'Saved');
  await clearFake();
  const r = await fetch(`${BASE}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'browser-alias', messages: [{ role: 'user', content: 'hello alias' }] }),
  });
  const body = await r.json();
  assert.equal(r.status, 200, JSON.stringify(body));
  assert.equal(body.model, 'browser-alias');
  const seen = await fakeRequests();
  assert.match(seen[seen.length - 1].path, /\/ai\/run\/@cf\/meta\/llama-3\.1-8b-instruct$/);
});

test('stream a chat in the playground: tokens appear as they arrive', async () => {
  await page.click('nav button[data-tab=playground]');
  await page.selectOption('#pg-mode', 'chat');
  await page.waitForSelector('#pg-model option[value="browser-alias"]', { state: 'attached' });
  await page.selectOption('#pg-model', 'browser-alias');
  // A trickled stream (250 ms between events), watched while it runs.
  await page.fill('#pg-prompt', '!trickle 250 panel');
  const watching = page.evaluate(() => new Promise((resolve) => {
    const out = document.getElementById('pg-output');
    const values = [];
    const obs = new MutationObserver(() => values.push(out.textContent));
    obs.observe(out, { childList: true, characterData: true, subtree: true });
    setTimeout(() => { obs.disconnect(); resolve(values); }, 4000);
  }));
  await page.click('#pg-run');
  const values = await watching;
  assert.equal(await textOf('#pg-output'), 'ok');
  assert.ok(values.includes('o') && values.indexOf('o') < values.indexOf('ok'), `not incremental: ${JSON.stringify(values)}`);
  // A longer answer from the fixtures, with its usage line and the code snippet.
  await clearFake();
  await page.fill('#pg-prompt', 'Browser panel: stream a sentence about streaming.');
  await page.click('#pg-run');
  await page.waitForFunction(() => document.getElementById('pg-output').textContent.endsWith('then the usage line.'));
  await page.waitForFunction(() => /tokens in/.test(document.getElementById('pg-status').textContent));
  const snippet = await textOf('#pg-snippet');
  assert.ok(snippet.includes('curl') && snippet.includes('browser-alias') && !snippet.includes(ADMIN), 'snippet');
  const seen = await fakeRequests();
  assert.match(seen[0].path, /llama-3\.1-8b-instruct$/);
  assert.equal(seen[0].body.stream, true);
  await page.$eval('#pg-snippet', (e) => { e.parentElement.open = true; });
  await shot('05-playground-stream.png', 'Streaming works: each token is drawn as it arrives');
});

test('generate an image and see it rendered', async (t) => {
  // Image generation is its own module; a build without it answers 501.
  const probe = await fetch(`${BASE}/v1/images/generations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'dall-e-2', prompt: 'Browser panel: a sun setting over the sea', response_format: 'b64_json' }),
  });
  if (probe.status === 501) {
    t.skip('POST /v1/images/generations answers 501 in this build');
    return;
  }
  await page.selectOption('#pg-mode', 'image');
  await page.waitForSelector('#pg-model option[value="dall-e-2"]', { state: 'attached' });
  await page.selectOption('#pg-model', 'dall-e-2');
  await page.fill('#pg-prompt', 'Browser panel: a sun setting over the sea');
  await page.click('#pg-run');
  await page.waitForFunction(() => {
    const i = document.getElementById('pg-image');
    const err = document.getElementById('pg-error').textContent;
    return err || (!i.hidden && i.complete && i.naturalWidth > 0);
  }, null, { timeout: 20000 });
  assert.equal(await textOf('#pg-error'), '', 'the image request failed');
  const [w, h] = await page.$eval('#pg-image', (i) => [i.naturalWidth, i.naturalHeight]);
  assert.deepEqual([w, h], [256, 256]);
  await shot('06-playground-image.png', 'image ready');
});

test('embeddings show their dimensions; speech plays in an audio player', async () => {
  await page.selectOption('#pg-mode', 'embeddings');
  await page.waitForSelector('#pg-model option[value="text-embedding-3-small"]', { state: 'attached' });
  await page.selectOption('#pg-model', 'text-embedding-3-small');
  await page.fill('#pg-prompt', 'Browser panel: embed this sentence.');
  await page.click('#pg-run');
  await page.waitForFunction(() => document.getElementById('pg-output').textContent || document.getElementById('pg-error').textContent);
  assert.equal(await textOf('#pg-error'), '');
  assert.match(await textOf('#pg-output'), /^768 dimensions\n\[/);
  await page.selectOption('#pg-mode', 'speech');
  await page.waitForSelector('#pg-model option[value="tts-1"]', { state: 'attached' });
  await page.selectOption('#pg-model', 'tts-1');
  await page.fill('#pg-prompt', 'Browser panel: say hello.');
  await page.click('#pg-run');
  await page.waitForFunction(() => !document.getElementById('pg-audio').hidden || document.getElementById('pg-error').textContent);
  assert.equal(await textOf('#pg-error'), '');
  const duration = await page.$eval('#pg-audio', (a) => new Promise((resolve) => {
    if (a.readyState >= 1) resolve(a.duration);
    else a.addEventListener('loadedmetadata', () => resolve(a.duration), { once: true });
  }));
  assert.ok(Math.abs(duration - 0.5) < 0.05, `the audio decodes: ${duration} s`);
  assert.match(await page.$eval('#pg-audio', (a) => a.src), /^blob:/);
  await shot('07-playground-speech.png', 'bytes of audio');
});

test('usage, status, health badges and discovery', async () => {
  await page.click('nav button[data-tab=usage]');
  await page.click('#usage-refresh');
  await page.waitForFunction(() => document.querySelectorAll('#usage-models tbody tr').length > 0);
  const totals = await textOf('#usage-totals');
  assert.match(totals, /requests/);
  assert.ok(await page.$('#usage-chart .bar .fill'), 'a bar per model');
  const models = await textOf('#usage-models');
  assert.ok(models.includes('@cf/meta/llama-3.1-8b-instruct'), models);
  await shot('08-usage.png', 'estimated neurons');
  await page.click('nav button[data-tab=models]');
  await page.waitForSelector('#models-table tbody tr');
  await page.waitForFunction(() => /reachable/.test(document.getElementById('status-line').textContent));
  await page.waitForFunction(() => {
    const img = document.querySelector('#models-table img[alt="health of browser-alias"]');
    return img && img.complete && img.naturalWidth > 0;
  });
  await page.click('#discover-run');
  await page.waitForFunction(() => document.getElementById('discover-result').textContent.includes('@cf/cng-test/tiny-chat-1b'));
  await shot('09-models-discovery.png', 'tiny-chat-1b');
});

// ---- Providers (docs/providers.md): a provider on the fake upstream, its key sealed by
// the server, a fallback chain whose first target refuses connections, and the
// playground naming the target that served.

const PROVIDER_KEY = `sk-browser-${crypto.randomBytes(12).toString('hex')}`;
const CHAIN_MODEL = 'browser-upstream-model';

/** A loopback port nobody listens on: connections to it are refused. */
async function closedPort() {
  const srv = net.createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

async function adminApi(method, p, body, headers) {
  const r = await fetch(`${BASE}${p}`, {
    method,
    headers: Object.assign({ authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, headers || {}),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

async function keyState(name) {
  return (await textOf(`#providers-table tr[data-provider="${name}"] td.key-state`)).trim();
}

/** No copy of the provider key in the page, its storage or anything the API returns. */
async function assertKeyNowhere() {
  const html = await page.content();
  assert.ok(!html.includes(PROVIDER_KEY), 'the provider key is in the page HTML');
  const stored = await page.evaluate(() => JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)]));
  assert.ok(!stored.includes(PROVIDER_KEY), 'the provider key is in web storage');
  const values = await page.$$eval('input', (is) => is.map((i) => i.value).join('\n'));
  assert.ok(!values.includes(PROVIDER_KEY), 'the provider key is still in an input');
}

test('providers: add one (validation names the field), seal its key, remove a key', async () => {
  await page.click('nav button[data-tab=providers]');
  await page.waitForSelector('#providers-table tbody tr.empty');
  // https only: a remote plain-http URL is refused, and the error names its field.
  await page.fill('#provider-name', 'fake');
  await page.selectOption('#provider-kind', 'openai-compatible');
  await page.fill('#provider-base-url', 'http://example.com/v1');
  await page.click('#provider-save');
  await page.waitForFunction(() => document.getElementById('provider-error').textContent.includes('providers.fake.base_url'));
  assert.ok(await page.$eval('#provider-base-url', (e) => e.classList.contains('invalid')));
  await page.fill('#provider-base-url', `${FAKE}/v1`);
  await page.click('#provider-save');
  await page.waitForSelector('#providers-table tr[data-provider="fake"]');
  assert.equal(await keyState('fake'), 'no');
  assert.equal(await page.inputValue('#provider-name'), '', 'the form is cleared after a save');
  const down = await closedPort();
  await page.fill('#provider-name', 'down');
  await page.fill('#provider-base-url', `http://127.0.0.1:${down}/v1`);
  await page.click('#provider-save');
  await page.waitForSelector('#providers-table tr[data-provider="down"]');

  // A key the API refuses: its message shows on the row, without the key.
  const fakeRow = '#providers-table tr[data-provider="fake"]';
  await page.fill(`${fakeRow} input.provider-key`, 'not a key');
  await page.click(`${fakeRow} button.key-set`);
  await page.waitForFunction((sel) => document.querySelector(sel).textContent.includes('(key)'), `${fakeRow} .row-error`);
  assert.ok(!(await textOf(`${fakeRow} .row-error`)).includes('not a key'), 'the error echoes the key');

  await page.fill(`${fakeRow} input.provider-key`, PROVIDER_KEY);
  await page.click(`${fakeRow} button.key-set`);
  await page.waitForFunction(() => {
    const td = document.querySelector('#providers-table tr[data-provider="fake"] td.key-state');
    return td && td.textContent === 'yes';
  });
  assert.match(await textOf('#providers-status'), /key of fake is sealed/);
  await assertKeyNowhere();
  const listed = await adminApi('GET', '/api/providers');
  assert.ok(!JSON.stringify(listed.body).includes(PROVIDER_KEY));
  assert.deepEqual(listed.body.data.map((p) => [p.name, p.key_set]), [['down', false], ['fake', true]]);
  const doc = await adminApi('GET', '/api/config');
  assert.match(doc.body.providers.fake.key, /^cng1:/);
  assert.ok(!JSON.stringify(doc.body).includes(PROVIDER_KEY), 'the document holds the key in clear');
  await shot('10-providers-key-set.png', 'key of fake is sealed');

  // Editing a provider keeps its sealed key (the name, its associated data, is fixed).
  await page.click(`${fakeRow} button.provider-edit`);
  assert.equal(await page.inputValue('#provider-base-url'), `${FAKE}/v1`);
  assert.ok(await page.$eval('#provider-name', (e) => e.readOnly));
  await page.click('#provider-save');
  await page.waitForFunction(() => document.getElementById('providers-status').textContent === 'Saved provider fake.');
  assert.equal(await keyState('fake'), 'yes');

  // Remove a key: set one on `down`, then take it off again.
  const downRow = '#providers-table tr[data-provider="down"]';
  assert.ok(await page.$eval(`${downRow} button.key-remove`, (b) => b.disabled), 'nothing to remove yet');
  await page.fill(`${downRow} input.provider-key`, 'sk-short-lived');
  await page.press(`${downRow} input.provider-key`, 'Enter');
  await page.waitForFunction(() => document.querySelector('#providers-table tr[data-provider="down"] td.key-state').textContent === 'yes');
  await page.click(`${downRow} button.key-remove`);
  await page.waitForFunction(() => document.querySelector('#providers-table tr[data-provider="down"] td.key-state').textContent === 'no');
  assert.equal((await adminApi('GET', '/api/config')).body.providers.down.key, undefined);
});

test('providers: fallback chains (validation, a concurrent edit is a conflict, not an overwrite)', async () => {
  await page.fill('#targets-text', 'broken: nowhere/some-model');
  await page.click('#targets-save');
  await page.waitForFunction(() => document.getElementById('targets-error').textContent.includes('targets.broken[0]'));
  assert.ok(await page.$eval('#targets-text', (e) => e.classList.contains('invalid')));
  await page.fill('#targets-text', 'no colon here');
  await page.click('#targets-save');
  await page.waitForFunction(() => document.getElementById('targets-error').textContent.includes('line 1'));

  // Another admin saves a chain after this tab loaded the document.
  const current = (await adminApi('GET', '/api/config')).body;
  current.targets = { 'other-chain': [`fake/${CHAIN_MODEL}`] };
  const put = await adminApi('PUT', '/api/config', current, { 'if-match': `"${current.version}"` });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  await page.fill('#targets-text', `browser-chain: down/${CHAIN_MODEL}, fake/${CHAIN_MODEL}`);
  await page.click('#targets-save');
  await page.waitForFunction(() => /config changed.*reload/i.test(document.getElementById('targets-error').textContent));
  assert.deepEqual(Object.keys((await adminApi('GET', '/api/config')).body.targets), ['other-chain'], 'the other edit survived');
  await page.click('#providers-reload');
  await page.waitForFunction(() => document.getElementById('targets-text').value.includes('other-chain'));
  await page.fill('#targets-text', `browser-chain: down/${CHAIN_MODEL}, fake/${CHAIN_MODEL}\ndown-only: down/${CHAIN_MODEL}\n`);
  await page.click('#targets-save');
  await page.waitForFunction(() => document.getElementById('providers-status').textContent.startsWith('Saved the chains'));
  assert.deepEqual((await adminApi('GET', '/api/config')).body.targets, {
    'browser-chain': [`down/${CHAIN_MODEL}`, `fake/${CHAIN_MODEL}`],
    'down-only': [`down/${CHAIN_MODEL}`],
  });
  await shot('11-providers-chains.png', 'Saved the chains');
  // A provider a chain still names cannot be deleted: the validation error says which.
  const downDelete = '#providers-table tr[data-provider="down"] button.provider-delete';
  await page.click(downDelete);
  assert.equal(await textOf(downDelete), 'Really delete?');
  await page.click(downDelete);
  await page.waitForFunction(() => document.querySelector('#providers-table tr[data-provider="down"] .row-error').textContent.includes('targets.'));
  assert.ok('down' in (await adminApi('GET', '/api/config')).body.providers);
});

test('playground: a chain answers, and the panel names the target that served', async () => {
  await page.click('nav button[data-tab=playground]');
  await page.selectOption('#pg-mode', 'chat');
  await page.waitForSelector('#pg-model option[value="browser-chain"]', { state: 'attached' });
  assert.equal(await page.$eval('#pg-model option[value="browser-chain"]', (o) => o.textContent),
    `browser-chain → down/${CHAIN_MODEL}, fake/${CHAIN_MODEL}`);
  await page.selectOption('#pg-model', 'browser-chain');
  for (const stream of [true, false]) {
    await clearFake();
    await page.setChecked('#pg-stream', stream);
    await page.fill('#pg-prompt', `Browser panel: through a chain (stream ${stream})`);
    await page.click('#pg-run');
    await page.waitForFunction(() => document.getElementById('pg-target').textContent || document.getElementById('pg-error').textContent);
    assert.equal(await textOf('#pg-error'), '');
    await page.waitForFunction(() => document.getElementById('pg-output').textContent === 'ok');
    assert.equal(await textOf('#pg-target'), `served by fake/${CHAIN_MODEL}`);
    // The refused first target never reached the fake; the second one got the sealed key.
    const seen = await fakeRequests();
    assert.equal(seen.length, 1, JSON.stringify(seen.map((r) => r.path)));
    assert.equal(seen[0].path, '/v1/chat/completions');
    assert.equal(seen[0].body.model, CHAIN_MODEL);
    assert.equal(seen[0].body.stream === true, stream);
    assert.equal(seen[0].headers.authorization, `Bearer ${PROVIDER_KEY}`);
  }
  await assertKeyNowhere();
  await shot('12-playground-served-by.png', `served by fake/${CHAIN_MODEL}`);
  // A chain with no target left: the error, and the target that failed last.
  await page.setChecked('#pg-stream', true);
  await page.selectOption('#pg-model', 'down-only');
  await page.click('#pg-run');
  await page.waitForFunction(() => document.getElementById('pg-error').textContent);
  assert.equal(await textOf('#pg-target'), `failed at down/${CHAIN_MODEL}`);
  assert.match(await textOf('#pg-error'), /upstream/);
  assert.equal(await textOf('#pg-output'), '');
});

test('a client key gets the playground only, for its own models', async () => {
  await page.click('#signout');
  await page.waitForSelector('#signin', { state: 'visible' });
  await page.fill('#signin-key', secret);
  await page.click('#signin-btn');
  await page.waitForSelector('#nav', { state: 'visible' });
  assert.equal(await textOf('#whoami'), 'client key');
  assert.ok(await page.$eval('nav button[data-tab=keys]', (b) => b.hidden), 'no keys tab');
  await page.waitForSelector('#pg-model option', { state: 'attached' });
  const options = await page.$$eval('#pg-model option', (os) => os.map((o) => o.value));
  assert.deepEqual(options, ['gpt-4o-mini']);
  const status = await page.evaluate(async () => (await fetch('/api/keys', { headers: { authorization: `Bearer ${sessionStorage.getItem('cng.key')}` } })).status);
  assert.equal(status, 403, 'the admin API refuses the key whatever the page does');
  await shot('13-client-playground.png', 'Playground');
});

test('no script error and no Content-Security-Policy violation', async () => {
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(await page.evaluate(() => window.__csp), []);
});
