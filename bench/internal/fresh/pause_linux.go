package fresh

import (
	"syscall"
	"time"
)

// pause waits d with the kernel's high-resolution timer. The runtime's timers wake sub-millisecond
// sleeps about a millisecond late (the poller's wait has millisecond resolution), which would make
// a 200 µs poll interval a 1.2 ms one and the probe, not the server, the largest term of a
// sample. The pause blocks only this goroutine's thread and uses no CPU.
func pause(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for {
		var left syscall.Timespec
		if err := syscall.Nanosleep(&ts, &left); err != syscall.EINTR {
			return
		}
		ts = left
	}
}
