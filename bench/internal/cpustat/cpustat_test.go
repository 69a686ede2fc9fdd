package cpustat

import (
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	s := "cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 5 1 4 50 10 0 0 0 7 0\ncpu1 5 0 6 50 0 0 0 0 0 0\nintr 1 2\n"
	got, err := parseStat(s)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != (CPU{Busy: 10, Total: 70}) || got[1] != (CPU{Busy: 11, Total: 61}) || len(got) != 2 {
		t.Errorf("parseStat = %+v", got)
	}
	if p := BusyPercent(CPU{Busy: 10, Total: 100}, CPU{Busy: 60, Total: 200}); p != 50 {
		t.Errorf("BusyPercent = %v, want 50", p)
	}
}

func TestParseProcStat(t *testing.T) {
	line := "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 17 5 0 0 20 0 1 0 100 1000 10"
	if got := parseProcStat(line); got != 22 {
		t.Errorf("parseProcStat = %d, want 17+5", got)
	}
}

func TestLive(t *testing.T) {
	cpus, err := ReadCPUs()
	if err != nil {
		t.Skipf("no /proc/stat: %v", err)
	}
	if len(cpus) == 0 {
		t.Fatal("no CPUs")
	}
	for i, c := range cpus {
		if c.Total == 0 || c.Busy > c.Total {
			t.Errorf("cpu%d = %+v: want busy <= total and some ticks", i, c)
		}
	}
	// This process's CPU time must move while it spins (ticks are 10 ms; poll with a deadline).
	start := ProcTicks(os.Getpid())
	deadline := time.Now().Add(5 * time.Second)
	for ProcTicks(os.Getpid()) <= start {
		if time.Now().After(deadline) {
			t.Fatalf("ProcTicks stayed at %d while the process spun for 5s", start)
		}
		for i := 0; i < 1_000_000; i++ {
			spin++
		}
	}
}

var spin int

// TestStatusKiB reads the kB lines of /proc status files: the right key only (Pss, not
// Pss_Anon or SwapPss), and this process's own PSS.
func TestStatusKiB(t *testing.T) {
	rollup := "00400000-7fff [rollup]\nRss:  2048 kB\nPss_Anon:  100 kB\nPss:  1536 kB\nSwapPss:  7 kB\n"
	if got := statusKiB(rollup, "Pss:"); got != 1536 {
		t.Errorf("Pss = %v kB, want 1536", got)
	}
	if got := statusKiB(rollup, "VmRSS:"); got != 0 {
		t.Errorf("absent key = %v, want 0", got)
	}
	if got := TreePSSMiB(os.Getpid()); got <= 0 {
		t.Errorf("TreePSSMiB(self) = %v MiB, want > 0", got)
	}
}
