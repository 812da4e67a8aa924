// Command nettool measures TCP between two network namespaces: one-stream
// throughput and 1-byte request/response latency. The data-path bench
// (test/e2e/bench_datapath_test.go, part 4 of `make bench`) builds it static
// (CGO_ENABLED=0) and bind-mounts it into busybox containers, and runs the
// same binary directly in the lab's node namespaces for the node-to-node
// baseline, so that every path is measured by the same code.
//
//	nettool serve  -listen :5201                 a stream sink and an echo, many connections
//	nettool stream -to 10.0.0.1:5201 -for 3s     one TCP stream; prints bytes and Gbit/s
//	nettool rr     -to 10.0.0.1:5201 -n 2000     1-byte ping-pong (TCP_NODELAY); prints p50/p99 in µs
//
// Why hand-written: Debian's iperf3 and netperf are C programs linked
// against shared libraries (iperf3 against its own libiperf) that the
// busybox test image does not have, and no small library does exactly
// this (a one-stream sink, a 1-byte ping-pong with per-trip samples) in a
// static binary that can be dropped into that image. It is a few hundred
// lines of the standard library, and the bench builds it each run.
//
// Output is one line of key=value fields (rr -samples adds a second line
// with every round trip), for the bench to parse:
//
//	stream to=10.99.0.11:5201 bytes=3765436416 seconds=3.0012 gbps=10.037
//	rr to=10.99.0.11:5201 n=2000 p50_us=71.3 p99_us=120.5 min_us=55.0 mean_us=74.2
//
// Protocol: the client's first byte picks the service, 's' (stream: the
// server reads to EOF and answers the byte count, 8 bytes big-endian) or 'e'
// (echo: the server writes back whatever it reads).
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	modeStream = 's'
	modeEcho   = 'e'
	// streamChunk is one write of the stream client: large enough that
	// the system calls cost little next to the copying.
	streamChunk = 128 << 10
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "serve":
		err = cmdServe(args)
	case "stream":
		err = cmdStream(args)
	case "rr":
		err = cmdRR(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nettool:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: nettool serve -listen ADDR | stream -to ADDR -for DUR | rr -to ADDR -n N [-samples]")
	os.Exit(2)
}

func cmdServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", ":5201", "address to listen on")
	_ = fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	// As a container's PID 1 the process gets no default action for
	// SIGTERM: without this, `docker stop` waits its full timeout.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		ln.Close()
	}()
	fmt.Fprintf(os.Stderr, "nettool: serving on %s\n", ln.Addr())
	if err := serve(ln); !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// serve accepts connections until ln is closed, each on its own goroutine,
// and returns the error that ended it (net.ErrClosed once ln is closed).
func serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			if err := handle(c); err != nil {
				fmt.Fprintf(os.Stderr, "nettool: %s: %v\n", c.RemoteAddr(), err)
			}
		}()
	}
}

func handle(c net.Conn) error {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	var mode [1]byte
	if _, err := io.ReadFull(c, mode[:]); err != nil {
		return err
	}
	switch mode[0] {
	case modeStream:
		n, err := io.CopyBuffer(io.Discard, c, make([]byte, streamChunk))
		if err != nil {
			return err
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(n))
		_, err = c.Write(b[:])
		return err
	case modeEcho:
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if _, werr := c.Write(buf[:n]); werr != nil {
					return werr
				}
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown mode byte %q (want %q or %q)", mode[0], modeStream, modeEcho)
	}
}

func cmdStream(args []string) error {
	fs := flag.NewFlagSet("stream", flag.ExitOnError)
	to := fs.String("to", "", "server address, host:port")
	dur := fs.Duration("for", 3*time.Second, "how long to send")
	_ = fs.Parse(args)
	if *to == "" || *dur <= 0 {
		return errors.New("stream: -to ADDR and a positive -for are required")
	}
	r, err := stream(*to, *dur)
	if err != nil {
		return err
	}
	fmt.Println(r)
	return nil
}

// StreamResult is what one stream delivered: the bytes the server counted,
// from the first write to the server's answer after the last byte.
type StreamResult struct {
	To      string
	Bytes   int64
	Elapsed time.Duration
}

// Gbps is the throughput in Gbit/s (10⁹ bits per second).
func (r StreamResult) Gbps() float64 {
	return float64(r.Bytes) * 8 / r.Elapsed.Seconds() / 1e9
}

func (r StreamResult) String() string {
	return fmt.Sprintf("stream to=%s bytes=%d seconds=%.4f gbps=%.3f", r.To, r.Bytes, r.Elapsed.Seconds(), r.Gbps())
}

// stream sends for d on one connection, then half-closes it and waits for
// the server's count, so the figure is what arrived, not what was queued.
func stream(addr string, d time.Duration) (StreamResult, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return StreamResult{}, err
	}
	defer c.Close()
	tc := c.(*net.TCPConn)
	if _, err := tc.Write([]byte{modeStream}); err != nil {
		return StreamResult{}, err
	}
	buf := make([]byte, streamChunk)
	began := time.Now()
	for time.Since(began) < d {
		if _, err := tc.Write(buf); err != nil {
			return StreamResult{}, err
		}
	}
	if err := tc.CloseWrite(); err != nil {
		return StreamResult{}, err
	}
	_ = tc.SetReadDeadline(time.Now().Add(30 * time.Second))
	var b [8]byte
	if _, err := io.ReadFull(tc, b[:]); err != nil {
		return StreamResult{}, fmt.Errorf("reading the server's byte count: %w", err)
	}
	return StreamResult{To: addr, Bytes: int64(binary.BigEndian.Uint64(b[:])), Elapsed: time.Since(began)}, nil
}

func cmdRR(args []string) error {
	fs := flag.NewFlagSet("rr", flag.ExitOnError)
	to := fs.String("to", "", "server address, host:port")
	n := fs.Int("n", 2000, "round trips measured")
	warmup := fs.Int("warmup", 100, "round trips before the measured ones, not counted")
	samples := fs.Bool("samples", false, "print every round trip (µs) on a second line")
	_ = fs.Parse(args)
	if *to == "" || *n < 1 || *warmup < 0 {
		return errors.New("rr: -to ADDR and -n ≥ 1 are required")
	}
	r, err := rr(*to, *warmup, *n)
	if err != nil {
		return err
	}
	fmt.Println(r)
	if *samples {
		s := make([]string, len(r.RTT))
		for i, d := range r.RTT {
			s[i] = strconv.FormatFloat(us(d), 'f', 1, 64)
		}
		fmt.Println("samples_us=" + strings.Join(s, ","))
	}
	return nil
}

// RRResult holds each measured round trip, in order.
type RRResult struct {
	To  string
	RTT []time.Duration
}

// Quantile by the nearest-rank method.
func (r RRResult) Quantile(q float64) time.Duration {
	s := slices.Clone(r.RTT)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func (r RRResult) String() string {
	var sum time.Duration
	for _, d := range r.RTT {
		sum += d
	}
	mean := sum / time.Duration(len(r.RTT))
	return fmt.Sprintf("rr to=%s n=%d p50_us=%.1f p99_us=%.1f min_us=%.1f mean_us=%.1f",
		r.To, len(r.RTT), us(r.Quantile(0.5)), us(r.Quantile(0.99)), us(r.Quantile(0)), us(mean))
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// rr sends one byte and waits for it to come back, warmup+n times on one
// connection with Nagle off, timing the last n.
func rr(addr string, warmup, n int) (RRResult, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return RRResult{}, err
	}
	defer c.Close()
	tc := c.(*net.TCPConn)
	if err := tc.SetNoDelay(true); err != nil {
		return RRResult{}, err
	}
	if _, err := tc.Write([]byte{modeEcho}); err != nil {
		return RRResult{}, err
	}
	_ = tc.SetDeadline(time.Now().Add(5 * time.Minute))
	r := RRResult{To: addr, RTT: make([]time.Duration, 0, n)}
	b := []byte{'x'}
	for i := range warmup + n {
		began := time.Now()
		if _, err := tc.Write(b); err != nil {
			return RRResult{}, err
		}
		if _, err := io.ReadFull(tc, b); err != nil {
			return RRResult{}, err
		}
		if i >= warmup {
			r.RTT = append(r.RTT, time.Since(began))
		}
	}
	return r, nil
}
