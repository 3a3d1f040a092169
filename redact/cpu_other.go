//go:build !amd64 || purego

package redact

// hasAVX2 is false off amd64 (and with the purego tag): there are no
// assembly kernels to use.
const hasAVX2 = false
