package link

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The kernel tests cannot make netlink answer every shape of "not found",
// so the classification is checked on the shapes netlink actually returns.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err                   error
		notFound, unsupported bool
	}{
		{netlink.LinkNotFoundError{}, true, false},
		{fmt.Errorf("wrapped: %w", netlink.LinkNotFoundError{}), true, false},
		{unix.ENODEV, true, false},
		{fmt.Errorf("op: %w", unix.ENODEV), true, false},
		{unix.EOPNOTSUPP, false, true},
		{unix.EEXIST, false, false},
		{errors.New("Link not found"), false, false}, // text alone proves nothing
	} {
		if got := isNotFound(tc.err); got != tc.notFound {
			t.Errorf("isNotFound(%#v) = %v, want %v", tc.err, got, tc.notFound)
		}
		if got := isUnsupported(tc.err); got != tc.unsupported {
			t.Errorf("isUnsupported(%#v) = %v, want %v", tc.err, got, tc.unsupported)
		}
	}
}

func TestModeNamesRoundTrip(t *testing.T) {
	for name, mode := range kernelModes {
		if got := modeName(mode); got != name {
			t.Errorf("modeName(%d) = %q, want %q", mode, got, name)
		}
	}
}
