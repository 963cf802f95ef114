// The dashboard's browser script, served as /app.js: listens to /api/stream and draws the five
// views with DOM calls (text is never parsed as HTML). Plain ES2020, no framework, no template
// literals (this file is one).
// String.raw keeps "\n" and "\u0060" in the script escapes, not a newline or a backquote.
export const PAGE_SCRIPT = String.raw`'use strict';
(function () {
  // isLive: the stream answers; lastUpdate: when the data shown was taken; isDeferred: a redraw
  // waits for the user to finish selecting text or choosing in a drop-down (isChoosing).
  // isAllEdges: the user asked for every edge of a mesh with more than EDGE_ROWS_SHOWN.
  var state = { data: null, tab: 'overview', namespace: '', isLive: false, problem: '', lastUpdate: null, isDeferred: false, isChoosing: false, isAllEdges: false };
  var SVG = 'http://www.w3.org/2000/svg';

  function h(tag, attrs, children) {
    var el = tag.indexOf('svg:') === 0 ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (var key in attrs || {}) {
      if (attrs[key] === undefined || attrs[key] === null) continue;
      if (key === 'text') el.textContent = attrs[key];
      else el.setAttribute(key, attrs[key]);
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      el.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
    });
    return el;
  }
  function shortId(id) {
    var domain = state.data && state.data.certificates.trustDomain;
    var prefix = 'spiffe://' + domain + '/';
    return id && domain && id.indexOf(prefix) === 0 ? id.slice(prefix.length) : id || '—';
  }
  /** A SPIFFE ID (or fingerprint) that may break after each '/' rather than widen its table past the screen. */
  function idSpan(text, title) {
    var parts = String(text).split('/');
    var children = [];
    parts.forEach(function (part, i) {
      children.push(i < parts.length - 1 ? part + '/' : part);
      if (i < parts.length - 1) children.push(h('wbr'));
    });
    // Short parts never break at their hyphens (sa/vote-⏎bot): only after a '/'. A part too long
    // for its column still breaks anywhere rather than push the TLS column off screen.
    var isShort = parts.every(function (part) { return part.length <= SHORT_NAME; });
    return h('span', { class: isShort ? 'id whole' : 'id', title: title }, children);
  }
  // A name this short is never split across lines (vote-⏎bot on a phone); a longer one may be.
  var SHORT_NAME = 24;
  /** A cell with a service name, kept on one line if short. */
  function nameTd(name) { return td(name, String(name).length <= SHORT_NAME ? 'name' : undefined); }
  function percent(share) { return share === null ? '—' : (share * 100).toFixed(share === 1 ? 0 : 1) + '%'; }
  function perSecond(rate, unit) {
    var per = (unit ? ' ' + unit : '') + '/s';
    return rate === null ? '—' : rate < 0.05 && rate > 0 ? '<0.1' + per : rate.toFixed(1) + per;
  }
  /** Requests per second; for an edge without HTTP requests (TCP, or refused), connections per second. */
  function edgeRate(edge) {
    return edge.requests > 0 || edge.connectionRate === null ? perSecond(edge.requestRate) : perSecond(edge.connectionRate, 'conn');
  }
  function bytes(n) {
    var units = ['B', 'KiB', 'MiB', 'GiB'];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
  }
  function duration(seconds) {
    var past = seconds < 0;
    var s = Math.abs(Math.round(seconds));
    var d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), ss = s % 60;
    var text = d > 0 ? d + 'd ' + hh + 'h' : hh > 0 ? hh + 'h ' + m + 'm' : m > 0 ? m + 'm ' + ss + 's' : ss + 's';
    return past ? text + ' ago' : 'in ' + text;
  }
  function countdown(iso, status) {
    if (!iso) return h('span', { class: 'countdown unknown', text: '—' });
    return h('span', { class: 'countdown ' + status, 'data-deadline': iso, title: iso, text: duration((Date.parse(iso) - Date.now()) / 1000) });
  }
  function tick() {
    document.querySelectorAll('[data-deadline]').forEach(function (el) {
      el.textContent = duration((Date.parse(el.getAttribute('data-deadline')) - Date.now()) / 1000);
    });
    document.querySelectorAll('[data-since]').forEach(function (el) { el.textContent = ago(el.getAttribute('data-since')); });
  }
  function pill(kind, text) { return h('span', { class: 'pill ' + kind, text: text }); }
  // The reason codes (the metrics' labels, as mutual edges prints them) in words: a code alone
  // ('loopback', 'plaintext_strict') left a user guessing why an edge is not mTLS.
  var REASON_TEXT = {
    no_client_hello: 'the client sent plain text, which this PERMISSIVE port accepts',
    loopback: 'a plain-text client on this machine (loopback), which this PERMISSIVE port accepts',
    opaque_tls: "TLS for another server name, passed to the app's own TLS on a PERMISSIVE port: the sidecar did not check the client",
    not_meshed: 'the destination has no sidecar, so the call left in plain text',
    port_skipped: 'the port is excluded from interception: the sidecar does not see this traffic',
    disabled: 'the port is in DISABLE mode: plain text by policy',
    plaintext: 'only refused calls were seen, none with a client identity',
    plaintext_strict: 'the client sent plain text to a STRICT port: refused before the app',
    not_ready: 'the sidecar had no certificate yet: refused',
    connect_failed: "the destination's sidecar could not be reached",
    connect_timeout: "no TCP connection to the destination's sidecar within the time limit",
    unmeshed_refused: 'a destination without a sidecar, refused by --outbound-strict',
    no_client_certificate: 'TLS without a client certificate',
    unknown_authority: "a certificate from another CA than this mesh's",
    expired: 'an expired certificate',
    not_yet_valid: 'a certificate not valid yet (clock skew?)',
    wrong_identity: 'the peer proved another SPIFFE ID than the one expected',
    not_svid: 'a certificate that is not a SPIFFE SVID',
    protocol: 'not TLS 1.3, or a broken handshake',
    timeout: 'the handshake did not finish in time',
  };
  /** 'refused: plaintext_strict, loopback' in words, each code as it is in the metrics. */
  function explainReason(reason) {
    return String(reason || 'plaintext').split(', ').map(function (part) {
      var code = part.replace(/^(refused|failed): /, '');
      var text = REASON_TEXT[code];
      return text ? part + ' — ' + text : part;
    }).join('; ');
  }
  function secured(edge) {
    if (edge.isSecured) return h('span', { class: 'pill secured', title: 'mutual TLS: both ends proved their SPIFFE identity', text: '✓ mTLS' });
    return h('span', { class: 'pill insecure', title: 'not mTLS: ' + explainReason(edge.reason), text: '✗ ' + (edge.reason || 'plaintext') });
  }
  function table(headers, rows, emptyText, titles) {
    if (rows.length === 0) return h('div', { class: 'empty', text: emptyText });
    // A header ending in '#' heads a column of numbers (right-aligned); titles says what a column counts.
    return h('div', { class: 'scroll' }, [h('table', {}, [
      h('thead', {}, [h('tr', {}, headers.map(function (x) {
        var name = x.slice(-1) === '#' ? x.slice(0, -1) : x;
        var attrs = { text: name };
        if (x.slice(-1) === '#') attrs.class = 'num';
        if (titles && titles[name]) attrs.title = titles[name];
        return h('th', attrs);
      }))]),
      h('tbody', {}, rows),
    ])]);
  }
  /** An ISO time as people read it, in UTC as certificates and logs give it: 2026-11-24 02:07:18 UTC. */
  function utc(iso) {
    return typeof iso === 'string' ? iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '') + ' UTC' : '—';
  }
  /** The browser's local time of day with its zone, so it cannot be mistaken for UTC. */
  function clock(date) {
    return date.toLocaleTimeString(undefined, { timeZoneName: 'short' });
  }
  function td(content, cls) {
    return typeof content === 'string' || typeof content === 'number'
      ? h('td', { class: cls, text: String(content) })
      : h('td', { class: cls }, [content]);
  }
  function card(label, value, sub, share, tone) {
    var bar = null;
    if (share !== undefined && share !== null) {
      var fill = h('span');
      fill.style.width = Math.round(share * 100) + '%';
      bar = h('div', { class: 'bar' }, [fill]);
    }
    return h('div', { class: 'card' + (tone ? ' ' + tone : '') }, [h('div', { class: 'label', text: label }), h('div', { class: 'value', text: value }), h('div', { class: 'sub', text: sub }), bar]);
  }
  function panel(title, children) { return h('div', { class: 'panel' }, [h('h2', { text: title })].concat(children)); }

  // Text with backquoted code spans (the fix commands of mutual check): code shown as code, never as HTML.
  function withCode(text) {
    return text.split('\u0060').map(function (part, i) { return i % 2 === 1 ? h('code', { text: part }) : part; });
  }
  /** A count with thousands grouped (12,345), one way everywhere as the page's decimals are. */
  function number(n) { return typeof n === 'number' ? n.toLocaleString('en-US', { maximumFractionDigits: 1 }) : String(n); }
  function plural(n, what) { return number(n) + ' ' + what + (n === 1 ? '' : 's'); }
  function namespaceOf(d, service) {
    var workload = (d.policy.workloads || []).filter(function (w) { return w.service === service; })[0];
    return workload ? workload.namespace : null;
  }
  function ago(iso) { return duration((Date.parse(iso) - Date.now()) / 1000); }
  function renderChecks(checks) {
    var failing = checks.failing;
    var title = 'mutual check' + (failing.length === 0 ? '' : ' — ' + checks.errors + ' error' + (checks.errors === 1 ? '' : 's') + ', ' + checks.warnings + ' warning' + (checks.warnings === 1 ? '' : 's'));
    var meta = h('div', { class: 'meta' }, [
      checks.trafficWindow ? 'judged on ' + checks.trafficWindow.description + ' · ' : '',
      'checked ', h('span', { 'data-since': checks.generatedAt, text: ago(checks.generatedAt) }),
    ]);
    if (failing.length === 0) {
      return panel(title, [meta, h('div', { class: 'all-pass', text: '✓ All ' + checks.total + ' checks pass: the CA, the identity service, every sidecar, the traffic and the policies.' })]);
    }
    var items = failing.map(function (f) {
      return h('li', { class: 'check ' + f.severity, 'data-check': f.description }, [
        h('div', { class: 'check-head' }, [
          pill(f.severity, f.severity === 'error' ? '× error' : '‼ warning'),
          h('strong', { text: f.description }),
          h('span', { class: 'category', text: f.category }),
        ]),
        h('div', { class: 'check-message', text: (f.subject ? f.subject + ': ' : '') + f.message }),
        f.details.length ? h('pre', { class: 'check-details', text: f.details.join('\n') }) : null,
        h('div', { class: 'check-why' }, ['Why it matters: '].concat(withCode(f.hint))),
        h('div', { class: 'check-fix' }, [h('span', { class: 'fix-label', text: 'Fix' })].concat(withCode(f.fix))),
      ]);
    });
    var passing = checks.total - checks.errors - checks.warnings;
    return panel(title, [meta, h('ul', { class: 'checks' }, items),
      h('div', { class: 'meta', text: passing + ' other check' + (passing === 1 ? '' : 's') + ' pass or do not apply · the same as mutual check prints' })]);
  }

  function renderOverview(d) {
    var o = d.overview;
    var c = o.traffic.connections, r = o.traffic.requests, k = o.checks;
    var failed = k.errors + k.warnings;
    var panels = [
      h('div', { class: 'cards' }, [
        card('Checks', failed === 0 ? 'All pass' : failed + ' failing', plural(k.errors, 'error') + ' · ' + plural(k.warnings, 'warning') + ' · ' + k.total + ' checks', null, k.errors > 0 ? 'bad' : k.warnings > 0 ? 'warn' : 'good'),
        card('Connections over mTLS', percent(c.securedShare), number(c.secured) + ' of ' + plural(c.total, 'connection'), c.securedShare),
        card('Requests over mTLS', percent(r.securedShare), number(r.secured) + ' of ' + plural(r.total, 'HTTP request'), r.securedShare),
        card('Meshed workloads', number(o.workloads.meshed.length), plural(o.workloads.unreachable.length, 'sidecar') + ' not answering · ' + plural(o.workloads.unmeshed.length, 'unmeshed peer')),
        card('Denials', number(o.denials.recent), o.denials.windowSeconds === null ? number(o.denials.total) + ' in total' : 'in the last ' + o.denials.windowSeconds + ' s · ' + number(o.denials.total) + ' in total'),
      ]),
      renderChecks(k),
    ];
    if (o.problems.length > 0) {
      panels.push(panel('Certificates to watch', [h('ul', { class: 'problems' }, o.problems.map(function (p) { return h('li', { class: p.severity, text: p.message }); }))]));
    }
    return panels;
  }

  /** What refused an edge's calls, from the Policy tab's denials: the deciding policies by name. */
  function deniedBy(d, edge) {
    var names = [];
    d.policy.denials.forEach(function (x) {
      if (x.service === edge.destination && x.client === edge.source && names.indexOf(x.policy) < 0) names.push(x.policy);
    });
    return names.length ? 'refused by ' + names.join(', ') : 'refused by policy';
  }
  /**
   * A deciding policy and its kind: a DENY rule matched, or the workload's ALLOW policies (the
   * sidecar names up to three, comma-separated, then '+N more') had no rule for the caller.
   */
  function withAction(d, service, policy) {
    var workload = (d.policy.workloads || []).filter(function (w) { return w.service === service; })[0];
    var lists = (workload && workload.authorizationPolicies) || {};
    var names = policy.split(',').filter(function (name) { return !/^\+\d+ more$/.test(name); });
    function isIn(action) { return names.every(function (name) { return (lists[action] || []).indexOf(name) >= 0; }); }
    if (names.length === 1 && isIn('DENY')) return policy + ' (DENY: a rule matched)';
    if (isIn('ALLOW')) return policy + ' (ALLOW: no rule matched this client)';
    // Counts run since the sidecar started: a policy removed since keeps its denials on the page.
    if (workload && !workload.error && workload.authorizationPolicies && policy.indexOf('/') > 0) return policy + ' (no longer in force)';
    return policy;
  }
  // Past this many, the notes under the edges stop: the table has the rest.
  var EDGE_NOTES_SHOWN = 20;
  /** In words, under the table, for each edge not mTLS, denied or failing: why, and which policy. */
  function edgeNotes(d, edges) {
    var notes = [];
    edges.forEach(function (edge) {
      var name = edge.source + ' → ' + edge.destination + (edge.port === undefined || edge.port === null ? '' : ':' + edge.port);
      if (!edge.isSecured) {
        notes.push(h('li', { class: 'error', 'data-why': edge.id }, [h('strong', { text: name }), ' is not mTLS: ' + explainReason(edge.reason) + '.']));
      } else if (edge.denied > 0 || edge.failed > 0) {
        var said = [];
        if (edge.denied > 0) {
          var names = [];
          d.policy.denials.forEach(function (x) {
            if (x.service === edge.destination && x.client === edge.source && names.indexOf(x.policy) < 0) names.push(x.policy);
          });
          said.push(plural(edge.denied, edge.requests > 0 ? 'request' : 'connection') + ' denied' + (edge.requests > 0 ? ' (403)' : '') + ' by ' +
            (names.length ? names.map(function (p) { return withAction(d, edge.destination, p); }).join(', ') : 'policy'));
        }
        // The Failed count's why was a tooltip only.
        if (edge.failed > 0) said.push(number(edge.failed) + ' failed before reaching ' + edge.destination + ': ' + explainReason(edge.failure || 'unknown'));
        notes.push(h('li', { class: edge.failed > 0 ? 'error' : 'warning', 'data-why': edge.id }, [h('strong', { text: name }), ': ' + said.join('; ') + '.']));
      }
    });
    if (notes.length > EDGE_NOTES_SHOWN) {
      var rest = notes.length - EDGE_NOTES_SHOWN;
      notes = notes.slice(0, EDGE_NOTES_SHOWN).concat([h('li', { text: 'and ' + plural(rest, 'other edge') + ' not mTLS, denied or failing (see the table).' })]);
    }
    return notes;
  }
  /**
   * Non-5xx over the window, as Rate (since the sidecar started before there is one): since start
   * only, an edge kept the 33 % of a fault fixed long ago while every check passed. Both on hover.
   */
  function nonServerErrors(edge, windowSeconds) {
    if (edge.successRate === null) return '—';
    var total = percent(edge.successRate) + ' since the sidecar started';
    if (windowSeconds === null || edge.recentSuccessRate === undefined) return h('span', { title: total, text: percent(edge.successRate) });
    var recent = edge.recentSuccessRate === null ? 'no requests' : percent(edge.recentSuccessRate);
    return h('span', { title: recent + ' in the last ' + windowSeconds + ' s; ' + total, text: edge.recentSuccessRate === null ? '—' : recent });
  }
  function renderEdges(d) {
    var e = d.edges;
    var select = h('select', { id: 'namespace' }, [h('option', { value: '', text: 'all namespaces' })].concat(
      e.namespaces.map(function (ns) { return h('option', { value: ns, text: ns }); })));
    select.value = state.namespace;
    // While its list is open a redraw would close it: updates wait (see isBusy).
    select.addEventListener('mousedown', function () { state.isChoosing = true; });
    select.addEventListener('keydown', function (event) { if (event.key === 'Escape' || event.key === 'Tab') state.isChoosing = false; });
    select.addEventListener('blur', function () { state.isChoosing = false; });
    select.addEventListener('change', function () { state.isChoosing = false; state.namespace = select.value; render(); });
    var matching = e.edges.filter(function (edge) {
      return !state.namespace || edge.sourceNamespace === state.namespace || edge.destinationNamespace === state.namespace;
    });
    var shown = state.isAllEdges ? matching : someEdges(matching);
    var rows = shown.map(function (edge) {
      return h('tr', { 'data-edge': edge.id, class: edge.isSecured ? 'secured' : 'insecure' }, [
        // A client of another trust domain is named by its SPIFFE ID: it wraps as the identities do.
        edge.source.indexOf('/') >= 0 ? td(idSpan(edge.source)) : nameTd(edge.source), nameTd(edge.destination),
        td(h('span', { class: 'port' }, [edge.port === undefined || edge.port === null ? '—' : String(edge.port), h('small', { text: edge.protocol })])),
        td(secured(edge)),
        // Shown without the trust domain (in the header); the whole SPIFFE ID on hover.
        td(idSpan(shortId(edge.clientId), edge.clientId)),
        td(idSpan(shortId(edge.serverId), edge.serverId)),
        td(edgeRate(edge), 'num'), td(nonServerErrors(edge, e.windowSeconds), 'num'),
        td(number(edge.requests), 'num'), td(number(edge.connections), 'num'), td(bytes(edge.bytes), 'num'),
        td(edge.denied ? h('span', { class: 'denied', title: deniedBy(d, edge) + ' (a 403 answer to a request, which counts in Non-5xx as in Linkerd\'s success rate)', text: number(edge.denied) }) : '0', 'num'),
        td(edge.failed ? h('span', { class: 'failed', title: edge.failure || '', text: number(edge.failed) }) : '0', 'num'),
      ]);
    });
    var missing = edgeNotes(d, shown).concat(e.unreachable.map(function (u) { return h('li', { class: 'error', text: 'the sidecar of ' + u.service + ' does not answer (' + u.error + '): its edges show only what the other end counted' }); }));
    // As mutual edges says: a client refused at the TLS handshake has no identity, so it is no row.
    (e.refusedHandshakes || []).forEach(function (r) {
      if (state.namespace && namespaceOf(d, r.service) !== state.namespace) return;
      var reasons = Object.keys(r.reasons).sort();
      var total = reasons.reduce(function (sum, reason) { return sum + r.reasons[reason]; }, 0);
      missing.push(h('li', { class: 'warning', 'data-refused': r.service, title: reasons.map(explainReason).join('; ') }, [
        r.service + "'s sidecar refused " + plural(total, 'TLS handshake') + ' since it started (' + reasons.map(function (reason) { return number(r.reasons[reason]) + ' ' + reason; }).join(', ') + '): a refused client has no identity, so it is no edge. ',
        h('code', { text: 'mutual logs ' + r.service + ' --proxy --state-dir ' + d.overview.mesh.stateDir }), ' names the first client of each reason.',
      ]));
    });
    var more = null;
    if (shown.length < matching.length) {
      var all = h('button', { type: 'button', id: 'all-edges', text: 'Show all ' + number(matching.length) });
      all.addEventListener('click', function () { state.isAllEdges = true; render(); });
      more = h('p', { class: 'trimmed' }, [
        'Showing ' + number(shown.length) + ' of ' + number(matching.length) + ' edges: every one not mTLS, denied or failing, then the others in order. ', all,
      ]);
    }
    return [panel('Edges: who calls whom, and is it mTLS', [
      h('div', { class: 'toolbar' }, [h('span', { text: 'Namespace' }), select]),
      more,
      // Headed Non-5xx, not Success: "Success 100%" beside "Denied 35" of 35 requests read as if the
      // denied calls had succeeded (mutual edges heads it NON_5XX).
      table(['Source', 'Destination', 'Port', 'TLS', 'Client identity', 'Server identity', 'Rate#', 'Non-5xx#', 'Reqs#', 'Conns#', 'Bytes#', 'Denied#', 'Failed#'],
        rows, d.overview.mesh.isRunning ? 'No traffic yet: the sidecars have not carried a connection.' : 'No edges: no mesh is running.', EDGE_COLUMN_TITLES),
      missing.length ? h('ul', { class: 'problems' }, missing) : null,
    ])];
  }

  // Past this many, the Edges tab shows this many unless asked: a 40-service mesh whose services
  // all call each other has 1,560 edges, and rebuilding their 39,000 nodes took the page ~0.5 s of
  // every 2 s update (script, style and layout), against 0.02 s at 5 services.
  var EDGE_ROWS_SHOWN = 200;
  /** The edges to draw: all those with a problem, then the others in order, up to EDGE_ROWS_SHOWN. */
  function someEdges(edges) {
    if (edges.length <= EDGE_ROWS_SHOWN) return edges;
    function hasProblem(edge) { return !edge.isSecured || edge.denied > 0 || edge.failed > 0; }
    var room = EDGE_ROWS_SHOWN - edges.filter(hasProblem).length;
    return edges.filter(function (edge) {
      if (hasProblem(edge)) return true;
      room--;
      return room >= 0;
    });
  }

  var EDGE_COLUMN_TITLES = {
    Rate: 'requests (or TCP connections) per second over the last window',
    'Non-5xx': "share of requests answered with a status below 500 (Linkerd's success rate) over the last window, as Rate (since the sidecar started until there is a window; a value's tooltip gives both): a request denied by policy is answered 403 and counts here, see Denied",
    Reqs: "HTTP requests, as the destination's sidecar counted them since it (re)started",
    Denied: 'of Reqs, those an AuthorizationPolicy denied (403), or connections refused by policy; same sidecar and window as Reqs',
    Failed: 'outbound connections that never reached the destination',
  };

  function renderTopology(d) {
    var edges = d.edges.edges;
    var services = (d.policy.workloads || []).map(function (w) { return w.service; });
    var names = services.slice();
    edges.forEach(function (e) { [e.source, e.destination].forEach(function (n) { if (names.indexOf(n) < 0) names.push(n); }); });
    if (names.length === 0) return [panel('Topology', [h('div', { class: 'empty', text: 'No services.' })])];
    function label(n) { return n.length > 22 ? n.slice(0, 21) + '…' : n; }
    var downNames = d.edges.unreachable.map(function (u) { return u.service; });
    // Wide enough for its name, and for 'sidecar not answering' under it.
    function boxWidth(n) { return Math.max(downNames.indexOf(n) >= 0 ? 170 : 90, label(n).length * 8 + 24); }
    var widest = Math.max.apply(null, names.map(boxWidth));
    // Nodes on an ellipse (1.5 : 1) large enough that neighbours never overlap: at 45° a step of
    // 2π/n moves a node about 1.06 r·step sideways, which must clear the widest box.
    var radius = Math.max(190, (widest + 16) / (1.06 * ((2 * Math.PI) / names.length)));
    var width = Math.max(1000, 3 * radius + widest + 40), height = 2 * radius + 130, cx = width / 2, cy = height / 2;
    var at = {};
    names.forEach(function (n, i) {
      var angle = -Math.PI / 2 + (2 * Math.PI * i) / names.length;
      at[n] = { x: cx + radius * 1.5 * Math.cos(angle), y: cy + radius * Math.sin(angle) };
    });
    // Past a few dozen edges the labels cover each other: only the ones that need a look keep theirs.
    var isCrowded = edges.length > 24;
    // As an image the graph's text is hidden from screen readers: its label says what it shows.
    var insecureCount = edges.filter(function (e) { return !e.isSecured; }).length;
    var deniedCount = edges.filter(function (e) { return e.isSecured && e.denied > 0; }).length;
    var svg = h('svg:svg', { class: 'topology', viewBox: '0 0 ' + width + ' ' + height, role: 'img',
      'aria-label': 'service graph: ' + plural(names.length, 'service') + ', ' + plural(edges.length, 'edge') + ', ' + (edges.length - insecureCount) + ' mTLS (' + deniedCount + ' with denials), ' + insecureCount + ' not mTLS; each edge is a row of the Edges tab' });
    // Drawn at no less than 70 % of its size (names at 9 px or more): on a phone or with many
    // services the graph scrolls rather than shrinks to dots.
    svg.style.minWidth = Math.round(width * 0.7) + 'px';
    var defs = h('svg:defs');
    ['ok', 'warn', 'bad'].forEach(function (m) {
      defs.appendChild(h('svg:marker', { id: 'arrow-' + m, viewBox: '0 0 10 10', refX: '10', refY: '5', markerWidth: '7', markerHeight: '7', orient: 'auto-start-reverse' },
        [h('svg:path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrow ' + m })]));
    });
    svg.appendChild(defs);
    edges.forEach(function (e, i) {
      var a = at[e.source], b = at[e.destination];
      if (!a || !b || a === b) return;
      var dx = b.x - a.x, dy = b.y - a.y, len = Math.sqrt(dx * dx + dy * dy) || 1;
      var ux = dx / len, uy = dy / len;
      var pad = 62, bend = e.isSecured ? 18 : -18;
      var x1 = a.x + ux * pad, y1 = a.y + uy * 24 + uy * 4, x2 = b.x - ux * pad, y2 = b.y - uy * 28;
      var mx = (x1 + x2) / 2 - uy * bend, my = (y1 + y2) / 2 + ux * bend;
      // An mTLS edge with denials is amber: its calls are refused by policy (a 403 counts as success).
      var isDenied = e.isSecured && e.denied > 0;
      svg.appendChild(h('svg:path', { class: 'edge ' + (e.isSecured ? 'secured' : 'insecure') + (isDenied ? ' denied' : ''), 'data-edge': e.id, d: 'M ' + x1 + ' ' + y1 + ' Q ' + mx + ' ' + my + ' ' + x2 + ' ' + y2,
        'marker-end': 'url(#arrow-' + (isDenied ? 'warn' : e.isSecured ? 'ok' : 'bad') + ')' }, [h('svg:title', { text: e.id + (e.isSecured ? ' · mTLS · ' + edgeRate(e) : ' · not mTLS: ' + explainReason(e.reason)) })]));
      var text = e.isSecured ? edgeRate(e) : (e.reason || 'plaintext');
      if (e.isSecured && e.denied > 0) text += ' · ' + e.denied + ' denied';
      if (isCrowded && e.isSecured && !e.denied && !e.failed) return;
      svg.appendChild(h('svg:text', { class: 'rate', x: String(mx), y: String(my - 4), 'text-anchor': 'middle', text: text }));
    });
    names.forEach(function (n) {
      var p = at[n], meshed = services.indexOf(n) >= 0;
      var text = label(n), w = boxWidth(n);
      var workload = (d.policy.workloads || []).filter(function (x) { return x.service === n; })[0];
      // A sidecar that does not answer (killed, hung) is marked on its node, as on the Edges tab.
      var down = d.edges.unreachable.filter(function (u) { return u.service === n; })[0];
      svg.appendChild(h('svg:g', { class: 'node ' + (meshed ? 'meshed' : 'unmeshed') + (down ? ' unreachable' : ''), 'data-node': n, transform: 'translate(' + p.x + ',' + p.y + ')' }, [
        down ? h('svg:title', { text: 'the sidecar of ' + n + ' does not answer (' + down.error + ')' }) : null,
        h('svg:rect', { x: String(-w / 2), y: '-22', width: String(w), height: '44', rx: '10' }),
        h('svg:text', { 'text-anchor': 'middle', y: '-2', text: text }),
        h('svg:text', { class: 'ns', 'text-anchor': 'middle', y: '13', text: down ? 'sidecar not answering' : meshed ? (workload && workload.namespace) || '' : 'not meshed' }),
      ]));
    });
    return [panel('Topology', [
      h('div', { class: 'legend' }, [h('span', {}, [h('i', { class: 'l-ok' }), 'mTLS']), h('span', {}, [h('i', { class: 'l-warn' }), 'mTLS, denied by policy']), h('span', {}, [h('i', { class: 'l-bad' }), 'not mTLS']),
        h('span', { text: isCrowded ? 'labels: only edges that are not mTLS, denied or failing (hover an edge for its rate; every edge is on the Edges tab)' : 'labels: requests (or TCP connections) per second, or why not mTLS' })]),
      h('div', { class: 'scroll' }, [svg]),
    ])];
  }

  function renderCertificates(d) {
    var c = d.certificates;
    var ca = [];
    if (c.issuer) ca.push(h('tr', { 'data-cert': 'issuer' }, [td('Issuer (intermediate CA)'), td(c.issuer.fingerprint ? h('span', { class: 'id', text: c.issuer.fingerprint }) : '—'), td(pill(c.issuer.status, c.issuer.status)), td(countdown(c.issuer.notAfter, c.issuer.status)), td(h('span', { class: 'id', title: c.issuer.notAfter, text: utc(c.issuer.notAfter) }))]));
    c.trustAnchors.forEach(function (a) {
      ca.push(h('tr', { 'data-cert': 'anchor' }, [td('Trust anchor'), td(h('span', { class: 'id', text: a.fingerprint })), td(pill(a.status, a.status)), td(countdown(a.notAfter, a.status)), td(h('span', { class: 'id', title: a.notAfter, text: utc(a.notAfter) }))]));
    });
    var workloads = c.workloads.map(function (w) {
      var r = w.lastRenewal;
      // A failed renewal says why (the sidecar's error), in red; a renewal time long past is amber.
      var last = !r ? '—' : h('span', { class: r.result === 'failed' ? 'renewal failed' : 'renewal' }, [
        (r.result || '?') + (r.at ? ' ' + duration((Date.parse(r.at) - Date.now()) / 1000) : ''),
        r.error ? h('small', { class: 'renewal-error', text: (r.error.message || '') + (r.error.code ? ' (' + r.error.code + ')' : '') }) : null,
      ]);
      // A renewal time past is as bad as the certificate it did not replace (with a short lifetime
      // it expires within the minute), and amber at least more than a minute past.
      var isPast = w.secondsToRenewal !== null && w.secondsToRenewal < 0;
      var renewTone = isPast && w.status !== 'ok' && w.status !== 'unknown' ? w.status : isPast && w.secondsToRenewal < -60 ? 'warning' : 'ok';
      return h('tr', { 'data-cert': w.service }, [
        nameTd(w.service), td(idSpan(shortId(w.spiffeId), w.spiffeId)),
        td(w.error ? h('span', { class: 'pill unknown', title: 'the sidecar does not answer: ' + w.error, text: 'unreachable' }) : pill(w.status, w.status)),
        // A renewal time past means the certificate was not renewed yet: 'was due 14m ago', not
        // '14m ago' under Renews, which read as renewed 14 minutes ago.
        td(countdown(w.notAfter, w.status)), td(isPast ? h('span', { class: 'overdue' }, ['was due ', countdown(w.renewAt, renewTone)]) : countdown(w.renewAt, renewTone)), td(last),
      ]);
    });
    // Without the identity service the CA comes from the files it serves: said where, and why
    // each file that could not be read could not.
    var f = c.source === 'files' ? c.files : null;
    var fileProblems = [];
    if (f) {
      [['issuer certificate', f.issuerCertificate], ['trust anchors', f.trustAnchors]].forEach(function (pair) {
        if (pair[1].error) fileProblems.push(h('li', { class: 'error', 'data-ca-file': pair[0], text: 'cannot read the ' + pair[0] + ': ' + pair[1].error }));
      });
    }
    return [
      panel('Certificate authority' + (c.identityService.reachable || f ? '' : ' — identity service not answering (' + c.identityService.error + ')'), [
        f ? h('p', { class: 'meta ca-source', 'data-ca-source': 'files', text: 'Read from ' + f.from + ' — ' + f.reason }) : null,
        table(['Certificate', 'Fingerprint', 'Status', 'Expires', 'Not after'], ca, f ? 'No CA certificate could be read from ' + f.from + '.' : 'The identity service did not report its issuer.'),
        fileProblems.length ? h('ul', { class: 'problems' }, fileProblems) : null,
      ]),
      panel('Workload certificates', [
        h('p', { class: 'meta', 'data-legend': 'status' }, ['Status: ', pill('ok', 'ok'), ' renewed on time · ', pill('warning', 'warning'), ' under 25 % of its lifetime left, or renewal over a minute late · ',
          pill('critical', 'critical'), ' under 10 % left · ', pill('expired', 'expired'), ' past its end. A sidecar renews at 70 % of the lifetime. CA certificates: warning under 30 days, critical under 7.']),
        table(['Service', 'Identity', 'Status', 'Expires', 'Renews', 'Last renewal'], workloads, 'No workloads.')]),
    ];
  }

  function renderPolicy(d) {
    var p = d.policy;
    var modes = [];
    p.workloads.forEach(function (w) {
      if (w.ports.length === 0) modes.push(h('tr', {}, [nameTd(w.service), td(w.namespace || '—'), td('—'), td(w.error ? pill('unknown', 'unknown') : '—'), td(w.error || 'no inbound ports'), td('—')]));
      w.ports.forEach(function (port) {
        modes.push(h('tr', { 'data-mode': w.service }, [nameTd(w.service), td(w.namespace || '—'), td(String(port.port)), td(pill(port.mode, port.mode)),
          // Without policyDir, mutual up starts every sidecar with mesh.yaml's mode (--mode).
          td(port.policy ? port.policy + ' (' + port.level + ')' : port.level === 'default' ? 'no PeerAuthentication (Istio default)' : w.source === 'flag' ? 'mode in mesh.yaml (no policyDir)' : port.level),
          // Each with its action: an ALLOW policy and a DENY one read alike by name alone.
          td(['ALLOW', 'DENY', 'AUDIT'].reduce(function (all, action) {
            return all.concat((w.authorizationPolicies[action] || []).map(function (name) { return name + ' (' + action + ')'; }));
          }, []).join(', ') || '—')]));
      });
    });
    var denials = p.denials.map(function (x) {
      return h('tr', { 'data-denial': x.service }, [nameTd(x.service), nameTd(x.client), td(x.kind === 'authorization' ? withAction(d, x.service, x.policy) : h('span', { title: explainReason(x.policy), text: x.policy })), td(x.port || '—'), td(number(x.recent), 'num'), td(number(x.count), 'num')]);
    });
    return [
      panel('Effective peer authentication', [table(['Workload', 'Namespace', 'Port', 'Mode', 'Set by', 'Authorization policies'], modes, 'No workloads.')]),
      panel('Denials' + (p.windowSeconds === null ? '' : ' (recent = last ' + p.windowSeconds + ' s)'), [
        table(['Workload', 'Client', 'Deciding policy / reason', 'Port', 'Recent#', 'Total#'], denials, 'No request or connection has been denied.'),
      ]),
    ];
  }

  var views = { overview: renderOverview, edges: renderEdges, topology: renderTopology, certificates: renderCertificates, policy: renderPolicy };
  /** The user is selecting text or choosing in a drop-down of the page: a redraw would undo it. */
  function isBusy() {
    var main = document.querySelector('main');
    var selection = window.getSelection();
    if (selection && !selection.isCollapsed && selection.rangeCount > 0 && main.contains(selection.getRangeAt(0).commonAncestorContainer)) return true;
    return state.isChoosing;
  }
  function renderNotice() {
    var notice = document.getElementById('notice');
    var d = state.data;
    var lines = [];
    if (!state.isLive && state.lastUpdate) {
      lines.push(h('strong', { text: 'Not updating: ' + state.problem + '.' }), ' What you see was taken at ' + clock(state.lastUpdate) + ' (', h('span', { 'data-since': state.lastUpdate.toISOString(), text: ago(state.lastUpdate.toISOString()) }), ').');
    } else if (d && !d.overview.mesh.isRunning) {
      lines.push(h('strong', { text: 'No mesh is running' }), ' from ' + d.overview.mesh.stateDir + ' (no runtime.json): start it with ',
        h('code', { text: 'mutual up -f mesh.yaml --state-dir ' + d.overview.mesh.stateDir }), '. This page follows it when it starts.');
    }
    notice.hidden = lines.length === 0;
    notice.className = 'notice' + (!state.isLive && state.lastUpdate ? ' stale' : '');
    notice.replaceChildren.apply(notice, lines);
    document.querySelector('main').classList.toggle('stale', !state.isLive && !!state.lastUpdate);
  }
  function render() {
    var d = state.data;
    document.querySelectorAll('#tabs a').forEach(function (a) {
      var isActive = a.getAttribute('data-tab') === state.tab;
      a.classList.toggle('active', isActive);
      if (isActive) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    });
    renderNotice();
    state.isDeferred = false;
    var focused = document.activeElement && document.activeElement.id;
    Object.keys(views).forEach(function (name) {
      var section = document.getElementById('view-' + name);
      section.hidden = name !== state.tab;
      if (name !== state.tab || !d) return;
      // A table or graph scrolled sideways (a phone) stays where the user put it.
      var scrolled = Array.prototype.map.call(section.querySelectorAll('.scroll'), function (el) { return el.scrollLeft; });
      section.replaceChildren.apply(section, views[name](d));
      section.querySelectorAll('.scroll').forEach(function (el, i) { if (scrolled[i]) el.scrollLeft = scrolled[i]; });
    });
    // A control the user was on (the namespace filter) keeps the keyboard focus across redraws.
    var again = focused && document.getElementById(focused);
    if (again && again !== document.activeElement) again.focus();
    if (d) {
      var o = d.overview;
      document.getElementById('mesh-name').textContent = o.mesh.isRunning
        ? 'trust domain ' + o.mesh.trustDomain + ' · ' + o.mesh.services + ' services · ' + o.mesh.stateDir
        : 'no mesh running in ' + o.mesh.stateDir;
    }
  }
  /** A redraw for new data: put off while the user selects text or uses a drop-down. */
  function update() {
    if (isBusy()) {
      state.isDeferred = true;
      renderNotice();
      return;
    }
    render();
  }
  function resume() { if (state.isDeferred && !isBusy()) render(); }
  function route() {
    var tab = location.hash.slice(1);
    state.tab = views[tab] ? tab : 'overview';
    render();
    // On a phone the tab bar scrolls: a link to #policy shows its tab, not the first four.
    var current = document.querySelector('#tabs a[aria-current]');
    var bar = document.getElementById('tabs');
    var at = current.getBoundingClientRect(), box = bar.getBoundingClientRect();
    if (at.right > box.right) bar.scrollLeft += Math.ceil(at.right - box.right) + 8;
    else if (at.left < box.left) bar.scrollLeft -= Math.ceil(box.left - at.left) + 8;
  }
  function live(isOn, text) {
    var el = document.getElementById('live');
    el.className = 'live ' + (isOn ? 'on' : 'off');
    document.getElementById('live-text').textContent = text;
  }
  /** The data shown is no longer current: say why and since when, on every tab. */
  function stale(problem) {
    state.isLive = false;
    state.problem = problem;
    live(false, problem);
    renderNotice();
  }
  /** Updates come every 2 s: this long without one, the dashboard hangs (stopped with SIGSTOP, overloaded) though its connection stays open. */
  var SILENCE_MS = 10000;
  var lastEventAt = Date.now();
  function connect() {
    var source = new EventSource('/api/stream');
    setInterval(function () {
      if (state.isLive && Date.now() - lastEventAt > SILENCE_MS) stale('no update from the dashboard for ' + Math.round((Date.now() - lastEventAt) / 1000) + ' s (hung or overloaded?)');
    }, 1000);
    source.addEventListener('update', function (event) {
      lastEventAt = Date.now();
      state.data = JSON.parse(event.data);
      state.isLive = true;
      state.lastUpdate = new Date(state.data.overview.generatedAt);
      live(true, 'live · ' + clock(state.lastUpdate));
      update();
    });
    source.addEventListener('failure', function (event) { lastEventAt = Date.now(); stale('the dashboard cannot read the mesh (' + JSON.parse(event.data).error.message + ')'); });
    // EventSource reconnects by itself (the server asks for every 2 s).
    source.onerror = function () { stale('the dashboard does not answer (stopped?), reconnecting'); };
  }
  document.addEventListener('selectionchange', resume);
  document.addEventListener('focusout', function () { setTimeout(resume, 0); });
  window.addEventListener('hashchange', route);
  route();
  connect();
  setInterval(tick, 1000);
})();
`;
