// The dashboard page, served as /. It only reads the JSON API (through /api/stream).
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Mutual dashboard</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
</head>
<body>
<header>
  <h1 class="logo"><svg viewBox="0 0 24 24" aria-hidden="true"><path fill="#3ddc84" d="M12 2 4 5v6c0 5 3.4 9.4 8 11 4.6-1.6 8-6 8-11V5z"/><path fill="#0f2a3d" d="m10.6 15.6-3.3-3.3 1.4-1.4 1.9 1.9 4.7-4.7 1.4 1.4z"/></svg>Mutual</h1>
  <div class="mesh-name" id="mesh-name">connecting…</div>
  <div class="live" id="live"><span class="dot"></span><span id="live-text">connecting</span></div>
</header>
<nav id="tabs">
  <a href="#overview" data-tab="overview">Overview</a>
  <a href="#edges" data-tab="edges">Edges</a>
  <a href="#topology" data-tab="topology">Topology</a>
  <a href="#certificates" data-tab="certificates">Certificates</a>
  <a href="#policy" data-tab="policy">Policy</a>
</nav>
<main>
  <div id="notice" class="notice" role="status" hidden></div>
  <section id="view-overview"></section>
  <section id="view-edges" hidden></section>
  <section id="view-topology" hidden></section>
  <section id="view-certificates" hidden></section>
  <section id="view-policy" hidden></section>
</main>
<footer>Read-only view of the mesh · data from the sidecars' and identity service's admin endpoints · JSON at <a href="/api/overview">/api</a></footer>
</body>
</html>
`;
