package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// checkMetricsAddr refuses a METRICS_ADDR the daemon could not listen on as
// meant: it must be host:port with a port from 1 to 65535 and a host that is
// an IP address, "localhost", or empty (every address of the node). A name
// is refused rather than resolved: what it resolves to may change, and the
// listener is bound once.
func checkMetricsAddr(addr string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("METRICS_ADDR %q is not host:port (e.g. 127.0.0.1:9337, or [::1]:9337): %v", addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("METRICS_ADDR %q: port %q is not a number from 1 to 65535", addr, port)
	}
	if host == "" || host == "localhost" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Errorf("METRICS_ADDR %q: host %q is not an IP address: give an address of this node (127.0.0.1 keeps metrics on the node), or leave the host empty for every address", addr, host)
	}
	return nil
}

// serveMetrics serves GET /metrics on l until ctx ends. The plugin runs in
// the host's network namespace, so l is on the node's own addresses.
func serveMetrics(ctx context.Context, l net.Listener, metrics http.Handler, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "macvlan-swarm serves only GET /metrics here", http.StatusNotFound)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	log.Info("serving metrics", "addr", l.Addr().String(), "path", "/metrics")
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("metrics listener failed", "err", err)
	}
}
