// Package cpustat reads Linux CPU accounting (/proc/stat, /proc/<pid>/stat) so a benchmark run
// can say how busy each core was and how much of it the servers under test used: a server core
// that was busy with other processes makes the run's figures untrustworthy, and the report says so.
package cpustat

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// TicksPerSecond is the unit of /proc's CPU times (USER_HZ, 100 on every Linux the kernel's ABI
// promises to user space).
const TicksPerSecond = 100

// CPU is one core's cumulative time in clock ticks.
type CPU struct {
	Busy, Total uint64
}

// ReadCPUs returns every core's counters from /proc/stat, by core number.
func ReadCPUs() (map[int]CPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	return parseStat(string(b))
}

func parseStat(s string) (map[int]CPU, error) {
	out := map[int]CPU{}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(f[0], "cpu"))
		if err != nil {
			continue
		}
		var c CPU
		for i, v := range f[1:] {
			x, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("cpustat: %q: %w", line, err)
			}
			if i >= 8 { // guest and guest_nice are already counted in user and nice
				break
			}
			c.Total += x
			if i != 3 && i != 4 { // idle, iowait
				c.Busy += x
			}
		}
		out[n] = c
	}
	if len(out) == 0 {
		return nil, errors.New("cpustat: no per-CPU lines in /proc/stat")
	}
	return out, nil
}

// BusyPercent is the share of the interval from a to b that the core was busy, 0..100.
func BusyPercent(a, b CPU) float64 {
	if b.Total <= a.Total {
		return 0
	}
	return 100 * float64(b.Busy-a.Busy) / float64(b.Total-a.Total)
}

// ProcTicks returns the user+system clock ticks used so far by pid and its direct children
// (nginx's worker under its master). A process that is gone counts 0.
func ProcTicks(pid int) uint64 {
	total := ticks(pid)
	for _, c := range children(pid) {
		total += ticks(c)
	}
	return total
}

// children returns the direct children of pid.
func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, c := range strings.Fields(string(b)) {
			if cp, err := strconv.Atoi(c); err == nil {
				out = append(out, cp)
			}
		}
	}
	return out
}

// TreePSSMiB is the proportional set size (Pss of /proc/<pid>/smaps_rollup: shared pages split
// among the processes mapping them) of pid plus its direct children (nginx's master and worker),
// in MiB: their memory together without counting the pages they share twice; 0 when unreadable.
func TreePSSMiB(pid int) float64 {
	total := pssMiB(pid)
	for _, c := range children(pid) {
		total += pssMiB(c)
	}
	return total
}

func pssMiB(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0
	}
	return statusKiB(string(b), "Pss:") / 1024
}

// statusKiB reads the "<key> N kB" line of a /proc status-like file, 0 when absent.
func statusKiB(s, key string) float64 {
	for line := range strings.SplitSeq(s, "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb
		}
	}
	return 0
}

func ticks(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	return parseProcStat(string(b))
}

// parseProcStat returns utime+stime from a /proc/<pid>/stat line. The command name may hold
// spaces and parentheses, so fields are counted after the last ')'.
func parseProcStat(s string) uint64 {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// After ')': state(0) ppid(1) ... utime is field 14 of the line, index 11 here; stime 12.
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return u + st
}

// RSSMiB returns the resident memory (VmRSS) of process pid in MiB, 0 when it cannot be read.
func RSSMiB(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	return statusKiB(string(b), "VmRSS:") / 1024
}

// OpenFiles returns how many file descriptors process pid holds, 0 when it cannot be read.
func OpenFiles(pid int) int {
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return 0
	}
	return len(fds)
}
