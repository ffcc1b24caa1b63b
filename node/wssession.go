package node

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgepush/edgepush/cache"
	"github.com/edgepush/edgepush/fanout"
	"github.com/edgepush/edgepush/grip"
	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

// wsSession is one client WebSocket driven by the origin over
// WebSocket-over-HTTP: client activity is batched into POSTs of
// application/websocket-events, one in flight at a time, and the events
// of each answer are played to the client. Lock order: ws.mu, then the
// Hub's locks.
type wsSession struct {
	s       *Server
	rt      *route
	id      string // Connection-Id
	uri     string // origin request URI
	host    []byte
	headers []grip.Header // the client's handshake headers, replayed on every POST
	xff     string
	proto   string
	deflate bool

	t   *wsTransport
	acc *heldAccess // access-log record; nil when the log is off
	fc  *fanout.Conn

	refreshing atomic.Bool

	mu           sync.Mutex
	meta         map[string]string
	gripExt      bool
	prefix       []byte
	detached     bool
	channels     map[string]struct{}
	pending      []grip.WSEvent
	pendingBytes int
	inFlight     bool
	force        bool // post even without events (keep-alive, refresh)
	closeEcho    int  // the client's close code, answered if the origin sends no CLOSE
	sentClose    bool
	done         bool
	kaEvery      time.Duration
	kaTimer      *time.Timer
}

func newWSSession(s *Server, ctx *fasthttp.RequestCtx, rt *route) *wsSession {
	id := make([]byte, 8)
	rand.Read(id)
	ws := &wsSession{
		s:        s,
		rt:       rt,
		id:       hex.EncodeToString(id),
		uri:      rt.originTarget(requestTarget(ctx)),
		host:     bytes.Clone(ctx.Request.Header.Host()),
		xff:      string(rt.forwardedFor(nil, ctx)),
		proto:    map[bool]string{true: "https", false: "http"}[ctx.IsTLS()],
		meta:     map[string]string{},
		channels: map[string]struct{}{},
	}
	for k, v := range ctx.Request.Header.All() {
		name := string(k)
		if isHopHeader(name, nil) || grip.IsGripHeader(name) || skipToOrigin(name) || skipWSHeader(name) {
			continue
		}
		ws.headers = append(ws.headers, grip.Header{Name: name, Value: string(v)})
	}
	ws.headers = append(ws.headers, grip.Header{Name: "CDN-Loop", Value: s.cfg.CDNLoop})
	return ws
}

// skipWSHeader names handshake headers that belong to the client's hop
// and the headers each POST sets itself.
func skipWSHeader(name string) bool {
	for _, h := range []string{"Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions",
		"Content-Type", "Accept", "Connection-Id"} {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	return len(name) > 5 && strings.EqualFold(name[:5], "Meta-")
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
	ws.rt.setHost(req, ws.host)
	for _, h := range ws.headers {
		req.Header.Add(h.Name, h.Value)
	}
	req.Header.Set("Content-Type", grip.WebSocketEventsType)
	req.Header.Set("Accept", grip.WebSocketEventsType)
	req.Header.Set("Connection-Id", ws.id)
	ws.mu.Lock()
	for k, v := range ws.meta {
		req.Header.Set("Meta-"+k, v)
	}
	ws.mu.Unlock()
	req.Header.Set("X-Forwarded-For", ws.xff)
	req.Header.Set("X-Forwarded-Proto", ws.proto)
	req.Header.Set("Grip-Sig", ws.rt.signer.Token(time.Now()))
	req.SetBodyRaw(grip.AppendWSEvents(nil, events...))
	if err := ws.s.originDo(ws.rt, req, resp); err != nil {
		return nil, err
	}
	return &cache.Response{
		Status: resp.StatusCode(),
		Reason: string(resp.Header.StatusMessage()),
		Header: toFields(originHeaders(resp)),
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
	evs, err := eventsOf(r)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 || evs[0].Type != grip.WSEventOpen {
		return nil, errBadOpen
	}
	ws.applyHeaders(r)
	ws.mu.Lock()
	ws.gripExt, ws.prefix = false, nil
	for _, e := range strings.Split(r.Get("Sec-WebSocket-Extensions"), ",") {
		if on, prefix := grip.ParseGripExtension(e); on {
			ws.gripExt, ws.prefix = true, []byte(prefix)
		}
	}
	ws.mu.Unlock()
	return evs[1:], nil
}

// applyHeaders applies Set-Meta-* and Keep-Alive-Interval from an answer.
func (ws *wsSession) applyHeaders(r *cache.Response) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, f := range r.Header {
		if len(f.Name) > 9 && strings.EqualFold(f.Name[:9], "Set-Meta-") {
			if f.Value == "" {
				delete(ws.meta, f.Name[9:])
			} else {
				ws.meta[f.Name[9:]] = f.Value
			}
		}
	}
	if v := r.Get("Keep-Alive-Interval"); v != "" {
		ws.kaEvery = parseKeepAliveInterval([]byte(v))
	}
}

// run drives the upgraded connection until the client's side ends.
func (ws *wsSession) run(c *websocket.Conn, events []grip.WSEvent, since uint64) {
	if err := ws.start(c); err != nil {
		ws.s.log.Warn("WebSocket start", "err", err)
		return
	}
	ws.playOriginEvents(events, since)
	ws.armKeepAlive()
	ws.readLoop(c)
}

// fromClient queues a client event for the origin (dropped when detached).
func (ws *wsSession) fromClient(ev grip.WSEvent) {
	ws.mu.Lock()
	detached := ws.detached
	ws.mu.Unlock()
	if detached && ev.Type != grip.WSEventClose && ev.Type != grip.WSEventDisconnect {
		return
	}
	ws.enqueue(ev, false)
}

// enqueue adds an event to the next POST and starts the sender if idle.
// A client that queues more than -ws-max-pending bytes while the origin is
// busy is closed with 1013.
func (ws *wsSession) enqueue(ev grip.WSEvent, force bool) {
	ws.mu.Lock()
	if ws.done {
		ws.mu.Unlock()
		return
	}
	if ws.pendingBytes+len(ev.Content) > ws.s.cfg.WSMaxPending {
		ws.mu.Unlock()
		ws.fc.Send(closeFrame(closeTryAgainLater, "too many messages waiting for the origin"), true)
		return
	}
	if ev.Type != "" {
		ws.pending = append(ws.pending, ev)
		ws.pendingBytes += len(ev.Content)
	}
	ws.force = ws.force || force
	start := !ws.inFlight
	ws.inFlight = true
	ws.mu.Unlock()
	if start && !ws.s.bg.Go(ws.sendLoop) {
		ws.fc.Close(fanout.ErrShutdown)
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
		if err != nil && len(batch) == 0 {
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
		ws.playOriginEvents(evs, since)
		ws.answerClientClose(batch)
		ws.armKeepAlive()
	}
}

// post sends one batch, retrying transport failures and 5xx answers with
// back-off while the connection lasts.
func (ws *wsSession) post(batch []grip.WSEvent) ([]grip.WSEvent, error) {
	var err error
	for attempt := 0; attempt <= ws.s.cfg.WSOriginRetries; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(250<<attempt) * time.Millisecond)
			if ws.fc.Closed() && !lastEvents(batch) {
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
	if errors.Is(err, errClientGone) || ws.fc.Closed() {
		return
	}
	ws.s.log.Warn("WebSocket origin request failed", "connection", ws.id, "err", err)
	ws.mu.Lock()
	code := ws.closeEcho
	ws.mu.Unlock()
	if code == 0 || !lastEvents(batch) {
		code = closeInternalError
	}
	ws.fc.Send(closeFrame(code, "origin unavailable"), true)
}

// answerClientClose completes the close handshake the client started when
// the origin's answer to its CLOSE did not close the connection.
func (ws *wsSession) answerClientClose(batch []grip.WSEvent) {
	ws.mu.Lock()
	code, sent := ws.closeEcho, ws.sentClose
	ws.mu.Unlock()
	if code != 0 && !sent && lastEvents(batch) {
		ws.fc.Send(closeFrame(code, ""), true)
	}
}

// playOriginEvents sends the origin's events to the client and obeys its
// control messages; since is the hub position when the origin was asked.
func (ws *wsSession) playOriginEvents(evs []grip.WSEvent, since uint64) {
	for _, ev := range evs {
		switch ev.Type {
		case grip.WSEventText, grip.WSEventBinary:
			ws.originMessage(ev, since)
		case grip.WSEventPing:
			ws.fc.Send(appendWSFrame(nil, opPing, ev.Content, false), false)
		case grip.WSEventPong:
			ws.fc.Send(appendWSFrame(nil, opPong, ev.Content, false), false)
		case grip.WSEventClose:
			code, reason := grip.ParseCloseContent(ev.Content)
			ws.mu.Lock()
			ws.sentClose = true
			ws.mu.Unlock()
			ws.fc.Send(closeFrame(closeCode(code), reason), true)
		case grip.WSEventDisconnect:
			ws.fc.Close(errOriginDisconnect)
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
		case !bytes.HasPrefix(p, prefix):
			ws.s.log.Debug("dropping unprefixed WebSocket message from origin", "connection", ws.id)
			return
		}
		p = p[len(prefix):]
	}
	ws.sendMessage(op, p)
}

// control obeys a "c:" control message.
func (ws *wsSession) control(p []byte, since uint64) {
	cm, err := grip.ParseControlMessage(p)
	if err != nil {
		ws.s.log.Debug("bad control message from origin", "connection", ws.id, "err", err)
		return
	}
	switch cm.Type {
	case grip.ControlSubscribe:
		ws.subscribe(cm.Channel, len(cm.Filters), since)
	case grip.ControlUnsubscribe:
		ws.mu.Lock()
		if _, ok := ws.channels[cm.Channel]; ok {
			delete(ws.channels, cm.Channel)
			ws.s.hub.Unsubscribe(cm.Channel, ws.fc)
		}
		ws.mu.Unlock()
	case grip.ControlDetach:
		ws.mu.Lock()
		ws.detached = true
		ws.mu.Unlock()
	case grip.ControlSetMeta:
		ws.mu.Lock()
		if cm.HasValue {
			ws.meta[cm.Name] = cm.Value
		} else {
			delete(ws.meta, cm.Name)
		}
		ws.mu.Unlock()
	case grip.ControlKeepAlive:
		if !cm.HasContent {
			ws.fc.SetKeepAlive(nil, 0, false)
			return
		}
		frame := appendWSFrame(nil, wsOpcode(wsTypeOf(cm.MessageType)), cm.Content, false)
		ws.fc.SetKeepAlive(frame, cm.Timeout, cm.Mode == grip.KeepAliveInterval)
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

// subscribe adds a channel within the connection's limits; over them the
// connection is closed with 1008, as Pushpin closes it.
// Messages published after since are replayed first.
func (ws *wsSession) subscribe(channel string, filters int, since uint64) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.done {
		return
	}
	if _, ok := ws.channels[channel]; ok {
		return
	}
	if len(ws.channels) >= ws.s.cfg.MaxChannels || filters > grip.MaxChannelFilters {
		ws.fc.Send(closeFrame(closePolicy, "too many channels or filters"), true)
		return
	}
	ws.channels[channel] = struct{}{}
	ws.s.hub.SubscribeFrom(channel, ws.fc, since)
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
	if ws.done || ws.kaEvery <= 0 {
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
	for ch := range ws.channels {
		ws.s.hub.Unsubscribe(ch, ws.fc)
	}
	ws.channels = nil
	ws.mu.Unlock()
	ws.s.log.Debug("WebSocket ended", "connection", ws.id, "reason", errString(reason))
}
