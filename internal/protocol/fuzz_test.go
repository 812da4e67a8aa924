package protocol_test

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol/wiretest"
)

// fuzzPaths are the paths FuzzHandler picks from: every route, plus a few
// the plugin does not serve.
var fuzzPaths = slices.Concat(
	[]string{"/Plugin.Activate"},
	routesOf(driverMethods()),
	[]string{"/NetworkDriver.Unknown", "/IpamDriver.RequestPool", "/"},
)

func routesOf(methods []string) []string {
	paths := make([]string, len(methods))
	for i, m := range methods {
		paths[i] = "/NetworkDriver." + m
	}
	return paths
}

// Driver behaviours FuzzHandler cycles through.
const (
	fuzzOK = iota
	fuzzError
	fuzzPanic
	fuzzModes
)

// fuzzSel is the selector FuzzHandler turns into path and mode.
func fuzzSel(f *testing.F, path string, mode int) uint16 {
	f.Helper()
	i := slices.Index(fuzzPaths, path)
	if i < 0 {
		f.Fatalf("no fuzz path %s", path)
	}
	return uint16(mode*len(fuzzPaths) + i)
}

// FuzzHandler posts arbitrary bodies to the plugin's paths, with a driver
// that succeeds, fails or panics, and checks that every answer is a JSON
// object with the right status and that nothing panics. The seed corpus is
// the captured engine requests, so a plain `go test` runs them all.
func FuzzHandler(f *testing.F) {
	for _, c := range wiretest.Captures() {
		f.Add(fuzzSel(f, "/NetworkDriver."+c.Method, fuzzOK), c.Body)
	}
	f.Add(fuzzSel(f, "/Plugin.Activate", fuzzOK), []byte(nil))
	f.Add(fuzzSel(f, "/NetworkDriver.DeleteNetwork", fuzzError), []byte(idsBody))
	f.Add(fuzzSel(f, "/NetworkDriver.Join", fuzzPanic), []byte(`{"NetworkID":[1,{"a":null}]}`))
	f.Add(fuzzSel(f, "/NetworkDriver.CreateEndpoint", fuzzOK), []byte(`{"Interface":null,"Options":{"":{"":[]}}}`))

	f.Fuzz(func(t *testing.T, sel uint16, body []byte) {
		path := fuzzPaths[int(sel)%len(fuzzPaths)]
		mode := int(sel) / len(fuzzPaths) % fuzzModes
		fake := newFake()
		switch mode {
		case fuzzError:
			fake.err = errors.New("driver says no")
		case fuzzPanic:
			fake.panicMsg = "driver bug"
		}

		a := do(protocol.NewHandler(fake, quietLog()), http.MethodPost, path, string(body))

		errText, hasErr := a.object(t)["Err"].(string)
		switch a.status {
		case http.StatusOK:
			if hasErr {
				t.Fatalf("POST %s: 200 with Err %q", path, errText)
			}
			if len(fake.Calls()) > 0 && mode != fuzzOK {
				t.Fatalf("POST %s: 200 although the driver failed (mode %d)", path, mode)
			}
		case http.StatusBadRequest, http.StatusNotFound, http.StatusInternalServerError, http.StatusRequestEntityTooLarge:
			if !hasErr || errText == "" {
				t.Fatalf("POST %s: status %d without Err: %s", path, a.status, a.body)
			}
		default:
			t.Fatalf("POST %s: unexpected status %d: %s", path, a.status, a.body)
		}
		if a.status == http.StatusInternalServerError && mode == fuzzOK {
			t.Fatalf("POST %s: 500 from a driver that succeeds: %s", path, a.body)
		}
	})
}
