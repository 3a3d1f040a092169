package redact

// scanForTest runs the detectors in mask over t and returns the matches.
func (e *Engine) scanForTest(t []byte, mask detMask) []match {
	w := e.pool.Get()
	defer e.pool.Put(w)
	w.sc.ms = w.sc.ms[:0]
	w.sc.mask = mask
	w.sc.scan(t)
	return append([]match(nil), w.sc.ms...)
}
