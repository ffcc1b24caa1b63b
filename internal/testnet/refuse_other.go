//go:build !unix

package testnet

import "testing"

// RefusingAddr is not available here (it binds a socket without
// listening on it): the test is skipped.
func RefusingAddr(tb testing.TB) string {
	tb.Skip("needs a bound socket that does not listen")
	return ""
}
