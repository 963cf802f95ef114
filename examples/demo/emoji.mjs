// emoji: the catalogue. GET /list → [{shortcode, unicode}], GET /find?shortcode=:x: → one.
import { createServer } from 'node:http';

const EMOJI = [
  [':joy:', '😂'], [':sunglasses:', '😎'], [':doughnut:', '🍩'], [':stuck_out_tongue_winking_eye:', '😜'],
  [':money_mouth_face:', '🤑'], [':flushed:', '😳'], [':mask:', '😷'], [':nerd_face:', '🤓'],
  [':ghost:', '👻'], [':skull_and_crossbones:', '☠️'], [':heart_eyes_cat:', '😻'], [':hear_no_evil:', '🙉'],
  [':see_no_evil:', '🙈'], [':speak_no_evil:', '🙊'], [':boy:', '👦'], [':girl:', '👧'],
  [':man:', '👨'], [':woman:', '👩'], [':older_man:', '👴'], [':policeman:', '👮'],
  [':guardsman:', '💂'], [':construction_worker:', '👷'], [':prince:', '🤴'], [':princess:', '👸'],
  [':pray:', '🙏'], [':muscle:', '💪'], [':lock:', '🔒'], [':key:', '🔑'], [':100:', '💯'],
].map(([shortcode, unicode]) => ({ shortcode, unicode }));

const server = createServer((request, response) => {
  const url = new URL(request.url ?? '/', 'http://emoji');
  if (url.pathname === '/list') return json(response, 200, EMOJI);
  if (url.pathname === '/find') {
    const found = EMOJI.find((emoji) => emoji.shortcode === url.searchParams.get('shortcode'));
    return found ? json(response, 200, found) : json(response, 404, { error: 'no such emoji' });
  }
  json(response, 404, { error: `no route ${url.pathname}; try /list or /find?shortcode=:joy:` });
});

function json(response, status, value) {
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(value));
}

server.listen(Number(process.env.PORT ?? 8080), '127.0.0.1', () => {
  console.log(`emoji listening on 127.0.0.1:${server.address().port}`);
});
// Stop at once: open keep-alive connections from the sidecar would hold server.close() open.
process.on('SIGTERM', () => process.exit(0));
