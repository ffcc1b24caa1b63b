//go:build !linux

package loadtest

import "syscall"

// bindNoPort does nothing outside Linux.
func bindNoPort(network, address string, c syscall.RawConn) error { return nil }

// openFileLimit is unknown outside Linux.
func openFileLimit() (uint64, bool) { return 0, false }

// clockTicks is the usual USER_HZ; /proc sampling is Linux-only anyway.
func clockTicks() int64 { return 100 }
