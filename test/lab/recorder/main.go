// Command recorder is the macvlan-swarm daemon with a tape recorder in front
// of it: every request body the engine posts is written, exactly as sent, to
// RECORD_DIR as <order>-<Method>.json, then served by the real driver. The
// capture test (test/e2e/capture_test.go) installs it as a managed plugin
// to record an engine's requests into internal/protocol/wiretest. It is a
// test tool, never shipped: the plugin's daemon has no recording switch.
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/macvlan-swarm/macvlan-swarm/internal/driver"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
	"github.com/macvlan-swarm/macvlan-swarm/internal/store"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "recorder:", err)
		os.Exit(1)
	}
}

func run() error {
	get := func(k, def string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return def
	}
	dir := get("RECORD_DIR", "/state/recorded")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stdout, nil))
	l, err := protocol.Listen(protocol.SocketPath(get("SOCKET", "macvlan-swarm.sock")))
	if err != nil {
		return err
	}
	st, err := store.Open(get("STATE_DIR", "/state"))
	if err != nil {
		return err
	}
	defer st.Close()
	links, err := link.Open()
	if err != nil {
		return err
	}
	defer links.Close()
	host, _ := os.Hostname()
	d, err := driver.New(driver.Config{Scope: get("SCOPE", protocol.ScopeGlobal), Node: host, Links: links, Store: st, Log: log})
	if err != nil {
		return err
	}
	defer d.Close()

	h := protocol.NewHandler(d, log)
	var mu sync.Mutex
	order := 0
	tape := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if method, ok := strings.CutPrefix(r.URL.Path, "/NetworkDriver."); ok && r.Method == http.MethodPost {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			mu.Lock()
			order++
			name := filepath.Join(dir, fmt.Sprintf("%04d-%s.json", order, method))
			werr := os.WriteFile(name, body, 0o644)
			mu.Unlock()
			if werr != nil {
				log.Error("cannot record", "err", werr)
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		h.ServeHTTP(w, r)
	})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return protocol.Serve(ctx, l, tape)
}
