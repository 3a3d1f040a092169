//go:build race

package proxy_test

// The race detector randomises sync.Pool and multiplies memory use.
const raceEnabled = true
