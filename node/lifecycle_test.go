package node

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgepush/edgepush/grip"
	"github.com/fasthttp/websocket"
)

func lifecycleConfig() Config {
	cfg := DefaultConfig()
	cfg.Listen, cfg.Control, cfg.Origin = "127.0.0.1:0", "127.0.0.1:0", "http://127.0.0.1:1"
	return cfg
}

func TestShutdownBeforeStart(t *testing.T) {
	s, err := New(lifecycleConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr() != nil || s.ControlAddr() != nil {
		t.Fatal("addresses before Start")
	}
	if st := s.Status(); st.Listen != "" {
		t.Fatalf("status before Start: %+v", st)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal("second Shutdown:", err)
	}
}

// TestStartFailsPartWay starts a node whose control address is taken:
// Start fails, and what it had opened (the client listener, the close
// watcher, the cache) is released again (goleak checks the goroutines).
func TestStartFailsPartWay(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := lifecycleConfig()
	cfg.Control = taken.Addr().String()
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil || !strings.Contains(err.Error(), "control listen") {
		t.Fatalf("Start with a taken control address: %v", err)
	}
	// The client listener it opened is closed: its port can be taken.
	ln, err := net.Listen("tcp", s.Addr().String())
	if err != nil {
		t.Fatalf("client port still held after the failed Start: %v", err)
	}
	ln.Close()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestStartFailsJoiningTier fails at the last step of Start (the tier's
// memberlist address is taken).
func TestStartFailsJoiningTier(t *testing.T) {
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := lifecycleConfig()
	cfg.ClusterBind, cfg.ClusterLocal = taken.LocalAddr().String(), true
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		t.Fatal("Start with a taken tier address succeeded")
	}
	for _, a := range []net.Addr{s.Addr(), s.ControlAddr()} {
		ln, err := net.Listen("tcp", a.String())
		if err != nil {
			t.Fatalf("%s still held after the failed Start: %v", a, err)
		}
		ln.Close()
	}
	s.Shutdown(context.Background())
}

func TestNewChecksClusterKey(t *testing.T) {
	cfg := lifecycleConfig()
	cfg.ClusterBind, cfg.ClusterKey = "127.0.0.1:0", "change-me-16bytes" // 17 bytes
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "-cluster-key: 17 bytes") {
		t.Fatalf("New with a 17-byte cluster key: %v", err)
	}
}

// TestShutdownStopsWebSocketRetries closes a WebSocket whose origin fails
// every WebSocket-over-HTTP request after the OPEN: the session keeps
// retrying the CLOSE event with back-off (seconds; it is worth delivering
// after the client is gone), and Shutdown must not wait the back-off out.
func TestShutdownStopsWebSocketRetries(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	o := &wsFailAfterOpen{}
	n := startNode(t, o, func(c *Config) { c.WSOriginRetries = 5 })
	ws := dialWS(t, n, "/ws", false)
	readText(t, ws) // welcome
	// The POST carrying the CLOSE fails, retries begin.
	ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	waitFor(t, "the first failed event request", func() bool { return o.failed.Load() >= 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.Shutdown(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("Shutdown waited out the WebSocket retries")
	}
	if got := o.failed.Load(); got >= 5 {
		t.Fatalf("%d failed requests: the retries went on during shutdown", got)
	}
	ws.Close()
}

// wsFailAfterOpen accepts WebSocket OPENs (as wsOrigin) and answers 503
// to every other WebSocket-over-HTTP request.
type wsFailAfterOpen struct {
	wsOrigin
	failed atomic.Int64
}

func (o *wsFailAfterOpen) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if evs, err := grip.ParseWSEvents(body); err == nil && len(evs) > 0 && evs[0].Type == grip.WSEventOpen {
		r.Body = io.NopCloser(bytes.NewReader(body))
		o.wsOrigin.ServeHTTP(w, r)
		return
	}
	o.failed.Add(1)
	http.Error(w, "unavailable", http.StatusServiceUnavailable)
}
