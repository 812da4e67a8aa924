// Command cleanup removes what end-to-end lab runs left behind when they
// were killed before their own teardown: dockerd, containerd, shims,
// container processes and registries found through the pidfiles in
// /tmp/mvs-lab-*, mounts under those directories, namespaces named
// mvs-<id>-lan and mvs-<id>-node<K>, and the directories themselves.
//
// A lab whose test process is still running is left alone unless -force is
// given. Run as root from the repository root:
//
//	go run ./test/lab/cleanup [-n] [-force] [-grace 20s]
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/test/lab/sweep"
)

func main() {
	dryRun := flag.Bool("n", false, "only print what would be done")
	force := flag.Bool("force", false, "also sweep labs whose test process is still running")
	grace := flag.Duration("grace", 20*time.Second, "time dockerd gets after SIGTERM before SIGKILL")
	keep := flag.Bool("keep-logs", false, "leave the lab directories (logs) after stopping and unmounting")
	flag.Parse()

	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "cleanup: must run as root (it unmounts and deletes network namespaces)")
		os.Exit(2)
	}
	logf := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	opt := sweep.Options{Grace: *grace, Keep: *keep, DryRun: *dryRun}
	if err := sweep.All(*force, opt, logf); err != nil {
		fmt.Fprintln(os.Stderr, "cleanup:", err)
		os.Exit(1)
	}
}
