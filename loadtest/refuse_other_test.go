//go:build !unix

package loadtest

import "testing"

// refusingAddr is not available here (it binds a socket without
// listening on it).
func refusingAddr(t *testing.T) string {
	t.Skip("needs a bound socket that does not listen")
	return ""
}
