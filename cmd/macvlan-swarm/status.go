package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/macvlan-swarm/macvlan-swarm/internal/doctor"
)

// Exit codes of `macvlan-swarm status`.
const (
	statusDrift       = 1 // the plugin answered and reports drift
	statusUnreachable = 2 // no plugin found, or it did not answer
)

// runStatus is `macvlan-swarm status`: the plugin's GET /status as tables
// (or as it came, with --json). It finds the plugin's socket through the
// engine unless --socket names it.
func runStatus(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("macvlan-swarm status", flag.ContinueOnError)
	fs.SetOutput(out)
	socket := fs.String("socket", "", "the plugin's socket; default: found through the engine (docker plugin inspect)")
	plugin := fs.String("plugin", "", "the plugin's full name as `docker plugin ls` shows it; default: the installed plugin whose name ends with macvlan-swarm")
	host := fs.String("host", "", "Docker engine to ask for the plugin, e.g. unix:///var/run/docker.sock (default: DOCKER_HOST, else the local engine)")
	execRoot := fs.String("exec-root", "/run/docker", "the engine's --exec-root, where newer engines keep plugin sockets")
	asJSON := fs.Bool("json", false, "print the plugin's answer as JSON")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the plugin")
	fs.Usage = func() {
		fmt.Fprintln(out, "usage: macvlan-swarm status [--json] [--socket PATH | --host URL --plugin NAME:TAG --exec-root DIR]")
		fmt.Fprintln(out, "Shows what the plugin on this node holds and where it disagrees with the kernel.")
		fmt.Fprintf(out, "Exit status: 0 all agrees, %d drift, %d the plugin was not found or did not answer.\n", statusDrift, statusUnreachable)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return exitCode(statusUnreachable)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("status: unexpected argument %q", fs.Arg(0))
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	path := *socket
	if path == "" {
		var err error
		if path, err = findPluginSocket(ctx, *host, *plugin, *execRoot); err != nil {
			fmt.Fprintln(os.Stderr, "macvlan-swarm status:", err)
			return exitCode(statusUnreachable)
		}
	}
	body, err := getStatus(ctx, path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "macvlan-swarm status: the plugin at %s did not answer: %v\n", path, err)
		return exitCode(statusUnreachable)
	}
	var r report
	if err := json.Unmarshal(body, &r); err != nil {
		fmt.Fprintf(os.Stderr, "macvlan-swarm status: the answer of %s is not a status: %v\n", path, err)
		return exitCode(statusUnreachable)
	}
	if *asJSON {
		_, _ = out.Write(body)
	} else {
		printReport(out, r, path)
	}
	if len(r.Drift) > 0 {
		return exitCode(statusDrift)
	}
	return nil
}

// findPluginSocket asks the engine (host, else DOCKER_HOST, else its
// default socket) for the plugin, chosen as the doctor chooses it
// (doctor.SelectPlugin), and returns the path of its socket.
func findPluginSocket(ctx context.Context, host, name, execRoot string) (string, error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return "", fmt.Errorf("cannot reach the Docker engine: %w", err)
	}
	defer cli.Close()
	plugins, err := cli.PluginList(ctx, filters.Args{})
	if err != nil {
		return "", fmt.Errorf("cannot list the engine's plugins at %s (give --socket to skip the engine): %w", cli.DaemonHost(), err)
	}
	var names []string
	for _, p := range plugins {
		names = append(names, p.Name)
	}
	want, err := doctor.SelectPlugin(name, names, nil)
	if err != nil {
		return "", err
	}
	for _, p := range plugins {
		if !doctor.SameRef(p.Name, want) {
			continue
		}
		if !p.Enabled {
			return "", fmt.Errorf("plugin %s is installed but disabled: docker plugin enable %s", p.Name, p.Name)
		}
		sock := p.Config.Interface.Socket
		for _, dir := range []string{filepath.Join("/run/docker/plugins", p.ID), filepath.Join(execRoot, "plugins", p.ID)} {
			if _, err := os.Stat(filepath.Join(dir, sock)); err == nil {
				return filepath.Join(dir, sock), nil
			}
		}
		return "", fmt.Errorf("plugin %s is enabled but its socket %s is in neither /run/docker/plugins/%s nor %s/plugins/%s: give the engine's exec root with --exec-root, or the socket with --socket", p.Name, sock, p.ID, execRoot, p.ID)
	}
	return "", fmt.Errorf("plugin %s is not installed on this engine (installed: %s): docker plugin install --grant-all-permissions <registry>/macvlan-swarm", want, orNone(names))
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// getStatus sends GET /status over the unix socket at path. A path longer
// than a unix address may be (108 bytes; the engine's plugin folders can
// make it so) is reached through a short symbolic link to its folder.
func getStatus(ctx context.Context, path string) ([]byte, error) {
	dial := path
	if len(path) > 100 {
		short, err := os.MkdirTemp("", "mvs")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(short)
		if err := os.Symlink(filepath.Dir(path), filepath.Join(short, "p")); err != nil {
			return nil, err
		}
		dial = filepath.Join(short, "p", filepath.Base(path))
	}
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", dial)
	}}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://plugin/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /status: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// printReport writes a report as tables an operator reads at a glance.
func printReport(out io.Writer, r report, path string) {
	fmt.Fprintf(out, "macvlan-swarm %s on %s, scope %s, up %s (since %s)\n", r.Version, orDash(r.Node), r.Scope,
		(time.Duration(r.UptimeSeconds) * time.Second).String(), r.Started.Format(time.RFC3339))
	fmt.Fprintf(out, "socket %s\n", path)
	var set []string
	for _, k := range []string{"PARENTS", "HOST_ADDRESS", "SCOPE", "LOG_LEVEL", "METRICS_ADDR", "STATE_DIR", "ENGINE_RUN_DIR"} {
		set = append(set, k+"="+orDash(r.Settings[k]))
	}
	fmt.Fprintf(out, "settings %s\n", strings.Join(set, " "))

	fmt.Fprintf(out, "\nNETWORKS (%d)\n", len(r.Networks))
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if len(r.Networks) > 0 {
		fmt.Fprintln(tw, "ID\tPARENT\tSPEC\tMODE\tMTU\tINTERNAL\tHOST ACCESS\tENDPOINTS")
	}
	for _, n := range r.Networks {
		parent := n.Parent
		if n.ParentCreated {
			parent += " (created)"
		}
		mtu := "parent's"
		if n.MTU > 0 {
			mtu = fmt.Sprint(n.MTU)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", shortID(n.ID), parent, orDash(n.ParentSpec), n.Mode, mtu, yesNo(n.Internal), yesNo(n.HostAccess), n.Endpoints)
	}
	tw.Flush()

	fmt.Fprintf(out, "\nENDPOINTS (%d)\n", len(r.Endpoints))
	if len(r.Endpoints) > 0 {
		fmt.Fprintln(tw, "ID\tNETWORK\tIPV4\tIPV6\tMAC\tHOST LINK\tJOINED")
	}
	for _, e := range r.Endpoints {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", shortID(e.ID), shortID(e.Network), orDash(e.IPv4), orDash(e.IPv6), e.MAC, e.Link, yesNo(e.Joined))
	}
	tw.Flush()

	fmt.Fprintf(out, "\nADDRESS POOLS (%d, --ipam-driver of this plugin)\n", len(r.IPAM.Pools))
	if len(r.IPAM.Pools) > 0 {
		fmt.Fprintln(tw, "POOL\tNETWORK\tROLE\tRANGE\tIN USE\tRELEASES REMEMBERED\tCREATED")
	}
	for _, p := range r.IPAM.Pools {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", p.ID, orDash(shortID(p.Network)), orDash(p.Role), p.Range, p.InUse, p.Released, p.Created.Format(time.RFC3339))
	}
	tw.Flush()
	fmt.Fprintf(out, "\nREAPER %d host links pending", r.ReaperPending)
	if len(r.ReaperLinks) > 0 {
		fmt.Fprintf(out, ": %s", strings.Join(r.ReaperLinks, " "))
	}
	fmt.Fprintln(out)

	if len(r.Drift) == 0 {
		fmt.Fprintln(out, "\nDRIFT none: saved state and kernel agree")
	} else {
		fmt.Fprintf(out, "\nDRIFT (%d)\n", len(r.Drift))
		fmt.Fprintln(tw, "KIND\tLINK\tNETWORK\tENDPOINT\tWHAT TO DO")
		for _, d := range r.Drift {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Kind, d.Link, orDash(shortID(d.Network)), orDash(shortID(d.Endpoint)), d.Detail)
		}
		tw.Flush()
	}
	for _, e := range r.DriftErrors {
		fmt.Fprintf(out, "not checked: %s\n", e)
	}

	if len(r.Errors) == 0 {
		fmt.Fprintln(out, "\nERRORS none since start")
		return
	}
	fmt.Fprintf(out, "\nERRORS (last %d, newest first)\n", len(r.Errors))
	fmt.Fprintln(tw, "TIME\tMETHOD\tNETWORK\tENDPOINT\tERROR")
	for _, e := range r.Errors {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Time.Format(time.RFC3339), e.Method, orDash(shortID(e.Network)), orDash(shortID(e.Endpoint)), e.Err)
	}
	tw.Flush()
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
