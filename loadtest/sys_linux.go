package loadtest

import (
	"encoding/binary"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// bindNoPort sets IP_BIND_ADDRESS_NO_PORT on a socket that is bound to a
// source address before connecting, so bind(2) does not use up a port of
// that address for every destination (failure to set it is harmless).
func bindNoPort(network, address string, c syscall.RawConn) error {
	c.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
	return nil
}

// openFileLimit returns the process's soft limit on open files (which the
// Go runtime raises to the hard limit at start-up).
func openFileLimit() (uint64, bool) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0, false
	}
	return r.Cur, true
}

// clockTicks returns the kernel's USER_HZ, the unit of the CPU times in
// /proc/PID/stat, read from the process's auxiliary vector (AT_CLKTCK);
// 100 if it cannot be read.
func clockTicks() int64 {
	const atClkTck = 17
	if strconv.IntSize != 64 { // auxv entries are two words each
		return 100
	}
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	for ; len(b) >= 16; b = b[16:] {
		k, v := binary.NativeEndian.Uint64(b), binary.NativeEndian.Uint64(b[8:])
		if k == atClkTck && v > 0 && v < 1e6 {
			return int64(v)
		}
		if k == 0 {
			break
		}
	}
	return 100
}
