// Publish one item with @fanoutio/grip's Publisher.
//
// Usage: node publish.js <controlURL> <channel> <format> <content>
//   format: http-stream | http-response | ws-message
//   The Publisher POSTs to <controlURL> + "publish/" (a "/" is added first when the
//   control URL's path does not end in one): http://127.0.0.1:5561/ -> /publish/.
//   Content is sent as given (no newline added): use $'text\n' in bash for a line.
//
// Env (all optional):
//   PUBLISH_KEY     with it, Authorization: Bearer <HS256 JWT {"iss":...,"exp":now+600}>
//                   signed with this key ("base64:..." is decoded first).
//   PUBLISH_ISS     the JWT's iss claim (default "edgepush"); used only with PUBLISH_KEY.
//   PUBLISH_BASIC   "user:pass" -> Authorization: Basic base64(user:pass).
//                   Ignored when PUBLISH_KEY is set (the library prefers the JWT).
//   PUBLISH_ID      item "id";  PUBLISH_PREV_ID  item "prev-id".
//
// Exit 0 on success, printing "published" on stdout. On failure, exit 1 and print on
// stdout one line `failed {"status":<HTTP status>,"body":<response body>}` (status -1
// and body null when no HTTP answer came), and the error on stderr. Exit 2 on bad usage.

import { Publisher, HttpStreamFormat, HttpResponseFormat, WebSocketMessageFormat } from '@fanoutio/grip';

function usage(msg) {
    if (msg) process.stderr.write(`publish.js: ${msg}\n`);
    process.stderr.write('usage: node publish.js <controlURL> <channel> <http-stream|http-response|ws-message> <content>\n');
    process.exit(2);
}

const [controlUri, channel, format, content] = process.argv.slice(2);
if (content === undefined || process.argv.length > 6) usage();

let fmt;
switch (format) {
    case 'http-stream':
        fmt = new HttpStreamFormat(content);
        break;
    case 'http-response':
        fmt = new HttpResponseFormat({ body: content });
        break;
    case 'ws-message':
        fmt = new WebSocketMessageFormat(content);
        break;
    default:
        usage(`unknown format ${JSON.stringify(format)}`);
}

const config = { control_uri: controlUri };
if (process.env.PUBLISH_KEY) {
    config.control_iss = process.env.PUBLISH_ISS || 'edgepush';
    config.key = process.env.PUBLISH_KEY;
} else if (process.env.PUBLISH_BASIC) {
    const i = process.env.PUBLISH_BASIC.indexOf(':');
    if (i < 0) usage('PUBLISH_BASIC must be user:pass');
    config.user = process.env.PUBLISH_BASIC.slice(0, i);
    config.pass = process.env.PUBLISH_BASIC.slice(i + 1);
}

const id = process.env.PUBLISH_ID || undefined;
const prevId = process.env.PUBLISH_PREV_ID || undefined;

try {
    const publisher = new Publisher(config);
    await publisher.publishFormats(channel, fmt, id, prevId);
    process.stdout.write('published\n');
} catch (err) {
    const ctx = (err && err.context) || {};
    const status = ctx.statusCode !== undefined ? ctx.statusCode : -1;
    const body = typeof ctx.httpBody === 'string' ? ctx.httpBody : null;
    process.stdout.write(`failed ${JSON.stringify({ status, body })}\n`);
    process.stderr.write(`publish failed (status ${status}): ${err && err.message ? err.message : err}\n`);
    process.exit(1);
}
