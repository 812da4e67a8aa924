package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"
)

// ContentType is the media type of every response. The engine sends
// "Accept: application/vnd.docker.plugins.v1.2+json" but does not check what
// comes back; this is the type plugins have always answered with.
const ContentType = "application/vnd.docker.plugins.v1+json"

// MaxRequestBytes bounds a request body. Real requests are a few hundred
// bytes; the bound only protects the plugin from a runaway client.
const MaxRequestBytes = 1 << 20

// The interfaces /Plugin.Activate can name.
const (
	networkInterface = "NetworkDriver"
	ipamInterface    = "IpamDriver"
)

// NewHandler returns the HTTP side of the protocol: POST /Plugin.Activate and
// POST /NetworkDriver.<Method> for every Driver method, and what the options
// add (/IpamDriver.<Method> with WithIPAM). Every response, error or not, is a JSON object; errors are
// {"Err": "..."}. A panic in the driver is turned into a 500 so one bug
// cannot take the plugin down. A nil log means slog.Default().
func NewHandler(d Driver, log *slog.Logger, opts ...Option) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	h := &handler{mux: http.NewServeMux(), log: log, known: map[string]bool{}}
	for _, o := range opts {
		o(h)
	}

	h.implements = []string{networkInterface}
	if h.ipam != nil {
		h.implements = append(h.implements, ipamInterface)
	}
	route(h, "Plugin", "Activate", noRequest(h.activate))

	route(h, "NetworkDriver", "GetCapabilities", noRequest(d.GetCapabilities))
	route(h, "NetworkDriver", "AllocateNetwork", d.AllocateNetwork)
	route(h, "NetworkDriver", "FreeNetwork", errOnly(d.FreeNetwork))
	route(h, "NetworkDriver", "CreateNetwork", errOnly(d.CreateNetwork))
	route(h, "NetworkDriver", "DeleteNetwork", errOnly(d.DeleteNetwork))
	route(h, "NetworkDriver", "CreateEndpoint", d.CreateEndpoint)
	route(h, "NetworkDriver", "EndpointOperInfo", d.EndpointOperInfo)
	route(h, "NetworkDriver", "DeleteEndpoint", errOnly(d.DeleteEndpoint))
	route(h, "NetworkDriver", "Join", d.Join)
	route(h, "NetworkDriver", "Leave", errOnly(d.Leave))
	route(h, "NetworkDriver", "ProgramExternalConnectivity", errOnly(d.ProgramExternalConnectivity))
	route(h, "NetworkDriver", "RevokeExternalConnectivity", errOnly(d.RevokeExternalConnectivity))
	route(h, "NetworkDriver", "DiscoverNew", errOnly(d.DiscoverNew))
	route(h, "NetworkDriver", "DiscoverDelete", errOnly(d.DiscoverDelete))
	route(h, "NetworkDriver", "GwAllocCheck", d.GwAllocCheck)

	if a := h.ipam; a != nil {
		route(h, "IpamDriver", "GetCapabilities", noRequest(a.GetIPAMCapabilities))
		route(h, "IpamDriver", "GetDefaultAddressSpaces", noRequest(a.GetDefaultAddressSpaces))
		route(h, "IpamDriver", "RequestPool", a.RequestPool)
		route(h, "IpamDriver", "ReleasePool", errOnly(a.ReleasePool))
		route(h, "IpamDriver", "RequestAddress", a.RequestAddress)
		route(h, "IpamDriver", "ReleaseAddress", errOnly(a.ReleaseAddress))
	}

	// GET /status: what the plugin holds, for operators and tests, when it
	// was given a status. The socket is the only listener, so only root on
	// the node reads it.
	if h.status != nil {
		h.mux.Handle(http.MethodGet+" /status", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, status, msg := invoke(h.log, "status", func() (any, error) { return h.status(), nil })
			if msg != "" {
				fail(w, h.log, status, msg)
				return
			}
			write(w, status, body)
		}))
	}

	// Anything no route matched: a known path with another HTTP method, or
	// a method this plugin does not implement.
	h.mux.HandleFunc("/", h.unrouted)
	return h.mux
}

// handler holds what every route shares.
type handler struct {
	mux        *http.ServeMux
	log        *slog.Logger
	known      map[string]bool // paths with a POST route, for telling 405 from 404
	status     func() any
	observe    func(Served)
	ipam       IPAM
	implements []string // what /Plugin.Activate names
}

// Option adds to what a handler serves or reports.
type Option func(*handler)

// WithStatus serves GET /status: status() encoded as JSON.
func WithStatus(status func() any) Option {
	return func(h *handler) { h.status = status }
}

// WithIPAM also serves the IPAM protocol (docker.ipamdriver/1.0) on the
// same socket, and /Plugin.Activate names it.
func WithIPAM(a IPAM) Option {
	return func(h *handler) { h.ipam = a }
}

// WithObserver has observe told of every protocol request once it is
// answered, failed ones included (for metrics and the last errors). It runs
// on the request's goroutine, so it must be quick and safe for concurrent
// use.
func WithObserver(observe func(Served)) Option {
	return func(h *handler) { h.observe = observe }
}

// Served is one answered protocol request.
type Served struct {
	Method     string // "CreateEndpoint", "Activate", ...
	NetworkID  string
	EndpointID string
	Start      time.Time
	Took       time.Duration
	// Err is the error sent to the engine; empty on success.
	Err string
}

func (h *handler) add(iface, method string, call http.Handler) {
	path := "/" + iface + "." + method
	h.known[path] = true
	h.mux.Handle(http.MethodPost+" "+path, call)
}

// route registers POST /<iface>.<method>, served by the generic decode →
// call → encode helper. Logs and metrics name network-driver and plugin
// methods bare ("Join") and IPAM methods with their interface
// ("IpamDriver.RequestAddress"): both interfaces have a GetCapabilities.
func route[Req, Resp any](h *handler, iface, method string, call func(*Req) (Resp, error)) {
	label := method
	if iface == ipamInterface {
		label = iface + "." + method
	}
	h.add(iface, method, serve(h, label, call))
}

// activate answers /Plugin.Activate, which legacy plugins are sent and
// managed ones are not (their config.json names the interfaces); answering it
// costs nothing.
func (h *handler) activate() (*ActivateResponse, error) {
	return &ActivateResponse{Implements: h.implements}, nil
}

// noRequest adapts a call that takes no request (its body is empty).
func noRequest[Resp any](call func() (Resp, error)) func(*struct{}) (Resp, error) {
	return func(*struct{}) (Resp, error) { return call() }
}

// ack is the response of methods that return only an error: it encodes as {}.
type ack struct{}

// errOnly adapts a call that returns only an error; success answers {}.
func errOnly[Req any](call func(*Req) error) func(*Req) (ack, error) {
	return func(r *Req) (ack, error) { return ack{}, call(r) }
}

// errorResponse is the engine's error shape, valid with any status.
type errorResponse struct {
	Err string
}

// requestIDs are the ids most requests carry, read from the raw body so that
// every method logs them the same way, even when its request fails to decode.
type requestIDs struct {
	NetworkID  string
	EndpointID string
	PoolID     string // IPAM requests
	Address    string
}

// serve is the one decode → call → encode helper behind every route.
func serve[Req, Resp any](h *handler, method string, call func(*Req) (Resp, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		body, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))

		var ids requestIDs
		_ = json.Unmarshal(body, &ids) // best effort, for the log only
		log := h.log.With("method", method)
		if ids.NetworkID != "" {
			log = log.With("net", ids.NetworkID)
		}
		if ids.EndpointID != "" {
			log = log.With("ep", ids.EndpointID)
		}
		if ids.PoolID != "" {
			log = log.With("pool", ids.PoolID)
		}
		if ids.Address != "" {
			log = log.With("addr", ids.Address)
		}
		failed := func(status int, msg string) {
			fail(w, log.With("dur", time.Since(start)), status, msg)
			h.served(method, ids, start, msg)
		}

		if readErr != nil {
			var tooBig *http.MaxBytesError
			if errors.As(readErr, &tooBig) {
				failed(http.StatusRequestEntityTooLarge, "request body larger than 1 MiB")
			} else {
				failed(http.StatusBadRequest, fmt.Sprintf("cannot read %s request: %v", method, readErr))
			}
			return
		}

		req := new(Req)
		// An empty body is a zero request: the engine sends none for
		// Plugin.Activate and GetCapabilities.
		if len(bytes.TrimSpace(body)) > 0 {
			if err := json.Unmarshal(body, req); err != nil {
				failed(http.StatusBadRequest, fmt.Sprintf("cannot decode %s request: %v", method, err))
				return
			}
		}

		log.Debug("request")
		out, status, msg := invoke(log, method, func() (any, error) { return call(req) })
		if status != http.StatusOK {
			failed(status, msg)
			return
		}
		write(w, http.StatusOK, out)
		log.Debug("response", "dur", time.Since(start))
		h.served(method, ids, start, "")
	})
}

// served tells the observer, if any, of an answered request.
func (h *handler) served(method string, ids requestIDs, start time.Time, msg string) {
	if h.observe != nil {
		h.observe(Served{Method: method, NetworkID: ids.NetworkID, EndpointID: ids.EndpointID, Start: start, Took: time.Since(start), Err: msg})
	}
}

// invoke runs one driver call and encodes its result. It turns a driver
// error into a 500 and a panic into a 500 naming the method, so that a bug
// in one call never kills the plugin. On success it returns the encoded
// body; otherwise the status and message for the engine.
func invoke(log *slog.Logger, method string, call func() (any, error)) (body []byte, status int, msg string) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("panic in driver call", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			body, status, msg = nil, http.StatusInternalServerError, fmt.Sprintf("internal error in %s: %v", method, p)
		}
	}()
	resp, err := call()
	if err != nil {
		msg := err.Error()
		if msg == "" {
			msg = method + " failed (the driver gave no reason)"
		}
		return nil, http.StatusInternalServerError, msg
	}
	body, err = encode(resp)
	if err != nil {
		log.Error("cannot encode response", "err", err)
		return nil, http.StatusInternalServerError, fmt.Sprintf("internal error in %s: cannot encode response: %v", method, err)
	}
	return body, http.StatusOK, ""
}

// encode marshals v without HTML escaping (the reader is the engine and its
// log, not a browser). A nil response becomes {}: the engine needs a JSON
// object on every 200.
func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if bytes.Equal(bytes.TrimSpace(buf.Bytes()), []byte("null")) {
		return []byte("{}\n"), nil
	}
	return buf.Bytes(), nil
}

// write sends an already encoded JSON body.
func write(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// fail logs msg at warn and sends it as {"Err": msg}.
func fail(w http.ResponseWriter, log *slog.Logger, status int, msg string) {
	log.Warn("request failed", "status", status, "err", msg)
	body, err := encode(errorResponse{Err: msg})
	if err != nil { // cannot happen for a struct of one string
		body = []byte(`{"Err":"internal error"}` + "\n")
	}
	write(w, status, body)
}

// unrouted answers requests no route matched, in JSON like every other
// answer, so the engine shows a readable message.
func (h *handler) unrouted(w http.ResponseWriter, r *http.Request) {
	log := h.log.With("method", r.Method, "path", r.URL.Path)
	if h.known[r.URL.Path] {
		w.Header().Set("Allow", http.MethodPost)
		fail(w, log, http.StatusMethodNotAllowed,
			fmt.Sprintf("%s %s is not supported; plugin methods are called with POST", r.Method, r.URL.Path))
		return
	}
	fail(w, log, http.StatusNotFound,
		fmt.Sprintf("unknown method %s; this plugin implements %s", r.URL.Path, strings.Join(h.implements, " and ")))
}
