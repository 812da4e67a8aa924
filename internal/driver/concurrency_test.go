package driver_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol/wiretest"
)

// TestConcurrentEndpoints creates and joins 50 endpoints at once on one
// network through the socket, then deletes them all at once while the
// reaper is being flushed, as a host starting and stopping a swarm service
// does. Run with -race.
func TestConcurrentEndpoints(t *testing.T) {
	t.Parallel()
	const n = 50
	b := newBench(t, benchOpts{})
	netID := swarmID("concurrent")
	b.ok(t, "CreateNetwork", wiretest.CreateNetwork(netID, onEth0(), wiretest.Pool("10.90.0.0/24", "10.90.0.1/24")))
	eps := make([]string, n)
	for i := range eps {
		eps[i] = hexID(fmt.Sprintf("concurrent-%d", i))
	}

	// each runs f for every endpoint in its own goroutine and reports the
	// failures; t.Fatal cannot be called off the test goroutine.
	each := func(f func(i int, ep string) error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i, ep := range eps {
			wg.Go(func() {
				if err := f(i, ep); err != nil {
					errs <- fmt.Errorf("endpoint %d (%s): %w", i, ep[:12], err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	post := func(method string, req any) (map[string]any, error) {
		status, raw, err := b.do(method, req)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", method, err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			return nil, fmt.Errorf("%s: answer %q is not a JSON object", method, raw)
		}
		if status != http.StatusOK {
			return nil, fmt.Errorf("%s: status %d %v", method, status, m)
		}
		return m, nil
	}

	each(func(i int, ep string) error {
		if _, err := post("CreateEndpoint", wiretest.CreateEndpoint(netID, ep, fmt.Sprintf("10.90.0.%d/24", i+10), "", "")); err != nil {
			return err
		}
		m, err := post("Join", wiretest.Join(netID, ep))
		if err != nil {
			return err
		}
		if in, _ := m["InterfaceName"].(map[string]any); in["SrcName"] != hostLink(ep) {
			return fmt.Errorf("Join named %v, want %s", m["InterfaceName"], hostLink(ep))
		}
		return nil
	})

	parent := b.getLink(t, "eth0").Index
	macs := map[string]string{}
	for _, ep := range eps {
		l := b.getLink(t, hostLink(ep))
		if l.Kind != "macvlan" || l.ParentIndex != parent {
			t.Errorf("%s is a %s on %d, want a macvlan on eth0", l.Name, l.Kind, l.ParentIndex)
		}
		if other, dup := macs[l.MAC.String()]; dup {
			t.Errorf("%s and %s share MAC %s", l.Name, other, l.MAC)
		}
		macs[l.MAC.String()] = l.Name
	}
	if got := len(b.mvsLinks(t)); got != n {
		t.Errorf("%d host links, want %d", got, n)
	}
	if got := len(b.d.Snapshot().Endpoints); got != n {
		t.Errorf("driver holds %d endpoints, want %d", got, n)
	}

	// Flush in a loop while the deletes retire links, so group deletes run
	// against links being moved into the group.
	stop := make(chan struct{})
	var flusher sync.WaitGroup
	flusher.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				b.d.Flush()
			}
		}
	})
	each(func(i int, ep string) error {
		if _, err := post("Leave", wiretest.Leave(netID, ep)); err != nil {
			return err
		}
		_, err := post("DeleteEndpoint", wiretest.DeleteEndpoint(netID, ep))
		return err
	})
	close(stop)
	flusher.Wait()

	b.wantNoMvsLinks(t)
	if got := len(b.d.Snapshot().Endpoints); got != 0 {
		t.Errorf("driver holds %d endpoints after deleting all, want 0", got)
	}
	b.ok(t, "DeleteNetwork", wiretest.DeleteNetwork(netID))
	b.wantNoState(t)
}

// TestConcurrentNetworks creates, uses and deletes networks in parallel on
// two parents, a network's requests in order, as several engines' workers
// would.
func TestConcurrentNetworks(t *testing.T) {
	t.Parallel()
	const nets = 8
	b := newBench(t, benchOpts{parents: []string{"eth0", "eth1"}})
	var wg sync.WaitGroup
	errs := make(chan error, nets)
	for i := range nets {
		wg.Go(func() {
			netID := hexID(fmt.Sprintf("cn-%d", i))
			ep := hexID(fmt.Sprintf("cn-ep-%d", i))
			parent := []string{"eth0", "eth1"}[i%2]
			steps := []struct {
				method string
				req    any
			}{
				{"CreateNetwork", wiretest.CreateNetwork(netID, map[string]string{"parent": parent}, wiretest.Pool(fmt.Sprintf("10.91.%d.0/24", i), fmt.Sprintf("10.91.%d.1/24", i)))},
				{"CreateEndpoint", wiretest.CreateEndpoint(netID, ep, fmt.Sprintf("10.91.%d.2/24", i), "", "")},
				{"Join", wiretest.Join(netID, ep)},
				{"Leave", wiretest.Leave(netID, ep)},
				{"DeleteEndpoint", wiretest.DeleteEndpoint(netID, ep)},
				{"DeleteNetwork", wiretest.DeleteNetwork(netID)},
			}
			for _, s := range steps {
				status, raw, err := b.do(s.method, s.req)
				if err != nil || status != http.StatusOK {
					errs <- fmt.Errorf("network %d %s: status %d %s %v", i, s.method, status, raw, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	b.wantNoMvsLinks(t)
	b.wantNoState(t)
}
