package proxy_test

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/anonproxy/anonproxy/proxy"
)

func TestHealthEndpoints(t *testing.T) {
	var ready atomic.Bool
	m := proxy.NewMetrics(nil)
	m.EventsIn.WithLabelValues("chat").Add(3)
	h, err := proxy.ListenHealth("127.0.0.1:0", ready.Load, m.Handler(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + h.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before ready = %d, want 503", code)
	}
	ready.Store(true)
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz when ready = %d", code)
	}
	code, body := get("/metrics")
	if code != 200 || !strings.Contains(body, `anonproxy_events_in_total{stream="chat"} 3`) {
		t.Errorf("/metrics = %d:\n%s", code, body)
	}
}
