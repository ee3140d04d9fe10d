// cng's web panel: keys, config, providers, usage, models and a playground, in plain
// JavaScript.
// Served by cng itself from files embedded at compile time, under a Content-Security-
// Policy that allows no inline script: every handler is attached here. The key lives
// in sessionStorage (this tab only) and travels as a bearer header — no cookies, so no
// CSRF. Admin actions go through the same /api routes and RBAC as any API client.
'use strict';

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = 'cng.key';
const state = { key: null, admin: false, models: [], config: null };

// ---------------------------------------------------------------------------------
// Helpers

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'text') e.textContent = v;
    else if (k === 'class') e.className = v;
    else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'list') e.setAttribute(k, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c));
  return e;
}

class ApiError extends Error {
  constructor(status, body, headers) {
    const err = body && body.error ? body.error : {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.param = err.param || null;
    this.code = err.code || null;
    // A routed chat names the target that failed last.
    this.cngTarget = headers ? headers.get('x-cng-target') : null;
  }
}

function authHeaders(extra) {
  // Behind Cloudflare Access without a key, Cloudflare adds the identity itself.
  const auth = state.key ? { Authorization: `Bearer ${state.key}` } : {};
  return Object.assign(auth, extra || {});
}

async function api(method, path, body, extraHeaders) {
  const headers = authHeaders(extraHeaders);
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const r = await fetch(path, { method, headers, body: payload });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (!r.ok) throw new ApiError(r.status, data, r.headers);
  return { data, headers: r.headers, status: r.status };
}

function fmtTime(secs) {
  if (!secs) return '—';
  return new Date(secs * 1000).toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
}

function fmtNum(n, digits) {
  if (n === null || n === undefined) return '—';
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: digits === undefined ? 0 : digits });
}

function showError(id, e) {
  $(id).textContent = e ? (e.param ? `${e.message} (${e.param})` : e.message) : '';
}

// ---------------------------------------------------------------------------------
// Sign in, tabs

async function signIn(key) {
  state.key = key;
  try {
    const m = await api('GET', '/v1/models');
    state.models = m.data.data || [];
  } catch (e) {
    state.key = null;
    throw e;
  }
  try {
    // Any admin-only route tells the roles apart; this one costs one store read.
    await api('GET', '/api/keys');
    state.admin = true;
  } catch (e) {
    if (e.status !== 403) throw e;
    state.admin = false;
  }
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  $('signin').hidden = true;
  $('nav').hidden = false;
  $('who').hidden = false;
  const role = state.admin ? 'admin' : 'client';
  $('whoami').textContent = key ? `${role} key` : `Cloudflare Access (${role})`;
  for (const n of document.querySelectorAll('.admin-only')) n.hidden = !state.admin;
  fillModelList();
  switchTab(state.admin ? 'keys' : 'playground');
}

function signOut() {
  sessionStorage.removeItem(KEY_STORAGE);
  if (state.key === '') {
    // Signed in by Cloudflare Access: end that session.
    location.assign('/cdn-cgi/access/logout');
    return;
  }
  state.key = null;
  location.reload();
}

const loaders = {
  keys: () => loadKeys(),
  config: () => loadConfig(),
  providers: () => refreshProviders(true),
  usage: () => loadUsage(),
  models: () => loadModels(),
  playground: async () => {
    // Aliases may have changed since sign-in.
    state.models = (await api('GET', '/v1/models')).data.data || [];
    fillModelList();
    await fillModelSelect();
  },
};

function switchTab(name) {
  for (const s of document.querySelectorAll('section.tab')) s.hidden = s.id !== `tab-${name}`;
  for (const b of document.querySelectorAll('nav button')) b.classList.toggle('active', b.dataset.tab === name);
  const load = loaders[name];
  if (load) load().catch((e) => console.error(e));
}

function fillModelList() {
  const list = $('model-ids');
  list.replaceChildren(...state.models.map((m) => el('option', { value: m.id })));
}

// ---------------------------------------------------------------------------------
// Keys

function showSecret(title, key) {
  $('new-key-title').textContent = title;
  $('new-key-value').textContent = key;
  $('new-key-copy').textContent = 'Copy';
  $('new-key-box').hidden = false;
}

function forgetSecret() {
  $('new-key-value').textContent = '';
  $('new-key-box').hidden = true;
}

async function loadKeys() {
  const { data } = await api('GET', '/api/keys');
  const rows = data.data.map((k) => {
    const toggle = el('button', {
      type: 'button',
      text: k.disabled ? 'Enable' : 'Disable',
      onclick: () => keyAction(() => api('PATCH', `/api/keys/${encodeURIComponent(k.name)}`, { disabled: !k.disabled })),
    });
    const rotate = el('button', {
      type: 'button',
      text: 'Rotate',
      onclick: () => keyAction(async () => {
        const r = await api('POST', `/api/keys/${encodeURIComponent(k.name)}/rotate`, { grace_seconds: 3600 });
        showSecret(`New secret for ${k.name} (the old one works for one more hour)`, r.data.key);
      }),
    });
    const del = el('button', { type: 'button', class: 'danger', text: 'Delete' });
    del.addEventListener('click', () => {
      if (del.dataset.armed) {
        keyAction(() => api('DELETE', `/api/keys/${encodeURIComponent(k.name)}`));
      } else {
        del.dataset.armed = '1';
        del.textContent = 'Really delete?';
      }
    });
    const spoof = el('input', {
      type: 'checkbox',
      checked: !!k.spoof,
      title: 'present the gateway as OpenAI to this key',
      onchange: (ev) => keyAction(() => api('PATCH', `/api/keys/${encodeURIComponent(k.name)}`, { spoof: ev.target.checked })),
    });
    return el('tr', { 'data-name': k.name },
      el('td', { text: k.name }),
      el('td', { text: k.role }),
      el('td', { text: k.models ? k.models.join(', ') : 'all' }),
      el('td', { text: k.rpm || 'default' }),
      el('td', { text: k.expires ? fmtTime(k.expires) : 'never' }),
      el('td', { text: k.disabled ? 'disabled' : 'active' }),
      el('td', {}, spoof),
      el('td', {}, rotate, ' ', toggle, ' ', del));
  });
  if (!rows.length) {
    rows.push(el('tr', { class: 'empty' }, el('td', { colSpan: 8, class: 'muted', text: 'No stored keys yet. (A bootstrap admin key from CNG_ADMIN_KEY is never listed.)' })));
  }
  $('keys-table').tBodies[0].replaceChildren(...rows);
}

async function keyAction(fn) {
  showError('key-error', null);
  try {
    await fn();
  } catch (e) {
    showError('key-error', e);
  }
  await loadKeys();
}

async function createKey(ev) {
  ev.preventDefault();
  showError('key-error', null);
  const body = { name: $('key-name').value.trim(), role: $('key-role').value };
  const models = $('key-models').value.split(',').map((s) => s.trim()).filter(Boolean);
  if (models.length) body.models = models;
  if ($('key-rpm').value) body.rpm = Number($('key-rpm').value);
  if ($('key-days').value) body.expires_in_days = Number($('key-days').value);
  try {
    const r = await api('POST', '/api/keys', body);
    showSecret(`New key “${r.data.name}”`, r.data.key);
    $('key-form').reset();
  } catch (e) {
    showError('key-error', e);
  }
  await loadKeys();
}

// ---------------------------------------------------------------------------------
// Config

function clearInvalid() {
  for (const n of document.querySelectorAll('.invalid')) n.classList.remove('invalid');
}

function markInvalid(param) {
  if (!param) return;
  let node = document.querySelector(`[data-param="${CSS.escape(param)}"]`);
  if (!node && param.startsWith('aliases.')) {
    node = document.querySelector(`[data-alias="${CSS.escape(param.slice(8))}"]`);
  }
  if (!node) node = $('config-json');
  node.classList.add('invalid');
  if (node.closest('details')) node.closest('details').open = true;
}

async function loadConfig() {
  const { data } = await api('GET', '/api/config');
  state.config = data;
  renderConfig();
}

function aliasRow(name, target) {
  return el('tr', {},
    el('td', { text: name }),
    el('td', {}, el('input', { value: target, 'data-alias': name, class: 'alias-target', list: 'model-ids', size: 44 })),
    el('td', {}, el('button', { type: 'button', class: 'danger', text: 'Remove', onclick: (ev) => ev.target.closest('tr').remove() })));
}

function renderConfig() {
  const c = state.config;
  $('config-version').textContent = c.version ? `version ${c.version}` : 'defaults (never saved)';
  $('alias-table').tBodies[0].replaceChildren(...Object.entries(c.aliases || {}).map(([a, t]) => aliasRow(a, t)));
  $('cfg-default-chat').value = (c.defaults || {}).chat || '';
  $('cfg-default-images').value = (c.defaults || {}).images || '';
  $('cfg-image-ttl').value = c.images.cache_ttl_seconds;
  $('cfg-client-rpm').value = c.rate_limits.client_rpm ?? '';
  $('cfg-admin-rpm').value = c.rate_limits.admin_rpm ?? '';
  $('cfg-badge-window').value = c.badges.window_seconds;
  $('cfg-badge-public').checked = !!c.badges.public;
  $('config-json').value = JSON.stringify(c, null, 2);
}

function numOrNull(id) {
  const v = $(id).value.trim();
  return v === '' ? null : Number(v);
}

function collectConfig() {
  const c = JSON.parse(JSON.stringify(state.config));
  c.aliases = {};
  for (const input of document.querySelectorAll('#alias-table input.alias-target')) {
    c.aliases[input.dataset.alias] = input.value.trim();
  }
  c.defaults = Object.assign({}, c.defaults);
  for (const [k, id] of [['chat', 'cfg-default-chat'], ['images', 'cfg-default-images']]) {
    const v = $(id).value.trim();
    if (v) c.defaults[k] = v; else delete c.defaults[k];
  }
  c.images.cache_ttl_seconds = numOrNull('cfg-image-ttl');
  c.rate_limits.client_rpm = numOrNull('cfg-client-rpm');
  c.rate_limits.admin_rpm = numOrNull('cfg-admin-rpm');
  c.badges.window_seconds = numOrNull('cfg-badge-window');
  c.badges.public = $('cfg-badge-public').checked;
  return c;
}

async function saveConfig(doc) {
  clearInvalid();
  showError('config-error', null);
  $('config-status').textContent = 'Saving…';
  try {
    const r = await api('PUT', '/api/config', doc, { 'If-Match': `"${state.config.version}"` });
    state.config = r.data;
    renderConfig();
    $('config-status').textContent = `Saved — version ${r.data.version}.`;
  } catch (e) {
    $('config-status').textContent = e.status === 409 ? 'Not saved: someone else saved first. Reload, then redo your change.' : 'Not saved.';
    showError('config-error', e);
    markInvalid(e.param);
  }
}

function addAlias(ev) {
  ev.preventDefault();
  const name = $('alias-new-name').value.trim();
  const target = $('alias-new-target').value.trim();
  if (!name) return;
  const existing = document.querySelector(`#alias-table input[data-alias="${CSS.escape(name)}"]`);
  if (existing) existing.value = target;
  else $('alias-table').tBodies[0].append(aliasRow(name, target));
  $('alias-form').reset();
}

async function exportConfig() {
  const r = await fetch('/api/config/export', { headers: authHeaders() });
  const blob = await r.blob();
  const a = el('a', { href: URL.createObjectURL(blob), download: 'cng-config.json' });
  document.body.append(a);
  a.click();
  a.remove();
}

async function importConfig(ev) {
  const file = ev.target.files[0];
  if (!file) return;
  showError('config-error', null);
  try {
    const doc = JSON.parse(await file.text());
    const r = await api('POST', '/api/config/import', doc, { 'If-Match': `"${state.config.version}"` });
    state.config = r.data;
    renderConfig();
    $('config-status').textContent = `Imported — version ${r.data.version}.`;
  } catch (e) {
    showError('config-error', e);
    markInvalid(e.param);
  }
  ev.target.value = '';
}

// ---------------------------------------------------------------------------------
// Providers: the config's `providers` and `targets` (edited through GET → modify → PUT
// /api/config with the version), and provider keys, which the server seals with its
// master key. A key is typed into a password field, sent once to
// PUT /api/providers/{name}/key, and the field is emptied on success: it is never put
// in storage, in an attribute or in the console, and no API ever returns it.

/** What each kind needs, shown under the form (docs/providers.md). */
const PROVIDER_KINDS = {
  'openai-compatible': { url: 'https://api.openai.com/v1', hint: 'OpenAI, Groq, Mistral, DeepSeek, OpenRouter, vLLM…: base_url is the API root that /chat/completions is appended to.' },
  anthropic: { url: 'https://api.anthropic.com', hint: 'Anthropic\'s native /v1/messages API.' },
  'ai-gateway-compat': { url: 'https://gateway.ai.cloudflare.com/v1 (default)', hint: 'Anything the AI Gateway\'s compat endpoint reaches (Google AI Studio, Bedrock…): gateway is account_id/gateway_id; base_url may stay empty. Without a key the gateway\'s stored keys are used.' },
  'workers-ai': { url: 'https://api.cloudflare.com/client/v4/accounts/ACCOUNT_ID/ai/v1', hint: 'Another Workers AI account through its OpenAI-compatible endpoint; the key is that account\'s API token.' },
};

/** Thrown when the part of the config being edited changed since this tab read it. */
class ConfigChanged extends Error {
  constructor() {
    super('The config changed since this tab loaded it (another admin or tab saved): reload, then redo your change.');
    this.status = 409;
  }
}

// What the table and the chains box were drawn from: a save whose section no longer
// matches the server's is refused as a conflict instead of overwriting someone's edit.
const providerView = { providers: {}, targets: {}, editing: null };

function kindHint() {
  const kind = $('provider-kind').value;
  const k = PROVIDER_KINDS[kind];
  const gw = kind === 'ai-gateway-compat';
  $('provider-gateway').hidden = !gw;
  $('provider-base-url').placeholder = `base_url, e.g. ${k.url}`;
  $('provider-hint').textContent = k.hint;
}

function chainsText(targets) {
  return Object.entries(targets || {}).map(([name, list]) => `${name}: ${list.join(', ')}`).join('\n');
}

/** `name: provider/model, provider/model` per line; errors name the line. */
function parseChains(text) {
  const chains = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i].trim();
    if (!line) continue;
    // The first colon ends the name: model ids may hold colons (`…:free`).
    const cut = line.indexOf(':');
    const name = cut > 0 ? line.slice(0, cut).trim() : '';
    const list = cut > 0 ? line.slice(cut + 1).split(',').map((t) => t.trim()).filter(Boolean) : [];
    let problem = null;
    if (!name) problem = 'write `name: provider/model, provider/model`';
    else if (!list.length) problem = `the chain \`${name}\` lists no target`;
    else if (Object.hasOwn(chains, name)) problem = `the chain \`${name}\` is written twice`;
    if (problem) {
      const err = new Error(problem);
      err.param = `chains, line ${i + 1}`;
      throw err;
    }
    chains[name] = list;
  }
  return chains;
}

function clearProviderMarks() {
  for (const n of document.querySelectorAll('#tab-providers .invalid')) n.classList.remove('invalid');
}

/** Outlines the form field a validation error's `param` names. */
function markProviderParam(param) {
  if (!param) return;
  let node = null;
  if (param.startsWith('targets') || param.startsWith('chains')) node = $('targets-text');
  else if (param === 'name' || param.startsWith('providers.')) {
    const field = param.split('.')[2];
    if (field) node = document.querySelector(`#provider-form [data-field="${CSS.escape(field)}"]`);
    if (!node) node = $('provider-name');
  }
  if (node) node.classList.add('invalid');
}

function providerFailure(errId, e) {
  if (e.status === 409 && !(e instanceof ConfigChanged)) e = new ConfigChanged();
  showError(errId, e);
  markProviderParam(e.param);
  $('providers-status').textContent = e.status === 409 ? 'Not saved: the config changed.' : 'Not saved.';
}

/** GET the document, apply `change` to it, PUT it back naming the version it read. */
async function updateConfig(change) {
  const { data: doc } = await api('GET', '/api/config');
  change(doc);
  const r = await api('PUT', '/api/config', doc, { 'If-Match': `"${doc.version}"` });
  return r.data;
}

function sameProvider(a, b) {
  const pick = (p) => JSON.stringify([p.kind, p.base_url || null, p.gateway || null]);
  return !!a && !!b && pick(a) === pick(b);
}

async function providerKey(method, p, input, errNode) {
  errNode.textContent = '';
  input.classList.remove('invalid');
  const path = `/api/providers/${encodeURIComponent(p.name)}/key`;
  try {
    if (method === 'PUT') {
      if (!input.value.trim()) throw Object.assign(new Error('Paste the provider\'s API key first.'), { param: 'key' });
      await api('PUT', path, { key: input.value });
      input.value = '';
      $('providers-status').textContent = `The key of ${p.name} is sealed and stored.`;
    } else {
      await api('DELETE', path);
      $('providers-status').textContent = `The key of ${p.name} is removed.`;
    }
  } catch (e) {
    errNode.textContent = e.param ? `${e.message} (${e.param})` : e.message;
    if (e.param === 'key') input.classList.add('invalid');
    return;
  }
  await refreshProviders(false);
}

function providerRow(p) {
  const keyInput = el('input', {
    type: 'password',
    class: 'provider-key',
    autocomplete: 'new-password',
    spellcheck: false,
    placeholder: p.key_set ? 'replace the key' : 'paste the key',
    'aria-label': `API key of ${p.name}`,
  });
  const rowError = el('div', { class: 'error row-error', role: 'alert' });
  const setBtn = el('button', { type: 'button', class: 'key-set', text: 'Set key', onclick: () => providerKey('PUT', p, keyInput, rowError) });
  keyInput.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') { ev.preventDefault(); setBtn.click(); }
  });
  const removeBtn = el('button', { type: 'button', class: 'key-remove danger', text: 'Remove key', disabled: !p.key_set, onclick: () => providerKey('DELETE', p, keyInput, rowError) });
  const edit = el('button', { type: 'button', class: 'provider-edit', text: 'Edit', onclick: () => editProvider(p.name) });
  const del = el('button', { type: 'button', class: 'provider-delete danger', text: 'Delete' });
  del.addEventListener('click', () => {
    if (!del.dataset.armed) {
      del.dataset.armed = '1';
      del.textContent = 'Really delete?';
      return;
    }
    deleteProvider(p.name, rowError);
  });
  const where = [p.base_url, p.gateway ? `gateway ${p.gateway}` : null].filter(Boolean).join(' · ');
  return el('tr', { 'data-provider': p.name },
    el('td', { text: p.name }),
    el('td', { text: p.kind }),
    el('td', { class: 'url', text: where || '—' }),
    el('td', { class: 'key-state', text: p.key_set ? 'yes' : 'no' }),
    el('td', {}, el('div', { class: 'row tight' }, keyInput, setBtn, removeBtn), rowError),
    el('td', {}, edit, ' ', del));
}

/** Reads the providers and the document; `full` also redraws the chains box and form. */
async function loadProviders(full) {
  const [list, cfg] = await Promise.all([api('GET', '/api/providers'), api('GET', '/api/config')]);
  const rows = list.data.data.map(providerRow);
  if (!rows.length) rows.push(el('tr', { class: 'empty' }, el('td', { colSpan: 6, class: 'muted', text: 'No providers yet: add one below.' })));
  $('providers-table').tBodies[0].replaceChildren(...rows);
  $('providers-version').textContent = cfg.data.version ? `config version ${cfg.data.version}` : 'config defaults (never saved)';
  providerView.providers = cfg.data.providers || {};
  if (full) {
    providerView.targets = cfg.data.targets || {};
    $('targets-text').value = chainsText(providerView.targets);
    clearProviderMarks();
    showError('providers-error', null);
    showError('provider-error', null);
    showError('targets-error', null);
  }
}

/** loadProviders, its failure shown on the tab (a save that came before it still stands). */
async function refreshProviders(full) {
  try {
    await loadProviders(full);
    return true;
  } catch (e) {
    showError('providers-error', e);
    return false;
  }
}

function resetProviderForm() {
  providerView.editing = null;
  $('provider-form').reset();
  $('provider-name').readOnly = false;
  $('provider-form-title').textContent = 'Add a provider';
  kindHint();
}

function editProvider(name) {
  const p = providerView.providers[name];
  if (!p) return;
  providerView.editing = { name, base: p };
  $('provider-name').value = name;
  // The name is the sealed key's associated data: renaming would orphan the key.
  $('provider-name').readOnly = true;
  $('provider-kind').value = p.kind;
  $('provider-base-url').value = p.base_url || '';
  $('provider-gateway').value = p.gateway || '';
  $('provider-form-title').textContent = `Edit provider ${name}`;
  kindHint();
  $('provider-base-url').focus();
}

async function saveProvider(ev) {
  ev.preventDefault();
  clearProviderMarks();
  showError('provider-error', null);
  const name = $('provider-name').value.trim();
  const kind = $('provider-kind').value;
  const entry = { kind };
  const url = $('provider-base-url').value.trim();
  if (url) entry.base_url = url;
  if (kind === 'ai-gateway-compat' && $('provider-gateway').value.trim()) entry.gateway = $('provider-gateway').value.trim();
  const editing = providerView.editing;
  $('providers-status').textContent = 'Saving…';
  try {
    if (!name) throw Object.assign(new Error('Name the provider.'), { param: 'name' });
    await updateConfig((doc) => {
      doc.providers = doc.providers || {};
      const current = doc.providers[name];
      if (editing) {
        if (!sameProvider(current, editing.base)) throw new ConfigChanged();
      } else if (current) {
        throw Object.assign(new Error(`A provider \`${name}\` exists already: use its Edit button.`), { param: `providers.${name}` });
      }
      // The stored key stays: it is sealed for this name, whatever the kind or URL.
      if (current && current.key) entry.key = current.key;
      doc.providers[name] = entry;
    });
  } catch (e) {
    providerFailure('provider-error', e);
    return;
  }
  $('providers-status').textContent = `Saved provider ${name}.`;
  resetProviderForm();
  await refreshProviders(false);
}

async function deleteProvider(name, errNode) {
  errNode.textContent = '';
  try {
    await updateConfig((doc) => {
      if (!sameProvider((doc.providers || {})[name], providerView.providers[name])) throw new ConfigChanged();
      delete doc.providers[name];
    });
  } catch (e) {
    const shown = e.status === 409 && !(e instanceof ConfigChanged) ? new ConfigChanged() : e;
    errNode.textContent = shown.param ? `${shown.message} (${shown.param})` : shown.message;
    return;
  }
  $('providers-status').textContent = `Deleted provider ${name}.`;
  if (providerView.editing && providerView.editing.name === name) resetProviderForm();
  await refreshProviders(false);
}

async function saveChains() {
  clearProviderMarks();
  showError('targets-error', null);
  $('providers-status').textContent = 'Saving…';
  let saved;
  try {
    const chains = parseChains($('targets-text').value);
    saved = await updateConfig((doc) => {
      if (JSON.stringify(doc.targets || {}) !== JSON.stringify(providerView.targets)) throw new ConfigChanged();
      doc.targets = chains;
    });
  } catch (e) {
    providerFailure('targets-error', e);
    return;
  }
  providerView.targets = saved.targets || {};
  $('targets-text').value = chainsText(providerView.targets);
  $('providers-status').textContent = `Saved the chains — config version ${saved.version}.`;
  await refreshProviders(false);
}

// ---------------------------------------------------------------------------------
// Usage

function latency(l) {
  return `${l.p50 ?? '—'} / ${l.p95 ?? '—'} / ${l.p99 ?? '—'}`;
}

function usageRow(r) {
  return el('tr', {},
    el('td', { text: r.name }),
    el('td', { class: 'num', text: fmtNum(r.requests) }),
    el('td', { class: 'num', text: fmtNum(r.errors) }),
    el('td', { class: 'num', text: fmtNum(r.input_tokens) }),
    el('td', { class: 'num', text: fmtNum(r.output_tokens) }),
    el('td', { class: 'num', text: latency(r.latency_ms) }),
    el('td', { class: 'num', text: fmtNum(r.estimated_neurons, 2) }),
    el('td', { class: 'num', text: r.estimated_usd === null ? '—' : `$${fmtNum(r.estimated_usd, 6)}` }));
}

async function loadUsage(ev) {
  if (ev) ev.preventDefault();
  showError('usage-error', null);
  const now = Math.floor(Date.now() / 1000);
  const q = new URLSearchParams({ from: String(now - Number($('usage-range').value)), to: String(now) });
  if ($('usage-key').value.trim()) q.set('key', $('usage-key').value.trim());
  if ($('usage-model').value.trim()) q.set('model', $('usage-model').value.trim());
  let data;
  try {
    data = (await api('GET', `/api/usage?${q}`)).data;
  } catch (e) {
    showError('usage-error', e);
    return;
  }
  const t = data.totals;
  const stat = (label, value) => el('div', { class: 'stat' }, el('b', { text: value }), label);
  $('usage-totals').replaceChildren(
    stat('requests', fmtNum(t.requests)),
    stat('errors', `${fmtNum(t.errors)} (${(t.error_rate * 100).toFixed(1)} %)`),
    stat('tokens in / out', `${fmtNum(t.input_tokens)} / ${fmtNum(t.output_tokens)}`),
    stat('latency p50 / p95 / p99 ms', latency(t.latency_ms)),
    stat('estimated neurons', fmtNum(t.estimated_neurons, 2)),
    stat('estimated USD', t.estimated_usd === null ? '—' : `$${fmtNum(t.estimated_usd, 6)}`),
    stat('unpriced requests', fmtNum(t.unpriced_requests)));
  const max = Math.max(1, ...data.by_model.map((m) => m.requests));
  $('usage-chart').replaceChildren(...data.by_model.map((m) => {
    const fill = el('span', { class: 'fill' });
    fill.style.width = `${Math.round((m.requests / max) * 400)}px`;
    return el('div', { class: 'bar' }, el('span', { class: 'name', text: m.name, title: m.name }), fill, el('span', { text: fmtNum(m.requests) }));
  }));
  $('usage-models').tBodies[0].replaceChildren(...data.by_model.map(usageRow));
  $('usage-keys').tBodies[0].replaceChildren(...data.by_key.map(usageRow));
}

// ---------------------------------------------------------------------------------
// Models, health, discovery

async function loadModels() {
  state.models = (await api('GET', '/v1/models')).data.data || [];
  fillModelList();
  const rows = state.models.map((m) => {
    const badge = el('img', { alt: `health of ${m.id}`, src: `/badge/${m.id.split('/').map(encodeURIComponent).join('/')}.svg?label=health`, loading: 'lazy' });
    return el('tr', {},
      el('td', { text: m.id }),
      el('td', { text: m.task || '' }),
      el('td', { text: m.alias_for || (m.targets || []).join(', ') }),
      el('td', {}, badge));
  });
  $('models-table').tBodies[0].replaceChildren(...rows);
  if (state.admin) {
    try {
      const s = (await api('GET', '/api/status')).data;
      const probe = s.upstream.probe.reachable === null ? 'not probed' : (s.upstream.probe.reachable ? 'reachable' : `unreachable: ${s.upstream.probe.detail}`);
      $('status-line').textContent = `Upstream ${s.upstream.kind} — ${probe}. Config version ${s.config.version}. Last 24 h: ${s.last_24h.requests} requests, ${(s.last_24h.error_rate * 100).toFixed(1)} % errors.`;
    } catch (e) {
      $('status-line').textContent = e.message;
    }
  }
}

function discoveryList(title, items, cls, fmt) {
  if (!items.length) return el('p', { class: 'muted', text: `${title}: none` });
  return el('div', {}, el('h3', { text: `${title} (${items.length})` }),
    el('ul', {}, ...items.map((i) => el('li', {}, el('span', { class: `tag ${cls}`, text: cls }), ' ', fmt(i)))));
}

async function discover(accept) {
  showError('discover-error', null);
  $('discover-result').textContent = accept ? 'Accepting…' : 'Reading the catalog…';
  try {
    const { data } = await api('POST', '/api/discover', accept ? { accept: true } : {});
    const parts = [
      el('p', { text: `Cloudflare lists ${data.listed} models.` + (data.accepted ? ` Accepted: ${data.accepted.added} added, ${data.accepted.updated} updated, ${data.accepted.removed} removed (config version ${data.version}).` : '') }),
    ];
    if (!data.accepted) {
      parts.push(
        discoveryList('New', data.new, 'new', (m) => `${m.id} — ${m.task}${m.context_window ? `, ${m.context_window} ctx` : ''}`),
        discoveryList('Changed', data.changed, 'changed', (m) => `${m.id}: ${m.changes.map((c) => `${c.field} ${JSON.stringify(c.from)} → ${JSON.stringify(c.to)}`).join('; ')}`),
        discoveryList('Removed', data.removed, 'removed', (id) => id));
    }
    $('discover-result').replaceChildren(...parts);
    $('discover-accept').hidden = !!data.accepted || (data.new.length + data.changed.length + data.removed.length === 0);
    if (data.accepted) await loadModels();
  } catch (e) {
    $('discover-result').textContent = '';
    showError('discover-error', e);
  }
}

// ---------------------------------------------------------------------------------
// Playground

const MODE_TASKS = {
  chat: ['text-generation', 'image-to-text'],
  image: ['image-generation'],
  speech: ['text-to-speech'],
  transcription: ['speech-to-text'],
  embeddings: ['embeddings'],
};

/** `alias → model`, or a routed name with its targets in fallback order. */
function modelLabel(m) {
  if (m.alias_for) return `${m.id} → ${m.alias_for}`;
  if (m.targets && m.targets.length) return `${m.id} → ${m.targets.join(', ')}`;
  return m.id;
}

async function fillModelSelect() {
  const mode = $('pg-mode').value;
  const wanted = MODE_TASKS[mode];
  const keep = $('pg-model').value;
  const models = state.models.filter((m) => wanted.includes(m.task));
  $('pg-model').replaceChildren(...models.map((m) => el('option', { value: m.id, text: modelLabel(m) })));
  if (models.some((m) => m.id === keep)) $('pg-model').value = keep;
  $('pg-file').hidden = mode !== 'transcription';
  $('pg-prompt').hidden = mode === 'transcription';
  $('pg-tools').parentElement.hidden = mode !== 'chat';
  $('pg-stream').parentElement.hidden = mode !== 'chat';
}

function resetOutput() {
  showError('pg-error', null);
  $('pg-output').textContent = '';
  $('pg-reasoning').textContent = '';
  $('pg-reasoning-box').hidden = true;
  $('pg-reasoning-box').open = false;
  $('pg-image').hidden = true;
  $('pg-image').removeAttribute('src');
  $('pg-audio').hidden = true;
  $('pg-status').textContent = '';
  showTarget(null);
}

/** Which target answered a chat (`x-cng-target`: provider/model), or failed last. */
function showTarget(target, failed) {
  $('pg-target').hidden = !target;
  $('pg-target').textContent = target ? `${failed ? 'failed at' : 'served by'} ${target}` : '';
}

function snippet(path, body, binaryOut) {
  const origin = location.origin;
  const json = JSON.stringify(body);
  const curl = `curl ${origin}${path} \\\n  -H "Authorization: Bearer $CNG_KEY" \\\n  -H "Content-Type: application/json" \\\n  -d '${json.replace(/'/g, "'\\''")}'${binaryOut ? ' -o out.bin' : ''}`;
  const py = pythonSnippet(origin, path, body);
  $('pg-snippet').textContent = `${curl}\n\n# Python (openai SDK)\n${py}`;
}

function pythonSnippet(origin, path, body) {
  const head = `from openai import OpenAI\nclient = OpenAI(base_url="${origin}/v1", api_key=os.environ["CNG_KEY"])\n`;
  const args = Object.entries(body).map(([k, v]) => `    ${k}=${JSON.stringify(v).replace(/\btrue\b/g, 'True').replace(/\bfalse\b/g, 'False').replace(/\bnull\b/g, 'None')},`).join('\n');
  const call = {
    '/v1/chat/completions': 'client.chat.completions.create',
    '/v1/images/generations': 'client.images.generate',
    '/v1/audio/speech': 'client.audio.speech.create',
    '/v1/embeddings': 'client.embeddings.create',
  }[path] || 'client.post';
  return `import os\n${head}result = ${call}(\n${args}\n)`;
}

const SAMPLE_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The current weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

function appendDelta(delta) {
  if (!delta) return;
  if (delta.content) $('pg-output').append(delta.content);
  const reasoning = delta.reasoning_content || delta.reasoning;
  if (reasoning) {
    $('pg-reasoning-box').hidden = false;
    $('pg-reasoning').append(reasoning);
  }
  for (const call of delta.tool_calls || []) {
    const f = call.function || {};
    if (f.name) $('pg-output').append(`\n[tool call] ${f.name}(`);
    if (f.arguments) $('pg-output').append(f.arguments);
  }
}

async function runChat(model, prompt) {
  const stream = $('pg-stream').checked;
  const body = { model, messages: [{ role: 'user', content: prompt }], stream };
  if (stream) body.stream_options = { include_usage: true };
  if ($('pg-tools').checked) body.tools = [SAMPLE_TOOL];
  snippet('/v1/chat/completions', body);
  if (!stream) {
    const { data, headers } = await api('POST', '/v1/chat/completions', body);
    showTarget(headers.get('x-cng-target'));
    const msg = data.choices[0].message;
    appendDelta({ content: msg.content, reasoning_content: msg.reasoning_content, tool_calls: msg.tool_calls });
    if (data.usage) $('pg-status').textContent = `${data.usage.prompt_tokens} tokens in, ${data.usage.completion_tokens} out`;
    return;
  }
  const r = await fetch('/v1/chat/completions', {
    method: 'POST',
    headers: authHeaders({ 'Content-Type': 'application/json' }),
    body: JSON.stringify(body),
  });
  if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null), r.headers);
  // Chains fall back only before the first byte: the headers already name the target.
  showTarget(r.headers.get('x-cng-target'));
  $('pg-status').textContent = 'streaming…';
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const event = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      for (const line of event.split('\n')) {
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') continue;
        let chunk;
        try { chunk = JSON.parse(data); } catch (_) { continue; }
        if (chunk.error) throw new ApiError(500, chunk);
        if (chunk.choices && chunk.choices[0]) appendDelta(chunk.choices[0].delta);
        if (chunk.usage) $('pg-status').textContent = `${chunk.usage.prompt_tokens} tokens in, ${chunk.usage.completion_tokens} out`;
      }
    }
  }
  if ($('pg-status').textContent === 'streaming…') $('pg-status').textContent = 'done';
}

async function runImage(model, prompt) {
  const body = { model, prompt, n: 1, response_format: 'b64_json' };
  snippet('/v1/images/generations', body);
  const { data } = await api('POST', '/v1/images/generations', body);
  const item = data.data[0];
  $('pg-image').src = item.b64_json ? `data:image/png;base64,${item.b64_json}` : item.url;
  $('pg-image').hidden = false;
  $('pg-status').textContent = 'image ready';
}

async function runSpeech(model, prompt) {
  const body = { model, input: prompt, voice: 'alloy' };
  snippet('/v1/audio/speech', body, true);
  const r = await fetch('/v1/audio/speech', {
    method: 'POST',
    headers: authHeaders({ 'Content-Type': 'application/json' }),
    body: JSON.stringify(body),
  });
  if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
  const blob = await r.blob();
  $('pg-audio').src = URL.createObjectURL(blob);
  $('pg-audio').hidden = false;
  $('pg-status').textContent = `${blob.size} bytes of ${blob.type || 'audio'}`;
}

async function runTranscription(model) {
  const file = $('pg-file').files[0];
  if (!file) throw new Error('Choose an audio file first.');
  const form = new FormData();
  form.append('file', file);
  form.append('model', model);
  $('pg-snippet').textContent = `curl ${location.origin}/v1/audio/transcriptions \\\n  -H "Authorization: Bearer $CNG_KEY" \\\n  -F file=@${file.name} -F model=${model}`;
  const { data } = await api('POST', '/v1/audio/transcriptions', form);
  $('pg-output').textContent = data.text;
}

async function runEmbeddings(model, prompt) {
  const body = { model, input: prompt };
  snippet('/v1/embeddings', body);
  const { data } = await api('POST', '/v1/embeddings', body);
  const v = data.data[0].embedding;
  $('pg-output').textContent = `${v.length} dimensions\n[${v.slice(0, 8).map((x) => x.toFixed(4)).join(', ')}, …]`;
}

async function run() {
  resetOutput();
  const mode = $('pg-mode').value;
  const model = $('pg-model').value;
  const prompt = $('pg-prompt').value;
  $('pg-run').disabled = true;
  try {
    if (mode === 'chat') await runChat(model, prompt);
    else if (mode === 'image') await runImage(model, prompt);
    else if (mode === 'speech') await runSpeech(model, prompt);
    else if (mode === 'transcription') await runTranscription(model);
    else await runEmbeddings(model, prompt);
  } catch (e) {
    showError('pg-error', e);
    if (e.cngTarget) showTarget(e.cngTarget, true);
    $('pg-status').textContent = 'failed';
  } finally {
    $('pg-run').disabled = false;
  }
}

// ---------------------------------------------------------------------------------
// Wiring

function wire() {
  $('signin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('signin-error').textContent = '';
    const key = $('signin-key').value.trim();
    if (!key) return;
    try {
      await signIn(key);
      $('signin-key').value = '';
    } catch (e) {
      $('signin-error').textContent = e.message;
    }
  });
  $('signout').addEventListener('click', signOut);
  for (const b of document.querySelectorAll('nav button')) b.addEventListener('click', () => switchTab(b.dataset.tab));
  $('key-form').addEventListener('submit', createKey);
  $('new-key-dismiss').addEventListener('click', forgetSecret);
  $('new-key-copy').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('new-key-value').textContent);
      $('new-key-copy').textContent = 'Copied';
    } catch (_) {
      $('new-key-copy').textContent = 'Select and copy by hand';
    }
  });
  $('alias-form').addEventListener('submit', addAlias);
  $('config-save').addEventListener('click', () => saveConfig(collectConfig()));
  $('config-reload').addEventListener('click', () => loadConfig().then(() => { $('config-status').textContent = 'Reloaded.'; }));
  $('config-json-apply').addEventListener('click', () => {
    clearInvalid();
    try {
      const doc = JSON.parse($('config-json').value);
      doc.version = state.config.version;
      state.config = doc;
      renderConfig();
      showError('config-error', null);
    } catch (e) {
      showError('config-error', e);
      $('config-json').classList.add('invalid');
    }
  });
  $('config-export').addEventListener('click', () => exportConfig().catch((e) => showError('config-error', e)));
  $('config-import').addEventListener('change', importConfig);
  $('provider-form').addEventListener('submit', saveProvider);
  $('provider-kind').addEventListener('change', kindHint);
  $('provider-clear').addEventListener('click', resetProviderForm);
  $('targets-save').addEventListener('click', saveChains);
  $('providers-reload').addEventListener('click', async () => {
    if (await refreshProviders(true)) $('providers-status').textContent = 'Reloaded.';
  });
  kindHint();
  $('usage-form').addEventListener('submit', loadUsage);
  $('discover-run').addEventListener('click', () => discover(false));
  $('discover-accept').addEventListener('click', () => discover(true));
  $('pg-mode').addEventListener('change', fillModelSelect);
  $('pg-run').addEventListener('click', run);
  const saved = sessionStorage.getItem(KEY_STORAGE);
  if (saved) {
    signIn(saved).catch(() => sessionStorage.removeItem(KEY_STORAGE));
  } else {
    // Behind Cloudflare Access (when cng verifies it), no key is needed.
    signIn('').catch(() => { state.key = null; });
  }
}

wire();
