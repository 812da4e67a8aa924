package protocol_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol/wiretest"
)

// fuzzPaths are the paths FuzzHandler picks from: every route, plus a few
// the plugin does not serve.
var fuzzPaths = []string{
	"/Plugin.Activate",
	"/NetworkDriver.GetCapabilities",
	"/NetworkDriver.GwAllocCheck",
	"/NetworkDriver.AllocateNetwork",
	"/NetworkDriver.FreeNetwork",
	"/NetworkDriver.CreateNetwork",
	"/NetworkDriver.DeleteNetwork",
	"/NetworkDriver.CreateEndpoint",
	"/NetworkDriver.EndpointOperInfo",
	"/NetworkDriver.DeleteEndpoint",
	"/NetworkDriver.Join",
	"/NetworkDriver.Leave",
	"/NetworkDriver.ProgramExternalConnectivity",
	"/NetworkDriver.RevokeExternalConnectivity",
	"/NetworkDriver.DiscoverNew",
	"/NetworkDriver.DiscoverDelete",
	"/NetworkDriver.Unknown",
	"/IpamDriver.RequestPool",
	"/",
}

// Driver behaviours FuzzHandler cycles through.
const (
	fuzzOK = iota
	fuzzError
	fuzzPanic
	fuzzModes
)

// FuzzHandler posts arbitrary bodies to the plugin's paths, with a driver
// that succeeds, fails or panics, and checks that every answer is a JSON
// object with the right status and that nothing panics. The seed corpus is
// the captured engine requests, so a plain `go test` runs them all.
func FuzzHandler(f *testing.F) {
	for _, c := range wiretest.Captures() {
		i := slices.Index(fuzzPaths, "/NetworkDriver."+c.Method)
		if i < 0 {
			f.Fatalf("%s: no fuzz path for method %s", c.Name, c.Method)
		}
		f.Add(uint16(i), c.Body)
	}
	f.Add(uint16(0), []byte(nil))
	f.Add(uint16(len(fuzzPaths)+5), []byte(`{"NetworkID":"n","EndpointID":"e"}`))
	f.Add(uint16(2*len(fuzzPaths)+10), []byte(`{"NetworkID":[1,{"a":null}]}`))
	f.Add(uint16(7), []byte(`{"Interface":null,"Options":{"":{"":[]}}}`))

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

		rec := do(protocol.NewHandler(fake, quietLog()), http.MethodPost, path, string(body))

		var obj map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &obj); err != nil {
			t.Fatalf("POST %s: answer is not a JSON object: %v: %q", path, err, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); ct != protocol.ContentType {
			t.Fatalf("POST %s: Content-Type %q", path, ct)
		}
		errText, hasErr := obj["Err"].(string)
		switch rec.Code {
		case http.StatusOK:
			if hasErr {
				t.Fatalf("POST %s: 200 with Err %q", path, errText)
			}
			if len(fake.Calls()) > 0 && mode != fuzzOK {
				t.Fatalf("POST %s: 200 although the driver failed (mode %d)", path, mode)
			}
		case http.StatusBadRequest, http.StatusNotFound, http.StatusInternalServerError, http.StatusRequestEntityTooLarge:
			if !hasErr || errText == "" {
				t.Fatalf("POST %s: status %d without Err: %s", path, rec.Code, rec.Body)
			}
		default:
			t.Fatalf("POST %s: unexpected status %d: %s", path, rec.Code, rec.Body)
		}
		if rec.Code == http.StatusInternalServerError && mode == fuzzOK {
			t.Fatalf("POST %s: 500 from a driver that succeeds: %s", path, rec.Body)
		}
	})
}
