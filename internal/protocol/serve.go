package protocol

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// PluginSocketDir is where the engine looks for plugin sockets. For a managed
// plugin the engine bind-mounts the plugin's own directory here, so the
// socket named in config.json ("interface.socket") lives directly in it.
const PluginSocketDir = "/run/docker/plugins"

// shutdownTimeout bounds how long Serve waits for in-flight calls to finish
// once its context is done.
const shutdownTimeout = 5 * time.Second

// maxSocketPath is the longest unix socket path Linux accepts (sun_path is
// 108 bytes including the terminating NUL).
const maxSocketPath = 107

// SocketPath resolves the socket setting: a bare name (no '/') is a file in
// PluginSocketDir, used as given (no extension is added); anything with a
// '/' is a path used as is.
func SocketPath(nameOrPath string) string {
	if nameOrPath == "" || strings.Contains(nameOrPath, "/") {
		return nameOrPath
	}
	return filepath.Join(PluginSocketDir, nameOrPath)
}

// Listen opens the plugin's unix socket at path. It creates the parent
// directory (0755) if missing and replaces a stale socket left by an earlier
// run, but refuses to touch anything that is not a socket or a socket some
// process still answers on. The socket is made 0600: only the engine, which
// runs as root, talks to it.
func Listen(path string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("socket path is empty")
	}
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("socket path %q is %d bytes long; unix sockets allow at most %d", path, len(path), maxSocketPath)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket directory: %w", err)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("set permissions of %s: %w", path, err)
	}
	return l, nil
}

// removeStaleSocket removes the socket file at path when no process is
// listening on it any more (the previous run crashed or was killed).
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check socket path: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket (%s); remove it or choose another socket path", path, fi.Mode().Type())
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("socket %s is in use by another process; is the plugin already running?", path)
	}
	// Only "nobody listens" makes the socket stale; any other dial error
	// (permissions, ...) leaves it alone.
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("check socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	return nil
}

// Serve answers requests on l with h until ctx is done, then shuts down
// gracefully: it stops accepting, waits up to 5 s for calls in flight and
// closes l (which removes a unix socket file). It returns nil after a
// shutdown asked for by ctx, or the error that stopped serving otherwise.
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler: h,
		// No read or write timeout: a driver call (netlink, saved state)
		// may legitimately take a while and the engine bounds the request
		// itself. Headers, though, arrive at once or never.
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()

	select {
	case err := <-done:
		return fmt.Errorf("serve on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}

	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		srv.Close() // calls still running after the grace period are cut off
		err = fmt.Errorf("shut down plugin server: %w", err)
	}
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = fmt.Errorf("serve on %s: %w", l.Addr(), serr)
	}
	return err
}
