// web: the front end. GET / → a page of emoji with the leaderboard; GET /api/list, /api/results,
// POST /api/vote?shortcode=:joy:. It reaches emoji and voting in plain HTTP at $EMOJI_URL and
// $VOTING_URL — its sidecar — and never sees a certificate.
import { createServer } from 'node:http';

const EMOJI_URL = process.env.EMOJI_URL ?? 'http://127.0.0.1:8081';
const VOTING_URL = process.env.VOTING_URL ?? 'http://127.0.0.1:8082';

async function call(base, path, method = 'GET') {
  const answer = await fetch(`${base}${path}`, { method, signal: AbortSignal.timeout(5000) });
  const body = await answer.json().catch(() => ({ error: `${answer.status} ${answer.statusText}` }));
  if (!answer.ok) throw Object.assign(new Error(`${base}${path}: ${answer.status} ${body.error ?? ''}`), { status: answer.status });
  return body;
}

const server = createServer(async (request, response) => {
  const url = new URL(request.url ?? '/', 'http://web');
  try {
    if (url.pathname === '/api/list') return json(response, 200, await call(EMOJI_URL, '/list'));
    if (url.pathname === '/api/results') return json(response, 200, await call(VOTING_URL, '/results'));
    if (url.pathname === '/api/vote') {
      const shortcode = url.searchParams.get('shortcode') ?? '';
      const emoji = await call(EMOJI_URL, `/find?shortcode=${encodeURIComponent(shortcode)}`);
      const result = await call(VOTING_URL, `/vote?shortcode=${encodeURIComponent(emoji.shortcode)}`, 'POST');
      return json(response, 200, { ...emoji, votes: result.votes });
    }
    if (url.pathname === '/') return page(response);
    json(response, 404, { error: `no route ${url.pathname}; try /, /api/list, /api/results or /api/vote?shortcode=:joy:` });
  } catch (error) {
    json(response, 502, { error: error.message });
  }
});

async function page(response) {
  const [list, results] = await Promise.all([call(EMOJI_URL, '/list'), call(VOTING_URL, '/results')]);
  const byCode = new Map(list.map((emoji) => [emoji.shortcode, emoji.unicode]));
  const leaders = results
    .slice(0, 5)
    .map((result) => `<li>${byCode.get(result.shortcode) ?? result.shortcode} ${result.votes}</li>`)
    .join('');
  const buttons = list
    .map((emoji) => `<button onclick="fetch('/api/vote?shortcode=${encodeURIComponent(emoji.shortcode)}').then(() => location.reload())">${emoji.unicode}</button>`)
    .join('');
  response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(`<!doctype html>
<meta charset="utf-8"><title>emojivoto on Mutual</title>
<style>body{font-family:system-ui;max-width:40em;margin:2em auto}button{font-size:2em;margin:.2em;border:0;background:none;cursor:pointer}</style>
<h1>Vote for your favourite emoji</h1>
<p>Every call behind this page (web → emoji, web → voting) went over mutual TLS.</p>
<div>${buttons}</div>
<h2>Leaders</h2><ol>${leaders || '<li>no votes yet</li>'}</ol>`);
}

function json(response, status, value) {
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(value));
}

server.listen(Number(process.env.PORT ?? 8080), '127.0.0.1', () => {
  console.log(`web listening on 127.0.0.1:${server.address().port}; emoji at ${EMOJI_URL}, voting at ${VOTING_URL}`);
});
// Stop at once: open keep-alive connections from the sidecar would hold server.close() open.
process.on('SIGTERM', () => process.exit(0));
