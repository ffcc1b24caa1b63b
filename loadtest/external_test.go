package loadtest

import (
	"context"
	"sync"
	"testing"
	"time"
)

// waitTimeout bounds waits for an event: generous, so that it only
// catches a hang, never a slow (loaded, -race) machine.
const waitTimeout = 20 * time.Second

// TestRunExternalPublish: one run only listens while another run
// publishes on the same channel (as load processes on the nodes of a
// tier do); nobody publishing means everything is lost, once the window
// the listener was given is over.
func TestRunExternalPublish(t *testing.T) {
	proxy, _, _ := newFakeProxy(t, "")
	listening := make(chan struct{})
	var once sync.Once
	type result struct {
		rep *Report
		err error
	}
	done := make(chan result, 1)
	// The listener's window is far longer than the test: only every
	// message having arrived can end its wait.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		rep, err := Run(ctx, Config{
			URL:             proxy.URL + "/stream?ch=ext",
			ExternalPublish: true,
			Conns:           20,
			Msgs:            4,
			Rate:            20,
			PublishDelay:    time.Hour,
			Settle:          time.Hour,
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
	case <-time.After(waitTimeout):
		t.Fatal("the listener never got to listen")
	}
	pub, err := Run(context.Background(), Config{
		URL: proxy.URL + "/stream?ch=ext", PublishURL: proxy.URL + "/publish/",
		Conns: 2, Msgs: 4, Rate: 20, Settle: 5 * time.Second,
	})
	if err != nil || pub.Lost != 0 {
		t.Fatalf("publisher: %v, lost %d", err, pub.Lost)
	}
	var res result
	select {
	case res = <-done:
	case <-time.After(waitTimeout):
		t.Fatal("the listener still waits (for its hour-long window) after everything has arrived")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	rep := res.rep
	if !rep.ExternalPublish || rep.MsgsPublished != 4 || rep.DeliveriesExpected != 80 || rep.DeliveriesReceived != 80 ||
		rep.Lost != 0 || rep.Duplicated != 0 {
		t.Errorf("listener: external %v published %d deliveries %d/%d lost %d dup %d", rep.ExternalPublish,
			rep.MsgsPublished, rep.DeliveriesReceived, rep.DeliveriesExpected, rep.Lost, rep.Duplicated)
	}
	checkLatencies(t, rep)

	// Nobody publishes: the listener gives up when its short window
	// (Msgs/Rate + Settle) is over, not when the context below, which
	// only catches a hang, ends.
	nobodyCtx, nobodyCancel := context.WithTimeout(context.Background(), waitTimeout)
	defer nobodyCancel()
	rep, err = Run(nobodyCtx, Config{
		URL: proxy.URL + "/stream?ch=nobody", ExternalPublish: true,
		Conns: 3, Msgs: 2, Rate: 100, Settle: 100 * time.Millisecond,
	})
	if nobodyCtx.Err() != nil {
		t.Fatalf("nobody publishing: the listener waited until cancelled (%v)", nobodyCtx.Err())
	}
	if err != nil || rep.Lost != 6 || rep.DeliveriesExpected != 6 {
		t.Errorf("nobody publishing: %v, lost %d of %d", err, rep.Lost, rep.DeliveriesExpected)
	}
}
