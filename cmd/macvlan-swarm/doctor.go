package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/docker/docker/client"

	"github.com/macvlan-swarm/macvlan-swarm/internal/doctor"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
)

// doctorOptions are the doctor's flags.
type doctorOptions struct {
	host    string
	plugin  string
	json    bool
	timeout time.Duration
}

func parseDoctorFlags(args []string, usage io.Writer) (doctorOptions, error) {
	var o doctorOptions
	fs := flag.NewFlagSet("macvlan-swarm doctor", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: macvlan-swarm doctor [--host URL] [--plugin NAME:TAG] [--json] [--timeout D]\n\n"+
			"Checks this node (run it in the node's network namespace) and, on a swarm manager, the cluster.\n"+
			"Exit status 1 when anything is wrong, 0 when clean.\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.host, "host", "", "Docker engine to ask, e.g. unix:///var/run/docker.sock (default: DOCKER_HOST, else the local engine)")
	fs.StringVar(&o.plugin, "plugin", "", "the plugin's full name as `docker plugin ls` shows it, e.g. macvlan-swarm:latest (default: the installed network plugin whose name ends with macvlan-swarm)")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long to wait for the engine")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("doctor takes no arguments, got %q (see macvlan-swarm doctor -h)", fs.Arg(0))
	}
	if o.timeout <= 0 {
		return o, fmt.Errorf("--timeout %v: give a positive duration, e.g. 30s", o.timeout)
	}
	if p := o.plugin; p != "" && (strings.ContainsAny(p, " \t\n") || strings.HasSuffix(p, ":") || strings.HasPrefix(p, "-")) {
		return o, fmt.Errorf("--plugin %q is not a plugin name: give it as `docker plugin ls` shows it, e.g. macvlan-swarm:latest", p)
	}
	return o, nil
}

// runDoctor is `macvlan-swarm doctor`: this node's and the cluster's checks
// (internal/doctor). It returns exitCode(1) when it found anything, a plain
// error when it could not look at all.
func runDoctor(args []string, out io.Writer) error {
	o, err := parseDoctorFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("doctor: %w", err)
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if o.host != "" {
		opts = append(opts, client.WithHost(o.host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return fmt.Errorf("doctor: Docker engine address: %w", err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		return fmt.Errorf("doctor: cannot reach the Docker engine at %s (set DOCKER_HOST or --host): %w", cli.DaemonHost(), err)
	}
	facts, err := doctor.Gather(ctx, cli, doctor.Config{
		Plugin: o.plugin,
		Links:  listLinks,
	})
	if err != nil {
		return fmt.Errorf("doctor: %w", err)
	}
	r := doctor.Run(facts)
	if o.json {
		err = doctor.WriteJSON(out, r)
	} else {
		err = doctor.WriteText(out, r)
	}
	if err != nil {
		return fmt.Errorf("doctor: %w", err)
	}
	if r.Failed() {
		return exitCode(1)
	}
	return nil
}

// listLinks lists the links of the network namespace the command runs in.
func listLinks() ([]link.Info, error) {
	h, err := link.Open()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return h.List()
}
