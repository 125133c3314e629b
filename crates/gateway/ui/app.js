// Carapulse web UI: a dependency-free single-page app served by the gateway from embedded
// assets. It only calls the public API (same origin, bearer token) and renders every value
// through textContent, never as HTML: alert labels, plan summaries and tool output are untrusted.
'use strict';

const TOKEN_KEY = 'carapulse.token';
const SSO_KEY = 'carapulse.sso';
let token = sessionStorage.getItem(TOKEN_KEY) || '';
let oidc = null;            // {issuer, client_id, scopes} when the gateway has OIDC configured
let events = null;          // the /v1/events EventSource
let current = null;         // the mounted view: {onEvent(ev), dispose()}

// ---- small DOM helpers -------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/// Replaces an element's children, skipping absent ones (replaceChildren would print "null").
function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== undefined && c !== null && c !== false)
    .map((c) => (c instanceof Node ? c : document.createTextNode(String(c)))));
}

const badge = (s) => h('span', { class: `badge s-${s}`, 'data-status': s }, s);
const when = (t) => (t ? new Date(t).toLocaleString() : '');
// The last 8 hex digits: ids are UUIDv7, whose leading digits are a timestamp shared by every
// row created within a minute; the tail is random.
const short = (id) => (id ? String(id).slice(-8) : '');
const view = () => document.getElementById('view');

function table(columns, rows, empty) {
  if (!rows.length) return h('p', { class: 'muted' }, empty || 'Nothing here.');
  return h('table', {},
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', {}, c[0])))),
    h('tbody', {}, rows.map((r) => h('tr', {}, columns.map((c) => h('td', {}, c[1](r)))))));
}

/// Heading for a list page: exact when every row is shown, else the planner's estimate.
function listTitle(title, rows, pagination) {
  if (!pagination.next_cursor) return `${title} (${rows.length})`;
  const total = pagination.total;
  return total === null || total === undefined ? `${title} (${rows.length}+)`
    : `${title} (${rows.length} of about ${Math.max(total, rows.length + 1)})`;
}

/// A list that pages by cursor, with the same controls everywhere: rows per page (`#ID-page-size`)
/// and "Load more", which appends the page after the last row shown (keyset pages never repeat
/// rows). The first page comes with the planner's estimate of the total. `path` is a function so
/// filters are read at each load; the returned function reloads from the first page.
function pagedList(out, { id, title, path, columns, empty, sizes = [50, 100, 10] }) {
  const size = h('select', { id: `${id}-page-size`, title: 'rows per page' },
    sizes.map((n) => h('option', { value: n }, `${n} per page`)));
  let generation = 0;
  const load = async () => {
    const mine = ++generation;
    const base = path();
    const sep = base.includes('?') ? '&' : '?';
    const pageUrl = (extra) => `${base}${sep}limit=${size.value}&${extra}`;
    try {
      const first = await api(pageUrl('count=estimate'));
      if (mine !== generation) return;  // a newer load (filter, page size, event) won
      let rows = first.data;
      let pagination = first.pagination;
      const estimate = pagination.total;
      const render = () => {
        const more = pagination.next_cursor
          ? h('button', { type: 'button', class: 'more', onclick: loadMore }, 'Load more') : null;
        fill(out, h('h2', {}, listTitle(title, rows, { ...pagination, total: estimate })),
          table(columns, rows, empty), h('div', { class: 'row pager' }, size, more));
      };
      const loadMore = async () => {
        try {
          const page = await api(pageUrl(`cursor=${encodeURIComponent(pagination.next_cursor)}`));
          if (mine !== generation) return;
          rows = rows.concat(page.data);
          pagination = page.pagination;
          render();
        } catch (err) { showError(out, err); }
      };
      render();
    } catch (err) { showError(out, err); }
  };
  size.addEventListener('change', load);
  return load;
}

// ---- API ---------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  const resp = await fetch(path, {
    method: options.method || 'GET',
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  if (resp.status === 401) { signOut('Your token was refused or has expired.'); throw new ApiError(401, 'unauthorized', 'unauthorized'); }
  if (resp.status === 204) return null;
  const text = await resp.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = text; }
  if (!resp.ok) {
    const err = (body && body.error) || {};
    throw new ApiError(resp.status, err.code || 'error', err.message || `HTTP ${resp.status}`);
  }
  return body;
}

function showError(target, err) {
  fill(target, h('p', { class: 'error', role: 'alert' }, err.message || String(err)));
}

// ---- session and live events -------------------------------------------------------------

function signOut(message) {
  token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  if (events) { events.close(); events = null; }
  setLive(false);
  renderLogin(message);
}

function setLive(on) {
  const el = document.getElementById('live');
  el.className = `live ${on ? 'on' : 'off'}`;
  el.textContent = on ? 'live' : 'offline';
}

function connectEvents() {
  if (events) events.close();
  events = new EventSource(`/v1/events?access_token=${encodeURIComponent(token)}`);
  events.onopen = () => setLive(true);
  events.onerror = () => setLive(false);  // EventSource reconnects with Last-Event-ID itself
  for (const kind of ['plan.updated', 'execution.updated', 'approval.updated', 'audit.created', 'alert.received', 'replay.progress']) {
    events.addEventListener(kind, (msg) => {
      let body = {};
      try { body = JSON.parse(msg.data); } catch (_) { return; }
      if (current && current.onEvent) current.onEvent({ kind, data: body.data || {} });
    });
  }
}

function renderLogin(message) {
  document.getElementById('nav').hidden = true;
  document.getElementById('logout').hidden = true;
  const sso = oidc ? h('section', {}, h('h2', {}, 'Single sign-on'),
    h('button', { id: 'sso', class: 'primary', onclick: () => startSso().catch((err) => renderLogin(err.message)) },
      'Sign in with SSO')) : null;
  const input = h('textarea', { id: 'token', rows: 4, placeholder: 'Paste a bearer token (JWT)' });
  const status = h('p', { class: 'error', role: 'alert' }, message || '');
  const submit = async (e) => {
    e.preventDefault();
    token = input.value.trim();
    if (!token) { status.textContent = 'A token is required.'; return; }
    try {
      await api('/v1/plans?limit=1');
    } catch (err) {
      if (err.status !== 401) status.textContent = err.message;
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    start();
  };
  fill(view(), sso, h('section', {},
    h('h2', {}, oidc ? 'Or paste a token' : 'Sign in'),
    h('form', { id: 'login', onsubmit: submit }, input, h('div', { class: 'row' },
      h('button', { class: 'primary', type: 'submit' }, 'Sign in'))),
    status));
}

function start() {
  document.getElementById('nav').hidden = false;
  document.getElementById('logout').hidden = false;
  connectEvents();
  route();
  showDemoBanner();
}

/// Demo mode (dev-up.sh --demo): the tool router runs recording fakes; say so on every page.
function showDemoBanner() {
  const banner = document.getElementById('demo-banner');
  api('/v1/diagnostics').then((d) => {
    if (!d.demo) { banner.hidden = true; return; }
    const clis = ((d.tool_router.demo || {}).clis || []).join(', ');
    fill(banner, h('strong', {}, 'Demo mode'),
      `: the tool router runs recording fakes (${clis}) instead of the real CLIs. Nothing outside this machine changes.`);
    banner.hidden = false;
  }).catch(() => { banner.hidden = true; });  // diagnostics are optional for the banner
}

// ---- single sign-on (OIDC authorization code with PKCE) ----------------------------------

const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
  .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const randomString = () => b64url(crypto.getRandomValues(new Uint8Array(32)));
const redirectUri = () => `${location.origin}/ui/`;

async function discover() {
  const resp = await fetch(`${oidc.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
  if (!resp.ok) throw new Error(`the identity provider's discovery document answered ${resp.status}`);
  return resp.json();
}

async function startSso() {
  const meta = await discover();
  const verifier = randomString();
  const state = randomString();
  const nonce = randomString();
  const challenge = b64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  sessionStorage.setItem(SSO_KEY, JSON.stringify({ verifier, state, nonce, token_endpoint: meta.token_endpoint }));
  const q = new URLSearchParams({
    response_type: 'code', client_id: oidc.client_id, redirect_uri: redirectUri(), scope: oidc.scopes,
    state, nonce, code_challenge: challenge, code_challenge_method: 'S256',
  });
  location.assign(`${meta.authorization_endpoint}?${q}`);
}

function claimsOf(jwt) {
  const part = (jwt.split('.')[1] || '').replace(/-/g, '+').replace(/_/g, '/');
  return JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4)));
}

/// Completes a sign-in when the provider sent the browser back with ?code=&state=. The ID token
/// becomes the bearer token after the state and nonce match what this tab sent.
async function finishSso() {
  const params = new URLSearchParams(location.search);
  if (!params.has('code') && !params.has('error')) return false;
  const saved = JSON.parse(sessionStorage.getItem(SSO_KEY) || 'null');
  sessionStorage.removeItem(SSO_KEY);
  history.replaceState(null, '', `/ui/${location.hash}`);
  if (params.has('error')) throw new Error(`Sign-in failed: ${params.get('error_description') || params.get('error')}`);
  if (!saved || params.get('state') !== saved.state) throw new Error('Sign-in failed: state mismatch; try again.');
  const resp = await fetch(saved.token_endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code', code: params.get('code'), redirect_uri: redirectUri(),
      client_id: oidc.client_id, code_verifier: saved.verifier,
    }),
  });
  if (!resp.ok) throw new Error(`Sign-in failed: the token endpoint answered ${resp.status}`);
  const body = await resp.json();
  if (!body.id_token) throw new Error('Sign-in failed: no ID token in the answer');
  if (claimsOf(body.id_token).nonce !== saved.nonce) throw new Error('Sign-in failed: nonce mismatch; try again.');
  token = body.id_token;
  sessionStorage.setItem(TOKEN_KEY, token);
  return true;
}

// ---- router ------------------------------------------------------------------------------

const routes = [
  [/^#\/dashboard$/, dashboard],
  [/^#\/new(?:\?workflow=([\w-]+))?$/, newPlan],
  [/^#\/library$/, library],
  [/^#\/(playbooks|runbooks)\/([\w-]+)$/, libraryDocument],
  [/^#\/plans$/, plansList],
  [/^#\/plans\/([\w-]+)$/, planDetail],
  [/^#\/executions$/, executionsList],
  [/^#\/executions\/([\w-]+)$/, executionDetail],
  [/^#\/context(?:\?service=(.*))?$/, contextGraph],
  [/^#\/audit$/, auditLog],
  [/^#\/policies$/, policies],
  [/^#\/replays$/, replays],
  [/^#\/replays\/([\w-]+)$/, replayReport],
  [/^#\/integrations$/, integrations],
];

function route() {
  if (!token) { renderLogin(); return; }
  if (current && current.dispose) current.dispose();
  current = null;
  const hash = location.hash || '#/dashboard';
  for (const a of document.querySelectorAll('nav a')) {
    a.classList.toggle('active', hash.startsWith(a.getAttribute('href')));
  }
  for (const [re, render] of routes) {
    const m = hash.match(re);
    if (m) { current = render(...m.slice(1).map((x) => (x ? decodeURIComponent(x) : x))) || null; return; }
  }
  fill(view(), h('p', {}, 'No such page.'));
}

/// Re-runs `load` at most every 300 ms when events arrive (bursts of step updates).
function debounced(load) {
  let timer = null;
  return () => { clearTimeout(timer); timer = setTimeout(load, 300); };
}

// ---- views -------------------------------------------------------------------------------

function dashboard() {
  const alerts = h('section', { id: 'alerts' }, h('h2', {}, 'Active alerts'));
  const pending = h('section', { id: 'pending' }, h('h2', {}, 'Plans awaiting approval'));
  const running = h('section', { id: 'running' }, h('h2', {}, 'Running executions'));
  const recent = h('section', { id: 'recent' }, h('h2', {}, 'Recent activity'));
  fill(view(), h('div', { class: 'grid' }, alerts, pending, running), recent);
  const small = [10, 50];
  const lists = [
    pagedList(alerts, { id: 'alerts', title: 'Active alerts', sizes: small, path: () => '/v1/alerts?status=firing', empty: 'No firing alerts.', columns: [
      ['Alert', (x) => (x.labels && x.labels.alertname) || x.fingerprint],
      ['Service', (x) => (x.labels && (x.labels.service || x.labels.deployment || x.labels.job)) || ''],
      ['Severity', (x) => (x.labels && x.labels.severity) || ''],
      ['Since', (x) => when(x.started_at || x.updated_at)],
    ] }),
    pagedList(pending, { id: 'pending', title: 'Plans awaiting approval', sizes: small, path: () => '/v1/plans?approval_state=pending', empty: 'Nothing waits for approval.', columns: [
      ['Plan', (x) => h('a', { href: `#/plans/${x.plan_id}` }, x.summary)],
      ['Risk', (x) => badge(x.risk_level)],
      ['By', (x) => x.created_by],
    ] }),
    pagedList(running, { id: 'running', title: 'Running executions', sizes: small, path: () => '/v1/executions?status=running', empty: 'Nothing is running.', columns: [
      ['Execution', (x) => h('a', { href: `#/executions/${x.execution_id}` }, short(x.execution_id))],
      ['Status', (x) => badge(x.status)],
      ['Started', (x) => when(x.started_at)],
    ] }),
    // The last executions, whatever became of them: what happened while you were away.
    pagedList(recent, { id: 'recent', title: 'Recent activity', sizes: small, path: () => '/v1/executions', empty: 'Nothing has run yet.', columns: [
      ['Execution', (x) => h('a', { href: `#/executions/${x.execution_id}` }, short(x.execution_id))],
      ['Plan', (x) => h('a', { href: `#/plans/${x.plan_id}` }, short(x.plan_id))],
      ['Outcome', (x) => badge(x.status)],
      ['By', (x) => x.created_by || ''],
      ['Finished', (x) => when(x.completed_at) || 'not yet'],
      ['Error', (x) => (x.error ? h('span', { class: 'error' }, x.error.slice(0, 120)) : '')],
    ] }),
  ];
  const load = () => lists.forEach((reload) => reload());
  load();
  return { onEvent: debounced(load) };
}

function plansList() {
  const out = h('section', {}, h('h2', {}, 'Plans'));
  const state = h('select', { id: 'plan-state' }, ['', 'pending', 'approved', 'denied', 'expired', 'not_required']
    .map((s) => h('option', { value: s }, s || 'any approval state')));
  fill(view(), h('div', { class: 'row' }, state, h('a', { href: '#/new' }, 'New plan')), out);
  const load = pagedList(out, {
    id: 'plans',
    title: 'Plans',
    path: () => (state.value ? `/v1/plans?approval_state=${state.value}` : '/v1/plans'),
    columns: [
      ['Summary', (x) => h('a', { href: `#/plans/${x.plan_id}` }, x.summary)],
      ['Risk', (x) => badge(x.risk_level)],
      ['Approval', (x) => badge(x.approval_state)],
      ['Trigger', (x) => x.trigger],
      ['Created', (x) => when(x.created_at)],
    ],
  });
  state.addEventListener('change', load);
  load();
  return { onEvent: (ev) => { if (ev.kind === 'plan.updated' || ev.kind === 'approval.updated') debounced(load)(); } };
}

// "New plan": an intent for the planner, or a catalogue workflow with a form generated from its
// input schema, plus the plan's context. Preview asks the server what creating would give
// (steps, risk, policy decision, approval) without storing anything; only then can it be
// submitted, and any edit asks for a new preview. What was previewed is what is submitted: an
// intent's plan is created with the previewed steps.
function newPlan(preset) {
  const message = h('p', { id: 'new-plan-message', role: 'status' });
  const preview = h('section', { id: 'new-plan-preview', hidden: true });
  const modeIntent = h('input', { type: 'radio', name: 'mode', id: 'mode-intent', value: 'intent', checked: true });
  const modeWorkflow = h('input', { type: 'radio', name: 'mode', id: 'mode-workflow', value: 'workflow' });
  const field = (label, input, hint) => h('label', { class: 'field' }, label, input, hint ? h('small', {}, hint) : null);
  const summary = h('input', { id: 'new-summary', maxlength: 500, placeholder: 'what this plan does' });
  const intent = h('textarea', { id: 'new-intent', rows: 3, maxlength: 4000, placeholder: 'scale web to 4 from 2' });
  const environment = h('select', { id: 'new-environment' },
    ['dev', 'local', 'test', 'staging', 'prod'].map((e) => h('option', { value: e }, e)));
  const namespace = h('input', { id: 'new-namespace', placeholder: 'web', maxlength: 63 });
  const cluster = h('input', { id: 'new-cluster', placeholder: 'optional', maxlength: 128 });
  const workflowSelect = h('select', { id: 'new-workflow' });
  const workflowFields = h('div', { class: 'row', id: 'workflow-fields' });
  const description = h('p', { class: 'muted' });
  const intentPart = h('fieldset', {}, h('legend', {}, 'What should happen'),
    field('Intent', intent, 'planned by the configured planner (rules offline, or the LLM)'));
  const workflowPart = h('fieldset', { hidden: true }, h('legend', {}, 'Workflow'),
    field('Workflow', workflowSelect), description, workflowFields);
  const previewButton = h('button', { type: 'submit', id: 'preview', class: 'primary' }, 'Preview');
  const submitButton = h('button', { type: 'button', id: 'submit-plan', disabled: true }, 'Create plan');
  let catalogue = [];
  let inputs = [];          // [name, schema, element] of the chosen workflow
  let previewed = null;     // the body the preview was made with, and its answer

  const mode = () => (modeWorkflow.checked ? 'workflow' : 'intent');
  const context = () => {
    const c = { environment: environment.value };
    if (namespace.value.trim()) c.namespace = namespace.value.trim();
    if (cluster.value.trim()) c.cluster_id = cluster.value.trim();
    return c;
  };
  const stale = () => {
    previewed = null;
    submitButton.disabled = true;
    preview.hidden = true;
  };
  const showWorkflow = () => {
    const wf = catalogue.find((w) => w.name === workflowSelect.value);
    inputs = [];
    if (!wf) { fill(workflowFields); return; }
    description.textContent = wf.description;
    const schema = wf.input_schema || {};
    const required = new Set(schema.required || []);
    fill(workflowFields);
    for (const [name, prop] of Object.entries(schema.properties || {})) {
      let el;
      if (prop.enum) el = h('select', {}, ['', ...prop.enum].map((o) => h('option', { value: o }, o || '(none)')));
      else if (prop.type === 'boolean') el = h('input', { type: 'checkbox' });
      else if (prop.type === 'integer' || prop.type === 'number') {
        el = h('input', { type: 'number', min: prop.minimum, max: prop.maximum, step: prop.type === 'integer' ? 1 : 'any' });
      } else if (prop.type === 'object' || (prop.type === 'array' && prop.items && prop.items.type === 'object')) {
        el = h('textarea', { rows: 2, placeholder: prop.type === 'object' ? '{"key": "value"}' : '[{...}]' });
      } else if (prop.type === 'array') el = h('input', { placeholder: 'comma-separated' });
      else el = h('input', { maxlength: prop.maxLength });
      el.id = `wf-${name}`;
      el.addEventListener('input', stale);
      inputs.push([name, prop, el]);
      workflowFields.append(field(`${name}${required.has(name) ? ' *' : ''}`, el, prop.description));
    }
    if (!inputs.length) fill(workflowFields, h('p', { class: 'muted' }, 'This workflow takes no input.'));
  };
  // The workflow's input from the generated form: empty fields are left out, numbers and JSON
  // parsed; a field that does not parse is named.
  const workflowInput = () => {
    const input = {};
    for (const [name, prop, el] of inputs) {
      if (prop.type === 'boolean') { if (el.checked) input[name] = true; continue; }
      const raw = el.value.trim();
      if (!raw) continue;
      if (prop.type === 'integer' || prop.type === 'number') input[name] = Number(raw);
      else if (prop.type === 'object' || (prop.type === 'array' && prop.items && prop.items.type === 'object')) {
        try { input[name] = JSON.parse(raw); } catch (err) { throw new Error(`${name}: not valid JSON (${err.message})`); }
      } else if (prop.type === 'array') input[name] = raw.split(',').map((x) => x.trim()).filter(Boolean);
      else input[name] = raw;
    }
    return input;
  };
  const request = () => {
    if (mode() === 'workflow') {
      const body = { input: workflowInput(), context: context() };
      if (summary.value.trim()) body.summary = summary.value.trim();
      return { path: `/v1/workflows/${encodeURIComponent(workflowSelect.value)}/start`, body };
    }
    if (!intent.value.trim()) throw new Error('Describe what should happen (the intent).');
    return {
      path: '/v1/plans',
      body: { summary: summary.value.trim() || intent.value.trim().slice(0, 200), intent: intent.value.trim(), context: context() },
    };
  };
  const doPreview = async (e) => {
    e.preventDefault();
    stale();
    message.textContent = ''; message.className = '';
    let req;
    try { req = request(); } catch (err) { message.textContent = err.message; message.className = 'error'; return; }
    try {
      const answer = await api(req.path, { method: 'POST', body: { ...req.body, preview: true } });
      previewed = { req, answer };
      const p = answer.plan;
      fill(preview,
        h('h2', {}, `Preview: ${p.summary}`),
        h('div', { class: 'row' }, 'Risk ', h('span', { id: 'preview-risk' }, badge(p.risk_level)),
          ' Policy ', h('span', { id: 'preview-decision' }, badge(answer.policy.decision)),
          answer.approval_required ? h('span', { id: 'preview-approval' }, badge('pending'), ' needs approval before it runs')
            : h('span', { id: 'preview-approval' }, badge('not_required'), ' runs without approval')),
        (answer.policy.reasons || []).length ? h('p', { class: 'muted' }, `Policy reasons: ${answer.policy.reasons.join(', ')}`) : null,
        h('p', { class: 'muted' }, `planner ${p.planner || 'caller'}`),
        stepsTable(p.steps || []));
      preview.hidden = false;
      submitButton.textContent = mode() === 'workflow' ? 'Start workflow' : 'Create plan';
      submitButton.disabled = false;
    } catch (err) { message.textContent = err.message; message.className = 'error'; }
  };
  const doSubmit = async () => {
    if (!previewed) return;
    const { req, answer } = previewed;
    const body = { ...req.body };
    if (req.path === '/v1/plans') body.steps = answer.plan.steps;
    submitButton.disabled = true;
    try {
      const created = await api(req.path, { method: 'POST', body });
      // 202 from a workflow start: it runs now; else the plan waits (for approval or Execute).
      if (created.execution_id) location.hash = `#/executions/${created.execution_id}`;
      else location.hash = `#/plans/${created.plan_id || (created.plan && created.plan.plan_id)}`;
    } catch (err) { message.textContent = err.message; message.className = 'error'; submitButton.disabled = false; }
  };
  submitButton.addEventListener('click', doSubmit);
  const switchMode = () => {
    intentPart.hidden = mode() !== 'intent';
    workflowPart.hidden = mode() !== 'workflow';
    stale();
  };
  modeIntent.addEventListener('change', switchMode);
  modeWorkflow.addEventListener('change', switchMode);
  workflowSelect.addEventListener('change', () => { stale(); showWorkflow(); });
  for (const el of [summary, intent, environment, namespace, cluster]) el.addEventListener('input', stale);
  environment.addEventListener('change', stale);

  fill(view(), h('section', {}, h('h2', {}, 'New plan'),
    h('form', { id: 'new-plan', onsubmit: doPreview },
      h('div', { class: 'row' },
        h('label', {}, modeIntent, ' Describe the change'),
        h('label', {}, modeWorkflow, ' Workflow from the catalogue')),
      intentPart, workflowPart,
      h('fieldset', {}, h('legend', {}, 'Context'), h('div', { class: 'row' },
        field('Summary', summary, 'optional for workflows'), field('Environment', environment),
        field('Namespace', namespace), field('Cluster', cluster))),
      h('div', { class: 'row' }, previewButton, submitButton)),
    message), preview);
  api('/v1/workflows').then((w) => {
    catalogue = w.data || [];
    fill(workflowSelect, catalogue.map((x) => h('option', { value: x.name }, x.name)));
    // Started from the library's workflow list: that workflow, in workflow mode.
    if (preset && catalogue.some((x) => x.name === preset)) {
      workflowSelect.value = preset;
      modeWorkflow.checked = true;
      switchMode();
    }
    showWorkflow();
  }).catch((err) => showError(message, err));
  return null;
}

// The library: playbooks (alert -> workflow rules), runbooks (by service) and the workflow
// catalogue, each workflow with a link that opens "New plan" on it.
function library() {
  const playbooks = h('section', { id: 'playbooks' }, h('h2', {}, 'Playbooks'));
  const runbooks = h('section', { id: 'runbooks' }, h('h2', {}, 'Runbooks'));
  const workflows = h('section', { id: 'workflows' }, h('h2', {}, 'Workflows'));
  fill(view(), playbooks, runbooks, workflows);
  const tagsOf = (x) => (Array.isArray(x.tags) ? x.tags.join(', ') : '');
  pagedList(playbooks, { id: 'playbooks', title: 'Playbooks', empty: 'No playbooks yet.', path: () => '/v1/playbooks', columns: [
    ['Name', (x) => h('a', { href: `#/playbooks/${x.id}` }, x.name)],
    ['Alert', (x) => (x.spec && x.spec.alertname) || ''],
    ['Workflow', (x) => (x.spec && x.spec.workflow) || ''],
    ['Version', (x) => String(x.version)],
    ['Tags', tagsOf],
    ['Updated', (x) => when(x.created_at)],
  ] })();
  pagedList(runbooks, { id: 'runbooks', title: 'Runbooks', empty: 'No runbooks yet.', path: () => '/v1/runbooks', columns: [
    ['Service', (x) => x.service],
    ['Name', (x) => h('a', { href: `#/runbooks/${x.id}` }, x.name)],
    ['Version', (x) => String(x.version)],
    ['Tags', tagsOf],
    ['Updated', (x) => when(x.created_at)],
  ] })();
  api('/v1/workflows').then((w) => {
    fill(workflows, h('h2', {}, `Workflows (${(w.data || []).length})`), table([
      ['Workflow', (x) => x.name],
      ['What it does', (x) => x.description],
      ['Inputs', (x) => Object.keys((x.input_schema || {}).properties || {}).join(', ')],
      ['', (x) => h('a', { href: `#/new?workflow=${x.name}`, class: 'start-workflow', 'data-workflow': x.name }, 'Start...')],
    ], w.data || [], 'The catalogue is empty.'));
  }).catch((err) => showError(workflows, err));
  return null;
}

// One playbook or runbook: its spec or body, as text.
function libraryDocument(shelf, id) {
  const out = h('section', { id: 'library-document' });
  fill(view(), out);
  api(`/v1/${shelf}/${id}`).then((d) => {
    fill(out,
      h('h2', {}, `${shelf === 'runbooks' ? `${d.service}/` : ''}${d.name} (version ${d.version})`),
      h('p', { class: 'muted' }, `by ${d.created_by || 'unknown'}, ${when(d.created_at)}`),
      d.body ? h('pre', { id: 'document-body' }, d.body) : null,
      h('pre', { id: 'document-spec' }, JSON.stringify(d.spec, null, 2)),
      h('a', { href: '#/library' }, 'Back to the library'));
  }).catch((err) => showError(out, err));
  return null;
}

function stepsTable(steps) {
  return table([
    ['#', (s) => s.ordinal ?? ''],
    ['Stage', (s) => s.stage || 'act'],
    ['Tool', (s) => `${s.tool} ${s.action}`],
    ['Input', (s) => h('code', {}, JSON.stringify(s.input))],
    ['Rollback', (s) => (s.rollback ? `${s.rollback.tool} ${s.rollback.action}` : '')],
  ], steps, 'No steps yet (draft).');
}

/// "What if": the loaded policy and a candidate file side by side on this plan, per step, with the
/// rules (file:line) behind each answer. Nothing is stored but an audit event.
/// `draft` (a textarea holding `{context, steps}`) makes it a what-if of an unsaved plan.
function whatIf(planId, draft) {
  const name = h('input', { id: 'whatif-name', value: 'candidate.rego', size: 24, 'aria-label': 'candidate file name' });
  const text = h('textarea', { id: 'whatif-text', rows: 8, cols: 80, placeholder: 'package policy.assistant.v1\n\nimport rego.v1\n\ndeny_reasons contains "..." if { ... }', 'aria-label': 'candidate Rego' });
  const result = h('div', { id: 'whatif-result' });
  const rules = (answer) => (answer && answer.rules ? answer.rules.filter((r) => r.rule !== 'decision')
    .map((r) => `${r.rule} ${JSON.stringify(r.value)}${r.at ? ` (${r.at})` : ''}`).join('; ') : '');
  const run = async () => {
    const body = text.value.trim() ? { candidate: { files: { [name.value.trim()]: text.value } } } : {};
    if (draft) {
      try { body.plan = JSON.parse(draft.value); } catch (err) { fill(result, h('p', { class: 'error' }, `Invalid plan JSON: ${err.message}`)); return; }
    }
    try {
      const a = await api(draft ? '/v1/policy/whatif' : `/v1/plans/${planId}/whatif`, { method: 'POST', body });
      const rows = [{ what: 'plan', ...a.plan }].concat((a.steps || []).map((s) => ({ what: `${s.index + 1}. ${s.step}`, ...s })));
      fill(result, table([
        ['What', (r) => r.what],
        ['Loaded', (r) => badge(r.current ? r.current.decision : '-')],
        ['Candidate', (r) => (r.candidate ? badge(r.candidate.decision) : '-')],
        ['Changed', (r) => (r.changed ? h('strong', { class: 'changed' }, 'changed') : '')],
        ['Rules (candidate, else loaded)', (r) => rules(r.candidate || r.current)],
      ], rows));
    } catch (err) { fill(result, h('p', { class: 'error' }, err.message)); }
  };
  return h('section', { id: 'whatif' }, h('h2', {}, 'Policy what-if'),
    h('p', { class: 'muted' }, 'Compare the loaded policy with a candidate file (it replaces the loaded file of the same name, or is added). Nothing is stored.'),
    draft ? h('p', {}, 'Plan (context and steps):') : null, draft,
    h('div', { class: 'row' }, name, h('button', { id: 'whatif-run', onclick: run }, 'Compare')),
    text, result);
}

// ---- blast radius ---------------------------------------------------------------------------

const SVG_NS = 'http://www.w3.org/2000/svg';

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/// The services a change reaches, drawn left to right: callers on the left, the changed
/// services (highlighted) on the right, one column per hop; an edge is as wide as its share of
/// the largest request rate. Names are text nodes, never markup.
function blastGraph(estimate) {
  const services = estimate.services || [];
  const edges = estimate.edges || [];
  if (!services.length) return null;
  const targets = new Set(estimate.target_services || []);
  const depth = Math.max(...services.map((s) => s.depth));
  const columns = new Map();
  for (const s of services) {
    if (!columns.has(s.depth)) columns.set(s.depth, []);
    columns.get(s.depth).push(s);
  }
  const colWidth = 190;
  const rowHeight = 48;
  const boxW = 150;
  const boxH = 30;
  const tallest = Math.max(...[...columns.values()].map((c) => c.length));
  const width = (depth + 1) * colWidth + 20;
  const height = tallest * rowHeight + 20;
  const at = new Map();
  for (const [d, list] of columns) {
    list.forEach((s, i) => at.set(s.name, { x: (depth - d) * colWidth + 10, y: i * rowHeight + 10 }));
  }
  const maxRps = Math.max(1e-9, ...edges.map((e) => e.rps));
  const lines = edges.filter((e) => at.has(e.caller) && at.has(e.callee)).map((e) => {
    const a = at.get(e.caller);
    const b = at.get(e.callee);
    const w = (1 + 7 * (e.rps / maxRps)).toFixed(1);
    return svg('line', {
      class: 'edge', x1: a.x + boxW, y1: a.y + boxH / 2, x2: b.x, y2: b.y + boxH / 2,
      'stroke-width': w, 'data-caller': e.caller, 'data-callee': e.callee, 'data-rps': e.rps,
    }, svg('title', {}, `${e.caller} -> ${e.callee}: ${e.rps.toFixed(1)} req/s, ${(100 * e.error_ratio).toFixed(1)}% errors`));
  });
  const nodes = services.map((s) => {
    const p = at.get(s.name);
    return svg('g', { class: targets.has(s.name) ? 'node target' : 'node', 'data-service': s.name },
      svg('rect', { x: p.x, y: p.y, width: boxW, height: boxH, rx: 4 }),
      svg('text', { x: p.x + 8, y: p.y + 19 }, s.name.length > 20 ? `${s.name.slice(0, 19)}…` : s.name),
      svg('title', {}, `${s.name}: ${s.depth} hop(s) upstream; ${s.rps_in.toFixed(1)} req/s in`
        + (s.namespace ? `; namespace ${s.namespace}` : '') + (s.team ? `; team ${s.team}` : '') + (s.tier ? `; tier ${s.tier}` : '')));
  });
  return svg('svg', { id: 'blast-graph', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-label': `services reached by this change: ${services.map((s) => s.name).join(', ')}` }, ...lines, ...nodes);
}

/// The plan page's blast-radius section: the estimate's headline and freshness, the affected
/// subgraph, and the services with their teams and rates.
function blastRadiusSection(plan) {
  const blast = plan.blast_radius;
  if (!blast) return null;
  const e = blast.estimate || {};
  const age = blast.age_secs < 120 ? `${blast.age_secs}s` : blast.age_secs < 7200 ? `${Math.floor(blast.age_secs / 60)}m` : `${Math.floor(blast.age_secs / 3600)}h`;
  return h('section', { id: 'blast-radius' },
    h('h2', {}, 'Blast radius'),
    h('p', { id: 'blast-headline', class: e.unknown ? 'error' : '' }, blast.headline),
    h('p', { class: 'muted' }, `estimated ${blast.stage === 'approval' ? 'at approval' : 'with this revision'}, ${age} ago`
      + (e.depth_capped ? `; callers beyond ${e.depth} hops not shown` : '') + (e.truncated ? '; lists cut' : '')),
    blastGraph(e),
    (e.services || []).length ? table([
      ['Service', (s) => s.name],
      ['Hops', (s) => String(s.depth)],
      ['Namespace', (s) => s.namespace || ''],
      ['Team', (s) => s.team || ''],
      ['Tier', (s) => s.tier || ''],
      ['Req/s in', (s) => s.rps_in.toFixed(1)],
    ], e.services) : null);
}

function planDetail(id) {
  const out = h('div', {});
  fill(view(), out);
  const load = async () => {
    let plan;
    let execs;
    try {
      [plan, execs] = await Promise.all([api(`/v1/plans/${id}`), api(`/v1/executions?plan_id=${id}&limit=1`)]);
    } catch (err) { showError(out, err); return; }
    // A revised plan shows what its current revision changed, and its revisions.
    let changes = null;
    if ((plan.revision || 1) > 1) {
      try {
        const [diff, revs] = await Promise.all([api(`/v1/plans/${id}/diff`), api(`/v1/plans/${id}/revisions`)]);
        changes = h('section', { id: 'plan-changes' },
          h('h2', {}, `Changes in revision ${diff.to} (from ${diff.from})`),
          h('p', { id: 'diff-summary' }, diff.summary),
          h('pre', { id: 'diff-text' }, (diff.text || []).join('\n') || 'no change'),
          h('h3', {}, 'Revisions'),
          table([
            ['Revision', (r) => String(r.revision) + (r.revision === revs.current ? ' (current)' : '')],
            ['By', (r) => r.created_by],
            ['When', (r) => when(r.created_at)],
            ['Risk', (r) => badge(r.risk_level || '')],
            ['Policy', (r) => badge(r.policy_decision || '')],
            ['Note', (r) => r.note || ''],
          ], revs.data || []));
      } catch (err) { changes = h('p', { class: 'error' }, `changes unavailable: ${err.message}`); }
    }
    const message = h('p', { id: 'decision-message', role: 'status' });
    const decide = (status) => async () => {
      try {
        await api('/v1/approvals', { method: 'POST', body: { plan_id: id, status, source: 'ui' } });
        message.textContent = `Plan ${status}.`;
        load();
      } catch (err) { message.textContent = err.message; message.className = 'error'; }
    };
    const execute = async () => {
      try {
        const r = await api(`/v1/plans/${id}/execute`, { method: 'POST', body: {} });
        location.hash = `#/executions/${r.execution_id}`;
      } catch (err) { message.textContent = err.message; message.className = 'error'; }
    };
    const pendingApproval = plan.approval_state === 'pending';
    const runnable = ['approved', 'not_required'].includes(plan.approval_state) && execs.data.length === 0;
    fill(out,
      h('section', {},
        h('h2', {}, plan.summary),
        h('div', { class: 'row' },
          'Risk ', badge(plan.risk_level), ' Policy ', badge(plan.policy_decision),
          ' Approval ', h('span', { id: 'approval-state' }, badge(plan.approval_state)),
          plan.approval_expires_at ? h('span', { class: 'muted' }, `expires ${when(plan.approval_expires_at)}`) : null,
          plan.approvals && plan.approvals.required > 1
            ? h('span', { id: 'approvals-progress' }, ` ${plan.approvals.approved_by.length} of ${plan.approvals.required} approvals`
              + (plan.approvals.approved_by.length ? ` (${plan.approvals.approved_by.join(', ')})` : ''))
            : null),
        h('p', { class: 'muted' }, `${plan.trigger} plan by ${plan.created_by}, ${when(plan.created_at)}; planner ${plan.planner || 'caller'}; revision ${plan.revision || 1}`),
        plan.intent ? h('p', {}, 'Intent: ', plan.intent) : null,
        h('div', { class: 'row' },
          pendingApproval ? h('button', { id: 'approve', class: 'primary', onclick: decide('approved') }, 'Approve') : null,
          pendingApproval ? h('button', { id: 'deny', class: 'danger', onclick: decide('denied') }, 'Deny') : null,
          runnable ? h('button', { id: 'execute', onclick: execute }, 'Execute') : null),
        message),
      changes,
      blastRadiusSection(plan),
      h('section', {}, h('h2', {}, 'Steps'), stepsTable(plan.steps || [])),
      planWhatIf,
      h('section', {}, h('h2', {}, 'Policy'), h('pre', {}, JSON.stringify({
        decision: plan.policy_decision, constraints: plan.constraints, context: plan.context,
      }, null, 2))),
      planExecs);
    loadExecs();
  };
  // Kept across reloads of the page's data, so a candidate being written is not lost.
  const planWhatIf = whatIf(id);
  const planExecs = h('section', { id: 'plan-executions' });
  const loadExecs = pagedList(planExecs, {
    id: 'plan-executions', title: 'Executions', sizes: [10, 50], empty: 'Not executed.',
    path: () => `/v1/executions?plan_id=${id}`,
    columns: [
      ['Execution', (x) => h('a', { href: `#/executions/${x.execution_id}` }, short(x.execution_id))],
      ['Status', (x) => badge(x.status)],
      ['Created', (x) => when(x.created_at)],
    ],
  });
  load();
  return {
    onEvent: (ev) => {
      const d = ev.data || {};
      if (d.plan_id === id || d.id === id) debounced(load)();
    },
  };
}

function executionsList() {
  const out = h('section', {}, h('h2', {}, 'Executions'));
  fill(view(), out);
  const load = pagedList(out, {
    id: 'executions',
    title: 'Executions',
    path: () => '/v1/executions',
    columns: [
      ['Execution', (x) => h('a', { href: `#/executions/${x.execution_id}` }, short(x.execution_id))],
      ['Plan', (x) => h('a', { href: `#/plans/${x.plan_id}` }, short(x.plan_id))],
      ['Status', (x) => badge(x.status)],
      ['Started', (x) => when(x.started_at)],
      ['Finished', (x) => when(x.completed_at)],
    ],
  });
  load();
  return { onEvent: (ev) => { if (ev.kind === 'execution.updated') debounced(load)(); } };
}

function executionDetail(id) {
  const head = h('section', {});
  const steps = h('section', {}, h('h2', {}, 'Timeline'));
  const evidence = h('section', {}, h('h2', {}, 'Evidence'));
  const verification = h('section', { id: 'verification' });
  const logs = h('pre', { id: 'logs' });
  fill(view(), head, steps, verification, h('section', {}, h('h2', {}, 'Live logs'), logs), evidence);
  let logStream = null;
  const finished = (s) => ['succeeded', 'failed', 'rolled_back', 'cancelled', 'expired'].includes(s);
  const load = async () => {
    let x;
    try { x = await api(`/v1/executions/${id}`); } catch (err) { showError(head, err); return; }
    const message = h('p', { role: 'status' });
    const cancel = async () => {
      try {
        await api(`/v1/executions/${id}/cancel`, { method: 'POST', body: { reason: 'cancelled from the web UI' } });
        message.textContent = 'Cancel requested.';
      } catch (err) { message.textContent = err.message; message.className = 'error'; }
    };
    fill(head,
      h('h2', {}, `Execution ${short(id)}`),
      h('div', { class: 'row' }, 'Status ', h('span', { id: 'exec-status' }, badge(x.status)),
        h('a', { href: `#/plans/${x.plan_id}` }, `plan ${short(x.plan_id)}`),
        finished(x.status) ? null : h('button', { id: 'cancel', class: 'danger', onclick: cancel }, 'Cancel')),
      x.error ? h('p', { class: 'error' }, x.error) : null,
      h('p', { class: 'muted' }, `started ${when(x.started_at)}${x.completed_at ? `, finished ${when(x.completed_at)}` : ''}`),
      message);
    const calls = x.tool_calls || [];
    fill(steps, h('h2', {}, 'Timeline'), h('ol', { class: 'timeline' },
      (x.steps || []).map((s) => h('li', {}, badge(s.status), ` ${s.stage} step ${s.ordinal}`,
        s.error ? h('span', { class: 'error' }, ` ${s.error}`) : '',
        h('span', { class: 'muted' }, ` ${when(s.started_at)}`))),
      calls.map((c) => h('li', { class: 'muted' }, `${c.tool_name} ${c.action}: `, badge(c.status),
        c.exit_code !== null && c.exit_code !== undefined ? ` exit ${c.exit_code}` : '',
        c.demo ? h('span', { class: 'badge demo', title: 'a recording fake ran instead of the real CLI: nothing outside this machine changed' }, 'demo') : null))));
    renderVerification(verification, id, x.verification || {});
    fill(evidence, h('h2', {}, 'Evidence'), table([
      ['Kind', (e) => e.kind],
      ['Query', (e) => e.query || ''],
      ['Summary', (e) => h('code', {}, JSON.stringify(e.summary_json ?? e.summary ?? {}))],
      ['At', (e) => when(e.collected_at)],
    ], x.evidence || [], 'No evidence yet.'));
    if (!logStream) {
      logStream = new EventSource(`/v1/executions/${id}/logs?access_token=${encodeURIComponent(token)}`);
      logStream.addEventListener('log', (m) => {
        try {
          const l = JSON.parse(m.data);
          logs.append(document.createTextNode(`[${l.stream}] ${l.message}\n`));
        } catch (_) { /* a malformed frame is skipped */ }
      });
      logStream.addEventListener('end', () => { logStream.close(); });
    }
  };
  load();
  return {
    onEvent: (ev) => {
      const d = ev.data || {};
      if (d.execution_id === id || d.id === id) debounced(load)();
    },
    dispose: () => { if (logStream) logStream.close(); },
  };
}

function contextGraph(service) {
  const input = h('input', { id: 'service', placeholder: 'service name', value: service || '' });
  const out = h('section', {});
  const form = h('form', { class: 'row', onsubmit: (e) => { e.preventDefault(); location.hash = `#/context?service=${encodeURIComponent(input.value.trim())}`; } },
    input, h('button', { type: 'submit' }, 'Show'));
  fill(view(), h('section', {}, h('h2', {}, 'Context graph'), form), out);
  const load = async () => {
    if (!service) {
      await pagedList(out, {
        id: 'services', title: 'Services', sizes: [100, 50, 10], empty: 'No services collected yet.',
        path: () => '/v1/context/services',
        columns: [
          ['Service', (s) => h('a', { href: `#/context?service=${encodeURIComponent(s.name)}` }, s.name)],
          ['Labels', (s) => JSON.stringify(s.labels || {})],
        ],
      })();
      return;
    }
    try {
      const g = await api(`/v1/context/graph?service=${encodeURIComponent(service)}&depth=2`);
      fill(out, h('h2', {}, `Neighbourhood of ${service}`), drawGraph(g.nodes || [], g.edges || [], service));
    } catch (err) { showError(out, err); }
  };
  load();
  return null;
}

/// Radial layout: the service in the middle, its neighbours on rings by distance.
// What the run observed: captured values, preconditions, and each analysis drawn as its samples
// against the threshold. Redrawn on every execution event, so samples appear as they are taken.
function renderVerification(target, id, v) {
  const captures = Object.entries(v.captures || {});
  const analyses = v.analyses || [];
  const preconditions = v.preconditions || [];
  if (!captures.length && !analyses.length && !preconditions.length) { fill(target); return; }
  const message = h('p', { role: 'status' });
  const decide = (decision) => async () => {
    try {
      await api(`/v1/executions/${id}/decision`, { method: 'POST', body: { decision, note: 'from the web UI' } });
      message.textContent = `${decision} sent.`;
    } catch (err) { message.textContent = err.message; message.className = 'error'; }
  };
  fill(target,
    h('h2', {}, 'Verification'),
    captures.length ? table([
      ['Captured', ([name]) => name],
      ['Value', ([, c]) => h('code', {}, JSON.stringify(c.value))],
      ['Path', ([, c]) => c.path || ''],
    ], captures) : null,
    preconditions.map((p) => h('p', {}, 'Preconditions ', badge(p.passed ? 'succeeded' : 'failed'),
      ...(p.checks || []).map((c) => h('span', { class: 'muted' }, ` ${c.outcome ? c.outcome.reason : ''};`)))),
    analyses.map((a) => h('div', { class: 'analysis', 'data-verdict': a.verdict },
      h('h3', {}, `Analysis of step ${a.ordinal}: `, badge(a.verdict === 'passed' ? 'succeeded' : a.verdict)),
      a.reason ? h('p', { class: 'error' }, a.reason) : null,
      drawSamples(a.samples || []),
      table([
        ['#', (x) => String(x.number)],
        ['Verdict', (x) => x.verdict],
        ['Measured', (x) => JSON.stringify(x.measured)],
        ['Threshold', (x) => JSON.stringify(x.threshold)],
        ['At', (x) => when(x.at)],
      ], a.samples || []))),
    v.awaiting_decision ? h('div', { class: 'row', id: 'decision' },
      'The analysis was inconclusive: ',
      h('button', { id: 'decide-continue', onclick: decide('continue') }, 'Continue'),
      h('button', { id: 'decide-rollback', class: 'danger', onclick: decide('rollback') }, 'Roll back')) : null,
    message);
}

function drawSamples(samples) {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = (tag, attrs, text) => {
    const el = document.createElementNS(NS, tag);
    for (const [k, val] of Object.entries(attrs)) el.setAttribute(k, String(val));
    if (text) el.textContent = text;
    return el;
  };
  const num = (x) => { const n = Number(x); return Number.isFinite(n) ? n : null; };
  const points = samples.map((s) => ({ n: s.number, v: num((s.measured || [])[0]), verdict: s.verdict }));
  const threshold = num(samples.length ? samples[samples.length - 1].threshold : null);
  const values = points.map((p) => p.v).filter((x) => x !== null).concat(threshold === null ? [] : [threshold]);
  const W = 480; const H = 160; const pad = 30;
  const lo = Math.min(0, ...values); const hi = Math.max(lo + 1e-9, ...values) * 1.1;
  const count = Math.max(points.length, 1);
  const x = (i) => pad + ((W - 2 * pad) * (i + 0.5)) / count;
  const y = (val) => H - pad - ((H - 2 * pad) * (val - lo)) / (hi - lo);
  const out = svg('svg', { class: 'analysis-chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img' });
  out.append(svg('line', { x1: pad, y1: H - pad, x2: W - pad, y2: H - pad, stroke: '#9aa4b2' }));
  if (threshold !== null) {
    out.append(svg('line', { class: 'threshold', x1: pad, y1: y(threshold), x2: W - pad, y2: y(threshold), stroke: '#cf222e', 'stroke-dasharray': '4 3' }));
    out.append(svg('text', { x: W - pad, y: y(threshold) - 4, 'text-anchor': 'end', fill: '#cf222e' }, `threshold ${threshold}`));
  }
  const colour = { passed: '#1a7f37', failed: '#cf222e', inconclusive: '#9a6700' };
  points.forEach((p, i) => {
    if (p.v === null) {
      out.append(svg('text', { class: 'sample', 'data-verdict': p.verdict, x: x(i), y: H - pad - 6, 'text-anchor': 'middle' }, '?'));
      return;
    }
    out.append(svg('circle', { class: 'sample', 'data-verdict': p.verdict, cx: x(i), cy: y(p.v), r: 5, fill: colour[p.verdict] || '#57606a' }));
    out.append(svg('text', { x: x(i), y: H - 8, 'text-anchor': 'middle', fill: '#5d6878' }, `#${p.n}`));
  });
  return out;
}

function drawGraph(nodes, edges, service) {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = (tag, attrs, text) => {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    if (text) el.textContent = text;
    return el;
  };
  const W = 900; const H = 560; const cx = W / 2; const cy = H / 2;
  const root = nodes.find((n) => n.kind === 'service' && n.name === service) || nodes[0];
  const adj = new Map(nodes.map((n) => [n.node_id, []]));
  for (const e of edges) {
    if (adj.has(e.from_node_id)) adj.get(e.from_node_id).push(e.to_node_id);
    if (adj.has(e.to_node_id)) adj.get(e.to_node_id).push(e.from_node_id);
  }
  const depth = new Map(root ? [[root.node_id, 0]] : []);
  const queue = root ? [root.node_id] : [];
  while (queue.length) {
    const id = queue.shift();
    for (const next of adj.get(id) || []) if (!depth.has(next)) { depth.set(next, depth.get(id) + 1); queue.push(next); }
  }
  const rings = new Map();
  for (const n of nodes) {
    const d = depth.has(n.node_id) ? depth.get(n.node_id) : 3;
    if (!rings.has(d)) rings.set(d, []);
    rings.get(d).push(n);
  }
  const pos = new Map();
  for (const [d, ring] of rings) {
    ring.forEach((n, i) => {
      const a = (2 * Math.PI * i) / ring.length - Math.PI / 2 + d * 0.5;
      const r = d * 170;
      pos.set(n.node_id, [cx + r * Math.cos(a), cy + r * Math.sin(a)]);
    });
  }
  const out = svg('svg', { id: 'graph', viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img' });
  for (const e of edges) {
    const a = pos.get(e.from_node_id); const b = pos.get(e.to_node_id);
    if (!a || !b) continue;
    out.append(svg('line', { x1: a[0], y1: a[1], x2: b[0], y2: b[1], stroke: '#9aa4b2' }));
    out.append(svg('text', { x: (a[0] + b[0]) / 2, y: (a[1] + b[1]) / 2, fill: '#5d6878' }, e.relation));
  }
  for (const n of nodes) {
    const [x, y] = pos.get(n.node_id);
    const g = svg('g', { class: 'node', 'data-node': n.node_id });
    g.append(svg('circle', { cx: x, cy: y, r: n === root ? 12 : 8, fill: n === root ? '#1f6feb' : '#57606a' }));
    g.append(svg('text', { x: x + 14, y: y + 4 }, `${n.kind}: ${n.name}`));
    out.append(g);
  }
  return out;
}

function auditLog() {
  const action = h('input', { id: 'audit-action', placeholder: 'action (plan.create)' });
  const actor = h('input', { id: 'audit-actor', placeholder: 'actor id' });
  const decision = h('select', { id: 'audit-decision' }, ['', 'allow', 'deny'].map((d) => h('option', { value: d }, d || 'any decision')));
  const chain = h('span', { id: 'chain' }, 'checking chain...');
  const out = h('section', {});
  const query = () => {
    const q = new URLSearchParams();
    if (action.value.trim()) q.set('action', action.value.trim());
    if (actor.value.trim()) q.set('actor_id', actor.value.trim());
    if (decision.value) q.set('decision', decision.value);
    return q;
  };
  const download = (format) => async () => {
    const q = query(); q.set('format', format);
    const resp = await fetch(`/v1/audit/export?${q}`, { headers: { Authorization: `Bearer ${token}` } });
    if (!resp.ok) { showError(out, new Error(`export failed: HTTP ${resp.status}`)); return; }
    const url = URL.createObjectURL(await resp.blob());
    const a = h('a', { href: url, download: `audit.${format}` });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  };
  const load = pagedList(out, {
    id: 'audit',
    title: 'Events',
    sizes: [100, 50, 10],
    path: () => `/v1/audit/events?${query()}`,
    columns: [
      ['When', (e) => when(e.occurred_at)],
      ['Actor', (e) => (e.actor && e.actor.id) || ''],
      ['Action', (e) => e.action],
      ['Decision', (e) => badge(e.decision)],
      ['Resource', (e) => [e.resource_type, short(e.resource_id)].filter(Boolean).join(' ')],
      ['Reason', (e) => e.reason || ''],
    ],
  });
  const verify = async () => {
    try {
      const v = await api('/v1/audit/verify');
      fill(chain, badge(v.ok ? 'ok' : 'deny'),
        v.ok ? ` ${v.events_checked} events verified (head ${v.head_seq})`
          : ` broken: ${JSON.stringify(v.first_break)}`);
    } catch (err) { chain.textContent = err.message; }
  };
  fill(view(),
    h('section', {}, h('h2', {}, 'Audit log'),
      h('form', { class: 'row', onsubmit: (e) => { e.preventDefault(); load(); } },
        action, actor, decision, h('button', { type: 'submit' }, 'Search'),
        h('button', { type: 'button', id: 'export-csv', onclick: download('csv') }, 'Export CSV'),
        h('button', { type: 'button', id: 'export-json', onclick: download('json') }, 'Export JSON')),
      h('p', {}, 'Chain: ', chain)),
    out);
  load(); verify();
  return { onEvent: (ev) => { if (ev.kind === 'audit.created') debounced(load)(); } };
}

function policies() {
  const files = h('section', {}, h('h2', {}, 'Loaded policy'));
  const input = h('textarea', { id: 'policy-input', rows: 14 }, JSON.stringify({
    actor: { id: 'alice', roles: ['operator'], tenant_id: 'acme' },
    action: { name: 'plan.create', type: 'write' },
    context: { tenant_id: 'acme', environment: 'prod' },
    resources: { break_glass: false },
    risk: { level: 'high', blast_radius: 'namespace', targets: 1 },
  }, null, 2));
  const result = h('pre', { id: 'policy-result' });
  const evaluate = async (e) => {
    e.preventDefault();
    let parsed;
    try { parsed = JSON.parse(input.value); } catch (err) { result.textContent = `Invalid JSON: ${err.message}`; return; }
    try {
      const outcome = await api('/v1/policy/evaluate', { method: 'POST', body: { input: parsed } });
      result.textContent = JSON.stringify(outcome, null, 2);
    } catch (err) { result.textContent = err.message; }
  };
  const draft = h('textarea', { id: 'whatif-plan', rows: 10, cols: 80, 'aria-label': 'draft plan' }, JSON.stringify({
    context: { environment: 'prod', namespace: 'web' },
    steps: [{ tool: 'kubectl', action: 'scale', input: { resource: 'deployment/web', replicas: 3, namespace: 'web' } }],
  }, null, 2));
  fill(view(), files, h('section', {}, h('h2', {}, 'Playground'),
    h('form', { onsubmit: evaluate }, input, h('div', { class: 'row' }, h('button', { class: 'primary', type: 'submit', id: 'evaluate' }, 'Evaluate'))),
    result), whatIf(null, draft));
  api('/v1/policy').then((p) => {
    fill(files, h('h2', {}, `Loaded policy: ${p.package}`),
      ...p.files.map((f) => h('details', {}, h('summary', {}, `${f.name} (${f.bytes} bytes)`), h('pre', {}, f.text))));
  }).catch((err) => showError(files, err));
  return null;
}

// ---- incident replay ----------------------------------------------------------------------

/// One side of a replayed incident: the decision and approvers, or the gate that stopped it.
function replaySide(side) {
  if (!side) return '';
  if (!side.decision) return badge(side.gate || 'none');
  const who = side.approvals_required ? ` (${side.approvals_required} approver${side.approvals_required === 1 ? '' : 's'})` : '';
  return h('span', {}, badge(side.decision), who);
}

function replays() {
  const form = h('section', { id: 'replay-start' }, h('h2', {}, 'Replay incidents'));
  const list = h('section', { id: 'replay-list' }, h('h2', {}, 'Replays'));
  const kind = h('select', { id: 'replay-source' },
    h('option', { value: 'window' }, 'alert events since'), h('option', { value: 'plan' }, 'plan id'),
    h('option', { value: 'alert' }, 'alert event id'));
  const value = h('input', { id: 'replay-value', value: '24h', size: 40, 'aria-label': 'since, plan id or alert event id' });
  const planner = h('select', { id: 'replay-planner' }, ['recorded', 'rules', 'current'].map((p) => h('option', { value: p }, p)));
  const candidate = h('textarea', { id: 'replay-candidate', rows: 6, cols: 80, placeholder: 'candidate policy file (Rego, package policy.assistant.v1); empty: the loaded policy' });
  const message = h('p', { id: 'replay-message' });
  const start = async (e) => {
    e.preventDefault();
    const source = kind.value === 'window' ? { since: value.value.trim() }
      : kind.value === 'plan' ? { plan_id: value.value.trim() } : { alert_event_id: value.value.trim() };
    const body = { source, planner: planner.value, background: true };
    if (candidate.value.trim()) {
      body.policy = 'candidate';
      body.candidate = { files: { 'candidate.rego': candidate.value } };
    }
    try {
      const started = await api('/v1/replays', { method: 'POST', body });
      location.hash = `#/replays/${started.replay_id}`;
    } catch (err) { showError(message, err); }
  };
  fill(form, h('h2', {}, 'Replay incidents'),
    h('p', { class: 'muted' }, 'Re-run recorded incidents through gates, planner, risk, blast radius and policy. Nothing executes and nothing is notified.'),
    h('form', { onsubmit: start }, h('div', { class: 'row' }, kind, value, planner), candidate,
      h('div', { class: 'row' }, h('button', { class: 'primary', type: 'submit', id: 'replay-run' }, 'Replay'))), message);
  fill(view(), form, list);
  const load = () => api('/v1/replays?limit=50').then((r) => {
    fill(list, h('h2', {}, `Replays (${r.items.length}${r.next_cursor ? '+' : ''})`), table([
      ['Replay', (x) => h('a', { href: `#/replays/${x.replay_id}` }, short(x.replay_id))],
      ['Status', (x) => badge(x.status)],
      ['Source', (x) => x.request.source.kind],
      ['Planner', (x) => x.request.planner],
      ['Policy', (x) => x.request.policy.choice],
      ['Incidents', (x) => `${x.replayed}/${x.total}`],
      ['Changed', (x) => x.changed],
      ['Started', (x) => when(x.created_at)],
    ], r.items, 'No replays yet.'));
  }).catch((err) => showError(list, err));
  load();
  return { onEvent: (ev) => { if (ev.kind === 'replay.progress') debounced(load)(); } };
}

function replayReport(id) {
  const head = h('section', { id: 'replay-summary' }, h('h2', {}, 'Replay'));
  const body = h('section', { id: 'replay-incidents' });
  fill(view(), head, body);
  const load = async () => {
    try {
      const r = await api(`/v1/replays/${encodeURIComponent(id)}?limit=500`);
      const s = r.summary || {};
      const transitions = Object.entries(s.by_transition || {});
      fill(head, h('h2', {}, `Replay ${short(r.replay_id)} `, badge(r.status)),
        h('p', { id: 'replay-progress' }, `${r.replayed} of ${r.total} incidents replayed, ${r.changed} changed`),
        h('p', { class: 'muted' }, `planner ${r.request.planner}, policy ${r.request.policy.choice}, playbooks ${r.request.playbooks.choice}`),
        r.report_hash ? h('p', {}, 'Report ', h('code', { id: 'replay-hash' }, r.report_hash)) : null,
        r.error ? h('p', { class: 'error' }, r.error) : null,
        transitions.length ? table([['Change', (t) => t[0]], ['Incidents', (t) => t[1]]], transitions) : null);
      fill(body, h('h2', {}, 'Incidents'), table([
        ['#', (x) => x.result.seq],
        ['Incident', (x) => x.result.alertname || (x.plan_id ? h('a', { href: `#/plans/${x.plan_id}` }, short(x.plan_id)) : '')],
        ['Service', (x) => x.result.service || ''],
        ['Original', (x) => replaySide(x.result.original)],
        ['Replayed', (x) => replaySide(x.result.replayed)],
        ['Changes', (x) => (x.result.changes.length ? x.result.changes.join(', ') : '—')],
        ['Details', (x) => {
          const notes = [...(x.result.drift || []), ...(x.result.missing || [])];
          const lines = [...((x.result.diff && x.result.diff.text) || []), ...(x.result.replayed.reasons || []).map((r) => `reason: ${r}`)];
          if (!notes.length && !lines.length) return '';
          return h('details', {}, h('summary', {}, notes.length ? notes[0] : (x.result.diff ? x.result.diff.summary : 'reasons')),
            h('pre', {}, [...notes, ...lines].join('\n')));
        }],
      ], r.incidents || [], 'No incidents in this replay.'));
      for (const [i, tr] of [...body.querySelectorAll('tbody tr')].entries()) {
        if (r.incidents[i] && r.incidents[i].changed) tr.classList.add('changed');
      }
    } catch (err) { showError(body, err); }
  };
  load();
  return { onEvent: (ev) => { if (ev.kind === 'replay.progress' && ev.data.replay_id === id) debounced(load)(); } };
}

function integrations() {
  const out = h('div', {});
  fill(view(), out);
  const health = (ok) => badge(ok ? 'ok' : 'down');
  api('/v1/diagnostics').then((d) => {
    const collectors = d.collectors && typeof d.collectors === 'object'
      ? Object.entries(d.collectors).map(([name, c]) => ({ name, ...c })) : [];
    fill(out,
      h('section', {}, h('h2', {}, 'Dependencies'), table([
        ['Dependency', (r) => r[0]], ['State', (r) => health(r[1].ok)], ['Detail', (r) => r[1].error || r[2] || ''],
      ], [
        ['PostgreSQL', d.database, d.database.details ? `v${d.database.details.server_version}, migration ${d.database.details.latest_migration}` : ''],
        ['Temporal', d.orchestrator.temporal, d.orchestrator.temporal.address || ''],
        ['Tool router', d.tool_router, d.tool_router.url || ''],
      ])),
      h('section', {}, h('h2', {}, 'Collectors'), d.collectors === 'disabled'
        ? h('p', { class: 'muted' }, 'The context service is disabled.')
        : table([
          ['Collector', (c) => c.name], ['State', (c) => health(c.ok)], ['Nodes', (c) => c.nodes],
          ['Last success', (c) => when(c.last_success)], ['Error', (c) => c.last_error || ''],
        ], collectors)),
      h('section', {}, h('h2', {}, 'Gateway'), h('pre', {}, JSON.stringify({
        version: d.version, uptime_secs: d.uptime_secs, planner: d.planner, features: d.features, policy: d.policy,
      }, null, 2))));
  }).catch((err) => showError(out, err));
  return null;
}

// ---- boot --------------------------------------------------------------------------------

window.addEventListener('hashchange', route);
document.getElementById('logout').addEventListener('click', () => signOut());
(async () => {
  try {
    const resp = await fetch('/ui/config.json');
    if (resp.ok) oidc = (await resp.json()).oidc || null;
  } catch (_) { oidc = null; }  // token sign-in still works
  try {
    if (oidc && await finishSso()) { start(); return; }
  } catch (err) { renderLogin(err.message); return; }
  if (token) start(); else renderLogin();
})();
