package store

import (
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/internal/model"
)

// BenchmarkApply is the cost of one commit, which the driver pays under its
// lock on every CreateEndpoint, Join and DeleteEndpoint: one endpoint record
// written, or deleted, in one transaction with its fsync. The state must be
// on a real disk for the figure to mean anything (tmpfs makes fsync free):
// the benchmark says which file system it ran on (set TMPDIR to choose).
func BenchmarkApply(b *testing.B) {
	dir := b.TempDir()
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err == nil {
		kind := fmt.Sprintf("%#x", fs.Type)
		switch fs.Type {
		case 0x01021994:
			kind = "tmpfs (fsync costs nothing: figures understate a disk)"
		case 0xef53:
			kind = "ext4"
		}
		b.Logf("state in %s on %s", dir, kind)
	}
	s, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	e := &model.Endpoint{NetworkID: "n", MAC: net.HardwareAddr{2, 0x42, 0, 0, 0, 1}, Link: "mvsbench"}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			c := *e
			c.ID = fmt.Sprintf("ep-%d", i)
			if err := s.Apply(Change{PutEndpoints: []*model.Endpoint{&c}}); err != nil {
				b.Fatal(err)
			}
			continue
		}
		if err := s.Apply(Change{DeleteEndpoints: []string{fmt.Sprintf("ep-%d", i-1)}}); err != nil {
			b.Fatal(err)
		}
	}
}
