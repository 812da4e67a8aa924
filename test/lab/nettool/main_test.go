package main

import (
	"net"
	"strings"
	"testing"
	"time"
)

// On loopback: a stream delivers bytes, the count the server answers is
// what was sent, and the ping-pong times every round trip.
func TestStreamAndRROnLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serve(ln)
	addr := ln.Addr().String()

	s, err := stream(addr, 200*time.Millisecond)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	if s.Bytes < streamChunk || s.Bytes%streamChunk != 0 || s.Gbps() <= 0 {
		t.Errorf("stream: %v, want a positive whole number of %d-byte chunks", s, streamChunk)
	}
	if line := s.String(); !strings.HasPrefix(line, "stream to="+addr+" bytes=") || !strings.Contains(line, " gbps=") {
		t.Errorf("stream line %q", line)
	}

	r, err := rr(addr, 10, 50)
	if err != nil {
		t.Fatalf("rr: %v", err)
	}
	if len(r.RTT) != 50 || r.Quantile(0) <= 0 || r.Quantile(0.5) > r.Quantile(0.99) {
		t.Errorf("rr: %d samples, min %v, p50 %v, p99 %v", len(r.RTT), r.Quantile(0), r.Quantile(0.5), r.Quantile(0.99))
	}
	if line := r.String(); !strings.HasPrefix(line, "rr to="+addr+" n=50 p50_us=") {
		t.Errorf("rr line %q", line)
	}

	// Several clients at once, as the server is shared by every round.
	errs := make(chan error, 3)
	for range 3 {
		go func() { _, err := rr(addr, 0, 20); errs <- err }()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent rr: %v", err)
		}
	}
}

func TestUnknownModeIsRefused(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	done := make(chan error, 1)
	go func() { done <- handle(b) }()
	a.Write([]byte{'?'})
	if err := <-done; err == nil || !strings.Contains(err.Error(), "unknown mode") {
		t.Errorf("handle of mode '?': %v", err)
	}
}
