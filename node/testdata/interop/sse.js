// Read a server-sent event stream with the npm `eventsource` package (a WHATWG
// EventSource for Node) and print what it delivers, one JSON line per happening:
//
//   {"open":true}                                    the stream is open
//   {"type":"<event>","id":"<lastEventId>","data":"<data>"}   an event
//   {"error":"<message>","code":<HTTP status or null>,"readyState":<n>}
//
// Usage: node sse.js <url> [event type ...]
//   "message" events are always listened to; name any other event types (the
//   "event:" field) to print them too. EventSource dispatches an event only to
//   listeners of its type, so unnamed types are not printed.
//
// Runs until killed (EventSource reconnects by itself after an error, sending
// Last-Event-ID). Exit 2 on bad usage.

import { EventSource } from 'eventsource';

const [url, ...types] = process.argv.slice(2);
if (url === undefined) {
    process.stderr.write('usage: node sse.js <url> [event type ...]\n');
    process.exit(2);
}

function print(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

const es = new EventSource(url);
es.addEventListener('open', () => print({ open: true }));
es.addEventListener('error', (err) => print({ error: String(err.message ?? ''), code: err.code ?? null, readyState: es.readyState }));
for (const type of new Set(['message', ...types])) {
    es.addEventListener(type, (ev) => print({ type: ev.type, id: ev.lastEventId, data: ev.data }));
}

for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
        es.close();
        process.exit(0);
    });
}
