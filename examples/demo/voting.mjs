// voting: counts votes. POST /vote?shortcode=:joy: → {votes}, GET /results → [{shortcode, votes}].
import { createServer } from 'node:http';

const votes = new Map();

const server = createServer((request, response) => {
  const url = new URL(request.url ?? '/', 'http://voting');
  if (url.pathname === '/vote' && request.method === 'POST') {
    const shortcode = url.searchParams.get('shortcode');
    if (!shortcode) return json(response, 400, { error: 'POST /vote?shortcode=:joy:' });
    votes.set(shortcode, (votes.get(shortcode) ?? 0) + 1);
    return json(response, 200, { shortcode, votes: votes.get(shortcode) });
  }
  if (url.pathname === '/results') {
    const results = [...votes].map(([shortcode, count]) => ({ shortcode, votes: count }));
    return json(response, 200, results.sort((a, b) => b.votes - a.votes));
  }
  json(response, 404, { error: `no route ${request.method} ${url.pathname}; try POST /vote or GET /results` });
});

function json(response, status, value) {
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(value));
}

server.listen(Number(process.env.PORT ?? 8080), '127.0.0.1', () => {
  console.log(`voting listening on 127.0.0.1:${server.address().port}`);
});
// Stop at once: open keep-alive connections from the sidecar would hold server.close() open.
process.on('SIGTERM', () => process.exit(0));
