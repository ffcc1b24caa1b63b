package loadtest

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestIsSlow(t *testing.T) {
	for _, tc := range []struct {
		n     int
		share float64
		want  int
	}{{1000, 0.1, 100}, {1000, 0, 0}, {999, 1.0 / 3, 333}, {20, 0.25, 5}, {3, 0.1, 0}, {10, 0.99, 9}} {
		got, run, maxRun := 0, 0, 0
		for i := range tc.n {
			if isSlow(i, tc.share) {
				got++
				run++
				maxRun = max(maxRun, run)
			} else {
				run = 0
			}
		}
		if got != tc.want {
			t.Errorf("%d conns, share %v: %d slow, want %d", tc.n, tc.share, got, tc.want)
		}
		if tc.share <= 0.5 && maxRun > 1 {
			t.Errorf("%d conns, share %v: slow readers not spread (run of %d)", tc.n, tc.share, maxRun)
		}
	}
}

func TestRunSlowReaders(t *testing.T) {
	proxy, _, _ := newFakeProxy(t, "")
	rep, err := Run(context.Background(), Config{
		URL: proxy.URL + "/stream?ch=slow", PublishURL: proxy.URL + "/publish/",
		Conns: 20, SlowShare: 0.25, Msgs: 4, Rate: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ConnsOK != 20 || rep.SlowConns != 5 || rep.SlowDropped != 0 || rep.ConnsDropped != 0 ||
		rep.DeliveriesExpected != 60 || rep.DeliveriesReceived != 60 || rep.Lost != 0 || rep.SlowShare != 0.25 {
		t.Errorf("ok %d slow %d (dropped %d) dropped %d, %d/%d lost %d", rep.ConnsOK, rep.SlowConns, rep.SlowDropped,
			rep.ConnsDropped, rep.DeliveriesReceived, rep.DeliveriesExpected, rep.Lost)
	}
	checkLatencies(t, rep)
	var sb strings.Builder
	rep.WriteTable(&sb)
	if !strings.Contains(sb.String(), "5 of them slow readers") || !strings.Contains(sb.String(), "60/60 received") {
		t.Errorf("table:\n%s", sb.String())
	}

	// A server that hangs up after the first chunk: slow readers find out
	// at the end of the run and count apart from the others.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/publish/" {
			io.WriteString(w, "Published\n")
			return
		}
		w.Header().Set("Connection", "close") // hang up, not just end the response
		io.WriteString(w, "open\n")
		w.(http.Flusher).Flush()
		time.Sleep(50 * time.Millisecond)
	}))
	defer srv.Close()
	rep, err = Run(context.Background(), Config{
		URL: srv.URL + "/stream", PublishURL: srv.URL + "/publish/", Conns: 4, SlowShare: 0.5, Msgs: 1,
		PublishDelay: 300 * time.Millisecond, Settle: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ConnsOK != 4 || rep.SlowConns != 2 || rep.SlowDropped != 2 || rep.ConnsDropped != 2 ||
		rep.DeliveriesExpected != 2 || rep.Lost != 2 {
		t.Errorf("ok %d slow %d (dropped %d) dropped %d, expected %d lost %d", rep.ConnsOK, rep.SlowConns,
			rep.SlowDropped, rep.ConnsDropped, rep.DeliveriesExpected, rep.Lost)
	}
}

// TestRunSlowReadersThroughEdgepush: subscribers that stop reading do not
// hold up the others on a real node.
func TestRunSlowReadersThroughEdgepush(t *testing.T) {
	o := startTestOrigin(t)
	client, control := startNode(t, o.URL())
	rep, err := Run(context.Background(), Config{
		URL: "ws://" + client + "/ws?ch=slow", Transport: TransportWS, PublishURL: "http://" + control + "/publish/",
		Conns: 50, SlowShare: 0.2, Msgs: 5, Rate: 50,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ConnsOK != 50 || rep.SlowConns != 10 || rep.DeliveriesExpected != 200 || rep.DeliveriesReceived != 200 ||
		rep.Lost != 0 {
		t.Errorf("ok %d slow %d, %d/%d lost %d", rep.ConnsOK, rep.SlowConns, rep.DeliveriesReceived,
			rep.DeliveriesExpected, rep.Lost)
	}
	checkLatencies(t, rep)
}

func TestStallConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, hangUp := range []bool{true, false} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		sc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		sc.Write(make([]byte, 16<<10)) // unread data in the client's socket (fits its buffer)
		if hangUp {
			sc.Close()
		}
		stop := make(chan struct{})
		close(stop)
		if got := stallConn(c, stop); got != hangUp {
			t.Errorf("server hung up %v: stall reported %v", hangUp, got)
		}
		c.Close()
		sc.Close()
	}
	if stallConn(nil, nil) {
		t.Error("nil connection reported as ended")
	}
}
