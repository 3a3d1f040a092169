package replay

// SetTestHookAcked installs a hook that runs after each acknowledged batch,
// before the checkpoint records it; it returns a function restoring the
// previous one.
func SetTestHookAcked(fn func(n int) error) (restore func()) {
	old := testHookAcked
	testHookAcked = fn
	return func() { testHookAcked = old }
}
