// Command macvlan-swarm is the plugin daemon: it serves Docker's remote
// network-driver protocol on a unix socket and gives containers macvlan
// links. The same static binary is the operator's host command: its first
// argument picks a subcommand (status, doctor), and without one it is the
// daemon. This file only wires settings, logging, signals and the server;
// see docs/design.md for the whole house.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/announce"
	"github.com/macvlan-swarm/macvlan-swarm/internal/driver"
	"github.com/macvlan-swarm/macvlan-swarm/internal/ipam"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
	"github.com/macvlan-swarm/macvlan-swarm/internal/store"
	"github.com/macvlan-swarm/macvlan-swarm/internal/telemetry"
	"github.com/macvlan-swarm/macvlan-swarm/internal/version"
)

// settings come from the environment (what `docker plugin set` changes);
// flags of the same meaning override them.
type settings struct {
	socket   string
	stateDir string
	logLevel string
	scope    string
	parents  string
	// hostAddress is HOST_ADDRESS: shim addresses for host_access networks
	// whose parent has none in their subnet (driver.ParseHostAddresses).
	hostAddress string
	// engineRun is where the plugin sees the engine's exec root (the
	// config.json mount "engine-run"), to tell dead containers' sandboxes.
	engineRun string
	// metricsAddr is host:port of the Prometheus listener; empty: none.
	metricsAddr string
}

// shown is the settings as GET /status reports them, by their env names.
func (s settings) shown() map[string]string {
	return map[string]string{"SOCKET": s.socket, "STATE_DIR": s.stateDir, "LOG_LEVEL": s.logLevel, "SCOPE": s.scope,
		"PARENTS": s.parents, "HOST_ADDRESS": s.hostAddress, "ENGINE_RUN_DIR": s.engineRun, "METRICS_ADDR": s.metricsAddr}
}

func main() {
	err := dispatch(os.Args[1:])
	var code exitCode
	switch {
	case err == nil:
	case errors.As(err, &code):
		os.Exit(int(code))
	default:
		fmt.Fprintln(os.Stderr, "macvlan-swarm:", err)
		os.Exit(1)
	}
}

// exitCode ends a host command with that code and nothing more printed: the
// command has already said why.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

// dispatch runs the host command its first argument names, or the daemon.
// The daemon takes flags only, so a first argument that is not a flag can
// only be a subcommand.
func dispatch(args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "status":
			return runStatus(args[1:], os.Stdout)
		case "doctor":
			return runDoctor(args[1:], os.Stdout)
		case "daemon":
			return run(args[1:])
		}
	}
	return run(args)
}

func run(args []string) error {
	s, err := parseSettings(args, os.Getenv)
	if err != nil {
		return err
	}
	log, err := newLogger(s.logLevel)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	parents, err := driver.ParseParents(s.parents)
	if err != nil {
		return err
	}
	hostAddrs, err := driver.ParseHostAddresses(s.hostAddress)
	if err != nil {
		return err
	}
	if err := checkMetricsAddr(s.metricsAddr); err != nil {
		return err
	}
	started := time.Now()

	// Listen before any slow work: the engine gives up on a plugin whose
	// socket is not there within a few seconds of enabling it. Requests that
	// arrive during restore wait in the socket's backlog.
	path := protocol.SocketPath(s.socket)
	l, err := protocol.Listen(path)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	log.Info("macvlan-swarm starting", "version", version.Version, "host", host, "socket", path, "scope", s.scope, "state_dir", s.stateDir, "parents", s.parents, "metrics_addr", s.metricsAddr)
	var metricsL net.Listener
	if s.metricsAddr != "" {
		if metricsL, err = net.Listen("tcp", s.metricsAddr); err != nil {
			l.Close()
			return fmt.Errorf("METRICS_ADDR %q: cannot listen there: %w (choose a free port on an address of this node, or leave METRICS_ADDR empty)", s.metricsAddr, err)
		}
		defer metricsL.Close()
	}
	var d *driver.Driver
	rec := telemetry.New(version.Version, func() driver.Counters { return d.Counters() })

	st, err := store.Open(s.stateDir)
	if err != nil {
		l.Close()
		return err
	}
	defer st.Close()
	links, err := link.Open()
	if err != nil {
		l.Close()
		return err
	}
	defer links.Close()
	d, err = driver.New(driver.Config{Scope: s.scope, Node: host, Parents: parents, HostAddresses: hostAddrs, Links: links, Store: st, Log: log,
		Reclaim: driver.ReclaimConfig{SandboxRoot: s.engineRun}, OnReap: rec.Reaped, Announce: announce.New(announce.ListenHost, log)})
	if err != nil {
		l.Close()
		return err
	}
	defer d.Close()
	addrs, err := ipam.New(ipam.Config{Store: st, Log: log.With("part", "ipam"),
		Holder: func(subnet netip.Prefix, addr netip.Addr) ipam.Holding {
			n, held := d.AddressHolding(subnet, addr)
			return ipam.Holding{Networks: n, Held: held}
		}})
	if err != nil {
		l.Close()
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if metricsL != nil {
		go serveMetrics(ctx, metricsL, rec.Handler(), log)
	}
	status := func() any {
		return report{Version: version.Version, Started: started.UTC(), UptimeSeconds: time.Since(started).Seconds(),
			Settings: s.shown(), Status: d.Status(), IPAM: addrs.Status(), Errors: rec.Errors()}
	}
	err = protocol.Serve(ctx, l, protocol.NewHandler(claimingDriver{d, addrs}, log, protocol.WithIPAM(addrs), protocol.WithStatus(status), protocol.WithObserver(rec.Observe)))
	log.Info("macvlan-swarm stopping")
	return err
}

func parseSettings(args []string, getenv func(string) string) (settings, error) {
	env := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	var s settings
	fs := flag.NewFlagSet("macvlan-swarm", flag.ContinueOnError)
	fs.StringVar(&s.socket, "socket", env("SOCKET", "macvlan-swarm.sock"), "socket name under /run/docker/plugins, or an absolute path (env SOCKET)")
	fs.StringVar(&s.stateDir, "state-dir", env("STATE_DIR", "/var/lib/macvlan-swarm"), "directory of the saved state (env STATE_DIR)")
	fs.StringVar(&s.logLevel, "log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error (env LOG_LEVEL)")
	fs.StringVar(&s.scope, "scope", env("SCOPE", protocol.ScopeGlobal), "global (swarm) or local (standalone engines before 26) (env SCOPE)")
	fs.StringVar(&s.parents, "parents", env("PARENTS", ""), "node-level parent aliases, e.g. lan=eth0,dmz=ens19.20 (env PARENTS)")
	fs.StringVar(&s.hostAddress, "host-address", env("HOST_ADDRESS", ""), "this node's address for host_access networks whose parent has none in their subnet, by parent or PARENTS alias, e.g. lan=10.1.2.3,lan=fd00::3 (env HOST_ADDRESS)")
	fs.StringVar(&s.metricsAddr, "metrics-addr", env("METRICS_ADDR", ""), "host:port to serve Prometheus metrics on, e.g. 127.0.0.1:9337; empty: no listener (env METRICS_ADDR)")
	fs.StringVar(&s.engineRun, "engine-run", env("ENGINE_RUN_DIR", ""), "where the engine's exec root is visible, to see its sandbox files; empty: sandbox paths as the engine gives them (env ENGINE_RUN_DIR)")
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	if fs.NArg() > 0 {
		return s, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return s, nil
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("LOG_LEVEL %q is not valid: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: l})), nil
}
