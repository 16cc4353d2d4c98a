// The dht dashboard: draws one node's (or a devnet's) view of the key space as SVG in the
// page, from the JSON API under /api/v1 (docs/dashboard.md says what each part shows).
//
// Everything is drawn as SVG elements with classes, data attributes and <title>s, so that a
// test and a screen reader can find each node and each hop. Text from the API only ever
// enters the page through textContent and setAttribute, never as markup.
//
// The page takes its state from the URL fragment (or query): `#node=I&lookup=KEY` selects
// node I and runs a lookup of KEY on load (KEY may be `random`); the browser test uses that.
'use strict';

(function () {
  // --- Errors of the page itself: recorded into <pre id="js-errors"> so a test (and a person)
  // sees them in the page, not only on the console. Set up before anything else runs.
  const JS_ERRORS_MAX = 20; // lines kept in #js-errors
  const jsErrorLines = [];
  function recordJsError(text) {
    if (jsErrorLines.length >= JS_ERRORS_MAX) return;
    jsErrorLines.push(text);
    const pre = document.getElementById('js-errors');
    if (pre) {
      pre.textContent = 'JavaScript errors in this page:\n' + jsErrorLines.join('\n');
      pre.hidden = false;
    }
  }
  window.addEventListener('error', (e) => {
    recordJsError(`${e.message || 'error'} (${e.filename || '?'}:${e.lineno || 0})`);
  });
  window.addEventListener('unhandledrejection', (e) => {
    const r = e.reason;
    recordJsError(`unhandled rejection: ${r && r.stack ? r.stack : String(r)}`);
  });

  const API = '/api/v1';
  const SVG_NS = 'http://www.w3.org/2000/svg';

  /** How often the status (and so the traffic charts) is polled. */
  const STATUS_POLL_MS = 2000;
  /** How often the routing table and the stored items are polled. */
  const SLOW_POLL_MS = 10000;
  /** Samples of the traffic counters kept: five minutes at one per STATUS_POLL_MS. */
  const HISTORY_MAX = 150;
  /** Width of the traffic charts' time window, in seconds. */
  const CHART_WINDOW_S = 300;
  /** A status, routing or stored request that takes longer is abandoned. */
  const FETCH_TIMEOUT_MS = 10000;
  /** A lookup that takes longer is abandoned (the server bounds it too). */
  const LOOKUP_TIMEOUT_MS = 120000;
  /** Time between two rounds of a lookup's animation. */
  const ROUND_STEP_MS = window.matchMedia('(prefers-reduced-motion: reduce)').matches ? 0 : 600;
  /** Node index labels are drawn on the ring only up to this many nodes. */
  const LABELS_MAX = 64;
  /** Rows shown in the stored-items and peers tables. */
  const TABLE_ROWS_MAX = 200;
  /** Contacts offered in the key picker. */
  const PICK_CONTACTS_MAX = 64;

  // Geometry of the ring (the SVG's viewBox is -520..520 on both axes).
  const R = 420; // the key space
  const R_BUCKET = [R + 34, R + 46]; // bucket arcs alternate between these radii
  const R_BUCKET_LABEL = R + 72;
  const R_LABEL = R - 30; // node index labels
  const R_TIMEOUT = R + 16; // timeout marks

  const state = {
    nodes: [], // from /api/v1/nodes
    node: 0, // index of the selected node
    gen: 0, // bumped when the selected node changes; stale answers are dropped
    status: null,
    routing: null,
    stored: null,
    history: [], // {t: uptime_s, c: traffic counters}
    lookupSeq: 0, // bumped per lookup; a newer lookup cancels an older animation
    errors: new Map(), // source -> message shown in #api-errors
    pickSignature: '',
    timers: [],
  };

  const $ = (id) => document.getElementById(id);

  // --- Small helpers -------------------------------------------------------------------------

  function svg(tag, attrs, parent) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    if (parent) parent.appendChild(el);
    return el;
  }

  function html(tag, attrs, text, parent) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    if (text !== undefined && text !== null) el.textContent = String(text);
    if (parent) parent.appendChild(el);
    return el;
  }

  function titled(el, text) {
    svg('title', {}, el).textContent = text;
    return el;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
  }

  const HEX40 = /^[0-9a-f]{40}$/;

  function isId(s) {
    return typeof s === 'string' && HEX40.test(s);
  }

  /** The fraction of the circle where an ID sits: its first 32 bits over 2^32. */
  function fractionOf(id) {
    if (typeof id !== 'string' || id.length < 8) return 0;
    const v = parseInt(id.slice(0, 8), 16);
    return Number.isFinite(v) ? v / 4294967296 : 0;
  }

  /** The point at fraction f of the circle of radius r, clockwise from the top. */
  function point(f, r) {
    const a = f * 2 * Math.PI;
    return [r * Math.sin(a), -r * Math.cos(a)];
  }

  function fmtPoint(p) {
    return `${p[0].toFixed(1)} ${p[1].toFixed(1)}`;
  }

  /** Leading bits two 40-hex IDs share (160 when equal). */
  function sharedBits(a, b) {
    if (!isId(a) || !isId(b)) return 0;
    for (let i = 0; i < 40; i++) {
      const x = parseInt(a[i], 16) ^ parseInt(b[i], 16);
      if (x !== 0) return i * 4 + Math.clz32(x) - 28;
    }
    return 160;
  }

  function randomId() {
    const bytes = new Uint8Array(20);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  function short(id) {
    return typeof id === 'string' ? id.slice(0, 8) : '?';
  }

  function num(v) {
    return typeof v === 'number' && Number.isFinite(v) ? v : null;
  }

  function fmtCount(v) {
    if (v === null || v === undefined) return '–';
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(1) + 'G';
    if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
    if (a >= 1e4) return (v / 1e3).toFixed(1) + 'k';
    if (a >= 10 || Number.isInteger(v)) return String(Math.round(v));
    return v.toFixed(1);
  }

  function fmtDuration(s) {
    if (num(s) === null) return '–';
    s = Math.floor(s);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = s % 60;
    return h > 0 ? `${h} h ${m} min` : m > 0 ? `${m} min ${sec} s` : `${sec} s`;
  }

  // --- API -----------------------------------------------------------------------------------

  /** GETs `path` as JSON; throws an Error whose message names the route and the server's error. */
  async function getJson(path, timeoutMs) {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), timeoutMs);
    let res;
    try {
      res = await fetch(API + path, { signal: ctrl.signal, headers: { Accept: 'application/json' } });
    } catch (e) {
      throw new Error(
        e.name === 'AbortError'
          ? `${path}: no answer in ${timeoutMs / 1000} s`
          : `${path}: cannot reach the node (${e.message})`,
      );
    } finally {
      clearTimeout(timer);
    }
    let body = null;
    try {
      body = await res.json();
    } catch (e) {
      body = null;
    }
    if (!res.ok) {
      const msg = body && typeof body.error === 'string' ? body.error : res.statusText;
      throw new Error(`${path}: ${res.status} ${msg}`);
    }
    if (body === null || typeof body !== 'object') throw new Error(`${path}: the answer is not JSON`);
    return body;
  }

  function nodeQuery() {
    return `?node=${state.node}`;
  }

  function setError(source, message) {
    if (message) state.errors.set(source, message);
    else state.errors.delete(source);
    const box = $('api-errors');
    clear(box);
    if (state.errors.size === 0) {
      box.hidden = true;
      return;
    }
    const ul = html('ul', {}, null, box);
    for (const [src, msg] of state.errors) {
      html('li', { 'data-source': src }, msg, ul);
    }
    box.hidden = false;
  }

  // --- Nodes and the picker ------------------------------------------------------------------

  async function loadNodes() {
    try {
      const body = await getJson('/nodes', FETCH_TIMEOUT_MS);
      const list = Array.isArray(body.nodes) ? body.nodes : [];
      state.nodes = list.filter((n) => n && Number.isInteger(n.index) && isId(n.node_id));
      setError('nodes', null);
    } catch (e) {
      state.nodes = [];
      setError('nodes', e.message);
    }
    const picker = $('node-picker');
    clear(picker);
    for (const n of state.nodes) {
      html('option', { value: n.index }, `${n.index}: ${short(n.node_id)}… ${n.bind || ''}`, picker);
    }
    picker.disabled = state.nodes.length <= 1;
  }

  function selectNode(index, keepLookup) {
    if (!state.nodes.some((n) => n.index === index)) index = state.nodes.length ? state.nodes[0].index : 0;
    const changed = index !== state.node;
    state.node = index;
    $('node-picker').value = String(index);
    if (changed) {
      state.gen++;
      state.status = null;
      state.routing = null;
      state.stored = null;
      state.history = [];
      if (!keepLookup) clearLookup();
    }
    drawMembers();
    drawContacts();
    drawBuckets();
    writeFragment();
    restartPolls();
  }

  // --- Polling -------------------------------------------------------------------------------

  function restartPolls() {
    for (const t of state.timers) clearTimeout(t);
    state.timers = [];
    poll(refreshStatus, STATUS_POLL_MS);
    poll(refreshRouting, SLOW_POLL_MS);
    poll(refreshStored, SLOW_POLL_MS);
  }

  /** Runs `fn` now and again `every` ms after each run ends, until the node changes. */
  function poll(fn, every) {
    const gen = state.gen;
    const run = async () => {
      await fn(gen);
      if (gen === state.gen) state.timers.push(setTimeout(run, every));
    };
    run();
  }

  async function refreshStatus(gen) {
    try {
      const s = await getJson('/status' + nodeQuery(), FETCH_TIMEOUT_MS);
      if (gen !== state.gen) return;
      state.status = s;
      setError('status', null);
      if (s.traffic && typeof s.traffic === 'object' && num(s.uptime_s) !== null) {
        const last = state.history[state.history.length - 1];
        if (!last || s.uptime_s > last.t) state.history.push({ t: s.uptime_s, c: s.traffic });
        if (last && s.uptime_s < last.t) state.history = [{ t: s.uptime_s, c: s.traffic }]; // restarted
        if (state.history.length > HISTORY_MAX) state.history.splice(0, state.history.length - HISTORY_MAX);
      }
    } catch (e) {
      if (gen === state.gen) setError('status', e.message);
    }
    if (gen === state.gen) {
      drawStatus();
      drawCharts();
      if (state.nodes.length === 0) drawMembers(); // no node list: draw this node from its status
    }
  }

  async function refreshRouting(gen) {
    try {
      const r = await getJson('/routing' + nodeQuery(), FETCH_TIMEOUT_MS);
      if (gen !== state.gen) return;
      state.routing = r;
      setError('routing', null);
    } catch (e) {
      if (gen === state.gen) setError('routing', e.message);
    }
    if (gen === state.gen) {
      drawContacts();
      drawBuckets();
      drawBucketTable();
      updatePicker();
    }
  }

  async function refreshStored(gen) {
    try {
      const s = await getJson('/stored' + nodeQuery(), FETCH_TIMEOUT_MS);
      if (gen !== state.gen) return;
      state.stored = s;
      setError('stored', null);
    } catch (e) {
      if (gen === state.gen) setError('stored', e.message);
    }
    if (gen === state.gen) {
      drawStored();
      updatePicker();
    }
  }

  // --- Status --------------------------------------------------------------------------------

  function selfId() {
    if (state.status && isId(state.status.node_id)) return state.status.node_id;
    const n = state.nodes.find((m) => m.index === state.node);
    return n ? n.node_id : null;
  }

  function drawStatus() {
    const dl = $('status');
    clear(dl);
    const s = state.status;
    if (!s) return;
    const rt = s.routing_table || {};
    const st = s.store || {};
    const rows = [
      ['node ID', s.node_id, 'id'],
      ['version', s.version],
      ['bind', s.bind],
      ['uptime', fmtDuration(s.uptime_s)],
      ['contacts', `${fmtCount(num(rt.contacts))} in ${fmtCount(num(rt.buckets))} buckets`],
      ['stored', `${fmtCount(num(st.items))} items, ${fmtCount(num(st.peers))} peers`],
      ['network size', num(s.network_size_estimate) === null ? 'not known yet' : `≈ ${fmtCount(s.network_size_estimate)}`],
    ];
    for (const [k, v, cls] of rows) {
      const div = html('div', {}, null, dl);
      html('dt', {}, k, div);
      html('dd', cls ? { class: cls } : {}, v === undefined || v === null ? '–' : v, div);
    }
  }

  // --- The ring ------------------------------------------------------------------------------

  /** Every node the server serves (one, or a whole devnet), on the ring. */
  function drawMembers() {
    const g = $('layer-members');
    clear(g);
    let members = state.nodes;
    if (members.length === 0 && selfId()) members = [{ index: state.node, node_id: selfId(), bind: '' }];
    const labels = members.length <= LABELS_MAX;
    for (const n of members) {
      const selected = n.index === state.node;
      const f = fractionOf(n.node_id);
      const [x, y] = point(f, R);
      const c = svg(
        'circle',
        {
          class: selected ? 'node member selected' : 'node member',
          'data-index': n.index,
          'data-id': n.node_id,
          cx: x.toFixed(1),
          cy: y.toFixed(1),
          r: selected ? 14 : 10,
          tabindex: 0,
          role: 'button',
          'aria-label': `node ${n.index}, ID ${n.node_id}${selected ? ' (selected)' : ''}`,
        },
        g,
      );
      titled(c, `node ${n.index}${selected ? ' (selected)' : ''}\nID ${n.node_id}\n${n.bind || ''}`);
      const pick = () => selectNode(n.index);
      c.addEventListener('click', pick);
      c.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') pick();
      });
      if (labels) {
        const [lx, ly] = point(f, R_LABEL);
        const t = svg('text', { class: 'node-label', x: lx.toFixed(1), y: ly.toFixed(1), 'aria-hidden': 'true' }, g);
        t.textContent = String(n.index);
      }
    }
  }

  function contactsOf(routing) {
    const out = [];
    if (!routing || !Array.isArray(routing.buckets)) return out;
    for (const b of routing.buckets) {
      if (!b || !Array.isArray(b.contacts)) continue;
      for (const c of b.contacts) if (c && isId(c.id)) out.push({ ...c, bucket: b.index });
    }
    return out;
  }

  const STATES = ['good', 'questionable', 'bad', 'unverified'];

  function drawContacts() {
    const g = $('layer-contacts');
    clear(g);
    for (const c of contactsOf(state.routing)) {
      const st = STATES.includes(c.state) ? c.state : 'unverified';
      const [x, y] = point(fractionOf(c.id), R);
      const rtt = num(c.rtt_ms) === null ? 'no RTT yet' : `RTT ${c.rtt_ms.toFixed(1)} ms`;
      const seen = num(c.last_seen_s) === null ? '' : `, last seen ${fmtDuration(c.last_seen_s)} ago`;
      const el = svg(
        'circle',
        {
          class: `contact state-${st}`,
          'data-id': c.id,
          'data-state': st,
          'data-bucket': c.bucket,
          cx: x.toFixed(1),
          cy: y.toFixed(1),
          r: 6,
          tabindex: 0,
          role: 'button',
          'aria-label': `contact ${c.id}, ${st}, bucket ${c.bucket}; look up its ID`,
        },
        g,
      );
      titled(el, `contact ${c.id}\n${c.addr || ''}\n${st}, bucket ${c.bucket}\n${rtt}${seen}\nclick: look up this ID`);
      const pick = () => {
        $('lookup-key').value = c.id;
        runLookup(c.id);
      };
      el.addEventListener('click', pick);
      el.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') pick();
      });
    }
  }

  /** An SVG arc along the circle of radius r from fraction f0 to f1 (f1 > f0, span < 1). */
  function arcPath(f0, f1, r) {
    const large = f1 - f0 > 0.5 ? 1 : 0;
    return `M ${fmtPoint(point(f0, r))} A ${r} ${r} 0 ${large} 1 ${fmtPoint(point(f1, r))}`;
  }

  function drawBuckets() {
    const g = $('layer-buckets');
    clear(g);
    const rt = state.routing;
    if (!rt || !Array.isArray(rt.buckets)) return;
    const mine = selfId();
    rt.buckets.forEach((b, i) => {
      if (!b || !isId(b.first) || !isId(b.last)) return;
      const f0 = fractionOf(b.first);
      // `last` is inclusive: the arc ends where the next 32-bit prefix starts.
      const f1 = (parseInt(b.last.slice(0, 8), 16) + 1) / 4294967296;
      const span = f1 - f0;
      const r = R_BUCKET[i % 2];
      const count = Array.isArray(b.contacts) ? b.contacts.length : 0;
      const own = mine && b.first <= mine && mine <= b.last;
      const grp = svg(
        'g',
        {
          class: own ? 'bucket own' : 'bucket',
          'data-index': b.index,
          'data-contacts': count,
          'aria-label': `bucket ${b.index}: ${count} contacts`,
        },
        g,
      );
      titled(grp, `bucket ${b.index}: ${count} contacts\nfrom ${b.first}\nto   ${b.last}${own ? '\n(holds this node\'s own ID)' : ''}`);
      // Leave a small gap between neighbouring arcs, unless the arc is too short to spare it.
      const gap = span > 0.02 ? 0.002 : 0;
      if (span >= 0.999) {
        // One arc cannot draw a whole circle: draw it as two halves.
        svg('path', { class: 'bucket-arc', d: arcPath(f0, f0 + 0.5, r) }, grp);
        svg('path', { class: 'bucket-arc', d: arcPath(f0 + 0.5, f0 + 1 - gap, r) }, grp);
      } else if (span > 0.0005) {
        svg('path', { class: 'bucket-arc', d: arcPath(f0 + gap, f1 - gap, r) }, grp);
      } else {
        // Too short to see as an arc: a tick across the ring instead.
        const [x0, y0] = point(f0, r - 6);
        const [x1, y1] = point(f0, r + 6);
        svg('line', { class: 'bucket-tick', x1: x0.toFixed(1), y1: y0.toFixed(1), x2: x1.toFixed(1), y2: y1.toFixed(1) }, grp);
      }
      if (span > 0.03) {
        const [lx, ly] = point(f0 + span / 2, R_BUCKET_LABEL);
        const t = svg('text', { class: 'bucket-label', x: lx.toFixed(1), y: ly.toFixed(1), 'aria-hidden': 'true' }, grp);
        t.textContent = `b${b.index} (${count})`;
      }
    });
  }

  function drawBucketTable() {
    const box = $('buckets');
    clear(box);
    const rt = state.routing;
    if (!rt || !Array.isArray(rt.buckets)) return;
    const table = html('table', { class: 'buckets' }, null, box);
    const head = html('tr', {}, null, html('thead', {}, null, table));
    for (const h of ['bucket', 'from', 'to', 'good', 'quest.', 'bad', 'unver.']) html('th', { scope: 'col' }, h, head);
    const body = html('tbody', {}, null, table);
    for (const b of rt.buckets) {
      if (!b) continue;
      const counts = { good: 0, questionable: 0, bad: 0, unverified: 0 };
      for (const c of Array.isArray(b.contacts) ? b.contacts : []) {
        if (c && c.state in counts) counts[c.state]++;
      }
      const tr = html('tr', { 'data-index': b.index }, null, body);
      html('td', {}, b.index, tr);
      html('td', { class: 'id', title: b.first || '' }, short(b.first), tr);
      html('td', { class: 'id', title: b.last || '' }, short(b.last), tr);
      for (const s of STATES) html('td', { class: counts[s] ? `n state-${s}` : 'n zero' }, counts[s], tr);
    }
  }

  // --- Stored items and the key picker ------------------------------------------------------

  function drawStored() {
    const box = $('stored');
    clear(box);
    const s = state.stored;
    if (!s) return;
    const items = Array.isArray(s.items) ? s.items.filter((i) => i && isId(i.key)) : [];
    const peers = Array.isArray(s.peers) ? s.peers.filter((p) => p && isId(p.info_hash)) : [];
    // The server may list only part of a large store; its totals say how much.
    const itemsTotal = num(s.items_total) ?? items.length;
    const hashesTotal = num(s.info_hashes_total) ?? peers.length;
    html('p', { class: 'hint' }, `${itemsTotal} items and ${hashesTotal} info-hashes with announced peers, held for others.`, box);
    if (items.length) {
      const table = html('table', { class: 'stored items' }, null, box);
      const head = html('tr', {}, null, html('thead', {}, null, table));
      for (const h of ['item key', 'kind', 'bytes']) html('th', { scope: 'col' }, h, head);
      const body = html('tbody', {}, null, table);
      for (const it of items.slice(0, TABLE_ROWS_MAX)) {
        const tr = html('tr', { 'data-key': it.key }, null, body);
        keyCell(it.key, tr);
        html('td', {}, it.kind || '?', tr);
        html('td', { class: 'n' }, fmtCount(num(it.bytes)), tr);
      }
      const more = itemsTotal - Math.min(items.length, TABLE_ROWS_MAX);
      if (more > 0) html('p', { class: 'hint' }, `and ${more} more`, box);
    }
    if (peers.length) {
      const table = html('table', { class: 'stored peers' }, null, box);
      const head = html('tr', {}, null, html('thead', {}, null, table));
      for (const h of ['info-hash', 'peers']) html('th', { scope: 'col' }, h, head);
      const body = html('tbody', {}, null, table);
      for (const p of peers.slice(0, TABLE_ROWS_MAX)) {
        const tr = html('tr', { 'data-key': p.info_hash }, null, body);
        keyCell(p.info_hash, tr);
        html('td', { class: 'n' }, fmtCount(num(p.peers)), tr);
      }
      const more = hashesTotal - Math.min(peers.length, TABLE_ROWS_MAX);
      if (more > 0) html('p', { class: 'hint' }, `and ${more} more`, box);
    }
  }

  /** A table cell with a key that looks itself up when clicked. */
  function keyCell(key, tr) {
    const td = html('td', { class: 'id' }, null, tr);
    const b = html('button', { type: 'button', class: 'linkish', title: `look up ${key}` }, key, td);
    b.addEventListener('click', () => {
      $('lookup-key').value = key;
      runLookup(key);
    });
  }

  /** Fills the key picker with stored keys, info-hashes and contacts, when they changed. */
  function updatePicker() {
    const s = state.stored || {};
    const items = (Array.isArray(s.items) ? s.items : []).map((i) => i && i.key).filter(isId);
    const hashes = (Array.isArray(s.peers) ? s.peers : []).map((p) => p && p.info_hash).filter(isId);
    const contacts = contactsOf(state.routing).map((c) => c.id).slice(0, PICK_CONTACTS_MAX);
    const sig = [items.length, hashes.length, contacts.length, items[0], hashes[0], contacts[0]].join();
    if (sig === state.pickSignature) return;
    state.pickSignature = sig;
    const pick = $('lookup-pick');
    clear(pick);
    html('option', { value: '' }, 'pick a key…', pick);
    const group = (label, ids) => {
      if (!ids.length) return;
      const og = html('optgroup', { label }, null, pick);
      for (const id of ids.slice(0, TABLE_ROWS_MAX)) html('option', { value: id }, id, og);
    };
    group('stored items', items);
    group('announced info-hashes', hashes);
    group('contacts', contacts);
  }

  // --- Lookups -------------------------------------------------------------------------------

  function clearLookup() {
    state.lookupSeq++;
    clear($('layer-lookup'));
    clear($('lookup-rounds'));
    clear($('lookup-progress'));
    const sum = $('lookup-summary');
    sum.textContent = 'No lookup yet.';
    sum.dataset.status = 'idle';
  }

  async function runLookup(key) {
    key = String(key || '').trim().toLowerCase();
    if (key === 'random') key = randomId();
    if (!isId(key)) {
      setError('input', `A key is 40 hex digits; "${key.slice(0, 60)}" is not one.`);
      return;
    }
    setError('input', null);
    $('lookup-key').value = key;
    clearLookup();
    const seq = state.lookupSeq;
    const from = state.node;
    writeFragment(key);
    const sum = $('lookup-summary');
    sum.dataset.status = 'running';
    sum.textContent = `Looking up ${key} from node ${from}…`;
    drawTarget(key);
    let trace;
    try {
      trace = await getJson(`/lookup/${key}?node=${from}`, LOOKUP_TIMEOUT_MS);
      setError('lookup', null);
    } catch (e) {
      if (seq !== state.lookupSeq) return;
      setError('lookup', e.message);
      sum.dataset.status = 'failed';
      sum.textContent = `The lookup of ${key} failed: ${e.message}`;
      return;
    }
    if (seq !== state.lookupSeq) return;
    animateLookup(trace, key, seq);
  }

  function drawTarget(key) {
    const g = $('layer-lookup');
    const f = fractionOf(key);
    const [x, y] = point(f, R);
    const [ox, oy] = point(f, R + 26);
    const tg = svg('g', { class: 'target', 'data-id': key, 'aria-label': `lookup target ${key}` }, g);
    titled(tg, `target ${key}`);
    svg('line', { class: 'target-ray', x1: 0, y1: 0, x2: ox.toFixed(1), y2: oy.toFixed(1) }, tg);
    const s = 11;
    svg('path', {
      class: 'target-mark',
      d: `M ${(x - s).toFixed(1)} ${y.toFixed(1)} L ${x.toFixed(1)} ${(y - s).toFixed(1)} L ${(x + s).toFixed(1)} ${y.toFixed(1)} L ${x.toFixed(1)} ${(y + s).toFixed(1)} Z`,
    }, tg);
  }

  /**
   * The hops of a lookup trace: one per `asked` step, from the node whose answer first
   * introduced the asked ID (the searcher when no answer did: it came from its own table).
   */
  function hopsOf(trace, searcher) {
    const steps = Array.isArray(trace.steps) ? trace.steps.filter((s) => s && isId(s.id)) : [];
    const introducer = new Map();
    const askedRound = new Map([[searcher, 0]]);
    const bits = new Map();
    const outcome = new Map();
    for (const s of steps) {
      if (num(s.shared_bits) !== null) bits.set(s.id, s.shared_bits);
      if (s.kind === 'asked' && !askedRound.has(s.id)) askedRound.set(s.id, num(s.round) || 1);
      if (s.kind === 'answered' || s.kind === 'timed_out') outcome.set(s.id, s.kind);
      if (s.kind === 'answered' && Array.isArray(s.introduced)) {
        for (const id of s.introduced) if (isId(id) && !introducer.has(id)) introducer.set(id, s.id);
      }
    }
    const hops = [];
    for (const s of steps) {
      if (s.kind !== 'asked') continue;
      const from = introducer.get(s.id) || searcher;
      hops.push({
        round: num(s.round) || 1,
        from,
        fromRound: askedRound.get(from) || 0,
        to: s.id,
        addr: s.addr || '',
        bits: bits.has(s.id) ? bits.get(s.id) : sharedBits(s.id, trace.target),
        fromBits: bits.has(from) ? bits.get(from) : sharedBits(from, trace.target),
        outcome: outcome.get(s.id) || 'no_answer',
      });
    }
    return { hops, steps };
  }

  function hopPath(from, to) {
    const p0 = point(fractionOf(from), R);
    const p1 = point(fractionOf(to), R);
    // Bow each hop towards the centre, so hops between close IDs still show as loops.
    const c = [((p0[0] + p1[0]) / 2) * 0.6, ((p0[1] + p1[1]) / 2) * 0.6];
    return `M ${fmtPoint(p0)} Q ${fmtPoint(c)} ${fmtPoint(p1)}`;
  }

  function animateLookup(trace, key, seq) {
    const searcher = isId(trace.node_id) ? trace.node_id : selfId();
    const { hops, steps } = hopsOf(trace, searcher);
    const rounds = hops.reduce((m, h) => Math.max(m, h.round), 0);
    const g = $('layer-lookup');
    const hopLayer = svg('g', { class: 'hop-layer', 'aria-label': `${hops.length} hops` }, g);
    const markLayer = svg('g', { class: 'marks' }, g);
    const progress = setupProgress(hops, rounds, searcher, key);
    const list = $('lookup-rounds');
    const sum = $('lookup-summary');
    sum.dataset.status = 'drawing';
    sum.textContent = `Lookup of ${key} from node ${state.node}: drawing ${rounds} rounds…`;

    const drawRound = (r) => {
      const these = hops.filter((h) => h.round === r);
      for (const h of these) {
        const timedOut = h.outcome === 'timed_out';
        const p = svg(
          'path',
          {
            class: `hop round-${Math.min(r, 8)}${timedOut ? ' timed-out' : ''}`,
            'data-round': r,
            'data-from': h.from,
            'data-to': h.to,
            'data-outcome': h.outcome,
            'data-shared-bits': h.bits,
            d: hopPath(h.from, h.to),
            pathLength: 1,
          },
          hopLayer,
        );
        titled(p, `round ${r}: ${short(h.from)}… → ${short(h.to)}… ${h.addr}\nshares ${h.bits} bits with the key; ${h.outcome.replace('_', ' ')}`);
        const [x, y] = point(fractionOf(h.to), R);
        const dot = svg('circle', {
          class: `lookup-node ${h.outcome}`,
          'data-id': h.to,
          'data-round': r,
          cx: x.toFixed(1),
          cy: y.toFixed(1),
          r: 8,
        }, markLayer);
        titled(dot, `asked in round ${r}: ${h.to}\n${h.outcome.replace('_', ' ')}`);
        if (timedOut) {
          const [tx, ty] = point(fractionOf(h.to), R_TIMEOUT);
          const s = 6;
          const mark = svg('path', {
            class: 'timeout',
            'data-id': h.to,
            'data-round': r,
            d: `M ${tx - s} ${ty - s} L ${tx + s} ${ty + s} M ${tx - s} ${ty + s} L ${tx + s} ${ty - s}`,
          }, markLayer);
          titled(mark, `timed out: ${h.to} (round ${r})`);
        }
        progress(h);
      }
      const answered = these.filter((h) => h.outcome === 'answered').length;
      const timedOut = these.filter((h) => h.outcome === 'timed_out').length;
      const best = these.reduce((m, h) => Math.max(m, h.bits), 0);
      html('li', { 'data-round': r }, `round ${r}: asked ${these.length}, ${answered} answered, ${timedOut} timed out; closest shares ${best} bits with the key`, list);
    };

    const finish = () => {
      const closest = Array.isArray(trace.closest) ? trace.closest.filter((c) => c && isId(c.id)) : [];
      for (const c of closest) {
        const [x, y] = point(fractionOf(c.id), R);
        const el = svg('circle', {
          class: 'closest',
          'data-id': c.id,
          cx: x.toFixed(1),
          cy: y.toFixed(1),
          r: 12,
        }, markLayer);
        titled(el, `one of the k closest: ${c.id} ${c.addr || ''}\nshares ${num(c.shared_bits) ?? sharedBits(c.id, key)} bits with the key`);
      }
      const n = (v) => fmtCount(num(v));
      const best = closest.reduce((m, c) => Math.max(m, num(c.shared_bits) ?? sharedBits(c.id, key)), 0);
      sum.dataset.status = 'done';
      sum.dataset.rounds = String(num(trace.rounds) ?? rounds);
      sum.dataset.hops = String(hops.length);
      sum.textContent =
        `Lookup of ${key} from node ${state.node}: ${n(trace.rounds)} rounds, ${n(trace.messages)} messages, ` +
        `${n(trace.responses)} answers, ${n(trace.timeouts)} timed out, ${n(trace.duration_ms)} ms; ` +
        `${closest.length} closest found, the closest sharing ${best} bits with the key.`;
      if (steps.length === 0) sum.textContent += ' The node asked no one: its routing table is empty.';
    };

    if (ROUND_STEP_MS === 0) {
      for (let r = 1; r <= rounds; r++) drawRound(r);
      finish();
      return;
    }
    let r = 0;
    const next = () => {
      if (seq !== state.lookupSeq) return; // a newer lookup took over
      r++;
      if (r <= rounds) {
        drawRound(r);
        setTimeout(next, ROUND_STEP_MS);
      } else {
        finish();
      }
    };
    next();
  }

  /**
   * Prepares the lookup's progress chart (shared bits with the key against the round) and
   * returns a function that draws one hop into it.
   */
  function setupProgress(hops, rounds, searcher, key) {
    const el = $('lookup-progress');
    clear(el);
    svg('title', {}, el).textContent = 'Bits shared with the key, by round: each dot is a node asked, each line a hop';
    const W = 360;
    const H = 150;
    const L = 34;
    const B = 22;
    const T = 10;
    const maxBits = Math.max(8, sharedBits(searcher, key), ...hops.map((h) => h.bits));
    const yMax = Math.ceil(maxBits / 8) * 8;
    const x = (round) => L + ((W - L - 10) * round) / Math.max(1, rounds);
    const y = (b) => H - B - ((H - B - T) * b) / yMax;
    svg('line', { class: 'axis', x1: L, y1: y(0), x2: W - 5, y2: y(0) }, el);
    svg('line', { class: 'axis', x1: L, y1: y(0), x2: L, y2: T }, el);
    for (let b = 0; b <= yMax; b += yMax / 4) {
      const t = svg('text', { class: 'tick', x: L - 4, y: y(b) + 4, 'text-anchor': 'end' }, el);
      t.textContent = String(b);
    }
    for (let r = 0; r <= rounds; r++) {
      const t = svg('text', { class: 'tick', x: x(r), y: H - 6, 'text-anchor': 'middle' }, el);
      t.textContent = r === 0 ? 'start' : String(r);
    }
    const me = svg('circle', { class: 'searcher', cx: x(0), cy: y(sharedBits(searcher, key)), r: 4 }, el);
    titled(me, `the searcher ${searcher}`);
    return (h) => {
      const ln = svg('line', {
        class: `progress-hop round-${Math.min(h.round, 8)}${h.outcome === 'timed_out' ? ' timed-out' : ''}`,
        x1: x(h.fromRound).toFixed(1),
        y1: y(h.fromBits).toFixed(1),
        x2: x(h.round).toFixed(1),
        y2: y(h.bits).toFixed(1),
      }, el);
      titled(ln, `round ${h.round}: ${short(h.to)}… shares ${h.bits} bits`);
      svg('circle', { class: `progress-node ${h.outcome}`, cx: x(h.round).toFixed(1), cy: y(h.bits).toFixed(1), r: 3 }, el);
    };
  }

  // --- Traffic charts ------------------------------------------------------------------------

  const CHARTS = [
    { id: 'datagrams', title: 'datagrams', series: [['datagrams_in', 'in'], ['datagrams_out', 'out']] },
    { id: 'bytes', title: 'bytes', series: [['bytes_in', 'in'], ['bytes_out', 'out']] },
    {
      id: 'errors',
      title: 'errors and drops',
      series: [
        ['errors_sent', 'errors sent'],
        ['errors_received', 'received'],
        ['malformed', 'malformed'],
        ['dropped', 'dropped'],
      ],
    },
  ];

  /** Per-second rates of counter `name` between consecutive samples: [{t, v}]. */
  function rates(name) {
    const out = [];
    const h = state.history;
    for (let i = 1; i < h.length; i++) {
      const a = num(h[i - 1].c[name]);
      const b = num(h[i].c[name]);
      const dt = h[i].t - h[i - 1].t;
      if (a === null || b === null || dt <= 0 || b < a) continue;
      out.push({ t: h[i].t, v: (b - a) / dt });
    }
    return out;
  }

  function drawCharts() {
    const box = $('charts');
    clear(box);
    if (!state.status) return;
    if (!state.status.traffic) {
      html('p', { class: 'hint' }, 'This node reports no traffic counters.', box);
      return;
    }
    const W = 300;
    const H = 70;
    const now = state.history.length ? state.history[state.history.length - 1].t : 0;
    for (const chart of CHARTS) {
      const fig = html('figure', { class: 'chart', 'data-chart': chart.id }, null, box);
      const data = chart.series.map(([name, label]) => ({ name, label, pts: rates(name) }));
      const max = Math.max(1, ...data.flatMap((d) => d.pts.map((p) => p.v)));
      // Stretched to the panel's width: no text inside, strokes keep their width.
      const el = svg('svg', {
        viewBox: `0 0 ${W} ${H}`,
        preserveAspectRatio: 'none',
        role: 'img',
        'aria-label': `${chart.title} per second over the last ${CHART_WINDOW_S / 60} minutes, up to ${fmtCount(max)}/s`,
      }, fig);
      svg('line', { class: 'axis', x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, 'vector-effect': 'non-scaling-stroke' }, el);
      svg('line', { class: 'gridline', x1: 0, y1: 12, x2: W, y2: 12, 'vector-effect': 'non-scaling-stroke' }, el);
      data.forEach((d, i) => {
        const pts = d.pts
          .filter((p) => now - p.t <= CHART_WINDOW_S)
          .map((p) => `${(W - ((now - p.t) / CHART_WINDOW_S) * W).toFixed(1)},${(H - 2 - ((H - 14) * p.v) / max).toFixed(1)}`);
        if (pts.length) {
          svg('polyline', {
            class: `series s${i}`,
            'data-series': d.name,
            points: pts.join(' '),
            'vector-effect': 'non-scaling-stroke',
          }, el);
        }
      });
      const cap = html('figcaption', {}, null, fig);
      html('strong', {}, chart.title, cap);
      html('span', { class: 'scale' }, ` (top line ${fmtCount(max)}/s)`, cap);
      data.forEach((d, i) => {
        const last = d.pts.length ? d.pts[d.pts.length - 1].v : null;
        const total = num(state.status.traffic[d.name]);
        const span = html('span', { class: `key s${i}`, title: `total since start: ${fmtCount(total)}` }, null, cap);
        span.textContent = ` ${d.label} ${last === null ? '–' : fmtCount(last)}/s`;
      });
    }
  }

  // --- URL fragment --------------------------------------------------------------------------

  function readParams() {
    const p = new URLSearchParams(location.search);
    for (const [k, v] of new URLSearchParams(location.hash.replace(/^#/, ''))) p.set(k, v);
    return p;
  }

  function writeFragment(key) {
    const p = new URLSearchParams();
    p.set('node', String(state.node));
    if (key) p.set('lookup', key);
    history.replaceState(null, '', '#' + p.toString());
  }

  function applyParams() {
    const p = readParams();
    const n = parseInt(p.get('node') || '', 10);
    if (Number.isInteger(n)) {
      if (!state.nodes.some((m) => m.index === n) && state.nodes.length) {
        setError('input', `There is no node ${n}; showing node ${state.nodes[0].index}.`);
      }
      selectNode(n, false);
    }
    const key = p.get('lookup');
    if (key) runLookup(key);
  }

  // --- Start ---------------------------------------------------------------------------------

  async function start() {
    $('lookup-form').addEventListener('submit', (e) => {
      e.preventDefault();
      runLookup($('lookup-key').value);
    });
    $('lookup-random').addEventListener('click', () => runLookup('random'));
    $('lookup-pick').addEventListener('change', (e) => {
      const key = e.target.value;
      e.target.value = ''; // so picking the same key again runs it again
      if (key) runLookup(key);
    });
    $('node-picker').addEventListener('change', (e) => selectNode(parseInt(e.target.value, 10), false));
    window.addEventListener('hashchange', applyParams);
    await loadNodes();
    state.node = -1; // so the first selectNode counts as a change
    const p = readParams();
    const n = parseInt(p.get('node') || '0', 10);
    selectNode(Number.isInteger(n) ? n : 0, false);
    if (Number.isInteger(n) && state.nodes.length && !state.nodes.some((m) => m.index === n)) {
      setError('input', `There is no node ${n}; showing node ${state.node}.`);
    }
    const key = p.get('lookup');
    if (key) runLookup(key);
    document.body.dataset.ready = '1';
  }

  start();
})();
