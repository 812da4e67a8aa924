// Command macvlan-swarm-push uploads a managed plugin directory (build/plugin
// from `make plugin`) to a registry without a Docker engine, so that
// `docker plugin install REFERENCE` can fetch it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/macvlan-swarm/macvlan-swarm/internal/pluginpush"
	"github.com/macvlan-swarm/macvlan-swarm/internal/version"
)

const usage = `usage: macvlan-swarm-push [-dir DIR] [-insecure] REFERENCE

Push the managed plugin in DIR (config.json and rootfs/) to a registry, as
'docker plugin push' would, without a Docker engine. REFERENCE names the
registry, repository and tag, e.g. registry.example:5000/macvlan-swarm:0.1.0;
the tag defaults to latest. One tag holds one architecture.

Credentials come from 'docker login' ($DOCKER_CONFIG or ~/.docker/config.json,
credential helpers included). The manifest digest is printed on stdout.

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("macvlan-swarm-push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "build/plugin", "plugin `directory` holding config.json and rootfs/")
	insecure := fs.Bool("insecure", false, "allow plain HTTP to the registry (HTTPS only without it, loopback included)")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch fs.NArg() {
	case 1:
	case 0:
		fmt.Fprintln(stderr, "macvlan-swarm-push: missing REFERENCE (e.g. 127.0.0.1:5000/macvlan-swarm:0.1.0)")
		fs.Usage()
		return 2
	default:
		fmt.Fprintf(stderr, "macvlan-swarm-push: want one REFERENCE, got %q (flags go before the reference)\n", fs.Args())
		return 2
	}

	ref, err := pluginpush.ParseReference(fs.Arg(0), *insecure)
	if err != nil {
		fmt.Fprintln(stderr, "macvlan-swarm-push:", err)
		return 2
	}
	p, err := pluginpush.Load(*dir)
	if err != nil {
		fmt.Fprintln(stderr, "macvlan-swarm-push:", err)
		return 1
	}
	res, err := pluginpush.Push(ctx, p, ref, pluginpush.Options{
		Insecure:  *insecure,
		UserAgent: "macvlan-swarm-push/" + version.Version,
	})
	if err != nil {
		fmt.Fprintln(stderr, "macvlan-swarm-push:", err)
		if errors.Is(err, pluginpush.ErrPlainHTTP) {
			fmt.Fprintf(stderr, "If %s serves plain HTTP on purpose, run again with -insecure.\n", ref.RegistryStr())
		}
		return 1
	}
	fmt.Fprintf(stderr, "pushed %s: layer %s (%d bytes), config %s\n", res.Ref.Name(), res.Layer, res.LayerSize, res.Config)
	fmt.Fprintf(stderr, "install with: docker plugin install --grant-all-permissions %s\n", res.Ref.Name())
	fmt.Fprintln(stdout, res.Digest)
	return 0
}
