package telemetry_test

import (
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/driver"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
	"github.com/macvlan-swarm/macvlan-swarm/internal/telemetry"
)

// The last errors are kept newest first, at most KeepErrors of them, and
// successes are counted but never listed.
func TestErrorsAreTheLastOnesNewestFirst(t *testing.T) {
	r := telemetry.New("v-test", nil)
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range telemetry.KeepErrors + 5 {
		r.Observe(protocol.Served{Method: "Join", EndpointID: fmt.Sprint(i), Start: start.Add(time.Duration(i) * time.Second), Err: fmt.Sprintf("failure %d", i)})
		r.Observe(protocol.Served{Method: "CreateEndpoint", Start: start})
	}
	got := r.Errors()
	if len(got) != telemetry.KeepErrors {
		t.Fatalf("%d errors kept, want %d", len(got), telemetry.KeepErrors)
	}
	last := telemetry.KeepErrors + 4
	if got[0].Err != fmt.Sprintf("failure %d", last) || got[len(got)-1].Err != "failure 5" || got[0].Endpoint != fmt.Sprint(last) {
		t.Errorf("errors run from %+v to %+v, want failure %d down to failure 5", got[0], got[len(got)-1], last)
	}
	got[0].Err = "changed by the caller"
	if r.Errors()[0].Err == "changed by the caller" {
		t.Error("Errors hands out its own slice")
	}
}

// The exposition carries the request counts by method, the driver's
// figures read at scrape time, and the build.
func TestHandlerExposesCountsAndDriverFigures(t *testing.T) {
	figures := driver.Counters{Networks: 2, Endpoints: 7, LinksPending: 1, LinksCreated: 11, LinksDeleted: 4, RestoreTook: 1500 * time.Millisecond}
	r := telemetry.New("v-test", func() driver.Counters { return figures })
	r.Observe(protocol.Served{Method: "Join", Took: time.Millisecond})
	r.Observe(protocol.Served{Method: "Join", Took: time.Millisecond, Err: "no"})
	r.Reaped(3, 20*time.Millisecond)
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, line := range []string{
		`macvlan_swarm_requests_total{method="Join"} 2`,
		`macvlan_swarm_request_errors_total{method="Join"} 1`,
		`macvlan_swarm_request_duration_seconds_count{method="Join"} 2`,
		`macvlan_swarm_networks 2`,
		`macvlan_swarm_endpoints 7`,
		`macvlan_swarm_host_links_created_total 11`,
		`macvlan_swarm_host_links_deleted_total 4`,
		`macvlan_swarm_host_links_pending 1`,
		`macvlan_swarm_restore_duration_seconds 1.5`,
		`macvlan_swarm_reaper_batch_duration_seconds_count 1`,
		`macvlan_swarm_build_info{goversion="`,
	} {
		if !strings.Contains(string(body), line) {
			t.Errorf("metrics lack %q", line)
		}
	}
	figures.Endpoints = 9
	rec = httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "macvlan_swarm_endpoints 9") {
		t.Error("the endpoint gauge was not read again at the second scrape")
	}
}
