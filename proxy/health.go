package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// HealthServer serves /healthz (liveness: the process answers), /readyz
// (200 only while ready() holds: consent caught up and the stage consuming)
// and /metrics.
type HealthServer struct {
	srv *http.Server
	ln  net.Listener
}

// ListenHealth binds addr (default 127.0.0.1:9464) and serves in the background.
func ListenHealth(addr string, ready func() bool, metrics http.Handler, log *slog.Logger) (*HealthServer, error) {
	if addr == "" {
		addr = "127.0.0.1:9464"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready: consent table catching up, consent stale, or not consuming", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	if metrics != nil {
		mux.Handle("/metrics", metrics)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	h := &HealthServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln}
	go func() {
		if err := h.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("health server", "error", err.Error())
		}
	}()
	return h, nil
}

// Addr is the address the server listens on.
func (h *HealthServer) Addr() string { return h.ln.Addr().String() }

// Close stops the server.
func (h *HealthServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return h.srv.Shutdown(ctx)
}
