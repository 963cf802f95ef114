// The dashboard's stylesheet, served as /app.css (no build step, no CDN).
export const PAGE_STYLE = `
:root {
  --ink: #14202b; --muted: #5b6b7a; --line: #dfe5eb; --bg: #f4f6f8; --card: #fff;
  /* Text colours keep 4.5:1 (WCAG AA) on white and on their own pill backgrounds. */
  --brand: #0f2a3d; --accent: #0b6bcf; --ok: #0f7a4a; --ok-bg: #e3f6ec; --bad: #b42f2a;
  --bad-bg: #fde8e7; --warn: #8f5500; --warn-bg: #fff3dc; --unknown: #7a8794;
  --code-ink: #33475b; --soft: #eef1f4; --soft-bg: #f6f8fa; --code-bg: #eef3f8; --graph-bg: #fbfcfd;
  --node-line: #9fb0c0; --node-meshed: #0f2a3d; --header-muted: #9fb6c8; --notice-ink: #6b4200; --notice-line: #f0d9a8;
  --stale-ink: #8a1f1b; --stale-line: #f3c5c2;
  color-scheme: light dark;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: var(--ink); background: var(--bg);
}
/* A dark palette for a dark desktop, with the same 4.5:1 (WCAG AA) for every text colour. */
@media (prefers-color-scheme: dark) {
  :root {
    --ink: #e3e9ef; --muted: #9aabbb; --line: #2e3b48; --bg: #0f161d; --card: #17212b;
    --brand: #0a1a26; --accent: #6cb2ff; --ok: #5fd39a; --ok-bg: #143526; --bad: #ff8f87;
    --bad-bg: #3d1a19; --warn: #f0b35a; --warn-bg: #3a2a10; --unknown: #8795a3;
    --code-ink: #c5d3df; --soft: #243240; --soft-bg: #1d2935; --code-bg: #1f2c39; --graph-bg: #131c25;
    --node-line: #5d7185; --node-meshed: #7f9bb5; --header-muted: #9fb6c8; --notice-ink: #f5cf94; --notice-line: #6b5424;
    --stale-ink: #ffb4ae; --stale-line: #6e2c28;
  }
}
* { box-sizing: border-box; }
body { margin: 0; font-size: 14px; }
header { background: var(--brand); color: #fff; display: flex; align-items: center; gap: 20px;
  padding: 0 24px; height: 56px; }
.logo { margin: 0; font-weight: 700; font-size: 18px; letter-spacing: 0.02em; display: flex; align-items: center; gap: 8px; }
.logo svg { width: 22px; height: 22px; }
.mesh-name { color: var(--header-muted); font-size: 13px; }
.live { margin-left: auto; font-size: 12px; color: var(--header-muted); display: flex; align-items: center; gap: 6px; }
.dot { width: 8px; height: 8px; border-radius: 50%; background: var(--unknown); display: inline-block; }
.live.on .dot { background: #3ddc84; box-shadow: 0 0 0 3px rgba(61, 220, 132, 0.25); }
.live.off .dot { background: var(--bad); }
nav { background: var(--card); border-bottom: 1px solid var(--line); padding: 0 24px; display: flex; gap: 4px; overflow-x: auto; }
nav a { padding: 14px 14px 12px; color: var(--muted); text-decoration: none; font-weight: 600;
  border-bottom: 3px solid transparent; white-space: nowrap; }
nav a:focus-visible { outline: 2px solid var(--accent); outline-offset: -4px; border-radius: 4px; }
nav a:hover { color: var(--ink); }
nav a.active { color: var(--accent); border-bottom-color: var(--accent); }
main { padding: 24px; max-width: 1280px; margin: 0 auto; }
section[hidden] { display: none; }
h2 { font-size: 16px; margin: 0 0 12px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(220px, 1fr)); gap: 16px; margin-bottom: 20px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 16px 18px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: 0.05em; }
.card .value { font-size: 30px; font-weight: 700; margin: 6px 0 4px; }
.card .sub { color: var(--muted); font-size: 12px; }
.bar { height: 8px; border-radius: 4px; background: var(--bad-bg); overflow: hidden; margin-top: 8px; }
.bar > span { display: block; height: 100%; background: var(--ok); width: 0; }
.panel { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 16px 18px; margin-bottom: 20px; }
table { width: 100%; border-collapse: collapse; font-size: 13px; }
th { text-align: left; font-size: 11px; text-transform: uppercase; letter-spacing: 0.05em; color: var(--muted);
  padding: 8px 5px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th.num { text-align: right; }
.scroll { overflow-x: auto; }
td { padding: 9px 5px; border-bottom: 1px solid var(--soft); vertical-align: top; }
tr:last-child td { border-bottom: none; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
/* An identity wraps (after a '/', else anywhere) past 44 characters instead of pushing the TLS column
   off screen; break-word, not anywhere, so a squeezed table (a phone) never splits a short name. */
.id { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 11.5px; color: var(--code-ink); display: inline-block;
  max-width: 44ch; overflow-wrap: break-word; }
/* Lines break only at the <wbr> after each '/', which Chromium honours in nowrap too. */
.id.whole, td.name { white-space: nowrap; }
.pill { display: inline-block; padding: 2px 9px; border-radius: 999px; font-size: 12px; font-weight: 600; white-space: nowrap; }
.pill.secured, .pill.ok, .pill.STRICT { background: var(--ok-bg); color: var(--ok); }
.pill.insecure, .pill.critical, .pill.expired, .pill.DISABLE, .pill.error { background: var(--bad-bg); color: var(--bad); }
.pill.warning, .pill.PERMISSIVE { background: var(--warn-bg); color: var(--warn); }
.pill.unknown { background: var(--soft); color: var(--muted); }
.countdown.ok { color: var(--ok); } .countdown.warning { color: var(--warn); }
.countdown.critical, .countdown.expired { color: var(--bad); } .countdown { font-weight: 600; font-variant-numeric: tabular-nums; white-space: nowrap; }
.renewal.failed { color: var(--bad); font-weight: 600; }
.renewal-error { display: block; font-weight: 400; max-width: 40ch; overflow-wrap: anywhere; }
.problems li { margin: 6px 0; }
.problems .error::marker { color: var(--bad); } .problems .warning::marker { color: var(--warn); }
.empty { color: var(--muted); padding: 18px 4px; }
.toolbar { display: flex; align-items: center; gap: 10px; margin-bottom: 12px; }
.toolbar select { padding: 5px 8px; border: 1px solid var(--line); border-radius: 6px; background: var(--card); color: var(--ink); }
.trimmed { margin: 0 0 12px; color: var(--muted); }
.trimmed button { padding: 4px 10px; border: 1px solid var(--line); border-radius: 6px; background: var(--card); color: var(--ink); cursor: pointer; }
.legend { color: var(--muted); font-size: 12px; display: flex; flex-wrap: wrap; gap: 4px 16px; align-items: center; }
.legend span:has(i) { white-space: nowrap; }
.legend i { display: inline-block; width: 22px; height: 3px; vertical-align: middle; margin-right: 6px; }
.legend .l-ok { background: var(--ok); } .legend .l-warn { background: var(--warn); }
/* Dashed as the graph draws a not-mTLS edge: the line's shape, not only its colour, tells them apart. */
.legend .l-bad { background: repeating-linear-gradient(90deg, var(--bad) 0 6px, transparent 6px 10px); }
svg.topology { display: block; width: 100%; height: auto; background: var(--graph-bg); border-radius: 8px; }
svg.topology .node rect { fill: var(--card); stroke: var(--node-line); stroke-width: 1.5; }
svg.topology .node.meshed rect { stroke: var(--node-meshed); }
svg.topology .node.unmeshed rect { stroke: var(--bad); stroke-dasharray: 4 3; }
svg.topology .node.unreachable rect { stroke: var(--bad); stroke-width: 2.5; }
svg.topology .node.unreachable .ns { fill: var(--bad); font-weight: 600; }
svg.topology .node text { font-size: 13px; font-weight: 600; fill: var(--ink); }
svg.topology .node .ns { font-size: 10px; font-weight: 400; fill: var(--muted); }
svg.topology .edge { fill: none; stroke-width: 2.5; }
svg.topology .edge.secured { stroke: var(--ok); }
svg.topology .arrow.ok { fill: var(--ok); } svg.topology .arrow.warn { fill: var(--warn); } svg.topology .arrow.bad { fill: var(--bad); }
svg.topology .edge.secured.denied { stroke: var(--warn); }
svg.topology .edge.insecure { stroke: var(--bad); stroke-dasharray: 6 4; }
svg.topology .rate { font-size: 11px; fill: var(--code-ink); paint-order: stroke; stroke: var(--graph-bg); stroke-width: 5px; stroke-linejoin: round; }
.card.good { border-top: 4px solid var(--ok); } .card.good .value { color: var(--ok); }
.card.warn { border-top: 4px solid var(--warn); } .card.warn .value { color: var(--warn); }
.card.bad { border-top: 4px solid var(--bad); } .card.bad .value { color: var(--bad); }
.meta { color: var(--muted); font-size: 12px; margin: -6px 0 12px; }
.all-pass { background: var(--ok-bg); color: var(--ok); font-weight: 600; border-radius: 8px; padding: 12px 14px; }
ul.checks { list-style: none; margin: 0; padding: 0; }
li.check { border: 1px solid var(--line); border-left: 4px solid var(--warn); border-radius: 8px; padding: 12px 14px; margin-bottom: 10px; }
li.check.error { border-left-color: var(--bad); }
.check-head { display: flex; align-items: center; gap: 10px; }
.check-head .category { margin-left: auto; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: 0.05em; }
.check-message { margin: 8px 0 0; }
.check-details { margin: 6px 0 0; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; color: var(--code-ink);
  background: var(--soft-bg); border-radius: 6px; padding: 8px 10px; white-space: pre-wrap; }
.check-why { color: var(--muted); font-size: 12.5px; margin-top: 6px; }
.check-fix { margin-top: 8px; font-size: 13px; }
.fix-label { display: inline-block; font-size: 11px; font-weight: 700; text-transform: uppercase; letter-spacing: 0.05em;
  color: var(--accent); margin-right: 8px; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; background: var(--code-bg); color: var(--code-ink);
  border-radius: 4px; padding: 1px 5px; }
.port { white-space: nowrap; font-variant-numeric: tabular-nums; }
.port small { color: var(--muted); margin-left: 5px; font-size: 11px; text-transform: uppercase; }
.failed { color: var(--bad); font-weight: 600; cursor: help; }
.denied { color: var(--warn); font-weight: 600; cursor: help; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 8px 0 24px; }
.notice { background: var(--warn-bg); color: var(--notice-ink); border: 1px solid var(--notice-line); border-radius: 10px; padding: 12px 16px; margin-bottom: 20px; }
.notice.stale { background: var(--bad-bg); color: var(--stale-ink); border-color: var(--stale-line); }
main.stale section { opacity: 0.55; filter: grayscale(0.6); }
.mesh-name { overflow-wrap: anywhere; }
/* Narrow screens (phones): nothing wider than the screen but the tables and the graph, which scroll. */
@media (max-width: 640px) {
  header { height: auto; flex-wrap: wrap; gap: 4px 12px; padding: 10px 14px; }
  .mesh-name { order: 3; flex-basis: 100%; font-size: 12px; }
  nav { padding: 0 8px; }
  nav a { padding: 12px 10px 10px; }
  main { padding: 12px; }
  .panel, .card { padding: 12px; }
  .check-head { flex-wrap: wrap; }
  .check-head .category { margin-left: 0; }
  code { overflow-wrap: anywhere; }
}
`;
