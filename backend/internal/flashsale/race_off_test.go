//go:build !race

package flashsale

const raceEnabled = false
