package loadtest

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestRunExternalPublish: one run only listens while another run
// publishes on the same channel (as load processes on the nodes of a
// tier do); nobody publishing means everything is lost, quickly.
func TestRunExternalPublish(t *testing.T) {
	proxy, _, _ := newFakeProxy(t, "")
	listening := make(chan struct{})
	var once sync.Once
	type result struct {
		rep *Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := Run(context.Background(), Config{
			URL:             proxy.URL + "/stream?ch=ext",
			ExternalPublish: true,
			Conns:           20,
			Msgs:            4,
			Rate:            20,
			PublishDelay:    10 * time.Second,
			Settle:          5 * time.Second,
			Progress: func(p Progress) {
				if p.Phase == "listen" {
					once.Do(func() { close(listening) })
				}
			},
			ProgressInterval: 5 * time.Millisecond,
		})
		done <- result{rep, err}
	}()
	select {
	case <-listening:
	case <-time.After(10 * time.Second):
		t.Fatal("the listener never got to listen")
	}
	pub, err := Run(context.Background(), Config{
		URL: proxy.URL + "/stream?ch=ext", PublishURL: proxy.URL + "/publish/",
		Conns: 2, Msgs: 4, Rate: 20, Settle: 5 * time.Second,
	})
	if err != nil || pub.Lost != 0 {
		t.Fatalf("publisher: %v, lost %d", err, pub.Lost)
	}
	start := time.Now()
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	rep := res.rep
	if time.Since(start) > 3*time.Second {
		t.Errorf("the listener waited %v after everything had arrived", time.Since(start))
	}
	if !rep.ExternalPublish || rep.MsgsPublished != 4 || rep.DeliveriesExpected != 80 || rep.DeliveriesReceived != 80 ||
		rep.Lost != 0 || rep.Duplicated != 0 {
		t.Errorf("listener: external %v published %d deliveries %d/%d lost %d dup %d", rep.ExternalPublish,
			rep.MsgsPublished, rep.DeliveriesReceived, rep.DeliveriesExpected, rep.Lost, rep.Duplicated)
	}
	checkLatencies(t, rep)

	t0 := time.Now()
	rep, err = Run(context.Background(), Config{
		URL: proxy.URL + "/stream?ch=nobody", ExternalPublish: true,
		Conns: 3, Msgs: 2, Rate: 100, Settle: 100 * time.Millisecond,
	})
	if err != nil || rep.Lost != 6 || rep.DeliveriesExpected != 6 {
		t.Errorf("nobody publishing: %v, lost %d of %d", err, rep.Lost, rep.DeliveriesExpected)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("nobody publishing: took %v", d)
	}
}
