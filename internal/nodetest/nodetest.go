// Package nodetest starts edgepush nodes for the tests of other packages
// (the node package's own tests have helpers of their own): on random
// loopback ports, shut down when the test ends. It is for tests only;
// nothing else imports it.
package nodetest

import (
	"context"
	"testing"
	"time"

	"github.com/edgepush/edgepush/node"
)

// shutdownTimeout bounds the node's shutdown at the end of the test:
// generous, so that it only catches a hang.
const shutdownTimeout = 20 * time.Second

// Start starts a node with the default configuration, its client and
// control listeners on random loopback ports, as configure (if not nil)
// then adjusts it. The test fails if the node does not start, or does
// not shut down cleanly when the test ends.
func Start(tb testing.TB, configure func(*node.Config)) *node.Server {
	tb.Helper()
	cfg := node.DefaultConfig()
	cfg.Listen, cfg.Control = "127.0.0.1:0", "127.0.0.1:0"
	if configure != nil {
		configure(&cfg)
	}
	s, err := node.New(cfg, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			tb.Errorf("node shutdown: %v", err)
		}
	})
	return s
}
