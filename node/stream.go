package node

import (
	"slices"
	"sync"
	"time"

	"github.com/edgepush/edgepush/fanout"
	"github.com/edgepush/edgepush/grip"
)

// Reliable streams: a held stream that has a next link, sequenced
// channels (prev-id), filters or meta gets a streamSession, which does
// per connection what Pushpin's HTTP session does:
//   - a message whose prev-id is not the last id the connection has on
//     its channel is not delivered: the next link is fetched with
//     Grip-Last (recoverDelay later, as the missing message may yet
//     come), its body appended, and the messages queued meanwhile that
//     follow on are delivered after it;
//   - a hint fetches the next link at once, and a next link with a
//     timeout is fetched every timeout while some channel is quiet;
//   - an answer without a hold but with a next link (paging) is followed
//     by the next page on the same response;
//   - filters run per connection (subs.go).
// Connections without any of this take the shared fast path in
// streamTransport.Frame.

const (
	// recoverDelay is how long a connection that saw a gap waits before
	// fetching its next link (Pushpin's low-priority update: ~0.5-1 s).
	recoverDelay = 500 * time.Millisecond
	// firstSubscriptionDelay is how long after a channel's first
	// subscription on this node its connection fetches its next link
	// (Pushpin: 1 s).
	firstSubscriptionDelay = time.Second
	// sessionQueueMax bounds the messages queued while a next link is
	// fetched (Pushpin's PUBLISH_QUEUE_MAX); more are dropped, and the
	// sequenced ones recovered through the next link.
	sessionQueueMax = 100
)

// streamSession is a reliable stream's state. Lock order: the Hub's
// channel lock (Frame runs under it), then ss.mu; Hub calls are made
// without ss.mu.
type streamSession struct {
	s     *Server
	t     *streamTransport
	links *linkFetcher // nil: no next or gone link

	mu       sync.Mutex
	subs     *connSubs
	next     *link // nil: none (any more)
	gone     *link
	fc       *fanout.Conn
	updating bool // a next-link fetch is scheduled or running
	again    bool // fetch once more when it is done
	queue    []*fanout.Message
	active   map[string]bool // channels with a delivery since the refresh timer was armed
	refresh  *time.Timer
	closed   bool
}

// needsSession reports whether a stream hold needs a streamSession.
func needsSession(in *grip.Instruct) bool {
	return in.NextLink != nil || in.GoneLink != nil || newConnSubs(in) != nil
}

func (s *Server) newStreamSession(t *streamTransport, in *grip.Instruct, lf *linkFetcher) *streamSession {
	ss := &streamSession{s: s, t: t, links: lf, subs: newConnSubs(in), active: map[string]bool{}}
	if ss.subs == nil {
		ss.subs = &connSubs{meta: map[string]string{}, chans: map[string]*subChan{}}
		for _, c := range in.Channels {
			ss.subs.chans[c.Name] = &subChan{}
		}
	}
	if lf != nil {
		ss.next, ss.gone = lf.resolve(in.NextLink, nil), lf.resolve(in.GoneLink, nil)
	}
	return ss
}

// started runs once the connection is held: paging goes on at once, a
// stream arms its refresh timer.
func (ss *streamSession) started(fc *fanout.Conn, paging bool) {
	ss.mu.Lock()
	ss.fc = fc
	if paging {
		ss.update(0)
		ss.mu.Unlock()
		return
	}
	ss.armRefresh()
	names := make([]string, 0, len(ss.subs.chans))
	for name := range ss.subs.chans {
		names = append(names, name)
	}
	ss.mu.Unlock()
	// The hub is asked without ss.mu (lock order).
	last := make(map[string]string, len(names))
	first := false
	for _, name := range names {
		last[name] = ss.s.hub.LastID(name)
		first = first || ss.s.hub.Subscribers(name) == 1
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	// As Pushpin: a connection that starts behind its channel's last
	// published id (the replay could not bring it there) recovers at
	// once.
	for name, id := range last {
		if c := ss.subs.chans[name]; c != nil && c.tracked && id != "" && id != c.lastID {
			ss.s.log.Debug("stream: behind its channel's last id, recovering", "channel", name,
				"last-id", c.lastID, "published", id)
			ss.update(recoverDelay)
			return
		}
	}
	// As Pushpin (update_on_first_subscription): the first subscriber of
	// a channel on this node fetches its next link a moment later, for
	// what was published before the subscription took effect.
	if first {
		ss.update(firstSubscriptionDelay)
	}
}

// frame is streamTransport.Frame for a session; it runs under the Hub's
// channel lock.
func (ss *streamSession) frame(m *fanout.Message) ([]byte, bool) {
	if m.Item.(*grip.Item).HTTPStream == nil {
		return nil, false
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	switch {
	case ss.closed:
		return nil, false
	case ss.updating:
		if len(ss.queue) < sessionQueueMax {
			ss.queue = append(ss.queue, m)
		}
		return nil, false
	}
	return ss.process(m)
}

// process decides what m becomes on this connection; called with ss.mu
// held.
func (ss *streamSession) process(m *fanout.Message) ([]byte, bool) {
	item := m.Item.(*grip.Item)
	f := item.HTTPStream
	c := ss.subs.chans[m.Channel]
	if c == nil {
		return nil, false
	}
	if c.tracked && item.PrevID != c.lastID {
		ss.s.log.Debug("stream: message does not follow, recovering", "channel", m.Channel,
			"prev-id", item.PrevID, "last-id", c.lastID)
		ss.queue = ss.queue[:0]
		ss.update(recoverDelay)
		return nil, false
	}
	if c.tracked {
		c.lastID = item.ID
	}
	switch f.Action {
	case grip.ActionHint:
		ss.queue = ss.queue[:0]
		ss.update(0)
		return nil, false
	case grip.ActionClose:
		return ss.t.endFrame(), true
	case grip.ActionSend:
	default:
		return nil, false
	}
	out, ok := ss.subs.filter(ss.s, m.Channel, item, f.ContentFilters, f.Content)
	if !ok || len(out) == 0 {
		return nil, false
	}
	ss.activity(m.Channel)
	return ss.t.encode(out), false
}

// update schedules a next-link fetch after delay; called with ss.mu held.
// Without a next link there is nothing to fetch.
func (ss *streamSession) update(delay time.Duration) {
	if ss.next == nil || ss.closed || ss.fc == nil {
		return
	}
	if ss.updating {
		ss.again = true
		return
	}
	ss.updating = true
	ss.stopRefresh()
	if !ss.s.bg.Go(func() {
		if sleepCtx(ss.s.bgCtx, delay) {
			ss.fetchLoop()
		}
	}) {
		ss.updating = false
	}
}

// gripLast lists "channel; last-id=ID" for every sequenced channel.
func (ss *streamSession) gripLast() []string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.subs.gripLast()
}

// fetchLoop fetches the next link, and the one after while the answers
// page on, appending each body to the stream.
func (ss *streamSession) fetchLoop() {
	for {
		ss.mu.Lock()
		l := ss.next
		ss.mu.Unlock()
		if l == nil {
			return
		}
		p, err := ss.links.nextRetrying(ss.s.bgCtx, l, ss.gripLast)
		if err != nil {
			ss.s.log.Warn("stream: next link failed, ending the stream", "err", err)
			ss.end()
			return
		}
		if !ss.apply(p, l) {
			return
		}
	}
}

// end finishes the response after what is queued.
func (ss *streamSession) end() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !ss.closed && ss.fc != nil {
		ss.fc.Send(ss.t.endFrame(), true)
	}
}

// apply appends a next link's answer to the stream and takes its
// instructions; it reports whether to fetch again at once.
func (ss *streamSession) apply(p *parsed, from *link) bool {
	in := p.in
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		return false
	}
	ss.next = ss.links.resolve(in.NextLink, from)
	held := in.Hold == grip.HoldStream
	var added, removed []string
	if held {
		added, removed = ss.resubscribe(in)
	}
	body, err := ss.subs.filterResponse(p.hr.body)
	if err != nil {
		ss.s.log.Debug("stream: filter failed on a next link's body", "err", err)
		body = nil
	}
	if len(body) > 0 {
		ss.fc.Send(ss.t.encode(body), false)
	}
	if !held {
		if ss.next == nil {
			ss.fc.Send(ss.t.endFrame(), true)
			ss.mu.Unlock()
			return false
		}
		ss.mu.Unlock()
		return true // paging on
	}
	ss.mu.Unlock()

	// Subscription changes, without ss.mu (the Hub calls Frame, which
	// takes it); messages replayed meanwhile are queued.
	fc := ss.fc
	for _, name := range removed {
		ss.s.hub.Unsubscribe(name, fc)
	}
	for _, name := range added {
		ss.s.hub.SubscribeFrom(name, fc, p.since)
	}
	if len(added) > 0 || len(removed) > 0 {
		ss.t.setChannels(ss.channelNames())
	}

	ss.mu.Lock()
	if ss.closed {
		// Closed meanwhile: its release may have missed what was added.
		ss.mu.Unlock()
		for _, name := range added {
			ss.s.hub.Unsubscribe(name, fc)
		}
		return false
	}
	defer ss.mu.Unlock()
	ss.updating = false
	queue := ss.queue
	ss.queue = nil
	// Queued messages that do not follow on from the answer are dropped
	// until one does (Pushpin: the answer covered them).
	for len(queue) > 0 && !ss.follows(queue[0]) {
		queue = queue[1:]
	}
	for _, m := range queue {
		if ss.closed || ss.updating {
			break
		}
		if b, last := ss.process(m); len(b) > 0 || last {
			ss.fc.Send(b, last)
		}
	}
	if ss.again && !ss.updating {
		ss.again = false
		ss.update(0)
	} else if !ss.updating {
		ss.armRefresh()
	}
	return false
}

// follows reports whether m is for a channel the connection has and, if
// that channel is sequenced, follows its last id; called with ss.mu held.
func (ss *streamSession) follows(m *fanout.Message) bool {
	c := ss.subs.chans[m.Channel]
	return c != nil && (!c.tracked || m.Item.(*grip.Item).PrevID == c.lastID)
}

// resubscribe takes the channels of a next link's hold: prev-ids and
// filters updated, channels it no longer names dropped, new ones added;
// called with ss.mu held. Meta merges.
func (ss *streamSession) resubscribe(in *grip.Instruct) (added, removed []string) {
	ss.subs.setMeta(in.Meta)
	keep := make(map[string]bool, len(in.Channels))
	for _, c := range in.Channels {
		keep[c.Name] = true
		sc := ss.subs.chans[c.Name]
		if sc == nil {
			sc = &subChan{}
			ss.subs.chans[c.Name] = sc
			added = append(added, c.Name)
		}
		sc.lastID, sc.tracked, sc.filters = c.PrevID, c.PrevID != "", c.Filters
	}
	for name := range ss.subs.chans {
		if !keep[name] {
			delete(ss.subs.chans, name)
			removed = append(removed, name)
		}
	}
	return added, removed
}

func (ss *streamSession) channelNames() []string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	names := make([]string, 0, len(ss.subs.chans))
	for name := range ss.subs.chans {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// activity notes a delivery on channel: once every channel has had one,
// the refresh timer starts over (Pushpin refreshes a stream only when
// some channel stays quiet). Called with ss.mu held.
func (ss *streamSession) activity(channel string) {
	if ss.next == nil || ss.next.timeout <= 0 {
		return
	}
	ss.active[channel] = true
	if len(ss.active) >= len(ss.subs.chans) {
		clear(ss.active)
		ss.armRefresh()
	}
}

// armRefresh (re)starts the refresh timer; called with ss.mu held.
func (ss *streamSession) armRefresh() {
	ss.stopRefresh()
	if ss.closed || ss.next == nil || ss.next.timeout <= 0 {
		return
	}
	ss.refresh = time.AfterFunc(ss.next.timeout, func() {
		ss.mu.Lock()
		defer ss.mu.Unlock()
		ss.update(0)
	})
}

func (ss *streamSession) stopRefresh() {
	if ss.refresh != nil {
		ss.refresh.Stop()
		ss.refresh = nil
	}
}

// close ends the session with its connection and tells the gone link.
func (ss *streamSession) close() {
	ss.mu.Lock()
	ss.closed = true
	ss.stopRefresh()
	ss.queue = nil
	gone := ss.gone
	ss.mu.Unlock()
	if gone != nil {
		ss.links.gone(gone)
	}
}
