package node

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
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
	events    []string // data of event i+1
	gripLasts []string // Grip-Last of every next-link request
	requests  atomic.Int64
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
	o.requests.Add(1)
	q := r.URL.Query()
	last := 0
	switch {
	case q.Get("recover") == "true":
		o.mu.Lock()
		o.gripLasts = append(o.gripLasts, strings.Join(r.Header.Values("Grip-Last"), ","))
		o.mu.Unlock()
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
func openEvents(tb testing.TB, n *testNode, headers ...string) *bufio.Reader {
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

func wantEvent(tb testing.TB, r *bufio.Reader, id int, data string) {
	tb.Helper()
	want := fmt.Sprintf("event: message\nid: time:%d\ndata: %s\n", id, data)
	if got := sseEvent(tb, r); got != want {
		tb.Fatalf("event %q, want %q", got, want)
	}
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
	if len(o.gripLasts) != 1 || o.gripLasts[0] != "events-time; last-id=1" {
		t.Fatalf("recovery requests' Grip-Last: %q", o.gripLasts)
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
