//go:build !race

package productcache

const raceEnabled = false
