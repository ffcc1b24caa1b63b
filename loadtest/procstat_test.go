package loadtest

import (
	"os"
	"testing"
	"time"
)

func TestReadProcSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	pid := os.Getpid()
	a, err := ReadProc([]int{pid})
	if err != nil {
		t.Fatal(err)
	}
	if a.RSS <= 0 || a.HWM < a.RSS/2 {
		t.Errorf("RSS %d, HWM %d", a.RSS, a.HWM)
	}
	// Burn CPU until the CPU time read grows (it counts in clock ticks,
	// and a loaded machine may leave this process little of it); the
	// deadline only catches a CPU time that never grows.
	deadline := time.Now().Add(waitTimeout)
	x := 0
	var b ProcSample
	for {
		for i := range 1000000 {
			x += i
		}
		if b, err = ReadProc([]int{pid}); err != nil {
			t.Fatal(err)
		}
		if b.CPU > a.CPU {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU did not grow: %v then %v (x=%d)", a.CPU, b.CPU, x)
		}
	}
	if b.CPU > 10*time.Minute {
		t.Errorf("implausible CPU time %v", b.CPU)
	}
	two, err := ReadProc([]int{pid, pid})
	if err != nil {
		t.Fatal(err)
	}
	if two.RSS < b.RSS {
		t.Errorf("sum over two PIDs %d < one %d", two.RSS, b.RSS)
	}
	if _, err := ReadProc([]int{1 << 30}); err == nil {
		t.Error("no error for a PID that does not exist")
	}
}

func TestStatCPU(t *testing.T) {
	stat := "1234 (we ird) (x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 1000 10\n"
	got, err := statCPU([]byte(stat))
	if err != nil || got != 300 {
		t.Errorf("statCPU = %d, %v; want 300", got, err)
	}
	if _, err := statCPU([]byte("1234 (x) S 1")); err == nil {
		t.Error("short stat accepted")
	}
	if n, ok := statusKB([]byte("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n"), "VmRSS:"); !ok || n != 1024 {
		t.Errorf("statusKB = %d, %v", n, ok)
	}
	if ticks() <= 0 {
		t.Errorf("clock ticks %d", ticks())
	}
}

func TestSampler(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	s := newSampler([]int{os.Getpid()}, 10*time.Millisecond)
	s.start()
	time.Sleep(50 * time.Millisecond)
	s.close()
	if s.latest().RSS <= 0 || s.peakRSS < s.latest().RSS || len(s.errs) != 0 {
		t.Errorf("latest %+v peak %d errs %v", s.latest(), s.peakRSS, s.errs)
	}
}
