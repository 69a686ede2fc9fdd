//go:build !linux

package fresh

import "time"

// pause waits d (the runtime's timer resolution; Linux gets a finer one).
func pause(d time.Duration) { time.Sleep(d) }
