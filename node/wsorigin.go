package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgepush/edgepush/cache"
	"github.com/edgepush/edgepush/fanout"
	"github.com/edgepush/edgepush/grip"
	"github.com/valyala/fasthttp"
)

// The origin side of a WebSocket: the WebSocket-over-HTTP session. Client
// activity is batched into POSTs of application/websocket-events, one in
// flight at a time, each built from the handshake's origin request
// (originRequest, as for any client request); the events of each answer
// are played to the client (wsclient.go), and its control messages
// (subscribe, set-meta, keep-alive, detach) obeyed.
//
// Meta comes two ways: Set-Meta-* answer headers, which later requests
// carry back as Meta-* headers, and c:set-meta messages, which, as in
// Pushpin, are never sent back. Both are the connection's meta for
// message filters (lower-cased names: "user", "id_format"; Pushpin's
// filters see only c:set-meta's), kept with the per-channel filters of
// c:subscribe in a connSubs (subs.go).

var (
	errBadOpen      = errors.New("origin did not accept the WebSocket (no OPEN event first)")
	errShuttingDown = errors.New("node shutting down")
)

// minKeepAliveInterval is the shortest Keep-Alive-Interval the node obeys:
// an origin asking for less gets this, Pushpin's floor, so that it cannot
// make the node POST every second for every connection.
const minKeepAliveInterval = 20 * time.Second

// wsSession is one client WebSocket's conversation with the origin.
//
// Lock order: ws.mu, then the Hub's locks (shard, channel), then subs.mu
// or wsClient.mu, which are leaves. The transport's Frame runs under the
// Hub's channel lock, so it never takes ws.mu: it loads subs atomically
// and takes subs.mu. The session takes subs.mu with ws.mu held, but never
// around a call into the Hub: a channel's filters are in subs before the
// Hub has the subscription (its replay is framed with them), and leave it
// after the Hub has dropped it.
type wsSession struct {
	s      *Server
	rt     *route
	id     string        // Connection-Id
	uri    string        // origin request URI
	host   string        // origin request Host
	header packedHeaders // the handshake's origin request headers, replayed on every POST
	client *wsClient     // set before the upgrade

	refreshing atomic.Bool
	// closePublished is set when a ws-message close publish is framed
	// for the connection: the origin is told with a CLOSE of its own.
	closePublished atomic.Bool
	// subs is the connection's filter state, nil until it has a filter or
	// meta (Frame's fast path). Set under mu, with every channel of
	// channels; once set it stays.
	subs atomic.Pointer[connSubs]
	// fetched is the OPEN answer this session fetched, parsed once for
	// the cache's sake and reused to play it; nil once played, or when
	// the answer came from the cache.
	fetched atomic.Pointer[openAnswer]

	// Under mu. The flags sit together so that the struct packs tightly:
	// one is held per session.
	mu   sync.Mutex
	meta map[string]string // from Set-Meta-* answer headers; sent as Meta-* headers
	// prefix is the GRIP extension's message prefix when gripExt.
	prefix   string
	deferred []string
	channels wsChannels
	pending  []grip.WSEvent
	// pendingBytes is what pending costs against WSMaxPending.
	pendingBytes int
	kaEvery      time.Duration
	kaTimer      *time.Timer
	gripExt      bool
	detached     bool // c:detach: the origin is done with, the client is not
	// deferring is set while an answer's events are played: hub
	// subscriptions (deferred) wait for its end (subscribeDeferred).
	deferring bool
	// originEnded: a CLOSE or DISCONNECT is queued for the origin, which
	// gets nothing after it.
	originEnded bool
	inFlight    bool
	force       bool // post even without events (keep-alive, refresh)
	done        bool
}

// newWSSession captures what every WebSocket-over-HTTP request of the
// session repeats: the handshake's origin request as originRequest builds
// it, without the handshake-only headers.
func (s *Server) newWSSession(ctx *fasthttp.RequestCtx, rt *route) *wsSession {
	id := make([]byte, 8)
	rand.Read(id)
	ws := &wsSession{s: s, rt: rt, id: hex.EncodeToString(id)}
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	s.originRequest(ctx, req, rt, s.cacheable(ctx, rt))
	stripWSHandshake(&req.Header)
	ws.uri = string(req.Header.RequestURI())
	ws.host = string(req.Header.Host())
	kept := func(k []byte) bool {
		return !bytes.EqualFold(k, []byte("Host")) && !bytes.EqualFold(k, []byte("Content-Length")) &&
			!bytes.EqualFold(k, []byte("Grip-Sig")) // set by each request
	}
	size := 0
	for k, v := range req.Header.All() {
		if kept(k) {
			size += packedHeaderSize(k, v)
		}
	}
	var packed strings.Builder
	packed.Grow(size) // held for the session: no spare room
	for k, v := range req.Header.All() {
		if kept(k) {
			writePackedHeader(&packed, k, v)
		}
	}
	ws.header = packedHeaders(packed.String())
	return ws
}

// lookupHeader returns the value of a header of the session's origin
// requests (values of a repeated header joined), for the cache's key.
func (ws *wsSession) lookupHeader(name string) string {
	var vs []string
	for k, v := range ws.header.All() {
		if strings.EqualFold(k, name) {
			vs = append(vs, v)
		}
	}
	// A copy: a single value would be a part of the packed headers (with
	// the client's Cookie and Authorization) and keep them all alive in
	// the cache entry that stores it.
	return strings.Clone(strings.Join(vs, ", "))
}

// openFetcher returns the cache's fetcher for the session's OPEN. An
// answer that sets meta (Set-Meta-* headers, c:set-meta messages) is the
// first connection's state and is never stored for others.
func (ws *wsSession) openFetcher() cache.Fetcher {
	open := []grip.WSEvent{{Type: grip.WSEventOpen}}
	return func() (*cache.Response, error) {
		since := ws.s.hub.Position()
		r, err := ws.postEvents(open)
		if r != nil {
			a := openControl(r)
			r.NoStore = a.setsMeta
			// since: for replays to the subscriptions the answer makes
			r.Value = &parsed{since: since, wsChannels: a.channels}
			ws.fetched.Store(a)
		}
		return r, err
	}
}

// openAnswer is what openControl read in an answer to OPEN.
type openAnswer struct {
	body     []byte         // the answer's body, which the events point into
	events   []grip.WSEvent // nil: not valid events
	setsMeta bool
	channels []string
	// The answer's control messages by their first byte: the first one
	// (most answers have one: no map for them), then the others.
	firstAt  *byte
	first    *grip.ControlMessage
	controls map[*byte]*grip.ControlMessage
}

// openControl reads what a WebSocket-over-HTTP answer does beyond its
// messages: whether it sets connection meta (Set-Meta-* headers,
// c:set-meta), and the channels its c:subscribe messages subscribe to.
func openControl(r *cache.Response) *openAnswer {
	a := &openAnswer{body: r.Body}
	for _, h := range r.Header {
		if isSetMeta(h.Name) {
			a.setsMeta = true
		}
	}
	evs, err := eventsOf(r)
	if err != nil {
		return a
	}
	a.events = evs
	for _, ev := range evs {
		if p, ok := bytes.CutPrefix(ev.Content, []byte("c:")); ok && len(p) > 0 && (ev.Type == grip.WSEventText || ev.Type == grip.WSEventBinary) {
			cm, err := grip.ParseControlMessage(p)
			switch {
			case err != nil:
				continue
			case cm.Type == grip.ControlSetMeta:
				a.setsMeta = true
			case cm.Type == grip.ControlSubscribe:
				a.channels = append(a.channels, cm.Channel)
			}
			switch {
			case a.first == nil:
				a.firstAt, a.first = &p[0], cm
			case a.controls == nil:
				a.controls = map[*byte]*grip.ControlMessage{&p[0]: cm}
			default:
				a.controls[&p[0]] = cm
			}
		}
	}
	return a
}

// control returns the parsed control message that p is, if p is one of
// the answer's (a nil openAnswer has none).
func (a *openAnswer) control(p []byte) *grip.ControlMessage {
	if a == nil || len(p) == 0 {
		return nil
	}
	if &p[0] == a.firstAt {
		return a.first
	}
	return a.controls[&p[0]]
}

// postEvents POSTs events to the origin and returns its answer, whatever
// it is; only a transport failure is an error.
func (ws *wsSession) postEvents(events []grip.WSEvent) (*cache.Response, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(ws.uri)
	req.UseHostHeader = true
	req.Header.SetHost(ws.host)
	for k, v := range ws.header.All() {
		req.Header.Add(k, v)
	}
	req.Header.Set("Content-Type", grip.WebSocketEventsType)
	req.Header.Set("Accept", grip.WebSocketEventsType)
	req.Header.Set("Connection-Id", ws.id)
	ws.mu.Lock()
	for k, v := range ws.meta {
		req.Header.Set("Meta-"+k, v)
	}
	ws.mu.Unlock()
	signRequest(req, ws.rt)
	req.SetBodyRaw(grip.AppendWSEvents(nil, events...))
	if err := ws.s.originDo(ws.rt, req, resp); err != nil {
		return nil, err
	}
	return &cache.Response{
		Status: resp.StatusCode(),
		Reason: string(resp.Header.StatusMessage()),
		Header: originHeaders(resp),
		// The events outlive resp, which goes back to its pool.
		Body: bytes.Clone(resp.Body()),
	}, nil
}

// eventsOf checks an origin answer and returns its events. A non-200
// answer is a *wsRefusal.
func eventsOf(r *cache.Response) ([]grip.WSEvent, error) {
	if r.Status != fasthttp.StatusOK {
		return nil, &wsRefusal{code: r.Status}
	}
	if ct := r.Get("Content-Type"); !strings.HasPrefix(ct, grip.WebSocketEventsType) {
		return nil, fmt.Errorf("%w: answer is %q, not %s", errBadOpen, ct, grip.WebSocketEventsType)
	}
	evs, err := grip.ParseWSEvents(r.Body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadOpen, err)
	}
	return evs, nil
}

// exchange POSTs events and returns the events the origin answers.
func (ws *wsSession) exchange(events []grip.WSEvent) ([]grip.WSEvent, error) {
	r, err := ws.postEvents(events)
	if err != nil {
		return nil, err
	}
	evs, err := eventsOf(r)
	if err != nil {
		return nil, err
	}
	ws.applyHeaders(r)
	return evs, nil
}

// opened applies the origin's answer to OPEN (fresh or cached): it must
// start with OPEN; its headers set the grip extension, meta and
// keep-alive interval.
func (ws *wsSession) opened(r *cache.Response) ([]grip.WSEvent, error) {
	evs, err := ws.answerEvents(r)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 || evs[0].Type != grip.WSEventOpen {
		return nil, errBadOpen
	}
	ws.applyHeaders(r)
	ws.mu.Lock()
	ws.gripExt, ws.prefix = false, ""
	for _, e := range strings.Split(r.Get("Sec-WebSocket-Extensions"), ",") {
		if on, prefix := grip.ParseGripExtension(e); on {
			ws.gripExt, ws.prefix = true, strings.Clone(prefix)
		}
	}
	ws.mu.Unlock()
	return evs[1:], nil
}

// answerEvents returns the events of the answer to OPEN: parsed already
// when it is this session's own fetch (not one from the cache).
func (ws *wsSession) answerEvents(r *cache.Response) ([]grip.WSEvent, error) {
	if a := ws.fetched.Load(); a != nil && a.events != nil && sameBytes(a.body, r.Body) {
		return a.events, nil
	}
	ws.fetched.Store(nil)
	return eventsOf(r)
}

// applyHeaders applies Set-Meta-* and Keep-Alive-Interval from an answer.
func (ws *wsSession) applyHeaders(r *cache.Response) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, f := range r.Header {
		if isSetMeta(f.Name) {
			ws.setHeaderMeta(f.Name[9:], f.Value)
		}
	}
	if v := r.Get("Keep-Alive-Interval"); v != "" {
		ws.kaEvery = parseKeepAliveInterval(v, ws.s.wsKeepAliveFloor)
	}
}

// setHeaderMeta applies a Set-Meta-<name> answer header (an empty value
// deletes); called with ws.mu held. Later requests carry the value as a
// Meta-<name> header (names are header names: "user" and "User" are one),
// and message filters see it.
func (ws *wsSession) setHeaderMeta(name, value string) {
	name = textproto.CanonicalMIMEHeaderKey(name)
	if value != "" {
		if ws.meta == nil {
			ws.meta = map[string]string{}
		}
		ws.meta[name] = value
	} else {
		delete(ws.meta, name)
	}
	ws.setFilterMeta(name, value)
}

// setFilterMeta sets (an empty value deletes) a meta value of the
// connection's message filters, not sent to the origin; called with ws.mu
// held.
func (ws *wsSession) setFilterMeta(name, value string) {
	cs := ws.subs.Load()
	if cs == nil {
		if value == "" {
			return
		}
		cs = ws.filterState()
	}
	cs.mu.Lock()
	cs.setMeta(map[string]string{name: value})
	cs.mu.Unlock()
}

// filterState returns the connection's filter state, first made with
// every channel it has; called with ws.mu held.
func (ws *wsSession) filterState() *connSubs {
	if cs := ws.subs.Load(); cs != nil {
		return cs
	}
	cs := &connSubs{meta: map[string]string{}, chans: make(map[string]*subChan, len(ws.channels)+1)}
	for _, ch := range ws.channels {
		cs.chans[ch] = &subChan{}
	}
	ws.subs.Store(cs)
	return cs
}

// parseKeepAliveInterval reads a Keep-Alive-Interval (seconds); 0 turns
// the keep-alive off, anything shorter than floor is raised to it.
func parseKeepAliveInterval(v string, floor time.Duration) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0
	}
	return max(time.Duration(n)*time.Second, floor)
}

// fromClient queues a client event for the origin; after a detach
// nothing more goes to the origin.
func (ws *wsSession) fromClient(ev grip.WSEvent) {
	ws.mu.Lock()
	detached := ws.detached
	ws.mu.Unlock()
	if !detached {
		ws.enqueue(ev, false)
	}
}

// enqueue adds an event to the next POST and starts the sender if idle.
func (ws *wsSession) enqueue(ev grip.WSEvent, force bool) {
	ws.mu.Lock()
	start, overflow := ws.queue(ev, force)
	ws.mu.Unlock()
	ws.startSender(start, overflow)
}

// wsEventCost is what a queued event counts toward -ws-max-pending
// besides its content: its place in the queue and its line in the POST,
// so that empty events (pings, empty messages) are not free.
const wsEventCost = 32

// queue adds an event to the next POST; called with ws.mu held. Nothing
// goes to the origin after a CLOSE or DISCONNECT, which may still be
// queued after the connection is gone. start is true when the sender must
// be started, overflow when the client queued more than -ws-max-pending
// bytes while the origin is busy.
func (ws *wsSession) queue(ev grip.WSEvent, force bool) (start, overflow bool) {
	final := ev.Type == grip.WSEventClose || ev.Type == grip.WSEventDisconnect
	if ws.originEnded || (ws.done && !final) {
		return false, false
	}
	if ws.pendingBytes+len(ev.Content)+wsEventCost > ws.s.cfg.WSMaxPending {
		return false, true
	}
	if ev.Type != "" {
		ws.pending = append(ws.pending, ev)
		ws.pendingBytes += len(ev.Content) + wsEventCost
	}
	ws.originEnded = final
	ws.force = ws.force || force
	start = !ws.inFlight
	ws.inFlight = true
	return start, false
}

// startSender acts on queue's answer: it starts the sender, or closes an
// overflowing client with 1013.
func (ws *wsSession) startSender(start, overflow bool) {
	switch {
	case overflow:
		ws.client.sendClose(closeTryAgainLater, "too many messages waiting for the origin")
	case start && !ws.s.bg.Go(ws.sendLoop):
		ws.client.fc.Close(fanout.ErrShutdown)
	}
}

// sendLoop posts batches until nothing is pending; one runs at a time.
func (ws *wsSession) sendLoop() {
	for {
		ws.mu.Lock()
		batch, force := ws.pending, ws.force
		ws.pending, ws.pendingBytes, ws.force = nil, 0, false
		if len(batch) == 0 && !force {
			ws.inFlight = false
			ws.mu.Unlock()
			return
		}
		ws.mu.Unlock()
		since := ws.s.hub.Position()
		evs, err := ws.post(batch)
		if err != nil && len(batch) == 0 && !errors.Is(err, errShuttingDown) {
			// A keep-alive or refresh: the origin is down, the client is
			// not; try again at the next interval.
			ws.s.log.Debug("WebSocket keep-alive request failed", "connection", ws.id, "err", err)
			ws.armKeepAlive()
			continue
		}
		if err != nil {
			ws.originFailed(err, batch)
			return
		}
		if ws.isDetached() {
			// The answer to the detach's CLOSE is not played, as in
			// Pushpin; a client close that raced the detach is answered.
			ws.answerClientClose(batch)
			continue
		}
		ws.playOriginEvents(evs, since)
		ws.answerClientClose(batch)
		ws.armKeepAlive()
	}
}

// isDetached reports whether the origin sent c:detach.
func (ws *wsSession) isDetached() bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.detached
}

// post sends one batch, retrying transport failures and 5xx answers with
// back-off while the connection lasts; a shutdown of the node stops the
// retries at once.
func (ws *wsSession) post(batch []grip.WSEvent) ([]grip.WSEvent, error) {
	var err error
	for attempt := 0; attempt <= ws.s.cfg.WSOriginRetries; attempt++ {
		if attempt > 0 {
			if !sleepCtx(ws.s.bgCtx, time.Duration(250<<attempt)*time.Millisecond) {
				return nil, errShuttingDown
			}
			if ws.client.fc.Closed() && !lastEvents(batch) {
				return nil, errClientGone
			}
		}
		var evs []grip.WSEvent
		evs, err = ws.exchange(batch)
		var refusal *wsRefusal
		if err == nil || errors.Is(err, errBadOpen) || (errors.As(err, &refusal) && refusal.code < 500) {
			return evs, err
		}
	}
	return nil, err
}

// lastEvents reports whether a batch carries the end of the session, which
// is worth delivering even after the client is gone.
func lastEvents(batch []grip.WSEvent) bool {
	for _, ev := range batch {
		if ev.Type == grip.WSEventClose || ev.Type == grip.WSEventDisconnect {
			return true
		}
	}
	return false
}

// originFailed closes the client with 1011 once the origin cannot be
// reached: never a silent TCP drop.
func (ws *wsSession) originFailed(err error, batch []grip.WSEvent) {
	if errors.Is(err, errClientGone) || errors.Is(err, errShuttingDown) || ws.client.fc.Closed() {
		return
	}
	code, _ := ws.client.closing()
	if ws.isDetached() {
		// The origin is done with; the client is not, unless it closed.
		ws.s.log.Debug("WebSocket origin request after detach failed", "connection", ws.id, "err", err)
		if code != 0 {
			ws.client.sendClose(code, "")
		}
		return
	}
	ws.s.log.Warn("WebSocket origin request failed", "connection", ws.id, "err", err)
	if code == 0 || !lastEvents(batch) {
		code = closeInternalError
	}
	ws.client.sendClose(code, "origin unavailable")
}

// answerClientClose completes the close handshake the client started when
// the origin's answer to its CLOSE did not close the connection.
func (ws *wsSession) answerClientClose(batch []grip.WSEvent) {
	code, sent := ws.client.closing()
	if code != 0 && !sent && lastEvents(batch) {
		ws.client.sendClose(code, "")
	}
}

// playOriginEvents sends the origin's events to the client and obeys its
// control messages; since is the hub position when the origin was asked.
func (ws *wsSession) playOriginEvents(evs []grip.WSEvent, since uint64) {
	ws.mu.Lock()
	ws.deferring = true
	ws.mu.Unlock()
	defer ws.subscribeDeferred(since)
	for _, ev := range evs {
		switch ev.Type {
		case grip.WSEventText, grip.WSEventBinary:
			ws.originMessage(ev, since)
		case grip.WSEventPing:
			ws.client.sendControl(opPing, ev.Content)
		case grip.WSEventPong:
			ws.client.sendControl(opPong, ev.Content)
		case grip.WSEventClose:
			code, reason := grip.ParseCloseContent(ev.Content)
			ws.client.originClosed(code, reason)
		case grip.WSEventDisconnect:
			ws.client.fc.Close(errOriginDisconnect)
		}
	}
}

// subscribeDeferred makes the hub subscriptions of the c:subscribe
// messages of an answer once all its events are played: what they
// replay was published after the answer was made, so it comes after the
// answer's own messages. Limits were checked in order (subscribe).
func (ws *wsSession) subscribeDeferred(since uint64) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	names := ws.deferred
	ws.deferred, ws.deferring = nil, false
	for _, name := range names {
		if ws.channels.has(name) && !ws.done {
			ws.s.hub.SubscribeFrom(name, ws.client.fc, since)
		}
	}
}

// originMessage relays one origin message; with the grip extension,
// "c:" messages are control messages and only messages with the prefix
// (default "m:") reach the client, without it, as Pushpin does.
func (ws *wsSession) originMessage(ev grip.WSEvent, since uint64) {
	op := byte(opText)
	if ev.Type == grip.WSEventBinary {
		op = opBinary
	}
	p := ev.Content
	ws.mu.Lock()
	gripExt, prefix := ws.gripExt, ws.prefix
	ws.mu.Unlock()
	if gripExt {
		switch {
		case bytes.HasPrefix(p, []byte("c:")):
			ws.control(p[2:], since)
			return
		case len(p) < len(prefix) || string(p[:len(prefix)]) != prefix:
			ws.s.log.Debug("dropping unprefixed WebSocket message from origin", "connection", ws.id)
			return
		}
		p = p[len(prefix):]
	}
	ws.client.sendMessage(op, p)
}

// control obeys a "c:" control message.
func (ws *wsSession) control(p []byte, since uint64) {
	cm := ws.fetched.Load().control(p)
	if cm == nil {
		var err error
		if cm, err = grip.ParseControlMessage(p); err != nil {
			ws.s.log.Debug("bad control message from origin", "connection", ws.id, "err", err)
			return
		}
	}
	fc := ws.client.fc
	switch cm.Type {
	case grip.ControlSubscribe:
		ws.subscribe(cm.Channel, cm.Filters, since)
	case grip.ControlUnsubscribe:
		ws.unsubscribe(cm.Channel)
	case grip.ControlDetach:
		ws.detach()
	case grip.ControlSetMeta:
		// For message filters only: never sent back as a Meta-* header.
		ws.mu.Lock()
		ws.setFilterMeta(cm.Name, cm.Value) // no value: ""
		ws.mu.Unlock()
	case grip.ControlKeepAlive:
		if !cm.HasContent {
			fc.SetKeepAlive(nil, 0, false)
			return
		}
		frame := appendWSFrame(nil, wsOpcode(wsTypeOf(cm.MessageType)), cm.Content, false)
		fc.SetKeepAlive(frame, cm.Timeout, cm.Mode == grip.KeepAliveInterval)
	default:
		ws.s.log.Debug("control message not supported", "type", cm.Type)
	}
}

func wsTypeOf(s string) grip.WSType {
	switch s {
	case "binary":
		return grip.WSBinary
	case "ping":
		return grip.WSPing
	case "pong":
		return grip.WSPong
	}
	return grip.WSText
}

// subscribe adds a channel with its message filters within the
// connection's limits; over them the connection is closed with 1008, as
// Pushpin closes it. Subscribing again to a channel replaces its filters.
// Messages published after since are replayed first.
func (ws *wsSession) subscribe(channel string, filters []string, since uint64) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.done {
		return
	}
	have := ws.channels.has(channel)
	if (!have && len(ws.channels) >= ws.s.cfg.MaxChannels) || len(filters) > grip.MaxChannelFilters {
		ws.client.sendClose(closePolicy, "too many channels or filters")
		return
	}
	if len(filters) > 0 || ws.subs.Load() != nil {
		// Before the Hub has the subscription: its replay is filtered.
		cs := ws.filterState()
		cs.mu.Lock()
		cs.chans[channel] = &subChan{filters: filters} // WebSocket channels have no prev-id
		cs.mu.Unlock()
	}
	if have {
		return
	}
	ws.channels = append(ws.channels, channel)
	if ws.deferring {
		ws.deferred = append(ws.deferred, channel)
		return
	}
	ws.s.hub.SubscribeFrom(channel, ws.client.fc, since)
}

// unsubscribe drops a channel and then its filters.
func (ws *wsSession) unsubscribe(channel string) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if !ws.channels.has(channel) {
		return
	}
	ws.channels = ws.channels.without(channel)
	ws.s.hub.Unsubscribe(channel, ws.client.fc)
	if cs := ws.subs.Load(); cs != nil {
		cs.mu.Lock()
		delete(cs.chans, channel)
		cs.mu.Unlock()
	}
}

// detach obeys c:detach as Pushpin does: the origin is sent a CLOSE
// without a code at once and is done with (client messages no longer go
// to it, its answers are not played, no keep-alive requests); the client
// keeps its subscriptions and still gets publishes.
func (ws *wsSession) detach() {
	ws.mu.Lock()
	if ws.detached {
		ws.mu.Unlock()
		return
	}
	ws.detached = true
	if ws.kaTimer != nil {
		ws.kaTimer.Stop()
	}
	start, overflow := ws.queue(grip.WSEvent{Type: grip.WSEventClose}, true)
	ws.mu.Unlock()
	ws.startSender(start, overflow)
}

// closedByPublish tells the origin, with a CLOSE without a code, that a
// ws-message close publish ends the connection, as Pushpin does. It runs
// under the Hub's channel lock, so it only starts a goroutine.
func (ws *wsSession) closedByPublish() {
	if !ws.closePublished.Swap(true) {
		ws.s.bg.Go(func() { ws.enqueue(grip.WSEvent{Type: grip.WSEventClose}, true) })
	}
}

// refresh makes the session call the origin (ws-message action refresh).
// It runs under the Hub's channel lock, so it only starts a goroutine.
func (ws *wsSession) refresh() {
	if ws.refreshing.CompareAndSwap(false, true) {
		ws.s.bg.Go(func() {
			ws.refreshing.Store(false)
			ws.enqueue(grip.WSEvent{}, true)
		})
	}
}

// armKeepAlive (re)starts the Keep-Alive-Interval timer: the origin gets
// an empty POST after that long without one.
func (ws *wsSession) armKeepAlive() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.done || ws.originEnded || ws.kaEvery <= 0 {
		return
	}
	if ws.kaTimer == nil {
		ws.kaTimer = time.AfterFunc(ws.kaEvery, func() { ws.enqueue(grip.WSEvent{}, true) })
		return
	}
	ws.kaTimer.Reset(ws.kaEvery)
}

// ended releases the session when its connection is gone.
func (ws *wsSession) ended(reason error) {
	ws.mu.Lock()
	ws.done = true
	if ws.kaTimer != nil {
		ws.kaTimer.Stop()
	}
	for _, ch := range ws.channels {
		ws.s.hub.Unsubscribe(ch, ws.client.fc)
	}
	ws.channels = nil
	ws.mu.Unlock()
	ws.s.log.Debug("WebSocket ended", "connection", ws.id, "reason", errString(reason))
}

// sleepCtx waits d or until ctx is done; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// wsChannels is a session's channels in the order subscribed: a slice,
// not a map, since a session has few (-max-channels) and most have one,
// for which a map costs ten times the memory.
type wsChannels []string

func (cs wsChannels) has(name string) bool { return slices.Contains(cs, name) }

// without returns the list without name, in place.
func (cs wsChannels) without(name string) wsChannels {
	if i := slices.Index(cs, name); i >= 0 {
		return slices.Delete(cs, i, i+1)
	}
	return cs
}
