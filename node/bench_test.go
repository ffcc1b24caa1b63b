package node

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgepush/edgepush/fanout"
	"github.com/edgepush/edgepush/grip"
	"github.com/fasthttp/websocket"
)

// benchSubscribers opens n subscribers with open (at most 32 at a time)
// and counts the messages they read.
func benchSubscribers(b *testing.B, n int, open func() (func() error, error)) *atomic.Int64 {
	b.Helper()
	var got atomic.Int64
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			read, err := open()
			<-sem
			if err != nil {
				failed.Add(1)
				return
			}
			go func() {
				for read() == nil {
					got.Add(1)
				}
			}()
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d subscribers failed to connect", f, n)
	}
	return &got
}

// benchPublish publishes b.N items straight into the node (as the publish
// handler does) and waits until every subscriber has read every one.
func benchPublish(b *testing.B, n *testNode, subs int, got *atomic.Int64, item func(i int) *grip.Item) {
	b.Helper()
	n.waitSubscribers(b, "bench", subs)
	base := got.Load()
	b.ResetTimer()
	for i := range b.N {
		n.hub.Publish(fanout.NewMessage("bench", item(i)))
	}
	want := base + int64(b.N)*int64(subs)
	deadline := time.Now().Add(time.Minute)
	for got.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("delivered %d of %d", got.Load()-base, want-base)
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/delivery")
}

// BenchmarkPublishWebSocket5k publishes to 5,000 WebSocket clients held by
// a node in this process (10,000 descriptors), end to end: publish,
// framing, writes, client reads.
func BenchmarkPublishWebSocket5k(b *testing.B) {
	const subs = 5000
	n := startNode(b, &wsOrigin{channel: "bench"}, func(c *Config) { c.MaxQueueBytes = 16 << 20 })
	url := "ws://" + n.Addr().String() + "/ws"
	got := benchSubscribers(b, subs, func() (func() error, error) {
		c, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			return nil, err
		}
		b.Cleanup(func() { c.Close() })
		if _, _, err := c.ReadMessage(); err != nil { // welcome
			return nil, err
		}
		return func() error { _, _, err := c.ReadMessage(); return err }, nil
	})
	payload := []byte(strings.Repeat("w", 64))
	benchPublish(b, n, subs, got, func(int) *grip.Item {
		return &grip.Item{Channel: "bench", WSMessage: &grip.WSMessageFormat{Content: payload}}
	})
}

// BenchmarkPublishStream5k is the same for 5,000 HTTP streams.
func BenchmarkPublishStream5k(b *testing.B) {
	const subs = 5000
	n := startNode(b, gripOrigin("open\n", "Grip-Hold", "stream", "Grip-Channel", "bench"),
		func(c *Config) { c.MaxQueueBytes = 16 << 20 })
	got := benchSubscribers(b, subs, func() (func() error, error) {
		c, err := net.Dial("tcp", n.Addr().String())
		if err != nil {
			return nil, err
		}
		b.Cleanup(func() { c.Close() })
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return nil, err
		}
		r := bufio.NewReader(resp.Body)
		if _, err := r.ReadString('\n'); err != nil { // "open"
			return nil, err
		}
		return func() error { _, err := r.ReadString('\n'); return err }, nil
	})
	payload := []byte(strings.Repeat("s", 63) + "\n")
	benchPublish(b, n, subs, got, func(int) *grip.Item {
		return &grip.Item{Channel: "bench", HTTPStream: &grip.HTTPStreamFormat{Content: payload}}
	})
}

// BenchmarkPurgePublish makes /purge-publish/ calls on loopback, one after
// another, each purging a key and publishing to an open HTTP stream, and
// reports calls per second and the delay from sending the call to the
// stream client reading the message (p50, p99).
func BenchmarkPurgePublish(b *testing.B) {
	o := &counterOrigin{}
	n := startNode(b, o)
	stream := bufio.NewReader(dialRaw(b, n.Addr()).get(b, "/stream").Body)
	if _, err := stream.ReadString('\n'); err != nil {
		b.Fatal(err)
	}
	n.waitSubscribers(b, "counter", 1)
	client := &http.Client{}
	defer client.CloseIdleConnections()
	delays := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		body := fmt.Sprintf(`{"purge":{"keys":["counter"]},"items":[{"channel":"counter","formats":{"http-stream":{"content":"value %d\n"}}}]}`, i)
		start := time.Now()
		resp, err := client.Post(n.ctl+"/purge-publish/", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if _, err := stream.ReadString('\n'); err != nil {
			b.Fatal(err)
		}
		delays = append(delays, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(delays)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	b.ReportMetric(float64(delays[len(delays)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(delays[len(delays)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkTierCrossNode publishes at node A of a two-node tier (over the
// control API, one after another) with an HTTP-stream subscriber on each
// node, and reports the delivery delay to the local subscriber and to the
// one on the other node (p50, p99), and publishes per second.
func BenchmarkTierCrossNode(b *testing.B) {
	var nodes []*testNode
	for i := range 2 {
		nodes = append(nodes, startNode(b, gripOrigin("open\n", "Grip-Hold", "stream", "Grip-Channel", "x"), func(c *Config) {
			c.ClusterBind, c.ClusterLocal, c.NodeName = "127.0.0.1:0", true, fmt.Sprintf("bench-%d", i)
			if i > 0 {
				c.Join = nodes[0].tier.LocalAddr()
			}
		}))
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(nodes[0].tier.Stats().Peers) != 1 || len(nodes[1].tier.Stats().Peers) != 1 {
		if time.Now().After(deadline) {
			b.Fatal("tier did not form")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var readers []*bufio.Reader
	for _, n := range nodes {
		r := bufio.NewReader(dialRaw(b, n.Addr()).get(b, "/").Body)
		r.ReadString('\n')
		n.waitSubscribers(b, "x", 1)
		readers = append(readers, r)
	}
	client := &http.Client{}
	defer client.CloseIdleConnections()
	local := make([]time.Duration, 0, b.N)
	cross := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		body := fmt.Sprintf(`{"items":[{"channel":"x","formats":{"http-stream":{"content":"m%d\n"}}}]}`, i)
		start := time.Now()
		resp, err := client.Post(nodes[0].ctl+"/publish/", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if _, err := readers[0].ReadString('\n'); err != nil {
			b.Fatal(err)
		}
		local = append(local, time.Since(start))
		if _, err := readers[1].ReadString('\n'); err != nil {
			b.Fatal(err)
		}
		cross = append(cross, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(local)
	slices.Sort(cross)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "publishes/s")
	b.ReportMetric(float64(local[len(local)/2].Microseconds()), "local-p50-µs")
	b.ReportMetric(float64(local[len(local)*99/100].Microseconds()), "local-p99-µs")
	b.ReportMetric(float64(cross[len(cross)/2].Microseconds()), "cross-p50-µs")
	b.ReportMetric(float64(cross[len(cross)*99/100].Microseconds()), "cross-p99-µs")
}
