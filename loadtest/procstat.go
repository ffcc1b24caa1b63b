package loadtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
)

// ProcSample is the resource use of a set of processes at one instant,
// summed over the processes.
type ProcSample struct {
	// RSS is the resident set size (VmRSS) in bytes.
	RSS int64
	// HWM is the peak resident set size (VmHWM) in bytes.
	HWM int64
	// CPU is the user plus system CPU time consumed so far.
	CPU time.Duration
}

// ReadProc reads the current memory and CPU use of the processes pids from
// /proc/PID/status and /proc/PID/stat and returns their sum. It fails if
// any of them cannot be read (e.g. the process has exited).
func ReadProc(pids []int) (ProcSample, error) {
	var s ProcSample
	for _, pid := range pids {
		one, err := readProcOne(pid)
		if err != nil {
			return s, err
		}
		s.RSS += one.RSS
		s.HWM += one.HWM
		s.CPU += one.CPU
	}
	return s, nil
}

var ticks = sync.OnceValue(clockTicks)

func readProcOne(pid int) (ProcSample, error) {
	var s ProcSample
	dir := "/proc/" + strconv.Itoa(pid)
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return s, fmt.Errorf("pid %d: %w", pid, err)
	}
	rss, ok1 := statusKB(status, "VmRSS:")
	hwm, ok2 := statusKB(status, "VmHWM:")
	if !ok1 || !ok2 {
		return s, fmt.Errorf("pid %d: no VmRSS/VmHWM in status (a kernel thread or a zombie?)", pid)
	}
	s.RSS, s.HWM = rss<<10, hwm<<10
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return s, fmt.Errorf("pid %d: %w", pid, err)
	}
	cpu, err := statCPU(stat)
	if err != nil {
		return s, fmt.Errorf("pid %d: %w", pid, err)
	}
	s.CPU = time.Duration(cpu * int64(time.Second) / ticks())
	return s, nil
}

// statusKB returns the value in kB of a "Key:   123 kB" line of
// /proc/PID/status.
func statusKB(status []byte, key string) (int64, bool) {
	for line := range bytes.Lines(status) {
		if rest, ok := bytes.CutPrefix(line, []byte(key)); ok {
			f := bytes.Fields(rest)
			if len(f) < 1 {
				return 0, false
			}
			n, err := strconv.ParseInt(string(f[0]), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// statCPU returns utime+stime (fields 14 and 15, in clock ticks) from the
// contents of /proc/PID/stat. The command name (field 2) may hold spaces
// and parentheses, so fields are counted from its last ')'.
func statCPU(stat []byte) (int64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := bytes.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, errors.New("malformed stat")
	}
	ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed stat")
	}
	return ut + st, nil
}

// sampler samples a set of processes periodically and keeps the peak RSS.
type sampler struct {
	pids     []int
	interval time.Duration
	stop     chan struct{}
	done     chan struct{}

	mu      sync.Mutex
	last    ProcSample
	peakRSS int64
	errs    []string // distinct errors, at most maxErrorTexts
}

func newSampler(pids []int, interval time.Duration) *sampler {
	return &sampler{pids: pids, interval: interval, stop: make(chan struct{}), done: make(chan struct{})}
}

// start samples once right away, then every interval until close.
func (s *sampler) start() {
	s.sample()
	go func() {
		defer close(s.done)
		t := time.NewTicker(s.interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
}

// sample reads the processes now, records the result and returns it. On
// error it returns the last good sample.
func (s *sampler) sample() ProcSample {
	p, err := ReadProc(s.pids)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if len(s.errs) < maxErrorTexts && !slices.Contains(s.errs, err.Error()) {
			s.errs = append(s.errs, err.Error())
		}
		return s.last
	}
	s.last = p
	s.peakRSS = max(s.peakRSS, p.RSS)
	return p
}

func (s *sampler) latest() ProcSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func (s *sampler) close() {
	close(s.stop)
	<-s.done
}
