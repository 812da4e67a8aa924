package driver_test

// The tests in this package drive the real thing end to end: the protocol
// handler on a unix socket, the driver, a bbolt state file, and real netlink
// in a network namespace of the test's own (linktest.Lab), with veth links
// standing in for the node's LAN interfaces. Nothing is faked except the
// engine, whose requests the tests send by hand.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/announce"
	"github.com/macvlan-swarm/macvlan-swarm/internal/announce/announcetest"
	"github.com/macvlan-swarm/macvlan-swarm/internal/driver"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link/linktest"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol/wiretest"
	"github.com/macvlan-swarm/macvlan-swarm/internal/store"
)

// testReapDelay keeps the reaper's batching on (the code path production
// runs) without making tests wait for it; tests that check deletions call
// Flush anyway.
const testReapDelay = 5 * time.Millisecond

// benchOpts shapes a bench. The zero value is one parent, eth0, and a driver
// already serving.
type benchOpts struct {
	// parents are the veth links made in the lab before the driver starts
	// (default: eth0). Each veth's peer (name+"p") exists too.
	parents []string
	// reapDelay is the driver's ReapDelay (default testReapDelay).
	reapDelay time.Duration
	// wrap, if set, puts a LinkLayer between the driver and the lab.
	wrap func(*link.Handle) driver.LinkLayer
	// noStart leaves the driver stopped so the test can prepare links or
	// saved state first; call start.
	noStart bool
	// reclaim tunes the reclaim sweep (default: the driver's defaults).
	reclaim driver.ReclaimConfig
	// hostAddrs is the node's HOST_ADDRESS setting (default: none).
	hostAddrs map[string][]netip.Addr
	// announce gives the driver an Announcer whose packet sockets open in
	// the lab (default: none, nothing is sent).
	announce bool
	// observe, if set, is the handler's observer (protocol.WithObserver).
	observe func(protocol.Served)
}

// bench is one plugin under test: a lab namespace, a state directory, and,
// while started, a driver served on a unix socket.
type bench struct {
	lab       *linktest.Lab
	links     driver.LinkLayer
	dir       string // state directory; survives restart
	sock      string
	delay     time.Duration
	reclaim   driver.ReclaimConfig
	hostAddrs map[string][]netip.Addr

	announce bool // benchOpts.announce
	observe  func(protocol.Served)

	st      *store.Store
	d       *driver.Driver
	cancel  context.CancelFunc
	served  chan error
	client  *http.Client
	running bool
}

func newBench(t testing.TB, o benchOpts) *bench {
	t.Helper()
	lab := linktest.New(t)
	if len(o.parents) == 0 {
		o.parents = []string{"eth0"}
	}
	for _, p := range o.parents {
		lab.Veth(t, p, 0)
	}
	b := &bench{lab: lab, links: lab.Handle(), delay: o.reapDelay, reclaim: o.reclaim, hostAddrs: o.hostAddrs, announce: o.announce, observe: o.observe}
	if o.wrap != nil {
		b.links = o.wrap(lab.Handle())
	}
	if b.delay == 0 {
		b.delay = testReapDelay
	}
	b.dir = t.TempDir()
	b.sock = filepath.Join(b.dir, "plugin.sock")
	if len(b.sock) > 100 {
		// Unix socket paths are limited to 107 bytes; long test names make
		// long temporary directories.
		short, err := os.MkdirTemp("", "mvs")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(short) })
		b.sock = filepath.Join(short, "plugin.sock")
	}
	// Registered after the lab's cleanup, so it runs first: the driver stops
	// before its namespace goes.
	t.Cleanup(func() {
		if b.running {
			b.stop(t)
		}
	})
	if !o.noStart {
		b.start(t)
	}
	return b
}

// testLog is where the driver and handler log: nowhere, unless MVS_TEST_LOG
// is set (then stderr, at debug level).
func testLog() *slog.Logger {
	if os.Getenv("MVS_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// start does what the daemon does: listen first, then open the state file,
// restore, and serve.
func (b *bench) start(t testing.TB) {
	t.Helper()
	if b.running {
		t.Fatal("bench: start while running")
	}
	l, err := protocol.Listen(b.sock)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	st, err := store.Open(b.dir)
	if err != nil {
		l.Close()
		t.Fatalf("open store: %v", err)
	}
	cfg := driver.Config{Links: b.links, Store: st, ReapDelay: b.delay, Log: testLog(), Reclaim: b.reclaim, HostAddresses: b.hostAddrs}
	if b.announce {
		cfg.Announce = announce.New(announcetest.ListenIn(b.lab), testLog())
	}
	d, err := driver.New(cfg)
	if err != nil {
		l.Close()
		st.Close()
		t.Fatalf("driver.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	var opts []protocol.Option
	if b.observe != nil {
		opts = append(opts, protocol.WithObserver(b.observe))
	}
	go func() { served <- protocol.Serve(ctx, l, protocol.NewHandler(d, testLog(), opts...)) }()
	sock := b.sock
	b.client = &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var dl net.Dialer
				return dl.DialContext(ctx, "unix", sock)
			},
			MaxIdleConnsPerHost: 64,
		},
	}
	b.st, b.d, b.cancel, b.served, b.running = st, d, cancel, served, true
}

// stop shuts the server down, finishes the driver (its pending deletions
// included) and closes the state file, which stays on disk.
func (b *bench) stop(t testing.TB) {
	t.Helper()
	b.client.CloseIdleConnections()
	b.cancel()
	if err := <-b.served; err != nil {
		t.Errorf("serve: %v", err)
	}
	b.d.Close()
	if err := b.st.Close(); err != nil {
		t.Errorf("close store: %v", err)
	}
	b.running = false
}

// restart is a restart of the daemon against the same state file.
func (b *bench) restart(t testing.TB) {
	t.Helper()
	b.stop(t)
	b.start(t)
}

// do posts one request; it is safe from any goroutine. method is a
// NetworkDriver method, or "Plugin.Activate". req is nil (empty body), raw
// JSON as []byte, or a value to encode.
func (b *bench) do(method string, req any) (int, []byte, error) {
	var body []byte
	switch r := req.(type) {
	case nil:
	case []byte:
		body = r
	default:
		var err error
		if body, err = json.Marshal(r); err != nil {
			return 0, nil, err
		}
	}
	path := "/NetworkDriver." + method
	if strings.Contains(method, ".") {
		path = "/" + method
	}
	hreq, err := http.NewRequest(http.MethodPost, "http://plugin"+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	hreq.Header.Set("Accept", "application/vnd.docker.plugins.v1.2+json")
	resp, err := b.client.Do(hreq)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// call posts a request and decodes the answer, which must be a JSON object
// whatever the status.
func (b *bench) call(t testing.TB, method string, req any) (int, map[string]any) {
	t.Helper()
	status, raw, err := b.do(method, req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		t.Fatalf("%s: status %d, body %q is not a JSON object", method, status, raw)
	}
	return status, m
}

// ok posts a request that must succeed and returns the answer.
func (b *bench) ok(t testing.TB, method string, req any) map[string]any {
	t.Helper()
	status, m := b.call(t, method, req)
	if status != http.StatusOK {
		t.Fatalf("%s: status %d %v, want 200", method, status, m)
	}
	return m
}

// refused posts a request that must fail and returns the message the user
// would see.
func (b *bench) refused(t testing.TB, method string, req any) string {
	t.Helper()
	status, m := b.call(t, method, req)
	if status == http.StatusOK {
		t.Fatalf("%s: status 200 %v, want a refusal", method, m)
	}
	msg, _ := m["Err"].(string)
	if msg == "" || len(m) != 1 {
		t.Fatalf("%s: status %d, body %v, want exactly {\"Err\": message}", method, status, m)
	}
	return msg
}

// wantEmpty checks an answer is exactly {}.
func wantEmpty(t testing.TB, what string, m map[string]any) {
	t.Helper()
	if len(m) != 0 {
		t.Errorf("%s answered %v, want {}", what, m)
	}
}

// ---- identifiers ----

// hexID is a 64-hex-character id, as the engine makes for endpoints and
// local networks, derived from seed so failures are reproducible.
func hexID(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(sum[:])
}

// swarmID is a 25-character base-36 id, as swarm makes for its networks.
func swarmID(seed string) string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	sum := sha256.Sum256([]byte("swarm/" + seed))
	out := make([]byte, 25)
	for i := range out {
		out[i] = digits[int(sum[i])%36]
	}
	return string(out)
}

// hostLink is the name the driver gives an endpoint's host link.
func hostLink(endpointID string) string { return "mvs" + endpointID[:12] }

// onEth0 is the minimal option set.
func onEth0(extra ...string) map[string]string {
	m := map[string]string{"parent": "eth0"}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

// joinedLink checks a Join answer and returns the host link it names.
func joinedLink(t testing.TB, epID string, m map[string]any) string {
	t.Helper()
	in, _ := m["InterfaceName"].(map[string]any)
	src, _ := in["SrcName"].(string)
	// DstPrefix is eth unless the user asked for a name (DstName).
	if src != hostLink(epID) || in["DstPrefix"] != "eth" && in["DstName"] == nil {
		t.Fatalf("Join answered InterfaceName %v, want SrcName %q and DstPrefix eth", m["InterfaceName"], hostLink(epID))
	}
	if m["DisableGatewayService"] != true {
		t.Errorf("Join answered DisableGatewayService %v, want true", m["DisableGatewayService"])
	}
	return src
}

// ---- the lab as the tests see it ----

// getLink returns the link called name in the host (lab) namespace.
func (b *bench) getLink(t testing.TB, name string) link.Info {
	t.Helper()
	i, err := b.lab.Handle().Get(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return i
}

// hasLink reports whether the lab holds a link called name.
func (b *bench) hasLink(t testing.TB, name string) bool {
	t.Helper()
	_, err := b.lab.Handle().Get(name)
	if err != nil && !errors.Is(err, link.ErrNotFound) {
		t.Fatalf("link %s: %v", name, err)
	}
	return err == nil
}

// mvsLinks lists the lab's links that carry the driver's mark.
func (b *bench) mvsLinks(t testing.TB) []link.Info {
	t.Helper()
	all, err := b.lab.Handle().List()
	if err != nil {
		t.Fatalf("list links: %v", err)
	}
	var ours []link.Info
	for _, i := range all {
		if i.Ours() {
			ours = append(ours, i)
		}
	}
	return ours
}

// linkNames lists every link of the lab, sorted.
func (b *bench) linkNames(t testing.TB) []string {
	t.Helper()
	all, err := b.lab.Handle().List()
	if err != nil {
		t.Fatalf("list links: %v", err)
	}
	names := make([]string, len(all))
	for i, l := range all {
		names[i] = l.Name
	}
	slices.Sort(names)
	return names
}

// wantNoMvsLinks flushes the reaper and checks nothing of the driver's is
// left in the host namespace.
func (b *bench) wantNoMvsLinks(t testing.TB) {
	t.Helper()
	b.d.Flush()
	if left := b.mvsLinks(t); len(left) > 0 {
		names := make([]string, len(left))
		for i, l := range left {
			names[i] = fmt.Sprintf("%s(group %#x)", l.Name, l.Group)
		}
		t.Errorf("host links left behind: %s", strings.Join(names, ", "))
	}
}

// wantNoState checks the driver remembers no network and no endpoint.
func (b *bench) wantNoState(t testing.TB) {
	t.Helper()
	s := b.d.Snapshot()
	if len(s.Networks)+len(s.Endpoints) > 0 {
		t.Errorf("driver still holds %d networks and %d endpoints: %+v", len(s.Networks), len(s.Endpoints), s)
	}
}

// untouched is what a test compares to show a parent was left as it was.
type untouched struct {
	Index, MTU int
	Up         bool
	Group      uint32
	MAC        string
	Kind       string
}

func (b *bench) snapshotLink(t testing.TB, name string) untouched {
	t.Helper()
	i := b.getLink(t, name)
	return untouched{Index: i.Index, MTU: i.MTU, Up: i.Up, Group: i.Group, MAC: i.MAC.String(), Kind: i.Kind}
}

// wantUntouched checks that link name is as snapshotLink saw it before.
func (b *bench) wantUntouched(t testing.TB, name string, before untouched) {
	t.Helper()
	if after := b.snapshotLink(t, name); after != before {
		t.Errorf("%s changed:\n before %+v\n after  %+v", name, before, after)
	}
}

// netWithEndpoint creates network netID on eth0 with subnet 10.<octet>.0.0/24
// (gateway .1) and endpoint ep at .2 in it.
func (b *bench) netWithEndpoint(t testing.TB, netID, ep string, octet int) {
	t.Helper()
	subnet := fmt.Sprintf("10.%d.0.", octet)
	b.ok(t, "CreateNetwork", wiretest.CreateNetwork(netID, onEth0(), wiretest.Pool(subnet+"0/24", subnet+"1/24")))
	b.ok(t, "CreateEndpoint", wiretest.CreateEndpoint(netID, ep, subnet+"2/24", "", ""))
}

// mustContain checks a user-facing message mentions each of parts.
func mustContain(t testing.TB, msg string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("message %q does not mention %q", msg, p)
		}
	}
}
