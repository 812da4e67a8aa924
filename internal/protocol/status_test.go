package protocol_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
)

// GET /status answers the status it was given as JSON; without one, and for
// any other GET, the answer is a JSON error.
func TestStatusRoute(t *testing.T) {
	h := protocol.NewHandler(newFake(), quietLog(), protocol.WithStatus(func() any { return map[string]any{"networks": []string{"n1"}} }))
	a := do(h, http.MethodGet, "/status", "")
	if a.status != http.StatusOK {
		t.Fatalf("GET /status = %d: %s", a.status, a.body)
	}
	if got := a.object(t)["networks"]; got == nil || len(got.([]any)) != 1 {
		t.Errorf("GET /status = %s, want the driver's status", a.body)
	}
	if a := do(h, http.MethodPost, "/status", ""); a.status == http.StatusOK {
		t.Errorf("POST /status = %d, want an error", a.status)
	} else {
		a.err(t)
	}
	if a := do(h, http.MethodGet, "/nothing", ""); a.status != http.StatusNotFound || !strings.Contains(a.err(t), "nothing") {
		t.Errorf("GET /nothing = %d %s, want a JSON 404 naming the path", a.status, a.body)
	}

	plain := protocol.NewHandler(newFake(), quietLog())
	if a := do(plain, http.MethodGet, "/status", ""); a.status == http.StatusOK {
		t.Errorf("GET /status on a handler without a status = %d %s, want an error", a.status, a.body)
	} else {
		a.err(t)
	}
}
