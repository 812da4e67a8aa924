package protocol_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
)

func TestHandlerStatuses(t *testing.T) {
	cases := []struct {
		name       string
		method     string // HTTP method, POST when empty
		path       string
		body       string
		set        func(*fakeDriver)
		wantStatus int
		wantBody   string // exact body (trailing newline trimmed), if set
		wantErr    string // substring of Err, if set
		wantCall   string // driver method that must have been called, if set
	}{
		{name: "unknown method", path: "/NetworkDriver.Frobnicate", body: `{}`, wantStatus: http.StatusNotFound,
			wantBody: `{"Err":"unknown method /NetworkDriver.Frobnicate; this plugin implements NetworkDriver"}`},
		{name: "other plugin interface", path: "/IpamDriver.RequestPool", body: `{}`, wantStatus: http.StatusNotFound,
			wantErr: "this plugin implements NetworkDriver"},
		{name: "root", path: "/", wantStatus: http.StatusNotFound, wantErr: "unknown method /"},
		{name: "GET a known method", method: http.MethodGet, path: "/NetworkDriver.Join", wantStatus: http.StatusMethodNotAllowed,
			wantErr: "GET /NetworkDriver.Join is not supported; plugin methods are called with POST"},
		{name: "PUT activate", method: http.MethodPut, path: "/Plugin.Activate", wantStatus: http.StatusMethodNotAllowed, wantErr: "POST"},
		{name: "GET unknown path", method: http.MethodGet, path: "/nope", wantStatus: http.StatusNotFound, wantErr: "unknown method /nope"},
		{name: "body over 1 MiB", path: "/NetworkDriver.Join",
			body:       `{"NetworkID":"n1","Pad":"` + strings.Repeat("x", protocol.MaxRequestBytes) + `"}`,
			wantStatus: http.StatusRequestEntityTooLarge, wantBody: `{"Err":"request body larger than 1 MiB"}`},
		{name: "body of exactly 1 MiB", path: "/NetworkDriver.Join",
			body:       joinBody + strings.Repeat(" ", protocol.MaxRequestBytes-len(joinBody)),
			wantStatus: http.StatusOK, wantCall: "Join"},
		{name: "bad JSON", path: "/NetworkDriver.Join", body: `{"NetworkID":`, wantStatus: http.StatusBadRequest,
			wantErr: "cannot decode Join request"},
		{name: "trailing garbage", path: "/NetworkDriver.CreateNetwork", body: `{} x`, wantStatus: http.StatusBadRequest,
			wantErr: "cannot decode CreateNetwork request"},
		{name: "wrong field type", path: "/NetworkDriver.CreateNetwork", body: `{"NetworkID":5}`, wantStatus: http.StatusBadRequest,
			wantErr: "CreateNetwork"},
		{name: "unknown fields ignored", path: "/NetworkDriver.Join",
			body:       `{"NetworkID":"n1","EndpointID":"e1","SomethingNew":{"a":[1,2]},"Options":{"x":null}}`,
			wantStatus: http.StatusOK, wantBody: `{"InterfaceName":{"SrcName":"mvs-test","DstPrefix":"eth"},"DisableGatewayService":true}`,
			wantCall: "Join"},
		{name: "GetCapabilities empty body", path: "/NetworkDriver.GetCapabilities", wantStatus: http.StatusOK,
			wantBody: `{"Scope":"global","ConnectivityScope":"global"}`, wantCall: "GetCapabilities"},
		{name: "GetCapabilities empty object", path: "/NetworkDriver.GetCapabilities", body: "{}\n", wantStatus: http.StatusOK,
			wantCall: "GetCapabilities"},
		{name: "Activate empty body", path: "/Plugin.Activate", wantStatus: http.StatusOK, wantBody: `{"Implements":["NetworkDriver"]}`},
		{name: "Activate ignores driver errors", path: "/Plugin.Activate", set: func(f *fakeDriver) { f.err = errors.New("broken") },
			wantStatus: http.StatusOK, wantBody: `{"Implements":["NetworkDriver"]}`},
		{name: "empty body is a zero request", path: "/NetworkDriver.DeleteNetwork", wantStatus: http.StatusOK, wantBody: `{}`,
			wantCall: "DeleteNetwork"},
		{name: "driver error", path: "/NetworkDriver.Join", body: joinBody,
			set:        func(f *fakeDriver) { f.err = errors.New(`network "n1" not found`) },
			wantStatus: http.StatusInternalServerError, wantBody: `{"Err":"network \"n1\" not found"}`, wantCall: "Join"},
		{name: "driver error without text", path: "/NetworkDriver.Leave", body: joinBody,
			set:        func(f *fakeDriver) { f.err = errors.New("") },
			wantStatus: http.StatusInternalServerError, wantErr: "Leave failed", wantCall: "Leave"},
		{name: "error only method", path: "/NetworkDriver.Leave", body: joinBody, wantStatus: http.StatusOK, wantBody: `{}`,
			wantCall: "Leave"},
		{name: "driver panic", path: "/NetworkDriver.CreateEndpoint", body: idsBody,
			set:        func(f *fakeDriver) { f.panicMsg = "index out of range" },
			wantStatus: http.StatusInternalServerError, wantBody: `{"Err":"internal error in CreateEndpoint: index out of range"}`,
			wantCall: "CreateEndpoint"},
		{name: "nil response is {}", path: "/NetworkDriver.Join", body: joinBody, set: func(f *fakeDriver) { f.join = nil },
			wantStatus: http.StatusOK, wantBody: `{}`, wantCall: "Join"},
		{name: "unencodable response", path: "/NetworkDriver.EndpointOperInfo", body: `{}`,
			set: func(f *fakeDriver) {
				f.operInfo = &protocol.EndpointOperInfoResponse{Value: map[string]any{"c": make(chan int)}}
			},
			wantStatus: http.StatusInternalServerError, wantErr: "internal error in EndpointOperInfo: cannot encode response",
			wantCall: "EndpointOperInfo"},
		{name: "no HTML escaping", path: "/NetworkDriver.CreateNetwork", body: `{}`,
			set:        func(f *fakeDriver) { f.err = errors.New(`parent "a<b>&c" not found`) },
			wantStatus: http.StatusInternalServerError, wantBody: `{"Err":"parent \"a<b>&c\" not found"}`,
			wantCall: "CreateNetwork"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake()
			if tc.set != nil {
				tc.set(fake)
			}
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			a := do(protocol.NewHandler(fake, quietLog()), method, tc.path, tc.body)

			if a.status != tc.wantStatus {
				t.Errorf("status %d, want %d; body %s", a.status, tc.wantStatus, a.body)
			}
			if tc.wantStatus == http.StatusOK {
				a.object(t)
			} else if err := a.err(t); !strings.Contains(err, tc.wantErr) {
				t.Errorf("Err %q does not contain %q", err, tc.wantErr)
			}
			if tc.wantStatus == http.StatusMethodNotAllowed && a.header.Get("Allow") != http.MethodPost {
				t.Errorf("Allow header %q, want POST", a.header.Get("Allow"))
			}
			if tc.wantBody != "" {
				if got := strings.TrimSuffix(string(a.body), "\n"); got != tc.wantBody {
					t.Errorf("body\ngot:  %s\nwant: %s", got, tc.wantBody)
				}
			}
			calls := fake.Calls()
			switch {
			case tc.wantCall != "" && (len(calls) != 1 || calls[0].Method != tc.wantCall):
				t.Errorf("driver calls %v, want one %s", calls, tc.wantCall)
			case tc.wantCall == "" && len(calls) != 0:
				t.Errorf("driver was called (%v), want no call", calls)
			}
		})
	}
}

// TestEveryDriverMethodRouted makes sure no Driver method lacks a route: it
// walks the interface itself, so a method added later is caught here.
func TestEveryDriverMethodRouted(t *testing.T) {
	fake := newFake()
	h := protocol.NewHandler(fake, quietLog())
	methods := driverMethods()
	for _, m := range methods {
		a := do(h, http.MethodPost, "/NetworkDriver."+m, "{}")
		if a.status != http.StatusOK {
			t.Errorf("%s: status %d, body %s", m, a.status, a.body)
			continue
		}
		if got := fake.last(t).Method; got != m {
			t.Errorf("POST /NetworkDriver.%s called %s", m, got)
		}
	}
	if n := len(fake.Calls()); n != len(methods) {
		t.Errorf("%d driver calls for %d methods", n, len(methods))
	}
}

func TestPanicDoesNotStopServing(t *testing.T) {
	fake := newFake()
	fake.panicMsg = "boom"
	c := serveUnix(t, protocol.NewHandler(fake, quietLog()))

	a := c.post(t, "/NetworkDriver.Join", idsBody)
	if err := a.err(t); a.status != http.StatusInternalServerError || err != "internal error in Join: boom" {
		t.Fatalf("panicking call: status %d, body %s", a.status, a.body)
	}
	// Activate does not reach the driver, so it answers as before.
	if a := c.post(t, "/Plugin.Activate", ""); a.status != http.StatusOK {
		t.Fatalf("after a panic: status %d, body %s", a.status, a.body)
	}
}

// logLines runs one request through a handler logging JSON at debug and
// returns the decoded log records.
func logLines(t *testing.T, fake *fakeDriver, path, body string) []map[string]any {
	t.Helper()
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	do(protocol.NewHandler(fake, log), http.MethodPost, path, body)
	var lines []map[string]any
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, sc.Bytes())
		}
		lines = append(lines, m)
	}
	return lines
}

// find returns the first record with the given level and message.
func find(t *testing.T, lines []map[string]any, level, msg string) map[string]any {
	t.Helper()
	for _, l := range lines {
		if l["level"] == level && l["msg"] == msg {
			return l
		}
	}
	t.Fatalf("no %s record %q in %v", level, msg, lines)
	return nil
}

func TestLogging(t *testing.T) {
	t.Run("request at debug with ids", func(t *testing.T) {
		lines := logLines(t, newFake(), "/NetworkDriver.Join", idsBody)
		rec := find(t, lines, "DEBUG", "request")
		if rec["method"] != "Join" || rec["net"] != "n1" || rec["ep"] != "e1" {
			t.Errorf("request record %v, want method=Join net=n1 ep=e1", rec)
		}
		for _, l := range lines {
			if l["level"] != "DEBUG" {
				t.Errorf("successful call logged above debug: %v", l)
			}
		}
	})
	t.Run("ids only when present", func(t *testing.T) {
		rec := find(t, logLines(t, newFake(), "/NetworkDriver.DiscoverNew", `{"DiscoveryType":1}`), "DEBUG", "request")
		if _, ok := rec["net"]; ok {
			t.Errorf("net logged for a request without a network: %v", rec)
		}
		if _, ok := rec["ep"]; ok {
			t.Errorf("ep logged for a request without an endpoint: %v", rec)
		}
		rec = find(t, logLines(t, newFake(), "/NetworkDriver.CreateNetwork", `{"NetworkID":"n2"}`), "DEBUG", "request")
		if rec["net"] != "n2" {
			t.Errorf("record %v, want net=n2", rec)
		}
		if _, ok := rec["ep"]; ok {
			t.Errorf("ep logged for a request without an endpoint: %v", rec)
		}
	})
	t.Run("driver error at warn", func(t *testing.T) {
		fake := newFake()
		fake.err = errors.New("parent missing")
		rec := find(t, logLines(t, fake, "/NetworkDriver.Join", idsBody), "WARN", "request failed")
		if rec["err"] != "parent missing" || rec["net"] != "n1" || rec["ep"] != "e1" || rec["status"] != float64(500) {
			t.Errorf("warn record %v", rec)
		}
	})
	t.Run("bad request at warn with ids", func(t *testing.T) {
		rec := find(t, logLines(t, newFake(), "/NetworkDriver.Join", `{"NetworkID":"n1","EndpointID":7}`), "WARN", "request failed")
		if rec["net"] != "n1" || rec["status"] != float64(400) {
			t.Errorf("warn record %v", rec)
		}
	})
	t.Run("panic at error with stack", func(t *testing.T) {
		fake := newFake()
		fake.panicMsg = "boom"
		rec := find(t, logLines(t, fake, "/NetworkDriver.Join", idsBody), "ERROR", "panic in driver call")
		if rec["panic"] != "boom" || rec["method"] != "Join" || !strings.Contains(rec["stack"].(string), "goroutine") {
			t.Errorf("error record %v", rec)
		}
	})
	t.Run("unknown method at warn", func(t *testing.T) {
		rec := find(t, logLines(t, newFake(), "/NetworkDriver.Nope", `{}`), "WARN", "request failed")
		if rec["path"] != "/NetworkDriver.Nope" || rec["status"] != float64(404) {
			t.Errorf("warn record %v", rec)
		}
	})
}

func TestNilLoggerUsesDefault(t *testing.T) {
	a := do(protocol.NewHandler(newFake(), nil), http.MethodPost, "/NetworkDriver.GetCapabilities", "")
	if a.status != http.StatusOK {
		t.Fatalf("status %d", a.status)
	}
}
