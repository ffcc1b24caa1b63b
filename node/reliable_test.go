package node

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgepush/edgepush/grip"
)

// eventStore is a test origin that answers as django-eventstream (Fanout's
// Django SSE library, with django-grip) does: an SSE stream of the
// events after the client's last id, ids rendered "channel:N" and '%'
// escaped as "%%" for the build-id filter, a sequenced Grip-Channel with
// build-id and skip-users, a user channel with require-sub, meta
// id_format and user, a next link for recovery (which reads Grip-Last),
// and at most pageSize events per answer (more: no hold, a next link
// that pages on). Its publishes are what django-eventstream publishes:
// content "id: %I", content-filters [build-id], id N, prev-id N-1.
type eventStore struct {
	channel  string
	pageSize int

	mu        sync.Mutex
	events    []string     // data of event i+1
	gripLasts []string     // Grip-Last of every recovery request, once answered
	pages     atomic.Int64 // requests other than recoveries
}

func (o *eventStore) add(data string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, data)
	return len(o.events)
}

// escape is django-eventstream's build_id_escape.
func escape(s string) string { return strings.ReplaceAll(s, "%", "%%") }

func (o *eventStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	recovering := q.Get("recover") == "true"
	if !recovering {
		o.pages.Add(1)
	}
	last := 0
	switch {
	case recovering:
		for _, gl := range r.Header.Values("Grip-Last") {
			name, id, _ := strings.Cut(gl, "; last-id=")
			if name == "events-"+o.channel {
				last, _ = strconv.Atoi(id)
			}
		}
	case q.Get("lastEventId") != "":
		_, id, _ := strings.Cut(q.Get("lastEventId"), ":")
		last, _ = strconv.Atoi(id)
	case r.Header.Get("Last-Event-ID") != "":
		_, id, _ := strings.Cut(r.Header.Get("Last-Event-ID"), ":")
		last, _ = strconv.Atoi(id)
	default:
		o.mu.Lock()
		last = len(o.events)
		o.mu.Unlock()
	}
	o.mu.Lock()
	events := append([]string(nil), o.events[min(last, len(o.events)):]...)
	if recovering { // recorded with the answer's events taken
		o.gripLasts = append(o.gripLasts, strings.Join(r.Header.Values("Grip-Last"), ","))
	}
	o.mu.Unlock()
	more := o.pageSize > 0 && len(events) > o.pageSize
	if more {
		events = events[:o.pageSize]
	}
	var body strings.Builder
	if q.Get("link") != "next" {
		body.WriteString("event: stream-open\ndata:\n\n")
	}
	for i, data := range events {
		fmt.Fprintf(&body, "event: message\nid: %s:%d\ndata: %s\n\n", o.channel, last+i+1, escape(data))
	}
	last += len(events)
	next := url.Values{"link": {"next"}}
	if more {
		next.Set("lastEventId", fmt.Sprintf("%s:%d", o.channel, last))
	} else {
		next.Set("recover", "true")
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Add("Grip-Channel", fmt.Sprintf("events-%s; prev-id=%d; filter=build-id; filter=skip-users", o.channel, last))
	h.Add("Grip-Channel", "user-anonymous; filter=require-sub")
	h.Set("Grip-Link", "</events?"+next.Encode()+">; rel=next")
	h.Set("Grip-Set-Meta", fmt.Sprintf(`id_format="%s:%%(events-%s)s", user="anonymous"`, o.channel, o.channel))
	h.Set("Grip-Keep-Alive", `event: keep-alive\ndata:\n\n; format=cstring; timeout=20`)
	if !more {
		h.Set("Grip-Hold", "stream")
	}
	io.WriteString(w, body.String())
}

// publishItem is the item django-eventstream publishes for event id.
func (o *eventStore) publishItem(id int, data string) map[string]any {
	return map[string]any{
		"channel": "events-" + o.channel, "id": strconv.Itoa(id), "prev-id": strconv.Itoa(id - 1),
		"formats": map[string]any{"http-stream": map[string]any{
			"content":         fmt.Sprintf("event: message\nid: %%I\ndata: %s\n\n", escape(data)),
			"content-filters": []string{"build-id"},
		}},
	}
}

// sseEvent reads one SSE event (up to its blank line), skipping comments
// and keep-alives.
func sseEvent(tb testing.TB, r *bufio.Reader) string {
	tb.Helper()
	for {
		var ev strings.Builder
		for {
			line := readLine(tb, r)
			if line == "\n" {
				break
			}
			ev.WriteString(line)
		}
		if s := ev.String(); !strings.HasPrefix(s, "event: keep-alive") && s != "" {
			return s
		}
	}
}

// openEvents opens the event stream and reads up to stream-open.
func openEvents(tb testing.TB, n gripProxy, headers ...string) *bufio.Reader {
	tb.Helper()
	c := dialRaw(tb, n.Addr())
	resp := c.get(tb, "/events?channel=time", headers...)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		tb.Fatalf("stream: %d %v", resp.StatusCode, resp.Header)
	}
	r := bufio.NewReader(resp.Body)
	if ev := sseEvent(tb, r); ev != "event: stream-open\ndata:\n" {
		tb.Fatalf("first event %q", ev)
	}
	return r
}

// wantEvent reads the next event, which must be event id with data, and
// returns it.
func wantEvent(tb testing.TB, r *bufio.Reader, id int, data string) string {
	tb.Helper()
	want := fmt.Sprintf("event: message\nid: time:%d\ndata: %s\n", id, data)
	got := sseEvent(tb, r)
	if got != want {
		tb.Fatalf("event %q, want %q", got, want)
	}
	return got
}

// TestDjangoEventStreamIDs: published events carry the id the build-id
// filter renders ("time:N", not "%I") and '%' unescaped, so a browser's
// reconnect with Last-Event-ID resumes where it left off.
func TestDjangoEventStreamIDs(t *testing.T) {
	o := &eventStore{channel: "time"}
	n := startNode(t, o)
	r := openEvents(t, n)
	n.waitSubscribers(t, "events-time", 1)
	for _, data := range []string{`{"value": 1}`, `50% off`} {
		id := o.add(data)
		n.publish(t, o.publishItem(id, data))
		wantEvent(t, r, id, data)
	}
	// A reconnect from the last id gets nothing old, and the next event.
	r2 := openEvents(t, n, "Last-Event-ID: time:2\r\n")
	n.waitSubscribers(t, "events-time", 2)
	id := o.add("three")
	n.publish(t, o.publishItem(id, "three"))
	wantEvent(t, r, 3, "three")
	wantEvent(t, r2, 3, "three")
}

// TestDjangoEventStreamRecoversAGap: an event the app stored but whose
// publish was lost is recovered through the next link with Grip-Last
// when the next publish does not follow, and delivered once, in order.
func TestDjangoEventStreamRecoversAGap(t *testing.T) {
	o := &eventStore{channel: "time"}
	n := startNode(t, o, func(c *Config) { c.CacheOff = true })
	r := openEvents(t, n)
	n.waitSubscribers(t, "events-time", 1)
	// As Pushpin, the channel's first subscriber fetches its next link a
	// moment after subscribing.
	awaitFirstSubscriptionUpdate(t, n, o)
	id := o.add("one")
	n.publish(t, o.publishItem(id, "one"))
	wantEvent(t, r, 1, "one")
	o.add("two (publish lost)")
	id = o.add("three")
	n.publish(t, o.publishItem(id, "three"))
	wantEvent(t, r, 2, "two (publish lost)")
	wantEvent(t, r, 3, "three")
	id = o.add("four")
	n.publish(t, o.publishItem(id, "four"))
	wantEvent(t, r, 4, "four")
	o.mu.Lock()
	defer o.mu.Unlock()
	if want := []string{"events-time; last-id=0", "events-time; last-id=1"}; !slices.Equal(o.gripLasts, want) {
		t.Fatalf("recovery requests' Grip-Last: %q, want %q", o.gripLasts, want)
	}
}

// TestDjangoEventStreamPagesOnOneConnection: a client far behind gets
// every page of events on its one connection (no hold and a next link:
// the node fetches the next page), then live events.
func TestDjangoEventStreamPagesOnOneConnection(t *testing.T) {
	o := &eventStore{channel: "time", pageSize: 2}
	for i := 1; i <= 5; i++ {
		o.add("e" + strconv.Itoa(i))
	}
	n := startNode(t, o)
	r := openEvents(t, n, "Last-Event-ID: time:0\r\n")
	for i := 1; i <= 5; i++ {
		wantEvent(t, r, i, "e"+strconv.Itoa(i))
	}
	n.waitSubscribers(t, "events-time", 1)
	id := o.add("live")
	n.publish(t, o.publishItem(id, "live"))
	wantEvent(t, r, 6, "live")
}

// linkOrigin records the requests it gets and answers each path with a
// scripted handler.
type linkOrigin struct {
	mu    sync.Mutex
	log   []string // "METHOD /path?query [Grip-Last]"
	paths map[string]http.HandlerFunc
}

func (o *linkOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	o.log = append(o.log, strings.TrimSpace(r.Method+" "+r.URL.RequestURI()+" "+strings.Join(r.Header.Values("Grip-Last"), ",")))
	h := o.paths[r.URL.Path]
	o.mu.Unlock()
	if h == nil {
		http.NotFound(w, r)
		return
	}
	h(w, r)
}

func (o *linkOrigin) count(prefix string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	k := 0
	for _, l := range o.log {
		if strings.HasPrefix(l, prefix) {
			k++
		}
	}
	return k
}

func answerWith(body string, headers ...string) http.HandlerFunc {
	return gripOrigin(body, headers...).ServeHTTP
}

// openPath GETs path and returns the body reader.
func openPath(tb testing.TB, n gripProxy, path string) (*http.Response, *bufio.Reader) {
	tb.Helper()
	c := dialRaw(tb, n.Addr())
	resp := c.get(tb, path)
	return resp, bufio.NewReader(resp.Body)
}

// TestNextLinkPagingEnds: answers without a hold page on through their
// next links on one response, which ends with the page that has none;
// pages marked cacheable are fetched once for two clients.
func TestNextLinkPagingEnds(t *testing.T) {
	o := &linkOrigin{paths: map[string]http.HandlerFunc{
		"/p1": answerWith("page1\n", "Grip-Link", "</p2>; rel=next"),
		"/p2": answerWith("page2\n", "Grip-Link", "</p3?x=1>; rel=next", "Cache-Control", "max-age=60"),
		"/p3": answerWith("page3\n", "Cache-Control", "max-age=60"),
	}}
	n := startNode(t, o)
	for range 2 {
		resp, r := openPath(t, n, "/p1")
		body, err := io.ReadAll(r)
		if err != nil || resp.StatusCode != 200 || string(body) != "page1\npage2\npage3\n" {
			t.Fatalf("paged body %d %q %v", resp.StatusCode, body, err)
		}
	}
	if p1, p2, p3 := o.count("GET /p1"), o.count("GET /p2"), o.count("GET /p3?x=1"); p1 != 2 || p2 != 1 || p3 != 1 {
		t.Fatalf("origin requests /p1 %d /p2 %d /p3 %d, want 2 1 1 (cached pages shared)", p1, p2, p3)
	}
}

// TestNextLinkRefreshAndHint: a held stream's next link is fetched every
// timeout and on each http-stream hint, each answer appended.
func TestNextLinkRefreshAndHint(t *testing.T) {
	var k atomic.Int64
	o := &linkOrigin{paths: map[string]http.HandlerFunc{
		"/s": answerWith("start\n", "Grip-Hold", "stream", "Grip-Channel", "c", "Grip-Link", "</next>; rel=next; timeout=1"),
		"/next": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Grip-Hold", "stream")
			w.Header().Set("Grip-Channel", "c")
			w.Header().Set("Grip-Link", "</next>; rel=next; timeout=1")
			fmt.Fprintf(w, "next %d\n", k.Add(1))
		},
	}}
	n := startNode(t, o)
	_, r := openPath(t, n, "/s")
	if l := readLine(t, r); l != "start\n" {
		t.Fatalf("first line %q", l)
	}
	for i := 1; i <= 2; i++ { // refreshes
		if l := readLine(t, r); l != fmt.Sprintf("next %d\n", i) {
			t.Fatalf("refresh line %q", l)
		}
	}
	n.waitSubscribers(t, "c", 1)
	n.publish(t, map[string]any{"channel": "c", "formats": map[string]any{"http-stream": map[string]any{"action": "hint"}}})
	if l := readLine(t, r); l != "next 3\n" {
		t.Fatalf("hint line %q", l)
	}
}

// TestSequencedStreamWithoutNextLinkIsNotHeld: as Pushpin, a stream hold
// with a prev-id but no next link (nothing to recover through) is
// answered as a plain response.
func TestSequencedStreamWithoutNextLinkIsNotHeld(t *testing.T) {
	n := startNode(t, gripOrigin("data\n", "Grip-Hold", "stream", "Grip-Channel", "c; prev-id=1"))
	resp, err := http.Get(n.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ContentLength != 5 || string(body) != "data\n" || n.hub.Subscribers("c") != 0 {
		t.Fatalf("got length %d body %q subscribers %d", resp.ContentLength, body, n.hub.Subscribers("c"))
	}
}

// TestGoneLinkToldWhenClientLeaves: a held stream's gone link gets an
// empty POST once the client hangs up.
func TestGoneLinkToldWhenClientLeaves(t *testing.T) {
	gone := make(chan string, 1)
	o := &linkOrigin{paths: map[string]http.HandlerFunc{
		"/s": answerWith("hi\n", "Grip-Hold", "stream", "Grip-Channel", "c", "Grip-Link", "</bye?who=1>; rel=gone"),
		"/bye": func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			gone <- r.Method + " " + r.URL.RequestURI() + " " + strconv.Itoa(len(b)) + " " + strconv.FormatBool(r.Header.Get("Grip-Sig") != "")
		},
	}}
	o.paths["/lp"] = answerWith("timeout", "Grip-Hold", "response", "Grip-Channel", "lp", "Grip-Link", "</bye?who=2>; rel=gone")
	n := startNode(t, o)
	c := dialRaw(t, n.Addr())
	c.get(t, "/s")
	n.waitSubscribers(t, "c", 1)
	c.Close()
	awaitGone := func(want string) {
		select {
		case got := <-gone:
			if got != want {
				t.Fatalf("gone request %q, want %q", got, want)
			}
		case <-time.After(waitTimeout):
			t.Fatal("gone link never requested")
		}
	}
	awaitGone("POST /bye?who=1 0 true")
	// A long-poll tells its gone link when it ends, answered or not.
	lp := dialRaw(t, n.Addr())
	ans := lp.getAsync("/lp")
	n.waitSubscribers(t, "lp", 1)
	n.publish(t, lpItem("done"))
	if a := await(t, ans); a.body != "done" {
		t.Fatalf("long-poll answer %q", a.body)
	}
	awaitGone("POST /bye?who=2 0 true")
}

// TestSequencedLongPollRetried: a long-poll whose message does not follow
// its prev-id is asked again with Grip-Last, and answered with the
// origin's new answer.
func TestSequencedLongPollRetried(t *testing.T) {
	o := &linkOrigin{paths: map[string]http.HandlerFunc{
		"/lp": func(w http.ResponseWriter, r *http.Request) {
			if gl := r.Header.Get("Grip-Last"); gl != "" {
				io.WriteString(w, "recovered after "+gl)
				return
			}
			w.Header().Set("Grip-Hold", "response")
			w.Header().Set("Grip-Channel", "c; prev-id=1")
			io.WriteString(w, "timeout")
		},
	}}
	n := startNode(t, o, func(c *Config) { c.CacheOff = true })
	c := dialRaw(t, n.Addr())
	ans := c.getAsync("/lp")
	n.waitSubscribers(t, "c", 1)
	n.publish(t, map[string]any{"channel": "c", "id": "3", "prev-id": "2",
		"formats": map[string]any{"http-response": map[string]any{"body": "out of order"}}})
	if a := await(t, ans); a.body != "recovered after c; last-id=1" {
		t.Fatalf("long-poll answer %q", a.body)
	}
	// In order: delivered.
	ans = c.getAsync("/lp")
	n.waitSubscribers(t, "c", 1)
	n.publish(t, map[string]any{"channel": "c", "id": "2", "prev-id": "1",
		"formats": map[string]any{"http-response": map[string]any{"body": "in order"}}})
	if a := await(t, ans); a.body != "in order" {
		t.Fatalf("long-poll answer %q", a.body)
	}
}

// TestFiltersOnHeldHTTP: skip-self, skip-users, require-sub and var-subst
// apply per connection to streams and long-polls, with meta from
// Grip-Set-Meta; a format's content-filters reach only subscriptions
// with those filters.
func TestFiltersOnHeldHTTP(t *testing.T) {
	o := &linkOrigin{paths: map[string]http.HandlerFunc{
		"/stream": answerWith("", "Grip-Hold", "stream", "Grip-Set-Meta", `user="alice"`,
			"Grip-Channel", "c; filter=skip-self; filter=skip-users; filter=require-sub; filter=var-subst", "Grip-Channel", "also"),
		"/plain": answerWith("", "Grip-Hold", "stream", "Grip-Channel", "c"),
		"/lp": answerWith("timeout", "Grip-Hold", "response", "Grip-Set-Meta", "user=alice",
			"Grip-Channel", "c; filter=skip-self; filter=var-subst"),
	}}
	n := startNode(t, o, func(c *Config) { c.CacheOff = true })
	_, alice := openPath(t, n, "/stream")
	_, plain := openPath(t, n, "/plain")
	lpc := dialRaw(t, n.Addr())
	lp := lpc.getAsync("/lp")
	n.waitSubscribers(t, "c", 3)
	item := func(content string, meta map[string]any, filters ...string) map[string]any {
		f := map[string]any{"content": content}
		r := map[string]any{"body": content}
		if filters != nil {
			f["content-filters"], r["content-filters"] = filters, filters
		}
		return map[string]any{"channel": "c", "meta": meta, "formats": map[string]any{"http-stream": f, "http-response": r}}
	}
	n.publish(t,
		item("from alice\n", map[string]any{"sender": "alice"}),
		item("skipping alice\n", map[string]any{"skip_users": "bob,alice"}),
		item("needs sub x\n", map[string]any{"require_sub": "x"}),
		item("needs sub also\n", map[string]any{"require_sub": "also"}),
		item("hi %(user)s\n", map[string]any{"sender": "bob"}, "var-subst"),
	)
	if l := readLine(t, alice); l != "needs sub also\n" {
		t.Fatalf("alice got %q", l)
	}
	if l := readLine(t, alice); l != "hi alice\n" {
		t.Fatalf("alice got %q", l)
	}
	for _, want := range []string{"from alice\n", "skipping alice\n", "needs sub x\n", "needs sub also\n"} {
		if l := readLine(t, plain); l != want {
			t.Fatalf("plain stream got %q, want %q", l, want)
		}
	}
	if a := await(t, lp); a.body != "skipping alice\n" {
		t.Fatalf("long-poll got %q", a.body)
	}
}

// TestStreamFromCachedCopyGetsWhatWasPublishedSince: a stream opened from
// a cached copy taken before 5 publishes gets exactly those 5, in order,
// after the copy's initial data; the origin is asked once.
func TestStreamFromCachedCopyGetsWhatWasPublishedSince(t *testing.T) {
	var requests atomic.Int64
	n := startNode(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", "s")
		io.WriteString(w, "value=0\n")
	}))
	_, first := openPath(t, n, "/s")
	if l := readLine(t, first); l != "value=0\n" {
		t.Fatalf("first client: %q", l)
	}
	n.waitSubscribers(t, "s", 1)
	for i := 1; i <= 5; i++ {
		n.publish(t, streamItem("s", fmt.Sprintf("msg-%d\n", i)))
	}
	_, late := openPath(t, n, "/s")
	for _, want := range []string{"value=0\n", "msg-1\n", "msg-2\n", "msg-3\n", "msg-4\n", "msg-5\n"} {
		if l := readLine(t, late); l != want {
			t.Fatalf("late client got %q, want %q", l, want)
		}
	}
	n.publish(t, streamItem("s", "msg-6\n"))
	if l := readLine(t, late); l != "msg-6\n" {
		t.Fatalf("late client got %q after its replay", l)
	}
	if requests.Load() != 1 {
		t.Fatalf("origin asked %d times, want 1", requests.Load())
	}
}

// TestCachedCopyOlderThanHistoryIsRefetched: with a history of 3, a
// cached copy taken before 10 publishes cannot be brought up to date
// (messages 1-7 are gone): the newcomer gets a fresh answer from the
// origin instead of the old copy with a silent gap; with the origin down
// it gets the copy and what history has, and the gap is counted.
func TestCachedCopyOlderThanHistoryIsRefetched(t *testing.T) {
	var value, requests atomic.Int64
	n := startNode(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", "v")
		fmt.Fprintf(w, "value=%d\n", value.Load())
	}), func(c *Config) { c.HistorySize = 3 })
	_, first := openPath(t, n, "/v")
	readLine(t, first)
	n.waitSubscribers(t, "v", 1)
	publishUpTo := func(to int) {
		for i := int(value.Load()) + 1; i <= to; i++ {
			value.Store(int64(i))
			n.publish(t, streamItem("v", fmt.Sprintf("msg-%d\n", i)))
		}
	}
	publishUpTo(10)
	_, late := openPath(t, n, "/v")
	if l := readLine(t, late); l != "value=10\n" {
		t.Fatalf("newcomer after 10 publishes got %q, want a fresh value=10", l)
	}
	if requests.Load() != 2 {
		t.Fatalf("origin asked %d times, want 2", requests.Load())
	}
	// Within history: served from the copy, brought up to date by replay.
	publishUpTo(12)
	_, within := openPath(t, n, "/v")
	for _, want := range []string{"value=10\n", "msg-11\n", "msg-12\n"} {
		if l := readLine(t, within); l != want {
			t.Fatalf("newcomer within history got %q, want %q", l, want)
		}
	}
	if requests.Load() != 2 {
		t.Fatalf("origin asked %d times, want still 2", requests.Load())
	}
	// Too old with the origin down: the copy and what history has.
	publishUpTo(20)
	n.stopOrigin(t)
	_, down := openPath(t, n, "/v")
	for _, want := range []string{"value=10\n", "msg-18\n", "msg-19\n", "msg-20\n"} {
		if l := readLine(t, down); l != want {
			t.Fatalf("newcomer with the origin down got %q, want %q", l, want)
		}
	}
	if got := n.metrics.cacheGaps.Get(); got != 1 {
		t.Fatalf("edgepush_cache_gaps_total = %d, want 1", got)
	}
}

// TestStreamBehindItsChannelRecoversAtOnce: as Pushpin, a stream whose
// initial prev-id is behind its channel's last published id recovers
// through the next link right away, not at the next publish.
func TestStreamBehindItsChannelRecoversAtOnce(t *testing.T) {
	o := &linkOrigin{paths: map[string]http.HandlerFunc{
		"/s": answerWith("open\n", "Grip-Hold", "stream", "Grip-Channel", "c; prev-id=1", "Grip-Link", "</next>; rel=next"),
		"/next": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Grip-Hold", "stream")
			w.Header().Set("Grip-Channel", "c; prev-id=5")
			w.Header().Set("Grip-Link", "</next>; rel=next")
			io.WriteString(w, "recovered after "+r.Header.Get("Grip-Last")+"\n")
		},
	}}
	n := startNode(t, o, func(c *Config) { c.CacheOff = true })
	for id := 2; id <= 5; id++ {
		n.publish(t, map[string]any{"channel": "c", "id": strconv.Itoa(id), "prev-id": strconv.Itoa(id - 1),
			"formats": map[string]any{"http-stream": map[string]any{"content": "old\n"}}})
	}
	_, r := openPath(t, n, "/s")
	for _, want := range []string{"open\n", "recovered after c; last-id=1\n"} {
		if l := readLine(t, r); l != want {
			t.Fatalf("got %q, want %q", l, want)
		}
	}
	n.publish(t, map[string]any{"channel": "c", "id": "6", "prev-id": "5",
		"formats": map[string]any{"http-stream": map[string]any{"content": "six\n"}}})
	if l := readLine(t, r); l != "six\n" {
		t.Fatalf("after recovery got %q", l)
	}
}

// TestCachedWebSocketOpenOlderThanHistoryIsRefetched: the same for a
// cached answer to a WebSocket's OPEN: once a message published after it
// is gone from history, the next WebSocket makes the origin answer again.
func TestCachedWebSocketOpenOlderThanHistoryIsRefetched(t *testing.T) {
	var opens atomic.Int64
	n := startNode(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		evs, _ := grip.ParseWSEvents(body)
		var out []grip.WSEvent
		for _, ev := range evs {
			if ev.Type == grip.WSEventOpen {
				k := opens.Add(1)
				out = append(out, ev,
					grip.WSEvent{Type: grip.WSEventText, Content: []byte(`c:{"type":"subscribe","channel":"w"}`)},
					grip.WSEvent{Type: grip.WSEventText, Content: fmt.Appendf(nil, "m:welcome %d", k)})
			}
		}
		w.Header().Set("Sec-WebSocket-Extensions", "grip")
		w.Header().Set("X-Origin", "yes")
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", grip.WebSocketEventsType)
		w.Write(grip.AppendWSEvents(nil, out...))
	}), func(c *Config) { c.HistorySize = 3 })
	first := dialWS(t, n, "/w", false)
	if got := readText(t, first); got != "welcome 1" {
		t.Fatalf("first: %q", got)
	}
	n.waitSubscribers(t, "w", 1)
	ws := func(s string) map[string]any {
		return map[string]any{"channel": "w", "formats": map[string]any{"ws-message": map[string]any{"content": s}}}
	}
	n.publish(t, ws("a"), ws("b"))
	within := dialWS(t, n, "/w", false)
	for _, want := range []string{"welcome 1", "a", "b"} {
		if got := readText(t, within); got != want {
			t.Fatalf("within history: %q, want %q", got, want)
		}
	}
	n.publish(t, ws("c"), ws("d"))
	late := dialWS(t, n, "/w", false)
	if got := readText(t, late); got != "welcome 2" {
		t.Fatalf("too old a copy: %q, want a fresh welcome 2", got)
	}
	if opens.Load() != 2 {
		t.Fatalf("origin OPENs %d, want 2", opens.Load())
	}
}
