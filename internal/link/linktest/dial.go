package linktest

import (
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"time"

	"github.com/vishvananda/netns"
)

// DialIn opens a connection from inside the named network namespace (a
// name under /run/netns). Only the socket is made there; the connection is
// then used like any other.
//
// The socket is created on an OS thread moved into the namespace. That
// thread is never moved back: the goroutine ends while still locked to it,
// and the Go runtime then throws the thread away instead of reusing it for
// other goroutines.
func DialIn(name, network, addr string, timeout time.Duration) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromPath(filepath.Join(nsDir, name))
		if err != nil {
			ch <- result{err: fmt.Errorf("open namespace %s: %w", name, err)}
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			ch <- result{err: fmt.Errorf("enter namespace %s: %w", name, err)}
			return
		}
		c, err := net.DialTimeout(network, addr, timeout)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.conn, r.err
}
