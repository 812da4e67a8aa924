// Package store saves the driver's networks and endpoints in a bbolt file.
//
// The engine never replays CreateNetwork or CreateEndpoint to a remote driver
// (not after a plugin restart, an upgrade or a daemon restart), so everything
// the driver must remember lives here. Records are JSON with explicit field
// names; the file carries a schema version and a newer file is refused rather
// than misread.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is the layout written by this build. Bump it when a record's
// meaning changes and teach Open to migrate the older layout.
const SchemaVersion = 1

// FileName is the state file's name inside the state directory.
const FileName = "macvlan-swarm.db"

var (
	bucketMeta      = []byte("meta")
	bucketNetworks  = []byte("networks")
	bucketEndpoints = []byte("endpoints")
	keySchema       = []byte("schema")
)

// Pool is one IPAM pool of a network as the engine gave it (CIDR strings).
type Pool struct {
	Pool    string            `json:"pool"`
	Gateway string            `json:"gateway,omitempty"`
	Aux     map[string]string `json:"aux,omitempty"`
}

// Network is a network this node has been asked to create.
type Network struct {
	ID string `json:"id"`
	// ParentSpec is the parent option as the user wrote it (it may be a
	// "|"-separated candidate list or a node-level alias).
	ParentSpec string `json:"parent_spec"`
	// Parent is the link this node resolved ParentSpec to.
	Parent string `json:"parent"`
	// ParentCreated is true when this driver created Parent (an 802.1q link
	// "name.vid"); only then may the driver delete it.
	ParentCreated bool   `json:"parent_created,omitempty"`
	Mode          string `json:"mode"`
	MTU           int    `json:"mtu,omitempty"`
	Internal      bool   `json:"internal,omitempty"`
	IPv4          []Pool `json:"ipv4,omitempty"`
	IPv6          []Pool `json:"ipv6,omitempty"`
	// Options are the user's -o options as received, kept for diagnostics and
	// to tell an identical re-create from a changed one.
	Options map[string]string `json:"options,omitempty"`
	Created time.Time         `json:"created"`
}

// Endpoint is one container attachment.
type Endpoint struct {
	ID        string `json:"id"`
	NetworkID string `json:"network_id"`
	IPv4      string `json:"ipv4,omitempty"` // CIDR
	IPv6      string `json:"ipv6,omitempty"` // CIDR
	MAC       string `json:"mac"`
	// Link is the host-side macvlan link name handed to the engine in Join.
	Link string `json:"link"`
}

// Store is an open state file. Its methods are safe for concurrent use.
type Store struct {
	db *bolt.DB
}

// Open opens (creating if needed) the state file in dir.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory %q: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open state file %q: %w (is another copy of the plugin running on the same state directory?)", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketNetworks, bucketEndpoints} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		raw := meta.Get(keySchema)
		if raw == nil {
			return meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion)))
		}
		v, err := strconv.Atoi(string(raw))
		if err != nil {
			return fmt.Errorf("schema version %q is not a number", raw)
		}
		if v > SchemaVersion {
			return fmt.Errorf("state file was written by a newer macvlan-swarm (schema %d, this build reads up to %d): upgrade the plugin instead of downgrading it", v, SchemaVersion)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("state file %q: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Path is the state file's path.
func (s *Store) Path() string { return s.db.Path() }

// PutNetwork saves or replaces a network.
func (s *Store) PutNetwork(n Network) error { return s.put(bucketNetworks, n.ID, n) }

// DeleteNetwork removes a network and every endpoint recorded on it. A
// missing network is not an error.
func (s *Store) DeleteNetwork(id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		eps := tx.Bucket(bucketEndpoints)
		var doomed [][]byte
		err := eps.ForEach(func(k, v []byte) error {
			var e Endpoint
			if err := json.Unmarshal(v, &e); err != nil || e.NetworkID == id {
				doomed = append(doomed, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range doomed {
			if err := eps.Delete(k); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketNetworks).Delete([]byte(id))
	})
}

// PutEndpoint saves or replaces an endpoint.
func (s *Store) PutEndpoint(e Endpoint) error { return s.put(bucketEndpoints, e.ID, e) }

// DeleteEndpoint removes an endpoint; a missing one is not an error.
func (s *Store) DeleteEndpoint(id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEndpoints).Delete([]byte(id))
	})
}

// BadRecord names a record that did not decode.
type BadRecord struct {
	Kind string // "network" or "endpoint"
	Key  string
}

// Load reads every record. Records that do not decode are reported in bad
// and skipped, so one damaged record cannot keep the plugin down.
func (s *Store) Load() (nets []Network, eps []Endpoint, bad []BadRecord, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketNetworks).ForEach(func(k, v []byte) error {
			var n Network
			if json.Unmarshal(v, &n) != nil || n.ID != string(k) {
				bad = append(bad, BadRecord{"network", string(k)})
				return nil
			}
			nets = append(nets, n)
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketEndpoints).ForEach(func(k, v []byte) error {
			var e Endpoint
			if json.Unmarshal(v, &e) != nil || e.ID != string(k) {
				bad = append(bad, BadRecord{"endpoint", string(k)})
				return nil
			}
			eps = append(eps, e)
			return nil
		})
	})
	return nets, eps, bad, err
}

// DeleteBad removes the undecodable records Load reported.
func (s *Store) DeleteBad(bad []BadRecord) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range bad {
			bucket := bucketNetworks
			if b.Kind == "endpoint" {
				bucket = bucketEndpoints
			}
			if err := tx.Bucket(bucket).Delete([]byte(b.Key)); err != nil {
				return err
			}
		}
		return nil
	})
}

// PutAll writes many endpoints in one transaction (used by benchmarks and
// restore tests to build large states quickly).
func (s *Store) PutAll(eps []Endpoint) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEndpoints)
		for _, e := range eps {
			raw, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(e.ID), raw); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) put(bucket []byte, key string, v any) error {
	if key == "" {
		return errors.New("record without an id")
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Put([]byte(key), raw)
	})
}
