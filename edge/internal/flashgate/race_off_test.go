//go:build !race

package flashgate

const raceEnabled = false
