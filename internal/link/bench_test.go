package link_test

import (
	"fmt"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link/linktest"
)

// linksPerOp is how many macvlans each benchmark iteration gets rid of.
const linksPerOp = 50

// Compare with: go test -run '^$' -bench Delete -benchtime 5x ./internal/link/
// Both report ns/link; their ratio is what the group delete saves.

func BenchmarkDeleteOneByOne(b *testing.B) {
	h, names := benchLab(b)
	for range b.N {
		b.StopTimer()
		addMacvlans(b, h, names)
		b.StartTimer()
		for _, n := range names {
			if err := h.Delete(n); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*linksPerOp), "ns/link")
}

// The timed part includes Retire, the price paid when an endpoint goes
// away, so the comparison is end to end.
func BenchmarkDeleteGroup(b *testing.B) {
	const graveyard = 77
	h, names := benchLab(b)
	for range b.N {
		b.StopTimer()
		addMacvlans(b, h, names)
		b.StartTimer()
		for _, n := range names {
			if err := h.Retire(n, graveyard); err != nil {
				b.Fatal(err)
			}
		}
		if err := h.DeleteGroup(graveyard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*linksPerOp), "ns/link")
}

func benchLab(b *testing.B) (*link.Handle, []string) {
	lab := linktest.New(b)
	lab.Veth(b, parent, 0)
	names := make([]string, linksPerOp)
	for i := range names {
		names[i] = fmt.Sprintf("mvb%d", i)
	}
	return lab.Handle(), names
}

func addMacvlans(b *testing.B, h *link.Handle, names []string) {
	for _, n := range names {
		if err := h.AddMacvlan(link.MacvlanSpec{Name: n, Parent: parent, Mark: link.EndpointMark(n)}); err != nil {
			b.Fatal(err)
		}
	}
}
