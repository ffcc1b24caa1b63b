//go:build !unix

package demo

import "io"

// holdPort does not keep the origin's port here (it needs a socket bound
// without listening): nil.
func holdPort(string) io.Closer { return nil }
