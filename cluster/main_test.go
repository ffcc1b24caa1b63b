package cluster

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// leakOptions are the goroutines allowed to outlive the tests.
var leakOptions = []goleak.Option{
	// fasthttp's default dialer caches resolved addresses in a
	// process-wide goroutine that never ends.
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
	// fasthttp's servers (the members' receivers) share a process-wide
	// goroutine that refreshes the Date header and never ends.
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	// A peer's HostClient cleaner sleeps out MaxIdleConnDuration (10s)
	// after its connections are closed, then ends by itself.
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
}

// TestMain fails the run if a goroutine outlives the tests. Memberlist's
// Shutdown does not wait for a probe in flight, which ends within the
// probe interval (1s with Local), so the check polls for a few seconds
// rather than goleak.VerifyTestMain's fixed, shorter retries.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := awaitNoLeaks(5 * time.Second); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines outlived the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func awaitNoLeaks(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := goleak.Find(leakOptions...)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
