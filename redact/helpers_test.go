package redact

import "testing"

const testKey = "k1:anonproxy-test-key-0123456789"

func testKeys(t testing.TB) *Keyring {
	k, err := ParseKeyring(testKey, "")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testEngine(t testing.TB, cfg StreamConfig, opts Options) *Engine {
	e, err := Compile(cfg, opts, testKeys(t))
	if err != nil {
		t.Fatal(err)
	}
	return e
}
