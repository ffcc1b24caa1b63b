package loadtest

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgepush/edgepush/internal/testnet"
	"github.com/fasthttp/websocket"
)

// fakeProxy is a minimal GRIP proxy for the tests: it asks the origin,
// honours Grip-Hold (stream, response) and Grip-Channel, and pushes what
// is POSTed to /publish/ to the held connections.
type fakeProxy struct {
	origin string
	key    string // required Bearer key, if set
	client *http.Client

	mu      sync.Mutex
	subs    map[string]map[chan fakeItem]struct{}
	sources map[string]bool // subscriber source IPs

	publishes atomic.Int64
}

type fakeItem struct {
	stream, response, ws *string
}

func newFakeProxy(t *testing.T, key string) (proxy, origin *httptest.Server, fp *fakeProxy) {
	origin = httptest.NewServer(NewOrigin())
	fp = &fakeProxy{
		origin:  origin.URL,
		key:     key,
		client:  &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second},
		subs:    map[string]map[chan fakeItem]struct{}{},
		sources: map[string]bool{},
	}
	proxy = httptest.NewServer(fp)
	t.Cleanup(func() {
		proxy.Close()
		origin.Close()
		fp.client.CloseIdleConnections()
	})
	return proxy, origin, fp
}

// subscribe registers a subscriber to channel ch coming from remoteAddr
// and returns its queue and the function that unregisters it.
func (p *fakeProxy) subscribe(ch, remoteAddr string) (chan fakeItem, func()) {
	host, _, _ := net.SplitHostPort(remoteAddr)
	sub := make(chan fakeItem, 64)
	p.mu.Lock()
	p.sources[host] = true
	if p.subs[ch] == nil {
		p.subs[ch] = map[chan fakeItem]struct{}{}
	}
	p.subs[ch][sub] = struct{}{}
	p.mu.Unlock()
	return sub, func() {
		p.mu.Lock()
		delete(p.subs[ch], sub)
		p.mu.Unlock()
	}
}

// serveWS is a WebSocket subscriber: it is greeted, then gets the
// ws-message publishes of its channel (the query's ch).
func (p *fakeProxy) serveWS(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{ReadBufferSize: 256, WriteBufferSize: 256}
	c, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	sub, unsubscribe := p.subscribe(r.URL.Query().Get("ch"), r.RemoteAddr)
	defer unsubscribe()
	gone := make(chan struct{})
	go func() { // reads until the client goes
		defer close(gone)
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	defer func() { c.Close(); <-gone }()
	if c.WriteMessage(websocket.TextMessage, []byte("welcome")) != nil {
		return
	}
	for {
		select {
		case it := <-sub:
			if it.ws != nil && c.WriteMessage(websocket.TextMessage, []byte(*it.ws)) != nil {
				return
			}
		case <-gone:
			return
		}
	}
}

func (p *fakeProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/publish/" {
		p.publish(w, r)
		return
	}
	if websocket.IsWebSocketUpgrade(r) {
		p.serveWS(w, r)
		return
	}
	resp, err := p.client.Get(p.origin + r.URL.RequestURI())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	hold, ch := resp.Header.Get("Grip-Hold"), resp.Header.Get("Grip-Channel")
	for k, v := range resp.Header {
		if !strings.HasPrefix(k, "Grip-") && k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	if hold == "" {
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
		return
	}
	sub, unsubscribe := p.subscribe(ch, r.RemoteAddr)
	defer unsubscribe()
	switch hold {
	case "stream":
		w.WriteHeader(http.StatusOK)
		w.Write(body)
		w.(http.Flusher).Flush()
		for {
			select {
			case it := <-sub:
				if it.stream != nil {
					io.WriteString(w, *it.stream)
					w.(http.Flusher).Flush()
				}
			case <-r.Context().Done():
				return
			}
		}
	case "response":
		secs, _ := strconv.Atoi(resp.Header.Get("Grip-Timeout"))
		timeout := time.NewTimer(time.Duration(secs) * time.Second)
		defer timeout.Stop()
		for {
			select {
			case it := <-sub:
				if it.response != nil {
					io.WriteString(w, *it.response)
					return
				}
			case <-timeout.C:
				w.Write(body)
				return
			case <-r.Context().Done():
				return
			}
		}
	}
}

func (p *fakeProxy) publish(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if p.key != "" && r.Header.Get("Authorization") != "Bearer "+p.key {
		http.Error(w, "bad key", http.StatusUnauthorized)
		return
	}
	var v struct {
		Items []struct {
			Channel string `json:"channel"`
			Formats struct {
				Stream *struct {
					Content string `json:"content"`
				} `json:"http-stream"`
				Response *struct {
					Body string `json:"body"`
				} `json:"http-response"`
				WS *struct {
					Content string `json:"content"`
				} `json:"ws-message"`
			} `json:"formats"`
		} `json:"items"`
	}
	if err := json.NewDecoder(r.Body).Decode(&v); err != nil || len(v.Items) == 0 {
		http.Error(w, "Invalid format", http.StatusBadRequest)
		return
	}
	for _, item := range v.Items {
		var it fakeItem
		if f := item.Formats.Stream; f != nil {
			it.stream = &f.Content
		}
		if f := item.Formats.Response; f != nil {
			it.response = &f.Body
		}
		if f := item.Formats.WS; f != nil {
			it.ws = &f.Content
		}
		p.mu.Lock()
		for sub := range p.subs[item.Channel] {
			select {
			case sub <- it:
			default: // a slow subscriber loses the message
			}
		}
		p.mu.Unlock()
	}
	p.publishes.Add(1)
	io.WriteString(w, "Published\n")
}

func checkLatencies(t *testing.T, rep *Report) {
	t.Helper()
	if !(rep.LatencyP50Ms > 0 && rep.LatencyP50Ms <= rep.LatencyP90Ms && rep.LatencyP90Ms <= rep.LatencyP99Ms &&
		rep.LatencyP99Ms <= rep.LatencyMaxMs) {
		t.Errorf("latency p50 %v p90 %v p99 %v max %v: not positive and ordered",
			rep.LatencyP50Ms, rep.LatencyP90Ms, rep.LatencyP99Ms, rep.LatencyMaxMs)
	}
}

func TestRunStream(t *testing.T) {
	proxy, _, fp := newFakeProxy(t, "")
	var progress atomic.Int64
	var lastPhase atomic.Value
	rep, err := Run(context.Background(), Config{
		URL:        proxy.URL + "/stream?ch=s1",
		PublishURL: proxy.URL + "/publish/",
		Conns:      50,
		Msgs:       5,
		Rate:       50,
		Settle:     10 * time.Second,
		PIDs:       []int{os.Getpid()},
		Progress: func(p Progress) {
			progress.Add(1)
			lastPhase.Store(p.Phase)
		},
		ProgressInterval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ConnsOK != 50 || rep.ConnsFailed != 0 || rep.ConnsDropped != 0 || rep.MsgsPublished != 5 {
		t.Fatalf("conns ok %d failed %d dropped %d, published %d", rep.ConnsOK, rep.ConnsFailed, rep.ConnsDropped, rep.MsgsPublished)
	}
	if rep.DeliveriesExpected != 250 || rep.DeliveriesReceived != 250 || rep.Lost != 0 || rep.Duplicated != 0 ||
		rep.OutOfOrder != 0 || rep.Unexpected != 0 {
		t.Errorf("deliveries %d/%d lost %d dup %d ooo %d unexpected %d", rep.DeliveriesReceived, rep.DeliveriesExpected,
			rep.Lost, rep.Duplicated, rep.OutOfOrder, rep.Unexpected)
	}
	checkLatencies(t, rep)
	checkByMessage(t, rep, 5, 50)
	if rep.Channel != "s1" || fp.publishes.Load() != 5 {
		t.Errorf("channel %q, publishes %d", rep.Channel, fp.publishes.Load())
	}
	if rep.SetupP50Ms <= 0 || rep.SetupP99Ms < rep.SetupP50Ms || rep.SetupsPerSec <= 0 || rep.PublishRTTP50Ms <= 0 {
		t.Errorf("setup p50 %v p99 %v rate %v, publish rtt %v", rep.SetupP50Ms, rep.SetupP99Ms, rep.SetupsPerSec, rep.PublishRTTP50Ms)
	}
	// The test process is the "server" here.
	if rep.RSSBaseMB <= 0 || rep.RSSLoadedMB <= 0 || rep.RSSPeakMB < rep.RSSLoadedMB || rep.ServerCPUSeconds < 0 {
		t.Errorf("rss %v %v %v cpu %v", rep.RSSBaseMB, rep.RSSLoadedMB, rep.RSSPeakMB, rep.ServerCPUSeconds)
	}
	if progress.Load() < 3 || lastPhase.Load() != "done" {
		t.Errorf("progress called %d times, last phase %v", progress.Load(), lastPhase.Load())
	}
	var sb strings.Builder
	if err := rep.WriteTable(&sb); err != nil || !strings.Contains(sb.String(), "250/250 received, 0 lost") {
		t.Errorf("table: %v\n%s", err, sb.String())
	}
	b, err := json.Marshal(rep)
	if err != nil || !strings.Contains(string(b), `"lost":0`) || strings.Contains(string(b), "\n") {
		t.Errorf("json: %v %s", err, b)
	}
}

func TestRunSSEWithLocalAddrsAndKey(t *testing.T) {
	proxy, _, fp := newFakeProxy(t, "sekrit")
	rep, err := Run(context.Background(), Config{
		URL:        proxy.URL + "/sse?ch=s2",
		Transport:  TransportSSE,
		PublishURL: proxy.URL + "/publish/",
		PublishKey: "sekrit",
		Conns:      30,
		LocalAddrs: 3,
		Msgs:       4,
		Rate:       100,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ConnsOK != 30 || rep.DeliveriesReceived != 120 || rep.Lost != 0 || rep.Duplicated != 0 {
		t.Errorf("ok %d received %d lost %d dup %d; errors %v %v", rep.ConnsOK, rep.DeliveriesReceived, rep.Lost,
			rep.Duplicated, rep.SetupErrors, rep.PublishErrors)
	}
	checkLatencies(t, rep)
	fp.mu.Lock()
	defer fp.mu.Unlock()
	for _, ip := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		if !fp.sources[ip] {
			t.Errorf("no subscriber from %s (saw %v)", ip, fp.sources)
		}
	}
}

func TestRunLongPoll(t *testing.T) {
	proxy, _, _ := newFakeProxy(t, "")
	rep, err := Run(context.Background(), Config{
		URL:          proxy.URL + "/poll?ch=p1",
		Transport:    TransportLongPoll,
		PublishURL:   proxy.URL + "/publish/",
		Conns:        20,
		Msgs:         3,
		Rate:         5,
		Settle:       time.Second,
		PublishDelay: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	// A long-poll client can miss a message published while it re-polls,
	// but at 5 msgs/s over loopback most arrive.
	if rep.ConnsOK != 20 || rep.ConnsDropped != 0 || rep.DeliveriesExpected != 60 ||
		rep.DeliveriesReceived+rep.Lost != 60 || rep.DeliveriesReceived < 30 || rep.Repolls < rep.DeliveriesReceived {
		t.Errorf("ok %d dropped %d (%v) expected %d received %d lost %d repolls %d", rep.ConnsOK, rep.ConnsDropped,
			rep.DropErrors, rep.DeliveriesExpected, rep.DeliveriesReceived, rep.Lost, rep.Repolls)
	}
	checkLatencies(t, rep)
}

func TestRunFailures(t *testing.T) {
	// Nothing listens on the port: every setup fails, nothing crashes.
	dead := "http://" + testnet.RefusingAddr(t)
	rep, err := Run(context.Background(), Config{URL: dead + "/stream", PublishURL: dead + "/publish/", Conns: 10, Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ConnsOK != 0 || rep.ConnsFailed != 10 || len(rep.SetupErrors) == 0 ||
		!strings.Contains(rep.SetupErrors[0].Text, "refused") || rep.MsgsPublished != 0 {
		t.Errorf("ok %d failed %d errors %v published %d", rep.ConnsOK, rep.ConnsFailed, rep.SetupErrors, rep.MsgsPublished)
	}

	// An origin error and a wrong publish key are counted, not fatal.
	proxy, _, _ := newFakeProxy(t, "right")
	rep, err = Run(context.Background(), Config{
		URL: proxy.URL + "/stream?ch=a,b", PublishURL: proxy.URL + "/publish/", Conns: 3})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ConnsFailed != 3 || len(rep.SetupErrors) != 1 || rep.SetupErrors[0].Count != 3 ||
		!strings.Contains(rep.SetupErrors[0].Text, "HTTP 400") {
		t.Errorf("failed %d errors %v", rep.ConnsFailed, rep.SetupErrors)
	}
	rep, err = Run(context.Background(), Config{
		URL: proxy.URL + "/stream", PublishURL: proxy.URL + "/publish/", PublishKey: "wrong",
		Conns: 2, Msgs: 2, Rate: 100, Settle: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ConnsOK != 2 || rep.MsgsPublished != 0 || len(rep.PublishErrors) != 1 || rep.PublishErrors[0].Count != 2 ||
		!strings.Contains(rep.PublishErrors[0].Text, "401") || rep.DeliveriesExpected != 0 {
		t.Errorf("ok %d published %d errors %v expected %d", rep.ConnsOK, rep.MsgsPublished, rep.PublishErrors, rep.DeliveriesExpected)
	}
}

func TestRunDroppedAndTimeout(t *testing.T) {
	// A server that answers one stream chunk and then hangs up: the
	// connections count as set up, then dropped.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/publish/" {
			io.WriteString(w, "Published\n")
			return
		}
		io.WriteString(w, "open\n")
		w.(http.Flusher).Flush()
		time.Sleep(50 * time.Millisecond)
	}))
	defer srv.Close()
	rep, err := Run(context.Background(), Config{
		URL: srv.URL + "/stream", PublishURL: srv.URL + "/publish/", Conns: 5, Msgs: 1,
		PublishDelay: 300 * time.Millisecond, Settle: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ConnsOK != 5 || rep.ConnsDropped != 5 || len(rep.DropErrors) == 0 || rep.Lost != 5 {
		t.Errorf("ok %d dropped %d %v lost %d", rep.ConnsOK, rep.ConnsDropped, rep.DropErrors, rep.Lost)
	}

	// The overall timeout aborts the run with a partial report.
	proxy, _, _ := newFakeProxy(t, "")
	rep, err = Run(context.Background(), Config{
		URL: proxy.URL + "/stream", PublishURL: proxy.URL + "/publish/", Conns: 3, Msgs: 100, Rate: 10,
		Timeout: 500 * time.Millisecond})
	if err == nil || rep == nil || rep.Aborted == "" || rep.ConnsOK != 3 || rep.MsgsPublished == 0 || rep.MsgsPublished >= 100 {
		t.Errorf("err %v, report %+v", err, rep)
	}
}

func TestConfigErrors(t *testing.T) {
	ok := Config{URL: "http://127.0.0.1:1/stream", PublishURL: "http://127.0.0.1:2/publish/", Conns: 1}
	bad := map[string]func(c *Config){
		"no url":        func(c *Config) { c.URL = "" },
		"remote url":    func(c *Config) { c.URL = "http://192.0.2.1/stream" },
		"remote pub":    func(c *Config) { c.PublishURL = "http://192.0.2.1/publish/" },
		"https":         func(c *Config) { c.URL = "https://127.0.0.1/stream" },
		"ws for stream": func(c *Config) { c.URL = "ws://127.0.0.1:1/ws" },
		"http for ws":   func(c *Config) { c.Transport = TransportWS },
		"slow share":    func(c *Config) { c.SlowShare = 1 },
		"neg slow":      func(c *Config) { c.SlowShare = -0.1 },
		"down, no orig": func(c *Config) { c.OriginDown = true },
		"warmup":        func(c *Config) { c.Warmup = MaxWarmup + 1 },
		"no conns":      func(c *Config) { c.Conns = 0 },
		"transport":     func(c *Config) { c.Transport = "carrier-pigeon" },
		"local addrs":   func(c *Config) { c.LocalAddrs = 255 },
		"negative rate": func(c *Config) { c.Rate = -1 },
		"bad pid":       func(c *Config) { c.PIDs = []int{0} },
		"too many":      func(c *Config) { c.Conns = 1 << 30 },
		"gone pid":      func(c *Config) { c.PIDs = []int{1 << 30} },
	}
	for name, mod := range bad {
		c := ok
		mod(&c)
		if rep, err := Run(context.Background(), c); err == nil || rep != nil {
			t.Errorf("%s: no error", name)
		}
	}
	c, err := ok.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Transport != TransportStream || c.Concurrency != 64 || c.Msgs != 20 || c.Rate != 10 || c.Channel != "bench" ||
		c.LocalAddrs != 1 || c.PublishDelay != 0 || c.Warmup != 0 {
		t.Errorf("defaults %+v", c)
	}
	down := ok
	down.Origin, down.OriginDown = &OriginServer{}, true
	if c, err := down.withDefaults(); err != nil || c.Warmup != 1 {
		t.Errorf("origin down: warm-up %d, %v", c.Warmup, err)
	}
	ws := ok
	ws.Transport, ws.URL = TransportWS, "ws://127.0.0.1:1/ws?ch=w"
	if c, err := ws.withDefaults(); err != nil || c.Channel != "w" {
		t.Errorf("ws: %+v %v", c, err)
	}
	ok.Transport, ok.URL = TransportLongPoll, "http://localhost:1/poll?ch=x"
	if c, err = ok.withDefaults(); err != nil || c.Channel != "x" || c.PublishDelay != DefaultLongPollDelay {
		t.Errorf("%+v %v", c, err)
	}
}

// checkByMessage checks the per-message latencies: one entry per message
// in publish order, each with every connection's delivery, and min ≤
// mean ≤ max within the run's overall maximum.
func checkByMessage(t *testing.T, rep *Report, msgs int, conns int64) {
	t.Helper()
	if len(rep.LatencyByMessage) != msgs {
		t.Fatalf("latency_by_message has %d entries, want %d", len(rep.LatencyByMessage), msgs)
	}
	for i, m := range rep.LatencyByMessage {
		if m.Seq != i || m.N != conns || m.MinMs < 0 || m.MinMs > m.MeanMs || m.MeanMs > m.MaxMs || m.MaxMs > rep.LatencyMaxMs+1 {
			t.Errorf("message %d: %+v (run max %.3f ms)", i, m, rep.LatencyMaxMs)
		}
	}
}
