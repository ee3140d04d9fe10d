// The web panel in a real headless Chromium (Debian's), driven by playwright-core,
// against the `cng` binary and the fake upstream (tests/browser/fixtures). Run by
// tests/browser/run, which sets CNG_URL, CNG_ADMIN_KEY, CNG_FAKE_URL, CNG_SHOTS.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
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
  await shot('10-client-playground.png', 'Playground');
});

test('no script error and no Content-Security-Policy violation', async () => {
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(await page.evaluate(() => window.__csp), []);
});
