// GRIP origin for interop tests, built on @fanoutio/serve-grip with plain node:http.
//
// Env:
//   PORT              port to listen on (127.0.0.1); 0 = pick a free one. Default 8080.
//   GRIP_KEY          HS256 key used to verify Grip-Sig (the proxy's sig_key). A value
//                     starting with "base64:" is decoded first (serve-grip's convention).
//                     Unset: serve-grip does not verify; any Grip-Sig counts as proxied.
//   GRIP_ISS          if set, the Grip-Sig "iss" claim must equal it (e.g. "pushpin").
//   GRIP_CONTROL_URI  control URI handed to serve-grip (it needs one; only used for
//                     publishing, which this origin does not do). Default http://127.0.0.1:5561/.
//   GRIP_REQUIRED=1   answer 501 to every request that is not proxied (validly signed,
//                     when GRIP_KEY is set), the job of serve-grip's gripProxyRequired.
//
// Why the signature is checked again here: serve-grip 2.0.0's middleware calls
// @fanoutio/grip's async validateSig() inside Array.some() without awaiting it, so the
// returned Promise is truthy and ANY Grip-Sig header value (even "garbage") yields
// req.grip.isSigned === true (and gripProxyRequired only checks the header is present).
// This origin therefore decides "proxied"/"signed" with the same configuration through
// serveGrip.getPublisher().validateGripSig(), which awaits it: HS256/384/512 JWT, key
// GRIP_KEY, "exp" and "nbf" enforced when present (a token without "exp" is accepted),
// "iss" compared only when GRIP_ISS is set. What serve-grip itself reported is logged.
//
// Prints "listening <port>" on stdout once ready, and a "seen <JSON>" line per /wsx
// request (see handleWsScripted); one log line per request on stderr.
//
// Routes:
//   GET  /stream?ch=test                Grip-Hold: stream, body "stream open\n"
//   GET  /sse?ch=test                   text/event-stream, hold stream, "event: message\ndata: hello\n\n"
//   GET  /poll?ch=test&timeout=55       Grip-Hold: response, body {"timeout":true}
//   GET  /sig                           {"signed":<bool>,"proxied":<bool>} (not held)
//   GET  /reliable?ch=c&prev=1&upto=4   a sequenced stream built with @fanoutio/grip's
//                                       Channel(ch, prev) and setNextLink, meta user=alice:
//                                       body "reliable open\n". Its next link (same route,
//                                       with Grip-Last) answers "recovered after <Grip-Last>\n",
//                                       the first time with the prev-id unchanged, then
//                                       with prev-id=upto.
//   POST /ws?ch=test                    WebSocket-over-HTTP: accept OPEN, subscribe ch,
//                                       send "welcome", echo TEXT as "echo: <text>",
//                                       echo BINARY unchanged, answer CLOSE with CLOSE.
//   POST /wsx?ch=test&tag=t             WebSocket-over-HTTP driven by the client's messages,
//                                       all through serve-grip's WebSocketContext; every
//                                       request is reported on stdout (see handleWsScripted).

import http from 'node:http';
import { ServeGrip } from '@fanoutio/serve-grip';
import { Channel, createWebSocketControlMessage } from '@fanoutio/grip';

const port = process.env.PORT !== undefined && process.env.PORT !== '' ? Number(process.env.PORT) : 8080;

const gripConfig = {
    control_uri: process.env.GRIP_CONTROL_URI || 'http://127.0.0.1:5561/',
};
if (process.env.GRIP_KEY) {
    gripConfig.verify_key = process.env.GRIP_KEY;
}
if (process.env.GRIP_ISS) {
    gripConfig.verify_iss = process.env.GRIP_ISS;
}

const serveGrip = new ServeGrip({ grip: gripConfig });
const gripRequired = process.env.GRIP_REQUIRED === '1';

function send(res, code, type, body) {
    res.statusCode = code;
    res.setHeader('Content-Type', type);
    res.end(body);
}

function notProxied(res) {
    send(res, 501, 'text/plain', 'not proxied (Grip-Sig missing or not valid)\n');
}

function handleHold(req, res, url, kind, sig) {
    if (!sig.isProxied) {
        notProxied(res);
        return;
    }
    const ch = url.searchParams.get('ch') || 'test';
    const instruct = res.grip.startInstruct();
    instruct.addChannel(ch);
    if (kind === 'stream') {
        instruct.setHoldStream();
        send(res, 200, 'text/plain', 'stream open\n');
    } else if (kind === 'sse') {
        instruct.setHoldStream();
        res.setHeader('Cache-Control', 'no-cache');
        send(res, 200, 'text/event-stream', 'event: message\ndata: hello\n\n');
    } else {
        const t = Number.parseInt(url.searchParams.get('timeout') ?? '', 10);
        instruct.setHoldLongPoll(Number.isFinite(t) && t > 0 ? t : 55);
        send(res, 200, 'application/json', '{"timeout":true}');
    }
}

function handleReliable(req, res, url) {
    // The first next-link request (the proxy's fetch after the channel's
    // first subscription) keeps the prev-id; later ones jump to upto.
    const ch = url.searchParams.get('ch') || 'test';
    const upto = url.searchParams.get('upto') || '';
    const last = req.headers['grip-last'];
    const lastId = last ? last.split('last-id=')[1] : null;
    const step = url.searchParams.get('step');
    const instruct = res.grip.startInstruct();
    instruct.addChannel(new Channel(ch, !last ? url.searchParams.get('prev') : step === 'keep' ? lastId : upto));
    const nextStep = !last ? 'keep' : 'jump';
    instruct.setNextLink(`/reliable?ch=${encodeURIComponent(ch)}&upto=${encodeURIComponent(upto)}&step=${nextStep}`);
    instruct.meta = { user: 'alice' };
    instruct.setHoldStream();
    send(res, 200, 'text/plain', last ? `recovered after ${last}\n` : 'reliable open\n');
}

function handleWs(req, res, url) {
    // Not gated on the signature so raw WebSocket-over-HTTP bodies can be POSTed with
    // curl; the stderr log line and GET /sig tell whether the proxy signs these requests.
    const ws = req.grip.wsContext;
    if (ws == null) {
        send(res, 400, 'text/plain', 'expected a WebSocket-over-HTTP request (application/websocket-events)\n');
        return;
    }
    const ch = url.searchParams.get('ch') || 'test';
    if (ws.isOpening()) {
        ws.accept();
        ws.subscribe(ch);
        ws.send('welcome');
    }
    while (ws.canRecv()) {
        let msg;
        try {
            msg = ws.recvRaw();
        } catch {
            // DISCONNECT: nothing more to say on this connection.
            break;
        }
        if (msg === null) {
            // CLOSE from the client: close back with its code (1000 if none).
            ws.close(ws.closeCode ?? 1000);
            break;
        }
        if (typeof msg === 'string') {
            ws.send('echo: ' + msg);
        } else {
            ws.sendBinary(msg);
        }
    }
    res.statusCode = 200;
    res.end();
}

// handleWsScripted is the route the Go interop test drives: each client TEXT message
// is a command, answered through the WebSocketContext only (no hand-made events):
//   meta <name> <value>       ws.meta[name] = value (Set-Meta-<name>); answers "meta <name> set"
//   unmeta <name>             delete ws.meta[name] (Set-Meta-<name> empty); answers "meta <name> unset"
//   detach                    ws.detach(); answers "detached" (after the c:detach)
//   keep-alive <content> <s>  c:keep-alive with that content and timeout (seconds); answers "keep-alive set"
//   close <code>              ws.close(code)
//   disconnect                ws.disconnect()
//   anything else             answered "echo: <text>"
// BINARY is echoed; CLOSE is answered with CLOSE and the client's code (1000 if none).
//
// Each request is reported as one stdout line "seen <JSON>", the JSON being
// {"tag":...,"id":<Connection-Id>,"meta":{<Meta-* as the context read them>},"events":[...]}
// with the events as the context gave them: "OPEN", "TEXT <text>", "BINARY <hex>",
// "CLOSE <code>" ("CLOSE" when the context found no code), "DISCONNECT".
function handleWsScripted(req, res, url) {
    const ws = req.grip.wsContext;
    if (ws == null) {
        send(res, 400, 'text/plain', 'expected a WebSocket-over-HTTP request (application/websocket-events)\n');
        return;
    }
    const seen = { tag: url.searchParams.get('tag') || '', id: ws.id, meta: { ...ws.meta }, events: [] };
    if (ws.isOpening()) {
        seen.events.push('OPEN');
        ws.accept();
        ws.subscribe(url.searchParams.get('ch') || 'test');
        ws.send('welcome');
    }
    while (ws.canRecv()) {
        let msg;
        try {
            msg = ws.recvRaw();
        } catch {
            // recvRaw throws for DISCONNECT (the only other event canRecv admits).
            seen.events.push('DISCONNECT');
            break;
        }
        if (msg === null) {
            seen.events.push(ws.closeCode === null ? 'CLOSE' : `CLOSE ${ws.closeCode}`);
            ws.close(ws.closeCode ?? 1000);
            break;
        }
        if (typeof msg !== 'string') {
            seen.events.push('BINARY ' + Buffer.from(msg).toString('hex'));
            ws.sendBinary(msg);
            continue;
        }
        seen.events.push('TEXT ' + msg);
        const [cmd, ...args] = msg.split(' ');
        switch (cmd) {
            case 'meta':
                ws.meta[args[0]] = args.slice(1).join(' ');
                ws.send(`meta ${args[0]} set`);
                break;
            case 'unmeta':
                delete ws.meta[args[0]];
                ws.send(`meta ${args[0]} unset`);
                break;
            case 'detach':
                ws.detach();
                ws.send('detached');
                break;
            case 'keep-alive':
                ws.sendControl(createWebSocketControlMessage('keep-alive',
                    { content: args[0], timeout: Number(args[1]) }));
                ws.send('keep-alive set');
                break;
            case 'close':
                ws.close(Number(args[0]));
                break;
            case 'disconnect':
                ws.disconnect();
                break;
            default:
                ws.send('echo: ' + msg);
        }
    }
    process.stdout.write('seen ' + JSON.stringify(seen) + '\n');
    res.statusCode = 200;
    res.end();
}

async function handle(req, res) {
    if (!(await serveGrip.run(req, res))) {
        return; // serve-grip already answered (e.g. 400 for undecodable ws events)
    }
    const url = new URL(req.url, 'http://origin.invalid');
    const g = req.grip;
    const sig = await serveGrip.getPublisher().validateGripSig(req.headers['grip-sig']);
    process.stderr.write(`${req.method} ${req.url} proxied=${sig.isProxied} signed=${sig.isSigned}` +
        ` (serve-grip said proxied=${g.isProxied} signed=${g.isSigned})` +
        `${g.wsContext ? ` ws=${g.wsContext.id}` : ''}\n`);
    if (gripRequired && !sig.isProxied) {
        notProxied(res);
        return;
    }
    const route = `${req.method} ${url.pathname}`;
    switch (route) {
        case 'GET /stream':
            return handleHold(req, res, url, 'stream', sig);
        case 'GET /sse':
            return handleHold(req, res, url, 'sse', sig);
        case 'GET /poll':
            return handleHold(req, res, url, 'poll', sig);
        case 'GET /reliable':
            return handleReliable(req, res, url);
        case 'GET /sig':
            return send(res, 200, 'application/json',
                JSON.stringify({ signed: sig.isSigned, proxied: sig.isProxied }) + '\n');
        case 'POST /ws':
            return handleWs(req, res, url);
        case 'POST /wsx':
            return handleWsScripted(req, res, url);
        default:
            return send(res, 404, 'text/plain', 'not found\n');
    }
}

const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
        process.stderr.write(`error: ${err && err.stack ? err.stack : err}\n`);
        if (!res.headersSent) {
            res.statusCode = 500;
            res.setHeader('Content-Type', 'text/plain');
        }
        res.end('internal error\n');
    });
});

server.listen(port, '127.0.0.1', () => {
    process.stdout.write(`listening ${server.address().port}\n`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => process.exit(0));
}
