package node

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// counterOrigin is the live-counter pattern's origin: the current value,
// cached (max-age=600) and tagged with Surrogate-Key "counter".
type counterOrigin struct {
	value   atomic.Int64
	fetches atomic.Int64
}

func (o *counterOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.fetches.Add(1)
	o.answer(w, r, o.value.Load())
}

// answer writes the origin's answer with value v.
func (o *counterOrigin) answer(w http.ResponseWriter, r *http.Request, v int64) {
	h := w.Header()
	h.Set("Cache-Control", "max-age=600")
	h.Set("Surrogate-Key", "counter")
	h.Set("Grip-Channel", "counter")
	if r.URL.Path == "/poll" {
		h.Set("Grip-Hold", "response")
	} else {
		h.Set("Grip-Hold", "stream")
	}
	fmt.Fprintf(w, "value %d\n", v)
}

// purgePublish is what the application calls on every change.
func (n *testNode) purgePublish(tb testing.TB, value int64) map[string]any {
	tb.Helper()
	body := fmt.Sprintf(`{"purge":{"keys":["counter"]},"items":[{"channel":"counter","formats":{
		"http-stream":{"content":"value %d\n"},"http-response":{"body":"value %d\n"}}}]}`, value, value)
	resp, err := http.Post(n.ctl+"/purge-publish/", "application/json", strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		tb.Fatalf("purge-publish: %d %v %v", resp.StatusCode, out, err)
	}
	return out
}

func TestPurgePublishConvergesWithinTheRateLimitWindow(t *testing.T) {
	o := &counterOrigin{}
	n := startNode(t, o, func(c *Config) { c.PurgeInterval = time.Hour })

	stream1 := bufio.NewReader(dialRaw(t, n.Addr()).get(t, "/stream").Body)
	if got := readLine(t, stream1); got != "value 0\n" {
		t.Fatalf("first stream: %q", got)
	}
	o.value.Store(1)
	out := n.purgePublish(t, 1) // the leading purge runs at once
	if len(out["purged"].([]any)) != 1 || len(out["deferred"].([]any)) != 0 || out["published"].(float64) != 1 {
		t.Fatalf("first purge-publish answered %v", out)
	}
	if got := readLine(t, stream1); got != "value 1\n" {
		t.Fatalf("publish 1: %q", got)
	}
	stream2 := bufio.NewReader(dialRaw(t, n.Addr()).get(t, "/stream").Body) // refetched: value 1
	if got := readLine(t, stream2); got != "value 1\n" {
		t.Fatalf("stream after the purge: %q", got)
	}
	pollADone := dialRaw(t, n.Addr()).getAsync("/poll") // cached now too, held until the next update
	n.waitSubscribers(t, "counter", 3)
	o.value.Store(2)
	out = n.purgePublish(t, 2) // within the interval: deferred
	deferred := out["deferred"].([]any)
	if len(deferred) != 1 || len(out["purged"].([]any)) != 0 {
		t.Fatalf("second purge-publish answered %v", out)
	}
	// A connection opened now gets the cached (value 1) data, then the
	// replayed update: it reaches the latest value with no new publish.
	stream3 := bufio.NewReader(dialRaw(t, n.Addr()).get(t, "/stream").Body)
	for _, want := range []string{"value 1\n", "value 2\n"} {
		if got := readLine(t, stream3); got != want {
			t.Fatalf("stream in the window: %q, want %q", got, want)
		}
	}
	if got := await(t, pollADone).body; got != "value 2\n" {
		t.Fatalf("held long-poll: %q", got)
	}
	// A long-poll opened now finds a cached answer older than the last
	// http-response: it is not answered with that response (a re-poll
	// must never get a message it already had); the origin is asked again
	// and holds it until the next update.
	pollDone := dialRaw(t, n.Addr()).getAsync("/poll")
	n.waitSubscribers(t, "counter", 4)
	if f := o.fetches.Load(); f != 4 { // /stream twice, /poll twice
		t.Fatalf("origin fetches = %d, want 4", f)
	}
	for _, r := range []*bufio.Reader{stream1, stream2} {
		if got := readLine(t, r); got != "value 2\n" {
			t.Fatalf("open stream got %q", got)
		}
	}
	if st := n.Status(); st.Purges.Requested != 2 || st.Purges.Run != 1 || st.Purges.Deferred != 1 || st.Hub.Replayed < 1 {
		t.Fatalf("status purges %+v hub %+v", st.Purges, st.Hub)
	}
	n.publish(t, map[string]any{"channel": "counter", "formats": map[string]any{"http-response": map[string]any{"body": "value 3\n"}}})
	if got := await(t, pollDone).body; got != "value 3\n" {
		t.Fatalf("long-poll held in the window: %q", got)
	}
}

func TestPurgePublishBurst(t *testing.T) {
	o := &counterOrigin{}
	const interval = 200 * time.Millisecond
	n := startNode(t, o, func(c *Config) { c.PurgeInterval = interval })
	open := bufio.NewReader(dialRaw(t, n.Addr()).get(t, "/stream").Body)
	readLine(t, open)
	fetchesBefore := o.fetches.Load()

	const calls = 100
	var late []*bufio.Reader
	start := time.Now()
	for i := int64(1); i <= calls; i++ {
		o.value.Store(i)
		n.purgePublish(t, i)
		if i%10 == 5 { // connections opened during the burst
			r := bufio.NewReader(dialRaw(t, n.Addr()).get(t, "/stream").Body)
			late = append(late, r)
		}
		time.Sleep(time.Second / calls)
	}
	burst := time.Since(start)
	// Every update reaches the connection that was open all along, in order.
	for i := 1; i <= calls; i++ {
		if got, want := readLine(t, open), fmt.Sprintf("value %d\n", i); got != want {
			t.Fatalf("open connection: %q, want %q", got, want)
		}
	}
	// Connections opened during the burst reach the last value without
	// any further publish (duplicates allowed, gaps not).
	for j, r := range late {
		last := int64(-1)
		for last != calls {
			var v int64
			line := readLine(t, r)
			if _, err := fmt.Sscanf(line, "value %d\n", &v); err != nil {
				t.Fatalf("late connection %d: %q", j, line)
			}
			if last >= 0 && v > last+1 {
				t.Fatalf("late connection %d skipped from %d to %d", j, last, v)
			}
			last = max(last, v)
		}
	}
	// The origin was asked at most once per interval for the key.
	maxFetches := int64(burst/interval) + 2
	if f := o.fetches.Load() - fetchesBefore; f > maxFetches {
		t.Fatalf("%d origin fetches during a %v burst, at most %d allowed", f, burst, maxFetches)
	}
	// After the trailing purge, a new connection starts at the last value.
	waitFor(t, "the trailing purge", func() bool {
		st := n.Status().Purges // every request ran at once, ran deferred, or was folded
		return st.Run == st.Requested-st.Folded
	})
	r := bufio.NewReader(dialRaw(t, n.Addr()).get(t, "/stream").Body)
	if got := readLine(t, r); got != fmt.Sprintf("value %d\n", calls) {
		t.Fatalf("after the trailing purge: %q", got)
	}
}

func TestPurgeAPIBadRequests(t *testing.T) {
	n := startNode(t, gripOrigin("x"), func(c *Config) { c.PublishKey = "k"; c.MaxPublishBody = 500 })
	for _, tc := range []struct {
		name, method, path, body, auth, header string
		code                                   int
		want                                   string
	}{
		{"no key", "POST", "/purge/", `{"keys":["a"]}`, "", "", 401, "publish key"},
		{"get", "GET", "/purge/", "", "Bearer k", "", 405, "method not allowed"},
		{"empty", "POST", "/purge/", `{}`, "Bearer k", "", 400, "nothing to purge"},
		{"malformed", "POST", "/purge/", `{"keys":`, "Bearer k", "", 400, "invalid JSON"},
		{"wrong type", "POST", "/purge/", `{"keys":"a"}`, "Bearer k", "", 400, "invalid JSON"},
		{"bad url", "POST", "/purge/", `{"urls":["nope"]}`, "Bearer k", "", 400, "invalid URL"},
		{"too large", "POST", "/purge/", `{"keys":["` + strings.Repeat("a", 600) + `"]}`, "Bearer k", "", 413, ""},
		{"fastly shape", "POST", "/purge/", "", "Bearer k", "a b", 200, `"purged":[{"key":"a"`},
		{"json", "POST", "/purge/", `{"keys":["c"],"urls":["http://h/x"],"soft":false}`, "Bearer k", "", 200, `"soft":false`},
		{"pp bad items", "POST", "/purge-publish/", `{"items":[{"formats":{}}]}`, "Bearer k", "", 400, "items:"},
		{"pp empty", "POST", "/purge-publish/", `{"purge":{}}`, "Bearer k", "", 400, "nothing to purge"},
		{"pp publish only", "POST", "/purge-publish/", `{"items":[{"channel":"c","formats":{"http-stream":{"content":"x"}}}]}`, "Bearer k", "", 200, `"published":1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, n.ctl+tc.path, strings.NewReader(tc.body))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			if tc.header != "" {
				req.Header.Set("Surrogate-Key", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.want) {
				t.Fatalf("got %d %s, want %d with %q", resp.StatusCode, b, tc.code, tc.want)
			}
		})
	}
}

func TestHintRefetchesThroughTheCacheOnce(t *testing.T) {
	var fetches atomic.Int64
	var ready atomic.Bool // the origin has new data: answer without holding
	n := startNode(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Surrogate-Key", "feed")
		if ready.Load() {
			io.WriteString(w, "fresh data\n")
			return
		}
		w.Header().Set("Grip-Hold", "response")
		w.Header().Set("Grip-Channel", "feed")
		io.WriteString(w, "timeout\n")
	}))
	const polls = 5
	var answers []<-chan answer
	for range polls {
		answers = append(answers, dialRaw(t, n.Addr()).getAsync("/feed"))
	}
	n.waitSubscribers(t, "feed", polls)
	ready.Store(true)
	before := fetches.Load()
	resp, err := http.Post(n.ctl+"/purge-publish/", "application/json", strings.NewReader(
		`{"purge":{"keys":["feed"]},"items":[{"channel":"feed","formats":{"http-response":{"action":"hint"}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, a := range answers {
		if got := await(t, a).body; got != "fresh data\n" {
			t.Fatalf("hinted long-poll got %q", got)
		}
	}
	if f := fetches.Load() - before; f != 1 {
		t.Fatalf("%d held long-polls made %d origin fetches on a hint, want 1", polls, f)
	}
}
