package linktest

import (
	"fmt"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
)

// RunIn runs f on an OS thread inside the named network namespace (a name
// under /run/netns) and returns its error. Sockets f opens stay in that
// namespace after it returns, as with DialIn. The thread is never moved
// back: the goroutine ends still locked to it, and the runtime throws the
// thread away.
func RunIn(name string, f func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromPath(filepath.Join(nsDir, name))
		if err != nil {
			ch <- fmt.Errorf("open namespace %s: %w", name, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			ch <- fmt.Errorf("enter namespace %s: %w", name, err)
			return
		}
		ch <- f()
	}()
	return <-ch
}
