//go:build race

package redact

// sync.Pool drops items at random under the race detector.
const raceEnabled = true
