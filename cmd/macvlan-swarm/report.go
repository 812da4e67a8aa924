package main

import (
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/driver"
	"github.com/macvlan-swarm/macvlan-swarm/internal/ipam"
	"github.com/macvlan-swarm/macvlan-swarm/internal/telemetry"
)

// report is what GET /status on the plugin's socket answers, and what
// `macvlan-swarm status` reads: the daemon's build, uptime and settings, the
// driver's networks, endpoints, reaper queue and drift (inline), and the
// last errors sent to the engine, newest first.
type report struct {
	Version       string            `json:"version"`
	Started       time.Time         `json:"started"`
	UptimeSeconds float64           `json:"uptime_seconds"`
	Settings      map[string]string `json:"settings"`
	driver.Status
	IPAM   ipam.Status            `json:"ipam"`
	Errors []telemetry.ErrorEntry `json:"errors"`
}
