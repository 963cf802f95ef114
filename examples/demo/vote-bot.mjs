// vote-bot: traffic for the demo. Votes through web about once a second; every fifth round it
// also tries to vote at voting directly, which the AuthorizationPolicy refuses (403).
const WEB_URL = process.env.WEB_URL ?? 'http://127.0.0.1:8080';
const VOTING_URL = process.env.VOTING_URL ?? 'http://127.0.0.1:8082';
const INTERVAL_MS = Number(process.env.VOTE_INTERVAL_MS ?? 1000);

let round = 0;
process.on('SIGTERM', () => process.exit(0));

async function get(url, method = 'GET') {
  const answer = await fetch(url, { method, signal: AbortSignal.timeout(5000) });
  return { status: answer.status, body: await answer.text() };
}

for (;;) {
  round++;
  try {
    const list = JSON.parse((await get(`${WEB_URL}/api/list`)).body);
    const pick = list[Math.floor(Math.random() * list.length)];
    const vote = await get(`${WEB_URL}/api/vote?shortcode=${encodeURIComponent(pick.shortcode)}`);
    console.log(`round ${round}: voted ${pick.unicode} through web → ${vote.status}`);
    if (round % 5 === 0) {
      const direct = await get(`${VOTING_URL}/vote?shortcode=${encodeURIComponent(pick.shortcode)}`, 'POST');
      console.log(`round ${round}: tried voting directly → ${direct.status}${direct.status === 403 ? ' (refused by policy, as it should be)' : ''}`);
    }
  } catch (error) {
    console.log(`round ${round}: ${error.message}`);
  }
  await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS));
}
