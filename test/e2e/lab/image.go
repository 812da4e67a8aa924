//go:build e2e

package lab

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// BusyboxRef is the test image every node can get with BusyboxImage.
const BusyboxRef = "mvs-busybox:latest"

var busybox struct {
	once sync.Once
	tar  []byte
	err  error
}

// busyboxTar builds, once per test process, a root filesystem holding
// /bin/busybox (busybox-static) and a symlink per applet, as a tar archive
// kept in memory (about 2 MB).
func busyboxTar() ([]byte, error) {
	busybox.once.Do(func() {
		busybox.tar, busybox.err = buildBusyboxTar()
	})
	return busybox.tar, busybox.err
}

func buildBusyboxTar() ([]byte, error) {
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, fmt.Errorf("%w (apt-get install -y busybox-static)", err)
	}
	list, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %w", err)
	}
	now := time.Now()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []struct {
		name string
		mode int64
	}{{"bin/", 0o755}, {"etc/", 0o755}, {"tmp/", 0o1777}, {"root/", 0o700}} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d.name, Mode: d.mode, ModTime: now}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin)), ModTime: now}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777, ModTime: now}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// BusyboxImage imports the busybox test image into node n (no registry can
// be pulled from here) and returns its reference, "mvs-busybox:latest".
// PATH is /bin; every busybox applet (sh, ping, ip, wget, nc, …) is there.
func BusyboxImage(t testing.TB, n *Node) string {
	t.Helper()
	b, err := busyboxTar()
	if err != nil {
		t.Fatalf("lab: busybox image: %v", err)
	}
	n.DockerStdin(t, string(b), "import", "-c", "ENV PATH=/bin", "-", BusyboxRef)
	return BusyboxRef
}
