package redact

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// fileScratch holds the buffers and codecs of the file action.
type fileScratch struct {
	raw   []byte // base64-decoded content
	plain []byte // decompressed content
	out   []byte // redacted content
	comp  appendWriter
	b64   []byte // unescaped content_b64 when it had escapes
	br    bytes.Reader
	gzr   *gzip.Reader
	gzw   *gzip.Writer
}

func (f *fileScratch) release(keep int) {
	for _, b := range []*[]byte{&f.raw, &f.plain, &f.out, &f.b64, (*[]byte)(&f.comp)} {
		if cap(*b) > keep {
			*b = nil
		}
	}
}

// appendWriter is an io.Writer appending to a byte slice.
type appendWriter []byte

func (a *appendWriter) Write(p []byte) (int, error) {
	*a = append(*a, p...)
	return len(p), nil
}

// fileTarget records the edits of a file rule on the value [i, ve): the
// name is scanned, content_b64 is processed by w.file. A value that is not
// an object is set to null (fail closed), except null itself. It returns
// ve; if ve is -1, the value's end, which it finds on its way through an
// object.
func (w *work) fileTarget(s string, i, ve int, r *crule, seq int32) (int, error) {
	switch s[i] {
	case 'n':
		return max(ve, i+4), nil
	case '{':
	default:
		if ve < 0 {
			ve = w.valueEnd(s, i)
		}
		w.add(edit{start: int32(i), end: int32(ve), act: actNull, seq: seq})
		return ve, nil
	}
	mime, enc := [2]int32{-1, -1}, [2]int32{-1, -1}
	first := len(w.edits)
	conflict := false
	j := skipWS(s, i+1)
	for j < len(s) && s[j] == '"' {
		ke, esc := w.keyEnd(s, j)
		v := skipWS(s, skipWS(s, ke)+1)
		vend := w.valueEnd(s, v)
		key := s[j+1 : ke-1]
		if esc {
			w.keybuf = appendUnescaped(w.keybuf[:0], key)
			key = unsafeString(w.keybuf)
		}
		switch key {
		case "name":
			w.add(edit{start: int32(v), end: int32(vend), act: actScan, mask: r.mask, seq: seq})
		case "content_b64":
			w.add(edit{start: int32(v), end: int32(vend), act: actFile, flags: flagFile, mask: r.mask, seq: seq})
		case "mimetype":
			if mime[0] >= 0 && s[mime[0]:mime[1]] != s[v:vend] {
				conflict = true
			}
			mime = [2]int32{int32(v), int32(vend)}
		case "content_encoding":
			if enc[0] >= 0 && s[enc[0]:enc[1]] != s[v:vend] {
				conflict = true
			}
			enc = [2]int32{int32(v), int32(vend)}
		}
		j = skipWS(s, vend)
		if j < len(s) && s[j] == ',' {
			j = skipWS(s, j+1)
			continue
		}
		break
	}
	if ve < 0 && j < len(s) && s[j] == '}' {
		ve = j + 1
	}
	for k := first; k < len(w.edits); k++ {
		if w.edits[k].flags&flagFile != 0 {
			w.edits[k].mime, w.edits[k].enc = mime, enc
			if conflict { // duplicate mimetype or encoding that disagree: treat as binary
				w.edits[k].mime = [2]int32{-1, -1}
			}
		}
	}
	if ve < 0 {
		ve = w.valueEnd(s, i)
	}
	return ve, nil
}

// textMIME reports whether a mimetype (raw JSON string) is text we scan.
func textMIME(raw string) bool {
	if len(raw) < 2 || raw[0] != '"' {
		return false
	}
	m := raw[1 : len(raw)-1]
	if i := strings.IndexByte(m, ';'); i >= 0 {
		m = m[:i]
	}
	m = strings.TrimSpace(m)
	var buf [64]byte
	if len(m) > len(buf) {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	l := string(buf[:len(m)])
	if strings.HasPrefix(l, "text/") || strings.HasSuffix(l, "+json") || strings.HasSuffix(l, "+xml") {
		return true
	}
	switch l {
	case "application/json", "application/x-ndjson", "application/ndjson", "application/jsonl", "application/xml",
		"application/csv", "application/x-csv", "application/javascript", "application/x-javascript",
		"application/yaml", "application/x-yaml", "application/toml", "application/x-sh", "application/sql",
		"application/x-www-form-urlencoded", "message/rfc822":
		return true
	}
	return false
}

// file processes a content_b64 value: text content is decoded,
// decompressed (bounded by MaxFileBytes), scanned, and, if anything was
// replaced, re-compressed with the same encoding and re-encoded; binary
// content becomes null.
func (w *work) file(dst []byte, s string, ed *edit, st *Stats) ([]byte, error) {
	raw := s[ed.start:ed.end]
	if raw[0] != '"' {
		if raw == "null" {
			return append(dst, raw...), nil
		}
		st.act(actFile)
		return append(dst, "null"...), nil
	}
	if ed.mime[0] < 0 || !textMIME(s[ed.mime[0]:ed.mime[1]]) {
		st.act(actFile)
		return append(dst, "null"...), nil
	}
	encoding := ""
	if ed.enc[0] >= 0 {
		e := s[ed.enc[0]:ed.enc[1]]
		switch e {
		case `"gzip"`, `"zstd"`, `"identity"`, `""`, "null":
			encoding = strings.Trim(e, `"`)
		default:
			return dst, newError(ReasonBadFileEncoding, int(ed.enc[0]), errors.New("unsupported content_encoding (want gzip, zstd or identity)"))
		}
	}
	f := &w.e.maxFile
	max := *f
	// base64
	b64 := unsafeBytes(raw[1 : len(raw)-1])
	if bytes.IndexByte(b64, '\\') >= 0 {
		w.f.b64 = appendUnescaped(w.f.b64[:0], raw[1:len(raw)-1])
		b64 = w.f.b64
	}
	enc := base64.StdEncoding
	padded := bytes.IndexByte(b64, '=') >= 0 || len(b64)%4 == 0
	if !padded {
		enc = base64.RawStdEncoding
	}
	if enc.DecodedLen(len(b64)) > max+3 {
		return dst, newError(ReasonFileTooLarge, int(ed.start), nil)
	}
	w.f.raw = grow(w.f.raw, enc.DecodedLen(len(b64)))
	n, err := enc.Decode(w.f.raw, b64)
	if err != nil {
		return dst, newError(ReasonBadBase64, int(ed.start), nil)
	}
	data := w.f.raw[:n]
	if len(data) > max {
		return dst, newError(ReasonFileTooLarge, int(ed.start), nil)
	}
	switch encoding {
	case "gzip":
		data, err = w.gunzip(data, max)
	case "zstd":
		w.f.plain, err = w.e.zdec.DecodeAll(data, w.f.plain[:0])
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) || len(w.f.plain) > max {
			err = newError(ReasonFileTooLarge, int(ed.start), nil)
		} else if err != nil {
			err = newError(ReasonBadFileEncoding, int(ed.start), errors.New("corrupt zstd content"))
		}
		data = w.f.plain
	}
	if err != nil {
		return dst, err
	}
	w.sc.ms = w.sc.ms[:0]
	w.sc.mask = ed.mask
	w.sc.scan(data)
	if len(w.sc.ms) == 0 {
		return append(dst, raw...), nil
	}
	st.act(actFile)
	w.f.out = w.appendReplaced(w.f.out[:0], data, w.sc.ms, false, st)
	out := w.f.out
	switch encoding {
	case "gzip":
		w.f.comp = w.f.comp[:0]
		if w.f.gzw == nil {
			// Re-compression only keeps the content's encoding: the
			// fastest level, as the content is read back once, by a
			// trainer, and level 6 cost a third of a text file event.
			w.f.gzw, _ = gzip.NewWriterLevel(&w.f.comp, gzip.BestSpeed)
		} else {
			w.f.gzw.Reset(&w.f.comp)
		}
		w.f.gzw.Write(out)
		w.f.gzw.Close()
		out = w.f.comp
	case "zstd":
		w.f.comp = w.e.zenc.EncodeAll(out, w.f.comp[:0])
		out = w.f.comp
	}
	dst = append(dst, '"')
	dst = enc.AppendEncode(dst, out)
	return append(dst, '"'), nil
}

// gunzip decompresses data into w.f.plain, failing with file_too_large
// past max bytes (decompression bombs stop there).
func (w *work) gunzip(data []byte, max int) ([]byte, error) {
	w.f.br.Reset(data)
	var err error
	if w.f.gzr == nil {
		w.f.gzr, err = gzip.NewReader(&w.f.br)
	} else {
		err = w.f.gzr.Reset(&w.f.br)
	}
	if err != nil {
		return nil, newError(ReasonBadFileEncoding, -1, errors.New("corrupt gzip header"))
	}
	w.f.gzr.Multistream(true)
	p := w.f.plain[:0]
	for {
		if len(p) == cap(p) {
			if len(p) > max {
				break
			}
			p = append(p, 0)[:len(p)]
		}
		m, rerr := w.f.gzr.Read(p[len(p):cap(p)])
		p = p[:len(p)+m]
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			w.f.plain = p
			return nil, newError(ReasonBadFileEncoding, -1, errors.New("corrupt gzip content"))
		}
	}
	w.f.plain = p
	if len(p) > max {
		return nil, newError(ReasonFileTooLarge, -1, nil)
	}
	return p, nil
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}
